//! Reading and writing cgroup interface files. Cgroup files are written in
//! one `write(2)` without `O_CREAT` (the kernel creates them; a missing file
//! means a missing controller), and every error names the file and value.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::CgroupError;

/// Writes `value` to `dir/file`, returning the raw I/O error so that callers
/// can react to specific errnos (EINVAL ordering retries, ENOENT fallbacks).
pub(crate) fn write_raw(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join(file))?;
    let written = f.write(value.as_bytes())?;
    if written != value.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {written} of {} bytes", value.len()),
        ));
    }
    Ok(())
}

/// Writes `value` to `dir/file`; the error names both.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    write_raw(dir, file, value).map_err(|source| write_error(dir, file, value, source))
}

pub(crate) fn write_error(dir: &Path, file: &str, value: &str, source: io::Error) -> CgroupError {
    CgroupError::Write {
        path: dir.join(file),
        value: value.to_string(),
        source,
    }
}

pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
}

/// Like [`read`], but a missing file is `None` (controller not present).
pub(crate) fn read_optional(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Parses a single-number file; `max` (v2's "no limit") reads as `u64::MAX`.
pub(crate) fn parse_u64(dir: &Path, file: &str, text: &str) -> Result<u64, CgroupError> {
    let t = text.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse::<u64>().map_err(|e| CgroupError::Parse {
        path: dir.join(file),
        reason: format!("{t:?} is not a number: {e}"),
    })
}

pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    parse_u64(dir, file, &read(dir, file)?)
}

pub(crate) fn read_u64_optional(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    read_optional(dir, file)?
        .map(|t| parse_u64(dir, file, &t))
        .transpose()
}

/// Parses a "flat keyed" file (`key value` per line: memory.stat, cpu.stat,
/// memory.events, memory.oom_control).
pub(crate) fn parse_flat_keyed(
    dir: &Path,
    file: &str,
    text: &str,
) -> Result<BTreeMap<String, u64>, CgroupError> {
    let mut map = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CgroupError::Parse {
                path: dir.join(file),
                reason: format!("line {line:?} is not \"key value\""),
            });
        };
        map.insert(key.to_string(), parse_u64(dir, file, value)?);
    }
    Ok(map)
}

pub(crate) fn read_flat_keyed(
    dir: &Path,
    file: &str,
) -> Result<Option<BTreeMap<String, u64>>, CgroupError> {
    read_optional(dir, file)?
        .map(|t| parse_flat_keyed(dir, file, &t))
        .transpose()
}

/// Reads a list of pids (`cgroup.procs`), one per line.
pub(crate) fn read_pids(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let Some(text) = read_optional(dir, "cgroup.procs")? else {
        return Ok(Vec::new());
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim().parse::<i32>().map_err(|e| CgroupError::Parse {
                path: dir.join("cgroup.procs"),
                reason: format!("{l:?} is not a pid: {e}"),
            })
        })
        .collect()
}

/// Directories below `dir` (children first), i.e. the nested cgroups a
/// container created itself; `dir` is the last element.
pub(crate) fn subtree_postorder(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    collect_postorder(dir, &mut out);
    out
}

fn collect_postorder(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_postorder(&entry.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_files_parse_and_reject_garbage() {
        let dir = Path::new("/x");
        let m = parse_flat_keyed(dir, "memory.events", "low 0\nhigh 1\noom_kill 3\n").unwrap();
        assert_eq!(m["oom_kill"], 3);
        assert_eq!(m["high"], 1);
        let err = parse_flat_keyed(dir, "memory.events", "low\n").unwrap_err();
        assert!(err.to_string().contains("/x/memory.events"), "{err}");
        assert!(parse_flat_keyed(dir, "f", "a b c\n").is_err());
    }

    #[test]
    fn numbers_and_max_parse() {
        let dir = Path::new("/x");
        assert_eq!(parse_u64(dir, "pids.max", "max\n").unwrap(), u64::MAX);
        assert_eq!(parse_u64(dir, "pids.max", " 42\n").unwrap(), 42);
        let err = parse_u64(dir, "pids.max", "-3").unwrap_err();
        assert!(err.to_string().contains("pids.max"));
    }

    #[test]
    fn write_refuses_to_create_files() {
        let tmp = tempfile::tempdir().unwrap();
        let err = write(tmp.path(), "memory.max", "100").unwrap_err();
        assert!(err.to_string().contains("memory.max"), "{err}");
        assert!(!tmp.path().join("memory.max").exists());
        fs::write(tmp.path().join("memory.max"), "max\n").unwrap();
        write(tmp.path(), "memory.max", "100").unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("memory.max")).unwrap(),
            "100"
        );
    }
}
