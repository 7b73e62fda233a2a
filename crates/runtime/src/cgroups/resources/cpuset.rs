//! `linux.resources.cpu.cpus` / `.mems` → cpuset controller files, and the
//! v1 rule that a cpuset cgroup is unusable until both are filled in.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::{files, CgroupError};

pub(crate) fn is_set(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

/// Same file names on v1 and v2.
pub(crate) fn apply(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        files::write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        files::write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty `cpus` and `mems`, and the kernel
/// refuses tasks in it (ENOSPC) until they are set: copy the parent's.
pub(crate) fn inherit_v1(dir: &Path, parent: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if files::read(dir, file)?.trim().is_empty() {
            let value = files::read(parent, file)?;
            files::write(dir, file, value.trim())?;
        }
    }
    Ok(())
}

/// Checks the list syntax the kernel accepts: `0-3,6,8-9`.
pub(crate) fn validate_list(field: &str, text: &str) -> Result<(), CgroupError> {
    if text.is_empty() {
        return Ok(());
    }
    for part in text.trim().split(',') {
        let bounds: Vec<&str> = part.split('-').collect();
        let numbers: Result<Vec<u32>, _> = bounds.iter().map(|b| b.trim().parse::<u32>()).collect();
        let ok = match numbers.as_deref() {
            Ok([_]) => true,
            Ok([low, high]) => low <= high,
            _ => false,
        };
        if !ok {
            return Err(CgroupError::invalid(
                field,
                format!("{text:?} is not a list like \"0-3,6\" ({part:?} is not a number or an ascending range)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_validated() {
        for good in ["0", "0-3", "0-3,6,8-9", "1,1"] {
            validate_list("f", good).unwrap();
        }
        for bad in ["a", "3-1", "0-", "-1", "0,,1", "0-1-2"] {
            let err = validate_list("linux.resources.cpu.cpus", bad).unwrap_err();
            assert!(
                err.to_string().contains("linux.resources.cpu.cpus"),
                "{err}"
            );
        }
    }
}
