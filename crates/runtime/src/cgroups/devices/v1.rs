//! Device rules on cgroup v1: writes to `devices.allow` / `devices.deny`,
//! computed by the emulator as the smallest transition from the table the
//! kernel reports, then checked against `devices.list`.

use std::path::Path;

use super::emulator::Emulator;
use super::rules::DeviceRule;
use crate::cgroups::{files, CgroupError};

fn read_table(dir: &Path) -> Result<Emulator, CgroupError> {
    let list = files::read(dir, "devices.list")?;
    Emulator::from_list(&list).map_err(|reason| CgroupError::Parse {
        path: dir.join("devices.list"),
        reason,
    })
}

pub(crate) fn apply(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let target = Emulator::from_rules(rules)?;
    let current = read_table(dir)?;
    for rule in current.transition(&target) {
        let file = if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        files::write(dir, file, &rule.cgroup_string())?;
    }
    // The kernel silently drops rules a parent cgroup forbids; make sure the
    // table is what was asked for (exactly, for an allow-list; a deny-list's
    // exceptions are not visible).
    let after = read_table(dir)?;
    let matches = if target.is_deny_list() {
        after.is_deny_list()
    } else {
        after == target
    };
    if !matches {
        return Err(CgroupError::Parse {
            path: dir.join("devices.list"),
            reason: "after writing the device rules the kernel reports a different table \
                     (a parent cgroup probably denies some of the requested devices)"
                .into(),
        });
    }
    Ok(())
}
