//! `exec` and `attach`.

use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use clap::Args;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};

use quai_engine::exec::{wait_exec, ExecProcess, ExecRequest, ExecStdio};
use quai_engine::sys::SignalFd;
use quai_engine::Streams;

use super::attach::{
    self, parse_detach_keys, terminal_size, Outcome, RawMode, RelayOptions, DEFAULT_DETACH_KEYS,
};
use super::{Exit, GlobalOptions};

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true
    )]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value = "true", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

fn null() -> Result<OwnedFd> {
    rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .context("open /dev/null")
}

fn dup(fd: std::os::fd::BorrowedFd) -> Result<OwnedFd> {
    fd.try_clone_to_owned().context("duplicate a descriptor")
}

fn env_lines(a: &ExecArgs) -> Result<Vec<String>> {
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("open env file {f}"))?;
        env.extend(
            text.lines()
                .map(str::trim_start)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    env.extend(a.env.iter().cloned());
    Ok(env
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect())
}

pub fn exec(a: ExecArgs, g: &GlobalOptions) -> Result<()> {
    // The exec'd process is set up by this very process, visible to the
    // container: run from a read-only view of the binary (CVE-2019-5736).
    let keep_in = g
        .runroot
        .join("runtime")
        .join(quai_runtime::exe_guard::KEPT_DIR);
    quai_runtime::exe_guard::reexec_protected(Some(&keep_in))
        .map_err(|e| Exit::with(126, e.to_string()))?;
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let detach_keys = parse_detach_keys(a.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS))
        .map_err(|e| Exit::with(1, e.to_string()))?;
    if a.tty && a.interactive && !a.detach && !io::stdin().is_terminal() {
        return Err(Exit::with(1, "the input device is not a TTY"));
    }
    let req = ExecRequest {
        cmd: a.command.clone(),
        env: env_lines(&a).map_err(|e| Exit::with(1, format!("{e:#}")))?,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        tty: a.tty && !a.detach,
        privileged: a.privileged,
    };
    let stdio = if a.detach {
        ExecStdio::Fds([null()?, null()?, null()?])
    } else {
        let stdin = if a.interactive {
            dup(io::stdin().as_fd())?
        } else {
            null()?
        };
        ExecStdio::Fds([
            stdin,
            dup(io::stdout().as_fd())?,
            dup(io::stderr().as_fd())?,
        ])
    };
    let p = engine.exec(&a.container, &req, stdio).map_err(|e| {
        let status = e.exit_status();
        Exit::with(if status == 125 { 1 } else { status as u8 }, e.to_string())
    })?;
    if a.detach {
        return Ok(());
    }
    let code = match &p.pty {
        Some(master) => match pty_relay(&p, master, a.interactive, &detach_keys)? {
            Some(code) => code,
            None => return Ok(()),
        },
        None => wait_exec(&p),
    };
    if code == 0 {
        Ok(())
    } else {
        Err(Exit::status(code))
    }
}

fn set_size(master: &OwnedFd) {
    if let Some((rows, cols)) = terminal_size() {
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let _ = rustix::termios::tcsetwinsize(master, ws);
    }
}

/// Relays the terminal to an exec'd process's pty; its exit code, or
/// None when the user detached.
fn pty_relay(
    p: &ExecProcess,
    master: &OwnedFd,
    stdin_on: bool,
    detach_keys: &[u8],
) -> Result<Option<i32>> {
    let _raw = if stdin_on { RawMode::enter() } else { None };
    let signals = SignalFd::new(&[libc::SIGWINCH]).context("watch SIGWINCH")?;
    set_size(master);
    let stdin = io::stdin();
    let mut stdout = io::stdout();
    let mut buf = vec![0u8; 32 * 1024];
    let mut stdin_open = stdin_on;
    let mut matched = 0usize;
    loop {
        let mut fds = vec![
            PollFd::new(master, PollFlags::IN),
            PollFd::new(&signals, PollFlags::IN),
        ];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).context("wait for the exec's output"),
        }
        let master_ready = !fds[0].revents().is_empty();
        let sig_ready = !fds[1].revents().is_empty();
        let stdin_ready = stdin_open && !fds[2].revents().is_empty();
        drop(fds);
        if master_ready {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => return Ok(Some(wait_exec(p))),
                Ok(n) => {
                    let _ = stdout.write_all(&buf[..n]).and_then(|_| stdout.flush());
                }
                Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                Err(_) => return Ok(Some(wait_exec(p))),
            }
        }
        if sig_ready {
            while signals.read().is_some() {
                set_size(master);
            }
        }
        if stdin_ready {
            let n = stdin.lock().read(&mut buf).unwrap_or(0);
            if n == 0 {
                stdin_open = false;
                let _ = rustix::io::write(master, &[4]);
                continue;
            }
            let mut data = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if b == detach_keys[matched] {
                    matched += 1;
                    if matched == detach_keys.len() {
                        return Ok(None);
                    }
                    continue;
                }
                if matched > 0 {
                    data.extend_from_slice(&detach_keys[..matched]);
                    matched = 0;
                }
                data.push(b);
            }
            let _ = rustix::io::write(master, &data);
        }
    }
}

pub fn attach(a: AttachArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let detach_keys = parse_detach_keys(a.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS))
        .map_err(|e| Exit::with(1, e.to_string()))?;
    let c = engine
        .container(&a.container)
        .map_err(|e| Exit::with(1, e.to_string()))?;
    let stdin = !a.no_stdin && c.def.config.open_stdin;
    if c.def.config.tty && stdin && !io::stdin().is_terminal() {
        return Err(Exit::with(1, "the input device is not a TTY"));
    }
    let sock = engine
        .attach(
            &c.id,
            Streams {
                stdin,
                stdout: true,
                stderr: true,
            },
        )
        .map_err(|e| Exit::with(1, e.to_string()))?;
    let opts = RelayOptions {
        paths: engine.paths(),
        id: &c.id,
        stdin,
        tty: c.def.config.tty,
        sig_proxy: a.sig_proxy,
        detach_keys,
    };
    match attach::relay(sock, &opts)? {
        Outcome::Exited(exit) if exit.status_code != 0 => Err(Exit::status(exit.status_code)),
        Outcome::Lost => {
            let code = engine.wait(&c.id).map(|w| w.status_code).unwrap_or(0);
            if code == 0 {
                Ok(())
            } else {
                Err(Exit::status(code))
            }
        }
        _ => Ok(()),
    }
}
