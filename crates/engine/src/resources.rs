//! A container's cgroup: where it lives (docker's cgroupfs layout: one
//! directory per container under `/quai`, or `--cgroup-parent`), docker's
//! checks of the resource flags (its messages), and their translation into
//! the OCI `linux.resources` section the runtime applies.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::runtime::LinuxResources;
use quai_runtime::cgroups::{Cgroup, Layout};
use serde_json::{json, Map, Value};

use crate::error::{EngineError, Result};
use crate::spec::Device;
use crate::types::{HostConfig, ThrottleDevice, WeightDevice};

/// Parent of every container's cgroup unless `--cgroup-parent` says
/// otherwise (docker's is `/docker`).
pub const DEFAULT_PARENT: &str = "/quai";

/// docker's smallest memory limit and reservation.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// docker's period when `--cpus` is turned into a CFS quota.
const NANO_CPU_PERIOD: i64 = 100_000;

/// The container's `linux.cgroupsPath`: `<parent>/<id>`, from the root of
/// every hierarchy. A relative `--cgroup-parent` is taken from the root
/// too (docker's daemon runs in the root cgroup; quai has no daemon whose
/// cgroup could anchor it).
pub fn cgroups_path(hc: &HostConfig, id: &str) -> String {
    let parent = if hc.cgroup_parent.is_empty() {
        DEFAULT_PARENT
    } else {
        hc.cgroup_parent.as_str()
    };
    let parent = parent.trim_matches('/');
    if parent.is_empty() {
        format!("/{id}")
    } else {
        format!("/{parent}/{id}")
    }
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::invalid(message)
}

/// Parses a cpu or memory-node list (`0-3,5`) into its members.
pub fn parse_list(text: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in text.trim().split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || b - a > 65_536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

fn online(file: &str) -> String {
    fs::read_to_string(file)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "0".into())
}

/// Number of CPUs the host has online.
pub fn online_cpus() -> usize {
    parse_list(&online("/sys/devices/system/cpu/online"))
        .map(|l| l.len())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

fn check_cpuset(value: &str, what: &str, available_file: &str) -> Result<()> {
    if value.is_empty() {
        return Ok(());
    }
    let Some(requested) = parse_list(value) else {
        return Err(invalid(format!("Invalid value {value} for cpuset {what}")));
    };
    let available = online(available_file);
    let have = parse_list(&available).unwrap_or_else(|| vec![0]);
    if requested.iter().any(|r| !have.contains(r)) {
        let noun = if what == "cpus" {
            "CPUs"
        } else {
            "memory nodes"
        };
        return Err(invalid(format!(
            "Requested {noun} are not available - requested {value}, available: {available}"
        )));
    }
    Ok(())
}

/// Whether the host accounts swap (v1 `memory.memsw.*` files; v2 hosts
/// have `memory.swap.max` wherever the memory controller is).
fn swap_accounting(layout: &Layout) -> bool {
    match layout
        .v1_hierarchies()
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == "memory"))
    {
        Some(h) => h.mount_point.join("memory.memsw.limit_in_bytes").exists(),
        None => layout.unified().is_some(),
    }
}

fn block_device(path: &str, flag: &str) -> Result<(u64, u64)> {
    let meta = fs::metadata(path).map_err(|e| invalid(format!("{flag} {path}: {e}")))?;
    if !meta.file_type().is_block_device() {
        return Err(invalid(format!("{flag} {path}: not a block device")));
    }
    let rdev = meta.rdev();
    Ok((
        rustix::fs::major(rdev) as u64,
        rustix::fs::minor(rdev) as u64,
    ))
}

/// Parses a `--device-cgroup-rule` value (`c 1:3 rwm`, `a *:* m`).
fn parse_cgroup_rule(rule: &str) -> Result<Value> {
    let bad = || invalid(format!("invalid device cgroup format '{rule}'"));
    let fields: Vec<&str> = rule.split_whitespace().collect();
    let [kind, numbers, access] = fields.as_slice() else {
        return Err(bad());
    };
    if !matches!(*kind, "a" | "b" | "c") {
        return Err(bad());
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |s: &str| -> Result<Option<i64>> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse::<u32>().map(|n| Some(n as i64)).map_err(|_| bad())
        }
    };
    if access.is_empty()
        || access.len() > 3
        || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
    {
        return Err(bad());
    }
    let mut v = json!({"allow": true, "type": kind, "access": access});
    if let Some(m) = number(major)? {
        v["major"] = json!(m);
    }
    if let Some(m) = number(minor)? {
        v["minor"] = json!(m);
    }
    Ok(v)
}

/// docker's checks of the resource flags at create (and of the merged
/// values at update), with its messages. Fills in docker's defaults
/// (memory+swap = twice the memory limit). Returns docker's warnings.
pub fn check(hc: &mut HostConfig, layout: Option<&Layout>) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let parent = &hc.cgroup_parent;
    if parent.contains('\0') || parent.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "invalid --cgroup-parent {parent:?}: it must not contain \"..\""
        )));
    }
    if hc.memory != 0 && hc.memory < MIN_MEMORY {
        return Err(invalid("Minimum memory limit allowed is 6MB"));
    }
    if hc.memory > 0 && hc.memory_swap > 0 && hc.memory_swap < hc.memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if hc.memory == 0 && hc.memory_swap > 0 {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if hc.memory_swap < -1 {
        return Err(invalid(format!(
            "invalid memory swap limit {}: use -1 for unlimited swap",
            hc.memory_swap
        )));
    }
    if let Some(s) = hc.memory_swappiness {
        if s != -1 && !(0..=100).contains(&s) {
            return Err(invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
    }
    if hc.memory_reservation != 0 && hc.memory_reservation < MIN_MEMORY {
        return Err(invalid("Minimum memory reservation allowed is 6MB"));
    }
    if hc.memory > 0 && hc.memory_reservation > 0 && hc.memory < hc.memory_reservation {
        return Err(invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if hc.oom_kill_disable == Some(true) && hc.memory == 0 {
        warnings.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".to_string());
    }
    if hc.nano_cpus > 0 && hc.cpu_period > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if hc.nano_cpus > 0 && hc.cpu_quota > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    let cpus = online_cpus() as i64;
    if hc.nano_cpus < 0 || hc.nano_cpus > cpus * 1_000_000_000 {
        return Err(invalid(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )));
    }
    if hc.nano_cpus > 0 && hc.nano_cpus < 10_000_000 {
        return Err(invalid(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )));
    }
    if hc.cpu_shares < 0 {
        return Err(invalid(format!(
            "invalid CPU shares {}: must not be negative",
            hc.cpu_shares
        )));
    }
    if hc.cpu_period != 0 && !(1000..=1_000_000).contains(&hc.cpu_period) {
        return Err(invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if hc.cpu_realtime_period != 0 || hc.cpu_realtime_runtime != 0 {
        check_realtime(hc, layout)?;
    }
    if hc.cpu_quota > 0 && hc.cpu_quota < 1000 {
        return Err(invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    check_cpuset(&hc.cpuset_cpus, "cpus", "/sys/devices/system/cpu/online")?;
    check_cpuset(&hc.cpuset_mems, "mems", "/sys/devices/system/node/online")?;
    if hc.blkio_weight != 0 && !(10..=1000).contains(&hc.blkio_weight) {
        return Err(invalid("Range of blkio weight is from 10 to 1000"));
    }
    for d in hc.blkio_weight_device.iter().flatten() {
        if d.weight != 0 && !(10..=1000).contains(&d.weight) {
            return Err(invalid(format!(
                "invalid weight for device: {}:{}: range of blkio weight is from 10 to 1000",
                d.path, d.weight
            )));
        }
        block_device(&d.path, "--blkio-weight-device")?;
    }
    for (flag, list) in throttle_lists(hc) {
        for d in list {
            block_device(&d.path, flag)?;
        }
    }
    for rule in hc.device_cgroup_rules.iter().flatten() {
        parse_cgroup_rule(rule)?;
    }
    if hc.memory > 0 && hc.memory_swap == 0 {
        if layout.is_none_or(swap_accounting) {
            // docker's default: as much swap as memory.
            hc.memory_swap = hc.memory * 2;
        } else {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".to_string());
            hc.memory_swap = -1;
        }
    }
    Ok(warnings)
}

fn throttle_lists(hc: &HostConfig) -> [(&'static str, &[ThrottleDevice]); 4] {
    [
        (
            "--device-read-bps",
            hc.blkio_device_read_bps.as_deref().unwrap_or_default(),
        ),
        (
            "--device-write-bps",
            hc.blkio_device_write_bps.as_deref().unwrap_or_default(),
        ),
        (
            "--device-read-iops",
            hc.blkio_device_read_iops.as_deref().unwrap_or_default(),
        ),
        (
            "--device-write-iops",
            hc.blkio_device_write_iops.as_deref().unwrap_or_default(),
        ),
    ]
}

fn weight_devices(list: &[WeightDevice]) -> Result<Vec<Value>> {
    list.iter()
        .map(|d| {
            let (major, minor) = block_device(&d.path, "--blkio-weight-device")?;
            Ok(json!({"major": major, "minor": minor, "weight": d.weight}))
        })
        .collect()
}

fn throttle_devices(flag: &str, list: &[ThrottleDevice]) -> Result<Vec<Value>> {
    list.iter()
        .map(|d| {
            let (major, minor) = block_device(&d.path, flag)?;
            Ok(json!({"major": major, "minor": minor, "rate": d.rate}))
        })
        .collect()
}

/// The device rules: everything denied but the nodes given (`--device`,
/// with their permissions) and `--device-cgroup-rule`; `--privileged`
/// allows every device. The runtime appends the defaults every container
/// needs (`/dev/null`, ptys, ...).
fn device_rules(hc: &HostConfig, devices: &[Device]) -> Result<Vec<Value>> {
    if hc.privileged {
        return Ok(vec![json!({"allow": true, "access": "rwm"})]);
    }
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    let mappings = hc.devices.as_deref().unwrap_or_default();
    for d in devices {
        let access = mappings
            .iter()
            .find(|m| {
                let target = if m.path_in_container.is_empty() {
                    &m.path_on_host
                } else {
                    &m.path_in_container
                };
                d.path == *target
                    || d.path
                        .starts_with(&format!("{}/", target.trim_end_matches('/')))
            })
            .map(|m| m.cgroup_permissions.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("rwm");
        rules.push(json!({
            "allow": true,
            "type": d.kind.to_string(),
            "major": d.major,
            "minor": d.minor,
            "access": access,
        }));
    }
    for rule in hc.device_cgroup_rules.iter().flatten() {
        rules.push(parse_cgroup_rule(rule)?);
    }
    Ok(rules)
}

/// The OCI `linux.resources` section for `hc`. `devices`: the device
/// nodes the container gets (their cgroup rules); `None` leaves device
/// rules out (an update never changes them).
pub fn linux_resources(hc: &HostConfig, devices: Option<&[Device]>) -> Result<Value> {
    let mut out = Map::new();
    if let Some(devices) = devices {
        out.insert("devices".into(), Value::Array(device_rules(hc, devices)?));
    }
    let mut memory = Map::new();
    if hc.memory != 0 {
        memory.insert("limit".into(), json!(hc.memory));
    }
    if hc.memory_reservation != 0 {
        memory.insert("reservation".into(), json!(hc.memory_reservation));
    }
    if hc.memory_swap != 0 {
        memory.insert("swap".into(), json!(hc.memory_swap));
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s >= 0) {
        memory.insert("swappiness".into(), json!(s));
    }
    if let Some(disable) = hc.oom_kill_disable.filter(|d| *d) {
        memory.insert("disableOOMKiller".into(), json!(disable));
    }
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = Map::new();
    if hc.cpu_shares != 0 {
        cpu.insert("shares".into(), json!(hc.cpu_shares));
    }
    if hc.nano_cpus > 0 {
        cpu.insert("period".into(), json!(NANO_CPU_PERIOD));
        cpu.insert(
            "quota".into(),
            json!(hc.nano_cpus * NANO_CPU_PERIOD / 1_000_000_000),
        );
    } else {
        if hc.cpu_period != 0 {
            cpu.insert("period".into(), json!(hc.cpu_period));
        }
        if hc.cpu_quota != 0 {
            cpu.insert("quota".into(), json!(hc.cpu_quota));
        }
    }
    if hc.cpu_realtime_period != 0 {
        cpu.insert("realtimePeriod".into(), json!(hc.cpu_realtime_period));
    }
    if hc.cpu_realtime_runtime != 0 {
        cpu.insert("realtimeRuntime".into(), json!(hc.cpu_realtime_runtime));
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(hc.cpuset_mems));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = hc.pids_limit {
        // docker: zero and negative values mean unlimited.
        out.insert("pids".into(), json!({"limit": if p > 0 { p } else { -1 }}));
    }
    let mut blkio = Map::new();
    if hc.blkio_weight != 0 {
        blkio.insert("weight".into(), json!(hc.blkio_weight));
    }
    let weights = weight_devices(hc.blkio_weight_device.as_deref().unwrap_or_default())?;
    if !weights.is_empty() {
        blkio.insert("weightDevice".into(), Value::Array(weights));
    }
    let keys = [
        "throttleReadBpsDevice",
        "throttleWriteBpsDevice",
        "throttleReadIOPSDevice",
        "throttleWriteIOPSDevice",
    ];
    for (key, (flag, list)) in keys.iter().zip(throttle_lists(hc)) {
        let entries = throttle_devices(flag, list)?;
        if !entries.is_empty() {
            blkio.insert(key.to_string(), Value::Array(entries));
        }
    }
    if !blkio.is_empty() {
        out.insert("blockIO".into(), Value::Object(blkio));
    }
    Ok(Value::Object(out))
}

/// docker's checks of `--cpu-rt-period`/`--cpu-rt-runtime`, and one of
/// its own: docker's daemon gives its parent cgroup a real-time budget
/// (`dockerd --cpu-rt-runtime`), quai has no daemon, so a budget the parent
/// cgroup lacks is refused here with what to do, instead of the kernel's
/// bare EINVAL when the container starts.
fn check_realtime(hc: &HostConfig, layout: Option<&Layout>) -> Result<()> {
    if hc.cpu_realtime_period < 0 || hc.cpu_realtime_runtime < 0 {
        return Err(invalid(
            "invalid --cpu-rt-period/--cpu-rt-runtime: must not be negative",
        ));
    }
    if hc.cpu_realtime_period != 0
        && hc.cpu_realtime_runtime != 0
        && hc.cpu_realtime_runtime > hc.cpu_realtime_period
    {
        return Err(invalid(
            "cpu-rt-runtime cannot be higher than cpu-rt-period",
        ));
    }
    let Some(parent_dir) = layout.and_then(|l| realtime_parent_dir(l, hc)) else {
        return Err(invalid(
            "Your kernel does not support CPU real-time scheduler (--cpu-rt-period/--cpu-rt-runtime need the cgroup v1 cpu controller with real-time group scheduling; cgroup v2 has no real-time budget)",
        ));
    };
    if hc.cpu_realtime_runtime == 0 {
        return Ok(());
    }
    // A parent that does not exist yet is created with no budget.
    let budget = std::fs::read_to_string(parent_dir.join("cpu.rt_runtime_us"))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    if budget == -1 || hc.cpu_realtime_runtime <= budget {
        return Ok(());
    }
    Err(invalid(format!(
        "--cpu-rt-runtime {}: the parent cgroup {} has a real-time budget of {budget} µs per period (cpu.rt_runtime_us); give it one first (echo N > {}), as dockerd --cpu-rt-runtime does for docker's",
        hc.cpu_realtime_runtime,
        parent_dir.display(),
        parent_dir.join("cpu.rt_runtime_us").display()
    )))
}

/// The v1 cpu directory of the container's parent cgroup, on hosts whose
/// cpu controller has real-time group scheduling.
fn realtime_parent_dir(layout: &Layout, hc: &HostConfig) -> Option<std::path::PathBuf> {
    let hierarchy = layout.v1_hierarchy("cpu")?;
    if !hierarchy.mount_point.join("cpu.rt_runtime_us").exists() {
        return None;
    }
    let probe = Cgroup::new(layout, Some(&cgroups_path(hc, "x")), "x").ok()?;
    probe.controller_dir("cpu")?.parent().map(Path::to_path_buf)
}

/// `linux_resources` in the runtime's type.
pub fn oci_resources(hc: &HostConfig, devices: Option<&[Device]>) -> Result<LinuxResources> {
    serde_json::from_value(linux_resources(hc, devices)?)
        .map_err(|e| invalid(format!("resource limits: {e}")))
}

/// The host's cgroup layout, read once per process: `run` needs it several
/// times, and each read walks /proc/self/mountinfo.
pub fn host_layout() -> Result<&'static Layout> {
    static LAYOUT: std::sync::OnceLock<std::result::Result<Layout, String>> =
        std::sync::OnceLock::new();
    LAYOUT
        .get_or_init(|| Layout::detect().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| invalid(format!("cgroups: {e}")))
}

/// Checks what this host's cgroups can do with `hc` (a controller that is
/// not mounted, a v1-only option on v2, ...) before anything is created.
pub fn check_host(hc: &HostConfig, id: &str, devices: &[Device]) -> Result<()> {
    let layout = host_layout()?;
    let cgroup = Cgroup::new(layout, Some(&cgroups_path(hc, id)), id)
        .map_err(|e| invalid(format!("--cgroup-parent: {e}")))?;
    let resources = oci_resources(hc, Some(devices))?;
    cgroup
        .check(&resources)
        .map_err(|e| invalid(format!("resource limits: {e}")))
}

/// The container's cgroup directories (whether or not they exist now).
pub fn container_cgroup(hc: &HostConfig, id: &str) -> Option<Cgroup> {
    let layout = host_layout().ok()?;
    Cgroup::new(layout, Some(&cgroups_path(hc, id)), id).ok()
}

/// Removes what is left of the container's cgroup (killing its members):
/// after a crash or a simulated reboot, the runtime's record of it may be
/// gone while the directories and processes remain.
pub fn remove_leftover_cgroup(hc: &HostConfig, id: &str) -> Result<()> {
    if let Some(cgroup) = container_cgroup(hc, id).filter(|c| c.exists()) {
        cgroup.kill_and_destroy().map_err(|e| {
            EngineError::invalid(format!("remove the cgroup of container {id}: {e}"))
        })?;
    }
    Ok(())
}

/// What `info` says about the host's cgroups: the version ("1" or "2")
/// and the controllers containers can be limited by.
pub fn host_cgroups() -> (String, Vec<String>) {
    let Ok(layout) = Layout::detect() else {
        return ("1".into(), Vec::new());
    };
    if let Layout::Unified(u) = &layout {
        let controllers = fs::read_to_string(u.mount_point.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        return ("2".into(), controllers);
    }
    let controllers = layout
        .v1_hierarchies()
        .iter()
        .flat_map(|h| h.controllers.iter().cloned())
        .collect();
    ("1".into(), controllers)
}

/// The host's memory (docker's limit for containers without one).
pub fn host_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(u64::MAX)
}

/// Whether a path exists as a block device (for `stats` and tests).
pub fn is_block_device(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_follow_dockers_layout() {
        let mut hc = HostConfig::default();
        assert_eq!(cgroups_path(&hc, "abc"), "/quai/abc");
        hc.cgroup_parent = "mygroup/sub/".into();
        assert_eq!(cgroups_path(&hc, "abc"), "/mygroup/sub/abc");
        hc.cgroup_parent = "/".into();
        assert_eq!(cgroups_path(&hc, "abc"), "/abc");
    }

    #[test]
    fn dockers_checks_and_defaults() {
        let mut hc = HostConfig {
            memory: 1 << 20,
            ..Default::default()
        };
        let e = check(&mut hc, None).unwrap_err().to_string();
        assert_eq!(e, "Minimum memory limit allowed is 6MB");
        let mut hc = HostConfig {
            memory: 64 << 20,
            ..Default::default()
        };
        check(&mut hc, None).unwrap();
        assert_eq!(hc.memory_swap, 128 << 20);
        let mut hc = HostConfig {
            memory: 64 << 20,
            memory_swap: 32 << 20,
            ..Default::default()
        };
        assert!(check(&mut hc, None)
            .unwrap_err()
            .to_string()
            .contains("larger than memory limit"));
        let mut hc = HostConfig {
            nano_cpus: 500_000_000,
            cpu_quota: 50_000,
            ..Default::default()
        };
        assert!(check(&mut hc, None)
            .unwrap_err()
            .to_string()
            .contains("Nano CPUs and CPU Quota"));
        let mut hc = HostConfig {
            cpu_period: 10,
            ..Default::default()
        };
        assert!(check(&mut hc, None).is_err());
        let mut hc = HostConfig {
            cpuset_cpus: "4096".into(),
            ..Default::default()
        };
        assert!(check(&mut hc, None)
            .unwrap_err()
            .to_string()
            .starts_with("Requested CPUs are not available - requested 4096"));
        let mut hc = HostConfig {
            blkio_weight: 5,
            ..Default::default()
        };
        assert_eq!(
            check(&mut hc, None).unwrap_err().to_string(),
            "Range of blkio weight is from 10 to 1000"
        );
        let mut hc = HostConfig {
            cgroup_parent: "a/../b".into(),
            ..Default::default()
        };
        assert!(check(&mut hc, None).is_err());
        let mut hc = HostConfig {
            device_cgroup_rules: Some(vec!["x 1:3 rwm".into()]),
            ..Default::default()
        };
        assert_eq!(
            check(&mut hc, None).unwrap_err().to_string(),
            "invalid device cgroup format 'x 1:3 rwm'"
        );
    }

    #[test]
    fn resources_translate_like_dockers_daemon() {
        let hc = HostConfig {
            memory: 64 << 20,
            memory_swap: 128 << 20,
            memory_reservation: 32 << 20,
            nano_cpus: 1_500_000_000,
            cpu_shares: 512,
            cpuset_cpus: "0".into(),
            pids_limit: Some(0),
            blkio_weight: 300,
            device_cgroup_rules: Some(vec!["c 1:3 rw".into(), "b *:* m".into()]),
            ..Default::default()
        };
        let dev = Device {
            path: "/dev/fuse".into(),
            kind: 'c',
            major: 10,
            minor: 229,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        let r = linux_resources(&hc, Some(&[dev])).unwrap();
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(r["memory"]["reservation"], 32 << 20);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["pids"]["limit"], -1);
        assert_eq!(r["blockIO"]["weight"], 300);
        let devices = r["devices"].as_array().unwrap();
        assert_eq!(devices[0], json!({"allow": false, "access": "rwm"}));
        assert_eq!(devices[1]["major"], 10);
        assert_eq!(devices[1]["access"], "rwm");
        assert_eq!(devices[2]["access"], "rw");
        assert!(devices[3].get("major").is_none());
        oci_resources(&hc, Some(&[])).unwrap();
        let privileged = HostConfig {
            privileged: true,
            ..Default::default()
        };
        let r = linux_resources(&privileged, Some(&[])).unwrap();
        assert_eq!(r["devices"], json!([{"allow": true, "access": "rwm"}]));
        assert!(linux_resources(&privileged, None)
            .unwrap()
            .get("devices")
            .is_none());
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_list("0-2,5"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_list("3-1"), None);
        assert_eq!(parse_list("a"), None);
    }
}
