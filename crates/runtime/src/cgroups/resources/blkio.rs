//! `linux.resources.blockIO` → v1 `blkio.*` or v2 `io.*` files. Weights go
//! to CFQ's files where they exist, else to BFQ's (the scheduler that kept
//! proportional weights after CFQ was removed in Linux 5.0); on v2 without
//! BFQ, to `io.weight` on its 1–10000 scale.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::cgroups::{files, CgroupError};

pub(crate) fn is_set(b: &LinuxBlockIo) -> bool {
    b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || throttles(b).any(|(_, _, list)| !list.is_empty())
}

/// (v1 file, v2 io.max key, devices) for each of the four throttles.
fn throttles(
    b: &LinuxBlockIo,
) -> impl Iterator<Item = (&'static str, &'static str, &[LinuxThrottleDevice])> {
    [
        (
            "blkio.throttle.read_bps_device",
            "rbps",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            "wbps",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            "riops",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            "wiops",
            b.throttle_write_iops_device(),
        ),
    ]
    .into_iter()
    .map(|(file, key, list)| (file, key, list.as_deref().unwrap_or(&[])))
}

fn weight_files_v1(dir: &Path) -> Result<(&'static str, &'static str), CgroupError> {
    if files::exists(dir, "blkio.weight") {
        Ok(("blkio.weight", "blkio.weight_device"))
    } else if files::exists(dir, "blkio.bfq.weight") {
        Ok(("blkio.bfq.weight", "blkio.bfq.weight_device"))
    } else {
        Err(CgroupError::unsupported(
            "linux.resources.blockIO weights",
            format!(
                "{} has neither blkio.weight (CFQ) nor blkio.bfq.weight (BFQ): no block device uses a proportional-weight I/O scheduler",
                dir.display()
            ),
        ))
    }
}

pub(crate) fn apply_v1(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let devices = b.weight_device().as_deref().unwrap_or(&[]);
    if b.weight().is_some_and(|w| w != 0) || devices.iter().any(|d| d.weight().is_some()) {
        let (weight_file, device_file) = weight_files_v1(dir)?;
        if let Some(w) = b.weight().filter(|&w| w != 0) {
            files::write(dir, weight_file, &w.to_string())?;
        }
        for d in devices {
            if let Some(w) = d.weight() {
                files::write(
                    dir,
                    device_file,
                    &format!("{}:{} {w}", d.major(), d.minor()),
                )?;
            }
        }
    }
    if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
        files::write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for d in devices {
        if let Some(w) = d.leaf_weight() {
            files::write(
                dir,
                "blkio.leaf_weight_device",
                &format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
    }
    for (file, _, list) in throttles(b) {
        for t in list {
            files::write(
                dir,
                file,
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// v2 `io.weight` for a v1 blkio weight: [10, 1000] onto [1, 10000].
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
}

pub(crate) fn apply_v2(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let devices = b.weight_device().as_deref().unwrap_or(&[]);
    let bfq = files::exists(dir, "io.bfq.weight");
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        if bfq {
            files::write(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            files::write(dir, "io.weight", &blkio_weight_to_io_weight(w).to_string())?;
        }
    }
    for d in devices {
        if let Some(w) = d.weight() {
            let (file, value) = if bfq {
                ("io.bfq.weight", format!("{}:{} {w}", d.major(), d.minor()))
            } else {
                (
                    "io.weight",
                    format!(
                        "{}:{} {}",
                        d.major(),
                        d.minor(),
                        blkio_weight_to_io_weight(w)
                    ),
                )
            };
            files::write(dir, file, &value)?;
        }
    }
    if b.leaf_weight().is_some() || devices.iter().any(|d| d.leaf_weight().is_some()) {
        tracing::warn!("cgroup v2 has no leaf weights: blockIO.leafWeight ignored");
    }
    for (_, key, list) in throttles(b) {
        for t in list {
            files::write(
                dir,
                "io.max",
                &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_convert_linearly() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10000);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
    }
}
