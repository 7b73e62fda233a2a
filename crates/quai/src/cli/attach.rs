//! The command-line end of an attach: the terminal (raw mode, size),
//! stdin to the container, its output to stdout/stderr, proxied signals,
//! docker's detach keys (ctrl-p ctrl-q).

use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, OptionalActions, Termios};

use quai_engine::client;
use quai_engine::paths::Paths;
use quai_engine::proto::{self, ExitReply, Request};
use quai_engine::sys::SignalFd;

/// docker's default detach sequence.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Signals `run`/`attach` pass on to the container (`--sig-proxy`).
const PROXIED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGCONT,
    libc::SIGTSTP,
];

pub struct RelayOptions<'a> {
    pub paths: &'a Paths,
    pub id: &'a str,
    pub stdin: bool,
    pub tty: bool,
    pub sig_proxy: bool,
    pub detach_keys: Vec<u8>,
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Exited(ExitReply),
    Detached,
    /// The monitor went away without saying how the container ended.
    Lost,
}

/// Parses docker's `--detach-keys` ("ctrl-p,ctrl-q", "a,ctrl-x").
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for key in s.split(',') {
        let k = key.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => bail!("Invalid detach keys ({s}) provided"),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            bail!("Invalid detach keys ({s}) provided");
        }
    }
    if out.is_empty() {
        bail!("Invalid detach keys ({s}) provided");
    }
    Ok(out)
}

/// Puts the terminal on stdin in raw mode until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> Option<RawMode> {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}

/// The size of the terminal this command runs in, if any.
pub fn terminal_size() -> Option<(u16, u16)> {
    for fd in [
        io::stdout().as_fd(),
        io::stdin().as_fd(),
        io::stderr().as_fd(),
    ] {
        if let Ok(ws) = tcgetwinsize(fd) {
            if ws.ws_row > 0 {
                return Some((ws.ws_row, ws.ws_col));
            }
        }
    }
    None
}

fn resize_frame(rows: u16, cols: u16) -> Vec<u8> {
    let mut payload = rows.to_be_bytes().to_vec();
    payload.extend_from_slice(&cols.to_be_bytes());
    let mut frame = proto::header(proto::RESIZE, 4).to_vec();
    frame.extend_from_slice(&payload);
    frame
}

fn write_out(w: &mut impl Write, data: &[u8]) {
    // A closed stdout (`| head`) must not kill the relay: the container
    // keeps its own fate.
    let _ = w.write_all(data).and_then(|_| w.flush());
}

/// Relays between the terminal and an attached container until it exits,
/// the user detaches, or the monitor goes away.
pub fn relay(mut sock: UnixStream, opts: &RelayOptions) -> Result<Outcome> {
    let _raw = if opts.tty && opts.stdin {
        RawMode::enter()
    } else {
        None
    };
    let mut signals_wanted: Vec<i32> = Vec::new();
    if opts.tty {
        signals_wanted.push(libc::SIGWINCH);
    }
    if opts.sig_proxy && !opts.tty {
        signals_wanted.extend_from_slice(PROXIED);
    }
    let signals = if signals_wanted.is_empty() {
        None
    } else {
        Some(SignalFd::new(&signals_wanted).context("watch signals")?)
    };
    if opts.tty {
        if let Some((rows, cols)) = terminal_size() {
            let _ = sock.write_all(&resize_frame(rows, cols));
        }
    }
    let mut stdin_open = opts.stdin;
    let mut inbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut buf = vec![0u8; 32 * 1024];
    let mut matched = 0usize;
    let stdin = io::stdin();
    let mut stdout = io::stdout();
    let mut stderr = io::stderr();
    loop {
        let mut fds = vec![PollFd::new(&sock, PollFlags::IN)];
        let stdin_idx = if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
            Some(fds.len() - 1)
        } else {
            None
        };
        let sig_idx = match &signals {
            Some(s) => {
                fds.push(PollFd::new(s, PollFlags::IN));
                Some(fds.len() - 1)
            }
            None => None,
        };
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).context("wait for the container's output"),
        }
        let sock_ready = !fds[0].revents().is_empty();
        let stdin_ready = stdin_idx.is_some_and(|i| !fds[i].revents().is_empty());
        let sig_ready = sig_idx.is_some_and(|i| !fds[i].revents().is_empty());
        drop(fds);

        if sock_ready {
            match sock.read(&mut buf) {
                Ok(0) => return Ok(Outcome::Lost),
                Ok(n) => inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("read from the container's monitor"),
            }
            while let Some((kind, payload)) =
                proto::take_frame(&mut inbuf).context("read from the container's monitor")?
            {
                match kind {
                    proto::STDOUT => write_out(&mut stdout, &payload),
                    proto::STDERR => write_out(&mut stderr, &payload),
                    proto::EXIT => {
                        let exit: ExitReply = serde_json::from_slice(&payload)
                            .context("read the container's exit status")?;
                        return Ok(Outcome::Exited(exit));
                    }
                    _ => {}
                }
            }
        }
        if stdin_ready {
            let n = match stdin.lock().read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            if n == 0 {
                stdin_open = false;
                let _ = sock.write_all(&proto::header(proto::CLOSE_STDIN, 0));
                continue;
            }
            let mut data: Vec<u8> = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if opts.tty && !opts.detach_keys.is_empty() {
                    if b == opts.detach_keys[matched] {
                        matched += 1;
                        if matched == opts.detach_keys.len() {
                            return Ok(Outcome::Detached);
                        }
                        continue;
                    }
                    if matched > 0 {
                        data.extend_from_slice(&opts.detach_keys[..matched]);
                        matched = 0;
                    }
                }
                data.push(b);
            }
            if !data.is_empty() {
                let mut frame = proto::header(proto::STDIN, data.len()).to_vec();
                frame.extend_from_slice(&data);
                if sock.write_all(&frame).is_err() {
                    stdin_open = false;
                }
            }
        }
        if sig_ready {
            if let Some(s) = &signals {
                while let Some(sig) = s.read() {
                    if sig == libc::SIGWINCH {
                        if let Some((rows, cols)) = terminal_size() {
                            let _ = sock.write_all(&resize_frame(rows, cols));
                        }
                    } else {
                        let _ = client::request(
                            opts.paths,
                            opts.id,
                            &Request::Kill { signal: sig },
                            Some(Duration::from_secs(10)),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("abc").is_err());
    }
}
