//! The IPv6 loopback relay: published ports reached on `[::1]`.
//!
//! quai publishes ports in the kernel (DNAT), which works for every host
//! address except `::1`: IPv6 has no `route_localnet`. A connection from
//! `::1` DNATed to a container goes out with source `::1`, which the
//! container drops; masqueraded, its answer is turned back into one for
//! `::1` on arrival at the bridge, and the kernel's strict route lookup
//! for loopback destinations drops it there. So `::1` is left out of the
//! DNAT (see `nft.rs`) and reaches the port's own reservation socket,
//! which the relay makes listen: it accepts and copies each connection to
//! the container, as docker-proxy does for every address. TCP only.
//!
//! The relay is a child process (`quai internal port-relay`) so that the
//! single-threaded monitor, which forks the container, never has threads.
//! The parent hands the sockets over on a `SOCK_SEQPACKET` pair that is
//! also the relay's lifeline: when the parent closes its end or dies, the
//! relay exits.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use crate::error::{NetError, Result};

/// Sockets per handover message (the kernel's SCM_MAX_FD is 253).
const FDS_PER_MESSAGE: usize = 200;
const DONE: &[u8] = b"done";
const READY: &[u8] = b"ready";
/// Connections relayed at once; more are refused (closed) until some end.
const MAX_CONNECTIONS: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKLOG: i32 = 128;

/// A running relay; dropping it stops it.
#[derive(Debug)]
pub struct Relay {
    child: Child,
    lifeline: Option<OwnedFd>,
}

impl Relay {
    /// Starts `quai internal port-relay` (the `quai` executable) relaying
    /// connections accepted on each socket (bound TCP sockets, not yet
    /// listening) to its target.
    pub fn spawn(quai: &Path, routes: &[(BorrowedFd<'_>, SocketAddr)]) -> Result<Relay> {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| NetError::io("create the port relay's socket pair", e.into()))?;
        let child = Command::new(quai)
            .args(["internal", "port-relay"])
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(|e| NetError::io(format!("start the port relay {}", quai.display()), e))?;
        let mut relay = Relay {
            child,
            lifeline: Some(ours),
        };
        relay.hand_over(routes)?;
        Ok(relay)
    }

    fn hand_over(&mut self, routes: &[(BorrowedFd<'_>, SocketAddr)]) -> Result<()> {
        let lifeline = self.lifeline.as_ref().expect("set until drop");
        let failed = |e: io::Error| NetError::io("hand the published ports to the port relay", e);
        for chunk in routes.chunks(FDS_PER_MESSAGE) {
            let targets: Vec<String> = chunk.iter().map(|(_, t)| t.to_string()).collect();
            let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|(fd, _)| *fd).collect();
            let payload = targets.join(" ");
            let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            control.push(SendAncillaryMessage::ScmRights(&fds));
            rustix::net::sendmsg(
                lifeline,
                &[IoSlice::new(payload.as_bytes())],
                &mut control,
                SendFlags::empty(),
            )
            .map_err(|e| failed(e.into()))?;
        }
        rustix::net::send(lifeline, DONE, SendFlags::empty()).map_err(|e| failed(e.into()))?;
        let mut answer = [0u8; 16];
        let (n, _) = rustix::net::recv(lifeline, &mut answer, rustix::net::RecvFlags::empty())
            .map_err(|e| failed(e.into()))?;
        if &answer[..n] != READY {
            return Err(failed(io::Error::other(
                "the relay exited before it was ready (see its error above)",
            )));
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Closing the lifeline is enough; killing makes it immediate, and
        // waiting leaves no zombie.
        self.lifeline.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The relay process: receives its sockets on `lifeline` (its stdin),
/// says it is ready, and relays until the lifeline closes.
pub fn serve(lifeline: BorrowedFd<'_>) -> Result<()> {
    let routes = receive_routes(lifeline)?;
    for (listener, _) in &routes {
        rustix::net::listen(listener, BACKLOG)
            .map_err(|e| NetError::io("listen on a published port for [::1]", e.into()))?;
    }
    rustix::net::send(lifeline, READY, SendFlags::empty())
        .map_err(|e| NetError::io("tell the engine the relay is ready", e.into()))?;
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let mut fds: Vec<PollFd<'_>> = std::iter::once(PollFd::new(&lifeline, PollFlags::IN))
            .chain(
                routes
                    .iter()
                    .map(|(listener, _)| PollFd::new(listener, PollFlags::IN)),
            )
            .collect();
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(NetError::io("wait for connections to relay", e.into())),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
        drop(fds);
        if ready[0] {
            // Only the end of the lifeline is ever signalled on it.
            return Ok(());
        }
        for ((listener, target), _) in routes.iter().zip(&ready[1..]).filter(|(_, r)| **r) {
            let Ok(client) = rustix::net::accept_with(listener, SocketFlags::CLOEXEC) else {
                continue;
            };
            if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                continue;
            }
            active.fetch_add(1, Ordering::Relaxed);
            let (target, counter) = (*target, Arc::clone(&active));
            let spawned = std::thread::Builder::new()
                .name("relay".into())
                .spawn(move || {
                    relay_connection(TcpStream::from(client), target);
                    counter.fetch_sub(1, Ordering::Relaxed);
                });
            if spawned.is_err() {
                active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

fn receive_routes(lifeline: BorrowedFd<'_>) -> Result<Vec<(OwnedFd, SocketAddr)>> {
    let failed = |e: io::Error| NetError::io("receive the published ports to relay", e);
    let mut routes = Vec::new();
    loop {
        let mut payload = vec![0u8; 64 * FDS_PER_MESSAGE];
        let mut space =
            vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            lifeline,
            &mut [IoSliceMut::new(&mut payload)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(|e| failed(e.into()))?;
        let text = &payload[..received.bytes];
        let fds: Vec<OwnedFd> = control
            .drain()
            .filter_map(|m| match m {
                RecvAncillaryMessage::ScmRights(fds) => Some(fds),
                _ => None,
            })
            .flatten()
            .collect();
        if received.bytes == 0 {
            return Err(failed(io::Error::other("the engine went away")));
        }
        if text == DONE {
            return Ok(routes);
        }
        let targets = std::str::from_utf8(text).ok().map(|t| {
            t.split(' ')
                .map(str::parse)
                .collect::<std::result::Result<Vec<SocketAddr>, _>>()
        });
        match targets {
            Some(Ok(targets)) if targets.len() == fds.len() => {
                routes.extend(fds.into_iter().zip(targets));
            }
            _ => {
                return Err(failed(io::Error::other(format!(
                    "malformed handover: {:?} with {} sockets",
                    String::from_utf8_lossy(text),
                    fds.len()
                ))))
            }
        }
    }
}

fn relay_connection(client: TcpStream, target: SocketAddr) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let back = std::thread::Builder::new()
        .name("relay-back".into())
        .spawn(move || copy_then_close(upstream2, client2));
    copy_then_close(client, upstream);
    if let Ok(back) = back {
        let _ = back.join();
    }
}

/// Copies until `from` ends, then tells `to` nothing more comes.
fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
