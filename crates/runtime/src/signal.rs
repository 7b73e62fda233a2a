//! Signal names as `kill` accepts them: `KILL`, `SIGKILL`, `kill`, `9`,
//! `RTMIN+3`.

use rustix::process::Signal;

use crate::error::{Result, RuntimeError};
use crate::process::sys::signal_from_number;

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// Parses a signal name or number.
pub fn parse(text: &str) -> Result<Signal> {
    let invalid =
        || RuntimeError::option("signal", format!("{text:?} is not a signal name or number"));
    let number = if let Ok(n) = text.parse::<i32>() {
        n
    } else {
        let upper = text.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some((_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
            *n
        } else if let Some(rest) = name.strip_prefix("RTMIN") {
            RTMIN + offset(rest, '+').ok_or_else(invalid)?
        } else if let Some(rest) = name.strip_prefix("RTMAX") {
            RTMAX - offset(rest, '-').ok_or_else(invalid)?
        } else {
            return Err(invalid());
        }
    };
    signal_from_number(number).ok_or_else(invalid)
}

/// The name of signal `n` without its `SIG` prefix (`TERM`), if it has one.
pub fn name(n: i32) -> Option<&'static str> {
    NAMES.iter().find(|(_, v)| *v == n).map(|(name, _)| *name)
}

fn offset(rest: &str, sign: char) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    rest.strip_prefix(sign)?
        .parse()
        .ok()
        .filter(|n| (0..=30).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("KILL").unwrap(), Signal::KILL);
        assert_eq!(parse("SIGKILL").unwrap(), Signal::KILL);
        assert_eq!(parse("term").unwrap(), Signal::TERM);
        assert_eq!(parse("9").unwrap(), Signal::KILL);
        assert_eq!(parse("RTMIN+2").unwrap().as_raw(), 36);
        assert_eq!(parse("SIGRTMAX").unwrap().as_raw(), 64);
        for bad in ["", "NOPE", "0", "65", "32", "RTMIN+31", "-9"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
