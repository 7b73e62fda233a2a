//! Checks of `linux.resources` that need no host: a value failing here is
//! wrong everywhere, so it is refused before anything is created. Checks that
//! depend on the host (is the controller there? is this v2?) are in
//! [`Cgroup::check`](super::Cgroup::check).

use oci_spec::runtime::LinuxResources;

use super::devices::{emulator::Emulator, rules::rules_from_oci};
use super::resources::{cpuset, hugetlb, unified};
use super::CgroupError;

const FIELD: &str = "linux.resources";

/// Byte counts where -1 means unlimited and 0 means unset.
fn limit(field: &str, value: Option<i64>) -> Result<(), CgroupError> {
    match value {
        Some(v) if v < -1 => Err(CgroupError::invalid(
            format!("{FIELD}.{field}"),
            format!("{v} is negative (only -1, meaning unlimited, is allowed)"),
        )),
        _ => Ok(()),
    }
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: Option<T>,
    low: T,
    high: T,
    unset: Option<T>,
) -> Result<(), CgroupError> {
    match value {
        Some(v) if Some(v) == unset => Ok(()),
        Some(v) if v < low || v > high => Err(CgroupError::invalid(
            format!("{FIELD}.{field}"),
            format!("{v} is out of range ({low} to {high})"),
        )),
        _ => Ok(()),
    }
}

fn device_number(field: String, value: i64) -> Result<(), CgroupError> {
    if value < 0 || value > i64::from(u32::MAX) {
        return Err(CgroupError::invalid(
            field,
            format!("{value} is not a device number"),
        ));
    }
    Ok(())
}

fn word(field: String, value: &str, what: &str) -> Result<(), CgroupError> {
    if value.is_empty() || value.contains(char::is_whitespace) || value.contains('\0') {
        return Err(CgroupError::invalid(
            field,
            format!("{value:?} is not a valid {what} (empty or contains spaces)"),
        ));
    }
    Ok(())
}

/// Refuses values no host accepts; the message names the field and why.
pub fn validate(r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = r.memory() {
        limit("memory.limit", m.limit())?;
        limit("memory.reservation", m.reservation())?;
        limit("memory.swap", m.swap())?;
        limit("memory.kernel", m.kernel())?;
        limit("memory.kernelTCP", m.kernel_tcp())?;
        range("memory.swappiness", m.swappiness(), 0, 100, Some(u64::MAX))?;
        let (mem, swap) = (m.limit().unwrap_or(0), m.swap().unwrap_or(0));
        if swap > 0 && mem <= 0 {
            return Err(CgroupError::invalid(
                format!("{FIELD}.memory.swap"),
                "a memory+swap limit needs a memory limit (memory.limit)",
            ));
        }
        if swap > 0 && swap < mem {
            return Err(CgroupError::invalid(
                format!("{FIELD}.memory.swap"),
                format!("memory+swap ({swap}) must not be lower than memory.limit ({mem})"),
            ));
        }
    }
    if let Some(c) = r.cpu() {
        range("cpu.shares", c.shares(), 2, 262_144, Some(0))?;
        limit("cpu.quota", c.quota())?;
        if let Some(q) = c.quota().filter(|&q| q > 0 && q < 1000) {
            return Err(CgroupError::invalid(
                format!("{FIELD}.cpu.quota"),
                format!("{q} is below the kernel's minimum of 1000 microseconds"),
            ));
        }
        range("cpu.period", c.period(), 1000, 1_000_000, Some(0))?;
        limit("cpu.realtimeRuntime", c.realtime_runtime())?;
        range("cpu.idle", c.idle(), 0, 1, None)?;
        if let Some(cpus) = c.cpus() {
            cpuset::validate_list(&format!("{FIELD}.cpu.cpus"), cpus)?;
        }
        if let Some(mems) = c.mems() {
            cpuset::validate_list(&format!("{FIELD}.cpu.mems"), mems)?;
        }
    }
    if let Some(p) = r.pids() {
        limit("pids.limit", Some(p.limit()))?;
    }
    if let Some(b) = r.block_io() {
        range("blockIO.weight", b.weight(), 10, 1000, Some(0))?;
        range("blockIO.leafWeight", b.leaf_weight(), 10, 1000, Some(0))?;
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            let f = format!("blockIO.weightDevice[{i}]");
            device_number(format!("{FIELD}.{f}.major"), d.major())?;
            device_number(format!("{FIELD}.{f}.minor"), d.minor())?;
            range(&format!("{f}.weight"), d.weight(), 10, 1000, None)?;
            range(&format!("{f}.leafWeight"), d.leaf_weight(), 10, 1000, None)?;
            if d.weight().is_none() && d.leaf_weight().is_none() {
                return Err(CgroupError::invalid(
                    format!("{FIELD}.{f}"),
                    "neither weight nor leafWeight is given",
                ));
            }
        }
        for (name, list) in [
            ("throttleReadBpsDevice", b.throttle_read_bps_device()),
            ("throttleWriteBpsDevice", b.throttle_write_bps_device()),
            ("throttleReadIOPSDevice", b.throttle_read_iops_device()),
            ("throttleWriteIOPSDevice", b.throttle_write_iops_device()),
        ] {
            for (i, t) in list.iter().flatten().enumerate() {
                device_number(format!("{FIELD}.blockIO.{name}[{i}].major"), t.major())?;
                device_number(format!("{FIELD}.blockIO.{name}[{i}].minor"), t.minor())?;
            }
        }
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        hugetlb::validate_page_size(
            &format!("{FIELD}.hugepageLimits[{i}].pageSize"),
            h.page_size(),
        )?;
        if h.limit() < 0 {
            return Err(CgroupError::invalid(
                format!("{FIELD}.hugepageLimits[{i}].limit"),
                format!("{} is negative", h.limit()),
            ));
        }
    }
    if let Some(n) = r.network() {
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            word(
                format!("{FIELD}.network.priorities[{i}].name"),
                p.name(),
                "interface name",
            )?;
        }
    }
    for device in r.rdma().iter().flat_map(|m| m.keys()) {
        word(
            format!("{FIELD}.rdma[{device:?}]"),
            device,
            "RDMA device name",
        )?;
    }
    if let Some(devices) = r.devices() {
        Emulator::from_rules(&rules_from_oci(devices)?)?;
    }
    if let Some(u) = r.unified() {
        unified::validate(u)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn rejected(json: &str, field: &str) {
        let err = validate(&resources(json)).expect_err(json);
        assert!(err.to_string().contains(field), "{json}: {err}");
    }

    #[test]
    fn docker_style_resources_pass() {
        validate(&resources(
            r#"{"memory":{"limit":67108864,"swap":134217728,"reservation":-1,"swappiness":18446744073709551615},
                "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0-1","mems":"0"},
                "pids":{"limit":-1},
                "blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]},
                "hugepageLimits":[{"pageSize":"2MB","limit":0}],
                "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}],
                "unified":{"memory.high":"max"}}"#,
        ))
        .unwrap();
        validate(&resources("{}")).unwrap();
        // Quota alone uses the kernel's current period (docker --cpu-quota).
        validate(&resources(r#"{"cpu":{"quota":20000}}"#)).unwrap();
    }

    #[test]
    fn bad_values_name_their_field() {
        rejected(r#"{"memory":{"limit":-5}}"#, "linux.resources.memory.limit");
        rejected(
            r#"{"memory":{"limit":100,"swap":50}}"#,
            "linux.resources.memory.swap",
        );
        rejected(r#"{"memory":{"swap":50}}"#, "linux.resources.memory.swap");
        rejected(r#"{"memory":{"swappiness":101}}"#, "memory.swappiness");
        rejected(r#"{"cpu":{"shares":1}}"#, "cpu.shares");
        rejected(r#"{"cpu":{"quota":-2}}"#, "cpu.quota");
        rejected(r#"{"cpu":{"quota":10}}"#, "cpu.quota");
        rejected(r#"{"cpu":{"quota":50000,"period":10}}"#, "cpu.period");
        rejected(r#"{"cpu":{"idle":2}}"#, "cpu.idle");
        rejected(r#"{"cpu":{"cpus":"1-0"}}"#, "cpu.cpus");
        rejected(r#"{"cpu":{"mems":"x"}}"#, "cpu.mems");
        rejected(r#"{"pids":{"limit":-7}}"#, "pids.limit");
        rejected(r#"{"blockIO":{"weight":5}}"#, "blockIO.weight");
        rejected(
            r#"{"blockIO":{"weightDevice":[{"major":8,"minor":0}]}}"#,
            "weightDevice[0]",
        );
        rejected(
            r#"{"blockIO":{"throttleWriteIOPSDevice":[{"major":-8,"minor":0,"rate":1}]}}"#,
            "throttleWriteIOPSDevice[0].major",
        );
        rejected(
            r#"{"hugepageLimits":[{"pageSize":"2M","limit":1}]}"#,
            "pageSize",
        );
        rejected(
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":-1}]}"#,
            "hugepageLimits[0].limit",
        );
        rejected(
            r#"{"network":{"priorities":[{"name":"","priority":1}]}}"#,
            "priorities[0].name",
        );
        rejected(
            r#"{"devices":[{"allow":true,"type":"c","access":"rwx"}]}"#,
            "devices[0].access",
        );
        rejected(
            r#"{"devices":[{"allow":true,"type":"c","major":5,"access":"rwm"},{"allow":false,"type":"c","major":5,"minor":1,"access":"r"}]}"#,
            "hole",
        );
        rejected(r#"{"unified":{"../memory.max":"1"}}"#, "unified");
        rejected(r#"{"unified":{"nodot":"1"}}"#, "unified");
    }

    #[test]
    fn unknown_device_type_is_refused_at_parse_time() {
        let parsed: Result<LinuxResources, _> =
            serde_json::from_str(r#"{"devices":[{"allow":true,"type":"x","access":"r"}]}"#);
        assert!(parsed.is_err(), "oci-spec must reject device type x");
    }
}
