//! Waiting for a container process in the foreground (`run` without `-d`,
//! `exec` without `-d`): signals received by the runtime are forwarded to
//! it, orphans are reaped, and with a terminal the runtime relays between
//! its own stdio and the pty master. Returns the exit code a shell would
//! show (128+N when killed by signal N).

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{waitpid, Pid, WaitOptions, WaitStatus};
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize, OptionalActions, Termios};

use crate::error::{IoContext, Result};
use crate::process::sys;

/// Puts the caller's terminal in raw mode while relaying a pty; restores it
/// on drop.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            raw.make_raw();
            let _ = tcsetattr(&stdin, OptionalActions::Now, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, t);
        }
    }
}

fn exit_code(status: WaitStatus) -> i32 {
    if let Some(code) = status.exit_status() {
        code
    } else if let Some(sig) = status.terminating_signal() {
        128 + sig
    } else {
        1
    }
}

fn copy_winsize(master: BorrowedFd) {
    if let Ok(ws) = tcgetwinsize(std::io::stdin()) {
        let _ = tcsetwinsize(master, ws);
    }
}

/// Forwards signals to `pid` and relays `pty_master` (if any) until `pid`
/// exits; returns its exit code.
pub fn wait_forwarding(pid: i32, pty_master: Option<OwnedFd>) -> Result<i32> {
    SignalForwarding::install()?.wait(pid, pty_master)
}

/// Signals of the caller held on a signalfd from `install` on, so that a
/// signal sent between the container's start and the wait is forwarded
/// rather than killing the runtime. The mask is restored on drop, unless
/// [`wait`](Self::wait) ran: a signal meant for the container that comes
/// after it exited must not kill the runtime either (it would then die
/// with that signal instead of reporting the container's exit code), so
/// they stay held until the caller exits. Processes spawned through `std::process::Command` (hooks) start with
/// an empty mask, so installing this before `start` does not affect them.
pub struct SignalForwarding {
    signals: OwnedFd,
    old_mask: libc::sigset_t,
    restore_on_drop: bool,
}

impl SignalForwarding {
    pub fn install() -> Result<SignalForwarding> {
        let (signals, old_mask) = sys::signalfd_for_all().ctx(|| "watch signals")?;
        Ok(SignalForwarding {
            signals,
            old_mask,
            restore_on_drop: true,
        })
    }

    /// Forwards signals (also those received since `install`) to `pid`
    /// and relays `pty_master` until `pid` exits; returns its exit code.
    pub fn wait(mut self, pid: i32, pty_master: Option<OwnedFd>) -> Result<i32> {
        let target =
            Pid::from_raw(pid).ok_or_else(|| crate::RuntimeError::option("pid", "invalid"))?;
        self.restore_on_drop = false;
        relay(target, &self.signals, pty_master)
    }
}

impl Drop for SignalForwarding {
    fn drop(&mut self) {
        if self.restore_on_drop {
            sys::restore_signal_mask(&self.old_mask);
        }
    }
}

fn relay(target: Pid, signals: &OwnedFd, pty_master: Option<OwnedFd>) -> Result<i32> {
    let _raw = pty_master.as_ref().map(|_| RawMode::enter());
    if let Some(master) = &pty_master {
        copy_winsize(master.as_fd());
    }
    let mut stdin_open = pty_master.is_some();
    let mut buf = [0u8; 8192];
    // The process may have exited before signals were redirected to the
    // signalfd, its SIGCHLD then lost: look once before waiting.
    let mut exit = match waitpid(Some(target), WaitOptions::NOHANG) {
        Ok(Some((_, status))) => Some(exit_code(status)),
        _ => None,
    };
    loop {
        if let Some(code) = exit {
            if let Some(master) = &pty_master {
                drain(master, &mut buf);
            }
            return Ok(code);
        }
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(signals, PollFlags::IN)];
        if let Some(master) = &pty_master {
            fds.push(PollFd::new(master, PollFlags::IN));
            if stdin_open {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(crate::RuntimeError::io("wait for the container process", e)),
        }
        let signal_ready = !fds[0].revents().is_empty();
        let master_ready = fds.get(1).is_some_and(|f| !f.revents().is_empty());
        let stdin_ready = fds.get(2).is_some_and(|f| !f.revents().is_empty());
        drop(fds);
        if signal_ready {
            while let Some(signo) = sys::read_signal(signals.as_fd()).ctx(|| "read a signal")? {
                match signo {
                    libc::SIGCHLD => {
                        // Reap everything that exited: our target and, as a
                        // subreaper, orphans of the container.
                        while let Ok(Some((pid, status))) =
                            rustix::process::wait(WaitOptions::NOHANG)
                        {
                            if pid == target {
                                exit = Some(exit_code(status));
                            }
                        }
                    }
                    libc::SIGWINCH => {
                        if let Some(master) = &pty_master {
                            copy_winsize(master.as_fd());
                        }
                    }
                    other => {
                        if let Some(sig) = sys::signal_from_number(other) {
                            let _ = rustix::process::kill_process(target, sig);
                        }
                    }
                }
            }
        }
        if let Some(master) = &pty_master {
            if master_ready {
                match rustix::io::read(master, &mut buf) {
                    Ok(0) | Err(rustix::io::Errno::IO) => {}
                    Ok(n) => {
                        let mut out = std::io::stdout();
                        let _ = out.write_all(&buf[..n]);
                        let _ = out.flush();
                    }
                    Err(_) => {}
                }
            }
            if stdin_ready {
                match std::io::stdin().read(&mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = rustix::io::write(master, &buf[..n]);
                    }
                }
            }
        }
    }
}

/// Copies whatever the pty still holds after the process exited.
fn drain(master: &OwnedFd, buf: &mut [u8]) {
    let _ = rustix::fs::fcntl_setfl(master, rustix::fs::OFlags::NONBLOCK);
    let mut out = std::io::stdout();
    while let Ok(n) = rustix::io::read(master, &mut *buf) {
        if n == 0 {
            break;
        }
        let _ = out.write_all(&buf[..n]);
    }
    let _ = out.flush();
}
