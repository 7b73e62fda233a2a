//! Resource usage of a container's cgroup, with the field names and units of
//! the `data` object of runc's `events --stats` (nanoseconds for CPU time,
//! bytes for memory), so that tools that parse runc's output parse ours.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::resources::host_page_sizes;
use super::{files, Cgroup, CgroupError};

/// The kernel exports `cpuacct.stat` in USER_HZ ticks, which is 100 on every
/// architecture quai builds for.
const USER_HZ: u64 = 100;
const NANOS_PER_SEC: u64 = 1_000_000_000;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Intel RDT is not a cgroup; kept for the shape of runc's output.
    pub intel_rdt: IntelRdt,
    /// Filled by the caller that knows the network namespace, if any.
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntelRdt {}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(default, skip_serializing_if = "is_default")]
    pub usage: CpuUsage,
    #[serde(default, skip_serializing_if = "is_default")]
    pub throttling: Throttling,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub usage: MemoryEntry,
    #[serde(default, skip_serializing_if = "is_default")]
    pub swap: MemoryEntry,
    #[serde(default, skip_serializing_if = "is_default")]
    pub kernel: MemoryEntry,
    #[serde(default, skip_serializing_if = "is_default", rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Pressure stall information (`*.pressure` files of cgroup v2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    pub some: PsiData,
    pub full: PsiData,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PsiData {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

pub(crate) fn collect(cg: &Cgroup) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    if cg.is_unified() {
        if let Some(dir) = cg.unified_dir() {
            collect_v2(dir, &mut s)?;
        }
    } else {
        collect_v1(cg, &mut s)?;
        // A hybrid host's cgroup2 directory still has pressure files.
        if let Some(dir) = cg.unified_dir() {
            read_all_psi(dir, &mut s)?;
        }
    }
    Ok(s)
}

fn collect_v1(cg: &Cgroup, s: &mut Stats) -> Result<(), CgroupError> {
    if let Some(dir) = cg.controller_dir("cpuacct") {
        cpuacct_v1(dir, &mut s.cpu.usage)?;
    }
    if let Some(dir) = cg.controller_dir("cpu") {
        if let Some(stat) = files::read_flat_keyed(dir, "cpu.stat")? {
            let get = |k: &str| stat.get(k).copied().unwrap_or(0);
            s.cpu.throttling = Throttling {
                periods: get("nr_periods"),
                throttled_periods: get("nr_throttled"),
                throttled_time: get("throttled_time"),
            };
        }
    }
    if let Some(dir) = cg.controller_dir("cpuset") {
        cpuset_stats(dir, "cpuset.cpus", "cpuset.mems", &mut s.cpuset)?;
    }
    if let Some(dir) = cg.controller_dir("memory") {
        memory_v1(dir, &mut s.memory)?;
    }
    if let Some(dir) = cg.controller_dir("pids") {
        pids_stats(dir, &mut s.pids)?;
    }
    if let Some(dir) = cg.controller_dir("blkio") {
        blkio_v1(dir, &mut s.blkio)?;
    }
    if let Some(dir) = cg.controller_dir("hugetlb") {
        for size in host_page_sizes() {
            let usage = files::read_u64_optional(dir, &format!("hugetlb.{size}.usage_in_bytes"))?;
            if let Some(usage) = usage {
                s.hugetlb.insert(
                    size.clone(),
                    Hugetlb {
                        usage,
                        max: files::read_u64(dir, &format!("hugetlb.{size}.max_usage_in_bytes"))?,
                        failcnt: files::read_u64(dir, &format!("hugetlb.{size}.failcnt"))?,
                    },
                );
            }
        }
    }
    Ok(())
}

fn numbers(dir: &Path, file: &str, text: &str) -> Result<Vec<u64>, CgroupError> {
    text.split_whitespace()
        .map(|n| files::parse_u64(dir, file, n))
        .collect()
}

fn cpuacct_v1(dir: &Path, usage: &mut CpuUsage) -> Result<(), CgroupError> {
    usage.total = files::read_u64_optional(dir, "cpuacct.usage")?.unwrap_or(0);
    if let Some(text) = files::read_optional(dir, "cpuacct.usage_percpu")? {
        usage.percpu = numbers(dir, "cpuacct.usage_percpu", &text)?;
    }
    if let Some(stat) = files::read_flat_keyed(dir, "cpuacct.stat")? {
        let ns = |k: &str| stat.get(k).copied().unwrap_or(0) * (NANOS_PER_SEC / USER_HZ);
        usage.user = ns("user");
        usage.kernel = ns("system");
    }
    // "cpu user system" header, then one line per CPU.
    if let Some(text) = files::read_optional(dir, "cpuacct.usage_all")? {
        for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let fields = numbers(dir, "cpuacct.usage_all", line)?;
            if let [_, user, system] = fields[..] {
                usage.percpu_user.push(user);
                usage.percpu_kernel.push(system);
            }
        }
    }
    Ok(())
}

/// Parses a cpu list ("0-3,6") into its members.
fn cpu_list(dir: &Path, file: &str, text: &str) -> Result<Vec<u16>, CgroupError> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let bad = || CgroupError::Parse {
            path: dir.join(file),
            reason: format!("{part:?} is not a cpu or range"),
        };
        let (low, high) = match part.split_once('-') {
            Some((l, h)) => (
                l.parse::<u16>().map_err(|_| bad())?,
                h.parse::<u16>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<u16>().map_err(|_| bad())?;
                (n, n)
            }
        };
        out.extend(low..=high);
    }
    Ok(out)
}

fn cpuset_stats(
    dir: &Path,
    cpus_file: &str,
    mems_file: &str,
    c: &mut CpuSet,
) -> Result<(), CgroupError> {
    if let Some(t) = files::read_optional(dir, cpus_file)? {
        c.cpus = cpu_list(dir, cpus_file, &t)?;
    }
    if let Some(t) = files::read_optional(dir, mems_file)? {
        c.mems = cpu_list(dir, mems_file, &t)?;
    }
    let num = |f: &str| files::read_u64_optional(dir, f).map(Option::unwrap_or_default);
    c.cpu_exclusive = num("cpuset.cpu_exclusive")?;
    c.mem_hardwall = num("cpuset.mem_hardwall")?;
    c.mem_exclusive = num("cpuset.mem_exclusive")?;
    c.memory_migrate = num("cpuset.memory_migrate")?;
    c.memory_spread_page = num("cpuset.memory_spread_page")?;
    c.memory_spread_slab = num("cpuset.memory_spread_slab")?;
    c.memory_pressure = num("cpuset.memory_pressure")?;
    c.sched_load_balance = num("cpuset.sched_load_balance")?;
    if let Some(t) = files::read_optional(dir, "cpuset.sched_relax_domain_level")? {
        c.sched_relax_domain_level = t.trim().parse().map_err(|_| CgroupError::Parse {
            path: dir.join("cpuset.sched_relax_domain_level"),
            reason: format!("{:?} is not a number", t.trim()),
        })?;
    }
    Ok(())
}

fn memory_entry_v1(dir: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
    let Some(usage) = files::read_u64_optional(dir, &format!("{prefix}.usage_in_bytes"))? else {
        return Ok(MemoryEntry::default());
    };
    let num = |f: &str| {
        files::read_u64_optional(dir, &format!("{prefix}.{f}")).map(Option::unwrap_or_default)
    };
    Ok(MemoryEntry {
        usage,
        max: num("max_usage_in_bytes")?,
        failcnt: num("failcnt")?,
        limit: num("limit_in_bytes")?,
    })
}

fn memory_v1(dir: &Path, m: &mut Memory) -> Result<(), CgroupError> {
    m.raw = files::read_flat_keyed(dir, "memory.stat")?.unwrap_or_default();
    m.cache = m.raw.get("cache").copied().unwrap_or(0);
    m.usage = memory_entry_v1(dir, "memory")?;
    m.swap = memory_entry_v1(dir, "memory.memsw")?;
    m.kernel = memory_entry_v1(dir, "memory.kmem")?;
    m.kernel_tcp = memory_entry_v1(dir, "memory.kmem.tcp")?;
    Ok(())
}

fn pids_stats(dir: &Path, p: &mut Pids) -> Result<(), CgroupError> {
    p.current = files::read_u64_optional(dir, "pids.current")?.unwrap_or(0);
    p.limit = match files::read_u64_optional(dir, "pids.max")? {
        Some(u64::MAX) | None => 0,
        Some(n) => n,
    };
    Ok(())
}

/// Lines "MAJ:MIN Op value" (and a final "Total value").
fn blkio_entries(dir: &Path, file: &str) -> Result<Vec<BlkioEntry>, CgroupError> {
    let Some(text) = files::read_optional(dir, file)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (device, op, value) = match fields[..] {
            [device, op, value] => (device, op, value),
            [device, value] if device != "Total" => (device, "", value),
            _ => continue,
        };
        let bad = || CgroupError::Parse {
            path: dir.join(file),
            reason: format!("malformed line {line:?}"),
        };
        let (major, minor) = device.split_once(':').ok_or_else(bad)?;
        out.push(BlkioEntry {
            major: major.parse().map_err(|_| bad())?,
            minor: minor.parse().map_err(|_| bad())?,
            op: op.to_string(),
            value: value.parse().map_err(|_| bad())?,
        });
    }
    Ok(out)
}

fn blkio_v1(dir: &Path, b: &mut Blkio) -> Result<(), CgroupError> {
    // CFQ's files, else BFQ's, else the throttling layer's (always there).
    for prefix in ["blkio", "blkio.bfq", "blkio.throttle"] {
        let bytes = format!("{prefix}.io_service_bytes_recursive");
        if files::exists(dir, &bytes) {
            b.io_service_bytes_recursive = blkio_entries(dir, &bytes)?;
            b.io_serviced_recursive =
                blkio_entries(dir, &format!("{prefix}.io_serviced_recursive"))?;
            return Ok(());
        }
    }
    Ok(())
}

fn collect_v2(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    if let Some(stat) = files::read_flat_keyed(dir, "cpu.stat")? {
        let us = |k: &str| stat.get(k).copied().unwrap_or(0);
        s.cpu.usage.total = us("usage_usec") * 1000;
        s.cpu.usage.user = us("user_usec") * 1000;
        s.cpu.usage.kernel = us("system_usec") * 1000;
        s.cpu.throttling = Throttling {
            periods: us("nr_periods"),
            throttled_periods: us("nr_throttled"),
            throttled_time: us("throttled_usec") * 1000,
        };
    }
    cpuset_stats(
        dir,
        "cpuset.cpus.effective",
        "cpuset.mems.effective",
        &mut s.cpuset,
    )?;
    if let Some(raw) = files::read_flat_keyed(dir, "memory.stat")? {
        s.memory.cache = raw.get("file").copied().unwrap_or(0);
        s.memory.raw = raw;
        let num = |f: &str| files::read_u64_optional(dir, f).map(Option::unwrap_or_default);
        s.memory.usage = MemoryEntry {
            usage: num("memory.current")?,
            limit: num("memory.max")?,
            max: num("memory.peak")?,
            failcnt: 0,
        };
        if let Some(swap) = files::read_u64_optional(dir, "memory.swap.current")? {
            let swap_limit = num("memory.swap.max")?;
            // runc reports swap as memory+swap, like v1's memsw.
            s.memory.swap = MemoryEntry {
                usage: swap + s.memory.usage.usage,
                limit: if swap_limit == u64::MAX {
                    u64::MAX
                } else {
                    swap_limit.saturating_add(s.memory.usage.limit)
                },
                max: 0,
                failcnt: 0,
            };
        }
    }
    pids_stats(dir, &mut s.pids)?;
    if let Some(text) = files::read_optional(dir, "io.stat")? {
        io_stat_v2(dir, &text, &mut s.blkio)?;
    }
    for size in host_page_sizes() {
        let Some(usage) = files::read_u64_optional(dir, &format!("hugetlb.{size}.current"))? else {
            continue;
        };
        let events =
            files::read_flat_keyed(dir, &format!("hugetlb.{size}.events"))?.unwrap_or_default();
        s.hugetlb.insert(
            size,
            Hugetlb {
                usage,
                max: 0,
                failcnt: events.get("max").copied().unwrap_or(0),
            },
        );
    }
    read_all_psi(dir, s)
}

/// `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N` per line.
fn io_stat_v2(dir: &Path, text: &str, b: &mut Blkio) -> Result<(), CgroupError> {
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let bad = || CgroupError::Parse {
            path: dir.join("io.stat"),
            reason: format!("malformed line {line:?}"),
        };
        let major: u64 = major.parse().map_err(|_| bad())?;
        let minor: u64 = minor.parse().map_err(|_| bad())?;
        for kv in fields {
            let Some((key, value)) = kv.split_once('=') else {
                continue;
            };
            let (table, op) = match key {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue,
            };
            table.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value: value.parse().map_err(|_| bad())?,
            });
        }
    }
    Ok(())
}

fn read_all_psi(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    s.cpu.psi = psi(dir, "cpu.pressure")?;
    s.memory.psi = psi(dir, "memory.pressure")?;
    s.blkio.psi = psi(dir, "io.pressure")?;
    Ok(())
}

/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` / `full …`.
fn psi(dir: &Path, file: &str) -> Result<Option<Psi>, CgroupError> {
    // Reading pressure files fails with EOPNOTSUPP when PSI is disabled.
    let text = match std::fs::read_to_string(dir.join(file)) {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    let mut out = Psi::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let target = match fields.next() {
            Some("some") => &mut out.some,
            Some("full") => &mut out.full,
            _ => continue,
        };
        for kv in fields {
            let bad = || CgroupError::Parse {
                path: dir.join(file),
                reason: format!("malformed entry {kv:?}"),
            };
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            match k {
                "avg10" => target.avg10 = v.parse().map_err(|_| bad())?,
                "avg60" => target.avg60 = v.parse().map_err(|_| bad())?,
                "avg300" => target.avg300 = v.parse().map_err(|_| bad())?,
                "total" => target.total = v.parse().map_err(|_| bad())?,
                _ => {}
            }
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_io_stat_maps_to_runc_entries() {
        let mut b = Blkio::default();
        io_stat_v2(
            Path::new("/x"),
            "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
            &mut b,
        )
        .unwrap();
        assert_eq!(b.io_service_bytes_recursive.len(), 2);
        assert_eq!(b.io_service_bytes_recursive[1].op, "Write");
        assert_eq!(b.io_service_bytes_recursive[1].value, 8192);
        assert_eq!(b.io_serviced_recursive[0].major, 254);
    }

    #[test]
    fn cpu_lists_expand() {
        assert_eq!(
            cpu_list(Path::new("/x"), "f", "0-2,5\n").unwrap(),
            vec![0, 1, 2, 5]
        );
        assert!(cpu_list(Path::new("/x"), "f", "a").is_err());
    }

    #[test]
    fn json_uses_runc_field_names_and_omits_zeros() {
        let mut s = Stats::default();
        s.memory.kernel_tcp.limit = 5;
        s.cpu.throttling.throttled_periods = 2;
        s.pids.current = 3;
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["memory"]["kernelTCP"]["limit"], 5);
        assert_eq!(json["cpu"]["throttling"]["throttledPeriods"], 2);
        assert!(json["cpu"].get("usage").is_none());
        assert_eq!(json["pids"]["current"], 3);
        assert!(json["pids"].get("limit").is_none());
        assert!(json["intel_rdt"].is_object());
        assert!(json["network_interfaces"].is_null());
    }
}
