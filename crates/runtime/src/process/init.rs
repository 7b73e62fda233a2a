//! The container's init process between clone and execve: namespaces are
//! already entered; it builds the root file system, runs the hooks that
//! belong to the container side, drops privileges, reports `Ready`, waits
//! on the exec fifo for `start`, and finally executes the program.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{ContainerState, LinuxPersonalityDomain, Spec, State as OciState};
use rustix::process::{DumpableBehavior, Signal};

use crate::config::sysctl_path;
use crate::error::{IoContext, Result, RuntimeError};
use crate::failpoint;
use crate::hooks::{self, HookKind};
use crate::process::setup;
use crate::process::spawn::report_and_exit;
use crate::process::sync::{Message, SyncSocket};
use crate::process::sys;
use crate::rootfs::{self, RootfsOptions};

/// Everything the init needs, prepared by the runtime before the clone.
pub struct InitContext<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub rootfs_options: RootfsOptions,
    pub sync: &'a SyncSocket,
    pub exec_fifo: BorrowedFd<'a>,
    pub console_socket: Option<BorrowedFd<'a>>,
    pub stdio: Option<[BorrowedFd<'a>; 3]>,
    pub preserve_fds: u32,
    pub no_new_keyring: bool,
    /// linux.seccomp compiled by the runtime before the clone.
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    /// Create the cgroup namespace after `Proceed` (not at clone time), once
    /// the runtime has moved this process into the container's cgroup.
    pub unshare_cgroupns: bool,
    /// `quai-init` (a sealed memfd): when present, the init executes it
    /// right after `Ready`, and it waits for `start` and executes the
    /// program, so that this binary never runs in a started container (see
    /// exe_guard). When absent, this binary is protected and the init does
    /// both itself.
    pub trampoline: Option<BorrowedFd<'a>>,
}

/// Runs in the cloned process; never returns.
pub fn container_init(ctx: &InitContext) {
    let mut step = "start";
    let error = match run(ctx, &mut step) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    report_and_exit(ctx.sync, step, &error)
}

/// Runs the remaining steps after `start`; the runtime that created the
/// container may be gone, so failures go to the container's stderr.
fn fail_after_start(error: RuntimeError, status: i32) -> ! {
    let _ = writeln!(std::io::stderr(), "quai-runtime: {error}");
    sys::exit_now(status)
}

fn run(ctx: &InitContext, step: &mut &'static str) -> Result<Infallible> {
    let process = ctx
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::config("process", "missing"))?;
    let linux = ctx.spec.linux().as_ref();

    *step = "close inherited descriptors";
    let mut keep: Vec<i32> = (0..3 + ctx.preserve_fds as i32).collect();
    keep.push(setup::raw(ctx.sync.as_fd()));
    keep.push(setup::raw(ctx.exec_fifo));
    keep.extend(ctx.console_socket.map(setup::raw));
    keep.extend(ctx.trampoline.map(setup::raw));
    keep.extend(ctx.stdio.iter().flatten().map(|fd| setup::raw(*fd)));
    keep.extend(
        ctx.rootfs_options
            .idmapped_trees
            .iter()
            .map(|(_, tree)| setup::raw(tree.as_fd())),
    );
    setup::close_all_except(&keep)?;
    let new_userns = crate::config::NamespaceRequest::from_spec(ctx.spec)
        .new
        .contains(&oci_spec::runtime::LinuxNamespaceType::User);
    // Until the container runs, nothing inside may inspect or ptrace this
    // process, which still holds host descriptors. (In a new user namespace
    // that would make its own /proc files belong to the host's root, out of
    // its reach: there it stays dumpable, as with runc.)
    if !new_userns {
        rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
            .ctx(|| "make the init non-dumpable")?;
    }
    // If the runtime dies while setting up, the half-built container dies
    // with it instead of lingering.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .ctx(|| "set the parent-death signal")?;

    *step = "wait for the runtime";
    let state_json = match ctx.sync.recv().ctx(|| "read from the runtime")? {
        Some(Message::Proceed { state }) => state,
        other => {
            return Err(RuntimeError::Init {
                step: "wait for the runtime".into(),
                message: format!("expected Proceed, got {other:?}"),
            })
        }
    };
    failpoint::check("init:started")?;
    if new_userns {
        // The runtime wrote the id maps before Proceed: become the
        // container's root, so files made during setup belong to it.
        *step = "become root in the user namespace";
        let root_gid = rustix::process::Gid::from_raw(0);
        let root_uid = rustix::process::Uid::from_raw(0);
        rustix::thread::set_thread_res_gid(root_gid, root_gid, root_gid)
            .ctx(|| "set gid 0 in the user namespace")?;
        rustix::thread::set_thread_res_uid(root_uid, root_uid, root_uid)
            .ctx(|| "set uid 0 in the user namespace")?;
    }

    if ctx.unshare_cgroupns {
        *step = "create the cgroup namespace";
        sys::unshare_cgroup_namespace().ctx(|| "unshare the cgroup namespace")?;
    }

    *step = "set up stdio";
    rustix::process::setsid().ctx(|| "start a new session")?;
    if let Some(stdio) = ctx.stdio {
        for (target, fd) in stdio.iter().enumerate() {
            sys::dup_onto(*fd, target as i32).ctx(|| format!("set up descriptor {target}"))?;
        }
    }

    *step = "set hostname";
    if let Some(hostname) = ctx.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        rustix::system::sethostname(hostname.as_bytes())
            .ctx(|| format!("set hostname {hostname:?}"))?;
    }
    if let Some(domain) = ctx.spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        rustix::system::setdomainname(domain.as_bytes())
            .ctx(|| format!("set domainname {domain:?}"))?;
    }

    *step = "apply sysctls";
    apply_sysctls(ctx.spec)?;
    failpoint::check("init:sysctl")?;

    *step = "prepare the root file system";
    rootfs::prepare(ctx.spec, ctx.rootfs, &ctx.rootfs_options).map_err(RuntimeError::Rootfs)?;
    failpoint::check("init:rootfs-prepared")?;

    *step = "set up the terminal";
    let terminal: Option<OwnedFd> = if process.terminal().unwrap_or(false) {
        let socket = ctx.console_socket.ok_or_else(|| {
            RuntimeError::option(
                "--console-socket",
                "a terminal was requested without a console socket",
            )
        })?;
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height(), b.width()));
        Some(setup::open_terminal(socket, size)?)
    } else {
        None
    };

    // A round trip to the runtime only when it has hooks to run: each one
    // is a hand-over between two processes, which a busy host delays.
    let runtime_hooks = [HookKind::Prestart, HookKind::CreateRuntime]
        .iter()
        .any(|kind| !kind.select(ctx.spec.hooks().as_ref()).is_empty());
    if runtime_hooks {
        *step = "run prestart and createRuntime hooks";
        ctx.sync
            .send(&Message::RunRuntimeHooks)
            .ctx(|| "ask the runtime to run its hooks")?;
        match ctx.sync.recv().ctx(|| "read from the runtime")? {
            Some(Message::HooksDone) => {}
            other => {
                return Err(RuntimeError::Init {
                    step: (*step).into(),
                    message: format!("expected HooksDone, got {other:?}"),
                })
            }
        }
    }

    *step = "run createContainer hooks";
    hooks::run_all(
        HookKind::CreateContainer,
        ctx.spec.hooks().as_ref(),
        &state_json,
    )?;
    failpoint::check("init:create-container-hooks")?;

    *step = "set process attributes";
    setup::apply_attributes(process)?;
    if let Some(personality) = linux.and_then(|l| l.personality().as_ref()) {
        let persona = match personality.domain() {
            LinuxPersonalityDomain::PerLinux => 0x0000,
            LinuxPersonalityDomain::PerLinux32 => 0x0008,
        };
        sys::set_personality(persona)
            .ctx(|| format!("set personality {:?}", personality.domain()))?;
    }
    if !ctx.no_new_keyring {
        join_session_keyring(ctx.id)?;
    }
    crate::security::set_exec_labels(
        process.apparmor_profile().as_deref(),
        process.selinux_label().as_deref(),
    )?;

    *step = "enter the root file system";
    rootfs::enter(ctx.rootfs, &ctx.rootfs_options).map_err(RuntimeError::Rootfs)?;
    if let Some(slave) = &terminal {
        rootfs::setup_console(slave.as_fd()).map_err(RuntimeError::Rootfs)?;
        setup::attach_terminal(slave.as_fd())?;
    }
    drop(terminal);
    rootfs::finalize(ctx.spec, &ctx.rootfs_options).map_err(RuntimeError::Rootfs)?;
    failpoint::check("init:rootfs-finalized")?;

    *step = "find the program";
    let env = setup::environment(process);
    let executable = setup::resolve_executable(process, &env)?;

    // Seccomp goes on as late as possible: right before execve. Without
    // no_new_privs the kernel only takes a filter from a process holding
    // CAP_SYS_ADMIN, and a notification fd must reach the runtime while it
    // still listens: then it goes on before the privileges are dropped.
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
    failpoint::check("init:ready")?;

    if let Some(trampoline) = ctx.trampoline {
        let late_seccomp = ctx.seccomp.filter(|_| early_seccomp.is_none());
        return hand_over_to_trampoline(
            ctx,
            process,
            trampoline,
            &executable,
            &env,
            late_seccomp,
            step,
        );
    }

    *step = "report ready";
    // Before Ready: once the runtime has Ready it may exit (exec -d,
    // create), and its death must not kill this process any more.
    let _ = rustix::process::set_parent_process_death_signal(None);
    ctx.sync
        .send(&Message::Ready)
        .ctx(|| "report to the runtime")?;

    // Block until `start` writes to the fifo. The runtime that created us
    // may exit meanwhile: from here on, failures go to stderr.
    let mut fifo = std::fs::File::from(
        ctx.exec_fifo
            .try_clone_to_owned()
            .ctx(|| "dup the exec fifo")?,
    );
    let mut byte = [0u8; 1];
    loop {
        match fifo.read(&mut byte) {
            Ok(1) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(_) => fail_after_start(
                RuntimeError::io("wait for start", std::io::Error::other("exec fifo closed")),
                1,
            ),
            Err(e) => fail_after_start(RuntimeError::io("wait for start", e), 1),
        }
    }

    let start_state = restate(&state_json, ContainerState::Created);
    if let Err(e) = hooks::run_all(
        HookKind::StartContainer,
        ctx.spec.hooks().as_ref(),
        &start_state,
    ) {
        fail_after_start(e, 1);
    }
    drop(fifo);
    if let Err(e) = setup::seal_descriptors(ctx.preserve_fds) {
        fail_after_start(e, 1);
    }
    if early_seccomp.is_none() {
        if let Some(filter) = ctx.seccomp {
            if let Err(e) = filter.install() {
                fail_after_start(
                    RuntimeError::io(
                        "install the seccomp filter",
                        std::io::Error::other(e.to_string()),
                    ),
                    1,
                );
            }
        }
    }
    let error = setup::exec(process, &executable, &env);
    let status = if error.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    };
    fail_after_start(error, status)
}

/// Ends the init's work before `start`: executes `quai-init` (from its
/// sealed memfd), which waits on the exec fifo and executes the program.
/// Everything that can fail is done before `Ready`, so that `create`
/// reports it; the filter goes on here since quai-init cannot install it.
fn hand_over_to_trampoline(
    ctx: &InitContext,
    process: &oci_spec::runtime::Process,
    trampoline: BorrowedFd,
    executable: &Path,
    env: &[(String, String)],
    late_seccomp: Option<&crate::seccomp::Filter>,
    step: &mut &'static str,
) -> Result<Infallible> {
    *step = "prepare the hand-over to quai-init";
    let filter_installed = ctx.seccomp.is_some() && late_seccomp.is_none();
    let fifo = setup::prepare_handover(ctx.preserve_fds, ctx.exec_fifo, filter_installed)?;
    let mut argv = vec![
        setup::cstring("quai-init", "program name")?,
        setup::cstring(&setup::raw(fifo.as_fd()).to_string(), "descriptor")?,
        setup::path_cstring(executable)?,
    ];
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        argv.push(setup::path_cstring(executable)?);
    }
    for arg in args {
        argv.push(setup::cstring(arg, "process.args")?);
    }
    let envp = env
        .iter()
        .map(|(k, v)| setup::cstring(&format!("{k}={v}"), "process.env"))
        .collect::<Result<Vec<_>>>()?;
    if let Some(filter) = late_seccomp {
        *step = "install the seccomp filter";
        filter.install().map_err(|e| {
            RuntimeError::io(
                "install the seccomp filter",
                std::io::Error::other(e.to_string()),
            )
        })?;
    }

    *step = "report ready";
    let _ = rustix::process::set_parent_process_death_signal(None);
    ctx.sync
        .send(&Message::Ready)
        .ctx(|| "report to the runtime")?;
    let error = sys::exec_fd(trampoline, &argv, &envp);
    fail_after_start(RuntimeError::io("execute quai-init", error), 126)
}

/// The OCI state JSON with another status.
fn restate(state_json: &str, status: ContainerState) -> String {
    match serde_json::from_str::<OciState>(state_json) {
        Ok(mut state) => {
            state.set_status(status);
            serde_json::to_string(&state).unwrap_or_else(|_| state_json.to_string())
        }
        Err(_) => state_json.to_string(),
    }
}

/// Writes linux.sysctl through the host's /proc/sys: the files there act on
/// the namespaces of the writer, which are already the container's.
fn apply_sysctls(spec: &Spec) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    if sysctl.is_empty() {
        return Ok(());
    }
    let fs = rustix::fs::statfs("/proc").ctx(|| "inspect /proc")?;
    if fs.f_type != rustix::fs::PROC_SUPER_MAGIC {
        return Err(RuntimeError::io(
            "apply sysctls",
            std::io::Error::other("/proc is not a procfs mount"),
        ));
    }
    for (key, value) in sysctl {
        let path = sysctl_path(key).ok_or_else(|| {
            RuntimeError::config(format!("linux.sysctl.{key}"), "is not a valid sysctl name")
        })?;
        std::fs::write(&path, value).ctx(|| format!("set sysctl {key}={value}"))?;
    }
    Ok(())
}

/// Gives the container its own session keyring, so that it neither sees
/// nor changes the keys of the host session (runc's behaviour; kernels or
/// seccomp profiles without keyctl are tolerated).
fn join_session_keyring(id: &str) -> Result<()> {
    let name = setup::cstring(&format!("_ses.{id}"), "container id")?;
    match sys::join_session_keyring(&name) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            tracing::debug!("keyctl is not available: keeping the inherited session keyring");
            Ok(())
        }
        Err(e) => Err(RuntimeError::io("join a new session keyring", e)),
    }
}
