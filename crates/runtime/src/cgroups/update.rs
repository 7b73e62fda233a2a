//! `update`: what runc does with `runc update -r FILE` or its flags. The new
//! values are merged into the container's stored resources and the result
//! is applied whole (applying unchanged values is a no-op), so that values
//! that depend on each other (memory and swap, quota and period) are always
//! written together.

use oci_spec::runtime::LinuxResources;
use serde_json::{Map, Value};

use super::CgroupError;

/// runc's `update` flags, as given on the command line (unparsed).
#[derive(Clone, Debug, Default)]
pub struct UpdateFlags {
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<String>,
    pub cpu_quota: Option<String>,
    pub cpu_burst: Option<String>,
    pub cpu_shares: Option<String>,
    pub cpu_rt_period: Option<String>,
    pub cpu_rt_runtime: Option<String>,
    pub cpu_idle: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_swap: Option<String>,
    pub memory_reservation: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub pids_limit: Option<i64>,
}

/// Parses a byte size the way Docker and runc do ("512m", "1g", "1.5GiB",
/// "1024"; binary multiples), or "-1" for unlimited.
pub fn parse_byte_size(flag: &str, text: &str) -> Result<i64, CgroupError> {
    let bad = |why: &str| CgroupError::invalid(format!("--{flag}"), format!("{text:?} {why}"));
    let t = text.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| bad("is not a size like 512m or 1g"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad("has an unknown unit (use k, m, g, t or p)")),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(bad("is too large"));
    }
    Ok(bytes as i64)
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, CgroupError> {
    text.trim().parse().map_err(|_| {
        CgroupError::invalid(
            format!("--{flag}"),
            format!("{text:?} is not a valid number"),
        )
    })
}

/// The resources the flags ask for (only those given are set).
pub fn resources_from_flags(f: &UpdateFlags) -> Result<LinuxResources, CgroupError> {
    let mut memory = Map::new();
    let mut cpu = Map::new();
    let mut json = Map::new();
    for (flag, key, value) in [
        ("memory", "limit", &f.memory),
        ("memory-swap", "swap", &f.memory_swap),
        ("memory-reservation", "reservation", &f.memory_reservation),
        ("kernel-memory", "kernel", &f.kernel_memory),
        ("kernel-memory-tcp", "kernelTCP", &f.kernel_memory_tcp),
    ] {
        if let Some(v) = value {
            memory.insert(key.into(), parse_byte_size(flag, v)?.into());
        }
    }
    for (flag, key, value) in [
        ("cpu-period", "period", &f.cpu_period),
        ("cpu-burst", "burst", &f.cpu_burst),
        ("cpu-shares", "shares", &f.cpu_shares),
        ("cpu-rt-period", "realtimePeriod", &f.cpu_rt_period),
    ] {
        if let Some(v) = value {
            cpu.insert(key.into(), number::<u64>(flag, v)?.into());
        }
    }
    for (flag, key, value) in [
        ("cpu-quota", "quota", &f.cpu_quota),
        ("cpu-rt-runtime", "realtimeRuntime", &f.cpu_rt_runtime),
        ("cpu-idle", "idle", &f.cpu_idle),
    ] {
        if let Some(v) = value {
            cpu.insert(key.into(), number::<i64>(flag, v)?.into());
        }
    }
    if let Some(c) = &f.cpuset_cpus {
        cpu.insert("cpus".into(), c.clone().into());
    }
    if let Some(m) = &f.cpuset_mems {
        cpu.insert("mems".into(), m.clone().into());
    }
    if !memory.is_empty() {
        json.insert("memory".into(), memory.into());
    }
    if !cpu.is_empty() {
        json.insert("cpu".into(), cpu.into());
    }
    if let Some(w) = f.blkio_weight.filter(|&w| w != 0) {
        json.insert("blockIO".into(), serde_json::json!({ "weight": w }));
    }
    if let Some(p) = f.pids_limit {
        json.insert("pids".into(), serde_json::json!({ "limit": p }));
    }
    serde_json::from_value(Value::Object(json))
        .map_err(|e| CgroupError::invalid("update flags", e.to_string()))
}

/// Keys of per-device lists that are updated device by device.
const DEVICE_LISTS: &[&str] = &[
    "weightDevice",
    "throttleReadBpsDevice",
    "throttleWriteBpsDevice",
    "throttleReadIOPSDevice",
    "throttleWriteIOPSDevice",
];

fn merge(base: &mut Value, patch: Value, key: &str) {
    match (base, patch) {
        (_, Value::Null) => {}
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v, &k);
            }
        }
        (Value::Array(b), Value::Array(p)) if DEVICE_LISTS.contains(&key) => {
            let same = |x: &Value, y: &Value| x["major"] == y["major"] && x["minor"] == y["minor"];
            for entry in p {
                match b.iter_mut().find(|e| same(e, &entry)) {
                    Some(existing) => merge(existing, entry, ""),
                    None => b.push(entry),
                }
            }
        }
        (b, p) => *b = p,
    }
}

/// The resources after an update: `stored` with every field `patch` sets
/// replaced (per-device blkio entries replaced device by device), plus
/// runc's two adjustments: unlimited memory without a swap value means
/// unlimited swap too, and `cpu.idle` without shares drops the stored shares
/// (the kernel refuses shares on an idle cgroup). `checkBeforeUpdate` comes
/// from the patch only.
pub fn merge_update(
    stored: &LinuxResources,
    patch: &LinuxResources,
) -> Result<LinuxResources, CgroupError> {
    let to_value = |r: &LinuxResources| {
        serde_json::to_value(r).map_err(|e| CgroupError::invalid("linux.resources", e.to_string()))
    };
    let mut merged = to_value(stored)?;
    merge(&mut merged, to_value(patch)?, "");
    let mut out: LinuxResources = serde_json::from_value(merged)
        .map_err(|e| CgroupError::invalid("linux.resources", e.to_string()))?;

    let patch_memory = patch.memory().unwrap_or_default();
    if let Some(m) = out.memory_mut() {
        if patch_memory.limit() == Some(-1) && patch_memory.swap().is_none() {
            m.set_swap(Some(0));
        }
        m.set_check_before_update(patch_memory.check_before_update());
    }
    let patch_cpu = patch.cpu().clone().unwrap_or_default();
    if patch_cpu.idle().is_some() && patch_cpu.shares().is_none() {
        if let Some(c) = out.cpu_mut() {
            c.set_shares(None);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_byte_size("memory", "1024").unwrap(), 1024);
        assert_eq!(parse_byte_size("memory", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_byte_size("memory", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_byte_size("memory", "1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_byte_size("memory", "64kb").unwrap(), 64 << 10);
        assert_eq!(parse_byte_size("memory", "-1").unwrap(), -1);
        for bad in ["", "m", "12x", "-2", "1..2m"] {
            let err = parse_byte_size("memory", bad).unwrap_err().to_string();
            assert!(err.contains("--memory"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_become_resources() {
        let r = resources_from_flags(&UpdateFlags {
            memory: Some("256m".into()),
            memory_swap: Some("-1".into()),
            cpu_quota: Some("50000".into()),
            cpu_shares: Some("512".into()),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(42),
            blkio_weight: Some(300),
            ..Default::default()
        })
        .unwrap();
        let m = r.memory().as_ref().unwrap();
        assert_eq!(m.limit(), Some(256 << 20));
        assert_eq!(m.swap(), Some(-1));
        let c = r.cpu().as_ref().unwrap();
        assert_eq!(c.quota(), Some(50000));
        assert_eq!(c.shares(), Some(512));
        assert_eq!(c.cpus().as_deref(), Some("0"));
        assert_eq!(r.pids().unwrap().limit(), 42);
        assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(300));
        let err = resources_from_flags(&UpdateFlags {
            cpu_period: Some("abc".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--cpu-period"), "{err}");
    }

    #[test]
    fn update_keeps_what_it_does_not_change() {
        let stored = res(
            r#"{"memory":{"limit":1000000,"swap":2000000},"cpu":{"quota":50000,"period":100000,"shares":512},
                "pids":{"limit":10},"devices":[{"allow":false,"access":"rwm"}],
                "blockIO":{"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1},{"major":8,"minor":16,"rate":2}]}}"#,
        );
        let patch = res(
            r#"{"cpu":{"quota":20000},"memory":{"checkBeforeUpdate":true},
                "blockIO":{"throttleReadBpsDevice":[{"major":8,"minor":16,"rate":5},{"major":9,"minor":0,"rate":7}]}}"#,
        );
        let merged = merge_update(&stored, &patch).unwrap();
        let c = merged.cpu().as_ref().unwrap();
        assert_eq!(
            (c.quota(), c.period(), c.shares()),
            (Some(20000), Some(100000), Some(512))
        );
        let m = merged.memory().as_ref().unwrap();
        assert_eq!(
            (m.limit(), m.swap(), m.check_before_update()),
            (Some(1000000), Some(2000000), Some(true))
        );
        assert_eq!(merged.pids().unwrap().limit(), 10);
        assert_eq!(merged.devices().as_ref().unwrap().len(), 1);
        let t = merged
            .block_io()
            .as_ref()
            .unwrap()
            .throttle_read_bps_device()
            .clone()
            .unwrap();
        let rates: Vec<(i64, i64, u64)> =
            t.iter().map(|d| (d.major(), d.minor(), d.rate())).collect();
        assert_eq!(rates, vec![(8, 0, 1), (8, 16, 5), (9, 0, 7)]);
    }

    #[test]
    fn runc_adjustments_apply() {
        let stored = res(
            r#"{"memory":{"limit":1000000,"swap":2000000,"checkBeforeUpdate":true},"cpu":{"shares":512}}"#,
        );
        let merged =
            merge_update(&stored, &res(r#"{"memory":{"limit":-1},"cpu":{"idle":1}}"#)).unwrap();
        let m = merged.memory().as_ref().unwrap();
        assert_eq!((m.limit(), m.swap()), (Some(-1), Some(0)));
        assert_eq!(m.check_before_update(), None);
        let c = merged.cpu().as_ref().unwrap();
        assert_eq!((c.idle(), c.shares()), (Some(1), None));
    }
}
