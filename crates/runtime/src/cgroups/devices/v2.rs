//! Device rules on cgroup v2: the eBPF filter is loaded and attached to the
//! container's cgroup directory, replacing the one a previous `apply`
//! attached without a moment where no filter applies.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use super::emulator::Emulator;
use super::rules::DeviceRule;
use super::{bpf, ebpf};
use crate::cgroups::CgroupError;

pub(crate) fn apply(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let err = |op: &'static str| {
        move |source| CgroupError::Bpf {
            path: dir.to_path_buf(),
            op,
            source,
        }
    };
    let emu = Emulator::from_rules(rules)?;
    let program = ebpf::device_filter(&emu);
    let cgroup = File::open(dir).map_err(err("open cgroup directory"))?;
    let prog = bpf::load_device_program(&program).map_err(err("BPF_PROG_LOAD"))?;

    let old_ids = bpf::attached_device_programs(cgroup.as_fd()).map_err(err("BPF_PROG_QUERY"))?;
    let mut old = Vec::with_capacity(old_ids.len());
    for id in old_ids {
        match bpf::program_by_id(id) {
            Ok(fd) => old.push(fd),
            // A program someone else attached and an LSM hides from us can
            // only restrict further; leave it.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {}
            Err(e) => return Err(err("BPF_PROG_GET_FD_BY_ID")(e)),
        }
    }

    if let [only] = old.as_slice() {
        match bpf::attach_device_program(cgroup.as_fd(), prog.as_fd(), Some(only.as_fd())) {
            Ok(()) => return Ok(()),
            // Kernels before 5.6 lack BPF_F_REPLACE: attach, then detach.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(err("BPF_PROG_ATTACH (replace)")(e)),
        }
    }
    bpf::attach_device_program(cgroup.as_fd(), prog.as_fd(), None)
        .map_err(err("BPF_PROG_ATTACH"))?;
    for fd in &old {
        bpf::detach_device_program(cgroup.as_fd(), fd.as_fd()).map_err(err("BPF_PROG_DETACH"))?;
    }
    Ok(())
}

/// How many device programs are attached to the cgroup at `dir` (tests and
/// diagnostics).
pub fn attached_program_count(dir: &Path) -> Result<usize, CgroupError> {
    let err = |op: &'static str| {
        move |source| CgroupError::Bpf {
            path: dir.to_path_buf(),
            op,
            source,
        }
    };
    let cgroup = File::open(dir).map_err(err("open cgroup directory"))?;
    Ok(bpf::attached_device_programs(cgroup.as_fd())
        .map_err(err("BPF_PROG_QUERY"))?
        .len())
}
