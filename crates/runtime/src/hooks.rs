//! OCI hooks: programs run at fixed points of the lifecycle with the
//! container's state on stdin. Output goes to a memory file rather than a
//! pipe, so a chatty hook cannot block on a full pipe while the runtime,
//! single-threaded, waits for it to exit.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use oci_spec::runtime::{Hook, Hooks};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{memfd_create, MemfdFlags};
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::error::{Result, RuntimeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    /// The hooks of this kind in `hooks`.
    pub fn select(self, hooks: Option<&Hooks>) -> Vec<Hook> {
        let Some(hooks) = hooks else {
            return Vec::new();
        };
        #[allow(deprecated)]
        let list = match self {
            HookKind::Prestart => hooks.prestart(),
            HookKind::CreateRuntime => hooks.create_runtime(),
            HookKind::CreateContainer => hooks.create_container(),
            HookKind::StartContainer => hooks.start_container(),
            HookKind::Poststart => hooks.poststart(),
            HookKind::Poststop => hooks.poststop(),
        };
        list.clone().unwrap_or_default()
    }
}

/// Runs every hook of `kind` in order, stopping at the first failure.
pub fn run_all(kind: HookKind, hooks: Option<&Hooks>, state_json: &str) -> Result<()> {
    for hook in kind.select(hooks) {
        run(kind, &hook, state_json)?;
    }
    Ok(())
}

/// Runs every hook of `kind`; failures are logged as warnings, as the
/// runtime spec asks for poststart and poststop hooks.
pub fn run_all_warn(kind: HookKind, hooks: Option<&Hooks>, state_json: &str) {
    for hook in kind.select(hooks) {
        if let Err(e) = run(kind, &hook, state_json) {
            tracing::warn!("{e}");
        }
    }
}

fn hook_error(kind: HookKind, hook: &Hook, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Hook {
        kind: kind.name(),
        path: hook.path().display().to_string(),
        reason: reason.into(),
    }
}

/// Runs one hook and waits for it, killing it when its timeout passes.
pub fn run(kind: HookKind, hook: &Hook, state_json: &str) -> Result<()> {
    let output = memfd_create("quai-hook-output", MemfdFlags::CLOEXEC)
        .map_err(|e| hook_error(kind, hook, format!("cannot capture output: {e}")))?;
    let output = File::from(output);
    let capture = || {
        output
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| hook_error(kind, hook, format!("cannot capture output: {e}")))
    };
    let args = hook.args().clone().unwrap_or_default();
    let mut command = Command::new(hook.path());
    if let Some((arg0, rest)) = args.split_first() {
        command.arg0(arg0).args(rest);
    }
    command
        .env_clear()
        .envs(
            hook.env()
                .iter()
                .flatten()
                .filter_map(|kv| kv.split_once('=')),
        )
        .stdin(Stdio::piped())
        .stdout(capture()?)
        .stderr(capture()?);
    let mut child = command
        .spawn()
        .map_err(|e| hook_error(kind, hook, format!("cannot start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that ignores its stdin and exits early closes the pipe:
        // that is not an error of the hook.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let timeout = hook.timeout().map(|s| Duration::from_secs(s as u64));
    let status = match wait_with_timeout(child.id() as i32, timeout) {
        Ok(true) => child.wait(),
        Ok(false) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(hook_error(
                kind,
                hook,
                format!(
                    "timed out after {}s and was killed",
                    timeout.unwrap_or_default().as_secs()
                ),
            ));
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
    .map_err(|e| hook_error(kind, hook, format!("cannot wait: {e}")))?;
    if status.success() {
        return Ok(());
    }
    Err(hook_error(kind, hook, describe_failure(status, &output)))
}

fn describe_failure(status: ExitStatus, mut output: &File) -> String {
    let mut text = String::new();
    let _ = output.rewind();
    let _ = output.take(4096).read_to_string(&mut text);
    let text = text.trim();
    let status = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => format!("exit status {code}"),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        _ => "failed".to_string(),
    };
    if text.is_empty() {
        status
    } else {
        format!("{status}: {text}")
    }
}

/// Waits until process `pid` exits (true) or `timeout` passes (false).
fn wait_with_timeout(pid: i32, timeout: Option<Duration>) -> std::io::Result<bool> {
    let Some(timeout) = timeout else {
        return Ok(true);
    };
    let pid = Pid::from_raw(pid).ok_or_else(|| std::io::Error::other("invalid hook pid"))?;
    let pidfd = pidfd_open(pid, PidfdFlags::empty())?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ts = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
