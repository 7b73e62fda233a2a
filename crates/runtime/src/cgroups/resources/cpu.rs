//! `linux.resources.cpu` (all but cpus/mems) → cpu controller files.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::{files, CgroupError};

pub(crate) fn is_set(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|s| s != 0)
        || c.quota().is_some_and(|q| q != 0)
        || c.period().is_some_and(|p| p != 0)
        || c.burst().is_some()
        || c.idle().is_some()
        || is_realtime_set(c)
}

pub(crate) fn is_realtime_set(c: &LinuxCpu) -> bool {
    c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0)
}

/// cgroup v2 `cpu.weight` for v1 `cpu.shares`: the quadratic mapping runc
/// and crun share, which maps the bounds (2 → 1, 262144 → 10000) and each
/// version's default (1024 → 100) onto each other.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

/// Writes `value` to `file`; when the kernel refuses it (EINVAL) and
/// `may_defer`, returns it to be written again after the write that makes it
/// valid (a period shorter than the current one can exceed the parent's
/// quota until the quota is lowered; a burst may not exceed the quota).
fn write_or_defer(
    dir: &Path,
    file: &'static str,
    value: String,
    may_defer: bool,
) -> Result<Option<(&'static str, String)>, CgroupError> {
    match files::write_raw(dir, file, &value) {
        Ok(()) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) && may_defer => Ok(Some((file, value))),
        Err(e) => Err(files::write_error(dir, file, &value, e)),
    }
}

fn write_deferred(
    dir: &Path,
    deferred: Vec<Option<(&'static str, String)>>,
) -> Result<(), CgroupError> {
    for (file, value) in deferred.into_iter().flatten() {
        files::write(dir, file, &value)?;
    }
    Ok(())
}

pub(crate) fn apply_v1(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = c.shares().filter(|&s| s != 0) {
        files::write(dir, "cpu.shares", &shares.to_string())?;
        // The kernel clamps silently to [2, 262144]; say so instead.
        let got = files::read_u64(dir, "cpu.shares")?;
        if got != shares {
            return Err(CgroupError::invalid(
                "linux.resources.cpu.shares",
                format!("{shares} is out of the kernel's range (it would be set to {got})"),
            ));
        }
    }
    let quota = c.quota().filter(|&q| q != 0);
    let mut deferred = Vec::new();
    if let Some(period) = c.period().filter(|&p| p != 0) {
        deferred.push(write_or_defer(
            dir,
            "cpu.cfs_period_us",
            period.to_string(),
            quota.is_some(),
        )?);
    }
    if let Some(burst) = c.burst() {
        if !files::exists(dir, "cpu.cfs_burst_us") {
            return Err(CgroupError::unsupported(
                "linux.resources.cpu.burst",
                format!(
                    "{} does not exist (Linux 5.14 or later needed)",
                    dir.join("cpu.cfs_burst_us").display()
                ),
            ));
        }
        deferred.push(write_or_defer(
            dir,
            "cpu.cfs_burst_us",
            burst.to_string(),
            quota.is_some(),
        )?);
    }
    if let Some(quota) = quota {
        files::write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
        write_deferred(dir, deferred)?;
    }
    if let Some(idle) = c.idle() {
        files::write(dir, "cpu.idle", &idle.to_string())?;
    }
    // Same dance for the real-time budget: period, runtime, period again.
    let runtime = c.realtime_runtime().filter(|&r| r != 0);
    let mut deferred = Vec::new();
    if let Some(period) = c.realtime_period().filter(|&p| p != 0) {
        deferred.push(write_or_defer(
            dir,
            "cpu.rt_period_us",
            period.to_string(),
            runtime.is_some(),
        )?);
    }
    if let Some(runtime) = runtime {
        files::write(dir, "cpu.rt_runtime_us", &runtime.to_string())?;
        write_deferred(dir, deferred)?;
    }
    Ok(())
}

pub(crate) fn apply_v2(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(idle) = c.idle() {
        files::write(dir, "cpu.idle", &idle.to_string())?;
    }
    if let Some(shares) = c.shares().filter(|&s| s != 0) {
        files::write(dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
    }
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&p| p != 0);
    let mut deferred = Vec::new();
    if let Some(burst) = c.burst() {
        deferred.push(write_or_defer(
            dir,
            "cpu.max.burst",
            burst.to_string(),
            quota.is_some(),
        )?);
    }
    if quota.is_some() || period.is_some() {
        // cpu.max holds both numbers; keep the one not being changed.
        let current = files::read(dir, "cpu.max")?;
        let mut fields = current.split_whitespace();
        let current_quota = fields.next().unwrap_or("max").to_string();
        let current_period = fields.next().unwrap_or("100000").to_string();
        let quota = match quota {
            Some(q) if q > 0 => q.to_string(),
            Some(_) => "max".to_string(),
            None => current_quota,
        };
        let period = period.map_or(current_period, |p| p.to_string());
        files::write(dir, "cpu.max", &format!("{quota} {period}"))?;
        write_deferred(dir, deferred)?;
    }
    Ok(())
}

pub(crate) fn check_v2(c: &LinuxCpu) -> Result<(), CgroupError> {
    if is_realtime_set(c) {
        return Err(CgroupError::unsupported(
            "linux.resources.cpu.realtimeRuntime/realtimePeriod",
            "cgroup v2 has no real-time scheduling budget",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_to_weights_like_runc_and_crun() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
        // Reference values: the formula evaluated independently in floating point.
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(shares_to_weight(2048), 174);
        assert_eq!(shares_to_weight(100), 17);
    }
}
