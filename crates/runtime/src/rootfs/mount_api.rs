//! The new mount API (Linux 5.12+), the only way this module mounts: every
//! mount is built detached (`fsopen`/`fsmount`, or `open_tree` of a source
//! fd), gets its attributes while nobody can see it, and is attached with
//! `move_mount` onto an fd the caller resolved and verified. No mount ever
//! targets a path string, so no symlink swapped in after the check can
//! redirect it, and `/proc/self/fd` is never needed.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_reconfigure, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen,
    fspick, move_mount, open_tree, FsMountFlags, FsOpenFlags, FsPickFlags, MountAttrFlags,
    MoveMountFlags, OpenTreeFlags,
};

use super::options::AttrChange;

/// `MOUNT_ATTR_*` bits (linux/mount.h).
pub mod attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    pub const ATIME_MASK: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    pub const IDMAP: u64 = 0x0010_0000;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// The access-time mode of a mount, one value of `MOUNT_ATTR__ATIME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Atime {
    Relative,
    No,
    Strict,
}

impl Atime {
    pub fn bits(self) -> u64 {
        match self {
            Atime::Relative => attr::RELATIME,
            Atime::No => attr::NOATIME,
            Atime::Strict => attr::STRICTATIME,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationType {
    Shared,
    Slave,
    Private,
    Unbindable,
}

impl PropagationType {
    /// The `MS_*` value `mount_setattr` takes in `propagation`.
    fn ms_flag(self) -> u64 {
        match self {
            PropagationType::Shared => 1 << 20,
            PropagationType::Slave => 1 << 19,
            PropagationType::Private => 1 << 18,
            PropagationType::Unbindable => 1 << 17,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PropagationType::Shared => "shared",
            PropagationType::Slave => "slave",
            PropagationType::Private => "private",
            PropagationType::Unbindable => "unbindable",
        }
    }
}

/// A propagation change, applied to one mount or (`recursive`) its subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Propagation {
    pub kind: PropagationType,
    pub recursive: bool,
}

impl std::fmt::Display for Propagation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = if self.recursive { "r" } else { "" };
        write!(f, "{r}{}", self.kind.name())
    }
}

/// `struct mount_attr` of linux/mount.h.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn mount_setattr(mount: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let empty: &CStr = c"";
    // SAFETY: mount_setattr(2) reads `size` bytes from `attr`, which points to
    // a live, properly laid out `struct mount_attr`; the path is a valid
    // NUL-terminated string and the fd is borrowed for the whole call. rustix
    // has no wrapper for this system call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            empty.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Applies `change` to the mount `mount` is the root of (and, when
/// `recursive`, to every mount below it). Flags not named in `change` are left
/// as they are, which is what keeps locked flags and the `nosuid`/`nodev`/
/// `noexec` of the original mount.
pub fn set_attrs(mount: BorrowedFd<'_>, change: &AttrChange, recursive: bool) -> io::Result<()> {
    if change.is_empty() {
        return Ok(());
    }
    let mut attr = MountAttr {
        attr_set: change.set,
        attr_clr: change.clear,
        propagation: 0,
        userns_fd: 0,
    };
    if let Some(atime) = change.atime {
        attr.attr_set = (attr.attr_set & !attr::ATIME_MASK) | atime.bits();
        attr.attr_clr |= attr::ATIME_MASK;
    }
    mount_setattr(mount, recursive, &attr)
}

/// Changes the propagation type of the mount `mount` is the root of.
pub fn set_propagation(mount: BorrowedFd<'_>, propagation: Propagation) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: propagation.kind.ms_flag(),
        userns_fd: 0,
    };
    mount_setattr(mount, propagation.recursive, &attr)
}

/// Makes the detached mount `mount` (and, `recursive`, every mount below
/// it) ID-mapped with the mappings of the user namespace `userns`.
pub fn set_idmap(mount: BorrowedFd<'_>, userns: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: attr::IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr(mount, recursive, &attr)
}

/// A detached copy of the mount (or, `recursive`, the mount tree) at `src`,
/// like the source of a bind mount: `src` may be any fd of a file or
/// directory, which becomes the root of the copy.
pub fn clone_tree(src: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    Ok(open_tree(src, c"", flags)?)
}

/// Same as [`clone_tree`] for a host path (the rootfs itself, a cgroup
/// directory): symlinks in `path` are followed, as the host intends.
pub fn clone_path(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    Ok(open_tree(rustix::fs::CWD, path, flags)?)
}

/// Attaches the detached mount `tree` on top of exactly the object `target`
/// refers to.
pub fn attach(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    Ok(move_mount(
        tree,
        c"",
        target,
        c"",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?)
}

/// A file system context being configured (`fsopen`, or `fspick` of an
/// existing mount for a reconfiguration).
pub struct FsContext {
    fd: OwnedFd,
}

impl FsContext {
    /// Starts a new instance of the file system `fstype`.
    pub fn new(fstype: &str) -> io::Result<FsContext> {
        Ok(FsContext {
            fd: fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?,
        })
    }

    /// Opens the superblock of the mount `mount` is the root of, to change it.
    pub fn pick(mount: BorrowedFd<'_>) -> io::Result<FsContext> {
        Ok(FsContext {
            fd: fspick(
                mount,
                c"",
                FsPickFlags::FSPICK_CLOEXEC | FsPickFlags::FSPICK_EMPTY_PATH,
            )?,
        })
    }

    pub fn set_flag(&self, key: &str) -> io::Result<()> {
        Ok(fsconfig_set_flag(self.fd.as_fd(), key)?)
    }

    pub fn set_string(&self, key: &str, value: &str) -> io::Result<()> {
        Ok(fsconfig_set_string(self.fd.as_fd(), key, value)?)
    }

    /// Creates the superblock and returns a detached mount of it with the
    /// per-mount attributes `attrs` (`MOUNT_ATTR_*`, atime value included).
    pub fn mount(&self, attrs: u64) -> io::Result<OwnedFd> {
        fsconfig_create(self.fd.as_fd())?;
        let attrs = u32::try_from(attrs).map_err(|_| io::Error::from(Errno::INVAL))?;
        Ok(fsmount(
            self.fd.as_fd(),
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::from_bits_retain(attrs),
        )?)
    }

    /// Applies the changes to a picked superblock.
    pub fn reconfigure(&self) -> io::Result<()> {
        Ok(fsconfig_reconfigure(self.fd.as_fd())?)
    }

    /// The error and warning messages the file system logged on this
    /// context: the reason behind an `EINVAL` (`tmpfs: Bad value for 'size'`).
    pub fn messages(&self) -> Option<String> {
        let mut lines = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = rustix::io::read(self.fd.as_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf[..n]);
            // Each message starts with its level: "e ", "w " or "i ".
            if let Some(text) = line.strip_prefix("e ").or_else(|| line.strip_prefix("w ")) {
                lines.push(text.trim_end().to_string());
            }
        }
        if lines.is_empty() {
            None
        } else {
            Some(lines.join("; "))
        }
    }
}
