//! `linux.resources.pids` → `pids.max` (same file on v1 and v2).

use std::path::Path;

use oci_spec::runtime::LinuxPids;

use crate::cgroups::{files, CgroupError};

/// A limit of 0 is what an absent `limit` deserialises to: leave the file.
pub(crate) fn is_set(p: &LinuxPids) -> bool {
    p.limit() != 0
}

pub(crate) fn apply(dir: &Path, p: &LinuxPids) -> Result<(), CgroupError> {
    match p.limit() {
        0 => Ok(()),
        n if n < 0 => files::write(dir, "pids.max", "max"),
        n => files::write(dir, "pids.max", &n.to_string()),
    }
}
