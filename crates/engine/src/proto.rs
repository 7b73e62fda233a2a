//! The monitor's socket protocol. A client connects to
//! `<run>/containers/<id>/attach.sock`, writes one JSON request line, then:
//!
//! - `attach`: frames both ways until the container exits (the monitor
//!   sends an `EXIT` frame, then closes) or the client leaves.
//! - `wait`, `stop`: one JSON reply line once the container has exited.
//! - `kill`, `resize`: one JSON reply line at once.
//!
//! A frame is docker's stream header (stream id, three zero bytes, a
//! big-endian u32 length) and the payload, so the API server can pass
//! stdout/stderr frames of non-TTY containers through unchanged.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Monitor → client: the container exited; payload is an [`ExitReply`].
pub const EXIT: u8 = 3;
/// Client → monitor: close the container's stdin.
pub const CLOSE_STDIN: u8 = 4;
/// Client → monitor: resize the terminal; payload rows, cols (u16 BE).
pub const RESIZE: u8 = 5;

pub const HEADER_LEN: usize = 8;
/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Wait,
    /// Stop with `signal`, then SIGKILL after `timeout` seconds (negative:
    /// wait forever). The container will not be restarted by its policy.
    Stop {
        signal: i32,
        timeout: i64,
    },
    Kill {
        signal: i32,
    },
    Resize {
        height: u16,
        width: u16,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitReply>,
}

/// How the container ended (docker's wait response).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ExitReply {
    pub status_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the monitor tells the command that started it, on the ready pipe.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ready {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// docker's exit status for a failed start (125, 126, 127).
    #[serde(default)]
    pub status: i32,
}

pub fn header(kind: u8, len: usize) -> [u8; HEADER_LEN] {
    let n = (len as u32).to_be_bytes();
    [kind, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Writes one frame (blocking writer).
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(&header(kind, payload.len()));
    buf.extend_from_slice(payload);
    w.write_all(&buf)
}

/// Reads one frame (blocking reader); None at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut h = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated frame",
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((h[0], payload)))
}

/// Splits complete frames off the front of `buf` (non-blocking reader).
pub fn take_frame(buf: &mut Vec<u8>) -> io::Result<Option<(u8, Vec<u8>)>> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    let kind = buf[0];
    let payload = buf[HEADER_LEN..HEADER_LEN + len].to_vec();
    buf.drain(..HEADER_LEN + len);
    Ok(Some((kind, payload)))
}

/// Reads one line (up to `max` bytes) byte by byte, so nothing after the
/// newline is consumed.
pub fn read_line(r: &mut impl Read, max: usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) if line.is_empty() => return Ok(None),
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => {
                line.push(byte[0]);
                if line.len() > max {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "line is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split() {
        let mut wire = Vec::new();
        write_frame(&mut wire, STDOUT, b"hello").unwrap();
        write_frame(&mut wire, STDERR, b"").unwrap();
        let mut cursor = &wire[..];
        assert_eq!(
            read_frame(&mut cursor).unwrap(),
            Some((STDOUT, b"hello".to_vec()))
        );
        assert_eq!(read_frame(&mut cursor).unwrap(), Some((STDERR, vec![])));
        assert_eq!(read_frame(&mut cursor).unwrap(), None);

        let mut partial = wire[..10].to_vec();
        assert_eq!(take_frame(&mut partial).unwrap(), None);
        partial.extend_from_slice(&wire[10..]);
        assert_eq!(
            take_frame(&mut partial).unwrap(),
            Some((STDOUT, b"hello".to_vec()))
        );
        assert_eq!(take_frame(&mut partial).unwrap(), Some((STDERR, vec![])));
        assert!(partial.is_empty());
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut wire = header(STDOUT, MAX_FRAME + 1).to_vec();
        assert!(take_frame(&mut wire).is_err());
    }

    #[test]
    fn requests_have_a_stable_wire_form() {
        let r = Request::Stop {
            signal: 15,
            timeout: 10,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"op":"stop","signal":15,"timeout":10}"#);
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"wait"}"#).unwrap(),
            Request::Wait
        );
    }
}
