//! TEMPORARY stand-in for the rootfs module (branch `runtime-rootfs`), with
//! the same functions and signatures, so that the lifecycle can be tested
//! end to end before that module is merged. It covers the common mounts of a
//! busybox bundle only; the real module replaces this file at merge time (the
//! lifecycle calls nothing else of it).

use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Spec;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{
    mount, mount_bind, mount_bind_recursive, mount_change, mount_move, mount_remount, move_mount,
    open_tree, unmount, MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags,
    UnmountFlags,
};

#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct RootfsError {
    what: String,
    reason: String,
}

fn err(what: impl Into<String>, reason: impl ToString) -> RootfsError {
    RootfsError {
        what: what.into(),
        reason: reason.to_string(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct RootfsOptions {
    pub no_pivot: bool,
}

pub fn validate(spec: &Spec, _bundle: &Path) -> Result<(), RootfsError> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = m.destination();
        if !dest.is_absolute() || dest.components().any(|c| c == Component::ParentDir) {
            return Err(err(
                format!("mounts[{i}].destination"),
                format!("{} is not an absolute path without '..'", dest.display()),
            ));
        }
    }
    Ok(())
}

fn inside(rootfs: &Path, dest: &Path) -> PathBuf {
    rootfs.join(dest.strip_prefix("/").unwrap_or(dest))
}

fn parse_options(options: &[String]) -> (MountFlags, bool, bool, Vec<String>) {
    let mut flags = MountFlags::empty();
    let (mut bind, mut recursive) = (false, false);
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= MountFlags::RDONLY,
            "rw" | "defaults" => {}
            "nosuid" => flags |= MountFlags::NOSUID,
            "nodev" => flags |= MountFlags::NODEV,
            "noexec" => flags |= MountFlags::NOEXEC,
            "relatime" => flags |= MountFlags::RELATIME,
            "noatime" => flags |= MountFlags::NOATIME,
            "strictatime" => flags |= MountFlags::STRICTATIME,
            "bind" => bind = true,
            "rbind" => (bind, recursive) = (true, true),
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, bind, recursive, data)
}

/// Remounts `target` read-only keeping the flags a user namespace may not
/// change (nosuid, nodev, noexec, atime).
fn remount_read_only(target: &Path) -> rustix::io::Result<()> {
    use rustix::fs::StatVfsMountFlags as V;
    let current = rustix::fs::statvfs(target)?.f_flag;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY;
    for (v, m) in [
        (V::NOSUID, MountFlags::NOSUID),
        (V::NODEV, MountFlags::NODEV),
        (V::NOEXEC, MountFlags::NOEXEC),
        (V::NOATIME, MountFlags::NOATIME),
        (V::NODIRATIME, MountFlags::NODIRATIME),
        (V::RELATIME, MountFlags::RELATIME),
    ] {
        if current.contains(v) {
            flags |= m;
        }
    }
    mount_remount(target, flags, "")
}

pub fn prepare(spec: &Spec, rootfs: &Path, _opts: &RootfsOptions) -> Result<(), RootfsError> {
    mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| err("make / a recursive slave", e))?;
    mount_bind_recursive(rootfs, rootfs)
        .map_err(|e| err(format!("bind {}", rootfs.display()), e))?;
    for m in spec.mounts().iter().flatten() {
        let target = inside(rootfs, m.destination());
        let (flags, bind, recursive, data) = parse_options(m.options().as_deref().unwrap_or(&[]));
        let source = m.source().clone().unwrap_or_default();
        if bind || m.typ().as_deref() == Some("bind") {
            if source.is_dir() {
                fs::create_dir_all(&target)
                    .map_err(|e| err(format!("mkdir {}", target.display()), e))?;
            } else {
                if let Some(p) = target.parent() {
                    fs::create_dir_all(p).map_err(|e| err(format!("mkdir {}", p.display()), e))?;
                }
                if !target.exists() {
                    fs::write(&target, b"")
                        .map_err(|e| err(format!("create {}", target.display()), e))?;
                }
            }
            let r = if recursive {
                mount_bind_recursive(&source, &target)
            } else {
                mount_bind(&source, &target)
            };
            r.map_err(|e| {
                err(
                    format!("bind {} on {}", source.display(), target.display()),
                    e,
                )
            })?;
            if flags.contains(MountFlags::RDONLY) {
                remount_read_only(&target)
                    .map_err(|e| err(format!("remount {}", target.display()), e))?;
            }
            continue;
        }
        fs::create_dir_all(&target).map_err(|e| err(format!("mkdir {}", target.display()), e))?;
        let fstype = m.typ().clone().unwrap_or_default();
        if fstype == "cgroup" {
            // The stand-in shows the host's hierarchy read-only.
            mount_bind_recursive("/sys/fs/cgroup", &target)
                .map_err(|e| err(format!("bind cgroups on {}", target.display()), e))?;
            let _ = remount_read_only(&target);
            continue;
        }
        let data = std::ffi::CString::new(data.join(",")).map_err(|e| err("mount options", e))?;
        mount(&source, &target, fstype.as_str(), flags, data.as_c_str())
            .map_err(|e| err(format!("mount {fstype} on {}", target.display()), e))?;
    }
    let dev = rootfs.join("dev");
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(name);
        if !target.exists() {
            fs::write(&target, b"").map_err(|e| err(format!("create {}", target.display()), e))?;
        }
        mount_bind(Path::new("/dev").join(name), &target)
            .map_err(|e| err(format!("bind /dev/{name}"), e))?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let _ = std::os::unix::fs::symlink(to, dev.join(link));
    }
    Ok(())
}

pub fn setup_console(pty_slave: BorrowedFd) -> Result<(), RootfsError> {
    let console = Path::new("/dev/console");
    if fs::symlink_metadata(console).is_err() {
        fs::write(console, b"").map_err(|e| err("create /dev/console", e))?;
    }
    let tree = open_tree(
        pty_slave,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| err("clone the console pty", e))?;
    let cwd = rustix::fs::open(
        "/dev",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("open /dev", e))?;
    move_mount(
        tree.as_fd(),
        "",
        cwd.as_fd(),
        "console",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| err("mount the pty on /dev/console", e))
}

pub fn enter(rootfs: &Path, opts: &RootfsOptions) -> Result<(), RootfsError> {
    std::env::set_current_dir(rootfs).map_err(|e| err(format!("chdir {}", rootfs.display()), e))?;
    if opts.no_pivot {
        mount_move(".", "/").map_err(|e| err("move the root file system to /", e))?;
        rustix::process::chroot(".").map_err(|e| err("chroot", e))?;
    } else {
        rustix::process::pivot_root(".", ".").map_err(|e| err("pivot_root", e))?;
        mount_change(
            ".",
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
        )
        .map_err(|e| err("make the old root a slave", e))?;
        unmount(".", UnmountFlags::DETACH).map_err(|e| err("detach the old root", e))?;
    }
    std::env::set_current_dir("/").map_err(|e| err("chdir /", e))
}

pub fn finalize(spec: &Spec, _opts: &RootfsOptions) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    for path in linux
        .and_then(|l| l.masked_paths().clone())
        .into_iter()
        .flatten()
    {
        let p = Path::new(&path);
        match fs::metadata(p) {
            Ok(m) if m.is_dir() => mount("tmpfs", p, "tmpfs", MountFlags::RDONLY, None)
                .map_err(|e| err(format!("mask {path}"), e))?,
            Ok(_) => mount_bind("/dev/null", p).map_err(|e| err(format!("mask {path}"), e))?,
            Err(_) => {}
        }
    }
    for path in linux
        .and_then(|l| l.readonly_paths().clone())
        .into_iter()
        .flatten()
    {
        let p = Path::new(&path);
        if p.exists() {
            mount_bind_recursive(p, p).map_err(|e| err(format!("bind {path}"), e))?;
            remount_read_only(p).map_err(|e| err(format!("make {path} read-only"), e))?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount_read_only(Path::new("/")).map_err(|e| err("make / read-only", e))?;
    }
    Ok(())
}
