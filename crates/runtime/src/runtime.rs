//! The runtime's public API: the OCI lifecycle operations over a state root.
//! The `quai-runtime` CLI is a thin layer over it, and the engine's
//! per-container monitor calls it in-process (single-threaded caller: the
//! container's init becomes the caller's child).

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{ContainerState, LinuxNamespaceType, LinuxResources, Process, Spec};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::process::{
    pidfd_open, pidfd_send_signal, waitpid, Pid, PidfdFlags, Signal, WaitOptions,
};

use crate::cgroups::{Cgroup, Layout};
use crate::config::{load_bundle, NamespaceRequest};
use crate::error::{IoContext, Result, RuntimeError};
use crate::failpoint;
use crate::fsutil::write_atomic;
use crate::hooks::{self, HookKind};
use crate::process::init::{container_init, InitContext};
use crate::process::namespaces::{clone_flag, new_flags, open_joined};
use crate::process::spawn::{spawn, SpawnPlan};
use crate::process::sync::{self, Message, SyncSocket};
use crate::process::{exec as exec_process, sys};
use crate::procfs::ProcessIdentity;
use crate::rootfs::RootfsOptions;
use crate::state::{
    ContainerRecord, ContainerStatus, LockedContainer, Phase, RecordedOptions, StateRoot,
};
use crate::timefmt::now_rfc3339;

/// Where the container's stdio comes from when it has no terminal.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own stdin, stdout and stderr.
    #[default]
    Inherit,
    /// These descriptors become the container's 0, 1 and 2.
    Fds([OwnedFd; 3]),
}

/// Options of `create` (runc's flags of the same names).
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// A connected unix socket that receives the pty master when the
    /// process asks for a terminal (`--console-socket`).
    pub console_socket: Option<OwnedFd>,
    pub stdio: Stdio,
    /// Where to write the init's pid once created (`--pid-file`).
    pub pid_file: Option<PathBuf>,
    /// Descriptors 3..3+N of the caller are passed to the container.
    pub preserve_fds: u32,
    /// Socket-activation descriptors (systemd's LISTEN_FDS) the caller
    /// received: passed first, right after stdio, and announced to the
    /// container with LISTEN_FDS=N and LISTEN_PID=1 (runc's behaviour).
    pub listen_fds: u32,
    /// Move the root file system with MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one.
    pub no_new_keyring: bool,
}

/// Options of `exec`.
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub console_socket: Option<OwnedFd>,
    pub stdio: Stdio,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// The lifecycle operations over one state root.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: StateRoot,
}

impl Runtime {
    /// Opens (creating if needed) the state root, e.g. `/run/quai/runtime`.
    pub fn new(root: &Path) -> Result<Runtime> {
        Ok(Runtime {
            root: StateRoot::open(root)?,
        })
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Creates container `id` from `bundle`; returns once its init waits
    /// for `start`, with the init's pid. The init is the caller's child.
    pub fn create(&self, id: &str, bundle: &Path, options: CreateOptions) -> Result<i32> {
        let mut bundle = load_bundle(bundle)?;
        if options.listen_fds > 0 {
            announce_listen_fds(&mut bundle.spec, options.listen_fds);
        }
        let preserve_fds = options.listen_fds + options.preserve_fds;
        let process = bundle
            .spec
            .process()
            .as_ref()
            .expect("validated: process present");
        check_terminal(
            process.terminal().unwrap_or(false),
            options.console_socket.is_some(),
        )?;
        check_preserved(preserve_fds)?;
        let seccomp = crate::config::seccomp_filter(&bundle.spec)?;
        let namespaces = NamespaceRequest::from_spec(&bundle.spec);
        let init_trampoline = init_trampoline_for(&bundle.spec, &namespaces, seccomp.as_ref())?;
        let joined = open_joined(&namespaces)?;
        // Resolved and checked against the host before anything exists.
        let planned_cgroup = plan_cgroup(id, &bundle.spec)?;

        // Without a mount namespace of its own the container's mounts are
        // stacked on its rootfs in ours: remember what was there to undo it.
        let host_mount_namespace = !namespaces.isolates(LinuxNamespaceType::Mount);
        let rootfs_mount_before = if host_mount_namespace {
            Some(crate::rootfs::mount_id_of(&bundle.rootfs).map_err(RuntimeError::Rootfs)?)
        } else {
            None
        };

        let locked = self.root.create(id)?;
        let mut guard = CreateGuard {
            locked: Some(locked),
            init: None,
            cgroup: None,
            stacked_on_rootfs: rootfs_mount_before.map(|id| (bundle.rootfs.clone(), id)),
        };
        failpoint::check("create:state-dir")?;
        let cgroup = match planned_cgroup {
            Some(plan) => plan.create(&mut guard)?,
            None => None,
        };
        failpoint::check("create:cgroup")?;
        let locked = guard.locked.as_ref().expect("present until disarmed");
        let fifo = make_exec_fifo(&locked.exec_fifo())?;
        let (runtime_end, child_end) = sync::pair().ctx(|| "create the sync socket")?;
        let idmapped_trees = crate::rootfs::prepare_idmapped(&bundle.spec, Some(&bundle.path))
            .map_err(RuntimeError::Rootfs)?;

        let stdio_fds = match &options.stdio {
            Stdio::Inherit => None,
            Stdio::Fds([a, b, c]) => Some([a.as_fd(), b.as_fd(), c.as_fd()]),
        };
        // A new cgroup namespace is made by the init once it is in the
        // container's cgroup, so that the container sees that cgroup as `/`.
        let unshare_cgroupns = namespaces.new.contains(&LinuxNamespaceType::Cgroup);
        let ctx = InitContext {
            id,
            spec: &bundle.spec,
            rootfs: &bundle.rootfs,
            rootfs_options: RootfsOptions {
                no_pivot: options.no_pivot,
                bundle: Some(bundle.path.clone()),
                host_mount_namespace,
                idmapped_trees,
            },
            sync: &child_end,
            exec_fifo: fifo.as_fd(),
            console_socket: options.console_socket.as_ref().map(|s| s.as_fd()),
            stdio: stdio_fds,
            preserve_fds,
            no_new_keyring: options.no_new_keyring,
            seccomp: seccomp.as_ref(),
            unshare_cgroupns,
            trampoline: init_trampoline.as_ref().map(|fd| fd.as_fd()),
        };
        let cgroup2_dir = cgroup.as_ref().and_then(Cgroup::open_unified);
        let plan = SpawnPlan {
            new_flags: new_flags(&namespaces) & !clone_flag(LinuxNamespaceType::Cgroup),
            join: &joined,
            time_offsets: time_offsets(&bundle.spec),
            into_cgroup: cgroup2_dir.as_ref().map(|fd| fd.as_fd()),
        };
        let spawned = spawn(&plan, &runtime_end, &child_end, || container_init(&ctx))?;
        let pid = spawned.pid;
        let init = ProcessIdentity::of(pid).ctx(|| format!("inspect container process {pid}"))?;
        guard.init = Some(init);
        if namespaces.new.contains(&LinuxNamespaceType::User) {
            write_id_maps(pid, &bundle.spec)?;
        }
        match &cgroup {
            Some(cgroup) if spawned.in_cgroup => cgroup.add_process_to_v1(pid)?,
            Some(cgroup) => cgroup.add_process(pid)?,
            None => {}
        }
        // The init holds its own copies; ours must go so that `start` can
        // tell a live init (a reader on the fifo) from a dead one.
        drop(fifo);
        drop(child_end);
        drop(joined);

        let mut record = ContainerRecord {
            id: id.to_string(),
            bundle: bundle.path.clone(),
            rootfs: bundle.rootfs.clone(),
            phase: Phase::Creating,
            init: Some(init),
            created: now_rfc3339(),
            options: RecordedOptions {
                no_pivot: options.no_pivot,
                no_new_keyring: options.no_new_keyring,
            },
            spec: bundle.spec.clone(),
            cgroup,
            shared_mount_ns_rootfs_mount: rootfs_mount_before,
        };
        locked.save(&record)?;
        failpoint::check("create:spawned")?;

        let state = ContainerStatus {
            record: record.clone(),
            status: ContainerState::Creating,
        }
        .oci_state();
        let state_json = serde_json::to_string(&state)
            .map_err(|e| RuntimeError::io("encode state", std::io::Error::other(e)))?;
        runtime_end
            .send(&Message::Proceed {
                state: state_json.clone(),
            })
            .ctx(|| "signal the container process")?;
        wait_until_ready(&runtime_end, &bundle.spec, &state, seccomp.as_ref())?;
        failpoint::check("create:ready")?;

        record.phase = Phase::Created;
        locked.save(&record)?;
        if let Some(pid_file) = &options.pid_file {
            write_pid_file(pid_file, pid)?;
        }
        guard.disarm();
        Ok(pid)
    }

    /// Lets a created container run its program.
    pub fn start(&self, id: &str) -> Result<()> {
        let locked = self.root.lock(id)?;
        let status = locked.status()?;
        if status.status != ContainerState::Created {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                status: status.status,
                reason: "only a created container can be started".into(),
            });
        }
        let fifo_path = locked.exec_fifo();
        let fifo = match rustix::fs::open(
            &fifo_path,
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // No reader: the init is gone.
            Err(rustix::io::Errno::NXIO) => {
                return Err(RuntimeError::WrongState {
                    id: id.to_string(),
                    status: ContainerState::Stopped,
                    reason: "its init process exited before start".into(),
                })
            }
            Err(e) => return Err(RuntimeError::io(format!("open {}", fifo_path.display()), e)),
        };
        rustix::io::write(&fifo, &[0]).ctx(|| format!("write {}", fifo_path.display()))?;
        fs::remove_file(&fifo_path).ctx(|| format!("remove {}", fifo_path.display()))?;
        // The init closes its end of the fifo right before execve (or when
        // it dies): the reader count dropping to zero shows up as POLLERR.
        wait_for_readers_gone(&fifo)?;
        let state = ContainerStatus {
            record: status.record.clone(),
            status: ContainerState::Running,
        }
        .oci_state();
        let state_json = serde_json::to_string(&state).unwrap_or_default();
        hooks::run_all_warn(
            HookKind::Poststart,
            status.record.spec.hooks().as_ref(),
            &state_json,
        );
        Ok(())
    }

    /// The state of container `id`.
    pub fn state(&self, id: &str) -> Result<ContainerStatus> {
        self.root.status(id)
    }

    /// Every container under the state root.
    pub fn list(&self) -> Result<Vec<ContainerStatus>> {
        let mut all = Vec::new();
        for id in self.root.ids()? {
            match self.root.status(&id) {
                Ok(s) => all.push(s),
                // Deleted meanwhile, or a crash left a directory without
                // state: neither is a container.
                Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(all)
    }

    /// Sends `signal` to the container's init, or with `all` to every
    /// process of the container.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<()> {
        let locked = self.root.lock(id)?;
        let status = locked.status()?;
        // With --all, leftovers of a container whose init is gone are
        // signalled too (runc allows `kill --all` on a stopped container).
        if let (true, Some(cgroup)) = (all, &status.record.cgroup) {
            if cgroup.exists() {
                cgroup.kill_all(signal.as_raw())?;
                return Ok(());
            }
        }
        let Some(init) = status
            .record
            .init
            .filter(|_| status.status != ContainerState::Stopped)
        else {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                status: status.status,
                reason: "container not running".into(),
            });
        };
        if all {
            for identity in container_processes(&status.record, init) {
                signal_process(identity, signal)?;
            }
            Ok(())
        } else {
            signal_process(init, signal)
        }
    }

    /// Deletes container `id`: a stopped (or never started) container goes
    /// away; a running one only with `force`, after being killed.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let locked = self.root.lock(id)?;
        let status = match locked.status() {
            Ok(status) => status,
            // A create killed before its first state write left only the
            // directory; holding its lock proves that create is gone.
            Err(RuntimeError::NotFound(_)) => return locked.remove(),
            Err(e) => return Err(e),
        };
        match (status.status, status.record.init) {
            (ContainerState::Running, Some(init)) => {
                if !force {
                    return Err(RuntimeError::WrongState {
                        id: id.to_string(),
                        status: status.status,
                        reason: "cannot delete a running container; stop it first or use --force"
                            .into(),
                    });
                }
                kill_everything(&status.record, init)?;
                wait_for_exit(init)?;
            }
            // Created, or creating while we hold the lock (its creator died).
            (ContainerState::Created | ContainerState::Creating, Some(init)) => {
                kill_everything(&status.record, init)?;
                wait_for_exit(init)?;
            }
            _ => {}
        }
        // Leftovers (daemons of a container without its own pid namespace)
        // are killed with the cgroup; if that fails the state stays, so that
        // delete can be retried.
        if let Some(cgroup) = &status.record.cgroup {
            cgroup.kill_and_destroy()?;
        }
        if let Some(original) = status.record.shared_mount_ns_rootfs_mount {
            crate::rootfs::detach_stacked_binds(&status.record.rootfs, original)
                .map_err(RuntimeError::Rootfs)?;
        }
        destroy(locked, &status.record)
    }

    /// Pids (host view) of every process of container `id`.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let status = self.root.status(id)?;
        if let Some(cgroup) = status.record.cgroup.as_ref().filter(|c| c.exists()) {
            return Ok(cgroup.pids()?);
        }
        match status.record.init {
            Some(init) if status.status != ContainerState::Stopped => {
                Ok(container_processes(&status.record, init)
                    .iter()
                    .map(|p| p.pid)
                    .collect())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Freezes every process of container `id` (`pause`).
    pub fn pause(&self, id: &str) -> Result<()> {
        let locked = self.root.lock(id)?;
        let status = locked.status()?;
        if !matches!(
            status.status,
            ContainerState::Running | ContainerState::Created
        ) || status.is_paused()
        {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                status: status.status,
                reason: "only a running or created container that is not paused can be paused"
                    .into(),
            });
        }
        Ok(container_cgroup(&status)?.freeze()?)
    }

    /// Thaws a paused container (`resume`).
    pub fn resume(&self, id: &str) -> Result<()> {
        let locked = self.root.lock(id)?;
        let status = locked.status()?;
        if !status.is_paused() {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                status: status.status,
                reason: "it is not paused".into(),
            });
        }
        Ok(container_cgroup(&status)?.thaw()?)
    }

    /// Applies new resource limits to a live container (`update`): `patch`
    /// is merged into the recorded resources (runc's rules), the result is
    /// checked, applied, and recorded for later updates.
    pub fn update(&self, id: &str, patch: &LinuxResources) -> Result<()> {
        let locked = self.root.lock(id)?;
        let mut status = locked.status()?;
        if status.status == ContainerState::Stopped {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                status: status.status,
                reason: "a stopped container cannot be updated".into(),
            });
        }
        let cgroup = container_cgroup(&status)?.clone();
        let stored = spec_resources(&status.record.spec);
        let merged = crate::cgroups::merge_update(&stored, patch)?;
        let effective = effective_resources(&status.record.spec, &merged);
        cgroup.check(&effective)?;
        cgroup.apply(&effective)?;
        if let Some(linux) = status.record.spec.linux_mut() {
            linux.set_resources(Some(merged));
        }
        locked.save(&status.record)
    }

    /// Resource usage of container `id` (`events --stats`).
    pub fn stats(&self, id: &str) -> Result<crate::cgroups::Stats> {
        let status = self.root.status(id)?;
        if status.status == ContainerState::Stopped {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                status: status.status,
                reason: "no stats for a stopped container".into(),
            });
        }
        Ok(container_cgroup(&status)?.stats()?)
    }

    /// Streams `stats` events every `interval` and `oom` events to `emit`
    /// until it breaks or the container's cgroup is removed (`events`).
    pub fn events(
        &self,
        id: &str,
        interval: std::time::Duration,
        emit: impl FnMut(&crate::cgroups::Event) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        let status = self.root.status(id)?;
        if status.status == ContainerState::Stopped {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                status: status.status,
                reason: "container not running".into(),
            });
        }
        let cgroup = container_cgroup(&status)?;
        Ok(crate::cgroups::watch_events(cgroup, id, interval, emit)?)
    }

    /// Starts `process` inside running container `id` (all of its
    /// namespaces, its root); returns the new process' pid, a child of the
    /// caller.
    pub fn exec(&self, id: &str, process: &Process, options: ExecOptions) -> Result<i32> {
        crate::exe_guard::require()?;
        let status = self.root.status(id)?;
        let init = match (status.status, status.record.init) {
            (ContainerState::Running | ContainerState::Created, Some(init)) => init,
            (s, _) => {
                return Err(RuntimeError::WrongState {
                    id: id.to_string(),
                    status: s,
                    reason: "cannot exec in a container that is not running".into(),
                })
            }
        };
        check_terminal(
            process.terminal().unwrap_or(false),
            options.console_socket.is_some(),
        )?;
        check_preserved(options.preserve_fds)?;
        exec_process::validate(process)?;
        exec_process::run(&status.record, init, process, options)
    }
}

fn check_terminal(terminal: bool, console: bool) -> Result<()> {
    match (terminal, console) {
        (true, false) => Err(RuntimeError::option(
            "--console-socket",
            "the process asks for a terminal (process.terminal) but no console socket was given",
        )),
        (false, true) => Err(RuntimeError::option(
            "--console-socket",
            "a console socket was given but the process does not ask for a terminal",
        )),
        _ => Ok(()),
    }
}

fn check_preserved(preserve_fds: u32) -> Result<()> {
    for fd in 3..3 + preserve_fds as i32 {
        if !sys::fd_is_open(fd) {
            return Err(RuntimeError::option(
                "--preserve-fds",
                format!(
                    "descriptor {fd} is not open (passing {preserve_fds} means 3..{})",
                    2 + preserve_fds
                ),
            ));
        }
    }
    Ok(())
}

/// Writes the user namespace's id maps of process `pid`. As root the
/// kernel takes any mapping; an unprivileged runtime may only map its own
/// ids (after denying setgroups), anything more goes through the setuid
/// helpers newuidmap/newgidmap, which check /etc/subuid and /etc/subgid.
fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref().expect("validated: linux present");
    let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
    let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
    if rustix::process::geteuid().is_root() {
        for (file, mappings) in [("uid_map", &uid_maps), ("gid_map", &gid_maps)] {
            let path = format!("/proc/{pid}/{file}");
            fs::write(&path, crate::config::id_map_text(mappings))
                .ctx(|| format!("write {path}"))?;
        }
        return Ok(());
    }
    let own = |maps: &[oci_spec::runtime::LinuxIdMapping], id: u32| {
        maps.len() == 1 && maps[0].size() == 1 && maps[0].host_id() == id
    };
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    if own(&uid_maps, uid) && own(&gid_maps, gid) {
        let setgroups = format!("/proc/{pid}/setgroups");
        fs::write(&setgroups, "deny").ctx(|| format!("write {setgroups}"))?;
        for (file, mappings) in [("uid_map", &uid_maps), ("gid_map", &gid_maps)] {
            let path = format!("/proc/{pid}/{file}");
            fs::write(&path, crate::config::id_map_text(mappings))
                .ctx(|| format!("write {path}"))?;
        }
        return Ok(());
    }
    for (helper, mappings) in [("newuidmap", &uid_maps), ("newgidmap", &gid_maps)] {
        let mut command = std::process::Command::new(helper);
        command.arg(pid.to_string());
        for m in mappings {
            command.args([m.container_id(), m.host_id(), m.size()].map(|n| n.to_string()));
        }
        let output = command
            .output()
            .map_err(|e| RuntimeError::io(format!("run {helper} (package uidmap)"), e))?;
        if !output.status.success() {
            return Err(RuntimeError::io(
                format!("{helper} {pid}"),
                std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_string()),
            ));
        }
    }
    Ok(())
}

fn announce_listen_fds(spec: &mut Spec, count: u32) {
    if let Some(process) = spec.process_mut() {
        let mut env: Vec<String> = process
            .env()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|kv| !kv.starts_with("LISTEN_FDS=") && !kv.starts_with("LISTEN_PID="))
            .collect();
        env.push(format!("LISTEN_FDS={count}"));
        env.push("LISTEN_PID=1".to_string());
        process.set_env(Some(env));
    }
}

fn time_offsets(spec: &Spec) -> Option<String> {
    let offsets = spec.linux().as_ref()?.time_offsets().as_ref()?;
    let lines: Vec<String> = offsets
        .iter()
        .map(|(clock, o)| {
            format!(
                "{clock} {} {}",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect();
    Some(lines.join("\n"))
}

/// Creates the exec fifo and opens it read-write: the init inherits the
/// descriptor and blocks reading it until `start` writes a byte.
/// How the init reaches the container's program without exposing a
/// writable runtime binary (CVE-2019-5736; see exe_guard): None when this
/// binary is protected already (it executes the program itself), else the
/// `quai-init` trampoline. Fails with [`RuntimeError::UnprotectedBinary`]
/// when the container could see the init while it still runs this binary
/// (a joined or the host's pid namespace), when the init has work after
/// `start` (startContainer hooks), when an exec-time security label would
/// apply to the trampoline instead of the program, or when the seccomp
/// filter (installed before the trampoline) would stop the trampoline.
fn init_trampoline_for(
    spec: &Spec,
    namespaces: &NamespaceRequest,
    seccomp: Option<&crate::seccomp::Filter>,
) -> Result<Option<OwnedFd>> {
    if crate::exe_guard::is_protected() {
        return Ok(None);
    }
    let new_pid_namespace = namespaces.new.contains(&LinuxNamespaceType::Pid);
    let start_hooks = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
        .is_some_and(|hooks| !hooks.is_empty());
    let process = spec.process().as_ref();
    let exec_label = process.is_some_and(|p| {
        p.apparmor_profile()
            .as_deref()
            .is_some_and(|l| !l.is_empty())
            || p.selinux_label().as_deref().is_some_and(|l| !l.is_empty())
    });
    // What the init (execveat of the memfd) and quai-init do after the
    // filter is installed.
    const AT_EMPTY_PATH: u64 = libc::AT_EMPTY_PATH as u64;
    let calls = [
        ("execveat", [0, 0, 0, 0, AT_EMPTY_PATH, 0]),
        ("read", [0, 0, 1, 0, 0, 0]),
        ("close", [0; 6]),
        ("execve", [0; 6]),
        ("write", [2, 0, 0, 0, 0, 0]),
        ("exit_group", [0; 6]),
    ];
    let seccomp_allows = seccomp.is_none_or(|filter| filter.allows(&calls));
    if !new_pid_namespace || start_hooks || exec_label || !seccomp_allows {
        return Err(RuntimeError::UnprotectedBinary);
    }
    crate::exe_guard::init_trampoline()?
        .map_or(Err(RuntimeError::UnprotectedBinary), |fd| Ok(Some(fd)))
}

fn make_exec_fifo(path: &Path) -> Result<OwnedFd> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .ctx(|| format!("create {}", path.display()))?;
    rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", path.display()))
}

fn wait_until_ready(
    runtime_end: &SyncSocket,
    spec: &Spec,
    state: &oci_spec::runtime::State,
    seccomp: Option<&crate::seccomp::Filter>,
) -> Result<()> {
    let state_json = serde_json::to_string(state).unwrap_or_default();
    loop {
        let received = runtime_end
            .recv_with_fd()
            .ctx(|| "read from the container process")?;
        match received {
            Some((Message::RunRuntimeHooks, _)) => {
                hooks::run_all(HookKind::Prestart, spec.hooks().as_ref(), &state_json)?;
                hooks::run_all(HookKind::CreateRuntime, spec.hooks().as_ref(), &state_json)?;
                runtime_end
                    .send(&Message::HooksDone)
                    .ctx(|| "signal the container process")?;
            }
            Some((Message::SeccompListener, fd)) => hand_over_listener(seccomp, fd, state)?,
            Some((Message::Ready, _)) => return Ok(()),
            Some((Message::Failed { step, message }, _)) => {
                return Err(RuntimeError::Init { step, message })
            }
            Some((other, _)) => {
                return Err(RuntimeError::Init {
                    step: "set up".into(),
                    message: format!("unexpected message {other:?}"),
                })
            }
            None => {
                return Err(RuntimeError::Init {
                    step: "set up".into(),
                    message: "the container process exited without reporting why".into(),
                })
            }
        }
    }
}

/// Gives the seccomp notification fd of a container process to the agent
/// listening at linux.seccomp.listenerPath.
pub(crate) fn hand_over_listener(
    seccomp: Option<&crate::seccomp::Filter>,
    fd: Option<OwnedFd>,
    state: &oci_spec::runtime::State,
) -> Result<()> {
    let (Some(filter), Some(fd)) = (seccomp, fd) else {
        return Err(RuntimeError::Init {
            step: "install the seccomp filter".into(),
            message: "a notification fd arrived without a filter that asks for one".into(),
        });
    };
    filter
        .hand_over_listener(fd.as_fd(), state.pid().unwrap_or(0), state)
        .map_err(|e| {
            RuntimeError::io(
                "hand the seccomp fd to its agent",
                std::io::Error::other(e.to_string()),
            )
        })
}

/// Writes the pid file atomically; a relative path is taken from the
/// caller's working directory, as runc does.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    write_atomic(path, pid.to_string().as_bytes(), 0o644)
}

fn wait_for_readers_gone(fifo: &OwnedFd) -> Result<()> {
    loop {
        let mut fds = [PollFd::new(fifo, PollFlags::empty())];
        match poll(&mut fds, None) {
            Ok(_) if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) => return Ok(()),
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(RuntimeError::io("wait for the container to start", e)),
        }
    }
}

/// Signals `identity` only if it is still that very process: the pidfd
/// pins the process, the start time proves it is the one recorded.
pub fn signal_process(identity: ProcessIdentity, signal: Signal) -> Result<()> {
    let Some(pid) = Pid::from_raw(identity.pid) else {
        return Ok(());
    };
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => {
            return Err(RuntimeError::io(
                format!("open process {}", identity.pid),
                e,
            ))
        }
    };
    if !identity.is_alive() {
        return Ok(());
    }
    match pidfd_send_signal(&pidfd, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(RuntimeError::io(
            format!("send signal {signal:?} to process {}", identity.pid),
            e,
        )),
    }
}

/// Waits until `identity` has exited (not necessarily been reaped).
fn wait_for_exit(identity: ProcessIdentity) -> Result<()> {
    let Some(pid) = Pid::from_raw(identity.pid) else {
        return Ok(());
    };
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => {
            return Err(RuntimeError::io(
                format!("open process {}", identity.pid),
                e,
            ))
        }
    };
    if !identity.is_alive() {
        return Ok(());
    }
    loop {
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, None) {
            Ok(n) if n > 0 => break,
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(RuntimeError::io(
                    format!("wait for process {}", identity.pid),
                    e,
                ))
            }
        }
    }
    // Reap it if it is our child (the caller that created it in-process).
    let _ = waitpid(Some(pid), WaitOptions::NOHANG);
    Ok(())
}

/// Processes of a container, init first. Until cgroups are integrated, a
/// container with its own pid namespace is every process in that namespace;
/// one sharing the host's is the init and its descendants.
pub fn container_processes(
    record: &ContainerRecord,
    init: ProcessIdentity,
) -> Vec<ProcessIdentity> {
    let mut found = vec![init];
    if !init.is_alive() {
        return Vec::new();
    }
    let own_pidns = NamespaceRequest::from_spec(&record.spec).isolates(LinuxNamespaceType::Pid);
    let init_ns = fs::read_link(format!("/proc/{}/ns/pid", init.pid)).ok();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    let mut parents: Vec<(i32, i32)> = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == init.pid {
            continue;
        }
        if own_pidns {
            if init_ns.is_some() && fs::read_link(format!("/proc/{pid}/ns/pid")).ok() == init_ns {
                if let Ok(identity) = ProcessIdentity::of(pid) {
                    found.push(identity);
                }
            }
        } else if let Some(ppid) = parent_of(pid) {
            parents.push((pid, ppid));
        }
    }
    if !own_pidns {
        let mut frontier = vec![init.pid];
        while let Some(parent) = frontier.pop() {
            for (pid, _) in parents.iter().filter(|(_, pp)| *pp == parent) {
                if let Ok(identity) = ProcessIdentity::of(*pid) {
                    found.push(identity);
                    frontier.push(*pid);
                }
            }
        }
    }
    found
}

fn parent_of(pid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// SIGKILL to every process of the container: through its cgroup (which
/// also reaches processes that left the init's tree), else by pid.
fn kill_everything(record: &ContainerRecord, init: ProcessIdentity) -> Result<()> {
    if let Some(cgroup) = record.cgroup.as_ref().filter(|c| c.exists()) {
        return Ok(cgroup.kill_all(libc::SIGKILL)?);
    }
    for identity in container_processes(record, init) {
        signal_process(identity, Signal::KILL)?;
    }
    Ok(())
}

fn container_cgroup(status: &ContainerStatus) -> Result<&Cgroup> {
    status.record.cgroup.as_ref().ok_or_else(|| {
        RuntimeError::Unsupported(format!(
            "container {:?} has no cgroup of its own (created without permission to make one)",
            status.record.id
        ))
    })
}

fn spec_resources(spec: &Spec) -> LinuxResources {
    spec.linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default()
}

/// What the container's cgroup gets: `resources` with the device rules
/// every container needs appended (runc's defaults), except for an
/// unprivileged runtime, which cannot set device rules.
fn effective_resources(spec: &Spec, resources: &LinuxResources) -> LinuxResources {
    let mut effective = resources.clone();
    if !rustix::process::geteuid().is_root() {
        effective.set_devices(None);
        return effective;
    }
    let linux_devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let configured = resources.devices().clone().unwrap_or_default();
    effective.set_devices(Some(crate::cgroups::devices::container_device_rules(
        &configured,
        &linux_devices,
    )));
    effective
}

/// A container's cgroup, resolved and checked, not created yet.
struct CgroupPlan {
    cgroup: Cgroup,
    resources: LinuxResources,
    /// An unprivileged runtime may run a container without limits and
    /// without a cgroupsPath in no cgroup of its own, as runc does.
    optional: bool,
}

fn plan_cgroup(id: &str, spec: &Spec) -> Result<Option<CgroupPlan>> {
    let layout = match Layout::detect() {
        Ok(layout) => layout,
        Err(e) if !rustix::process::geteuid().is_root() => {
            tracing::debug!("no cgroups for this container: {e}");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let linux = spec.linux().as_ref();
    let path = linux.and_then(|l| l.cgroups_path().as_ref());
    let path_text = path.map(|p| p.to_string_lossy().into_owned());
    let cgroup = Cgroup::new(&layout, path_text.as_deref(), id)?;
    let resources = effective_resources(spec, &spec_resources(spec));
    cgroup.check(&resources)?;
    let limits = {
        let mut r = resources.clone();
        r.set_devices(None);
        r != LinuxResources::default()
    };
    let optional = !rustix::process::geteuid().is_root() && path.is_none() && !limits;
    Ok(Some(CgroupPlan {
        cgroup,
        resources,
        optional,
    }))
}

impl CgroupPlan {
    /// Creates the cgroup and applies the limits; the guard removes it if
    /// anything later fails.
    fn create(self, guard: &mut CreateGuard) -> Result<Option<Cgroup>> {
        match self.cgroup.create() {
            Ok(()) => {}
            Err(e) if self.optional && e.is_permission_denied() => {
                tracing::debug!("running without a cgroup of its own: {e}");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        guard.cgroup = Some(self.cgroup.clone());
        self.cgroup.apply(&self.resources)?;
        Ok(Some(self.cgroup))
    }
}

/// Runs poststop hooks and removes the container's state.
fn destroy(locked: LockedContainer, record: &ContainerRecord) -> Result<()> {
    let state = ContainerStatus {
        record: record.clone(),
        status: ContainerState::Stopped,
    }
    .oci_state();
    let state_json = serde_json::to_string(&state).unwrap_or_default();
    hooks::run_all_warn(
        HookKind::Poststop,
        record.spec.hooks().as_ref(),
        &state_json,
    );
    locked.remove()
}

/// Undoes a failed create: kills the init (its mounts die with its mount
/// namespace, or are detached when it shared the runtime's) and removes the
/// state directory.
struct CreateGuard {
    locked: Option<LockedContainer>,
    init: Option<ProcessIdentity>,
    cgroup: Option<Cgroup>,
    /// A rootfs in the runtime's mount namespace and its mount id before.
    stacked_on_rootfs: Option<(PathBuf, u64)>,
}

impl CreateGuard {
    fn disarm(&mut self) {
        self.locked = None;
        self.init = None;
        self.cgroup = None;
        self.stacked_on_rootfs = None;
    }
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if let Some(init) = self.init.take() {
            let _ = signal_process(init, Signal::KILL);
            if let Some(pid) = Pid::from_raw(init.pid) {
                let _ = waitpid(Some(pid), WaitOptions::empty());
            }
        }
        if let Some(cgroup) = self.cgroup.take() {
            if let Err(e) = cgroup.kill_and_destroy() {
                tracing::warn!("cleaning up the cgroup of a failed create: {e}");
            }
        }
        if let Some((rootfs, original)) = self.stacked_on_rootfs.take() {
            if let Err(e) = crate::rootfs::detach_stacked_binds(&rootfs, original) {
                tracing::warn!("cleaning up the mounts of a failed create: {e}");
            }
        }
        if let Some(locked) = self.locked.take() {
            if let Err(e) = locked.remove() {
                tracing::warn!("cleaning up after a failed create: {e}");
            }
        }
    }
}
