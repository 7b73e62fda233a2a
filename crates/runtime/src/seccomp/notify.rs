//! Passing a seccomp user-notification fd around with SCM_RIGHTS: from the
//! container's init to the runtime (`send_fd`/`recv_fd`, allocation-free on
//! the sending side), and from the runtime to the seccomp agent listening at
//! the profile's `listenerPath` (`send_listener`, as the runtime spec says:
//! one connection, one message carrying the container process state, then
//! close).

use std::io::{self, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use super::SeccompError;

/// Sends `payload` with `fd` attached over a connected unix socket. Data
/// left over after a short first write follows with plain writes (the fd
/// rides on the first byte). Does not allocate.
pub fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>, payload: &[u8]) -> io::Result<()> {
    if payload.is_empty() {
        // A stream message needs at least one byte to carry the fd.
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        // Cannot happen: the buffer is sized for one fd.
        return Err(io::ErrorKind::OutOfMemory.into());
    }
    let sent = loop {
        match sendmsg(
            socket,
            &[IoSlice::new(payload)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            result => break result?,
        }
    };
    let mut rest = &payload[sent..];
    while !rest.is_empty() {
        match rustix::net::send(socket, rest, SendFlags::NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receives one message sent by [`send_fd`]: the fd and the bytes that came
/// with it (up to `buffer.len()`; the caller reads any rest from the
/// socket). Fails when no fd came along.
pub fn recv_fd(socket: BorrowedFd<'_>, buffer: &mut [u8]) -> io::Result<(OwnedFd, usize)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        match recvmsg(
            socket,
            &mut [IoSliceMut::new(buffer)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            result => break result?,
        }
    };
    let mut fd = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            // Keep the first; any others are closed as they drop.
            for received_fd in rights {
                fd.get_or_insert(received_fd);
            }
        }
    }
    match fd {
        Some(fd) => Ok((fd, received.bytes)),
        None if received.bytes == 0 => Err(io::ErrorKind::UnexpectedEof.into()),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message carried no file descriptor",
        )),
    }
}

/// Hands the seccomp notification fd of a container to the agent listening
/// at `listener_path`: connects (SOCK_STREAM), sends `state` (the OCI
/// container process state JSON, whose `fds` names the fd `seccompFd`) with
/// the fd attached, and closes the connection.
pub fn send_listener(
    listener_path: &Path,
    fd: BorrowedFd<'_>,
    state: &[u8],
) -> Result<(), SeccompError> {
    let failed = |source: io::Error| SeccompError::Listener {
        path: listener_path.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(listener_path).map_err(failed)?;
    send_fd(stream.as_fd(), fd, state).map_err(failed)?;
    stream.flush().map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    #[test]
    fn fd_and_payload_arrive_together() {
        let (left, right) = UnixStream::pair().expect("socketpair");
        let (pipe_read, pipe_write) = rustix::pipe::pipe().expect("pipe");
        send_fd(left.as_fd(), pipe_write.as_fd(), b"hello").expect("send");
        drop(pipe_write);
        let mut buffer = [0u8; 16];
        let (fd, n) = recv_fd(right.as_fd(), &mut buffer).expect("receive");
        assert_eq!(&buffer[..n], b"hello");
        // The received fd is the pipe's write end: writing reaches the reader.
        rustix::io::write(&fd, b"x").expect("write through the passed fd");
        let mut byte = [0u8; 1];
        rustix::io::read(&pipe_read, &mut byte).expect("read");
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn a_message_without_fd_is_refused() {
        let (mut left, right) = UnixStream::pair().expect("socketpair");
        left.write_all(b"plain").expect("write");
        let mut buffer = [0u8; 16];
        let err = recv_fd(right.as_fd(), &mut buffer).expect_err("no fd");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn listener_gets_state_and_fd_then_eof() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let state = br#"{"ociVersion":"1.2.0","fds":["seccompFd"],"pid":1}"#;
        let (_keep, pipe_write) = rustix::pipe::pipe().expect("pipe");
        send_listener(&path, pipe_write.as_fd(), state).expect("send");
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buffer = [0u8; 256];
        let (_fd, n) = recv_fd(conn.as_fd(), &mut buffer).expect("receive");
        let mut all = buffer[..n].to_vec();
        conn.read_to_end(&mut all)
            .expect("read rest until the runtime closes");
        assert_eq!(all, state);
    }

    #[test]
    fn an_absent_listener_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nobody.sock");
        let (_keep, pipe_write) = rustix::pipe::pipe().expect("pipe");
        let message = send_listener(&path, pipe_write.as_fd(), b"{}")
            .expect_err("nobody listens")
            .to_string();
        assert!(message.contains("nobody.sock"), "{message}");
    }
}
