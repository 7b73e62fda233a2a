//! seccomp filters compiled by quai, installed in the real kernel. A filter
//! can only be installed by the process it will confine, so each case forks
//! a child from this single-threaded harness (no libtest threads: the test
//! target has `harness = false`), installs the filter there and reports
//! through its exit status.
//!
//! Run one case: `cargo test -p quai-runtime --test seccomp_kernel -- NAME`.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;
use quai_runtime::seccomp::{self, DockerProfileTarget, Filter};
use quai_testutil::TempRoot;

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Exited(i32),
    Killed(i32),
}

/// Exit codes a child uses to say what it saw.
const OK: i32 = 0;
const WRONG: i32 = 1;
const INSTALL_FAILED: i32 = 100;

fn profile(json: &str) -> Filter {
    let seccomp: LinuxSeccomp = serde_json::from_str(json).expect("test profile parses");
    seccomp::compile(&seccomp).expect("test profile compiles")
}

/// Forks; the child runs `body` and exits with what it returns. The harness
/// is single-threaded, so the child may allocate and use std freely.
fn in_child(body: impl FnOnce() -> i32) -> Ended {
    // SAFETY: the harness runs no other threads, so the child inherits a
    // consistent heap and no held locks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(WRONG);
        // SAFETY: leaves the child without running the parent's exit hooks.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` outlives the call.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFSIGNALED(status) {
        Ended::Killed(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    }
}

/// no_new_privs, then the filter: what an unprivileged container gets.
fn confine(filter: &Filter) -> Option<OwnedFd> {
    // SAFETY: plain prctl with integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_NO_NEW_PRIVS");
    match filter.install() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("install: {e}");
            // SAFETY: ends the child right away.
            unsafe { libc::_exit(INSTALL_FAILED) }
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// mkdir(2) of `path`; Ok or the errno.
fn mkdir(path: &Path) -> Result<(), i32> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in path");
    // SAFETY: `c` is a valid C string for the duration of the call.
    let rc = unsafe { libc::syscall(libc::SYS_mkdir, c.as_ptr(), 0o755) };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Raw lseek(-1, offset, whence): EBADF unless a filter answers first.
fn lseek_errno(offset: u64, whence: u64) -> i32 {
    // SAFETY: an invalid fd makes the kernel fail the call; no memory is
    // passed.
    let rc = unsafe { libc::syscall(libc::SYS_lseek, -1i64, offset, whence) };
    if rc == -1 {
        errno()
    } else {
        0
    }
}

fn deny_mkdir_with_eperm() {
    let root = TempRoot::new("seccomp");
    let target = root.path().join("denied");
    let filter = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let ended = in_child(|| {
        confine(&filter);
        match mkdir(&target) {
            Err(libc::EPERM) => OK,
            _ => WRONG,
        }
    });
    assert_eq!(ended, Ended::Exited(OK));
    assert!(!target.exists(), "the denied mkdir must not have happened");
    // Without the filter the same call works: the EPERM came from seccomp.
    assert_eq!(
        in_child(|| mkdir(&target).map_or(WRONG, |_| OK)),
        Ended::Exited(OK)
    );
}

fn errno_ret_is_honoured() {
    let root = TempRoot::new("seccomp");
    let target = root.path().join("denied");
    let filter = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":18}]}"#,
    );
    let ended = in_child(|| {
        confine(&filter);
        match mkdir(&target) {
            Err(libc::EXDEV) => OK,
            _ => WRONG,
        }
    });
    assert_eq!(ended, Ended::Exited(OK));
}

fn default_errno_ret_is_honoured() {
    // Everything but what exit needs is denied with EXDEV.
    let filter = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":18,"syscalls":[
            {"names":["exit","exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let ended = in_child(|| {
        confine(&filter);
        // SAFETY: getppid has no arguments.
        let rc = unsafe { libc::syscall(libc::SYS_getppid) };
        if rc == -1 && errno() == libc::EXDEV {
            OK
        } else {
            WRONG
        }
    });
    assert_eq!(ended, Ended::Exited(OK));
}

fn kill_kills_with_sigsys() {
    let root = TempRoot::new("seccomp");
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
    ] {
        let filter = profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {{"names":["mkdir"],"action":"{action}"}}]}}"#
        ));
        let target = root.path().join("killed");
        let ended = in_child(|| {
            confine(&filter);
            let _ = mkdir(&target);
            WRONG
        });
        assert_eq!(ended, Ended::Killed(libc::SIGSYS), "{action}");
        assert!(!target.exists());
    }
}

/// A second thread makes the forbidden call while the main thread waits for
/// it: KILL_PROCESS ends both, KILL_THREAD only the caller.
fn kill_process_kills_the_whole_thread_group() {
    let root = TempRoot::new("seccomp");
    let target = root.path().join("killed");
    let run = |action: &str| {
        let filter = profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {{"names":["mkdir"],"action":"{action}"}}]}}"#
        ));
        let target = target.clone();
        in_child(move || {
            confine(&filter);
            // Never joined: std's join panics on a thread the kernel killed.
            let _caller = std::thread::spawn(move || {
                let _ = mkdir(&target);
                // Survived the call: keep the thread count at two forever.
                loop {
                    std::thread::park();
                }
            });
            // Wait until the caller thread has vanished (KILL_THREAD); with
            // KILL_PROCESS this thread dies with it.
            while std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count()) > 1 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            7
        })
    };
    assert_eq!(run("SCMP_ACT_KILL_PROCESS"), Ended::Killed(libc::SIGSYS));
    assert_eq!(run("SCMP_ACT_KILL_THREAD"), Ended::Exited(7));
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    const SYS_SECCOMP: i32 = 1;
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(if code == SYS_SECCOMP { 42 } else { WRONG }) };
}

fn trap_delivers_sigsys() {
    let root = TempRoot::new("seccomp");
    let target = root.path().join("trapped");
    let filter = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_TRAP"}]}"#,
    );
    let ended = in_child(|| {
        // SAFETY: installs a handler that only calls _exit; the sigaction
        // struct is zeroed and filled before use.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigsys as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut());
        }
        confine(&filter);
        let _ = mkdir(&target);
        WRONG
    });
    assert_eq!(
        ended,
        Ended::Exited(42),
        "the SIGSYS handler saw a seccomp trap"
    );
    assert!(!target.exists());
}

fn log_allows() {
    let root = TempRoot::new("seccomp");
    let target = root.path().join("logged");
    let filter = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"],"syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_LOG"}]}"#,
    );
    let ended = in_child(|| {
        confine(&filter);
        mkdir(&target).map_or(WRONG, |_| OK)
    });
    assert_eq!(ended, Ended::Exited(OK));
    assert!(target.is_dir());
}

fn personality_only_with_the_query_value() {
    let filter = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["personality"],"action":"SCMP_ACT_ERRNO",
             "args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_NE"}]}]}"#,
    );
    let ended = in_child(|| {
        confine(&filter);
        // SAFETY: personality takes an integer; 0xffffffff only queries.
        let query = unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) };
        // SAFETY: as above; 0 would set the default persona (denied here).
        let set = unsafe { libc::syscall(libc::SYS_personality, 0u64) };
        let denied = set == -1 && errno() == libc::EPERM;
        if query >= 0 && denied {
            OK
        } else {
            WRONG
        }
    });
    assert_eq!(ended, Ended::Exited(OK));
}

/// Each operator on lseek's 64-bit offset (argument 1) and on whence
/// (argument 2), in the kernel: a matching rule answers EACCES, otherwise
/// the call fails on its bad fd with EBADF.
fn every_operator_in_the_kernel() {
    const BIG: u64 = 0x1_0000_0000;
    // (operator, value, valueTwo, offset passed, whether the rule matches)
    let cases: &[(&str, u64, u64, u64, bool)] = &[
        ("SCMP_CMP_EQ", BIG + 5, 0, BIG + 5, true),
        ("SCMP_CMP_EQ", BIG + 5, 0, 5, false),
        ("SCMP_CMP_NE", BIG + 5, 0, 5, true),
        ("SCMP_CMP_NE", BIG + 5, 0, BIG + 5, false),
        ("SCMP_CMP_LT", BIG, 0, 0xffff_ffff, true),
        ("SCMP_CMP_LT", BIG, 0, BIG, false),
        ("SCMP_CMP_LE", BIG, 0, BIG, true),
        ("SCMP_CMP_LE", BIG, 0, BIG + 1, false),
        ("SCMP_CMP_GT", 0xffff_ffff, 0, BIG, true),
        ("SCMP_CMP_GT", BIG, 0, BIG, false),
        ("SCMP_CMP_GT", BIG, 0, 0xffff_fffe, false),
        ("SCMP_CMP_GE", BIG + 3, 0, BIG + 3, true),
        ("SCMP_CMP_GE", BIG + 3, 0, BIG + 2, false),
        ("SCMP_CMP_GE", BIG + 3, 0, u64::MAX, true),
        (
            "SCMP_CMP_MASKED_EQ",
            0xff_0000_00ff,
            0x12_0000_0034,
            0xab12_cdef_0000_ff34,
            false,
        ),
        (
            "SCMP_CMP_MASKED_EQ",
            0xff_0000_00ff,
            0x12_0000_0034,
            0xabcd_ef12_0000_ff34,
            true,
        ),
        (
            "SCMP_CMP_MASKED_EQ",
            0xff_0000_00ff,
            0x12_0000_0034,
            0xabcd_ef12_0000_ff35,
            false,
        ),
    ];
    for &(op, value, value_two, offset, matches) in cases {
        let filter = profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {{"names":["lseek"],"action":"SCMP_ACT_ERRNO","errnoRet":13,
                  "args":[{{"index":1,"value":{value},"valueTwo":{value_two},"op":"{op}"}},
                          {{"index":2,"value":0,"op":"SCMP_CMP_EQ"}}]}}]}}"#
        ));
        let expected = if matches { libc::EACCES } else { libc::EBADF };
        let ended = in_child(|| {
            confine(&filter);
            // The second condition (whence == 0) must hold too.
            let other_whence = lseek_errno(offset, 1);
            if lseek_errno(offset, 0) == expected && other_whence == libc::EBADF {
                OK
            } else {
                WRONG
            }
        });
        assert_eq!(
            ended,
            Ended::Exited(OK),
            "{op} value {value:#x}/{value_two:#x} offset {offset:#x}"
        );
    }
}

fn tsync_reaches_other_threads() {
    let root = TempRoot::new("seccomp");
    let target = root.path().join("denied");
    let filter = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let ended = in_child(|| {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let target = target.clone();
        let other = std::thread::spawn(move || {
            go_rx.recv().expect("signal from the main thread");
            mkdir(&target)
        });
        confine(&filter);
        go_tx.send(()).expect("other thread alive");
        match other.join() {
            Ok(Err(libc::EPERM)) => OK,
            _ => WRONG,
        }
    });
    assert_eq!(ended, Ended::Exited(OK));
    assert!(!target.exists());
}

fn docker_default_profile_runs_busybox() {
    let json = std::fs::read(quai_testutil::shared_reference(
        "docker-default-seccomp.json",
    ))
    .expect("read Docker's default profile");
    let caps: Vec<String> = seccomp::DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .collect();
    let oci = seccomp::from_docker_profile(&json, &DockerProfileTarget::host(&caps))
        .expect("Docker's profile converts");
    let filter = seccomp::compile(&oci).expect("Docker's profile compiles");
    let (mut read_end, write_end) = UnixStream::pair().expect("socketpair");
    let ended = in_child(|| {
        // SAFETY: dup2 onto stdout of the child; both fds are valid.
        unsafe { libc::dup2(write_end.as_raw_fd(), 1) };
        confine(&filter);
        let program = CString::new(quai_testutil::BUSYBOX).expect("path");
        let argv = [
            CString::new("sh").expect("arg"),
            CString::new("-c").expect("arg"),
            CString::new("echo ok").expect("arg"),
        ];
        let mut pointers: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        pointers.push(std::ptr::null());
        // SAFETY: program and argv are valid NUL-terminated strings and a
        // NULL-terminated array that outlive the call.
        unsafe { libc::execv(program.as_ptr(), pointers.as_ptr()) };
        WRONG
    });
    drop(write_end);
    let mut output = String::new();
    read_end
        .read_to_string(&mut output)
        .expect("read child output");
    assert_eq!(ended, Ended::Exited(0));
    assert_eq!(output, "ok\n");

    // Under the same filter, acct (which the profile grants only with
    // CAP_SYS_PACCT) is denied with EPERM, and a syscall number newer than
    // the profile gets ENOSYS.
    let ended = in_child(|| {
        confine(&filter);
        // SAFETY: acct(NULL) only turns accounting off; denied here anyway.
        let acct = unsafe { libc::syscall(libc::SYS_acct, std::ptr::null::<libc::c_char>()) };
        let acct_errno = errno();
        // SAFETY: a syscall number no kernel has; no arguments are read.
        let newer = unsafe { libc::syscall(1000) };
        let newer_errno = errno();
        if acct == -1 && acct_errno == libc::EPERM && newer == -1 && newer_errno == libc::ENOSYS {
            OK
        } else {
            WRONG
        }
    });
    assert_eq!(ended, Ended::Exited(OK));
}

/// SCMP_ACT_NOTIFY end to end: the child installs the filter and passes the
/// listener fd to the "runtime" (this process) over a socketpair; the
/// runtime hands it to the "agent" (also this process) at listenerPath with
/// the container process state; the agent answers the child's mkdir.
fn notify_reaches_an_agent_that_answers() {
    let root = TempRoot::new("seccomp");
    let agent_path = root.path().join("agent.sock");
    let target = root.path().join("notified");
    let agent = UnixListener::bind(&agent_path).expect("bind agent socket");
    let filter = profile(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"{}","listenerMetadata":"m",
            "flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls":[{{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}}]}}"#,
        agent_path.display()
    ));
    assert!(filter.needs_listener());
    let (runtime_end, child_end) = UnixStream::pair().expect("socketpair");

    // SAFETY: single-threaded harness; see in_child.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let listener = confine(&filter).expect("a listener fd with SCMP_ACT_NOTIFY");
        let sent = seccomp::send_fd(child_end.as_fd(), listener.as_fd(), b"L");
        drop(listener);
        let code = match (sent, mkdir(&target)) {
            (Ok(()), Err(libc::EROFS)) => OK,
            _ => WRONG,
        };
        // SAFETY: ends the child.
        unsafe { libc::_exit(code) };
    }

    // The runtime side: receive the fd, hand it to the agent.
    let mut byte = [0u8; 1];
    let (listener, _) = seccomp::recv_fd(runtime_end.as_fd(), &mut byte).expect("listener fd");
    let state = format!(
        r#"{{"ociVersion":"1.2.0","fds":["seccompFd"],"pid":{pid},"metadata":"m",
            "state":{{"ociVersion":"1.2.0","id":"c","status":"creating","pid":{pid},"bundle":"/b"}}}}"#
    );
    let path = filter.listener_path().expect("listener path").to_owned();
    seccomp::send_listener(&path, listener.as_fd(), state.as_bytes()).expect("send to agent");
    drop(listener);

    // The agent side: one connection with the state and the fd.
    let (mut connection, _) = agent.accept().expect("accept");
    let mut buffer = vec![0u8; 4096];
    let (notify_fd, n) = seccomp::recv_fd(connection.as_fd(), &mut buffer).expect("agent fd");
    let mut received = buffer[..n].to_vec();
    connection
        .read_to_end(&mut received)
        .expect("rest of the state");
    assert_eq!(received, state.as_bytes());

    // SAFETY: zeroed plain-old-data structs filled by the kernel / by us;
    // the ioctls take pointers to them, valid for the calls.
    unsafe {
        let mut notification: libc::seccomp_notif = std::mem::zeroed();
        let rc = libc::ioctl(
            notify_fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut notification,
        );
        assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
        assert_eq!(notification.data.nr as i64, libc::SYS_mkdir);
        assert_eq!(notification.pid as i32, pid);
        let mut response: libc::seccomp_notif_resp = std::mem::zeroed();
        response.id = notification.id;
        response.error = -libc::EROFS;
        let rc = libc::ioctl(
            notify_fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut response,
        );
        assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == OK,
        "status {status:#x}"
    );
    assert!(!target.exists(), "the agent refused the mkdir");
}

/// int 0x80 from a 64-bit process is an i386 syscall: a foreign
/// architecture unless the profile lists SCMP_ARCH_X86.
#[cfg(target_arch = "x86_64")]
fn foreign_architecture_calls() {
    fn i386_getpid() -> i64 {
        let mut result: i64 = 20; // __NR_getpid on i386
                                  // SAFETY: the i386 getpid takes no arguments and touches no memory.
        unsafe {
            std::arch::asm!("int 0x80", inout("rax") result, options(nostack));
        }
        result
    }
    let only_native = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let ended = in_child(|| {
        confine(&only_native);
        i386_getpid();
        WRONG
    });
    assert_eq!(ended, Ended::Killed(libc::SIGSYS), "bad-arch action");

    let with_x86 = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":18}]}"#,
    );
    let ended = in_child(|| {
        confine(&with_x86);
        if i386_getpid() == -i64::from(libc::EXDEV) {
            OK
        } else {
            WRONG
        }
    });
    assert_eq!(
        ended,
        Ended::Exited(OK),
        "i386 getpid answered by the x86 rules"
    );
}

fn install_without_privilege_explains_itself() {
    let filter = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}"#);
    let ended = in_child(|| {
        // Drop every capability (no CAP_SYS_ADMIN) and leave no_new_privs
        // unset: the kernel refuses the filter.
        #[repr(C)]
        struct CapHeader {
            version: u32,
            pid: i32,
        }
        const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
        let header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        // Two (effective, permitted, inheritable) triples, all empty.
        let data = [0u32; 6];
        // SAFETY: header and data are valid for capset's v3 layout.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
        assert_eq!(rc, 0, "capset");
        match filter.install() {
            Err(e) if e.to_string().contains("no_new_privs") => OK,
            _ => WRONG,
        }
    });
    assert_eq!(ended, Ended::Exited(OK));
}

fn main() {
    quai_testutil::require_root();
    let cases: Vec<(&str, fn())> = vec![
        ("deny_mkdir_with_eperm", deny_mkdir_with_eperm),
        ("errno_ret_is_honoured", errno_ret_is_honoured),
        (
            "default_errno_ret_is_honoured",
            default_errno_ret_is_honoured,
        ),
        ("kill_kills_with_sigsys", kill_kills_with_sigsys),
        (
            "kill_process_kills_the_whole_thread_group",
            kill_process_kills_the_whole_thread_group,
        ),
        ("trap_delivers_sigsys", trap_delivers_sigsys),
        ("log_allows", log_allows),
        (
            "personality_only_with_the_query_value",
            personality_only_with_the_query_value,
        ),
        ("every_operator_in_the_kernel", every_operator_in_the_kernel),
        ("tsync_reaches_other_threads", tsync_reaches_other_threads),
        (
            "docker_default_profile_runs_busybox",
            docker_default_profile_runs_busybox,
        ),
        (
            "notify_reaches_an_agent_that_answers",
            notify_reaches_an_agent_that_answers,
        ),
        #[cfg(target_arch = "x86_64")]
        ("foreign_architecture_calls", foreign_architecture_calls),
        (
            "install_without_privilege_explains_itself",
            install_without_privilege_explains_itself,
        ),
    ];
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(case) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
