//! Host devices given to a container: `--device` (checked at create,
//! resolved at start) and every device of the host with `--privileged`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::{EngineError, Result};
use crate::spec::Device;
use crate::types::DeviceMapping;

/// Whether this process has capability `number` in its effective set.
pub fn has_capability(number: u32) -> bool {
    // capget: /proc/self/status is generated line by line for one field.
    rustix::thread::capabilities(None).is_ok_and(|sets| {
        1u64.checked_shl(number)
            .is_some_and(|bit| sets.effective.bits() & bit != 0)
    })
}

/// Checks `--device` values: the host path is a device (or a directory of
/// them), the permissions a subset of `rwm` (the container's device cgroup
/// rule for the node).
pub fn check(devices: &[DeviceMapping]) -> Result<()> {
    for d in devices {
        let meta = fs::metadata(&d.path_on_host).map_err(|e| {
            EngineError::invalid(format!(
                "error gathering device information while adding custom device \"{}\": {e}",
                d.path_on_host
            ))
        })?;
        let ft = meta.file_type();
        if !(ft.is_char_device() || ft.is_block_device() || ft.is_dir()) {
            return Err(EngineError::invalid(format!(
                "error gathering device information while adding custom device \"{}\": not a device node",
                d.path_on_host
            )));
        }
        let perms = if d.cgroup_permissions.is_empty() {
            "rwm"
        } else {
            d.cgroup_permissions.as_str()
        };
        if perms.is_empty() || !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            return Err(EngineError::invalid(format!(
                "invalid device mode: {perms}"
            )));
        }
        if !d.path_in_container.is_empty() && !d.path_in_container.starts_with('/') {
            return Err(EngineError::invalid(format!(
                "{} is not an absolute path",
                d.path_in_container
            )));
        }
    }
    Ok(())
}

fn node(host: &Path, in_container: String) -> Option<Device> {
    let meta = fs::symlink_metadata(host).ok()?;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(Device {
        path: in_container,
        kind,
        major: rustix::fs::major(rdev) as u64,
        minor: rustix::fs::minor(rdev) as u64,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

fn walk(dir: &Path, base_host: &Path, base_container: &str, out: &mut Vec<Device>, skip: &[&str]) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let rel = path.strip_prefix(base_host).unwrap_or(&path);
        if skip.iter().any(|s| rel == Path::new(s)) {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        let in_container = format!("{}/{}", base_container.trim_end_matches('/'), rel.display());
        if ft.is_dir() {
            walk(&path, base_host, base_container, out, skip);
        } else if let Some(d) = node(&path, in_container) {
            out.push(d);
        }
    }
}

/// The nodes `--device` values name (a directory gives every device in it).
pub fn resolve(devices: &[DeviceMapping]) -> Result<Vec<Device>> {
    let mut out = Vec::new();
    for d in devices {
        let host = Path::new(&d.path_on_host);
        let target = if d.path_in_container.is_empty() {
            d.path_on_host.clone()
        } else {
            d.path_in_container.clone()
        };
        if host.is_dir() {
            walk(host, host, &target, &mut out, &[]);
        } else {
            out.push(node(host, target).ok_or_else(|| {
                EngineError::invalid(format!("{} is not a device node", d.path_on_host))
            })?);
        }
    }
    Ok(out)
}

/// Every device node of the host (`--privileged`), as runc lists them.
pub fn host_devices() -> Vec<Device> {
    let mut out = Vec::new();
    let skip = [
        "pts",
        "shm",
        "fd",
        "mqueue",
        ".lxc",
        ".lxd-mounts",
        ".udev",
        "console",
    ];
    walk(
        Path::new("/dev"),
        Path::new("/dev"),
        "/dev",
        &mut out,
        &skip,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_agree_with_proc_status() {
        let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        let effective = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .expect("CapEff");
        for number in 0..64 {
            assert_eq!(
                has_capability(number),
                effective & (1 << number) != 0,
                "capability {number}"
            );
        }
    }
}
