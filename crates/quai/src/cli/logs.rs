//! `logs`: the json-file log of a container, with `--tail`, `--since`,
//! `--until`, timestamps, and `-f` following (through rotations) until
//! the container stops.

use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use quai_engine::logs::{read_all, read_entries, LogEntry, ReadOptions, Stream};
use quai_engine::units::{now_nanos, parse_timestamp, rfc3339_nanos};

use super::{Exit, GlobalOptions};

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

fn print(entries: &[LogEntry], timestamps: bool) -> bool {
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    for e in entries {
        let w: &mut dyn Write = match e.stream {
            Stream::Stdout => &mut out,
            Stream::Stderr => &mut err,
        };
        let r = if timestamps {
            write!(w, "{} ", rfc3339_nanos(e.time)).and_then(|_| w.write_all(&e.line))
        } else {
            w.write_all(&e.line)
        };
        if let Err(e) = r {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return false;
            }
        }
    }
    let _ = out.flush();
    let _ = err.flush();
    true
}

pub fn logs(a: LogsArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let c = engine
        .container(&a.container)
        .map_err(|e| Exit::with(1, e.to_string()))?;
    let now = now_nanos();
    let time = |v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_timestamp(s, now).map_err(|e| Exit::with(1, e.to_string())))
            .transpose()
    };
    let tail = match a.tail.as_str() {
        "all" | "" => None,
        n => match n.parse::<i64>() {
            Ok(v) if v < 0 => None,
            Ok(v) => Some(v as usize),
            Err(_) => return Err(Exit::with(1, format!("invalid value for \"tail\": {n:?}"))),
        },
    };
    let opts = ReadOptions {
        since: time(&a.since)?,
        until: time(&a.until)?,
        tail,
    };
    let path = engine.paths().log_path(&c.id);
    let (entries, mut offset) = read_all(&path, &opts)?;
    if !print(&entries, a.timestamps) || !a.follow {
        return Ok(());
    }
    let follow = ReadOptions {
        since: opts.since,
        until: opts.until,
        tail: None,
    };
    let mut inode = std::fs::metadata(&path).map(|m| m.ino()).unwrap_or(0);
    loop {
        let running = engine
            .container(&c.id)
            .map(|c| c.state.status.is_active() && c.monitor_alive())
            .unwrap_or(false);
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.ino() != inode || meta.len() < offset {
                // Rotated (or truncated): start the new file from its top.
                inode = meta.ino();
                offset = 0;
            }
            if meta.len() > offset {
                if let Ok(mut f) = File::open(&path) {
                    if f.seek(SeekFrom::Start(offset)).is_ok() {
                        let mut reader = BufReader::new(f);
                        let mut new = Vec::new();
                        if let Ok(n) = read_entries(&mut reader, &follow, &mut new) {
                            offset += n;
                        }
                        if !print(&new, a.timestamps) {
                            return Ok(());
                        }
                    }
                }
            }
        }
        if !running {
            return Ok(());
        }
        if follow.until.is_some_and(|u| u < now_nanos()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
