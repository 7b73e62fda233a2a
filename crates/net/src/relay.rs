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
//! the container, as docker-proxy does for every address. UDP datagrams
//! are relayed per client (a socket of its own towards the container,
//! forgotten after 90 s of silence, as docker-proxy does).
//!
//! The relay is a child process (`quai internal port-relay`) so that the
//! single-threaded monitor, which forks the container, never has threads.
//! The parent hands the sockets over on a `SOCK_SEQPACKET` pair that is
//! also the relay's lifeline: when the parent closes its end or dies, the
//! relay exits.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
/// A UDP client silent this long is forgotten (docker-proxy's 90 s).
const UDP_FLOW_IDLE: Duration = Duration::from_secs(90);
const UDP_BUFFER: usize = 65536;

/// A running relay; dropping it stops it.
#[derive(Debug)]
pub struct Relay {
    child: Child,
    lifeline: Option<OwnedFd>,
}

impl Relay {
    /// Starts `quai internal port-relay` (the `quai` executable) relaying
    /// what arrives on each socket (bound TCP sockets, not yet listening,
    /// or bound UDP sockets) to its target.
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
    let mut listeners = Vec::new();
    for (socket, target) in receive_routes(lifeline)? {
        let listener = if rustix::net::sockopt::socket_type(&socket)
            .map_err(|e| NetError::io("inspect a published port's socket", e.into()))?
            == SocketType::DGRAM
        {
            let socket = UdpSocket::from(socket);
            socket
                .set_nonblocking(true)
                .map_err(|e| NetError::io("set up a published UDP port for [::1]", e))?;
            Listener::Udp(socket)
        } else {
            rustix::net::listen(&socket, BACKLOG)
                .map_err(|e| NetError::io("listen on a published port for [::1]", e.into()))?;
            Listener::Tcp(socket)
        };
        listeners.push((listener, target));
    }
    rustix::net::send(lifeline, READY, SendFlags::empty())
        .map_err(|e| NetError::io("tell the engine the relay is ready", e.into()))?;
    let active = Arc::new(AtomicUsize::new(0));
    let mut flows: Vec<UdpFlow> = Vec::new();
    let tick = rustix::event::Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    loop {
        let mut fds: Vec<PollFd<'_>> = std::iter::once(PollFd::new(&lifeline, PollFlags::IN))
            .chain(listeners.iter().map(|(l, _)| PollFd::new(l, PollFlags::IN)))
            .chain(
                flows
                    .iter()
                    .map(|f| PollFd::new(&f.upstream, PollFlags::IN)),
            )
            .collect();
        let timeout = (!flows.is_empty()).then_some(&tick);
        match poll(&mut fds, timeout) {
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
        let (listeners_ready, flows_ready) = ready[1..].split_at(listeners.len());
        for (index, flow) in flows.iter_mut().enumerate() {
            if flows_ready[index] {
                if let Listener::Udp(listener) = &listeners[flow.listener].0 {
                    flow.answer(listener);
                }
            }
        }
        for (index, (listener, target)) in listeners.iter().enumerate() {
            if !listeners_ready[index] {
                continue;
            }
            match listener {
                Listener::Tcp(socket) => accept_tcp(socket, *target, &active),
                Listener::Udp(socket) => receive_udp(socket, index, *target, &mut flows),
            }
        }
        flows.retain(|f| f.last_used.elapsed() < UDP_FLOW_IDLE);
    }
}

/// A published port's socket, as the relay serves it.
enum Listener {
    Tcp(OwnedFd),
    Udp(UdpSocket),
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(socket) => socket.as_fd(),
            Listener::Udp(socket) => socket.as_fd(),
        }
    }
}

fn accept_tcp(listener: &OwnedFd, target: SocketAddr, active: &Arc<AtomicUsize>) {
    let Ok(client) = rustix::net::accept_with(listener, SocketFlags::CLOEXEC) else {
        return;
    };
    if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
        return;
    }
    active.fetch_add(1, Ordering::Relaxed);
    let counter = Arc::clone(active);
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

/// One UDP client of a published port: its datagrams go to the container
/// from a socket of its own, so that answers find their way back to it.
struct UdpFlow {
    listener: usize,
    client: SocketAddr,
    upstream: UdpSocket,
    last_used: Instant,
}

impl UdpFlow {
    fn answer(&mut self, listener: &UdpSocket) {
        let mut buffer = [0u8; UDP_BUFFER];
        while let Ok(size) = self.upstream.recv(&mut buffer) {
            let _ = listener.send_to(&buffer[..size], self.client);
            self.last_used = Instant::now();
        }
    }
}

fn receive_udp(listener: &UdpSocket, index: usize, target: SocketAddr, flows: &mut Vec<UdpFlow>) {
    let mut buffer = [0u8; UDP_BUFFER];
    while let Ok((size, client)) = listener.recv_from(&mut buffer) {
        let position = flows
            .iter()
            .position(|f| f.listener == index && f.client == client);
        let position = match position {
            Some(position) => position,
            None if flows.len() >= MAX_CONNECTIONS => continue,
            None => {
                let Ok(upstream) = udp_flow_socket(target) else {
                    continue;
                };
                flows.push(UdpFlow {
                    listener: index,
                    client,
                    upstream,
                    last_used: Instant::now(),
                });
                flows.len() - 1
            }
        };
        let flow = &mut flows[position];
        let _ = flow.upstream.send(&buffer[..size]);
        flow.last_used = Instant::now();
    }
}

fn udp_flow_socket(target: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(target)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
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
