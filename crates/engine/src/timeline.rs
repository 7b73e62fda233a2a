//! Start-path timeline for performance work: with `QUAI_TIMELINE=<file>`,
//! the command and the container's monitor append one line per step of
//! `run` to `<file>`: microseconds on the monotonic clock (one clock for
//! every process), pid, step. `bench/run.sh` reads it back to show where
//! the engine's time over its runtime goes. Without the variable a step
//! costs one cached check.

use std::io::Write;
use std::sync::OnceLock;

/// Environment variable naming the file.
pub const ENV: &str = "QUAI_TIMELINE";

fn target() -> Option<&'static std::path::Path> {
    static TARGET: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            std::env::var_os(ENV)
                .filter(|v| !v.is_empty())
                .map(Into::into)
        })
        .as_deref()
}

/// Records that this process reached `step` now.
#[inline]
pub fn mark(step: &str) {
    if let Some(path) = target() {
        write_mark(path, step);
    }
}

#[cold]
fn write_mark(path: &std::path::Path, step: &str) {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let micros = now.tv_sec as i64 * 1_000_000 + now.tv_nsec as i64 / 1_000;
    // One write of one line with O_APPEND: lines of concurrent processes
    // do not interleave.
    let line = format!("{micros} {} {step}\n", std::process::id());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}
