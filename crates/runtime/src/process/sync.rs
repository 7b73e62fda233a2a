//! The conversation between the runtime and a process it is setting up (the
//! container's init, or an exec'd process): one JSON message per datagram on
//! a SOCK_SEQPACKET socket pair, so that message boundaries are kept and a
//! peer's death reads as end-of-file rather than a hang.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{
    recv, send, socketpair, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
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

    /// Next message, or None when the peer closed its end (it exited).
    pub fn recv(&self) -> io::Result<Option<Message>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (len, _) = loop {
            match recv(self.fd.as_fd(), &mut buf, RecvFlags::empty()) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r?,
            }
        };
        if len == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..len])
            .map(Some)
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
}
