//! CVE-2019-5736: a process of the runtime that a container can see (its
//! init before execve, an exec'd process being set up) has the runtime's
//! binary as /proc/PID/exe; a container that gets a writable handle on it
//! overwrites the host's binary. Protection: before creating or joining a
//! container, the runtime re-executes itself from a read-only view of its
//! binary, so that every handle the container could obtain is read-only:
//!
//! 1. a read-only bind mount of the binary kept under the state root
//!    (`<root>/@exe/quai-<dev>-<ino>`), made once and reused: no copy, and
//!    no mount is made or torn down per command (tearing one down waits for
//!    an RCU grace period, milliseconds on a busy host); else
//! 2. a detached read-only bind mount (open_tree + mount_setattr) that
//!    exists in no namespace; else
//! 3. a sealed memfd copy (runc's original fix).
//!
//! Containers never see the kept mount: their mount namespace drops the
//! host's tree at pivot_root.
//!
//! A binary already on a read-only mount, or already a sealed memfd, needs
//! neither.
//!
//! Re-executing an 18 MB binary costs milliseconds, so the common case
//! avoids it: when the container gets a new pid namespace, no process in it
//! can see the runtime or its init while they run the host's binary (the
//! init is the namespace's first process, and non-dumpable). What remains
//! is the execve of the container's program, where a `#!/proc/self/exe`
//! script would run the runtime's binary inside the container: the init
//! closes that by executing [`init_trampoline`] (`quai-init`, a few KB,
//! from a sealed memfd) which waits for `start` and executes the program.
//! Joined pid namespaces (and `exec`), or a container that needs the init
//! after `start` (startContainer hooks), still need the re-execution:
//! [`crate::Runtime::create`] says so with
//! [`RuntimeError::UnprotectedBinary`].

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{
    fcntl_add_seals, fcntl_get_seals, fstatvfs, memfd_create, MemfdFlags, Mode, OFlags, SealFlags,
    StatVfsMountFlags,
};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::fstat;
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};

use crate::error::{IoContext, Result, RuntimeError};
use crate::process::sys;

/// Set while re-executing, to detect a protection that did not take.
const REEXEC_MARKER: &str = "_QUAI_RUNTIME_EXE_GUARD";

fn open_self(flags: OFlags) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        "/proc/self/exe",
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// True when no writable handle on the running binary can be had through
/// /proc/PID/exe.
pub fn is_protected() -> bool {
    let Ok(fd) = open_self(OFlags::RDONLY) else {
        return false;
    };
    // An unprivileged runtime cannot write its (root-owned) binary, and
    // neither can its containers, whose ids map to at most its own.
    if !rustix::process::geteuid().is_root()
        && rustix::fs::access("/proc/self/exe", rustix::fs::Access::WRITE_OK).is_err()
    {
        return true;
    }
    if fstatvfs(&fd).is_ok_and(|s| s.f_flag.contains(StatVfsMountFlags::RDONLY)) {
        return true;
    }
    fcntl_get_seals(&fd).is_ok_and(|s| s.contains(SealFlags::WRITE))
}

/// Fails unless the running binary is protected (library callers that
/// create containers in-process must call [`reexec_protected`] at startup).
pub fn require() -> Result<()> {
    if is_protected() {
        return Ok(());
    }
    Err(RuntimeError::UnprotectedBinary)
}

/// `quai-init`, built from `init-trampoline/main.rs` by build.rs; empty on
/// architectures it has no code for.
const INIT_TRAMPOLINE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/quai-init"));

/// A sealed memfd holding `quai-init`, which the container's init executes
/// instead of its program (see the module's comment): nothing the container
/// can reach through it is writable. None when this build has no
/// trampoline.
pub fn init_trampoline() -> Result<Option<OwnedFd>> {
    if INIT_TRAMPOLINE.is_empty() {
        return Ok(None);
    }
    sealed_memfd("quai-init", &mut &INIT_TRAMPOLINE[..]).map(Some)
}

/// Directory under a state root that holds the kept read-only binds. Its
/// name is not a valid container id, so `list` never shows it.
pub const KEPT_DIR: &str = "@exe";

/// Re-executes the current program, same arguments and environment, from a
/// read-only view of its binary, kept under `keep_in` when given. Returns
/// Ok(()) without doing anything when the binary is already protected;
/// otherwise returns only on failure.
pub fn reexec_protected(keep_in: Option<&Path>) -> Result<()> {
    if is_protected() {
        std::env::remove_var(REEXEC_MARKER);
        return Ok(());
    }
    if std::env::var_os(REEXEC_MARKER).is_some() {
        return Err(RuntimeError::Unsupported(
            "re-executing from a read-only copy of the runtime binary did not protect it (CVE-2019-5736)".into(),
        ));
    }
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| RuntimeError::option("arguments", "contain a NUL byte"))?;
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    envp.push(CString::new(format!("{REEXEC_MARKER}=1")).expect("no NUL"));

    let kept = keep_in.map(kept_read_only_bind).transpose();
    let image = match kept {
        Ok(Some(fd)) => fd,
        other => {
            if let Err(e) = other {
                tracing::debug!("cannot keep a read-only bind of the runtime binary: {e}");
            }
            match read_only_mount_of_self() {
                Ok(fd) => fd,
                Err(e) => {
                    tracing::debug!(
                        "read-only bind of the runtime binary refused ({e}); using a sealed copy"
                    );
                    sealed_copy_of_self()?
                }
            }
        }
    };
    let error = sys::exec_fd(image.as_fd(), &argv, &envp);
    Err(RuntimeError::io(
        "re-execute the runtime from a read-only copy",
        error,
    ))
}

/// The kept read-only bind of the running binary under `dir`, made if
/// missing. Its name carries the binary's device and inode, so an upgraded
/// binary gets its own and a stale one is never used.
fn kept_read_only_bind(dir: &Path) -> std::io::Result<OwnedFd> {
    let exe = open_self(OFlags::PATH)?;
    let st = fstat(&exe)?;
    let path = dir.join(format!("quai-{:x}-{:x}", st.st_dev, st.st_ino));
    let matches = |fd: &OwnedFd| -> bool {
        let same = fstat(fd).is_ok_and(|s| s.st_dev == st.st_dev && s.st_ino == st.st_ino);
        same && fstatvfs(fd).is_ok_and(|v| v.f_flag.contains(StatVfsMountFlags::RDONLY))
    };
    let open_kept = || {
        rustix::fs::open(
            &path,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    if let Ok(fd) = open_kept() {
        if matches(&fd) {
            return Ok(fd);
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    remove_stale_binds(dir, &path);
    if let Err(e) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o500)
        .open(&path)
    {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    let tree = read_only_mount_of_self()?;
    let dir_fd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let name = path.file_name().unwrap_or_default();
    move_mount(
        tree.as_fd(),
        "",
        dir_fd.as_fd(),
        name,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    let fd = open_kept()?;
    if matches(&fd) {
        Ok(fd)
    } else {
        Err(std::io::Error::other(
            "the kept bind does not show the running binary read-only",
        ))
    }
}

/// Drops the kept binds of binaries that were replaced (upgrades), which
/// would otherwise pin the old files on disk.
fn remove_stale_binds(dir: &Path, current: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == current || !entry.file_name().to_string_lossy().starts_with("quai-") {
            continue;
        }
        let _ = rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH);
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::debug!("cannot remove stale {}: {e}", path.display());
        }
    }
}

fn read_only_mount_of_self() -> std::io::Result<OwnedFd> {
    let tree = open_tree(
        rustix::fs::CWD,
        "/proc/self/exe",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    sys::make_mount_read_only(tree.as_fd())?;
    Ok(tree)
}

fn sealed_copy_of_self() -> Result<OwnedFd> {
    let mut source = File::from(open_self(OFlags::RDONLY).ctx(|| "open /proc/self/exe")?);
    sealed_memfd("quai-runtime", &mut source)
}

/// An executable memfd named `name` with the bytes of `source`, sealed
/// against any change.
fn sealed_memfd(name: &str, source: &mut dyn std::io::Read) -> Result<OwnedFd> {
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC is refused by kernels before 6.3, which make every memfd
    // executable anyway.
    let memfd = memfd_create(name, flags | MemfdFlags::EXEC)
        .or_else(|_| memfd_create(name, flags))
        .ctx(|| format!("create a memfd for {name}"))?;
    let mut target = File::from(memfd);
    std::io::copy(source, &mut target).ctx(|| format!("copy {name} into a memfd"))?;
    fcntl_add_seals(
        &target,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )
    .ctx(|| format!("seal the memfd of {name}"))?;
    Ok(OwnedFd::from(target))
}
