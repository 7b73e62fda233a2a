//! The container's `/dev`: device nodes (default ones and `linux.devices`),
//! the `/dev/ptmx` symlink into its devpts, and the `/dev/fd`-style links.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use super::error::SysContext;
use super::mount_api;
use super::options::MountKind;
use super::plan::{DevicePlan, MountPlan};
use super::RootfsError;
use crate::safe_path::{self, Kind};

/// runc sets up `/dev` unless the config binds a whole `/dev` from elsewhere.
pub(super) fn needs_setup(mounts: &[MountPlan]) -> bool {
    !mounts.iter().any(|m| {
        matches!(m.kind, MountKind::Bind { .. }) && m.clean_destination == Path::new("/dev")
    })
}

pub(super) fn create_all(root: BorrowedFd<'_>, devices: &[DevicePlan]) -> Result<(), RootfsError> {
    for device in devices {
        let (dir, name) =
            safe_path::ensure_parent_in_root(root, &device.path, Mode::from_raw_mode(0o755))
                .or_sys(|| {
                    format!(
                        "create the directory of device {} ({})",
                        device.path.display(),
                        device.field
                    )
                })?;
        create_node(dir.as_fd(), &name, device)?;
    }
    Ok(())
}

fn create_node(dir: BorrowedFd<'_>, name: &OsStr, device: &DevicePlan) -> Result<(), RootfsError> {
    let what = || format!("device {} ({})", device.path.display(), device.field);
    // Whatever the root file system already has under that name (a node
    // from the image, or a planted file or symlink) is replaced, unless it
    // already is the right device.
    match safe_path::open_entry(dir, name, OFlags::PATH) {
        Ok(existing) => {
            if is_device(existing.as_fd(), device).or_sys(|| format!("stat {}", what()))? {
                return Ok(());
            }
            if safe_path::file_type(existing.as_fd()).or_sys(|| format!("stat {}", what()))?
                == FileType::Directory
            {
                return Err(RootfsError::unsafe_path(
                    "create device",
                    &device.path,
                    "a directory is in the way",
                ));
            }
            rfs::unlinkat(dir, name, AtFlags::empty())
                .or_sys(|| format!("remove what is in the way of {}", what()))?;
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            rfs::unlinkat(dir, name, AtFlags::empty())
                .or_sys(|| format!("remove the symlink in the way of {}", what()))?;
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(RootfsError::sys(format!("look up {}", what()), e)),
    }

    // The umask must not trim the mode the config asks for.
    let old_umask = rustix::process::umask(Mode::empty());
    let made = rfs::mknodat(
        dir,
        name,
        device.file_type,
        Mode::from_raw_mode(device.mode),
        rfs::makedev(device.major, device.minor),
    );
    rustix::process::umask(old_umask);
    match made {
        Ok(()) => {}
        // No mknod in a user namespace: bind the host's node instead.
        Err(Errno::PERM) => return bind_from_host(dir, name, device),
        Err(e) => return Err(RootfsError::sys(format!("mknod {}", what()), e)),
    }
    let node = safe_path::open_entry(dir, name, OFlags::PATH)
        .or_sys(|| format!("open the new {}", what()))?;
    if !is_device(node.as_fd(), device).or_sys(|| format!("stat {}", what()))? {
        return Err(RootfsError::unsafe_path(
            "set up device",
            &device.path,
            "the node was replaced while it was being created",
        ));
    }
    rfs::chownat(
        &node,
        "",
        Some(Uid::from_raw(device.uid)),
        Some(Gid::from_raw(device.gid)),
        AtFlags::EMPTY_PATH,
    )
    .or_sys(|| format!("chown {} to {}:{}", what(), device.uid, device.gid))
}

fn is_device(fd: BorrowedFd<'_>, device: &DevicePlan) -> std::io::Result<bool> {
    let st = rfs::fstat(fd)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    Ok(kind == device.file_type
        && (kind == FileType::Fifo
            || (rfs::major(st.st_rdev), rfs::minor(st.st_rdev)) == (device.major, device.minor)))
}

fn bind_from_host(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    device: &DevicePlan,
) -> Result<(), RootfsError> {
    let what = || format!("device {} ({})", device.path.display(), device.field);
    let host =
        rfs::open(&device.path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).or_sys(|| {
            format!(
                "open the host's {} to bind it (creating device nodes is not permitted here)",
                device.path.display()
            )
        })?;
    if !is_device(host.as_fd(), device).or_sys(|| format!("stat the host's {}", what()))? {
        return Err(RootfsError::unsafe_path(
            "bind the host's node for",
            &device.path,
            format!(
                "it is not the device {}:{} the config asks for",
                device.major, device.minor
            ),
        ));
    }
    let target = safe_path::create_file_entry(dir, name, Mode::empty())
        .or_sys(|| format!("create the mount point of {}", what()))?;
    let tree = mount_api::clone_tree(host.as_fd(), false)
        .or_sys(|| format!("clone the host's {}", device.path.display()))?;
    mount_api::attach(tree.as_fd(), target.as_fd()).or_sys(|| format!("bind {}", what()))
}

/// `/dev/ptmx` is a symlink to the multiplexer of the container's own devpts.
pub(super) fn link_ptmx(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let dev = dev_dir(root)?;
    match rfs::unlinkat(&dev, "ptmx", AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(RootfsError::sys("remove /dev/ptmx", e)),
    }
    rfs::symlinkat("pts/ptmx", &dev, "ptmx").or_sys(|| "link /dev/ptmx to pts/ptmx".to_string())
}

/// `/dev/fd`, `/dev/stdin`, `/dev/stdout`, `/dev/stderr` (and `/dev/core`
/// when the kernel has `/proc/kcore`). Existing entries are left alone.
pub(super) fn link_standard(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let dev = dev_dir(root)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match rfs::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(RootfsError::sys(format!("link /dev/{name} to {target}"), e)),
        }
    }
    Ok(())
}

fn dev_dir(root: BorrowedFd<'_>) -> Result<OwnedFd, RootfsError> {
    let dev = safe_path::ensure_in_root(
        root,
        Path::new("/dev"),
        Kind::Directory,
        Mode::from_raw_mode(0o755),
    )
    .or_sys(|| "create /dev".to_string())?;
    safe_path::require_directory(dev.as_fd()).or_sys(|| "open /dev".to_string())?;
    Ok(dev)
}
