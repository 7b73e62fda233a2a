//! `exec`: a new process inside a running container. It joins every
//! namespace of the container's init (through descriptors opened from
//! /proc/<init>/ns and checked against the init's identity), takes the
//! init's root directory, then goes through the same final steps as the
//! init. It lands in the container's pid namespace as the caller's child.

use std::convert::Infallible;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Process};
use rustix::fs::{Mode, OFlags};
use rustix::process::{waitpid, DumpableBehavior, Pid, Signal, WaitOptions};

use crate::config::NamespaceRequest;
use crate::error::{IoContext, Result, RuntimeError};
use crate::process::namespaces::NamespaceFile;
use crate::process::setup;
use crate::process::spawn::{report_and_exit, spawn, SpawnPlan};
use crate::process::sync::{self, Message, SyncSocket};
use crate::process::sys;
use crate::procfs::ProcessIdentity;
use crate::runtime::{write_pid_file, ExecOptions, Stdio};
use crate::state::{ContainerRecord, ContainerStatus};

/// Checks a process given to `exec` the way config.json's is checked.
pub fn validate(process: &Process) -> Result<()> {
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => {
            return Err(RuntimeError::config(
                "process.args",
                "must name a program to run",
            ))
        }
    }
    if !process.cwd().is_absolute() {
        return Err(RuntimeError::config(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    for (i, var) in process.env().iter().flatten().enumerate() {
        if !var.contains('=') || var.starts_with('=') {
            return Err(RuntimeError::config(
                format!("process.env[{i}]"),
                format!("{var:?} is not of the form NAME=value"),
            ));
        }
    }
    crate::security::validate_process(process)
}

/// Name of a namespace under /proc/PID/ns.
fn proc_ns_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

struct ExecContext<'a> {
    id: &'a str,
    process: &'a Process,
    root: BorrowedFd<'a>,
    sync: &'a SyncSocket,
    console_socket: Option<BorrowedFd<'a>>,
    stdio: Option<[BorrowedFd<'a>; 3]>,
    preserve_fds: u32,
    seccomp: Option<&'a crate::seccomp::Filter>,
}

pub fn run(
    record: &ContainerRecord,
    init: ProcessIdentity,
    process: &Process,
    options: ExecOptions,
) -> Result<i32> {
    // The container's seccomp profile applies to its exec'd processes too.
    let seccomp = crate::config::seccomp_filter(&record.spec)?;
    let req = NamespaceRequest::from_spec(&record.spec);
    // User first, mount last: the order in which they can be joined.
    let order = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Time,
        LinuxNamespaceType::Mount,
    ];
    let mut files = Vec::new();
    for typ in order.into_iter().filter(|t| req.isolates(*t)) {
        let path = format!("/proc/{}/ns/{}", init.pid, proc_ns_name(typ));
        files.push(NamespaceFile::open(typ, Path::new(&path))?);
    }
    let root_path = format!("/proc/{}/root", init.pid);
    let root: OwnedFd = rustix::fs::open(
        &root_path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open the root of container {}", record.id))?;
    // Everything above was opened through the pid: it must still be the
    // container's init, not a process that recycled its number.
    if !init.is_alive() {
        return Err(RuntimeError::WrongState {
            id: record.id.clone(),
            status: oci_spec::runtime::ContainerState::Stopped,
            reason: "its init exited".into(),
        });
    }
    let (runtime_end, child_end) = sync::pair().ctx(|| "create the sync socket")?;
    let stdio = match &options.stdio {
        Stdio::Inherit => None,
        Stdio::Fds([a, b, c]) => Some([a.as_fd(), b.as_fd(), c.as_fd()]),
    };
    let ctx = ExecContext {
        id: &record.id,
        process,
        root: root.as_fd(),
        sync: &child_end,
        console_socket: options.console_socket.as_ref().map(|s| s.as_fd()),
        stdio,
        preserve_fds: options.preserve_fds,
        seccomp: seccomp.as_ref(),
    };
    let plan = SpawnPlan {
        new_flags: 0,
        join: &files,
        time_offsets: None,
        into_cgroup: None,
    };
    let pid = spawn(&plan, &runtime_end, &child_end, || exec_child(&ctx))?.pid;
    drop(child_end);
    // The process waits until it is in the container's cgroup (limits,
    // accounting, `kill --all` and `delete` must cover it).
    let joined = match &record.cgroup {
        Some(cgroup) => cgroup.add_process(pid).map_err(RuntimeError::from),
        None => Ok(()),
    }
    .and_then(|()| {
        runtime_end
            .send(&Message::Proceed {
                state: String::new(),
            })
            .ctx(|| "signal the exec'd process")
    });
    let result = loop {
        if let Err(e) = &joined {
            break Err(RuntimeError::Init {
                step: "join the container's cgroup".into(),
                message: e.to_string(),
            });
        }
        match runtime_end
            .recv_with_fd()
            .ctx(|| "read from the exec'd process")
        {
            Ok(Some((Message::Ready, _))) => break Ok(()),
            Ok(Some((Message::SeccompListener, fd))) => {
                let mut state = ContainerStatus {
                    record: record.clone(),
                    status: oci_spec::runtime::ContainerState::Running,
                }
                .oci_state();
                state.set_pid(Some(pid));
                if let Err(e) = crate::runtime::hand_over_listener(seccomp.as_ref(), fd, &state) {
                    break Err(e);
                }
            }
            Ok(Some((Message::Failed { step, message }, _))) => {
                break Err(RuntimeError::Init { step, message })
            }
            Ok(other) => {
                break Err(RuntimeError::Init {
                    step: "set up".into(),
                    message: match other {
                        None => "the process exited without reporting why".into(),
                        Some((m, _)) => format!("unexpected message {m:?}"),
                    },
                })
            }
            Err(e) => break Err(e),
        }
    };
    let result = result.and_then(|()| match &options.pid_file {
        Some(path) => write_pid_file(path, pid),
        None => Ok(()),
    });
    if let Err(e) = result {
        if let Some(p) = Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
            let _ = waitpid(Some(p), WaitOptions::empty());
        }
        return Err(e);
    }
    Ok(pid)
}

fn exec_child(ctx: &ExecContext) {
    let mut step = "start";
    let error = match exec_steps(ctx, &mut step) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    report_and_exit(ctx.sync, step, &error)
}

fn exec_steps(ctx: &ExecContext, step: &mut &'static str) -> Result<Infallible> {
    let process = ctx.process;
    *step = "close inherited descriptors";
    let mut keep: Vec<i32> = (0..3 + ctx.preserve_fds as i32).collect();
    keep.push(setup::raw(ctx.sync.as_fd()));
    keep.push(setup::raw(ctx.root));
    keep.extend(ctx.console_socket.map(setup::raw));
    keep.extend(ctx.stdio.iter().flatten().map(|fd| setup::raw(*fd)));
    setup::close_all_except(&keep)?;
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .ctx(|| "make the process non-dumpable")?;
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .ctx(|| "set the parent-death signal")?;

    *step = "wait for the runtime";
    match ctx.sync.recv().ctx(|| "read from the runtime")? {
        Some(Message::Proceed { .. }) => {}
        other => {
            return Err(RuntimeError::Init {
                step: "wait for the runtime".into(),
                message: format!("expected Proceed, got {other:?}"),
            })
        }
    }

    *step = "enter the container's root";
    rustix::process::fchdir(ctx.root).ctx(|| "enter the container's root")?;
    rustix::process::chroot(".").ctx(|| "chroot into the container's root")?;
    std::env::set_current_dir("/").ctx(|| "chdir /")?;

    *step = "set up stdio";
    if process.terminal().unwrap_or(false) {
        rustix::process::setsid().ctx(|| "start a new session")?;
        let socket = ctx.console_socket.ok_or_else(|| {
            RuntimeError::option("--console-socket", "a terminal needs a console socket")
        })?;
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height(), b.width()));
        let slave = setup::open_terminal(socket, size)?;
        setup::attach_terminal(slave.as_fd())?;
    } else if let Some(stdio) = ctx.stdio {
        for (target, fd) in stdio.iter().enumerate() {
            sys::dup_onto(*fd, target as i32).ctx(|| format!("set up descriptor {target}"))?;
        }
    }

    *step = "set process attributes";
    setup::apply_attributes(process)?;
    let name = setup::cstring(&format!("_ses.{}", ctx.id), "container id")?;
    if let Err(e) = sys::join_session_keyring(&name) {
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(RuntimeError::io("join the container's session keyring", e));
        }
    }
    crate::security::set_exec_labels(
        process.apparmor_profile().as_deref(),
        process.selinux_label().as_deref(),
    )?;

    *step = "find the program";
    let env = setup::environment(process);
    let executable = setup::resolve_executable(process, &env)?;

    // As in the init: seccomp right before execve, or before the privileges
    // go when the kernel needs them to take the filter, or a notification fd
    // must reach the runtime.
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let early_seccomp = ctx.seccomp.filter(|f| !no_new_privs || f.needs_listener());
    if let Some(filter) = early_seccomp {
        *step = "install the seccomp filter";
        setup::mark_descriptors_cloexec(ctx.preserve_fds)?;
        setup::install_seccomp(filter, ctx.sync)?;
    }

    *step = "drop privileges";
    setup::drop_privileges(process)?;
    setup::enter_cwd(process)?;

    *step = "report ready";
    // Before Ready: once the runtime has Ready it may exit (exec -d,
    // create), and its death must not kill this process any more.
    let _ = rustix::process::set_parent_process_death_signal(None);
    ctx.sync
        .send(&Message::Ready)
        .ctx(|| "report to the runtime")?;
    setup::seal_descriptors(ctx.preserve_fds)?;
    if early_seccomp.is_none() {
        if let Some(filter) = ctx.seccomp {
            filter.install().map_err(|e| {
                RuntimeError::io(
                    "install the seccomp filter",
                    std::io::Error::other(e.to_string()),
                )
            })?;
        }
    }
    let error = setup::exec(process, &executable, &env);
    let status = if error.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    };
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("quai-runtime: {error}\n").as_bytes(),
    );
    sys::exit_now(status)
}
