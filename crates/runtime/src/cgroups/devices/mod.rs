//! Device access control: `linux.resources.devices` rules, enforced by the
//! v1 devices controller or, on cgroup v2, by an eBPF program.

mod bpf;
mod ebpf;
pub(crate) mod emulator;
pub(crate) mod rules;
pub(crate) mod v1;
pub(crate) mod v2;

pub use rules::{container_device_rules, DEFAULT_ALLOWED};
pub use v2::attached_program_count;
