//! File operations on a container's file system: `cp` (both ways),
//! `export`, `diff` and `commit`.
//!
//! Where the files are seen from: a running container through its own
//! root (`/proc/<init>/root`, its volumes included) or, without its
//! mounts, through its monitor's mount namespace where the bare overlay is
//! mounted; a stopped one by mounting its overlay (and volumes) in a
//! private mount namespace of this process, under its lock.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use quai_image::digest::Digest;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use crate::archive::{self, Sink};
use crate::engine::Engine;
use crate::error::{EngineError, IoContext, Result};
use crate::lock::ContainerLock;
use crate::record::{Container, Status};

static PRIVATE_NS: AtomicBool = AtomicBool::new(false);

/// Moves this (single-threaded) process into a mount namespace of its
/// own, once: mounts made after this never reach the host.
fn private_mount_namespace() -> Result<()> {
    if PRIVATE_NS.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    crate::sys::unshare_mount_namespace()?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM
            | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(|e| EngineError::io("make this process's mounts private", e.into()))
}

/// A path inside the container, with what `stat` says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    pub mode: u32,
    pub mtime: i64,
    pub link_target: Option<PathBuf>,
}

/// A container's files, open for reading and writing.
pub struct View {
    pub root: OwnedFd,
    _lock: Option<ContainerLock>,
}

impl Engine {
    /// Opens a view of the container's files; `with_mounts` includes its
    /// volumes and binds (cp), otherwise only its own file system (export).
    pub fn view(&mut self, c: &Container, with_mounts: bool) -> Result<View> {
        let running =
            matches!(c.state.status, Status::Running | Status::Paused) && c.monitor_alive();
        if running {
            let path = if with_mounts {
                PathBuf::from(format!("/proc/{}/root", c.state.pid))
            } else {
                let monitor = c.state.monitor.map(|m| m.pid).unwrap_or(0);
                PathBuf::from(format!("/proc/{monitor}/root")).join(
                    self.paths
                        .rootfs(&c.id)
                        .strip_prefix("/")
                        .unwrap_or(&self.paths.rootfs(&c.id)),
                )
            };
            let root = archive::open_dir(&path)?;
            // Opened through pids: they must still be this container's.
            let fresh = crate::record::get(self.conn(), &c.id)?;
            if !fresh.is_some_and(|f| f.monitor_alive() && f.state.pid == c.state.pid) {
                return Err(EngineError::conflict(format!(
                    "container {} stopped while its files were opened",
                    c.id
                )));
            }
            return Ok(View { root, _lock: None });
        }
        let lock = ContainerLock::acquire(&self.paths, &c.id)?;
        let fresh = crate::record::get(self.conn(), &c.id)?
            .ok_or_else(|| EngineError::NoSuchContainer(c.id.clone()))?;
        if fresh.state.status.is_active() && fresh.monitor_alive() {
            drop(lock);
            return self.view(&fresh, with_mounts);
        }
        private_mount_namespace()?;
        let image = Digest::parse(&c.image_id).map_err(|e| EngineError::Corrupt {
            id: c.id.clone(),
            reason: format!("image id: {e}"),
        })?;
        crate::shim::mount_overlay(self, &c.id, &image)?;
        let root = archive::open_dir(&self.paths.rootfs(&c.id))?;
        if with_mounts {
            for m in &c.def.mounts {
                let source = Path::new(&m.source);
                if !source.exists() {
                    continue;
                }
                let kind = if source.is_dir() {
                    quai_runtime::safe_path::Kind::Directory
                } else {
                    quai_runtime::safe_path::Kind::File
                };
                let target = quai_runtime::safe_path::ensure_in_root(
                    root.as_fd(),
                    Path::new(&m.destination),
                    kind,
                    Mode::from_raw_mode(0o755),
                )
                .ctx(|| format!("mount point {} in the container", m.destination))?;
                let tree = rustix::mount::open_tree(
                    rustix::fs::CWD,
                    source,
                    OpenTreeFlags::OPEN_TREE_CLONE
                        | OpenTreeFlags::OPEN_TREE_CLOEXEC
                        | OpenTreeFlags::AT_RECURSIVE,
                )
                .at("clone mount of", source)?;
                rustix::mount::move_mount(
                    &tree,
                    "",
                    &target,
                    "",
                    MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
                        | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
                )
                .ctx(|| format!("mount {} at {}", m.source, m.destination))?;
            }
        }
        Ok(View {
            root,
            _lock: Some(lock),
        })
    }

    /// What `path` is in the container (None: it does not exist).
    pub fn stat_path(&mut self, view: &View, path: &str, follow: bool) -> Result<Option<PathStat>> {
        let resolved = if follow {
            quai_runtime::safe_path::open_in_root(view.root.as_fd(), Path::new(path), OFlags::PATH)
        } else {
            open_last_unfollowed(view.root.as_fd(), Path::new(path))
        };
        let fd = match resolved {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(EngineError::io(
                    format!("resolve {path} in the container"),
                    e,
                ))
            }
        };
        let st = rustix::fs::fstat(&fd).ctx(|| format!("stat {path}"))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let link_target = if ft == FileType::Symlink {
            let t =
                rustix::fs::readlinkat(&fd, "", Vec::new()).ctx(|| format!("read link {path}"))?;
            Some(PathBuf::from(std::ffi::OsStr::new(&*t.to_string_lossy())))
        } else {
            None
        };
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into());
        Ok(Some(PathStat {
            name,
            is_dir: ft == FileType::Directory,
            size: st.st_size as u64,
            mode: st.st_mode,
            mtime: st.st_mtime,
            link_target,
        }))
    }

    /// Streams `path` of the container into `sink`, its top entry named
    /// `as_name` (contents only, when `as_name` is empty and it is a
    /// directory). `follow` follows a symlink at `path` itself.
    pub fn read_path(
        &mut self,
        view: &View,
        path: &str,
        follow: bool,
        as_name: &Path,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        let clean = quai_runtime::safe_path::lexical_clean(Path::new(path));
        let fd = if follow {
            quai_runtime::safe_path::open_in_root(view.root.as_fd(), &clean, OFlags::PATH)
        } else {
            open_last_unfollowed(view.root.as_fd(), &clean)
        }
        .ctx(|| format!("resolve {path} in the container"))?;
        let st = rustix::fs::fstat(&fd).ctx(|| format!("stat {path}"))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory
            && as_name.as_os_str().is_empty()
        {
            let mut links = std::collections::HashMap::new();
            let dir = rustix::fs::openat(
                &fd,
                ".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("open {path}"))?;
            let listing = rustix::fs::openat(
                &dir,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("open {path}"))?;
            let mut names = Vec::new();
            let d = rustix::fs::Dir::read_from(&listing).ctx(|| format!("read {path}"))?;
            for e in d {
                let e = e.ctx(|| format!("read {path}"))?;
                let n = std::ffi::OsStr::new(&*e.file_name().to_string_lossy()).to_os_string();
                if n != "." && n != ".." {
                    names.push(n);
                }
            }
            names.sort();
            for n in names {
                archive::walk_entry(dir.as_fd(), &n, Path::new(&n), sink, &mut links)?;
            }
            return Ok(());
        }
        // The entry itself, named `as_name`, through its parent.
        let parent = clean.parent().unwrap_or(Path::new("/"));
        let name = clean.file_name().map(|n| n.to_os_string());
        let pfd = quai_runtime::safe_path::open_in_root(
            view.root.as_fd(),
            parent,
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .ctx(|| format!("resolve {} in the container", parent.display()))?;
        let mut links = std::collections::HashMap::new();
        match (name, follow) {
            (Some(n), false) => archive::walk_entry(pfd.as_fd(), &n, as_name, sink, &mut links),
            _ => {
                // Followed (or the root itself): walk what `fd` names.
                let holder =
                    rustix::fs::openat(&fd, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty());
                match holder {
                    Ok(dirfd) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        let e = archive::Entry {
                            path: as_name.to_path_buf(),
                            kind: archive::Kind::Dir,
                            mode: st.st_mode & 0o7777,
                            uid: st.st_uid,
                            gid: st.st_gid,
                            mtime: st.st_mtime,
                            size: 0,
                        };
                        sink.entry(&e, None)?;
                        archive::walk_fd(dirfd.as_fd(), as_name, sink)
                    }
                    _ => {
                        let f = quai_runtime::safe_path::open_in_root(
                            view.root.as_fd(),
                            &clean,
                            OFlags::RDONLY,
                        )
                        .ctx(|| format!("open {path}"))?;
                        let e = archive::Entry {
                            path: as_name.to_path_buf(),
                            kind: archive::Kind::File,
                            mode: st.st_mode & 0o7777,
                            uid: st.st_uid,
                            gid: st.st_gid,
                            mtime: st.st_mtime,
                            size: st.st_size as u64,
                        };
                        let mut r = std::io::Read::take(std::fs::File::from(f), e.size);
                        sink.entry(&e, Some(&mut r))
                    }
                }
            }
        }
    }

    /// docker export: the container's file system (no volumes) as a tar.
    pub fn export(&mut self, name_or_id: &str, out: &mut dyn std::io::Write) -> Result<()> {
        let c = self.container(name_or_id)?;
        let view = self.view(&c, false)?;
        let mut sink = archive::TarSink::new(out);
        archive::walk_fd(view.root.as_fd(), Path::new(""), &mut sink)?;
        sink.finish()?;
        Ok(())
    }

    /// docker diff: what changed against the image (`A`dded, `C`hanged,
    /// `D`eleted), from the overlay's upper directory.
    pub fn diff(&mut self, name_or_id: &str) -> Result<Vec<(char, String)>> {
        let c = self.container(name_or_id)?;
        let image = Digest::parse(&c.image_id).map_err(|e| EngineError::Corrupt {
            id: c.id.clone(),
            reason: format!("image id: {e}"),
        })?;
        let lowers: Vec<OwnedFd> = self
            .store
            .layer_dirs(&image)?
            .iter()
            .map(|d| archive::open_dir(d))
            .collect::<Result<_>>()?;
        let upper = self.paths.upper(&c.id);
        let mut out = Vec::new();
        if upper.is_dir() {
            let fd = archive::open_dir(&upper)?;
            diff_walk(fd.as_fd(), Path::new("/"), &lowers, &mut out)?;
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }

    /// docker commit: the container's changes as a new layer on its image.
    ///
    /// docker pauses a running container while its changes are read, so
    /// that they are consistent (`--pause=false` skips that). The pause is
    /// a real one: the row says `paused` (with docker's `pause`/`unpause`
    /// events) so that `ps`/`inspect` do not show a frozen container as
    /// running, and the container's lock is held throughout, so that an
    /// `unpause`, `stop` or `rm` waits for the commit instead of thawing
    /// or removing the container under it. A commit killed while the
    /// container is frozen leaves it recorded as paused, which it is.
    pub fn commit(&mut self, name_or_id: &str, opts: &CommitOptions) -> Result<Digest> {
        let (_lock, c) = self.locked(name_or_id)?;
        let freeze = c.state.status == Status::Running && c.monitor_alive() && opts.pause;
        if !freeze {
            return self.commit_changes(&c, opts);
        }
        quai_runtime::Runtime::new(&self.paths.runtime_root())?.pause(&c.id)?;
        if let Err(e) = self.set_status(&c, Status::Paused, "pause") {
            self.thaw_after_commit(&c);
            return Err(e);
        }
        crate::failpoint::crash_at("commit:frozen");
        let committed = self.commit_changes(&c, opts);
        self.thaw_after_commit(&c);
        self.set_status(&c, Status::Running, "unpause")?;
        committed
    }

    fn thaw_after_commit(&mut self, c: &crate::record::Container) {
        let thawed =
            quai_runtime::Runtime::new(&self.paths.runtime_root()).and_then(|rt| rt.resume(&c.id));
        if let Err(e) = thawed {
            tracing::warn!("thaw container {} after commit: {e}", c.id);
        }
    }

    fn commit_changes(
        &mut self,
        c: &crate::record::Container,
        opts: &CommitOptions,
    ) -> Result<Digest> {
        let base = Digest::parse(&c.image_id).map_err(|e| EngineError::Corrupt {
            id: c.id.clone(),
            reason: format!("image id: {e}"),
        })?;
        let mut config = self.store.config(&base)?;
        let record = self.store.get(&base)?;
        let upper = self.paths.upper(&c.id);
        if !upper.exists() {
            fs::create_dir_all(&upper).at("create", &upper)?;
        }
        let reference = opts
            .reference
            .as_deref()
            .map(|r| quai_image::reference::Reference::parse(r).map(|r| r.with_default_tag()))
            .transpose()
            .map_err(|e| EngineError::invalid(e.to_string()))?;
        let guard = self.store.write_guard()?;
        let mut ingest = self.store.content().ingest(None)?;
        let (diff_id, _) = quai_image::diff::diff_dir(&upper, &mut ingest)?;
        let (layer, _) = ingest.commit()?;
        let mut container_config = serde_json::to_value(&c.def.config)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        // The image keeps the container's settings, not its name-specific ones.
        container_config.remove("Hostname");
        container_config.remove("AttachStdin");
        container_config.remove("AttachStdout");
        container_config.remove("AttachStderr");
        container_config.remove("StdinOnce");
        quai_image::changes::apply_changes(&mut container_config, &opts.changes)?;
        let (secs, nanos) = quai_image::time::now();
        let created = quai_image::time::format_rfc3339(secs, nanos);
        config.created = Some(created.clone());
        config.config = Some(serde_json::Value::Object(container_config));
        config.rootfs.diff_ids.push(diff_id);
        config.history.push(quai_image::spec::History {
            created: Some(created),
            author: opts.author.clone(),
            comment: opts.message.clone(),
            created_by: Some(format!("{} {}", c.def.path, c.def.args.join(" "))),
            empty_layer: false,
        });
        config.author = opts.author.clone().or(config.author);
        config.comment = opts.message.clone();
        config.parent = Some(base.to_string());
        let bytes = serde_json::to_vec(&config)
            .map_err(|e| EngineError::invalid(format!("encode image config: {e}")))?;
        let config_digest = self.store.content().write_bytes(&bytes)?;
        let mut layers: Vec<(Digest, String)> = record
            .layers
            .iter()
            .map(|l| (l.blob.clone(), l.media_type.clone()))
            .collect();
        layers.push((layer, quai_image::spec::media::OCI_LAYER.to_string()));
        let img = quai_image::store::NewImage {
            config: config_digest,
            manifest: None,
            layers,
            tags: reference.into_iter().collect(),
            repo_digests: Vec::new(),
            parent: Some(base.to_string()),
        };
        let id = self.store.commit_image(&img, &guard)?;
        drop(guard);
        let mut attrs = crate::record::container_attributes(c);
        attrs.insert("comment".into(), opts.message.clone().unwrap_or_default());
        crate::record::event(self.conn(), "container", "commit", &c.id, &attrs)?;
        Ok(id)
    }
}

/// docker commit's options.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub reference: Option<String>,
    pub author: Option<String>,
    pub message: Option<String>,
    pub changes: Vec<String>,
    pub pause: bool,
}

/// Opens `path` inside `root` as O_PATH: symlinks on the way are followed
/// (clamped to the root), a symlink at the end is opened itself.
fn open_last_unfollowed(root: std::os::fd::BorrowedFd, path: &Path) -> std::io::Result<OwnedFd> {
    quai_runtime::safe_path::open_in_root(root, path, OFlags::PATH | OFlags::NOFOLLOW)
}

fn in_lowers(lowers: &[OwnedFd], path: &Path) -> bool {
    lowers
        .iter()
        .any(|l| open_last_unfollowed(l.as_fd(), path).is_ok())
}

fn diff_walk(
    dir: std::os::fd::BorrowedFd,
    at: &Path,
    lowers: &[OwnedFd],
    out: &mut Vec<(char, String)>,
) -> Result<()> {
    let listing = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("read {}", at.display()))?;
    let d = rustix::fs::Dir::read_from(&listing).ctx(|| format!("read {}", at.display()))?;
    let mut names = Vec::new();
    for e in d {
        let e = e.ctx(|| format!("read {}", at.display()))?;
        let n = std::ffi::OsStr::new(&*e.file_name().to_string_lossy()).to_os_string();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    for n in names {
        let path = at.join(&n);
        let st = rustix::fs::statat(dir, &n, AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("stat {}", path.display()))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::CharacterDevice && st.st_rdev == 0 {
            out.push(('D', path.display().to_string()));
            continue;
        }
        let kind = if in_lowers(lowers, &path) { 'C' } else { 'A' };
        out.push((kind, path.display().to_string()));
        if ft == FileType::Directory {
            let sub = rustix::fs::openat(
                dir,
                &n,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("open {}", path.display()))?;
            diff_walk(sub.as_fd(), &path, lowers, out)?;
        }
    }
    Ok(())
}
