//! The conversation between the runtime and a process it is setting up (the
//! container's init, or an exec'd process): one JSON message per datagram on
//! a SOCK_SEQPACKET socket pair, so that message boundaries are kept and a
//! peer's death reads as end-of-file rather than a hang.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::{IoSlice, IoSliceMut};
use rustix::net::{
    recvmsg, send, sendmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::{Deserialize, Serialize};

/// Largest message either side sends (states with many annotations fit).
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// Intermediate process → runtime: the pid of the process it cloned.
    ChildPid(i32),
    /// Runtime → child: the runtime has done its part (cgroups, id maps);
    /// carries the OCI state for the hooks the child runs.
    Proceed { state: String },
    /// Child → runtime: run the prestart and createRuntime hooks now.
    RunRuntimeHooks,
    /// Runtime → child: the runtime-namespace hooks succeeded.
    HooksDone,
    /// Child → runtime: setup complete, waiting for `start`.
    Ready,
    /// Child → runtime: setup failed at `step`.
    Failed { step: String, message: String },
    /// Child → runtime, with the seccomp notification fd attached: hand it
    /// to the agent at linux.seccomp.listenerPath.
    SeccompListener,
}

pub struct SyncSocket {
    fd: OwnedFd,
}

/// A connected pair: (runtime side, child side).
pub fn pair() -> io::Result<(SyncSocket, SyncSocket)> {
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    Ok((SyncSocket { fd: a }, SyncSocket { fd: b }))
}

impl SyncSocket {
    pub fn send(&self, message: &Message) -> io::Result<()> {
        let data = serde_json::to_vec(message).map_err(io::Error::other)?;
        if data.len() > MAX_MESSAGE {
            return Err(io::Error::other("sync message too large"));
        }
        let sent = loop {
            match send(self.fd.as_fd(), &data, SendFlags::NOSIGNAL) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r?,
            }
        };
        if sent != data.len() {
            return Err(io::Error::other("sync message truncated"));
        }
        Ok(())
    }

    /// Sends `message` with `fd` attached (SCM_RIGHTS).
    pub fn send_with_fd(&self, message: &Message, fd: BorrowedFd) -> io::Result<()> {
        let data = serde_json::to_vec(message).map_err(io::Error::other)?;
        let fds = [fd];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("control message buffer too small"));
        }
        sendmsg(
            self.fd.as_fd(),
            &[IoSlice::new(&data)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        Ok(())
    }

    /// Next message, or None when the peer closed its end (it exited).
    pub fn recv(&self) -> io::Result<Option<Message>> {
        Ok(self.recv_with_fd()?.map(|(message, _)| message))
    }

    /// Next message and the descriptor attached to it, if any.
    pub fn recv_with_fd(&self) -> io::Result<Option<(Message, Option<OwnedFd>)>> {
        // The datagram's real size, without taking it (nor its descriptor:
        // no control buffer): most messages are a few bytes, and zeroing a
        // buffer of MAX_MESSAGE would cost hundreds of page faults.
        let size = loop {
            match rustix::net::recv(
                self.fd.as_fd(),
                &mut [0u8; 0][..],
                RecvFlags::PEEK | RecvFlags::TRUNC,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r?.1,
            }
        };
        let mut buf = vec![0u8; size.clamp(1, MAX_MESSAGE)];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = loop {
            match recvmsg(
                self.fd.as_fd(),
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r?,
            }
        };
        let mut fd = None;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = message {
                fd = fds.next();
            }
        }
        if received.bytes == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..received.bytes])
            .map(|m| Some((m, fd)))
            .map_err(|e| io::Error::other(format!("malformed sync message: {e}")))
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_and_eof_is_seen() {
        let (a, b) = pair().unwrap();
        a.send(&Message::ChildPid(42)).unwrap();
        match b.recv().unwrap() {
            Some(Message::ChildPid(42)) => {}
            other => panic!("unexpected {other:?}"),
        }
        drop(a);
        assert!(b.recv().unwrap().is_none());
    }

    #[test]
    fn messages_of_any_size_arrive_whole_with_their_descriptor() {
        let (a, b) = pair().unwrap();
        let state = "x".repeat(100_000);
        a.send(&Message::Proceed {
            state: state.clone(),
        })
        .unwrap();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        a.send_with_fd(&Message::SeccompListener, file.as_fd())
            .unwrap();
        a.send(&Message::Ready).unwrap();
        match b.recv().unwrap() {
            Some(Message::Proceed { state: got }) => assert_eq!(got, state),
            other => panic!("unexpected {other:?}"),
        }
        match b.recv_with_fd().unwrap() {
            Some((Message::SeccompListener, Some(_fd))) => {}
            other => panic!("no descriptor: {other:?}"),
        }
        assert!(matches!(b.recv().unwrap(), Some(Message::Ready)));
    }
}
