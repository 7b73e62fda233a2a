//! Container root file systems: an image's layers stacked read-only by
//! overlayfs under a writable upper directory that belongs to the container.
//!
//! ```text
//! <container dir>/upper    the container's changes (diff() turns it into a layer)
//! <container dir>/work     overlay's work directory
//! <container dir>/rootfs   the mount point
//! ```
//!
//! Images can have more layers than fit into one `lowerdir=` mount option
//! (a page, 4 KiB). The new mount API passes one lower directory per
//! `fsconfig(…, "lowerdir+", …)` call (Linux 6.8+), with no length limit;
//! older kernels get the classic option string, with each layer named by a
//! short relative symlink (`l/<id>`, as Docker's overlay2 does) when the
//! full paths are too long.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::store::ImageStore;

/// A mounted container root file system.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub rootfs: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// How to pass the lower directories to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountMethod {
    /// `lowerdir+` when the kernel has it, else the classic option string.
    Auto,
    /// Only the classic `lowerdir=a:b:c` option string.
    Classic,
}

/// Creates `container_dir`'s upper, work and rootfs directories and mounts
/// the image's layers at `rootfs`.
pub fn prepare_rootfs(
    store: &ImageStore,
    image: &Digest,
    container_dir: &Path,
) -> Result<Snapshot> {
    prepare_rootfs_with(store, image, container_dir, MountMethod::Auto)
}

pub fn prepare_rootfs_with(
    store: &ImageStore,
    image: &Digest,
    container_dir: &Path,
    method: MountMethod,
) -> Result<Snapshot> {
    prepare_rootfs_over(store, image, container_dir, None, method)
}

/// Like [`prepare_rootfs`], with `init` (a directory) stacked read-only
/// on top of the image's layers: the engine's init layer, which holds the
/// mount points every container gets (`/etc/hosts`, `/proc`, ...) so they
/// never show up in the container's own changes.
pub fn prepare_rootfs_over(
    store: &ImageStore,
    image: &Digest,
    container_dir: &Path,
    init: Option<&Path>,
    method: MountMethod,
) -> Result<Snapshot> {
    let mut lowers = store.layer_dirs(image)?;
    if let Some(init) = init {
        lowers.push(init.to_path_buf());
    }
    let snap = Snapshot {
        rootfs: container_dir.join("rootfs"),
        upper: container_dir.join("upper"),
        work: container_dir.join("work"),
    };
    for d in [&snap.rootfs, &snap.upper, &snap.work] {
        fs::create_dir_all(d).at("create container directory", d)?;
    }
    if lowers.is_empty() {
        // An image without layers (FROM scratch, nothing added): overlay
        // needs a lower directory.
        let empty = container_dir.join("empty");
        fs::create_dir_all(&empty).at("create container directory", &empty)?;
        lowers.push(empty);
    }
    // Overlay lists the topmost lower directory first.
    lowers.reverse();
    mount_overlay(
        store.root(),
        &lowers,
        &snap.upper,
        &snap.work,
        &snap.rootfs,
        method,
    )?;
    Ok(snap)
}

/// Unmounts a snapshot's root file system (its directories stay, for
/// `diff`, `commit` and `export`, until the container is removed).
pub fn unmount(rootfs: &Path) -> Result<()> {
    match rustix::mount::unmount(rootfs, UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::path("unmount", rootfs, e.into())),
    }
}

fn mount_overlay(
    state_root: &Path,
    lowers_top_first: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    method: MountMethod,
) -> Result<()> {
    if method == MountMethod::Auto {
        match mount_with_fsconfig(lowers_top_first, upper, work, target) {
            Ok(()) => return Ok(()),
            // EINVAL from "lowerdir+": a kernel older than 6.8.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
            Err(e) => return Err(Error::path("mount overlay at", target, e)),
        }
    }
    mount_classic(state_root, lowers_top_first, upper, work, target)
}

fn mount_with_fsconfig(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for l in lowers {
        fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
    }
    fsconfig_set_string(&fs, "upperdir", upper)?;
    fsconfig_set_string(&fs, "workdir", work)?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// Most bytes of mount options the kernel takes (one page, less room for
/// the terminating NUL and overlay's own additions).
const MAX_OPTIONS: usize = 4000;

fn mount_classic(
    state_root: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<()> {
    let options = |lowers: &[PathBuf]| {
        let joined: Vec<String> = lowers
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            joined.join(":"),
            upper.display(),
            work.display()
        )
    };
    let data = options(lowers);
    if data.len() <= MAX_OPTIONS {
        let data = std::ffi::CString::new(data)
            .map_err(|_| Error::invalid("overlay mount options", "path contains a NUL byte"))?;
        return rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(|e| Error::path("mount overlay at", target, e.into()));
    }
    // Too long: name each layer by a short symlink relative to the state
    // root, and mount from a child whose working directory is the state
    // root (the kernel resolves relative lower dirs against it). A child
    // process, because the working directory is shared by all threads.
    let short = short_links(state_root, lowers)?;
    let data = options(&short);
    if data.len() > MAX_OPTIONS {
        return Err(Error::invalid(
            format!("overlay mount at {}", target.display()),
            format!("{} layers do not fit in the kernel's mount options (this kernel lacks lowerdir+, Linux 6.8+)", lowers.len()),
        ));
    }
    let out = std::process::Command::new("mount")
        .current_dir(state_root)
        .args(["-t", "overlay", "overlay", "-o", &data])
        .arg(target)
        .output()
        .map_err(|e| Error::io("run mount(8) for an overlay with many layers", e))?;
    if !out.status.success() {
        return Err(Error::invalid(
            format!("overlay mount at {}", target.display()),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Short names for layer directories, relative to the state root:
/// `l/<first 10 hex of the chain id>` → `<root>/layers/<chain id>`.
fn short_links(state_root: &Path, lowers: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let dir = state_root.join("l");
    fs::create_dir_all(&dir).at("create directory", &dir)?;
    let mut out = Vec::with_capacity(lowers.len());
    for l in lowers {
        let name = l
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let short = dir.join(name.get(..10).unwrap_or(&name));
        if fs::read_link(&short).ok().as_deref() != Some(l.as_path()) {
            let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), name));
            let _ = fs::remove_file(&tmp);
            std::os::unix::fs::symlink(l, &tmp).at("create symlink", &tmp)?;
            fs::rename(&tmp, &short).at("create symlink", &short)?;
        }
        out.push(Path::new("l").join(short.file_name().unwrap_or_default()));
    }
    Ok(out)
}
