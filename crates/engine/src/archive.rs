//! Copying trees in and out of containers (`cp`, `export`) without ever
//! following a symlink the container controls: the container side is
//! walked and written through directory descriptors (`openat` with
//! `O_NOFOLLOW`, paths resolved with `RESOLVE_IN_ROOT`).
//!
//! Sources produce [`Entry`]s, depth first (a directory before its
//! contents); sinks consume them: a tar stream, a host directory, or a
//! container directory.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::{EngineError, IoContext, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
    /// A hard link to an earlier entry (relative path).
    Hardlink(PathBuf),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// One file of a tree, named relative to the tree's top.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
}

pub trait Sink {
    /// Takes one entry; `data` is the content of a regular file.
    fn entry(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> Result<()>;
}

fn kind_of(
    st: &rustix::fs::Stat,
    target: impl FnOnce() -> Result<PathBuf>,
) -> Result<Option<Kind>> {
    let ft = FileType::from_raw_mode(st.st_mode);
    let dev = || {
        let rdev = st.st_rdev;
        (rustix::fs::major(rdev), rustix::fs::minor(rdev))
    };
    Ok(Some(match ft {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Symlink(target()?),
        FileType::CharacterDevice => {
            let (a, b) = dev();
            Kind::Char(a, b)
        }
        FileType::BlockDevice => {
            let (a, b) = dev();
            Kind::Block(a, b)
        }
        FileType::Fifo => Kind::Fifo,
        // Sockets (and unknown types) are not archived, as in docker.
        _ => return Ok(None),
    }))
}

/// Walks the tree at `dir` (a descriptor on the container side) and feeds
/// `sink`; entries are named `prefix/...`. No symlink is followed.
pub fn walk_fd(dir: BorrowedFd, prefix: &Path, sink: &mut dyn Sink) -> Result<()> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    walk_dir(dir, prefix, sink, &mut links)
}

fn walk_dir(
    dir: BorrowedFd,
    prefix: &Path,
    sink: &mut dyn Sink,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let listing = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open directory {}", prefix.display()))?;
    let mut names: Vec<OsString> = Vec::new();
    let d = rustix::fs::Dir::read_from(&listing)
        .ctx(|| format!("read directory {}", prefix.display()))?;
    for e in d {
        let e = e.ctx(|| format!("read directory {}", prefix.display()))?;
        let name = OsStr::from_bytes(e.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        names.push(name.to_os_string());
    }
    names.sort();
    for name in names {
        let path = prefix.join(&name);
        walk_entry(dir, &name, &path, sink, links)?;
    }
    Ok(())
}

/// Emits `name` (inside `dir`) as `path`, and its contents if a directory.
pub fn walk_entry(
    dir: BorrowedFd,
    name: &OsStr,
    path: &Path,
    sink: &mut dyn Sink,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .ctx(|| format!("stat {}", path.display()))?;
    let Some(mut kind) = kind_of(&st, || {
        let t = rustix::fs::readlinkat(dir, name, Vec::new())
            .ctx(|| format!("read link {}", path.display()))?;
        Ok(PathBuf::from(OsStr::from_bytes(t.as_bytes())))
    })?
    else {
        return Ok(());
    };
    if kind == Kind::File && st.st_nlink > 1 {
        let key = (st.st_dev, st.st_ino);
        match links.get(&key) {
            Some(first) => kind = Kind::Hardlink(first.clone()),
            None => {
                links.insert(key, path.to_path_buf());
            }
        }
    }
    let entry = Entry {
        path: path.to_path_buf(),
        kind: kind.clone(),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime,
        size: if kind == Kind::File {
            st.st_size as u64
        } else {
            0
        },
    };
    match kind {
        Kind::Dir => {
            sink.entry(&entry, None)?;
            let sub = rustix::fs::openat(
                dir,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("open {}", path.display()))?;
            walk_dir(sub.as_fd(), path, sink, links)
        }
        Kind::File => {
            let fd = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("open {}", path.display()))?;
            let mut f = File::from(fd).take(entry.size);
            sink.entry(&entry, Some(&mut f))
        }
        _ => sink.entry(&entry, None),
    }
}

/// Walks a host path (the user's side of `cp`): `follow` follows a
/// symlink at the top (`-L`); nothing below is followed.
pub fn walk_host(path: &Path, name: &Path, follow: bool, sink: &mut dyn Sink) -> Result<()> {
    let meta = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    }
    .at("stat", path)?;
    let mut links = HashMap::new();
    walk_host_entry(path, name, &meta, sink, &mut links)
}

fn walk_host_entry(
    path: &Path,
    name: &Path,
    meta: &fs::Metadata,
    sink: &mut dyn Sink,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let ft = meta.file_type();
    let mut kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_symlink() {
        Kind::Symlink(fs::read_link(path).at("read link", path)?)
    } else if ft.is_char_device() || ft.is_block_device() {
        let rdev = meta.rdev();
        let (a, b) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        if ft.is_char_device() {
            Kind::Char(a, b)
        } else {
            Kind::Block(a, b)
        }
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        return Ok(());
    };
    if kind == Kind::File && meta.nlink() > 1 {
        let key = (meta.dev(), meta.ino());
        match links.get(&key) {
            Some(first) => kind = Kind::Hardlink(first.clone()),
            None => {
                links.insert(key, name.to_path_buf());
            }
        }
    }
    let entry = Entry {
        path: name.to_path_buf(),
        kind: kind.clone(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime(),
        size: if kind == Kind::File { meta.len() } else { 0 },
    };
    match kind {
        Kind::Dir => {
            sink.entry(&entry, None)?;
            let mut children: Vec<_> = fs::read_dir(path)
                .at("read directory", path)?
                .collect::<io::Result<_>>()
                .at("read directory", path)?;
            children.sort_by_key(|c| c.file_name());
            for c in children {
                let m = fs::symlink_metadata(c.path()).at("stat", &c.path())?;
                walk_host_entry(&c.path(), &name.join(c.file_name()), &m, sink, links)?;
            }
            Ok(())
        }
        Kind::File => {
            let mut f = File::open(path).at("open", path)?.take(entry.size);
            sink.entry(&entry, Some(&mut f))
        }
        _ => sink.entry(&entry, None),
    }
}

/// Reads a tar stream (`cp - CONTAINER:DIR`) as entries.
pub fn read_tar(input: impl Read, sink: &mut dyn Sink) -> Result<()> {
    let mut archive = tar::Archive::new(input);
    for e in archive.entries().ctx(|| "read the tar stream".into())? {
        let mut e = e.ctx(|| "read the tar stream".into())?;
        let h = e.header().clone();
        let path = e
            .path()
            .ctx(|| "read a tar entry name".into())?
            .into_owned();
        let link = || -> Result<PathBuf> { Ok(e_link(&h)?.unwrap_or_default()) };
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Symlink => Kind::Symlink(link()?),
            tar::EntryType::Link => Kind::Hardlink(link()?),
            tar::EntryType::Char => Kind::Char(
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            ),
            tar::EntryType::Block => Kind::Block(
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            ),
            tar::EntryType::Fifo => Kind::Fifo,
            // PAX/GNU metadata entries are consumed by the tar crate.
            _ => continue,
        };
        let entry = Entry {
            path,
            kind: kind.clone(),
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mtime: h.mtime().unwrap_or(0) as i64,
            size: h.size().unwrap_or(0),
        };
        if kind == Kind::File {
            sink.entry(&entry, Some(&mut e))?;
        } else {
            sink.entry(&entry, None)?;
        }
    }
    Ok(())
}

fn e_link(h: &tar::Header) -> Result<Option<PathBuf>> {
    Ok(h.link_name()
        .map_err(|e| EngineError::io("read a tar link name", e))?
        .map(|p| p.into_owned()))
}

/// Writes entries as a tar stream.
pub struct TarSink<W: Write> {
    pub builder: tar::Builder<W>,
}

impl<W: Write> TarSink<W> {
    pub fn new(w: W) -> TarSink<W> {
        TarSink {
            builder: tar::Builder::new(w),
        }
    }

    pub fn finish(mut self) -> Result<W> {
        self.builder
            .finish()
            .ctx(|| "finish the tar stream".into())?;
        self.builder
            .into_inner()
            .ctx(|| "finish the tar stream".into())
    }
}

impl<W: Write> Sink for TarSink<W> {
    fn entry(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid as u64);
        h.set_gid(e.gid as u64);
        h.set_mtime(e.mtime.max(0) as u64);
        h.set_size(0);
        let what = || format!("archive {}", e.path.display());
        let mut name = e.path.clone();
        match &e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                let mut s = name.into_os_string();
                s.push("/");
                name = PathBuf::from(s);
                self.builder
                    .append_data(&mut h, &name, io::empty())
                    .ctx(what)
            }
            Kind::File => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(e.size);
                let data = data.ok_or_else(|| EngineError::invalid("a file without content"))?;
                self.builder.append_data(&mut h, &name, data).ctx(what)
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                self.builder.append_link(&mut h, &name, t).ctx(what)
            }
            Kind::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                self.builder.append_link(&mut h, &name, t).ctx(what)
            }
            Kind::Char(a, b) | Kind::Block(a, b) => {
                h.set_entry_type(if matches!(e.kind, Kind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_device_major(*a).ctx(what)?;
                h.set_device_minor(*b).ctx(what)?;
                self.builder
                    .append_data(&mut h, &name, io::empty())
                    .ctx(what)
            }
            Kind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                self.builder
                    .append_data(&mut h, &name, io::empty())
                    .ctx(what)
            }
        }
    }
}

/// A relative entry path made safe: no root, no `..` above the top.
fn relative_clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Writes entries into a directory of the container: `root` is the
/// container's root, `base` the destination directory inside it. Every
/// path is resolved inside `root`; nothing is written through a symlink.
pub struct ContainerSink<'a> {
    pub root: BorrowedFd<'a>,
    pub base: PathBuf,
    /// Keep the entries' owners (`cp -a`); else root owns them.
    pub keep_owner: bool,
}

impl Sink for ContainerSink<'_> {
    fn entry(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> Result<()> {
        let rel = relative_clean(&e.path).ok_or_else(|| {
            EngineError::invalid(format!("entry {} leaves the destination", e.path.display()))
        })?;
        let target = self.base.join(&rel);
        let shown = target.display().to_string();
        let (parent, name) = quai_runtime::safe_path::ensure_parent_in_root(
            self.root,
            &target,
            Mode::from_raw_mode(0o755),
        )
        .ctx(|| format!("resolve {shown} in the container"))?;
        let (uid, gid) = if self.keep_owner {
            (e.uid, e.gid)
        } else {
            (0, 0)
        };
        let existing = rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let is_dir =
            |st: &rustix::fs::Stat| FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        match &e.kind {
            Kind::Dir => {
                match existing {
                    Some(st) if is_dir(&st) => {}
                    Some(_) => {
                        return Err(EngineError::invalid(format!(
                            "cannot overwrite non-directory {shown} with directory"
                        )))
                    }
                    None => rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(e.mode))
                        .ctx(|| format!("create directory {shown}"))?,
                }
                let fd = rustix::fs::openat(
                    &parent,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| format!("open {shown}"))?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(e.mode))
                    .ctx(|| format!("chmod {shown}"))?;
                rustix::fs::fchown(
                    &fd,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .ctx(|| format!("chown {shown}"))?;
                return Ok(());
            }
            _ => {
                if let Some(st) = existing {
                    if is_dir(&st) {
                        return Err(EngineError::invalid(format!(
                            "cannot overwrite directory {shown} with non-directory"
                        )));
                    }
                    rustix::fs::unlinkat(&parent, &name, AtFlags::empty())
                        .ctx(|| format!("replace {shown}"))?;
                }
            }
        }
        match &e.kind {
            Kind::File => {
                let fd = rustix::fs::openat(
                    &parent,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .ctx(|| format!("create {shown}"))?;
                let mut f = File::from(fd);
                if let Some(d) = data {
                    io::copy(d, &mut f).ctx(|| format!("write {shown}"))?;
                }
                rustix::fs::fchown(
                    &f,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .ctx(|| format!("chown {shown}"))?;
                f.set_permissions(fs::Permissions::from_mode(e.mode))
                    .ctx(|| format!("chmod {shown}"))?;
            }
            Kind::Symlink(t) => {
                rustix::fs::symlinkat(t.as_os_str(), &parent, &name)
                    .ctx(|| format!("create symlink {shown}"))?;
                rustix::fs::chownat(
                    &parent,
                    &name,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .ctx(|| format!("chown {shown}"))?;
            }
            Kind::Hardlink(t) => {
                let t = relative_clean(t).ok_or_else(|| {
                    EngineError::invalid(format!("link {shown} leaves the destination"))
                })?;
                let src = quai_runtime::safe_path::open_in_root_nofollow(
                    self.root,
                    &self.base.join(t),
                    OFlags::PATH,
                )
                .ctx(|| format!("find the target of hard link {shown}"))?;
                rustix::fs::linkat(&src, "", &parent, &name, AtFlags::EMPTY_PATH)
                    .ctx(|| format!("create hard link {shown}"))?;
            }
            Kind::Char(..) | Kind::Block(..) | Kind::Fifo => {
                let (ft, dev) = match e.kind {
                    Kind::Char(a, b) => (FileType::CharacterDevice, rustix::fs::makedev(a, b)),
                    Kind::Block(a, b) => (FileType::BlockDevice, rustix::fs::makedev(a, b)),
                    _ => (FileType::Fifo, 0),
                };
                rustix::fs::mknodat(&parent, &name, ft, Mode::from_raw_mode(e.mode), dev)
                    .ctx(|| format!("create {shown}"))?;
            }
            Kind::Dir => {}
        }
        Ok(())
    }
}

/// Writes entries into a host directory (`cp CONTAINER:SRC DEST`): files
/// belong to the user running `cp`, as with docker.
pub struct HostSink {
    pub base: PathBuf,
}

impl Sink for HostSink {
    fn entry(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> Result<()> {
        let rel = relative_clean(&e.path).ok_or_else(|| {
            EngineError::invalid(format!("entry {} leaves the destination", e.path.display()))
        })?;
        let target = self.base.join(&rel);
        // Entries come parents first from our own walks; a parent that is
        // not a real directory (a symlink) would redirect the write.
        if let Some(parent) = target.parent() {
            let m = fs::symlink_metadata(parent).at("stat", parent)?;
            if !m.is_dir() {
                return Err(EngineError::invalid(format!(
                    "{} is not a directory",
                    parent.display()
                )));
            }
        }
        let existing = fs::symlink_metadata(&target).ok();
        match &e.kind {
            Kind::Dir => {
                match existing {
                    Some(m) if m.is_dir() => {}
                    Some(_) => {
                        return Err(EngineError::invalid(format!(
                            "cannot overwrite non-directory {} with directory",
                            target.display()
                        )))
                    }
                    None => fs::create_dir(&target).at("create directory", &target)?,
                }
                fs::set_permissions(&target, fs::Permissions::from_mode(e.mode))
                    .at("chmod", &target)?;
                return Ok(());
            }
            _ => {
                if let Some(m) = existing {
                    if m.is_dir() {
                        return Err(EngineError::invalid(format!(
                            "cannot overwrite directory {} with non-directory",
                            target.display()
                        )));
                    }
                    fs::remove_file(&target).at("replace", &target)?;
                }
            }
        }
        match &e.kind {
            Kind::File => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .at("create", &target)?;
                if let Some(d) = data {
                    io::copy(d, &mut f).at("write", &target)?;
                }
                f.set_permissions(fs::Permissions::from_mode(e.mode))
                    .at("chmod", &target)?;
            }
            Kind::Symlink(t) => {
                std::os::unix::fs::symlink(t, &target).at("create symlink", &target)?
            }
            Kind::Hardlink(t) => {
                let t = relative_clean(t)
                    .ok_or_else(|| EngineError::invalid("hard link leaves the destination"))?;
                fs::hard_link(self.base.join(t), &target).at("create hard link", &target)?;
            }
            Kind::Char(a, b) | Kind::Block(a, b) => {
                let ft = if matches!(e.kind, Kind::Char(..)) {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &target,
                    ft,
                    Mode::from_raw_mode(e.mode),
                    rustix::fs::makedev(*a, *b),
                )
                .at("create", &target)?;
            }
            Kind::Fifo => rustix::fs::mknodat(
                rustix::fs::CWD,
                &target,
                FileType::Fifo,
                Mode::from_raw_mode(e.mode),
                0,
            )
            .at("create", &target)?,
            Kind::Dir => {}
        }
        Ok(())
    }
}

/// Renames the top entry of a stream (docker cp's "copy SRC as DEST").
pub struct Rebase<'a> {
    pub inner: &'a mut dyn Sink,
    pub from: PathBuf,
    pub to: PathBuf,
}

impl Sink for Rebase<'_> {
    fn entry(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> Result<()> {
        let mut e = e.clone();
        if let Ok(rest) = e.path.strip_prefix(&self.from) {
            e.path = self.to.join(rest);
        }
        if let Kind::Hardlink(t) = &e.kind {
            if let Ok(rest) = t.strip_prefix(&self.from) {
                e.kind = Kind::Hardlink(self.to.join(rest));
            }
        }
        self.inner.entry(&e, data)
    }
}

/// Opens `dir` for walking, as an O_PATH descriptor.
pub fn open_dir(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at("open", dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<(String, Kind)>);
    impl Sink for Collect {
        fn entry(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> Result<()> {
            if let Some(d) = data {
                let mut s = String::new();
                d.read_to_string(&mut s).unwrap();
            }
            self.0.push((e.path.display().to_string(), e.kind.clone()));
            Ok(())
        }
    }

    #[test]
    fn walks_without_following_and_round_trips_through_tar() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("d")).unwrap();
        fs::write(src.join("d/f"), "data").unwrap();
        fs::hard_link(src.join("d/f"), src.join("d/g")).unwrap();
        std::os::unix::fs::symlink("/etc", src.join("link")).unwrap();
        let fd = open_dir(&src).unwrap();
        let mut c = Collect(Vec::new());
        walk_fd(fd.as_fd(), Path::new("top"), &mut c).unwrap();
        assert_eq!(
            c.0,
            vec![
                ("top/d".into(), Kind::Dir),
                ("top/d/f".into(), Kind::File),
                ("top/d/g".into(), Kind::Hardlink("top/d/f".into())),
                ("top/link".into(), Kind::Symlink("/etc".into())),
            ]
        );
        let mut tar = TarSink::new(Vec::new());
        walk_fd(fd.as_fd(), Path::new("top"), &mut tar).unwrap();
        let bytes = tar.finish().unwrap();
        let out = tmp.path().join("out");
        // The walk emits what is below its start, not the start itself.
        fs::create_dir_all(out.join("top")).unwrap();
        let mut host = HostSink { base: out.clone() };
        read_tar(&bytes[..], &mut host).unwrap();
        assert_eq!(fs::read_to_string(out.join("top/d/g")).unwrap(), "data");
        assert_eq!(
            fs::read_link(out.join("top/link")).unwrap(),
            Path::new("/etc")
        );
    }

    #[test]
    fn container_writes_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir(&outside).unwrap();
        // A symlink planted by the container pointing out of its root.
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let fd = open_dir(&root).unwrap();
        let mut sink = ContainerSink {
            root: fd.as_fd(),
            base: PathBuf::from("/escape"),
            keep_owner: false,
        };
        let e = Entry {
            path: "pwned".into(),
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 2,
        };
        sink.entry(&e, Some(&mut &b"hi"[..])).unwrap();
        assert!(!outside.join("pwned").exists(), "wrote through the symlink");
        // It landed inside the root, where the clamped symlink points.
        assert!(fs::read_dir(&root).unwrap().count() >= 2);
        let bad = Entry {
            path: "../../x".into(),
            ..e
        };
        assert!(sink.entry(&bad, Some(&mut &b"hi"[..])).is_err());
    }
}
