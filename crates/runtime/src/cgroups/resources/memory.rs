//! `linux.resources.memory` → memory controller files.
//!
//! OCI (and Docker) express swap as the memory+swap total, which is what v1's
//! `memory.memsw.limit_in_bytes` takes; v2's `memory.swap.max` is swap alone,
//! so it gets `swap - limit`. For both, 0 means "leave as is" and -1 means
//! "unlimited".

use std::io;
use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::cgroups::{files, CgroupError};

const V1_LIMIT: &str = "memory.limit_in_bytes";
const V1_MEMSW: &str = "memory.memsw.limit_in_bytes";

/// Whether `m` asks for anything at all (an empty `"memory": {}` does not).
pub(crate) fn is_set(m: &LinuxMemory) -> bool {
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || m.kernel().is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
        || m.use_hierarchy().is_some()
}

/// Swappiness `u64::MAX` is the `-1` ("unset") that Docker sends.
fn swappiness(m: &LinuxMemory) -> Option<u64> {
    m.swappiness().filter(|&s| s != u64::MAX)
}

pub(crate) fn apply_v1(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    refuse_below_usage(dir, m, "memory.usage_in_bytes")?;
    let limit = m.limit().unwrap_or(0);
    let mut swap = m.swap().unwrap_or(0);
    // "Unlimited memory" with swap unspecified means unlimited swap too;
    // otherwise the old memsw limit would cap the new memory limit.
    if limit == -1 && swap == 0 && files::exists(dir, V1_MEMSW) {
        swap = -1;
    }
    // The kernel wants memory <= memory+swap at every moment: when both
    // change, raise memsw first if it grows past the current limit.
    let swap_first =
        limit != 0 && swap != 0 && (swap == -1 || files::read_u64(dir, V1_LIMIT)? < swap as u64);
    if swap_first {
        set_v1_swap(dir, swap)?;
        set_v1_limit(dir, limit)?;
    } else {
        set_v1_limit(dir, limit)?;
        set_v1_swap(dir, swap)?;
    }
    if let Some(r) = m.reservation().filter(|&r| r != 0) {
        files::write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(k) = m.kernel().filter(|&k| k != 0) {
        write_if_present(dir, "memory.kmem.limit_in_bytes", &k.to_string())?;
    }
    if let Some(k) = m.kernel_tcp().filter(|&k| k != 0) {
        write_if_present(dir, "memory.kmem.tcp.limit_in_bytes", &k.to_string())?;
    }
    if let Some(s) = swappiness(m) {
        files::write(dir, "memory.swappiness", &s.to_string())?;
    }
    if let Some(disable) = m.disable_oom_killer() {
        files::write(dir, "memory.oom_control", if disable { "1" } else { "0" })?;
    }
    if let Some(hierarchical) = m.use_hierarchy() {
        let want = if hierarchical { "1" } else { "0" };
        // Recent kernels only accept the value they already have (1).
        if files::read(dir, "memory.use_hierarchy")?.trim() != want {
            files::write(dir, "memory.use_hierarchy", want)?;
        }
    }
    Ok(())
}

fn set_v1_limit(dir: &Path, limit: i64) -> Result<(), CgroupError> {
    if limit == 0 {
        return Ok(());
    }
    let value = limit.to_string();
    match files::write_raw(dir, V1_LIMIT, &value) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(CgroupError::MemoryInUse {
            path: dir.join(V1_LIMIT),
            limit,
            usage: files::read_u64(dir, "memory.usage_in_bytes")?,
            peak: files::read_u64(dir, "memory.max_usage_in_bytes")?,
        }),
        Err(e) => Err(files::write_error(dir, V1_LIMIT, &value, e)),
    }
}

fn set_v1_swap(dir: &Path, swap: i64) -> Result<(), CgroupError> {
    if swap == 0 {
        return Ok(());
    }
    if !files::exists(dir, V1_MEMSW) {
        return Err(CgroupError::unsupported(
            "linux.resources.memory.swap",
            format!(
                "{} does not exist (the kernel runs without swap accounting: boot with swapaccount=1)",
                dir.join(V1_MEMSW).display()
            ),
        ));
    }
    files::write(dir, V1_MEMSW, &swap.to_string())
}

/// Kernel memory limits exist only on some v1 kernels; like runc, a missing
/// file is not an error (the limit cannot be enforced there by anyone).
fn write_if_present(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    match files::write_raw(dir, file, value) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(
                "{} does not exist: kernel memory limit ignored",
                dir.join(file).display()
            );
            Ok(())
        }
        other => other.map_err(|e| files::write_error(dir, file, value, e)),
    }
}

/// `checkBeforeUpdate`: refuse a limit at or below what the cgroup uses now
/// instead of letting the kernel reclaim or OOM-kill to reach it.
fn refuse_below_usage(dir: &Path, m: &LinuxMemory, usage_file: &str) -> Result<(), CgroupError> {
    if m.check_before_update() != Some(true) {
        return Ok(());
    }
    let Some(usage) = files::read_u64_optional(dir, usage_file)? else {
        return Ok(());
    };
    for (limit, file) in [(m.limit(), usage_file), (m.swap(), usage_file)] {
        if let Some(limit) = limit.filter(|&l| l > 0) {
            if (limit as u64) <= usage {
                return Err(CgroupError::MemoryInUse {
                    path: dir.join(file),
                    limit,
                    usage,
                    peak: usage,
                });
            }
        }
    }
    Ok(())
}

/// `memory.swap.max` for an OCI memory+swap `swap` and memory `limit`
/// (None: leave the file alone), the conversion runc and crun use.
pub(crate) fn v2_swap_value(swap: i64, limit: i64) -> Result<Option<String>, CgroupError> {
    let field = "linux.resources.memory.swap";
    match (swap, limit) {
        (0, -1) | (-1, _) => Ok(Some("max".into())),
        (0, _) => Ok(None),
        (_, 0) | (_, -1) => Err(CgroupError::invalid(
            field,
            "a memory+swap limit needs a memory limit (linux.resources.memory.limit)",
        )),
        (s, l) if s < l => Err(CgroupError::invalid(
            field,
            format!("memory+swap ({s}) must not be lower than the memory limit ({l})"),
        )),
        (s, l) => Ok(Some((s - l).to_string())),
    }
}

fn v2_number(value: i64) -> String {
    if value == -1 {
        "max".into()
    } else {
        value.to_string()
    }
}

pub(crate) fn apply_v2(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    refuse_below_usage(dir, m, "memory.current")?;
    let limit = m.limit().unwrap_or(0);
    if let Some(swap) = v2_swap_value(m.swap().unwrap_or(0), limit)? {
        match files::write_raw(dir, "memory.swap.max", &swap) {
            Ok(()) => {}
            // Without swap accounting there is no file; "no swap" and
            // "unlimited swap" are then what the container gets anyway.
            Err(e) if e.kind() == io::ErrorKind::NotFound && (swap == "max" || swap == "0") => {}
            Err(e) => return Err(files::write_error(dir, "memory.swap.max", &swap, e)),
        }
    }
    if limit != 0 {
        files::write(dir, "memory.max", &v2_number(limit))?;
    }
    if let Some(r) = m.reservation().filter(|&r| r != 0) {
        files::write(dir, "memory.low", &v2_number(r))?;
    }
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        tracing::warn!(
            "cgroup v2 has no kernel memory limits: memory.kernel and memory.kernelTCP ignored"
        );
    }
    if swappiness(m).is_some() {
        tracing::warn!("cgroup v2 has no per-cgroup swappiness: memory.swappiness ignored");
    }
    Ok(())
}

/// Requests only v1 can honour; refused on v2 before anything is created.
pub(crate) fn check_v2(m: &LinuxMemory) -> Result<(), CgroupError> {
    if m.disable_oom_killer() == Some(true) {
        return Err(CgroupError::unsupported(
            "linux.resources.memory.disableOOMKiller",
            "cgroup v2 cannot disable the OOM killer for a cgroup",
        ));
    }
    if m.use_hierarchy() == Some(false) {
        return Err(CgroupError::unsupported(
            "linux.resources.memory.useHierarchy=false",
            "cgroup v2 accounting is always hierarchical",
        ));
    }
    v2_swap_value(m.swap().unwrap_or(0), m.limit().unwrap_or(0)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_converts_to_v2_like_runc() {
        assert_eq!(v2_swap_value(0, 0).unwrap(), None);
        assert_eq!(v2_swap_value(0, 100).unwrap(), None);
        assert_eq!(v2_swap_value(0, -1).unwrap().as_deref(), Some("max"));
        assert_eq!(v2_swap_value(-1, 100).unwrap().as_deref(), Some("max"));
        assert_eq!(v2_swap_value(300, 100).unwrap().as_deref(), Some("200"));
        assert_eq!(v2_swap_value(100, 100).unwrap().as_deref(), Some("0"));
        assert!(v2_swap_value(50, 100)
            .unwrap_err()
            .to_string()
            .contains("memory.swap"));
        assert!(v2_swap_value(50, 0).is_err());
    }
}
