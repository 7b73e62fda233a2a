//! Path resolution inside a container root that cannot be steered out of it.
//!
//! Most runtime escapes since 2017 were path races: the runtime resolved a
//! path inside the container's root file system as a plain string, and the
//! container (or a concurrent writer to a shared volume) swapped a component
//! for a symlink pointing at the host. The rules here:
//!
//! - every lookup starts from a directory fd of the root and goes through
//!   `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: absolute symlinks and
//!   `..` are clamped to that root by the kernel, `/proc/self/fd`-style magic
//!   links are refused;
//! - missing components are created one at a time relative to the fd of their
//!   parent, and the newly created entry is opened with
//!   `RESOLVE_NO_SYMLINKS`, so what we created is what we hold;
//! - callers act on the returned fd (mount onto it, `fstat` it), never on the
//!   path again;
//! - objects with a meaning (a device, a procfs file) are verified through
//!   `fstat`/`fstatfs` after they are opened.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How many symlinks a creating walk follows before it gives up (`ELOOP`),
/// the same bound the kernel applies to a single lookup.
const MAX_SYMLINK_HOPS: usize = 40;

/// `openat2` returns `EAGAIN` under `RESOLVE_IN_ROOT` when a rename raced
/// with a `..` lookup; the lookup is simply retried.
const MAX_EAGAIN_RETRIES: usize = 64;

/// File system magic numbers (`statfs.f_type`) the runtime checks.
pub mod magic {
    pub const PROC: u32 = 0x9fa0;
    pub const SYSFS: u32 = 0x6265_6572;
    pub const TMPFS: u32 = 0x0102_1994;
    pub const DEVPTS: u32 = 0x1cd1;
    pub const CGROUP: u32 = 0x0027_e0eb;
    pub const CGROUP2: u32 = 0x6367_7270;
    pub const SECURITYFS: u32 = 0x7363_6673;
    pub const DEBUGFS: u32 = 0x6462_6720;
    pub const TRACEFS: u32 = 0x7472_6163;
    pub const BPF: u32 = 0xcafe_4a11;
    pub const PSTORE: u32 = 0x6165_676c;
    pub const CONFIGFS: u32 = 0x6265_6570;
    pub const EFIVARFS: u32 = 0xde5e_81e4;
    pub const FUSECTL: u32 = 0x6573_7546;
    pub const SELINUXFS: u32 = 0xf97c_ff8c;
}

/// What a path must turn out to be when it is created on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Directory,
    /// Anything but a directory; created as an empty regular file.
    File,
}

/// Opens `path` inside `root`: symlinks are followed but clamped to `root`,
/// magic links are refused. `flags` are `openat2` open flags (`O_CLOEXEC` is
/// always added).
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    openat2_retry(
        root,
        &relative(path),
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )
}

/// Opens `path` inside `root` without following any symlink, in any
/// component (a symlink fails with `ELOOP`, even with `O_PATH`): for targets
/// that must be exactly where the path says (a procfs mount point,
/// `/dev/console`, `/dev/null`).
pub fn open_in_root_nofollow(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
) -> io::Result<OwnedFd> {
    openat2_retry(
        root,
        &relative(path),
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS,
    )
}

/// Opens `name`, a single entry of the directory `dir`, without leaving
/// `dir`; a symlink fails with `ELOOP`.
pub fn open_entry(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlags) -> io::Result<OwnedFd> {
    openat2_retry(
        dir,
        Path::new(name),
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )
}

/// Returns an `O_PATH` fd of `path` inside `root`, creating what is missing:
/// directories for every missing component and, for the last one, a
/// directory or an empty file according to `kind`. Symlinks met on the way,
/// dangling ones included, are followed inside `root`, so
/// `/etc/resolv.conf -> ../run/resolv.conf` creates `<root>/run/resolv.conf`.
///
/// An existing last component is returned as it is, whatever its type: the
/// caller checks it against what it needs.
pub fn ensure_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    kind: Kind,
    mode: Mode,
) -> io::Result<OwnedFd> {
    let mut target = PathBuf::from("/").join(relative(path));
    for _ in 0..MAX_SYMLINK_HOPS {
        match open_in_root(root, &target, OFlags::PATH) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        match create_missing(root, &target, kind, mode)? {
            Walk::Done(fd) => return Ok(fd),
            Walk::Restart(next) => target = next,
        }
    }
    Err(Errno::LOOP.into())
}

/// Like [`ensure_in_root`] for the parent of `path`; returns the parent's
/// `O_PATH` directory fd and the last component's name. `path` must name
/// something below the root.
pub fn ensure_parent_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    mode: Mode,
) -> io::Result<(OwnedFd, std::ffi::OsString)> {
    let clean = lexical_clean(path);
    let name = clean
        .file_name()
        .ok_or_else(|| io::Error::from(Errno::INVAL))?
        .to_os_string();
    let parent = clean.parent().unwrap_or(Path::new("/"));
    let dir = ensure_in_root(root, parent, Kind::Directory, mode)?;
    require_directory(dir.as_fd())?;
    Ok((dir, name))
}

/// Creates `name` in `dir` as a new, empty regular file (`EEXIST` if
/// anything has that name) and returns an `O_PATH` fd of it, checked to be a
/// regular file: a mount point nobody else chose.
pub fn create_file_entry(dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> io::Result<OwnedFd> {
    create_empty_file(dir, name, mode)?;
    let fd = open_entry(dir, name, OFlags::PATH)?;
    if file_type(fd.as_fd())? != FileType::RegularFile {
        return Err(Errno::EXIST.into());
    }
    Ok(fd)
}

enum Walk {
    Done(OwnedFd),
    Restart(PathBuf),
}

/// The slow path of [`ensure_in_root`]: finds the first missing component,
/// creates it relative to its parent's fd, and goes on. A dangling symlink
/// restarts the walk on its target.
fn create_missing(root: BorrowedFd<'_>, target: &Path, kind: Kind, mode: Mode) -> io::Result<Walk> {
    let components: Vec<Component<'_>> = target
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    let mut parent = open_in_root(root, Path::new("/"), OFlags::PATH | OFlags::DIRECTORY)?;
    let mut prefix = PathBuf::from("/");
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let here = prefix.join(component);
        match open_in_root(root, &here, OFlags::PATH) {
            Ok(fd) => {
                parent = fd;
                prefix = here;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        // `..` of an existing directory always exists: only a normal name
        // can be missing (or be a dangling symlink).
        let Component::Normal(name) = component else {
            return Err(Errno::NOENT.into());
        };
        let created = if last && kind == Kind::File {
            create_empty_file(parent.as_fd(), name, mode)
        } else {
            rfs::mkdirat(parent.as_fd(), *name, mode).map_err(io::Error::from)
        };
        match created {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                match rfs::readlinkat(parent.as_fd(), *name, Vec::new()) {
                    Ok(link) => {
                        let link = PathBuf::from(OsStr::from_bytes(link.as_bytes()));
                        let mut next = prefix.join(link);
                        for rest in &components[i + 1..] {
                            next.push(rest);
                        }
                        return Ok(Walk::Restart(next));
                    }
                    // Not a symlink: someone created the entry meanwhile.
                    Err(Errno::INVAL) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e),
        }
        parent = open_entry(parent.as_fd(), name, OFlags::PATH)?;
        prefix = here;
    }
    Ok(Walk::Done(parent))
}

fn create_empty_file(dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> io::Result<()> {
    openat2_retry(
        dir,
        Path::new(name),
        OFlags::CREATE | OFlags::EXCL | OFlags::RDONLY | OFlags::NOFOLLOW,
        mode,
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )
    .map(drop)
}

fn openat2_retry(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> io::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let mut attempt = 0;
    loop {
        match rfs::openat2(
            dir,
            path,
            flags | OFlags::CLOEXEC,
            mode,
            resolve | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN) if attempt < MAX_EAGAIN_RETRIES => attempt += 1,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// `path` without its leading `/`, for lookups relative to a root fd.
fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect()
}

/// Cleans `path` lexically, as a path inside a root: `.` disappears, `..`
/// removes the previous component and never climbs above `/`. For naming
/// things (deduplication, prefix checks), not for resolving them.
pub fn lexical_clean(path: &Path) -> PathBuf {
    let mut clean = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::ParentDir => {
                clean.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    clean
}

/// True when `path` is `dir` or below it, comparing cleaned paths.
pub fn is_within(path: &Path, dir: &Path) -> bool {
    lexical_clean(path).starts_with(lexical_clean(dir))
}

/// Fails with `ENOTDIR` unless `fd` is a directory.
pub fn require_directory(fd: BorrowedFd<'_>) -> io::Result<()> {
    if file_type(fd)? == FileType::Directory {
        Ok(())
    } else {
        Err(Errno::NOTDIR.into())
    }
}

pub fn file_type(fd: BorrowedFd<'_>) -> io::Result<FileType> {
    Ok(FileType::from_raw_mode(rfs::fstat(fd)?.st_mode))
}

/// The file system magic number of what `fd` refers to.
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // f_type is a signed word whose width depends on the architecture; the
    // magic numbers are 32-bit values.
    Ok((rfs::fstatfs(fd)?.f_type as u64 & 0xffff_ffff) as u32)
}

/// A file system the runtime must find before it writes or mounts under a
/// well-known path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PseudoFs {
    Proc,
    Sys,
}

impl PseudoFs {
    /// Which pseudo file system owns `path`, if any: `/proc/...` or `/sys/...`.
    pub fn owning(path: &Path) -> Option<PseudoFs> {
        let clean = lexical_clean(path);
        if clean.starts_with("/proc") {
            Some(PseudoFs::Proc)
        } else if clean.starts_with("/sys") {
            Some(PseudoFs::Sys)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PseudoFs::Proc => "procfs",
            PseudoFs::Sys => "sysfs",
        }
    }

    /// Whether a file on a file system with `fs` magic may be what the
    /// runtime finds under this tree. Under `/sys` the kernel mounts other
    /// pseudo file systems (cgroup, securityfs, ...), never a disk or an
    /// overlay: those are what a planted rootfs would be made of.
    pub fn accepts(self, fs: u32) -> bool {
        match self {
            PseudoFs::Proc => fs == magic::PROC,
            PseudoFs::Sys => matches!(
                fs,
                magic::SYSFS
                    | magic::CGROUP
                    | magic::CGROUP2
                    | magic::SECURITYFS
                    | magic::DEBUGFS
                    | magic::TRACEFS
                    | magic::BPF
                    | magic::PSTORE
                    | magic::CONFIGFS
                    | magic::EFIVARFS
                    | magic::FUSECTL
                    | magic::SELINUXFS
            ),
        }
    }
}

/// Opens `path` (under `/proc` or `/sys`) inside `root` without following
/// symlinks and checks that it lives on the real pseudo file system, so that a
/// container which planted its own `/proc` (a symlink, or a directory of
/// look-alike files) cannot redirect what the runtime writes. Paths outside
/// `/proc` and `/sys` are refused with `EINVAL`.
pub fn open_on_pseudo_fs(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let fs = PseudoFs::owning(path).ok_or_else(|| io::Error::from(Errno::INVAL))?;
    let fd = open_in_root_nofollow(root, path, flags)?;
    verify_pseudo_fs(fd.as_fd(), fs)?;
    Ok(fd)
}

/// Fails unless `fd` is on the pseudo file system `fs` (see [`PseudoFs::accepts`]).
pub fn verify_pseudo_fs(fd: BorrowedFd<'_>, fs: PseudoFs) -> io::Result<()> {
    let found = fs_magic(fd)?;
    if fs.accepts(found) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not on {} (file system magic {found:#x})", fs.name()),
        ))
    }
}

/// Fails unless `fd` is the character device `major:minor`.
pub fn verify_char_device(fd: BorrowedFd<'_>, major: u32, minor: u32) -> io::Result<()> {
    let st = rfs::fstat(fd)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    let (found_major, found_minor) = (rfs::major(st.st_rdev), rfs::minor(st.st_rdev));
    if kind == FileType::CharacterDevice && (found_major, found_minor) == (major, minor) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "expected character device {major}:{minor}, found {} {found_major}:{found_minor}",
                describe_file_type(kind)
            ),
        ))
    }
}

pub fn describe_file_type(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a fifo",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "a file of unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn root_fd(dir: &Path) -> OwnedFd {
        rfs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open test root")
    }

    fn ensure_dir(root: &OwnedFd, path: &Path) -> io::Result<OwnedFd> {
        ensure_in_root(
            root.as_fd(),
            path,
            Kind::Directory,
            Mode::from_raw_mode(0o755),
        )
    }

    fn ensure_file(root: &OwnedFd, path: &Path) -> io::Result<OwnedFd> {
        ensure_in_root(root.as_fd(), path, Kind::File, Mode::from_raw_mode(0o644))
    }

    fn same_file(fd: BorrowedFd<'_>, path: &Path) -> bool {
        let a = rfs::fstat(fd).expect("fstat fd");
        let b = rfs::lstat(path).expect("lstat path");
        (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    }

    #[test]
    fn absolute_symlink_is_clamped_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/hostname"), "inside").unwrap();
        symlink("/etc", dir.path().join("link")).unwrap();
        let root = root_fd(dir.path());
        let fd = open_in_root(root.as_fd(), Path::new("/link/hostname"), OFlags::PATH).unwrap();
        assert!(same_file(fd.as_fd(), &dir.path().join("etc/hostname")));
    }

    #[test]
    fn dotdot_cannot_climb_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("a")).unwrap();
        let root = root_fd(dir.path());
        let fd = open_in_root(root.as_fd(), Path::new("/a/../../../.."), OFlags::PATH).unwrap();
        assert!(same_file(fd.as_fd(), dir.path()));
    }

    #[test]
    fn nofollow_refuses_a_symlink_anywhere_in_the_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        symlink("real", dir.path().join("proc")).unwrap();
        let root = root_fd(dir.path());
        let err =
            open_in_root_nofollow(root.as_fd(), Path::new("/proc"), OFlags::PATH).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        let err =
            open_in_root_nofollow(root.as_fd(), Path::new("/proc/x"), OFlags::PATH).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn magic_links_are_refused() {
        // /proc/self/root is a magic link: even clamped to a root it must
        // not be followed (it would jump to whatever root it points at).
        let host = root_fd(Path::new("/"));
        let err =
            open_in_root(host.as_fd(), Path::new("/proc/self/root"), OFlags::PATH).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn ensure_creates_missing_directories_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_fd(dir.path());
        let fd = ensure_dir(&root, Path::new("/a/b/c")).unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
        assert!(same_file(fd.as_fd(), &dir.path().join("a/b/c")));
    }

    #[test]
    fn ensure_creates_an_empty_file_for_file_targets() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_fd(dir.path());
        let fd = ensure_file(&root, Path::new("/etc/resolv.conf")).unwrap();
        let meta = fs::metadata(dir.path().join("etc/resolv.conf")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.len(), 0);
        assert!(same_file(fd.as_fd(), &dir.path().join("etc/resolv.conf")));
    }

    #[test]
    fn ensure_follows_symlinks_inside_the_root_never_outside() {
        let dir = tempfile::tempdir().unwrap();
        symlink("/etc", dir.path().join("foo")).unwrap();
        let root = root_fd(dir.path());
        let fd = ensure_dir(&root, Path::new("/foo/quai-safe-path-test")).unwrap();
        assert!(dir.path().join("etc/quai-safe-path-test").is_dir());
        assert!(!Path::new("/etc/quai-safe-path-test").exists());
        assert!(same_file(
            fd.as_fd(),
            &dir.path().join("etc/quai-safe-path-test")
        ));
    }

    #[test]
    fn ensure_creates_the_target_of_a_dangling_symlink() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        symlink("../run/resolv.conf", dir.path().join("etc/resolv.conf")).unwrap();
        let root = root_fd(dir.path());
        let fd = ensure_file(&root, Path::new("/etc/resolv.conf")).unwrap();
        assert!(dir.path().join("run/resolv.conf").is_file());
        assert!(same_file(fd.as_fd(), &dir.path().join("run/resolv.conf")));
    }

    #[test]
    fn ensure_dangling_absolute_symlink_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        symlink("/nonexistent-quai-dir/sub", dir.path().join("x")).unwrap();
        let root = root_fd(dir.path());
        ensure_dir(&root, Path::new("/x/leaf")).unwrap();
        assert!(dir.path().join("nonexistent-quai-dir/sub/leaf").is_dir());
        assert!(!Path::new("/nonexistent-quai-dir").exists());
    }

    #[test]
    fn ensure_symlink_loop_fails_with_eloop() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let root = root_fd(dir.path());
        let err = ensure_dir(&root, Path::new("/a/x")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn ensure_through_a_file_fails_with_enotdir() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), "").unwrap();
        let root = root_fd(dir.path());
        let err = ensure_dir(&root, Path::new("/file/sub")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
    }

    #[test]
    fn ensure_handles_dotdot_after_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_fd(dir.path());
        ensure_dir(&root, Path::new("/a/new/../b")).unwrap();
        assert!(dir.path().join("a/new").is_dir());
        assert!(dir.path().join("a/b").is_dir());
    }

    #[test]
    fn ensure_parent_returns_the_directory_and_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_fd(dir.path());
        let (parent, name) = ensure_parent_in_root(
            root.as_fd(),
            Path::new("/dev/net/tun"),
            Mode::from_raw_mode(0o755),
        )
        .unwrap();
        assert_eq!(name, "tun");
        assert!(same_file(parent.as_fd(), &dir.path().join("dev/net")));
        assert!(
            ensure_parent_in_root(root.as_fd(), Path::new("/"), Mode::from_raw_mode(0o755))
                .is_err()
        );
    }

    #[test]
    fn lexical_clean_never_climbs_above_root() {
        assert_eq!(
            lexical_clean(Path::new("/../a/./b/../c")),
            Path::new("/a/c")
        );
        assert_eq!(lexical_clean(Path::new("a//b/")), Path::new("/a/b"));
        assert_eq!(lexical_clean(Path::new("/..")), Path::new("/"));
        assert!(is_within(
            Path::new("/proc/sys/../sys/kernel"),
            Path::new("/proc")
        ));
        assert!(!is_within(Path::new("/procfoo"), Path::new("/proc")));
    }

    #[test]
    fn pseudo_fs_ownership_follows_the_cleaned_path() {
        assert_eq!(
            PseudoFs::owning(Path::new("/proc/sys")),
            Some(PseudoFs::Proc)
        );
        assert_eq!(
            PseudoFs::owning(Path::new("/sys/firmware")),
            Some(PseudoFs::Sys)
        );
        assert_eq!(
            PseudoFs::owning(Path::new("/x/../proc")),
            Some(PseudoFs::Proc)
        );
        assert_eq!(PseudoFs::owning(Path::new("/procx")), None);
        assert!(PseudoFs::Proc.accepts(magic::PROC));
        assert!(!PseudoFs::Proc.accepts(magic::TMPFS));
        assert!(PseudoFs::Sys.accepts(magic::CGROUP2));
        assert!(!PseudoFs::Sys.accepts(magic::TMPFS));
    }

    #[test]
    fn open_on_pseudo_fs_refuses_a_planted_proc_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("proc/sys/kernel")).unwrap();
        fs::write(dir.path().join("proc/sys/kernel/hostname"), "fake").unwrap();
        let root = root_fd(dir.path());
        let err = open_on_pseudo_fs(
            root.as_fd(),
            Path::new("/proc/sys/kernel/hostname"),
            OFlags::PATH,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not on procfs"), "{err}");
        // The host's own /proc passes the same check.
        let host = root_fd(Path::new("/"));
        open_on_pseudo_fs(
            host.as_fd(),
            Path::new("/proc/sys/kernel/hostname"),
            OFlags::PATH,
        )
        .unwrap();
        let err = open_on_pseudo_fs(host.as_fd(), Path::new("/etc"), OFlags::PATH).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn verify_char_device_tells_dev_null_from_a_planted_file() {
        let null = rfs::open("/dev/null", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        verify_char_device(null.as_fd(), 1, 3).unwrap();
        assert!(verify_char_device(null.as_fd(), 1, 5).is_err());
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("null"), "").unwrap();
        let fake = rfs::open(
            dir.path().join("null"),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let err = verify_char_device(fake.as_fd(), 1, 3).unwrap_err();
        assert!(err.to_string().contains("a regular file"), "{err}");
    }
}
