//! The five capability sets of a container process.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};
use rustix::thread::{
    configure_capability_in_ambient_set, remove_capability_from_bounding_set, set_capabilities,
    CapabilitySet, CapabilitySets,
};

use crate::error::{IoContext, Result};

/// Capability names (without `CAP_`) and numbers, in the kernel's order.
pub const ALL: &[(&str, u32)] = &[
    ("CHOWN", 0),
    ("DAC_OVERRIDE", 1),
    ("DAC_READ_SEARCH", 2),
    ("FOWNER", 3),
    ("FSETID", 4),
    ("KILL", 5),
    ("SETGID", 6),
    ("SETUID", 7),
    ("SETPCAP", 8),
    ("LINUX_IMMUTABLE", 9),
    ("NET_BIND_SERVICE", 10),
    ("NET_BROADCAST", 11),
    ("NET_ADMIN", 12),
    ("NET_RAW", 13),
    ("IPC_LOCK", 14),
    ("IPC_OWNER", 15),
    ("SYS_MODULE", 16),
    ("SYS_RAWIO", 17),
    ("SYS_CHROOT", 18),
    ("SYS_PTRACE", 19),
    ("SYS_PACCT", 20),
    ("SYS_ADMIN", 21),
    ("SYS_BOOT", 22),
    ("SYS_NICE", 23),
    ("SYS_RESOURCE", 24),
    ("SYS_TIME", 25),
    ("SYS_TTY_CONFIG", 26),
    ("MKNOD", 27),
    ("LEASE", 28),
    ("AUDIT_WRITE", 29),
    ("AUDIT_CONTROL", 30),
    ("SETFCAP", 31),
    ("MAC_OVERRIDE", 32),
    ("MAC_ADMIN", 33),
    ("SYSLOG", 34),
    ("WAKE_ALARM", 35),
    ("BLOCK_SUSPEND", 36),
    ("AUDIT_READ", 37),
    ("PERFMON", 38),
    ("BPF", 39),
    ("CHECKPOINT_RESTORE", 40),
];

/// Highest capability number the running kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Number of a capability named in config.json.
pub fn number(cap: &Capability) -> Option<u32> {
    let name = cap.to_string();
    let name = name.strip_prefix("CAP_").unwrap_or(&name);
    ALL.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, number)| *number)
}

/// Parses a capability name as given on the command line (`CAP_NET_ADMIN`
/// or `NET_ADMIN`, any case).
pub fn parse(name: &str) -> Option<Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

fn set_of(caps: Option<&Capabilities>, last: u32) -> CapabilitySet {
    let mut set = CapabilitySet::empty();
    for cap in caps.into_iter().flatten() {
        match number(cap) {
            Some(n) if n <= last => set |= CapabilitySet::from_bits_retain(1 << n),
            // runc's behaviour: a capability this kernel lacks is skipped,
            // so one config runs on old and new kernels alike.
            _ => tracing::warn!("capability {cap} is unknown to this kernel: ignored"),
        }
    }
    set
}

/// The sets a config asks for, restricted to this kernel.
#[derive(Debug, Clone, Copy)]
pub struct CapabilityPlan {
    pub bounding: CapabilitySet,
    pub effective: CapabilitySet,
    pub permitted: CapabilitySet,
    pub inheritable: CapabilitySet,
    pub ambient: CapabilitySet,
    last: u32,
}

impl CapabilityPlan {
    pub fn new(caps: Option<&LinuxCapabilities>) -> CapabilityPlan {
        let last = last_cap();
        let get = |f: fn(&LinuxCapabilities) -> &Option<Capabilities>| {
            set_of(caps.and_then(|c| f(c).as_ref()), last)
        };
        CapabilityPlan {
            bounding: get(LinuxCapabilities::bounding),
            effective: get(LinuxCapabilities::effective),
            permitted: get(LinuxCapabilities::permitted),
            inheritable: get(LinuxCapabilities::inheritable),
            ambient: get(LinuxCapabilities::ambient),
            last,
        }
    }

    /// Drops from the bounding set what the config does not list. Needs
    /// CAP_SETPCAP, so it runs before the user switch.
    pub fn apply_bounding(&self) -> Result<()> {
        for n in 0..=self.last {
            let cap = CapabilitySet::from_bits_retain(1 << n);
            if !self.bounding.contains(cap) {
                remove_capability_from_bounding_set(cap)
                    .ctx(|| format!("drop capability {} from the bounding set", name(n)))?;
            }
        }
        Ok(())
    }

    /// Sets the effective, permitted and inheritable sets, then raises the
    /// ambient ones (which must be permitted and inheritable).
    pub fn apply_sets(&self) -> Result<()> {
        set_capabilities(
            None,
            CapabilitySets {
                effective: self.effective,
                permitted: self.permitted,
                inheritable: self.inheritable,
            },
        )
        .ctx(|| "set the capability sets of the container process".to_string())?;
        for n in 0..=self.last {
            let cap = CapabilitySet::from_bits_retain(1 << n);
            if self.ambient.contains(cap) {
                if !(self.permitted.contains(cap) && self.inheritable.contains(cap)) {
                    // The kernel refuses it; runc skips it too (runc's own
                    // default config lists ambient capabilities without
                    // inheritable ones).
                    tracing::debug!(
                        "ambient capability {} is not both permitted and inheritable: skipped",
                        name(n)
                    );
                    continue;
                }
                configure_capability_in_ambient_set(cap, true)
                    .ctx(|| format!("raise ambient capability {}", name(n)))?;
            }
        }
        Ok(())
    }
}

fn name(n: u32) -> String {
    ALL.iter()
        .find(|(_, number)| *number == n)
        .map(|(name, _)| format!("CAP_{name}"))
        .unwrap_or_else(|| format!("capability {n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_kernel() {
        assert_eq!(number(&Capability::Chown), Some(0));
        assert_eq!(number(&Capability::SysAdmin), Some(21));
        assert_eq!(number(&Capability::CheckpointRestore), Some(40));
        assert_eq!(parse("net_admin"), Some(Capability::NetAdmin));
        assert_eq!(parse("CAP_KILL"), Some(Capability::Kill));
        assert_eq!(parse("CAP_FLY"), None);
    }
}
