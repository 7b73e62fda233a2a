//! The system calls the process lifecycle needs that have no safe wrapper in
//! rustix. Every `unsafe` block of the process code lives here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Result of [`clone_process`] as seen by each side.
pub enum Cloned {
    Parent(i32),
    Child,
}

/// fork(2) with namespace flags: the child starts in new namespaces of the
/// kinds in `flags` (CLONE_NEW*), optionally with CLONE_PARENT.
///
/// The caller must be single-threaded: the child continues on a copy of the
/// caller's stack and heap, which is only sound when no other thread could
/// have held a lock (malloc, stdio) at the moment of the call.
pub fn clone_process(flags: libc::c_int) -> io::Result<Cloned> {
    let flags = (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a NULL stack makes clone behave like fork: the child gets a
    // copy-on-write copy of this address space and returns here. The
    // caller guarantees the process is single-threaded (see above), so no
    // lock is held by a thread that does not exist in the child. The
    // remaining arguments (parent_tid, child_tid, tls) are unused without
    // the matching CLONE_* flags and passed as zero.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent(pid as i32)),
    }
}

/// `struct clone_args` of clone3(2), up to the `cgroup` field (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Start the child in the cgroup2 directory given by `CloneArgs::cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// [`clone_process`] whose child starts as a member of the cgroup2
/// directory `cgroup` (clone3 with CLONE_INTO_CGROUP, Linux 5.7): no write
/// to `cgroup.procs` afterwards, which would take the kernel's global
/// threadgroup lock for writing and wait for an RCU grace period
/// (milliseconds) on every container start. Same contract as
/// [`clone_process`].
pub fn clone_process_into_cgroup(flags: libc::c_int, cgroup: BorrowedFd<'_>) -> io::Result<Cloned> {
    let args = CloneArgs {
        flags: (flags as u32 as u64) | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: as in clone_process: a zero stack makes clone3 behave like
    // fork (the child returns here on a copy-on-write copy of this address
    // space) and the caller is single-threaded. `args` is a valid
    // clone_args of the size passed, alive for the duration of the call;
    // the pointers in it (pidfd, tids, set_tid) are zero and unused.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent(pid as i32)),
    }
}

/// Ends the calling process at once, without running destructors, atexit
/// handlers or flushing stdio buffers that belong to the parent's copy.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// Closes every file descriptor from `first` upwards, or with `cloexec`
/// marks them close-on-exec instead.
pub fn close_fds_from(first: u32, cloexec: bool) -> io::Result<()> {
    close_range(
        first,
        u32::MAX,
        if cloexec {
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int
        } else {
            0
        },
    )
}

/// Closes the descriptors `first..=last`.
pub fn close_fd_range(first: u32, last: u32) -> io::Result<()> {
    close_range(first, last, 0)
}

fn close_range(first: u32, last: u32, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: close_range only acts on this process' descriptor table; the
    // caller no longer uses any descriptor in the range (or, with
    // CLOSE_RANGE_CLOEXEC, only until execve).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the execution domain (personality(2)).
pub fn set_personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: personality takes a plain integer and changes only how the
    // kernel treats this process on its next execve.
    let ret = unsafe { libc::personality(persona) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// ioprio_set(IOPRIO_WHO_PROCESS, self, class << 13 | level).
pub fn set_io_priority(class: u32, level: u32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: u32 = 13;
    let prio = (class << IOPRIO_CLASS_SHIFT) | level;
    // SAFETY: integer arguments only; 0 designates the calling process.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Joins a new session keyring named `name` (KEYCTL_JOIN_SESSION_KEYRING)
/// and restricts it to its possessor and owner, so that containers do not
/// share the host's or each other's keys.
pub fn join_session_keyring(name: &std::ffi::CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    const KEYCTL_SETPERM: libc::c_int = 5;
    // The kernel's default for a joined keyring (possessor: all; user:
    // view, read, link) plus user search, as runc sets it, so that a
    // process whose uid changes can still find its keys.
    const PERM: u32 = 0x3f1b_0000;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let serial =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if serial == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, serial, PERM) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Duplicates `fd` onto descriptor number `target` (dup3 without
/// O_CLOEXEC: the copy survives execve, as stdio must).
pub fn dup_onto(fd: BorrowedFd, target: i32) -> io::Result<()> {
    if fd.as_raw_fd() == target {
        // dup3 refuses equal descriptors; just make sure it is inherited.
        return rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).map_err(Into::into);
    }
    // SAFETY: `target` is a descriptor number this process reserves for
    // stdio; whatever it held is replaced atomically, as the caller intends.
    let mut owned = unsafe { OwnedFd::from_raw_fd(target) };
    let r = rustix::io::dup3(fd, &mut owned, rustix::io::DupFlags::empty());
    // The descriptor must stay open under its number: forget the owner.
    std::mem::forget(owned);
    r.map_err(Into::into)
}

/// Makes sure descriptors 0, 1 and 2 are open (on /dev/null if not), so that
/// no descriptor the runtime opens later lands on a stdio number and leaks
/// into a container as its stdin/stdout/stderr.
pub fn ensure_stdio_open() {
    for fd in 0..3 {
        if rustix::io::fcntl_getfd(
            // SAFETY: only used for a query that fails with EBADF when closed.
            unsafe { BorrowedFd::borrow_raw(fd) },
        )
        .is_err()
        {
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                use std::os::fd::IntoRawFd;
                let raw = null.into_raw_fd();
                if raw != fd {
                    let _ = dup_onto(
                        // SAFETY: `raw` was just opened and is owned here.
                        unsafe { BorrowedFd::borrow_raw(raw) },
                        fd,
                    );
                    // SAFETY: `raw` is owned by this function and not used after.
                    drop(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
    }
}

/// True when `fd` is an open descriptor of this process.
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: a borrowed descriptor used only for F_GETFD, which fails with
    // EBADF and touches nothing when `fd` is not open.
    rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).is_ok()
}

/// Marks `fd` inheritable across execve.
pub fn clear_cloexec(fd: i32) -> io::Result<()> {
    // SAFETY: the caller checked `fd` is open and keeps it open.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).map_err(Into::into)
}

/// The CLONE_NEW* type of the namespace `fd` refers to (NS_GET_NSTYPE).
pub fn namespace_type(fd: BorrowedFd) -> io::Result<i32> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the type as the
    // ioctl result; `fd` is a valid open descriptor.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Moves the calling process into a new time namespace for its future
/// children (CLONE_NEWTIME cannot be passed to clone(2)).
pub fn unshare_time_namespace() -> io::Result<()> {
    // SAFETY: CLONE_NEWTIME does not touch the descriptor table or memory
    // shared with other threads (the concern of unshare_unsafe); it only
    // changes the namespace future children are created in.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWTIME) }
        .map_err(Into::into)
}

/// Moves the calling process into a new cgroup namespace rooted at its
/// current cgroup. The init does this after the runtime has moved it into
/// the container's cgroup, so that the container sees that cgroup as `/`.
pub fn unshare_cgroup_namespace() -> io::Result<()> {
    // SAFETY: CLONE_NEWCGROUP only changes this process's view of cgroup
    // paths; it does not unshare the descriptor table or memory that other
    // threads might share (the concern of unshare_unsafe).
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }
        .map_err(Into::into)
}

/// The signal numbered `n`, including real-time signals, refusing numbers
/// that are not signals or that glibc reserves for itself (32 and 33).
pub fn signal_from_number(n: i32) -> Option<rustix::process::Signal> {
    if !(1..=64).contains(&n) || n == 32 || n == 33 {
        return None;
    }
    // SAFETY: `n` is a valid Linux signal number (1..=64) and not one of
    // the two glibc keeps for its own threads.
    Some(unsafe { rustix::process::Signal::from_raw_unchecked(n) })
}

/// Blocks every signal for the calling thread and returns a signalfd that
/// receives them, plus the previous mask to restore.
pub fn signalfd_for_all() -> io::Result<(OwnedFd, libc::sigset_t)> {
    // SAFETY: sigset_t is plain data; sigfillset/sigprocmask/signalfd are
    // given valid pointers to sets that live across the calls. The caller
    // is single-threaded, so the process mask is this thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        if libc::sigprocmask(libc::SIG_BLOCK, &all, &mut old) == -1 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &all, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd == -1 {
            let e = io::Error::last_os_error();
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            return Err(e);
        }
        Ok((OwnedFd::from_raw_fd(fd), old))
    }
}

/// Restores a signal mask saved by [`signalfd_for_all`].
pub fn restore_signal_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is a set previously filled in by sigprocmask.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

/// Reads one pending signal number from a signalfd, if any.
pub fn read_signal(fd: BorrowedFd) -> io::Result<Option<i32>> {
    // SAFETY: signalfd_siginfo is plain data, zero is a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: the buffer is exactly one signalfd_siginfo, owned here.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            &mut info as *mut _ as *mut libc::c_void,
            size,
        )
    };
    if n == -1 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    if n as usize != size {
        return Err(io::Error::other("short read from signalfd"));
    }
    Ok(Some(info.ssi_signo as i32))
}

/// Makes the detached mount `mount_fd` read-only (mount_setattr(2)).
pub fn make_mount_read_only(mount_fd: BorrowedFd) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid mount_attr of the size passed, the empty
    // path with AT_EMPTY_PATH designates `mount_fd` itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount_fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): runs the program `fd`
/// refers to. Returns only on failure.
pub fn exec_fd(
    fd: BorrowedFd,
    argv: &[std::ffi::CString],
    envp: &[std::ffi::CString],
) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of pointers to
    // NUL-terminated strings that outlive the call; on success the call
    // does not return and this address space is gone.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}

/// close(2) of a descriptor number this process no longer uses.
pub fn close_fd(fd: u32) {
    // SAFETY: the caller gives up `fd`; nothing in this process uses it
    // after this call (errors such as EBADF are of no consequence).
    unsafe {
        libc::close(fd as libc::c_int);
    }
}
