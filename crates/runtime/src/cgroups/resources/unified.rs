//! `linux.resources.unified`: cgroup v2 files written verbatim, for
//! settings the OCI fields do not cover (`memory.high`, `io.latency`, …).

use std::collections::HashMap;
use std::io;
use std::path::Path;

use crate::cgroups::{files, CgroupError};

/// Keys must be plain interface file names of the cgroup directory.
pub(crate) fn validate(unified: &HashMap<String, String>) -> Result<(), CgroupError> {
    for key in unified.keys() {
        let field = format!("linux.resources.unified[{key:?}]");
        if key.is_empty() || key.contains('/') || key.contains('\0') || key.starts_with('.') {
            return Err(CgroupError::invalid(
                field,
                "the key must be a cgroup file name such as \"memory.high\"",
            ));
        }
        if !key.contains('.') {
            return Err(CgroupError::invalid(
                field,
                "the key must have the form <controller>.<setting>",
            ));
        }
    }
    Ok(())
}

pub(crate) fn apply(dir: &Path, unified: &HashMap<String, String>) -> Result<(), CgroupError> {
    let mut entries: Vec<_> = unified.iter().collect();
    entries.sort();
    for (key, value) in entries {
        // Multi-line values (io.max for several devices) go one line per
        // write, as the kernel parses one entry per write.
        for line in value.lines().filter(|l| !l.trim().is_empty()) {
            match files::write_raw(dir, key, line) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let controller = key.split('.').next().unwrap_or(key);
                    return Err(CgroupError::unsupported(
                        format!("linux.resources.unified key {key:?}"),
                        format!(
                            "{} does not exist (controller {controller:?} not enabled for this cgroup, or no such setting)",
                            dir.join(key).display()
                        ),
                    ));
                }
                Err(e) => return Err(files::write_error(dir, key, line, e)),
            }
        }
    }
    Ok(())
}
