//! The steps every container process goes through before its execve, the
//! init and exec'd processes alike: process attributes, terminal, user and
//! capabilities, working directory, descriptors, then the execve itself.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::{IOPriorityClass, PosixRlimitType, Process};
use rustix::fs::{fstat, openat2, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::IoSlice;
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rustix::process::{Gid, Resource, Rlimit, Uid};
use rustix::termios::Winsize;

use crate::capabilities::CapabilityPlan;
use crate::error::{IoContext, Result, RuntimeError};
use crate::process::sys;

/// Default search path when the process environment has no PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn rlimit_resource(typ: PosixRlimitType) -> Option<Resource> {
    Some(match typ {
        PosixRlimitType::RlimitCpu => Resource::Cpu,
        PosixRlimitType::RlimitFsize => Resource::Fsize,
        PosixRlimitType::RlimitData => Resource::Data,
        PosixRlimitType::RlimitStack => Resource::Stack,
        PosixRlimitType::RlimitCore => Resource::Core,
        PosixRlimitType::RlimitRss => Resource::Rss,
        PosixRlimitType::RlimitNproc => Resource::Nproc,
        PosixRlimitType::RlimitNofile => Resource::Nofile,
        PosixRlimitType::RlimitMemlock => Resource::Memlock,
        PosixRlimitType::RlimitAs => Resource::As,
        PosixRlimitType::RlimitLocks => Resource::Locks,
        PosixRlimitType::RlimitSigpending => Resource::Sigpending,
        PosixRlimitType::RlimitMsgqueue => Resource::Msgqueue,
        PosixRlimitType::RlimitNice => Resource::Nice,
        PosixRlimitType::RlimitRtprio => Resource::Rtprio,
        PosixRlimitType::RlimitRttime => Resource::Rttime,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// rlimits, OOM score and I/O priority. Runs while the host's /proc is
/// still visible and before privileges are dropped (lowering the OOM score
/// needs CAP_SYS_RESOURCE).
pub fn apply_attributes(process: &Process) -> Result<()> {
    for rlimit in process.rlimits().iter().flatten() {
        let name = crate::config::rlimit_name(rlimit.typ());
        let resource = rlimit_resource(rlimit.typ())
            .ok_or_else(|| RuntimeError::Unsupported(format!("rlimit {name} is not supported")))?;
        let limit = |v: u64| (v != u64::MAX).then_some(v);
        rustix::process::setrlimit(
            resource,
            Rlimit {
                current: limit(rlimit.soft()),
                maximum: limit(rlimit.hard()),
            },
        )
        .ctx(|| format!("set {name} to {}:{}", rlimit.soft(), rlimit.hard()))?;
    }
    if let Some(score) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", score.to_string())
            .ctx(|| format!("set oomScoreAdj to {score}"))?;
    }
    if let Some(prio) = process.io_priority() {
        let class = match prio.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        sys::set_io_priority(class, prio.priority() as u32)
            .ctx(|| format!("set the I/O priority to {:?}", prio.class()))?;
    }
    Ok(())
}

/// Opens a new pty on the container's devpts (the rootfs module checks it
/// is one), sends its master to `console_socket` and returns the slave.
pub fn open_terminal(console_socket: BorrowedFd, size: Option<(u64, u64)>) -> Result<OwnedFd> {
    let (master, slave) = crate::rootfs::open_pty().map_err(RuntimeError::Rootfs)?;
    if let Some((height, width)) = size {
        let ws = Winsize {
            ws_row: height.min(u16::MAX as u64) as u16,
            ws_col: width.min(u16::MAX as u64) as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&slave, ws).ctx(|| "set the terminal size")?;
    }
    send_fd(console_socket, master.as_fd(), b"/dev/ptmx")
        .ctx(|| "send the pty master to the console socket")?;
    Ok(slave)
}

/// Sends `fd` over a connected unix socket (SCM_RIGHTS) with `name` as the
/// payload, as runc does.
pub fn send_fd(socket: BorrowedFd, fd: BorrowedFd, name: &[u8]) -> std::io::Result<()> {
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("control message buffer too small"));
    }
    sendmsg(
        socket,
        &[IoSlice::new(name)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// Receives one descriptor sent with [`send_fd`].
pub fn receive_fd(socket: &impl AsFd) -> std::io::Result<OwnedFd> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut name = [0u8; 256];
    recvmsg(
        socket,
        &mut [rustix::io::IoSliceMut::new(&mut name)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(std::io::Error::other(
        "no descriptor received (the container process exited?)",
    ))
}

/// Makes the pty slave the process' stdio and controlling terminal.
pub fn attach_terminal(slave: BorrowedFd) -> Result<()> {
    for target in 0..3 {
        sys::dup_onto(slave, target)
            .ctx(|| format!("attach the terminal as descriptor {target}"))?;
    }
    rustix::process::ioctl_tiocsctty(slave).ctx(|| "make the pty the controlling terminal")?;
    Ok(())
}

/// Switches to the configured user and capability sets, and sets
/// noNewPrivileges. Bounding set first (it needs CAP_SETPCAP), then the ids
/// with capabilities kept across the switch, then the final sets.
pub fn drop_privileges(process: &Process) -> Result<()> {
    let plan = CapabilityPlan::new(process.capabilities().as_ref());
    plan.apply_bounding()?;
    rustix::thread::set_keep_capabilities(true)
        .ctx(|| "keep capabilities across the user switch")?;
    let user = process.user();
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match rustix::thread::set_thread_groups(&groups) {
        Ok(()) => {}
        // In a user namespace whose setgroups is denied (an unprivileged
        // runtime), the group list is already empty: nothing to drop.
        Err(rustix::io::Errno::PERM) if groups.is_empty() && setgroups_denied() => {}
        Err(e) => {
            return Err(RuntimeError::io(
                format!("set additional groups {:?}", user.additional_gids()),
                e,
            ))
        }
    }
    let gid = Gid::from_raw(user.gid());
    rustix::thread::set_thread_res_gid(gid, gid, gid).ctx(|| format!("set gid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    rustix::thread::set_thread_res_uid(uid, uid, uid).ctx(|| format!("set uid {}", user.uid()))?;
    rustix::thread::set_keep_capabilities(false).ctx(|| "reset keep-capabilities")?;
    plan.apply_sets()?;
    if process.no_new_privileges().unwrap_or(false) {
        rustix::thread::set_no_new_privs(true).ctx(|| "set noNewPrivileges")?;
    }
    Ok(())
}

fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// Sets the umask and enters the working directory, then checks that the
/// directory is inside the container's root: a working directory reached
/// through a descriptor leaked from the host (CVE-2024-21626) shows up as
/// an unreachable path.
pub fn enter_cwd(process: &Process) -> Result<()> {
    if let Some(mask) = process.user().umask() {
        rustix::process::umask(Mode::from_bits_truncate(mask));
    }
    let cwd = process.cwd();
    std::env::set_current_dir(cwd).ctx(|| format!("enter working directory {}", cwd.display()))?;
    let actual = rustix::process::getcwd(Vec::new()).ctx(|| "read the working directory")?;
    if !actual.to_bytes().starts_with(b"/") {
        return Err(RuntimeError::io(
            format!("enter working directory {}", cwd.display()),
            std::io::Error::other("it is outside the container's root file system"),
        ));
    }
    Ok(())
}

/// The environment of the process, with HOME added from the container's
/// /etc/passwd when the config does not set it, as runc does.
pub fn environment(process: &Process) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = process
        .env()
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !env.iter().any(|(k, _)| k == "HOME") {
        let home = home_of(process.user().uid()).unwrap_or_else(|| "/".to_string());
        env.push(("HOME".into(), home));
    }
    env
}

fn open_in_root(path: &Path, flags: OFlags) -> std::io::Result<OwnedFd> {
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(openat2(
        &root,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

fn home_of(uid: u32) -> Option<String> {
    let fd = open_in_root(Path::new("/etc/passwd"), OFlags::RDONLY).ok()?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 6 && fields[2].parse() == Ok(uid)).then(|| fields[5].to_string())
    })
}

/// Finds the program to run inside the current root: args[0] itself when it
/// holds a slash, else the first match in PATH. Magic links (/proc/self/exe,
/// /proc/self/fd/N) are refused: they lead outside the container.
pub fn resolve_executable(process: &Process, env: &[(String, String)]) -> Result<PathBuf> {
    let program = process
        .args()
        .as_ref()
        .and_then(|a| a.first())
        .ok_or_else(|| RuntimeError::config("process.args", "is empty"))?;
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![process.cwd().join(program)]
    } else {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| process.cwd().join(d).join(program))
            .collect()
    };
    let mut last_error = None;
    for candidate in &candidates {
        match check_executable(candidate) {
            Ok(()) => return Ok(candidate.clone()),
            Err(e) => last_error = Some(e),
        }
    }
    let reason = match last_error {
        Some(e) if program.contains('/') => e.to_string(),
        _ => "executable file not found in $PATH".to_string(),
    };
    Err(RuntimeError::io(
        format!("exec {program:?}"),
        std::io::Error::other(reason),
    ))
}

fn check_executable(path: &Path) -> std::io::Result<()> {
    let fd = open_in_root(path, OFlags::PATH).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            std::io::Error::other(
                "it is (or goes through) a magic link such as /proc/self/exe, refused",
            )
        } else {
            e
        }
    })?;
    let st = fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::other("is not a regular file"));
    }
    if st.st_mode & 0o111 == 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EACCES));
    }
    Ok(())
}

/// Installs the container's seccomp filter. With SCMP_ACT_NOTIFY the
/// notification fd goes to the runtime over `sync`, which hands it to the
/// agent (the listener path is a host path, out of reach after pivot_root).
pub fn install_seccomp(
    filter: &crate::seccomp::Filter,
    sync: &crate::process::sync::SyncSocket,
) -> Result<()> {
    let listener = filter.install().map_err(|e| {
        RuntimeError::io(
            "install the seccomp filter",
            std::io::Error::other(e.to_string()),
        )
    })?;
    if let Some(listener) = listener {
        sync.send_with_fd(
            &crate::process::sync::Message::SeccompListener,
            listener.as_fd(),
        )
        .ctx(|| "send the seccomp notification fd to the runtime")?;
    }
    Ok(())
}

/// Keeps descriptors 3..3+`preserve_fds` across execve and closes every
/// other descriptor above stdio, so nothing of the host leaks in.
pub fn seal_descriptors(preserve_fds: u32) -> Result<()> {
    for fd in 3..3 + preserve_fds as i32 {
        if sys::fd_is_open(fd) {
            sys::clear_cloexec(fd).ctx(|| format!("pass descriptor {fd} to the container"))?;
        }
    }
    let first = 3 + preserve_fds;
    match sys::close_fds_from(first, false) {
        Ok(()) => Ok(()),
        // An older kernel, or a seccomp profile (already installed) that
        // predates close_range: close what /proc/self/fd lists.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
            close_listed_from(first)
        }
        Err(e) => Err(RuntimeError::io("close the runtime's descriptors", e)),
    }
}

/// Marks every descriptor above stdio and the preserved ones close-on-exec:
/// done before a seccomp filter that may refuse close_range is installed,
/// so that nothing leaks even if closing them later is refused.
pub fn mark_descriptors_cloexec(preserve_fds: u32) -> Result<()> {
    sys::close_fds_from(3 + preserve_fds, true)
        .ctx(|| "mark the runtime's descriptors close-on-exec")
}

/// Descriptors for executing `quai-init`: stdio and the preserved ones
/// inherited, a copy of the exec fifo inherited (returned: its number goes
/// on quai-init's command line), every other descriptor close-on-exec.
/// `filter_installed` when a seccomp filter, which may refuse close_range,
/// is on already ([`mark_descriptors_cloexec`] ran before it).
pub fn prepare_handover(
    preserve_fds: u32,
    exec_fifo: BorrowedFd,
    filter_installed: bool,
) -> Result<OwnedFd> {
    if !filter_installed {
        mark_descriptors_cloexec(preserve_fds)?;
    }
    for fd in 3..3 + preserve_fds as i32 {
        if sys::fd_is_open(fd) {
            sys::clear_cloexec(fd).ctx(|| format!("pass descriptor {fd} to the container"))?;
        }
    }
    let fifo = rustix::io::fcntl_dupfd_cloexec(exec_fifo, 3 + preserve_fds as i32)
        .ctx(|| "duplicate the exec fifo for quai-init")?;
    rustix::io::fcntl_setfd(&fifo, rustix::io::FdFlags::empty())
        .ctx(|| "pass the exec fifo to quai-init")?;
    Ok(fifo)
}

fn close_listed_from(first: u32) -> Result<()> {
    let fds: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .ctx(|| "list /proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // The descriptor of the listing itself is gone by now: EBADF is fine.
        sys::close_fd(fd);
    }
    Ok(())
}

/// Replaces this process with the container's program. Returns only on
/// failure.
pub fn exec(process: &Process, path: &Path, env: &[(String, String)]) -> RuntimeError {
    let args = process.args().clone().unwrap_or_default();
    let mut command = Command::new(path);
    if let Some((arg0, rest)) = args.split_first() {
        command.arg0(arg0).args(rest);
    }
    command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    let error = command.exec();
    RuntimeError::io(format!("exec {}", path.display()), error)
}

/// Closes every descriptor that is not in `keep` (sorted or not).
pub fn close_all_except(keep: &[i32]) -> Result<()> {
    let mut keep: Vec<i32> = keep.iter().copied().filter(|fd| *fd >= 0).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut next = 0u32;
    for fd in keep {
        let fd = fd as u32;
        if fd > next {
            sys::close_fd_range(next, fd - 1).ctx(|| "close inherited descriptors")?;
        }
        next = fd + 1;
    }
    sys::close_fds_from(next, false).ctx(|| "close inherited descriptors")
}

/// Raw number of a descriptor, for [`close_all_except`].
pub fn raw(fd: BorrowedFd) -> i32 {
    fd.as_raw_fd()
}

/// A C string for names handed to the kernel.
/// A path as a C string for execve.
pub fn path_cstring(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| RuntimeError::option("process.args[0]", "contains a NUL byte"))
}

pub fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| RuntimeError::option(what, "contains a NUL byte"))
}
