//! `linux.resources.network` → v1 `net_cls.classid` and
//! `net_prio.ifpriomap`. cgroup v2 has neither (classification there is done
//! with eBPF on the socket's cgroup), so the request is refused on v2.

use std::path::Path;

use oci_spec::runtime::LinuxNetwork;

use crate::cgroups::{files, CgroupError};

pub(crate) fn class_id_set(n: &LinuxNetwork) -> bool {
    n.class_id().is_some()
}

pub(crate) fn priorities_set(n: &LinuxNetwork) -> bool {
    n.priorities().as_ref().is_some_and(|p| !p.is_empty())
}

pub(crate) fn apply_class_id(dir: &Path, n: &LinuxNetwork) -> Result<(), CgroupError> {
    match n.class_id() {
        Some(id) => files::write(dir, "net_cls.classid", &id.to_string()),
        None => Ok(()),
    }
}

pub(crate) fn apply_priorities(dir: &Path, n: &LinuxNetwork) -> Result<(), CgroupError> {
    for p in n.priorities().as_deref().unwrap_or(&[]) {
        files::write(
            dir,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}
