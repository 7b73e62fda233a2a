//! After the switch into the new root: `readonlyPaths`, `maskedPaths`, the
//! read-only mounts delayed by `prepare`, and `root.readonly`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, OFlags};

use super::error::SysContext;
use super::mount_api::{self, attr, FsContext};
use super::options::AttrChange;
use super::RootfsError;
use crate::safe_path::{self, magic, PseudoFs};

const READ_ONLY: AttrChange = AttrChange {
    set: attr::RDONLY,
    clear: 0,
    atime: None,
};

/// Opens a path to protect inside the new root; `None` when it does not
/// exist (nothing to protect). Under `/proc` and `/sys` the object must be on
/// the real pseudo file system: a rootfs whose own files show through there
/// (no procfs mounted, or a symlink into the image) is refused. Under `/sys`
/// a tmpfs mounted by the config (the cgroup v1 tmpfs) is accepted, never
/// the image's own file system, whatever it is.
fn open_protected(
    root: BorrowedFd<'_>,
    path: &Path,
    what: &str,
) -> Result<Option<OwnedFd>, RootfsError> {
    let fd = match safe_path::open_in_root(root, path, OFlags::PATH) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => {
            return Err(RootfsError::sys(
                format!("open {what} {}", path.display()),
                e,
            ))
        }
    };
    let Some(fs) = PseudoFs::owning(path) else {
        return Ok(Some(fd));
    };
    let Err(e) = safe_path::verify_pseudo_fs(fd.as_fd(), fs) else {
        return Ok(Some(fd));
    };
    if fs == PseudoFs::Sys && safe_path::fs_magic(fd.as_fd()).ok() == Some(magic::TMPFS) {
        let here = rfs::fstat(&fd).or_sys(|| format!("stat {what} {}", path.display()))?;
        let image = rfs::fstat(root).or_sys(|| "stat /".to_string())?;
        if here.st_dev != image.st_dev {
            return Ok(Some(fd));
        }
    }
    Err(RootfsError::unsafe_path(
        format!("protect {what}"),
        path,
        format!("{e}: the container's {} is not the kernel's", fs.name()),
    ))
}

/// Each readonly path is bound onto itself, recursively, and that copy made
/// read-only: only `ro` is added, so `nosuid`/`nodev`/`noexec` (and locked
/// flags) stay as the original mount has them.
pub(super) fn readonly_paths(root: BorrowedFd<'_>, paths: &[PathBuf]) -> Result<(), RootfsError> {
    for path in paths {
        let Some(fd) = open_protected(root, path, "readonly path")? else {
            continue;
        };
        let what = || format!("readonly path {}", path.display());
        let tree =
            mount_api::clone_tree(fd.as_fd(), true).or_sys(|| format!("clone {}", what()))?;
        mount_api::set_attrs(tree.as_fd(), &READ_ONLY, true)
            .or_sys(|| format!("make {} read-only", what()))?;
        mount_api::attach(tree.as_fd(), fd.as_fd()).or_sys(|| format!("mount {}", what()))?;
    }
    Ok(())
}

/// Masked files get `/dev/null` bound over them, masked directories an
/// empty read-only tmpfs. The `/dev/null` used is the container's, opened
/// without following symlinks and verified to be the character device 1:3
/// after it is opened: a rootfs that makes it a symlink to a procfs file or
/// a plain file cannot turn masking into exposure (CVE-2025-31133 class).
pub(super) fn masked_paths(root: BorrowedFd<'_>, paths: &[PathBuf]) -> Result<(), RootfsError> {
    let mut null: Option<OwnedFd> = None;
    let mut mask_dir: Option<OwnedFd> = None;
    for path in paths {
        let Some(fd) = open_protected(root, path, "masked path")? else {
            continue;
        };
        let what = || format!("masked path {}", path.display());
        let kind = safe_path::file_type(fd.as_fd()).or_sys(|| format!("stat {}", what()))?;
        let tree = if kind == FileType::Directory {
            match &mask_dir {
                // Later directories share the first tmpfs, bound read-only.
                Some(first) => mount_api::clone_tree(first.as_fd(), false)
                    .or_sys(|| format!("clone the mask for {}", what()))?,
                None => {
                    empty_read_only_tmpfs().or_sys(|| format!("mount a tmpfs over {}", what()))?
                }
            }
        } else {
            if null.is_none() {
                null = Some(verified_dev_null(root)?);
            }
            let null = null
                .as_ref()
                .map(|n| n.as_fd())
                .ok_or_else(|| RootfsError::sys("open /dev/null", rustix::io::Errno::NOENT))?;
            mount_api::clone_tree(null, false).or_sys(|| "clone /dev/null".to_string())?
        };
        mount_api::attach(tree.as_fd(), fd.as_fd()).or_sys(|| format!("mount over {}", what()))?;
        if kind == FileType::Directory && mask_dir.is_none() {
            mask_dir = Some(tree);
        }
    }
    Ok(())
}

fn empty_read_only_tmpfs() -> std::io::Result<OwnedFd> {
    let fs = FsContext::new("tmpfs")?;
    fs.set_string("source", "tmpfs")?;
    fs.set_string("nr_blocks", "1")?;
    // Some distribution kernels reject fewer than two inodes.
    fs.set_string("nr_inodes", "2")?;
    fs.mount(attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC)
}

fn verified_dev_null(root: BorrowedFd<'_>) -> Result<OwnedFd, RootfsError> {
    let null = safe_path::open_in_root_nofollow(root, Path::new("/dev/null"), OFlags::PATH)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => RootfsError::unsafe_path(
                "mask paths with",
                "/dev/null",
                "it is a symlink in the container",
            ),
            _ => RootfsError::sys("open the container's /dev/null to mask paths", e),
        })?;
    safe_path::verify_char_device(null.as_fd(), 1, 3)
        .map_err(|e| RootfsError::unsafe_path("mask paths with", "/dev/null", e.to_string()))?;
    Ok(null)
}

/// tmpfs and `/dev` mounts asked to be read-only, now that nothing more is
/// created in them.
pub(super) fn delayed_readonly(mounts: &[(String, OwnedFd)]) -> Result<(), RootfsError> {
    for (what, mount) in mounts {
        mount_api::set_attrs(mount.as_fd(), &READ_ONLY, false)
            .or_sys(|| format!("make {what} read-only"))?;
    }
    Ok(())
}

/// `root.readonly`: the root mount only, as runc (mounts below keep their own
/// flags).
pub(super) fn readonly_root(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    mount_api::set_attrs(root, &READ_ONLY, false).or_sys(|| "make / read-only".to_string())
}
