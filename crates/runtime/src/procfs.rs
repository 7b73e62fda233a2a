//! Facts about host processes read from /proc, so that a container's init is
//! recognised by its pid AND its start time: a recycled pid is never taken for
//! the container's process.

use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

/// A process as the host sees it: pid plus start time (clock ticks after
/// boot, field 22 of /proc/PID/stat), unique for the life of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: i32,
    pub start_time: u64,
}

/// Scheduler state letter and start time of `pid`, or None when no such
/// process exists.
pub fn stat(pid: i32) -> io::Result<Option<(char, u64)>> {
    let text = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(e),
    };
    parse_stat(&text)
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("unparsable /proc/{pid}/stat")))
}

fn parse_stat(text: &str) -> Option<(char, u64)> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start after the LAST closing parenthesis.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // state is field 3; start time is field 22.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

impl ProcessIdentity {
    /// Identity of the running process `pid`.
    pub fn of(pid: i32) -> io::Result<ProcessIdentity> {
        match stat(pid)? {
            Some((_, start_time)) => Ok(ProcessIdentity { pid, start_time }),
            None => Err(io::Error::from_raw_os_error(libc::ESRCH)),
        }
    }

    /// True while this very process exists and has not exited (a zombie
    /// has exited: it only waits for its parent to collect its status).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Ok(Some((state, start))) if start == self.start_time && state != 'Z' && state != 'X')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_parentheses_and_spaces() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
    }

    #[test]
    fn identifies_this_process() {
        let me = ProcessIdentity::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = ProcessIdentity {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
    }
}
