//! docker's units: sizes (`64m`, `1g`, binary multiples), Go durations
//! (`1m30s`, `500ms`), signal names, and timestamps (`--since`).

use crate::error::{EngineError, Result};

/// Parses a size like docker's `RAMInBytes`: a number with an optional
/// unit b, k, m, g, t, p (binary multiples; a trailing `b`/`ib` allowed).
pub fn parse_size(s: &str) -> Result<i64> {
    let bad = || EngineError::invalid(format!("invalid size: '{s}'"));
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(unit);
    let multiplier: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    let value = number * multiplier;
    if !value.is_finite() || value < 0.0 || value > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(value as i64)
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`, `10us`) into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64> {
    let bad = || EngineError::invalid(format!("invalid duration: \"{s}\""));
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    let (negative, mut rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * unit;
        rest = &rest[u_end..];
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(if negative {
        -(total as i64)
    } else {
        total as i64
    })
}

/// Formats nanoseconds as Go prints a `time.Duration` (`1m30s`, `500ms`).
pub fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", trim_float(n as f64 / 1e3));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", trim_float(n as f64 / 1e6));
    }
    let secs = n as f64 / 1e9;
    let h = n / 3_600_000_000_000;
    let m = n / 60_000_000_000 % 60;
    let s = secs - (h * 3600 + m * 60) as f64;
    let mut out = String::from(sign);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_float(s)));
    out
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Parses a signal as docker does: a number, `TERM`, `SIGTERM`,
/// `RTMIN+3`, case-insensitive (the runtime's table of names).
pub fn parse_signal(s: &str) -> Result<i32> {
    quai_runtime::signal::parse(s)
        .map(|signal| signal.as_raw())
        .map_err(|_| EngineError::invalid(format!("Invalid signal: {s}")))
}

/// Name of a signal number (`SIGTERM`), for messages.
pub fn signal_name(n: i32) -> String {
    match quai_runtime::signal::name(n) {
        Some(name) => format!("SIG{name}"),
        None => format!("signal {n}"),
    }
}

/// Now, in unix nanoseconds.
pub fn now_nanos() -> i64 {
    let (secs, nanos) = quai_image::time::now();
    secs * 1_000_000_000 + nanos as i64
}

/// Unix nanoseconds as docker prints times (RFC 3339, nanoseconds without
/// trailing zeros); zero is Go's zero time.
pub fn rfc3339_nanos(nanos: i64) -> String {
    if nanos == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    quai_image::time::format_rfc3339(
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000) as u32,
    )
}

/// Parses a `--since`/`--until` value as docker does: an RFC 3339 time, a
/// date, a unix timestamp (`1700000000.5`), or a duration back from now
/// (`10m`, `1h30m`). Returns unix nanoseconds.
pub fn parse_timestamp(s: &str, now: i64) -> Result<i64> {
    let t = s.trim();
    if let Ok(d) = parse_duration(t) {
        if t.chars().any(|c| c.is_ascii_alphabetic()) {
            return Ok(now - d);
        }
    }
    if let Some((secs, frac)) = t.split_once('.').or(Some((t, ""))) {
        if !secs.is_empty()
            && secs.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
            && frac.len() <= 9
        {
            let secs: i64 = secs
                .parse()
                .map_err(|_| EngineError::invalid(format!("invalid timestamp: {s}")))?;
            let nanos: i64 = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<9}").parse().unwrap_or(0)
            };
            return Ok(secs * 1_000_000_000 + nanos);
        }
    }
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else if t.len() == 19 {
        format!("{t}Z")
    } else {
        t.to_string()
    };
    match quai_image::time::parse_rfc3339(&full) {
        Some((secs, nanos)) => Ok(secs * 1_000_000_000 + nanos as i64),
        None => Err(EngineError::invalid(format!(
            "invalid value for time: {s:?} (want an RFC 3339 time, a unix timestamp or a duration like 10m)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("10kb").unwrap(), 10 << 10);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5x").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(500_000_000), "500ms");
        assert_eq!(format_duration(30_000_000_000), "30s");
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("sigkill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert_eq!(parse_signal("RTMIN+2").unwrap(), 36);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert_eq!(signal_name(15), "SIGTERM");
    }

    #[test]
    fn timestamps() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(parse_timestamp("10m", now).unwrap(), now - 600_000_000_000);
        assert_eq!(
            parse_timestamp("1700000000.5", now).unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_timestamp("2023-11-14", now).unwrap(),
            1_699_920_000_000_000_000
        );
        assert!(parse_timestamp("yesterday", now).is_err());
        assert_eq!(rfc3339_nanos(0), "0001-01-01T00:00:00Z");
    }
}
