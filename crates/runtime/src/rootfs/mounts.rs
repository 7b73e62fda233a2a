//! The entries of `mounts`, each resolved inside the rootfs and mounted
//! through the new mount API onto the fd it resolved to.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::error::SysContext;
use super::mount_api::{self, attr, FsContext};
use super::options::{AttrChange, DataOption, MountKind};
use super::plan::MountPlan;
use super::validate::{check_proc_destination, ProcTarget};
use super::{cgroup, idmap, RootfsError};
use crate::safe_path::{self, magic, Kind};

/// What every mount of one `prepare` shares.
pub(super) struct MountContext<'a> {
    /// The rootfs bind mount, root of every lookup.
    pub root: BorrowedFd<'a>,
    /// Relative bind sources are relative to it (None: the cwd).
    pub bundle: Option<&'a Path>,
    /// `linux.mountLabel`, applied as `context=` where the file system takes it.
    pub label: Option<&'a str>,
    pub cgroupns: bool,
    /// Mounts asked to be read-only that stay writable until `finalize`,
    /// so that mount points and devices can still be created in them.
    pub delayed_readonly: Vec<(String, OwnedFd)>,
    /// Bind trees the runtime made before the clone, by `MountPlan::field`.
    pub prebuilt: &'a [(String, Arc<OwnedFd>)],
}

/// File systems whose superblock is shared with other mounts (per network,
/// IPC or cgroup namespace): `ro` for them is made per mount only, never on
/// the superblock, which would change the host's mounts too.
const SHARED_SUPERBLOCK: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "mqueue",
    "devpts",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "configfs",
    "fusectl",
    "pstore",
    "efivarfs",
    "binfmt_misc",
];

/// File systems that take no SELinux `context=` option.
const NO_CONTEXT_OPTION: &[&str] = &["proc", "sysfs", "cgroup", "cgroup2", "mqueue"];

pub(super) fn mount(ctx: &mut MountContext<'_>, m: &MountPlan) -> Result<(), RootfsError> {
    match &m.kind {
        MountKind::Bind { recursive } => bind(ctx, m, *recursive),
        MountKind::Remount => remount(ctx, m),
        MountKind::Cgroup => cgroup::mount(ctx, m),
        MountKind::Fs(fstype) => new_fs(ctx, m, fstype).map(|_| ()),
    }
}

fn bind(ctx: &mut MountContext<'_>, m: &MountPlan, recursive: bool) -> Result<(), RootfsError> {
    let source = m.bind_source(ctx.bundle).unwrap_or_default();
    // The detached copy's root is the source itself: its type and file
    // system are the source's.
    let tree = match ctx.prebuilt.iter().find(|(field, _)| *field == m.field) {
        Some((_, tree)) => rustix::io::fcntl_dupfd_cloexec(tree.as_fd(), 0)
            .or_sys(|| format!("duplicate the prepared tree of {}", m.describe()))?,
        None => bind_tree(m, &source, recursive)?,
    };
    let src = tree.as_fd();
    let src_type = safe_path::file_type(src)
        .or_sys(|| format!("stat source {} of {}", source.display(), m.describe()))?;
    let kind = if src_type == FileType::Directory {
        Kind::Directory
    } else {
        Kind::File
    };
    let target = target(ctx, m, kind)?;
    let target_type =
        safe_path::file_type(target.fd.as_fd()).or_sys(|| format!("stat {}", m.describe()))?;
    if (src_type == FileType::Directory) != (target_type == FileType::Directory) {
        return Err(RootfsError::sys(
            format!(
                "bind {} ({}) onto {} ({})",
                source.display(),
                safe_path::describe_file_type(src_type),
                m.destination.display(),
                safe_path::describe_file_type(target_type)
            ),
            if src_type == FileType::Directory {
                Errno::NOTDIR
            } else {
                Errno::ISDIR
            },
        ));
    }
    if target.proc == ProcTarget::ProcRootBind && safe_path::fs_magic(src).ok() != Some(magic::PROC)
    {
        return Err(RootfsError::unsafe_path(
            format!("bind {} onto", source.display()),
            &m.destination,
            "only a procfs may be mounted on /proc",
        ));
    }
    mount_api::attach(tree.as_fd(), target.fd.as_fd())
        .or_sys(|| format!("mount {}", m.describe()))?;
    propagate(tree.as_fd(), m)
}

/// The detached copy of a bind's source with the mount's ID mapping and
/// flags, ready to attach. Made by the init for most binds, and by the
/// runtime before the clone for ID-mapped ones ([`super::prepare_idmapped`]):
/// only a process privileged over the source's mount can map it.
pub(super) fn bind_tree(
    m: &MountPlan,
    source: &Path,
    recursive: bool,
) -> Result<OwnedFd, RootfsError> {
    let src = rfs::open(source, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .or_sys(|| format!("open source {} of {}", source.display(), m.describe()))?;
    let tree = mount_api::clone_tree(src.as_fd(), recursive)
        .or_sys(|| format!("clone source {} of {}", source.display(), m.describe()))?;
    if let Some(map) = &m.idmap {
        let userns = idmap::user_namespace(map).or_sys(|| {
            format!(
                "create the user namespace for the ID mapping of {}",
                m.describe()
            )
        })?;
        mount_api::set_idmap(tree.as_fd(), userns.as_fd(), map.recursive).or_sys(|| {
            format!(
                "ID-map {} (the source's file system must support ID-mapped mounts)",
                m.describe()
            )
        })?;
    }
    set_bind_attrs(tree.as_fd(), src.as_fd(), m)?;
    mount_api::set_attrs(tree.as_fd(), &m.options.recursive_attrs, true)
        .or_sys(|| format!("apply recursive options to {}", m.describe()))?;
    Ok(tree)
}

/// The flags of a bind mount are those of its source until changed. A
/// mount inherited from a more privileged user namespace has locked flags the
/// kernel refuses to clear: when that happens, the flags the config did not
/// mention are kept as the source has them (the kernel's rule), and a config
/// that explicitly asks to clear a locked flag gets an error.
fn set_bind_attrs(
    tree: BorrowedFd<'_>,
    src: BorrowedFd<'_>,
    m: &MountPlan,
) -> Result<(), RootfsError> {
    let change = m.options.attrs;
    let err = match mount_api::set_attrs(tree, &change, false) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => e,
        Err(e) => {
            return Err(RootfsError::sys(
                format!("apply options to {}", m.describe()),
                e,
            ))
        }
    };
    let locked = source_flags(src).or_sys(|| format!("statvfs source of {}", m.describe()))?;
    let refused = change.clear & locked.set;
    if refused != 0 {
        return Err(RootfsError::sys(
            format!(
                "clear {} on {}: the source mount has it locked (it comes from a more privileged namespace)",
                attr_names(refused),
                m.describe()
            ),
            err,
        ));
    }
    if let Some(atime) = change.atime {
        if locked.atime != Some(atime) {
            return Err(RootfsError::sys(
                format!(
                    "change the access-time mode of {}: the source mount has it locked",
                    m.describe()
                ),
                err,
            ));
        }
    }
    let kept = AttrChange {
        set: change.set | locked.set,
        clear: change.clear,
        atime: change.atime,
    };
    mount_api::set_attrs(tree, &kept, false)
        .or_sys(|| format!("apply options (keeping locked flags) to {}", m.describe()))
}

/// The per-mount flags of the mount `fd` is on, as `MOUNT_ATTR_*` bits.
fn source_flags(fd: BorrowedFd<'_>) -> io::Result<AttrChange> {
    use rustix::fs::StatVfsMountFlags as St;
    let flags = rfs::fstatvfs(fd)?.f_flag;
    let mut set = 0;
    for (st, bit) in [
        (St::RDONLY, attr::RDONLY),
        (St::NOSUID, attr::NOSUID),
        (St::NODEV, attr::NODEV),
        (St::NOEXEC, attr::NOEXEC),
        (St::NODIRATIME, attr::NODIRATIME),
    ] {
        if flags.contains(st) {
            set |= bit;
        }
    }
    // statvfs reports relatime and noatime; neither means strictatime.
    let atime = if flags.contains(St::NOATIME) {
        super::mount_api::Atime::No
    } else if flags.contains(St::RELATIME) {
        super::mount_api::Atime::Relative
    } else {
        super::mount_api::Atime::Strict
    };
    Ok(AttrChange {
        set,
        clear: 0,
        atime: Some(atime),
    })
}

fn attr_names(bits: u64) -> String {
    [
        (attr::RDONLY, "ro"),
        (attr::NOSUID, "nosuid"),
        (attr::NODEV, "nodev"),
        (attr::NOEXEC, "noexec"),
        (attr::NODIRATIME, "nodiratime"),
        (attr::NOSYMFOLLOW, "nosymfollow"),
    ]
    .iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(",")
}

/// Mounts a new instance of `fstype` as `m` says; returns the attached mount.
pub(super) fn new_fs(
    ctx: &mut MountContext<'_>,
    m: &MountPlan,
    fstype: &str,
) -> Result<OwnedFd, RootfsError> {
    let target = if fstype == "proc" || fstype == "sysfs" {
        plain_directory_target(ctx, m)?
    } else {
        target(ctx, m, Kind::Directory)?
    };
    // Mount points and device nodes may still have to be created inside a
    // tmpfs or /dev: they become read-only in `finalize`, as in runc.
    let delay_readonly =
        m.options.read_only() && (fstype == "tmpfs" || m.clean_destination == Path::new("/dev"));
    let fs = FsContext::new(fstype).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENODEV) {
            RootfsError::config(
                format!("{}.type", m.field),
                format!("file system type {fstype:?} is not known to this kernel"),
            )
        } else {
            RootfsError::sys(format!("open file system {fstype} for {}", m.describe()), e)
        }
    })?;
    configure(&fs, ctx, m, fstype, &target, delay_readonly).map_err(|e| fs_error(&fs, m, e))?;
    let mut attrs = m.options.attrs.set | m.options.attrs.atime.map_or(0, |a| a.bits());
    if delay_readonly {
        attrs &= !attr::RDONLY;
    }
    let mnt = fs.mount(attrs).map_err(|e| fs_error(&fs, m, e))?;
    mount_api::set_attrs(mnt.as_fd(), &m.options.recursive_attrs, true)
        .or_sys(|| format!("apply recursive options to {}", m.describe()))?;
    mount_api::attach(mnt.as_fd(), target.fd.as_fd())
        .or_sys(|| format!("mount {}", m.describe()))?;
    propagate(mnt.as_fd(), m)?;
    if delay_readonly {
        let again = rustix::io::fcntl_dupfd_cloexec(&mnt, 0)
            .or_sys(|| format!("keep a handle on {}", m.describe()))?;
        ctx.delayed_readonly.push((m.describe(), again));
    }
    Ok(mnt)
}

fn fs_error(fs: &FsContext, m: &MountPlan, err: io::Error) -> RootfsError {
    RootfsError::Sys {
        action: format!("mount {}", m.describe()),
        err,
        detail: fs.messages(),
    }
}

fn configure(
    fs: &FsContext,
    ctx: &MountContext<'_>,
    m: &MountPlan,
    fstype: &str,
    target: &Target,
    delay_readonly: bool,
) -> io::Result<()> {
    if let Some(source) = &m.source {
        fs.set_string("source", &source.to_string_lossy())?;
    }
    for flag in &m.options.sb_flags {
        // i_version is managed by each file system on current kernels; the
        // word is accepted for compatibility and has nothing to set.
        if !matches!(*flag, "iversion" | "noiversion") {
            fs.set_flag(flag)?;
        }
    }
    if m.options.read_only() && !delay_readonly && !SHARED_SUPERBLOCK.contains(&fstype) {
        fs.set_flag("ro")?;
    }
    // A tmpfs over an existing directory keeps that directory's mode unless
    // the config says otherwise (later options win).
    if fstype == "tmpfs" {
        if let Some(mode) = target.existing_mode {
            fs.set_string("mode", &format!("{:o}", mode & 0o7777))?;
        }
    }
    // Without ptmxmode the multiplexer of a new devpts is mode 000 and only
    // root can open /dev/ptmx; Docker and runc's default config pass 0666.
    let has = |key: &str| {
        m.options
            .data
            .iter()
            .any(|d| matches!(d, DataOption::Value(k, _) if k == key))
    };
    if fstype == "devpts" && !has("ptmxmode") {
        fs.set_string("ptmxmode", "0666")?;
    }
    for data in &m.options.data {
        match data {
            DataOption::Flag(key) => fs.set_flag(key)?,
            DataOption::Value(key, value) => fs.set_string(key, value)?,
        }
    }
    if let Some(label) = ctx.label {
        if !NO_CONTEXT_OPTION.contains(&fstype) && !has("context") {
            fs.set_string("context", label)?;
        }
    }
    Ok(())
}

/// `remount`: changes the mount that already exists at the destination.
fn remount(ctx: &mut MountContext<'_>, m: &MountPlan) -> Result<(), RootfsError> {
    let fd = safe_path::open_in_root(ctx.root, &m.destination, OFlags::PATH)
        .or_sys(|| format!("open the mount to change for {}", m.describe()))?;
    mount_api::set_attrs(fd.as_fd(), &m.options.attrs, false)
        .or_sys(|| format!("change {}", m.describe()))?;
    mount_api::set_attrs(fd.as_fd(), &m.options.recursive_attrs, true)
        .or_sys(|| format!("change {} recursively", m.describe()))?;
    let sb_flags: Vec<&str> = m
        .options
        .sb_flags
        .iter()
        .copied()
        .filter(|f| !matches!(*f, "iversion" | "noiversion"))
        .collect();
    if !sb_flags.is_empty() || !m.options.data.is_empty() {
        let fs = FsContext::pick(fd.as_fd())
            .or_sys(|| format!("open the file system of {}", m.describe()))?;
        let reconfigure = || -> io::Result<()> {
            for flag in &sb_flags {
                fs.set_flag(flag)?;
            }
            for data in &m.options.data {
                match data {
                    DataOption::Flag(key) => fs.set_flag(key)?,
                    DataOption::Value(key, value) => fs.set_string(key, value)?,
                }
            }
            fs.reconfigure()
        };
        reconfigure().map_err(|e| fs_error(&fs, m, e))?;
    }
    propagate(fd.as_fd(), m)
}

pub(super) fn propagate(mount: BorrowedFd<'_>, m: &MountPlan) -> Result<(), RootfsError> {
    for p in &m.options.propagation {
        mount_api::set_propagation(mount, *p).or_sys(|| format!("make {} {p}", m.describe()))?;
    }
    Ok(())
}

/// A resolved, checked mount point.
pub(super) struct Target {
    pub fd: OwnedFd,
    /// The mode of the directory when it existed before (not created here).
    pub existing_mode: Option<u32>,
    pub proc: ProcTarget,
}

/// Resolves the destination of `m` inside the rootfs (following symlinks
/// inside it only), creating it as `kind` when missing, and checks it.
pub(super) fn target(
    ctx: &MountContext<'_>,
    m: &MountPlan,
    kind: Kind,
) -> Result<Target, RootfsError> {
    let existing = match safe_path::open_in_root(ctx.root, &m.destination, OFlags::PATH) {
        Ok(fd) => Some(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(e) => {
            return Err(RootfsError::sys(
                format!("resolve the destination of {}", m.describe()),
                e,
            ))
        }
    };
    let existing_mode = match &existing {
        Some(fd) => Some(
            rfs::fstat(fd)
                .or_sys(|| format!("stat the destination of {}", m.describe()))?
                .st_mode,
        ),
        None => None,
    };
    let fd = match existing {
        Some(fd) => fd,
        None => {
            let mode = Mode::from_raw_mode(if kind == Kind::Directory {
                0o755
            } else {
                0o644
            });
            safe_path::ensure_in_root(ctx.root, &m.destination, kind, mode)
                .or_sys(|| format!("create the mount point of {}", m.describe()))?
        }
    };
    let proc = check_target(ctx.root, m, fd.as_fd())?;
    Ok(Target {
        fd,
        existing_mode,
        proc,
    })
}

/// procfs and sysfs go only on a plain directory reached without any
/// symlink: a rootfs that plants `/proc -> /somewhere` gets an error, not a
/// procfs mounted somewhere else.
fn plain_directory_target(ctx: &MountContext<'_>, m: &MountPlan) -> Result<Target, RootfsError> {
    let action = format!("mount {} on", m.fs_type().unwrap_or("a file system"));
    let open = || {
        safe_path::open_in_root_nofollow(ctx.root, &m.destination, OFlags::PATH | OFlags::DIRECTORY)
    };
    let (fd, existing_mode) = match open() {
        Ok(fd) => {
            let mode = rfs::fstat(&fd)
                .or_sys(|| format!("stat the destination of {}", m.describe()))?
                .st_mode;
            (fd, Some(mode))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            safe_path::ensure_in_root(
                ctx.root,
                &m.destination,
                Kind::Directory,
                Mode::from_raw_mode(0o755),
            )
            .or_sys(|| format!("create the mount point of {}", m.describe()))?;
            (open().map_err(|e| plain_dir_error(&action, m, e))?, None)
        }
        Err(e) => return Err(plain_dir_error(&action, m, e)),
    };
    let proc = check_target(ctx.root, m, fd.as_fd())?;
    Ok(Target {
        fd,
        existing_mode,
        proc,
    })
}

fn plain_dir_error(action: &str, m: &MountPlan, e: io::Error) -> RootfsError {
    match e.raw_os_error() {
        Some(libc::ELOOP) => RootfsError::unsafe_path(
            action,
            &m.destination,
            "the path goes through a symlink in the root file system; it must be a plain directory",
        ),
        Some(libc::ENOTDIR) => RootfsError::unsafe_path(
            action,
            &m.destination,
            "it is not a directory in the root file system",
        ),
        _ => RootfsError::sys(format!("resolve the destination of {}", m.describe()), e),
    }
}

/// The checks every mount point passes once resolved: it is not the root of
/// the container itself, and it does not land inside procfs unless the
/// config names one of the few files that may be covered there, reached
/// without symlinks.
fn check_target(
    root: BorrowedFd<'_>,
    m: &MountPlan,
    fd: BorrowedFd<'_>,
) -> Result<ProcTarget, RootfsError> {
    let action = format!(
        "mount {} on",
        m.fs_type().unwrap_or(match m.kind {
            MountKind::Bind { .. } => "a bind",
            _ => "a file system",
        })
    );
    let here = rfs::fstat(fd).or_sys(|| format!("stat the destination of {}", m.describe()))?;
    let top = rfs::fstat(root).or_sys(|| "stat the container root".to_string())?;
    if (here.st_dev, here.st_ino) == (top.st_dev, top.st_ino) {
        return Err(RootfsError::unsafe_path(
            action,
            &m.destination,
            "it resolves to the container's root itself",
        ));
    }
    let proc = check_proc_destination(m)?;
    let on_procfs = safe_path::fs_magic(fd).ok() == Some(magic::PROC);
    match proc {
        ProcTarget::Outside if on_procfs => Err(RootfsError::unsafe_path(
            action,
            &m.destination,
            "it resolves into procfs through a symlink",
        )),
        ProcTarget::Outside => Ok(proc),
        _ => {
            let direct = safe_path::open_in_root_nofollow(root, &m.clean_destination, OFlags::PATH)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ELOOP) => RootfsError::unsafe_path(
                        action.clone(),
                        &m.destination,
                        "a path under /proc is reached through a symlink",
                    ),
                    _ => {
                        RootfsError::sys(format!("resolve the destination of {}", m.describe()), e)
                    }
                })?;
            let direct = rfs::fstat(direct)
                .or_sys(|| format!("stat the destination of {}", m.describe()))?;
            if (direct.st_dev, direct.st_ino) != (here.st_dev, here.st_ino) {
                return Err(RootfsError::unsafe_path(
                    action,
                    &m.destination,
                    "the destination changed while it was being opened",
                ));
            }
            Ok(proc)
        }
    }
}
