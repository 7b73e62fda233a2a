//! What the engine does to a running container's cgroup: `pause` and
//! `unpause` (the freezer), `update` (limits applied live and recorded),
//! and `stats` (usage counters in docker's terms).

use std::fs;

use quai_runtime::Runtime;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::record::{self, Container, Status};
use crate::types::{HostConfig, RestartPolicy};

/// `docker update`'s flags: only what is `Some` (or non-zero) changes.
#[derive(Debug, Clone, Default)]
pub struct ResourceUpdate {
    pub memory: i64,
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: u16,
    pub restart_policy: Option<RestartPolicy>,
}

impl ResourceUpdate {
    /// Whether any flag other than the restart policy is given.
    pub fn changes_resources(&self) -> bool {
        self.memory != 0
            || self.memory_swap != 0
            || self.memory_reservation != 0
            || self.nano_cpus != 0
            || self.cpu_shares != 0
            || self.cpu_period != 0
            || self.cpu_quota != 0
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
            || self.pids_limit.is_some()
            || self.blkio_weight != 0
    }

    /// docker's merge of an update into a container's HostConfig
    /// (moby's `UpdateContainer`), with its conflict messages.
    pub fn merge_into(&self, hc: &mut HostConfig) -> Result<()> {
        let conflict = |m: &str| Err(EngineError::conflict(m.to_string()));
        if self.nano_cpus > 0 && hc.cpu_period > 0 {
            return conflict(
                "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
            );
        }
        if self.nano_cpus > 0 && hc.cpu_quota > 0 {
            return conflict(
                "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set",
            );
        }
        if self.cpu_period > 0 && hc.nano_cpus > 0 {
            return conflict(
                "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set",
            );
        }
        if self.cpu_quota > 0 && hc.nano_cpus > 0 {
            return conflict(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
            );
        }
        if self.blkio_weight != 0 {
            hc.blkio_weight = self.blkio_weight;
        }
        if self.cpu_shares != 0 {
            hc.cpu_shares = self.cpu_shares;
        }
        if self.nano_cpus != 0 {
            hc.nano_cpus = self.nano_cpus;
        }
        if self.cpu_period != 0 {
            hc.cpu_period = self.cpu_period;
        }
        if self.cpu_quota != 0 {
            hc.cpu_quota = self.cpu_quota;
        }
        if let Some(c) = &self.cpuset_cpus {
            hc.cpuset_cpus = c.clone();
        }
        if let Some(m) = &self.cpuset_mems {
            hc.cpuset_mems = m.clone();
        }
        if self.memory != 0 {
            if hc.memory_swap > 0 && self.memory > hc.memory_swap && self.memory_swap == 0 {
                return conflict("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time");
            }
            hc.memory = self.memory;
        }
        if self.memory_swap != 0 {
            hc.memory_swap = self.memory_swap;
        }
        if self.memory_reservation != 0 {
            hc.memory_reservation = self.memory_reservation;
        }
        if let Some(p) = self.pids_limit {
            hc.pids_limit = Some(p);
        }
        if let Some(policy) = &self.restart_policy {
            if hc.auto_remove && !matches!(policy.name.as_str(), "" | "no") {
                return Err(EngineError::invalid(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container",
                ));
            }
            hc.restart_policy = policy.clone();
        }
        Ok(())
    }
}

/// A container's usage at one moment, in docker's terms (`docker stats`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// CPU time of the container, nanoseconds.
    pub cpu_total: u64,
    /// CPU time of the whole host (busy and idle), nanoseconds.
    pub system_cpu: u64,
    pub online_cpus: u32,
    /// Memory in use without the inactive file cache (docker's figure).
    pub memory: u64,
    /// The limit, or the host's memory when there is none.
    pub memory_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

/// The host's CPU time (busy and idle) from `/proc/stat`, nanoseconds.
pub fn system_cpu_nanos() -> u64 {
    let ticks: u64 = fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("cpu ")).map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(8)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum()
            })
        })
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux architecture quai builds for.
    ticks * (1_000_000_000 / 100)
}

/// Received and sent bytes of the interfaces (but `lo`) in the network
/// namespace of process `pid`.
fn network_bytes(pid: i32) -> (u64, u64) {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return (0, 0);
    };
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if fields.len() >= 9 {
            rx += fields[0];
            tx += fields[8];
        }
    }
    (rx, tx)
}

/// docker's usage figures from the runtime's cgroup stats.
pub fn usage_from(stats: &quai_runtime::cgroups::Stats, host_memory: u64) -> Usage {
    let raw = &stats.memory.raw;
    let inactive = raw
        .get("total_inactive_file")
        .or_else(|| raw.get("inactive_file"))
        .copied()
        .unwrap_or(0);
    let usage = stats.memory.usage.usage;
    let memory = if inactive < usage {
        usage - inactive
    } else {
        usage
    };
    let limit = match stats.memory.usage.limit {
        0 => host_memory,
        l => l.min(host_memory),
    };
    let mut block_read = 0;
    let mut block_write = 0;
    for e in &stats.blkio.io_service_bytes_recursive {
        match e.op.to_ascii_lowercase().as_str() {
            "read" => block_read += e.value,
            "write" => block_write += e.value,
            _ => {}
        }
    }
    Usage {
        cpu_total: stats.cpu.usage.total,
        system_cpu: system_cpu_nanos(),
        online_cpus: crate::resources::online_cpus() as u32,
        memory,
        memory_limit: limit,
        net_rx: 0,
        net_tx: 0,
        block_read,
        block_write,
        pids: stats.pids.current,
    }
}

impl Engine {
    fn running(&mut self, name_or_id: &str) -> Result<(crate::lock::ContainerLock, Container)> {
        let (lock, c) = self.locked(name_or_id)?;
        if !(c.state.status.is_active() && c.monitor_alive()) {
            return Err(EngineError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        Ok((lock, c))
    }

    fn runtime(&self) -> Result<Runtime> {
        Ok(Runtime::new(&self.paths.runtime_root())?)
    }

    /// Freezes every process of the container (docker pause).
    pub fn pause(&mut self, name_or_id: &str) -> Result<()> {
        let (_lock, c) = self.running(name_or_id)?;
        match c.state.status {
            Status::Paused => {
                return Err(EngineError::conflict(format!(
                    "Container {} is already paused",
                    c.id
                )))
            }
            Status::Restarting => {
                return Err(EngineError::conflict(format!(
                    "Container {} is restarting, wait until the container is running",
                    c.id
                )))
            }
            _ => {}
        }
        self.runtime()?.pause(&c.id)?;
        self.set_status(&c, Status::Paused, "pause")
    }

    /// Thaws a paused container (docker unpause).
    pub fn unpause(&mut self, name_or_id: &str) -> Result<()> {
        let (_lock, c) = self.locked(name_or_id)?;
        if c.state.status != Status::Paused {
            return Err(EngineError::conflict(format!(
                "Container {} is not paused",
                c.id
            )));
        }
        self.runtime()?.resume(&c.id)?;
        self.set_status(&c, Status::Running, "unpause")
    }

    pub(crate) fn set_status(&mut self, c: &Container, status: Status, event: &str) -> Result<()> {
        let tx = self.store.db().write()?;
        tx.execute(
            "UPDATE containers SET status = ?2 WHERE id = ?1 AND status IN ('running', 'paused')",
            (&c.id, status.as_str()),
        )?;
        record::container_event(&tx, c, event)?;
        tx.commit()?;
        Ok(())
    }

    /// docker update: the new values are checked with docker's rules,
    /// applied to the running container's cgroup, and recorded for later
    /// starts. Returns docker's warnings.
    pub fn update(&mut self, name_or_id: &str, upd: &ResourceUpdate) -> Result<Vec<String>> {
        let (_lock, c) = self.locked(name_or_id)?;
        let mut hc = c.def.host_config.clone();
        upd.merge_into(&mut hc)?;
        let warnings = crate::create::check_host_config(&mut hc)?;
        let live = c.state.status.is_active() && c.monitor_alive();
        if live && upd.changes_resources() {
            let patch = crate::resources::oci_resources(&hc, None)?;
            self.runtime()?.update(&c.id, &patch).map_err(|e| {
                EngineError::invalid(format!("Cannot update container {}: {e}", c.id))
            })?;
        }
        let mut def = c.def.clone();
        def.host_config = hc;
        let tx = self.store.db().write()?;
        record::save_definition(&tx, &c.id, &def)?;
        record::container_event(&tx, &c, "update")?;
        tx.commit()?;
        Ok(warnings)
    }

    /// The container's usage now (docker stats); `None` when it is not
    /// running.
    pub fn usage(&mut self, c: &Container) -> Result<Option<Usage>> {
        if !(c.state.status.is_active() && c.monitor_alive()) || c.state.pid == 0 {
            return Ok(None);
        }
        let stats = match self.runtime()?.stats(&c.id) {
            Ok(s) => s,
            // Exited (or was removed) since the row was read.
            Err(quai_runtime::RuntimeError::NotFound(_))
            | Err(quai_runtime::RuntimeError::WrongState { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut usage = usage_from(&stats, crate::resources::host_memory());
        if c.def.host_config.network_mode != "host" {
            (usage.net_rx, usage.net_tx) = network_bytes(c.state.pid);
        }
        Ok(Some(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_merge_like_dockers() {
        let mut hc = HostConfig {
            memory: 64 << 20,
            memory_swap: 128 << 20,
            nano_cpus: 1_000_000_000,
            ..Default::default()
        };
        let upd = ResourceUpdate {
            memory: 256 << 20,
            ..Default::default()
        };
        assert!(upd
            .merge_into(&mut hc.clone())
            .unwrap_err()
            .to_string()
            .contains("smaller than already set memoryswap"));
        let upd = ResourceUpdate {
            cpu_quota: 50_000,
            ..Default::default()
        };
        assert!(upd.merge_into(&mut hc.clone()).is_err());
        let upd = ResourceUpdate {
            memory: 96 << 20,
            pids_limit: Some(10),
            cpuset_cpus: Some("0".into()),
            ..Default::default()
        };
        assert!(upd.changes_resources());
        upd.merge_into(&mut hc).unwrap();
        assert_eq!(hc.memory, 96 << 20);
        assert_eq!(hc.memory_swap, 128 << 20);
        assert_eq!(hc.pids_limit, Some(10));
        assert_eq!(hc.cpuset_cpus, "0");
        let policy_only = ResourceUpdate {
            restart_policy: Some(RestartPolicy {
                name: "always".into(),
                maximum_retry_count: 0,
            }),
            ..Default::default()
        };
        assert!(!policy_only.changes_resources());
        hc.auto_remove = true;
        assert!(policy_only.merge_into(&mut hc).is_err());
    }

    #[test]
    fn usage_subtracts_inactive_file_and_caps_the_limit() {
        let mut s = quai_runtime::cgroups::Stats::default();
        s.memory.usage.usage = 10 << 20;
        s.memory.usage.limit = u64::MAX / 2;
        s.memory.raw.insert("total_inactive_file".into(), 4 << 20);
        s.pids.current = 3;
        let u = usage_from(&s, 1 << 30);
        assert_eq!(u.memory, 6 << 20);
        assert_eq!(u.memory_limit, 1 << 30);
        assert_eq!(u.pids, 3);
    }
}
