//! Docker's json-file log driver: one JSON object per line
//! (`{"log":"hi\n","stream":"stdout","time":"…Z"}`) in
//! `<id>-json.log`, rotated to `<id>-json.log.1`, `.2`, … when
//! `max-size` is reached, keeping `max-file` files in all.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::units::{parse_size, rfc3339_nanos};

/// Longest partial line kept before it is written as its own entry
/// (docker's 16 KiB).
const MAX_PARTIAL: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// `--log-opt` values of the json-file driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    pub max_size: Option<u64>,
    pub max_file: u32,
}

impl LogOptions {
    /// Checks `--log-driver`/`--log-opt` values as docker does.
    pub fn parse(driver: &str, opts: &BTreeMap<String, String>) -> Result<LogOptions> {
        if !driver.is_empty() && driver != "json-file" {
            return Err(EngineError::Unsupported(format!(
                "log driver {driver:?} is not supported: quai writes json-file logs"
            )));
        }
        let mut out = LogOptions {
            max_size: None,
            max_file: 1,
        };
        for (key, value) in opts {
            match key.as_str() {
                "max-size" => {
                    let size = parse_size(value)
                        .map_err(|_| EngineError::invalid(format!("invalid max-size: {value}")))?;
                    if size <= 0 {
                        return Err(EngineError::invalid(format!(
                            "invalid max-size: {value}: must be a positive size"
                        )));
                    }
                    out.max_size = Some(size as u64);
                }
                "max-file" => {
                    out.max_file =
                        value
                            .parse::<u32>()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| {
                                EngineError::invalid(format!(
                                    "invalid value for max-file: {value}: must be a number >= 1"
                                ))
                            })?;
                }
                other => {
                    return Err(EngineError::invalid(format!(
                        "unknown log opt '{other}' for json-file log driver"
                    )))
                }
            }
        }
        if out.max_file > 1 && out.max_size.is_none() {
            return Err(EngineError::invalid(
                "max-file cannot be set without max-size".to_string(),
            ));
        }
        Ok(out)
    }
}

#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    log: std::borrow::Cow<'a, str>,
    stream: std::borrow::Cow<'a, str>,
    time: std::borrow::Cow<'a, str>,
}

/// The monitor's side: appends entries, rotating as configured.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    opts: LogOptions,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(path: &Path, opts: LogOptions) -> Result<LogWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| EngineError::path("open log", path, e))?;
        let size = file
            .metadata()
            .map_err(|e| EngineError::path("stat log", path, e))?
            .len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            opts,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Logs `data` read from `stream` at `now` (unix ns): complete lines
    /// become entries, a trailing partial line waits for its end.
    pub fn write(&mut self, stream: Stream, data: &[u8], now: i64) -> io::Result<()> {
        let idx = stream as usize;
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = rest.split_at(pos + 1);
            if self.partial[idx].is_empty() {
                self.entry(stream, line, now)?;
            } else {
                let mut whole = std::mem::take(&mut self.partial[idx]);
                whole.extend_from_slice(line);
                self.entry(stream, &whole, now)?;
            }
            rest = after;
        }
        self.partial[idx].extend_from_slice(rest);
        if self.partial[idx].len() >= MAX_PARTIAL {
            let whole = std::mem::take(&mut self.partial[idx]);
            self.entry(stream, &whole, now)?;
        }
        Ok(())
    }

    /// Writes out partial lines (the container's output ended).
    pub fn flush_partial(&mut self, now: i64) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let whole = std::mem::take(&mut self.partial[stream as usize]);
            if !whole.is_empty() {
                self.entry(stream, &whole, now)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, stream: Stream, line: &[u8], now: i64) -> io::Result<()> {
        let entry = Entry {
            log: String::from_utf8_lossy(line),
            stream: stream.as_str().into(),
            time: rfc3339_nanos(now).into(),
        };
        let mut bytes = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        bytes.push(b'\n');
        if let Some(max) = self.opts.max_size {
            if self.size > 0 && self.size + bytes.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let max_file = self.opts.max_file;
        if max_file <= 1 {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.size = 0;
            return Ok(());
        }
        let _ = fs::remove_file(rotated(&self.path, max_file - 1));
        for n in (1..max_file - 1).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// One entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub stream: Stream,
    pub time: i64,
    pub line: Vec<u8>,
}

fn parse_entry(line: &str) -> Option<LogEntry> {
    let e: Entry = serde_json::from_str(line).ok()?;
    let stream = match e.stream.as_ref() {
        "stderr" => Stream::Stderr,
        _ => Stream::Stdout,
    };
    let (secs, nanos) = quai_image::time::parse_rfc3339(&e.time)?;
    Some(LogEntry {
        stream,
        time: secs * 1_000_000_000 + nanos as i64,
        line: e.log.into_owned().into_bytes(),
    })
}

/// Which entries `logs` wants.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub tail: Option<usize>,
}

impl ReadOptions {
    fn keeps(&self, e: &LogEntry) -> bool {
        self.since.is_none_or(|s| e.time >= s) && self.until.is_none_or(|u| e.time <= u)
    }
}

/// Reads the entries of every log file of `path` (oldest first), and
/// returns them with the position reached in the current file.
pub fn read_all(path: &Path, opts: &ReadOptions) -> Result<(Vec<LogEntry>, u64)> {
    let mut files = Vec::new();
    let mut n = 1;
    while rotated(path, n).exists() {
        files.push(rotated(path, n));
        n += 1;
    }
    files.reverse();
    files.push(path.to_path_buf());
    let mut entries = Vec::new();
    let mut offset = 0;
    for (i, f) in files.iter().enumerate() {
        let file = match File::open(f) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(EngineError::path("open log", f, e)),
        };
        let mut reader = BufReader::new(file);
        let read = read_entries(&mut reader, opts, &mut entries)
            .map_err(|e| EngineError::path("read log", f, e))?;
        if i == files.len() - 1 {
            offset = read;
        }
    }
    if let Some(t) = opts.tail {
        let skip = entries.len().saturating_sub(t);
        entries.drain(..skip);
    }
    Ok((entries, offset))
}

/// Appends complete entries from `reader` to `out`; returns the bytes
/// consumed (a trailing line without newline is left for later).
pub fn read_entries(
    reader: &mut impl BufRead,
    opts: &ReadOptions,
    out: &mut Vec<LogEntry>,
) -> io::Result<u64> {
    let mut consumed = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            return Ok(consumed);
        }
        consumed += n as u64;
        if let Some(e) = parse_entry(line.trim_end()) {
            if opts.keeps(&e) {
                out.push(e);
            }
        }
    }
}

/// Removes every log file of `path` (the container is being removed).
pub fn remove_all(path: &Path) {
    let _ = fs::remove_file(path);
    let mut n = 1;
    while fs::remove_file(rotated(path, n)).is_ok() {
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(max_size: Option<u64>, max_file: u32) -> LogOptions {
        LogOptions { max_size, max_file }
    }

    #[test]
    fn lines_become_entries_and_partials_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, opts(None, 1)).unwrap();
        w.write(Stream::Stdout, b"one\ntw", 1_000_000_000).unwrap();
        w.write(Stream::Stderr, b"err\n", 2_000_000_000).unwrap();
        w.write(Stream::Stdout, b"o\nthree", 3_000_000_000).unwrap();
        w.flush_partial(4_000_000_000).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            r#"{"log":"one\n","stream":"stdout","time":"1970-01-01T00:00:01Z"}"#
        );
        let (entries, offset) = read_all(&path, &ReadOptions::default()).unwrap();
        let lines: Vec<(&str, Stream)> = entries
            .iter()
            .map(|e| (std::str::from_utf8(&e.line).unwrap(), e.stream))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("one\n", Stream::Stdout),
                ("err\n", Stream::Stderr),
                ("two\n", Stream::Stdout),
                ("three", Stream::Stdout)
            ]
        );
        assert_eq!(offset, text.len() as u64);
        let tail = read_all(
            &path,
            &ReadOptions {
                tail: Some(1),
                ..Default::default()
            },
        )
        .unwrap()
        .0;
        assert_eq!(tail.len(), 1);
        let since = read_all(
            &path,
            &ReadOptions {
                since: Some(2_000_000_000),
                until: Some(3_000_000_000),
                ..Default::default()
            },
        )
        .unwrap()
        .0;
        assert_eq!(since.len(), 2);
    }

    #[test]
    fn rotation_keeps_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, opts(Some(200), 3)).unwrap();
        for i in 0..40 {
            w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes(), 1)
                .unwrap();
        }
        assert!(path.exists());
        assert!(rotated(&path, 1).exists());
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        for f in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            assert!(fs::metadata(&f).unwrap().len() <= 200, "{}", f.display());
        }
        let (entries, _) = read_all(&path, &ReadOptions::default()).unwrap();
        // The newest entries survive, in order.
        let last = entries.last().unwrap();
        assert_eq!(last.line, b"line 39\n");
        let numbers: Vec<u32> = entries
            .iter()
            .map(|e| std::str::from_utf8(&e.line).unwrap()[5..7].parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        assert!(entries.len() < 40);
    }

    #[test]
    fn one_file_is_truncated_at_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, opts(Some(150), 1)).unwrap();
        for i in 0..10 {
            w.write(Stream::Stdout, format!("{i}\n").as_bytes(), 1)
                .unwrap();
        }
        assert!(fs::metadata(&path).unwrap().len() <= 150);
        assert!(!rotated(&path, 1).exists());
    }

    #[test]
    fn log_opts_are_checked() {
        let mut o = BTreeMap::new();
        o.insert("max-size".to_string(), "10m".to_string());
        o.insert("max-file".to_string(), "3".to_string());
        assert_eq!(
            LogOptions::parse("json-file", &o).unwrap(),
            opts(Some(10 << 20), 3)
        );
        o.insert("nope".to_string(), "1".to_string());
        let e = LogOptions::parse("", &o).unwrap_err().to_string();
        assert!(e.contains("unknown log opt 'nope'"), "{e}");
        let mut o = BTreeMap::new();
        o.insert("max-file".to_string(), "0".to_string());
        assert!(LogOptions::parse("", &o).is_err());
        assert!(LogOptions::parse("syslog", &BTreeMap::new()).is_err());
    }
}
