//! `exec`: a new process in a running container, started through the
//! runtime from the calling process (it becomes the caller's child, so
//! the CLI waits for it directly and its stdio can be the CLI's own).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder, Process, UserBuilder};
use quai_runtime::{ExecOptions, Runtime, Stdio};

use crate::engine::Engine;
use crate::error::{start_failure_status, EngineError, IoContext, Result};
use crate::record::{self, Status};
use crate::spec::all_capabilities;
use crate::users;

/// docker's exec options.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub privileged: bool,
}

/// Where the exec'd process's stdio comes from (without a terminal).
pub enum ExecStdio {
    /// The caller's own stdin, stdout, stderr.
    Inherit,
    /// These three descriptors.
    Fds([OwnedFd; 3]),
}

/// A started exec'd process, the caller's child.
pub struct ExecProcess {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// The pty master with `tty`.
    pub pty: Option<OwnedFd>,
}

impl Engine {
    /// Starts `req.cmd` in the running container `name_or_id`.
    pub fn exec(
        &mut self,
        name_or_id: &str,
        req: &ExecRequest,
        stdio: ExecStdio,
    ) -> Result<ExecProcess> {
        if req.cmd.is_empty() {
            return Err(EngineError::invalid("No exec command specified"));
        }
        let c = self.container(name_or_id)?;
        match c.state.status {
            Status::Running if c.monitor_alive() => {}
            Status::Paused => {
                return Err(EngineError::conflict(format!(
                    "Container {} is paused, unpause the container before exec",
                    c.id
                )))
            }
            _ => {
                return Err(EngineError::conflict(format!(
                    "container {} is not running",
                    c.id
                )))
            }
        }
        let runtime = Runtime::new(&self.paths.runtime_root())?;
        let state = runtime.state(&c.id)?;
        let mut process: Process = state
            .record
            .spec
            .process()
            .clone()
            .ok_or_else(|| EngineError::invalid("the container has no process"))?;
        process.set_args(Some(req.cmd.clone()));
        process.set_terminal(Some(req.tty));
        process.set_console_size(None);
        let mut env = process.env().clone().unwrap_or_default();
        for e in &req.env {
            let key = e.split('=').next().unwrap_or(e);
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        if req.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        process.set_env(Some(env));
        if let Some(dir) = req.workdir.as_deref().filter(|d| !d.is_empty()) {
            if !dir.starts_with('/') {
                return Err(EngineError::invalid(format!(
                    "the working directory '{dir}' is invalid, it needs to be an absolute path"
                )));
            }
            process.set_cwd(dir.into());
        }
        if let Some(user) = req.user.as_deref().filter(|u| !u.is_empty()) {
            let root = format!("/proc/{}/root", state.pid());
            let u = users::resolve_in_root(Path::new(&root), user)?;
            let spec_user = UserBuilder::default()
                .uid(u.uid)
                .gid(u.gid)
                .additional_gids(u.additional_gids.clone())
                .build()
                .map_err(|e| EngineError::invalid(format!("user {user}: {e}")))?;
            process.set_user(spec_user);
        }
        if req.privileged {
            let caps: std::collections::HashSet<Capability> = all_capabilities()
                .iter()
                .filter_map(|c| quai_runtime::capabilities::parse(c))
                .collect();
            let set = LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .build()
                .map_err(|e| EngineError::invalid(format!("capabilities: {e}")))?;
            process.set_capabilities(Some(set));
        }
        let mut options = ExecOptions::default();
        let mut console = None;
        if req.tty {
            let (mine, theirs) = UnixStream::pair().ctx(|| "create the console socket".into())?;
            options.console_socket = Some(OwnedFd::from(theirs));
            console = Some(mine);
        } else {
            options.stdio = match stdio {
                ExecStdio::Inherit => Stdio::Inherit,
                ExecStdio::Fds(fds) => Stdio::Fds(fds),
            };
        }
        let pid = runtime.exec(&c.id, &process, options).map_err(|e| {
            let message = e.to_string();
            EngineError::StartFailed {
                status: start_failure_status(&message),
                message: format!("exec failed: {message}"),
            }
        })?;
        let pty = match console {
            Some(sock) => {
                let mut name = [0u8; 64];
                let (master, _) = quai_runtime::seccomp::recv_fd(sock.as_fd(), &mut name)
                    .ctx(|| "receive the exec's terminal".into())?;
                Some(master)
            }
            None => None,
        };
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid).ok_or_else(|| EngineError::invalid("pid 0"))?,
            rustix::process::PidfdFlags::empty(),
        )
        .ctx(|| format!("open a pidfd for exec'd process {pid}"))?;
        let mut attrs = record::container_attributes(&c);
        attrs.insert("execID".into(), pid.to_string());
        let _ = record::event(
            self.conn(),
            "container",
            &format!("exec_start: {}", req.cmd.join(" ")),
            &c.id,
            &attrs,
        );
        Ok(ExecProcess { pid, pidfd, pty })
    }
}

/// Waits for an exec'd process (the caller's child); docker's exit code.
pub fn wait_exec(p: &ExecProcess) -> i32 {
    match rustix::process::waitpid(
        rustix::process::Pid::from_raw(p.pid),
        rustix::process::WaitOptions::empty(),
    ) {
        Ok(Some((_, s))) => s
            .exit_status()
            .or_else(|| s.terminating_signal().map(|sig| 128 + sig))
            .unwrap_or(126),
        _ => 126,
    }
}
