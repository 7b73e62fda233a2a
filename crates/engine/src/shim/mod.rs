//! The per-container monitor: `quai internal shim`, started by `start`
//! (and `run`), one per running container. It
//!
//! - leaves the host's mount namespace (its own, a slave of the host's) and
//!   mounts the container's overlay there, so no crash can leave a host
//!   mount behind: the mount dies with the monitor and the container;
//! - writes config.json and creates and starts the container through the
//!   runtime library, in-process (the init is its child);
//! - holds the container's stdio (pipes, or the pty master with `-t`),
//!   writes the json-file log, serves `attach`, `wait`, `stop`, `kill`
//!   and `resize` on `<run>/containers/<id>/attach.sock`;
//! - records the exit (code, time) in the database, applies the restart
//!   policy and `--rm`, runs health checks;
//! - is single-threaded, driven by one epoll loop.
//!
//! The command that spawns it passes its stdin as the first attach
//! connection (or /dev/null) and its stdout as the ready pipe, on which
//! the monitor writes one [`crate::proto::Ready`] line once the container
//! runs (or could not be started).

mod fscopy;
mod health;
mod monitor;
mod start;

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::proto::Ready;

pub use monitor::should_restart;
pub use start::mount_overlay;

/// Arguments of `quai internal shim`.
#[derive(Debug, Clone)]
pub struct ShimOptions {
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub id: String,
    /// stdin is a connected socket: the first attach client.
    pub attach: bool,
    /// Started ahead of its container ([`crate::client::PendingShim`]):
    /// `id` is empty and comes on stdin, followed by the attach request
    /// if any.
    pub await_id: bool,
}

impl ShimOptions {
    /// Reads back the command line [`crate::client::shim_args`] writes
    /// (`args` without the program). Anything else is `None`, for the
    /// full command-line parser to handle. The monitor starts with every
    /// container: this spares it building the parser of all of quai's
    /// commands (~1 ms and ~180 page faults).
    pub fn from_launch_args(args: &[std::ffi::OsString]) -> Option<ShimOptions> {
        let [internal, shim, root_flag, root, runroot_flag, runroot, rest @ ..] = args else {
            return None;
        };
        if internal != crate::client::SHIM_SUBCOMMAND[0]
            || shim != crate::client::SHIM_SUBCOMMAND[1]
            || root_flag != "--root"
            || runroot_flag != "--runroot"
        {
            return None;
        }
        if root.is_empty() || runroot.is_empty() {
            return None;
        }
        let (attach, id) = match rest {
            [flag] if flag == crate::client::AWAIT_ID => {
                return Some(ShimOptions {
                    root: PathBuf::from(root),
                    runroot: PathBuf::from(runroot),
                    id: String::new(),
                    attach: false,
                    await_id: true,
                })
            }
            [flag, id] if flag == "--attach" => (true, id),
            [id] => (false, id),
            _ => return None,
        };
        let id = id.to_str()?;
        if id.starts_with('-') {
            return None;
        }
        Some(ShimOptions {
            root: PathBuf::from(root),
            runroot: PathBuf::from(runroot),
            id: id.to_string(),
            attach,
            await_id: false,
        })
    }
}

/// Runs the monitor; returns the process exit status.
pub fn main(opts: ShimOptions) -> i32 {
    // The container can see this process (its init is our child, health
    // checks join it): run from a read-only view of the binary first
    // (CVE-2019-5736). Our stdio, the ready pipe and the attach socket,
    // survive the re-exec.
    let keep_in = crate::paths::Paths::new(&opts.root, &opts.runroot)
        .runtime_root()
        .join(quai_runtime::exe_guard::KEPT_DIR);
    if let Err(e) = quai_runtime::exe_guard::reexec_protected(Some(&keep_in)) {
        report(
            match std::io::stdout().as_fd().try_clone_to_owned() {
                Ok(fd) => fd,
                Err(_) => return 1,
            },
            &Ready {
                error: Some(e.to_string()),
                status: 125,
            },
        );
        return 1;
    }
    crate::timeline::mark("shim:protected");
    let (ready, attach) = match take_stdio(opts.attach || opts.await_id) {
        Ok(fds) => fds,
        Err(_) => return 1,
    };
    let mut ready = Some(ready);
    let result = run(&opts, attach, &mut ready);
    if let Err(e) = &result {
        if let Some(fd) = ready.take() {
            report(
                fd,
                &Ready {
                    error: Some(e.to_string()),
                    status: e.exit_status(),
                },
            );
        }
    }
    match result {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Takes the ready pipe (stdout) and the attach socket (stdin) and puts
/// /dev/null in their place.
fn take_stdio(attach: bool) -> std::io::Result<(OwnedFd, Option<OwnedFd>)> {
    let ready = std::io::stdout().as_fd().try_clone_to_owned()?;
    let attach = if attach {
        Some(std::io::stdin().as_fd().try_clone_to_owned()?)
    } else {
        None
    };
    let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    Ok((ready, attach))
}

/// Writes the ready line and closes the pipe.
pub(crate) fn report(fd: OwnedFd, ready: &Ready) {
    let mut line = serde_json::to_vec(ready).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    let mut f = std::fs::File::from(fd);
    let _ = f.write_all(&line);
}

fn run(opts: &ShimOptions, stdin: Option<OwnedFd>, ready: &mut Option<OwnedFd>) -> Result<()> {
    // Our own session: the terminal of the command that started us can
    // neither signal us nor take us down with it.
    let _ = rustix::process::setsid();
    crate::netsetup::remember_host_mount_namespace()?;
    enter_private_mount_namespace()?;
    crate::failpoint::crash_at("shim:namespace");
    crate::timeline::mark("shim:namespace");
    let store = quai_image::store::StoreOptions {
        no_seed: true,
        ..Default::default()
    };
    let mut engine = Engine::open(&opts.root, &opts.runroot, store)?;
    crate::timeline::mark("shim:opened");
    let (id, attach, first_client) = if opts.await_id {
        match await_container(stdin) {
            Some(told) => told,
            // The command created nothing (or died): nothing to do.
            None => {
                ready.take();
                return Ok(());
            }
        }
    } else {
        (opts.id.clone(), opts.attach, stdin)
    };
    crate::timeline::mark("shim:told");
    claim(&mut engine, &id)?;
    crate::timeline::mark("shim:claimed");
    let mut monitor = monitor::Monitor::new(engine, &id, first_client)?;
    crate::timeline::mark("shim:listening");
    monitor.first_start(ready)?;
    if !attach {
        // Detached: the command that started us has its answer, and a
        // container that runs for long never reaches `finish`.
        monitor.keep_wal_short();
    }
    monitor.run();
    Ok(())
}

/// A monitor started ahead of its container reads `<id>` or `<id> attach`
/// from the command that started it; with `attach`, that stream goes on
/// as the first attach client. None when the command closed it instead.
fn await_container(control: Option<OwnedFd>) -> Option<(String, bool, Option<OwnedFd>)> {
    let control = std::os::unix::net::UnixStream::from(control?);
    let line = crate::proto::read_line(&mut &control, 256).ok()??;
    let (id, attach) = match line.split_once(' ') {
        Some((id, "attach")) => (id, true),
        Some(_) => return None,
        None => (line.as_str(), false),
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let first_client = attach.then(|| OwnedFd::from(control));
    Some((id.to_string(), attach, first_client))
}

/// Records this process as the container's monitor before it makes any
/// file: a concurrent `rm -f` (whose starter died) then sees a live
/// monitor and kills it first; a container already being removed is not
/// started.
fn claim(engine: &mut Engine, id: &str) -> Result<()> {
    let me = quai_runtime::procfs::ProcessIdentity::of(std::process::id() as i32)
        .map_err(|e| EngineError::io("read the monitor's own process identity", e))?;
    let claimed = engine.conn().execute(
        "UPDATE containers SET monitor_pid = ?2, monitor_start = ?3 WHERE id = ?1 AND status != 'removing'",
        (id, me.pid, me.start_time as i64),
    )?;
    if claimed == 0 {
        return Err(EngineError::NoSuchContainer(id.to_string()));
    }
    Ok(())
}

/// Moves this process into a new mount namespace that receives the host's
/// mounts but sends none back.
fn enter_private_mount_namespace() -> Result<()> {
    crate::sys::unshare_mount_namespace()?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM
            | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(|e| EngineError::io("make the monitor's mounts private (rslave /)", e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;
    use std::ffi::OsString;
    use std::path::Path;

    #[test]
    fn launch_arguments_read_back() {
        let paths = Paths::new(Path::new("/var/lib/q q"), Path::new("/run/q"));
        for attach in [false, true] {
            let args = crate::client::shim_args(&paths, "abc123", attach);
            let opts = ShimOptions::from_launch_args(&args).expect("parsed");
            assert_eq!(opts.root, Path::new("/var/lib/q q"));
            assert_eq!(opts.runroot, Path::new("/run/q"));
            assert_eq!(opts.id, "abc123");
            assert_eq!(opts.attach, attach);
            assert!(!opts.await_id);
        }
        let mut args = crate::client::shim_args(&paths, "abc123", false);
        *args.last_mut().expect("the id") = crate::client::AWAIT_ID.into();
        let opts = ShimOptions::from_launch_args(&args).expect("parsed");
        assert!(opts.await_id && opts.id.is_empty() && !opts.attach);
    }

    #[test]
    fn other_command_lines_are_left_to_the_parser() {
        let parse = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            ShimOptions::from_launch_args(&args)
        };
        assert!(parse(&["internal", "shim", "--help"]).is_none());
        assert!(parse(&["internal", "shim", "--root", "/r", "--runroot", "/rr"]).is_none());
        assert!(parse(&["internal", "shim", "--runroot", "/rr", "--root", "/r", "x"]).is_none());
        assert!(parse(&[
            "internal",
            "shim",
            "--root",
            "/r",
            "--runroot",
            "/rr",
            "--bogus",
            "x"
        ])
        .is_none());
        assert!(parse(&[
            "internal",
            "shim",
            "--root",
            "/r",
            "--runroot",
            "/rr",
            "--help"
        ])
        .is_none());
        assert!(parse(&["ps", "-a", "--root", "/r", "--runroot", "/rr", "x"]).is_none());
        assert!(parse(&[
            "internal",
            "shim",
            "--root",
            "/r",
            "--runroot",
            "/rr",
            "x",
            "y"
        ])
        .is_none());
    }
}
