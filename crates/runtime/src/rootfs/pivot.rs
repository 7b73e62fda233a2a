//! Making the rootfs a private mount tree and switching the process into it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{mount_change, unmount, MountPropagationFlags, UnmountFlags};

use super::error::SysContext;
use super::mount_api::{self, Propagation, PropagationType};
use super::mountinfo;
use super::RootfsError;
use crate::safe_path;

fn propagation_flags(p: Propagation) -> MountPropagationFlags {
    let mut flags = match p.kind {
        PropagationType::Shared => MountPropagationFlags::SHARED,
        PropagationType::Slave => MountPropagationFlags::DOWNSTREAM,
        PropagationType::Private => MountPropagationFlags::PRIVATE,
        PropagationType::Unbindable => MountPropagationFlags::UNBINDABLE,
    };
    if p.recursive {
        flags |= MountPropagationFlags::REC;
    }
    flags
}

/// The default of runc: nothing mounted in the container propagates back to
/// the host, host mounts still propagate in.
const DEFAULT_ROOT_PROPAGATION: Propagation = Propagation {
    kind: PropagationType::Slave,
    recursive: true,
};

/// Applies `linux.rootfsPropagation` (default rslave) to the whole mount
/// namespace, makes the mount holding the rootfs private (or slave) so that
/// binding the rootfs neither leaks to the host nor stops `pivot_root`, and
/// binds the rootfs onto itself (pivot_root needs a mount point). Returns the
/// root of that bind, the fd every later lookup starts from.
pub(super) fn bind_rootfs(
    rootfs: &Path,
    propagation: Option<Propagation>,
) -> Result<OwnedFd, RootfsError> {
    let wanted = propagation.unwrap_or(DEFAULT_ROOT_PROPAGATION);
    mount_change("/", propagation_flags(wanted)).or_sys(|| format!("make / {wanted}"))?;

    let rootfs = std::fs::canonicalize(rootfs)
        .or_sys(|| format!("resolve the root file system {}", rootfs.display()))?;
    let parent_flags = if wanted.kind == PropagationType::Slave {
        MountPropagationFlags::DOWNSTREAM
    } else {
        MountPropagationFlags::PRIVATE
    };
    // mount(2) says EINVAL when the path is not a mount point: walk up to the
    // mount that holds the rootfs.
    let mut path = rootfs.as_path();
    loop {
        match mount_change(path, parent_flags) {
            Ok(()) => break,
            Err(Errno::INVAL) if path != Path::new("/") => {
                path = path.parent().unwrap_or(Path::new("/"));
            }
            Err(e) => {
                return Err(RootfsError::sys(
                    format!(
                        "change the propagation of the mount holding {}",
                        path.display()
                    ),
                    e,
                ))
            }
        }
    }

    let tree = mount_api::clone_path(&rootfs, true)
        .or_sys(|| format!("clone the root file system {}", rootfs.display()))?;
    let target = rfs::open(
        &rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .or_sys(|| format!("open the root file system {}", rootfs.display()))?;
    mount_api::attach(tree.as_fd(), target.as_fd())
        .or_sys(|| format!("bind the root file system {} onto itself", rootfs.display()))?;
    Ok(tree)
}

/// Without a mount namespace of its own the container shares the runtime's:
/// the host's propagation is left alone, and the rootfs is bound onto itself
/// as a private tree, so that every mount made for the container lands on
/// that one bind (detached as a whole by `delete`) and none propagates to
/// the rootfs' original mount or its peers.
pub(super) fn bind_rootfs_in_host_namespace(rootfs: &Path) -> Result<OwnedFd, RootfsError> {
    let rootfs = std::fs::canonicalize(rootfs)
        .or_sys(|| format!("resolve the root file system {}", rootfs.display()))?;
    let tree = mount_api::clone_path(&rootfs, true)
        .or_sys(|| format!("clone the root file system {}", rootfs.display()))?;
    mount_api::set_propagation(
        tree.as_fd(),
        Propagation {
            kind: PropagationType::Private,
            recursive: true,
        },
    )
    .or_sys(|| format!("make the clone of {} private", rootfs.display()))?;
    let target = rfs::open(
        &rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .or_sys(|| format!("open the root file system {}", rootfs.display()))?;
    mount_api::attach(tree.as_fd(), target.as_fd())
        .or_sys(|| format!("bind the root file system {} onto itself", rootfs.display()))?;
    Ok(tree)
}

/// Enters the prepared root by chroot alone: in the runtime's own mount
/// namespace, neither pivot_root nor a move onto `/` may touch the host.
pub(super) fn chroot_into(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    rustix::process::fchdir(root).or_sys(|| "chdir into the new root".to_string())?;
    rustix::process::chroot(".").or_sys(|| "chroot into the new root".to_string())?;
    rustix::process::chdir("/").or_sys(|| "chdir to the new /".to_string())
}

/// `pivot_root(".", ".")` in the new root, then the old root, stacked on top
/// of it, is made rslave (so the unmount cannot reach the host) and detached.
pub(super) fn pivot(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let old_root = rfs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .or_sys(|| "open the old root".to_string())?;
    rustix::process::fchdir(root).or_sys(|| "chdir into the new root".to_string())?;
    rustix::process::pivot_root(".", ".").or_sys(|| "pivot_root into the new root".to_string())?;
    // The old root now sits on top of the new one; go there through its fd
    // rather than trusting what "." means after pivot_root.
    rustix::process::fchdir(&old_root).or_sys(|| "chdir into the old root".to_string())?;
    mount_change(
        ".",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .or_sys(|| "make the old root rslave".to_string())?;
    unmount(".", UnmountFlags::DETACH).or_sys(|| "detach the old root".to_string())?;
    rustix::process::chdir("/").or_sys(|| "chdir to the new /".to_string())
}

/// `--no-pivot`: moves the rootfs mount onto `/` and chroots into it. The
/// host's procfs and sysfs mounts stay in the namespace underneath, where a
/// chroot escape could reach them; like runc, they are detached first (or
/// covered by a tmpfs where detaching is refused).
pub(super) fn move_root(rootfs: &Path, root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let rootfs = std::fs::canonicalize(rootfs)
        .or_sys(|| format!("resolve the root file system {}", rootfs.display()))?;
    for m in mountinfo::mounts()? {
        if !matches!(m.fstype.as_str(), "proc" | "sysfs")
            || m.root != Path::new("/")
            || safe_path::is_within(&m.mount_point, &rootfs)
        {
            continue;
        }
        let point = &m.mount_point;
        match mount_change(
            point,
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
        ) {
            Ok(()) => {}
            // A parent was detached already.
            Err(Errno::NOENT) => continue,
            Err(e) => {
                return Err(RootfsError::sys(
                    format!("make {} rslave", point.display()),
                    e,
                ))
            }
        }
        match unmount(point, UnmountFlags::DETACH) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::INVAL) | Err(Errno::PERM) => {
                rustix::mount::mount(
                    "tmpfs",
                    point,
                    "tmpfs",
                    rustix::mount::MountFlags::empty(),
                    None,
                )
                .or_sys(|| format!("cover {} with a tmpfs", point.display()))?;
            }
            Err(e) => return Err(RootfsError::sys(format!("detach {}", point.display()), e)),
        }
    }
    rustix::process::fchdir(root).or_sys(|| "chdir into the new root".to_string())?;
    rustix::mount::move_mount(
        root,
        c"",
        rfs::CWD,
        "/",
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .or_sys(|| format!("move {} onto /", rootfs.display()))?;
    rustix::process::chroot(".").or_sys(|| "chroot into the new root".to_string())?;
    rustix::process::chdir("/").or_sys(|| "chdir to the new /".to_string())
}

/// After the switch: a shared or unbindable `rootfsPropagation` applies to
/// the new `/` (slave and private were applied before, to the whole tree).
pub(super) fn apply_root_propagation(propagation: Option<Propagation>) -> Result<(), RootfsError> {
    match propagation {
        Some(p)
            if matches!(
                p.kind,
                PropagationType::Shared | PropagationType::Unbindable
            ) =>
        {
            mount_change("/", propagation_flags(p)).or_sys(|| format!("make the new / {p}"))
        }
        _ => Ok(()),
    }
}
