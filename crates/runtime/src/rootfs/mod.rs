//! The container's root file system: mounts of every kind with all their
//! options and propagation, devices, `/dev` links, devpts, the console,
//! `pivot_root` (or move + chroot), masked and read-only paths, read-only
//! root.
//!
//! Everything here runs in the container's init process, inside its new
//! mount namespace, as (namespace) root, in this order:
//!
//! 1. [`validate`] before anything exists;
//! 2. [`prepare`]: propagation, the rootfs bound onto itself, `mounts`,
//!    devices, `/dev` symlinks;
//! 3. optionally [`open_pty`] + [`setup_console`];
//! 4. [`enter`]: `pivot_root` (or MS_MOVE + chroot), `chdir("/")`;
//! 5. (sysctl writes and the like, by the caller);
//! 6. [`finalize`]: readonly paths, masked paths, delayed read-only mounts,
//!    read-only root.
//!
//! Every path inside the rootfs is resolved from a directory fd with
//! `openat2(RESOLVE_IN_ROOT)` (see `safe_path`), and every mount is attached
//! with `move_mount` onto the fd that resolution returned: a symlink in the
//! container's image can move a mount elsewhere inside the rootfs, never
//! outside it (CVE-2021-30465).

mod cgroup;
mod console;
mod devices;
mod error;
mod finalize;
mod idmap;
mod mount_api;
mod mountinfo;
mod mounts;
mod options;
mod pivot;
mod plan;
mod validate;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use oci_spec::runtime::Spec;
use rustix::fs::{self as rfs, Mode, OFlags};

pub use console::{open_pty, setup_console};
pub use error::RootfsError;
use error::SysContext;
use mount_api::Propagation;
use options::MountKind;

/// How the caller wants the root file system set up, beyond config.json.
#[derive(Clone, Debug, Default)]
pub struct RootfsOptions {
    /// `--no-pivot`: move the rootfs onto `/` and chroot instead of
    /// `pivot_root` (for rootfs on ramfs, where pivot_root is impossible).
    pub no_pivot: bool,
    /// The bundle directory: relative bind-mount sources are relative to it.
    /// `None` means the current directory (runc runs in the bundle).
    pub bundle: Option<PathBuf>,
    /// The container has no mount namespace of its own (none in
    /// `linux.namespaces`): its mounts go on a private bind of the rootfs in
    /// the runtime's namespace, and it enters the rootfs by chroot.
    pub host_mount_namespace: bool,
    /// The ID-mapped bind mounts, made by [`prepare_idmapped`] before the
    /// init entered its user namespace, by `mounts[N]`.
    pub idmapped_trees: Vec<(String, Arc<OwnedFd>)>,
}

/// Makes the detached, ID-mapped copies of the bind sources that have
/// `uidMappings`/`gidMappings`, for the init to attach. Runs in the runtime
/// before the init is cloned: in a container with a user namespace the init
/// no longer has the right to map a host mount. Nothing is attached; the
/// copies vanish with their fds if the container is never made.
pub fn prepare_idmapped(
    spec: &Spec,
    bundle: Option<&Path>,
) -> Result<Vec<(String, Arc<OwnedFd>)>, RootfsError> {
    let mut trees = Vec::new();
    for m in plan::mounts(spec)? {
        let (Some(_), MountKind::Bind { recursive }) = (&m.idmap, &m.kind) else {
            continue;
        };
        let source = m.bind_source(bundle).unwrap_or_default();
        let tree = mounts::bind_tree(&m, &source, *recursive)?;
        trees.push((m.field.clone(), Arc::new(tree)));
    }
    Ok(trees)
}

/// What `prepare` leaves for `setup_console`, `enter` and `finalize` of the
/// same process.
struct Prepared {
    /// The rootfs bind mount, until `enter` makes it `/`.
    root: Option<OwnedFd>,
    propagation: Option<Propagation>,
    delayed_readonly: Vec<(String, OwnedFd)>,
}

static PREPARED: Mutex<Option<Prepared>> = Mutex::new(None);

fn prepared() -> MutexGuard<'static, Option<Prepared>> {
    // The state is plain data: a panic elsewhere cannot leave it half-made.
    PREPARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The root the console and pty functions work in: the prepared rootfs
/// before `enter`, the process's root after.
fn current_root() -> Result<OwnedFd, RootfsError> {
    if let Some(root) = prepared().as_ref().and_then(|p| p.root.as_ref()) {
        return rustix::io::fcntl_dupfd_cloexec(root, 0)
            .or_sys(|| "duplicate the rootfs fd".into());
    }
    open_dir(Path::new("/"))
}

fn open_dir(path: &Path) -> Result<OwnedFd, RootfsError> {
    rfs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .or_sys(|| format!("open {}", path.display()))
}

/// Checks the rootfs-related parts of `spec` before anything is created:
/// `root.path` (relative to `bundle`) is a directory; mount destinations are
/// absolute and allowed (nothing over `/`, only procfs on `/proc`, nothing
/// else inside `/proc` but the lxcfs files); mount types and options are
/// known and fit the mount (tmpcopyup is refused; ID mappings are checked
/// and only bind mounts take them); bind sources exist; devices have a valid type, numbers and mode; masked and readonly
/// paths are absolute; `rootfsPropagation` is a known value; a `mountLabel`
/// needs SELinux on the host. Each error names the config field and why.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<(), RootfsError> {
    validate::validate(spec, bundle)
}

/// Sets up the rootfs at `rootfs` inside the current (new) mount namespace:
/// `rootfsPropagation` (default rslave) on the whole tree, the rootfs bound
/// onto itself, every entry of `mounts` in order, and, unless `/dev` is a
/// bind mount, the default devices plus `linux.devices` (mknod, or a bind
/// of the host's node where mknod is not permitted), `/dev/ptmx ->
/// pts/ptmx` and the `/dev/fd`, `stdin`, `stdout`, `stderr` (and `core`)
/// links.
pub fn prepare(spec: &Spec, rootfs: &Path, opts: &RootfsOptions) -> Result<(), RootfsError> {
    let mounts = plan::mounts(spec)?;
    let devices = plan::devices(spec)?;
    let propagation = plan::rootfs_propagation(spec)?;
    let label = plan::mount_label(spec);
    if label.is_some() && !validate::selinux_enabled() {
        return Err(RootfsError::config(
            "linux.mountLabel",
            "this host has no SELinux (no /sys/fs/selinux): the label cannot be applied",
        ));
    }

    let root = if opts.host_mount_namespace {
        pivot::bind_rootfs_in_host_namespace(rootfs)?
    } else {
        pivot::bind_rootfs(rootfs, propagation)?
    };
    let mut ctx = mounts::MountContext {
        root: root.as_fd(),
        bundle: opts.bundle.as_deref(),
        label: label.as_deref(),
        cgroupns: plan::has_cgroup_namespace(spec),
        delayed_readonly: Vec::new(),
        prebuilt: &opts.idmapped_trees,
    };
    for m in &mounts {
        mounts::mount(&mut ctx, m)?;
    }
    if devices::needs_setup(&mounts) {
        devices::create_all(root.as_fd(), &devices)?;
        devices::link_ptmx(root.as_fd())?;
        devices::link_standard(root.as_fd())?;
    }
    let delayed_readonly = std::mem::take(&mut ctx.delayed_readonly);
    *prepared() = Some(Prepared {
        root: Some(root),
        propagation,
        delayed_readonly,
    });
    Ok(())
}

/// Makes the prepared rootfs the process's root: `pivot_root(".", ".")` and
/// a lazy unmount of the old root, or with `opts.no_pivot` a move of the
/// rootfs onto `/` and a chroot; then `chdir("/")`. A shared or unbindable
/// `rootfsPropagation` is applied to the new `/`.
pub fn enter(rootfs: &Path, opts: &RootfsOptions) -> Result<(), RootfsError> {
    let mut state = prepared();
    let (root, propagation) = match state.as_mut() {
        Some(p) => (p.root.take(), p.propagation),
        None => (None, None),
    };
    let root = match root {
        Some(root) => root,
        None => open_dir(rootfs)?,
    };
    if opts.host_mount_namespace {
        pivot::chroot_into(root.as_fd())?;
    } else if opts.no_pivot {
        pivot::move_root(rootfs, root.as_fd())?;
    } else {
        pivot::pivot(root.as_fd())?;
    }
    pivot::apply_root_propagation(propagation)
}

/// Finishes the root after [`enter`]: `readonlyPaths` (bound read-only,
/// keeping their other flags), `maskedPaths` (files covered by the verified
/// `/dev/null`, directories by an empty read-only tmpfs), tmpfs and `/dev`
/// mounts asked to be read-only, and `root.readonly`. Paths under `/proc` or
/// `/sys` must be on the real procfs or sysfs. Writes under `/proc/sys`
/// (sysctl) must happen before: this makes it read-only.
pub fn finalize(spec: &Spec, _opts: &RootfsOptions) -> Result<(), RootfsError> {
    let root = open_dir(Path::new("/"))?;
    finalize::readonly_paths(root.as_fd(), &plan::paths(spec, false)?)?;
    finalize::masked_paths(root.as_fd(), &plan::paths(spec, true)?)?;
    let delayed = prepared()
        .take()
        .map(|p| p.delayed_readonly)
        .unwrap_or_default();
    finalize::delayed_readonly(&delayed)?;
    if plan::readonly_root(spec) {
        finalize::readonly_root(root.as_fd())?;
    }
    Ok(())
}

/// The id of the mount `path` is on (the topmost one when `path` is a mount
/// point). A container without a mount namespace of its own stacks a bind
/// on its rootfs in the runtime's namespace; the id taken before create
/// tells `delete` (or a failed create) what to detach.
pub fn mount_id_of(path: &Path) -> Result<u64, RootfsError> {
    let stx = rfs::statx(
        rfs::CWD,
        path,
        rfs::AtFlags::empty(),
        rfs::StatxFlags::MNT_ID,
    )
    .or_sys(|| format!("inspect the mount of {}", path.display()))?;
    Ok(stx.stx_mnt_id)
}

/// Detaches, with everything mounted below them, the binds stacked on
/// `rootfs` since its mount id was `original` (see [`mount_id_of`]). Only
/// mounts sitting exactly on `rootfs` are touched; anything else on top is
/// reported rather than unmounted.
pub fn detach_stacked_binds(rootfs: &Path, original: u64) -> Result<(), RootfsError> {
    let rootfs = match std::fs::canonicalize(rootfs) {
        Ok(path) => path,
        // The rootfs itself is gone: nothing can be stacked on it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(RootfsError::sys(
                format!("resolve {}", rootfs.display()),
                rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
            ))
        }
    };
    let rootfs = rootfs.as_path();
    // A handful of binds at most (one per create that died before its
    // delete); the bound keeps a surprise from looping forever.
    for _ in 0..16 {
        let top = mount_id_of(rootfs)?;
        if top == original {
            return Ok(());
        }
        let on_rootfs = mountinfo::mounts()?
            .into_iter()
            .any(|m| m.id == top && m.mount_point == rootfs);
        if !on_rootfs {
            return Err(RootfsError::Unsafe {
                action: "detach the container's mounts".into(),
                path: rootfs.to_path_buf(),
                reason: format!("mount {top} on top of it is not a bind the runtime made"),
            });
        }
        rustix::mount::unmount(rootfs, rustix::mount::UnmountFlags::DETACH)
            .or_sys(|| format!("detach the container's mounts on {}", rootfs.display()))?;
    }
    Err(RootfsError::Unsafe {
        action: "detach the container's mounts".into(),
        path: rootfs.to_path_buf(),
        reason: "more binds are stacked on it than any create makes".into(),
    })
}
