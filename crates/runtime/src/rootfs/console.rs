//! The container's terminal: a pty from the container's own devpts, and
//! its slave bind-mounted on `/dev/console` without a path race
//! (CVE-2025-52565 class: a `/dev/console` that is a symlink to a procfs
//! file must not get the pty mounted over that file).

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::pty::OpenptFlags;

use super::error::SysContext;
use super::{current_root, mount_api, RootfsError};
use crate::safe_path::{self, magic, Kind};

/// Major numbers of Unix98 pty slaves (`UNIX98_PTY_SLAVE_MAJOR` and the
/// seven that follow it).
const PTY_SLAVE_MAJORS: std::ops::RangeInclusive<u32> = 136..=143;

/// Opens a new pty pair on the container's devpts (`/dev/pts/ptmx`, checked
/// to be a devpts): returns (master, slave). Call it after `prepare`
/// (before or after `enter`); the slave fd is opened from the master with
/// `TIOCGPTPEER`, never by path. The slave is what [`setup_console`] takes.
pub fn open_pty() -> Result<(OwnedFd, OwnedFd), RootfsError> {
    let root = current_root()?;
    let ptmx = safe_path::open_in_root_nofollow(
        root.as_fd(),
        Path::new("/dev/pts/ptmx"),
        OFlags::RDWR | OFlags::NOCTTY,
    )
    .or_sys(|| "open the container's /dev/pts/ptmx".to_string())?;
    if safe_path::fs_magic(ptmx.as_fd()).ok() != Some(magic::DEVPTS) {
        return Err(RootfsError::unsafe_path(
            "open a terminal from",
            "/dev/pts/ptmx",
            "it is not on a devpts file system",
        ));
    }
    rustix::pty::unlockpt(&ptmx).or_sys(|| "unlock the new pty".to_string())?;
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &ptmx,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )
    .or_sys(|| "open the slave of the new pty".to_string())?;
    Ok((ptmx, slave))
}

/// Bind-mounts the pty slave `pty_slave` onto `/dev/console` of the
/// container: of the rootfs prepared by `prepare` when called before
/// `enter`, of the current root after it. The slave must come from a devpts
/// mounted in the container's mount namespace ([`open_pty`] gives one).
///
/// `/dev/console` is opened through the fd of `/dev` without following any
/// symlink; a symlink or a special file found there is replaced by an empty
/// file, a directory is refused; the mount targets the fd of that file.
pub fn setup_console(pty_slave: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let st = rfs::fstat(pty_slave).or_sys(|| "stat the console pty".to_string())?;
    if FileType::from_raw_mode(st.st_mode) != FileType::CharacterDevice
        || !PTY_SLAVE_MAJORS.contains(&rfs::major(st.st_rdev))
    {
        return Err(RootfsError::sys(
            "use the given fd as the console: it is not a pty slave",
            rustix::io::Errno::NOTTY,
        ));
    }
    let root = current_root()?;
    let dev = match safe_path::open_in_root_nofollow(
        root.as_fd(),
        Path::new("/dev"),
        OFlags::PATH | OFlags::DIRECTORY,
    ) {
        Ok(dev) => dev,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => safe_path::ensure_in_root(
            root.as_fd(),
            Path::new("/dev"),
            Kind::Directory,
            Mode::from_raw_mode(0o755),
        )
        .or_sys(|| "create /dev for the console".to_string())?,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(RootfsError::unsafe_path(
                "set up",
                "/dev/console",
                "/dev is a symlink in the root file system",
            ))
        }
        Err(e) => return Err(RootfsError::sys("open /dev for the console", e)),
    };
    let console = console_file(dev.as_fd())?;
    let fs = safe_path::fs_magic(console.as_fd()).or_sys(|| "statfs /dev/console".to_string())?;
    if fs == magic::PROC || fs == magic::SYSFS {
        return Err(RootfsError::unsafe_path(
            "set up",
            "/dev/console",
            "it is on procfs or sysfs",
        ));
    }
    let tree = mount_api::clone_tree(pty_slave, false)
        .or_sys(|| "clone the console pty (is it from the container's devpts?)".to_string())?;
    mount_api::attach(tree.as_fd(), console.as_fd())
        .or_sys(|| "bind the console pty onto /dev/console".to_string())
}

/// An `O_PATH` fd of the regular file (or device node) `/dev/console`,
/// created empty when missing.
fn console_file(dev: BorrowedFd<'_>) -> Result<OwnedFd, RootfsError> {
    let name = OsStr::new("console");
    match safe_path::open_entry(dev, name, OFlags::PATH) {
        Ok(fd) => {
            let kind =
                safe_path::file_type(fd.as_fd()).or_sys(|| "stat /dev/console".to_string())?;
            match kind {
                FileType::RegularFile | FileType::CharacterDevice => return Ok(fd),
                FileType::Directory => {
                    return Err(RootfsError::unsafe_path(
                        "set up",
                        "/dev/console",
                        "it is a directory in the root file system",
                    ))
                }
                _ => rfs::unlinkat(dev, name, AtFlags::empty())
                    .or_sys(|| "remove the special file at /dev/console".to_string())?,
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            rfs::unlinkat(dev, name, AtFlags::empty())
                .or_sys(|| "remove the symlink at /dev/console".to_string())?;
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(RootfsError::sys("open /dev/console", e)),
    }
    safe_path::create_file_entry(dev, name, Mode::from_raw_mode(0o666)).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::EEXIST) | Some(libc::ELOOP) => RootfsError::unsafe_path(
                "set up",
                "/dev/console",
                "something else appeared there while it was being created",
            ),
            _ => RootfsError::sys("create /dev/console", e),
        }
    })
}
