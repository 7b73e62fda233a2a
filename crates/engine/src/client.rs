//! Talking to a container's monitor: spawning it, connecting to its
//! socket, and the request/reply exchanges.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};

use crate::error::{EngineError, IoContext, Result};
use crate::paths::Paths;
use crate::proto::{Ready, Reply, Request};

/// The arguments after the program that make `quai` a monitor.
pub const SHIM_SUBCOMMAND: [&str; 2] = ["internal", "shim"];

/// In place of the container id: the monitor is started before its
/// container exists and reads the id on its stdin ([`PendingShim`]).
pub const AWAIT_ID: &str = "--await";

/// The monitor's command line after the program, exactly as
/// [`crate::shim::ShimOptions::from_launch_args`] reads it back.
pub fn shim_args(paths: &Paths, id: &str, attach: bool) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = SHIM_SUBCOMMAND.iter().map(|a| a.into()).collect();
    args.push("--root".into());
    args.push(paths.root.clone().into_os_string());
    args.push("--runroot".into());
    args.push(paths.runroot.clone().into_os_string());
    if attach {
        args.push("--attach".into());
    }
    args.push(id.into());
    args
}

/// Connects to the monitor of container `id`.
pub fn connect(paths: &Paths, id: &str) -> Result<UnixStream> {
    let dir = paths.run_dir(id);
    let dir_fd = rustix::fs::open(
        &dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at("open", &dir)?;
    // Through the directory's descriptor: socket paths are limited to 108
    // bytes, state roots are not.
    let short = format!("/proc/self/fd/{}/attach.sock", dir_fd.as_raw_fd());
    UnixStream::connect(&short).at("connect to the container's monitor at", &paths.socket(id))
}

/// Sends `req` and waits for the one reply line (`timeout`: None waits
/// for ever, e.g. for `wait`).
pub fn request(paths: &Paths, id: &str, req: &Request, timeout: Option<Duration>) -> Result<Reply> {
    let sock = connect(paths, id)?;
    send_request(&sock, req)?;
    sock.set_read_timeout(timeout)
        .ctx(|| "set a timeout on the monitor socket".into())?;
    let mut line = String::new();
    BufReader::new(&sock)
        .read_line(&mut line)
        .ctx(|| format!("read the reply of container {id}'s monitor"))?;
    if line.is_empty() {
        return Err(EngineError::io(
            format!("talk to container {id}'s monitor"),
            std::io::Error::other("it closed the connection without replying"),
        ));
    }
    serde_json::from_str(&line).map_err(|e| {
        EngineError::io(
            format!("read the reply of container {id}'s monitor"),
            std::io::Error::other(e),
        )
    })
}

pub fn send_request(mut sock: &UnixStream, req: &Request) -> Result<()> {
    let mut line = serde_json::to_vec(req).unwrap_or_default();
    line.push(b'\n');
    sock.write_all(&line)
        .ctx(|| "send a request to the container's monitor".into())
}

/// The monitor's command line when it is started ahead of its container
/// ([`ShimLauncher::prespawn`]).
fn shim_await_args(paths: &Paths) -> Vec<std::ffi::OsString> {
    let mut args = shim_args(paths, "", false);
    args.pop();
    args.push(AWAIT_ID.into());
    args
}

/// A monitor started while its container is being created (`run`): its
/// own start-up (exec, re-exec from the read-only view, mount namespace,
/// database) overlaps with the command's `create` on another CPU. It then
/// waits on `control` for one line, `<id>` or `<id> attach` (the attach
/// request follows on the same stream, which becomes the first attach
/// client). Dropped without [`ShimLauncher::hand_over`], it is told
/// nothing (end of file) and exits having touched nothing; the drop waits
/// for that, so that a failed `run` leaves no process behind.
pub struct PendingShim(Option<Pending>);

struct Pending {
    control: UnixStream,
    ready: OwnedFd,
    child: std::process::Child,
}

impl Drop for PendingShim {
    fn drop(&mut self) {
        if let Some(Pending {
            control, mut child, ..
        }) = self.0.take()
        {
            drop(control);
            let _ = child.wait();
        }
    }
}

/// How to start a monitor process.
#[derive(Debug, Clone)]
pub struct ShimLauncher {
    /// The `quai` binary (default: this process's own executable).
    pub program: PathBuf,
    /// Where the monitor's stderr goes (for debugging), default /dev/null.
    pub log: Option<PathBuf>,
}

impl Default for ShimLauncher {
    fn default() -> ShimLauncher {
        ShimLauncher {
            program: PathBuf::from("/proc/self/exe"),
            log: std::env::var_os("QUAI_SHIM_LOG").map(PathBuf::from),
        }
    }
}

impl ShimLauncher {
    /// Spawns the monitor of container `id` and waits until it reports
    /// that the container runs (or why it could not start). `attach` is
    /// handed over as the monitor's first client.
    pub fn launch(&self, paths: &Paths, id: &str, attach: Option<UnixStream>) -> Result<Ready> {
        let args = shim_args(paths, id, attach.is_some());
        let stdin = match attach {
            Some(s) => Stdio::from(OwnedFd::from(s)),
            None => Stdio::null(),
        };
        let (child, ready) = self.spawn(paths, args, stdin)?;
        crate::failpoint::crash_at("cli:spawned");
        // The monitor lives on; it is reaped by whoever inherits it.
        drop(child);
        read_ready(ready, id)
    }

    /// Starts a monitor for a container about to be created (see
    /// [`PendingShim`]).
    pub fn prespawn(&self, paths: &Paths) -> Result<PendingShim> {
        let (ours, theirs) =
            UnixStream::pair().ctx(|| "create the monitor's control socket".into())?;
        let (child, ready) = self.spawn(
            paths,
            shim_await_args(paths),
            Stdio::from(OwnedFd::from(theirs)),
        )?;
        Ok(PendingShim(Some(Pending {
            control: ours,
            ready,
            child,
        })))
    }

    /// Tells a pending monitor its container and waits for its ready
    /// report. With `attach`, the control stream carries the request and
    /// is returned as the attach stream.
    pub fn hand_over(
        &self,
        mut pending: PendingShim,
        id: &str,
        attach: Option<&Request>,
    ) -> Result<(Ready, Option<UnixStream>)> {
        let Some(Pending {
            control,
            ready,
            child,
        }) = pending.0.take()
        else {
            return Err(EngineError::invalid(
                "the pending monitor was already handed over",
            ));
        };
        // Handed over, the monitor lives on (reaped by whoever inherits it).
        drop(child);
        let mut message = format!("{id}{}\n", if attach.is_some() { " attach" } else { "" });
        if let Some(req) = attach {
            message.push_str(&serde_json::to_string(req).unwrap_or_default());
            message.push('\n');
        }
        (&control)
            .write_all(message.as_bytes())
            .ctx(|| format!("hand container {id} to its monitor"))?;
        crate::failpoint::crash_at("cli:spawned");
        let ready = read_ready(ready, id)?;
        Ok((ready, attach.map(|_| control)))
    }

    /// Spawns `quai` with the monitor's `args`; returns it and the read
    /// end of its ready pipe.
    fn spawn(
        &self,
        paths: &Paths,
        args: Vec<std::ffi::OsString>,
        stdin: Stdio,
    ) -> Result<(std::process::Child, OwnedFd)> {
        let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .ctx(|| "create the ready pipe".into())?;
        // The monitor must run from a read-only view of the binary
        // (CVE-2019-5736): start it from the runtime's kept read-only bind
        // when there is one, saving the re-exec it would do itself.
        let program = kept_binary(&paths.runtime_root()).unwrap_or_else(|| self.program.clone());
        let mut cmd = Command::new(&program);
        cmd.args(args);
        cmd.stdin(stdin);
        cmd.stdout(Stdio::from(ready_w));
        cmd.stderr(match &self.log {
            Some(p) => Stdio::from(open_log(p)?),
            None => Stdio::null(),
        });
        let child = cmd
            .spawn()
            .ctx(|| format!("start the monitor {}", self.program.display()))?;
        drop(cmd);
        crate::timeline::mark("cli:spawned");
        Ok((child, ready_r))
    }
}

/// Reads the monitor's one-line ready report.
fn read_ready(ready: OwnedFd, id: &str) -> Result<Ready> {
    let mut line = String::new();
    BufReader::new(std::fs::File::from(ready))
        .read_line(&mut line)
        .ctx(|| "read the monitor's ready report".into())?;
    crate::timeline::mark("cli:ready");
    if line.is_empty() {
        return Err(EngineError::io(
            format!("start container {id}"),
            std::io::Error::other("its monitor exited before reporting (see QUAI_SHIM_LOG)"),
        ));
    }
    serde_json::from_str(&line).map_err(|e| {
        EngineError::io(
            format!("start container {id}"),
            std::io::Error::other(format!("unreadable report from its monitor: {e}")),
        )
    })
}

/// The runtime's kept read-only bind of this very binary (see
/// quai_runtime::exe_guard), if it exists and shows this binary read-only.
fn kept_binary(runtime_root: &Path) -> Option<PathBuf> {
    let exe = rustix::fs::stat("/proc/self/exe").ok()?;
    let path = runtime_root
        .join(quai_runtime::exe_guard::KEPT_DIR)
        .join(format!("quai-{:x}-{:x}", exe.st_dev, exe.st_ino));
    let kept = rustix::fs::stat(&path).ok()?;
    let read_only = rustix::fs::statvfs(&path)
        .ok()?
        .f_flag
        .contains(rustix::fs::StatVfsMountFlags::RDONLY);
    (kept.st_dev == exe.st_dev && kept.st_ino == exe.st_ino && read_only).then_some(path)
}

fn open_log(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .at("open monitor log", path)
}
