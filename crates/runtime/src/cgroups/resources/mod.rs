//! `linux.resources` → cgroup files: which controller each field needs,
//! whether the host has it, and the per-controller writers (each module has
//! the v1 and the v2 spelling of its controller side by side).

pub(crate) mod blkio;
pub(crate) mod cpu;
pub(crate) mod cpuset;
pub(crate) mod hugetlb;
pub(crate) mod memory;
pub(crate) mod network;
pub(crate) mod pids;
pub(crate) mod rdma;
pub(crate) mod unified;

use std::path::Path;

use oci_spec::runtime::LinuxResources;

pub use blkio::blkio_weight_to_io_weight;
pub use cpu::shares_to_weight;
pub use hugetlb::host_page_sizes;

use super::devices::{rules::rules_from_oci, v1 as devices_v1, v2 as devices_v2};
use super::{files, Cgroup, CgroupError};

/// A controller a set field needs: its v1 name, its v2 name (None: no v2
/// equivalent) and the field, for messages.
struct Need {
    v1: &'static str,
    v2: Option<&'static str>,
    field: &'static str,
}

fn needs(r: &LinuxResources) -> Vec<Need> {
    let mut out = Vec::new();
    let mut need = |v1, v2, field| out.push(Need { v1, v2, field });
    if r.memory().as_ref().is_some_and(memory::is_set) {
        need("memory", Some("memory"), "linux.resources.memory");
    }
    if r.cpu().as_ref().is_some_and(cpu::is_set) {
        need("cpu", Some("cpu"), "linux.resources.cpu");
    }
    if r.cpu().as_ref().is_some_and(cpuset::is_set) {
        need("cpuset", Some("cpuset"), "linux.resources.cpu.cpus/mems");
    }
    if r.pids().as_ref().is_some_and(pids::is_set) {
        need("pids", Some("pids"), "linux.resources.pids");
    }
    if r.block_io().as_ref().is_some_and(blkio::is_set) {
        need("blkio", Some("io"), "linux.resources.blockIO");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        need("hugetlb", Some("hugetlb"), "linux.resources.hugepageLimits");
    }
    if let Some(n) = r.network() {
        if network::class_id_set(n) {
            need("net_cls", None, "linux.resources.network.classID");
        }
        if network::priorities_set(n) {
            need("net_prio", None, "linux.resources.network.priorities");
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        need("rdma", Some("rdma"), "linux.resources.rdma");
    }
    out
}

/// Controllers that a cgroup at `dir` can have: those listed in the
/// `cgroup.controllers` of its nearest existing ancestor (itself included).
fn v2_available(dir: &Path, mount_point: &Path) -> Result<Vec<String>, CgroupError> {
    let mut probe = dir;
    loop {
        if let Some(text) = files::read_optional(probe, "cgroup.controllers")? {
            return Ok(text.split_whitespace().map(str::to_string).collect());
        }
        match probe.parent() {
            Some(parent) if probe != mount_point => probe = parent,
            _ => return Ok(Vec::new()),
        }
    }
}

pub(crate) fn check_host(cg: &Cgroup, r: &LinuxResources) -> Result<(), CgroupError> {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    if cg.is_unified() {
        let u = cg
            .unified
            .as_ref()
            .ok_or_else(|| CgroupError::Layout("no cgroup hierarchy".into()))?;
        let available = v2_available(&u.path, &u.mount_point)?;
        for n in needs(r) {
            let Some(v2) = n.v2 else {
                return Err(CgroupError::unsupported(
                    n.field,
                    format!("cgroup v2 has no {} controller", n.v1),
                ));
            };
            if !available.iter().any(|c| c == v2) {
                return Err(CgroupError::unsupported(
                    n.field,
                    format!(
                        "the {v2} controller is not available in {} (available: {})",
                        u.mount_point.display(),
                        list(&available)
                    ),
                ));
            }
        }
        if let Some(m) = r.memory() {
            memory::check_v2(m)?;
        }
        if let Some(c) = r.cpu() {
            cpu::check_v2(c)?;
        }
        return Ok(());
    }

    let mounted: Vec<String> = cg.v1.iter().flat_map(|d| d.controllers.clone()).collect();
    for n in needs(r) {
        if cg.controller_dir(n.v1).is_none() {
            let hint = match (&cg.unified, n.v2) {
                (Some(u), Some(v2)) => {
                    let in_v2 = v2_available(&u.mount_point, &u.mount_point)?;
                    if in_v2.iter().any(|c| c == v2) {
                        format!(
                            "; it is bound to the cgroup2 tree at {}, which quai uses only to track processes on a hybrid host",
                            u.mount_point.display()
                        )
                    } else {
                        String::new()
                    }
                }
                _ => String::new(),
            };
            return Err(CgroupError::unsupported(
                n.field,
                format!(
                    "the {} controller is not mounted (v1 hierarchies: {}){hint}",
                    n.v1,
                    list(&mounted)
                ),
            ));
        }
    }
    if r.devices().is_some() && cg.controller_dir("devices").is_none() && cg.unified.is_none() {
        return Err(CgroupError::unsupported(
            "linux.resources.devices",
            "neither the v1 devices controller nor a cgroup2 tree (for an eBPF filter) is mounted",
        ));
    }
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) && cg.unified.is_none() {
        return Err(CgroupError::unsupported(
            "linux.resources.unified",
            "this host has no cgroup2 tree (cgroup v1 only)",
        ));
    }
    Ok(())
}

fn dir<'a>(cg: &'a Cgroup, controller: &str, field: &str) -> Result<&'a Path, CgroupError> {
    cg.controller_dir(controller).ok_or_else(|| {
        CgroupError::unsupported(field, format!("the {controller} controller is not mounted"))
    })
}

/// On v2, a controller not enabled for the cgroup shows as missing files;
/// say which controller instead.
fn require_v2(dir: &Path, controller: &str, field: &str) -> Result<(), CgroupError> {
    let enabled = files::read(dir, "cgroup.controllers")?;
    if enabled.split_whitespace().any(|c| c == controller) {
        Ok(())
    } else {
        Err(CgroupError::unsupported(
            field,
            format!(
                "the {controller} controller is not enabled for {} (enabled: {}); the parent cgroup may hold processes of its own",
                dir.display(),
                enabled.trim()
            ),
        ))
    }
}

/// In user namespaces the v1 devices controller refuses every write, and the
/// restrictions of the owner of the namespace apply anyway: skip, as runc.
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

pub(crate) fn apply(cg: &Cgroup, r: &LinuxResources) -> Result<(), CgroupError> {
    if cg.is_unified() {
        apply_v2(cg, r)
    } else {
        apply_v1(cg, r)
    }
}

fn apply_v1(cg: &Cgroup, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(c) = r.cpu().as_ref().filter(|c| cpuset::is_set(c)) {
        cpuset::apply(dir(cg, "cpuset", "linux.resources.cpu.cpus")?, c)?;
    }
    if let Some(rules) = r.devices() {
        let rules = rules_from_oci(rules)?;
        if let Some(d) = cg.controller_dir("devices") {
            if in_user_namespace() {
                tracing::debug!("in a user namespace: device cgroup rules skipped");
            } else {
                devices_v1::apply(d, &rules)?;
            }
        } else if let Some(u) = cg.unified_dir() {
            devices_v2::apply(u, &rules)?;
        }
    }
    if let Some(m) = r.memory().as_ref().filter(|m| memory::is_set(m)) {
        memory::apply_v1(dir(cg, "memory", "linux.resources.memory")?, m)?;
    }
    if let Some(c) = r.cpu().as_ref().filter(|c| cpu::is_set(c)) {
        cpu::apply_v1(dir(cg, "cpu", "linux.resources.cpu")?, c)?;
    }
    if let Some(p) = r.pids().as_ref().filter(|p| pids::is_set(p)) {
        pids::apply(dir(cg, "pids", "linux.resources.pids")?, p)?;
    }
    if let Some(b) = r.block_io().as_ref().filter(|b| blkio::is_set(b)) {
        blkio::apply_v1(dir(cg, "blkio", "linux.resources.blockIO")?, b)?;
    }
    if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
        hugetlb::apply(
            dir(cg, "hugetlb", "linux.resources.hugepageLimits")?,
            h,
            false,
        )?;
    }
    if let Some(n) = r.network() {
        if network::class_id_set(n) {
            network::apply_class_id(dir(cg, "net_cls", "linux.resources.network.classID")?, n)?;
        }
        if network::priorities_set(n) {
            network::apply_priorities(
                dir(cg, "net_prio", "linux.resources.network.priorities")?,
                n,
            )?;
        }
    }
    if let Some(rd) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
        rdma::apply(dir(cg, "rdma", "linux.resources.rdma")?, rd)?;
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        let d = cg.unified_dir().ok_or_else(|| {
            CgroupError::unsupported("linux.resources.unified", "this host has no cgroup2 tree")
        })?;
        unified::apply(d, u)?;
    }
    Ok(())
}

fn apply_v2(cg: &Cgroup, r: &LinuxResources) -> Result<(), CgroupError> {
    let d = cg
        .unified_dir()
        .ok_or_else(|| CgroupError::Layout("no cgroup2 directory".into()))?;
    if let Some(p) = r.pids().as_ref().filter(|p| pids::is_set(p)) {
        require_v2(d, "pids", "linux.resources.pids")?;
        pids::apply(d, p)?;
    }
    if let Some(m) = r.memory().as_ref().filter(|m| memory::is_set(m)) {
        memory::check_v2(m)?;
        require_v2(d, "memory", "linux.resources.memory")?;
        memory::apply_v2(d, m)?;
    }
    if let Some(b) = r.block_io().as_ref().filter(|b| blkio::is_set(b)) {
        require_v2(d, "io", "linux.resources.blockIO")?;
        blkio::apply_v2(d, b)?;
    }
    if let Some(c) = r.cpu() {
        cpu::check_v2(c)?;
        if cpu::is_set(c) {
            require_v2(d, "cpu", "linux.resources.cpu")?;
            cpu::apply_v2(d, c)?;
        }
        if cpuset::is_set(c) {
            require_v2(d, "cpuset", "linux.resources.cpu.cpus/mems")?;
            cpuset::apply(d, c)?;
        }
    }
    if let Some(rules) = r.devices() {
        devices_v2::apply(d, &rules_from_oci(rules)?)?;
    }
    if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
        require_v2(d, "hugetlb", "linux.resources.hugepageLimits")?;
        hugetlb::apply(d, h, true)?;
    }
    if let Some(rd) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
        require_v2(d, "rdma", "linux.resources.rdma")?;
        rdma::apply(d, rd)?;
    }
    if let Some(n) = r.network() {
        if network::class_id_set(n) || network::priorities_set(n) {
            return Err(CgroupError::unsupported(
                "linux.resources.network",
                "cgroup v2 has no net_cls or net_prio controller",
            ));
        }
    }
    // Last, so that explicit file values override the converted ones.
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        unified::apply(d, u)?;
    }
    Ok(())
}
