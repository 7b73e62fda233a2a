//! Device rules as the cgroup devices controller understands them, converted
//! from `linux.resources.devices`, and the rules every container gets.

use std::fmt;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use crate::cgroups::CgroupError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    /// `a`: every device of every kind (only as a whole-table rule).
    All,
    Block,
    Char,
}

impl DeviceKind {
    pub fn letter(self) -> char {
        match self {
            DeviceKind::All => 'a',
            DeviceKind::Block => 'b',
            DeviceKind::Char => 'c',
        }
    }
}

/// A set of `r` (read), `w` (write), `m` (mknod) permissions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Access(u8);

impl Access {
    pub const READ: Access = Access(1);
    pub const WRITE: Access = Access(2);
    pub const MKNOD: Access = Access(4);
    pub const ALL: Access = Access(7);
    pub const NONE: Access = Access(0);

    pub fn parse(text: &str) -> Option<Access> {
        let mut bits = 0;
        for c in text.chars() {
            bits |= match c {
                'r' => 1,
                'w' => 2,
                'm' => 4,
                _ => return None,
            };
        }
        (bits != 0).then_some(Access(bits))
    }

    pub fn bits(self) -> u8 {
        self.0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }
    pub fn intersection(self, other: Access) -> Access {
        Access(self.0 & other.0)
    }
    pub fn difference(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(1, 'r'), (2, 'w'), (4, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One allow or deny rule; `None` major/minor is the `*` wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl DeviceRule {
    /// The text written to `devices.allow` / `devices.deny`.
    pub fn cgroup_string(&self) -> String {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            self.access
        )
    }

    /// Converts the `index`-th rule of `linux.resources.devices`.
    pub fn from_oci(index: usize, rule: &LinuxDeviceCgroup) -> Result<DeviceRule, CgroupError> {
        let field = |name: &str| format!("linux.resources.devices[{index}].{name}");
        let kind = match rule.typ() {
            None | Some(LinuxDeviceType::A) => DeviceKind::All,
            Some(LinuxDeviceType::B) => DeviceKind::Block,
            Some(LinuxDeviceType::C) => DeviceKind::Char,
            Some(other) => {
                return Err(CgroupError::invalid(
                    field("type"),
                    format!(
                    "{:?} is not a device type the cgroup devices controller knows (use a, b or c)",
                    other.as_str()
                ),
                ))
            }
        };
        let number = |name: &str, n: Option<i64>| -> Result<Option<u32>, CgroupError> {
            match n {
                None | Some(-1) => Ok(None),
                Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                    CgroupError::invalid(
                        field(name),
                        format!("{n} is out of range (0 to {}, or -1 for any)", u32::MAX),
                    )
                }),
            }
        };
        let major = number("major", rule.major())?;
        let minor = number("minor", rule.minor())?;
        let access_text = rule.access().as_deref().unwrap_or("");
        let access = Access::parse(access_text).ok_or_else(|| {
            CgroupError::invalid(
                field("access"),
                format!("{access_text:?} must be a non-empty combination of r, w and m"),
            )
        })?;
        Ok(DeviceRule {
            allow: rule.allow(),
            kind,
            major,
            minor,
            access,
        })
    }
}

/// Converts every rule of `linux.resources.devices`, in order.
pub fn rules_from_oci(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>, CgroupError> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| DeviceRule::from_oci(i, r))
        .collect()
}

const fn allow_char(major: Option<u32>, minor: Option<u32>, access: Access) -> DeviceRule {
    DeviceRule {
        allow: true,
        kind: DeviceKind::Char,
        major,
        minor,
        access,
    }
}

/// Devices every container may use whatever its configuration says, the
/// same list as runc and Docker (so images behave the same): mknod of any
/// node, the standard character devices, ptys and `/dev/net/tun`. The path is
/// the node the rule exists for; a `linux.devices` entry with that path
/// replaces the default.
pub const DEFAULT_ALLOWED: &[(Option<&str>, DeviceRule)] = &[
    (None, allow_char(None, None, Access::MKNOD)),
    (
        None,
        DeviceRule {
            allow: true,
            kind: DeviceKind::Block,
            major: None,
            minor: None,
            access: Access::MKNOD,
        },
    ),
    (Some("/dev/null"), allow_char(Some(1), Some(3), Access::ALL)),
    (
        Some("/dev/random"),
        allow_char(Some(1), Some(8), Access::ALL),
    ),
    (Some("/dev/full"), allow_char(Some(1), Some(7), Access::ALL)),
    (Some("/dev/tty"), allow_char(Some(5), Some(0), Access::ALL)),
    (Some("/dev/zero"), allow_char(Some(1), Some(5), Access::ALL)),
    (
        Some("/dev/urandom"),
        allow_char(Some(1), Some(9), Access::ALL),
    ),
    (None, allow_char(Some(136), None, Access::ALL)),
    (None, allow_char(Some(5), Some(2), Access::ALL)),
    (None, allow_char(Some(10), Some(200), Access::ALL)),
];

/// The device rules a container's cgroup gets at creation: its own
/// `linux.resources.devices`, then the defaults (minus those whose node
/// `linux.devices` redefines), as runc does.
pub fn container_device_rules(
    configured: &[LinuxDeviceCgroup],
    linux_devices: &[LinuxDevice],
) -> Vec<LinuxDeviceCgroup> {
    let mut out = configured.to_vec();
    for (path, rule) in DEFAULT_ALLOWED {
        if let Some(p) = path {
            if linux_devices.iter().any(|d| d.path().as_os_str() == *p) {
                continue;
            }
        }
        let mut oci = LinuxDeviceCgroup::default();
        oci.set_allow(rule.allow);
        oci.set_typ(Some(match rule.kind {
            DeviceKind::All => LinuxDeviceType::A,
            DeviceKind::Block => LinuxDeviceType::B,
            DeviceKind::Char => LinuxDeviceType::C,
        }));
        oci.set_major(rule.major.map(i64::from));
        oci.set_minor(rule.minor.map(i64::from));
        oci.set_access(Some(rule.access.to_string()));
        out.push(oci);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oci(json: &str) -> LinuxDeviceCgroup {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn oci_rules_convert_with_wildcards() {
        let r = DeviceRule::from_oci(0, &oci(r#"{"allow":false,"access":"rwm"}"#)).unwrap();
        assert_eq!(r.cgroup_string(), "a *:* rwm");
        let r = DeviceRule::from_oci(
            0,
            &oci(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"wr"}"#),
        )
        .unwrap();
        assert_eq!(r.cgroup_string(), "c 1:3 rw");
        let r = DeviceRule::from_oci(
            0,
            &oci(r#"{"allow":true,"type":"b","major":8,"minor":-1,"access":"m"}"#),
        )
        .unwrap();
        assert_eq!(r.cgroup_string(), "b 8:* m");
    }

    #[test]
    fn bad_rules_name_the_field() {
        let err =
            DeviceRule::from_oci(2, &oci(r#"{"allow":true,"type":"p","access":"r"}"#)).unwrap_err();
        assert!(err.to_string().contains("devices[2].type"), "{err}");
        let err = DeviceRule::from_oci(1, &oci(r#"{"allow":true,"type":"c","access":"rx"}"#))
            .unwrap_err();
        assert!(err.to_string().contains("devices[1].access"), "{err}");
        let err = DeviceRule::from_oci(0, &oci(r#"{"allow":true,"type":"c"}"#)).unwrap_err();
        assert!(err.to_string().contains("access"), "{err}");
        let err = DeviceRule::from_oci(
            0,
            &oci(r#"{"allow":true,"type":"c","major":-4,"access":"r"}"#),
        )
        .unwrap_err();
        assert!(err.to_string().contains("devices[0].major"), "{err}");
    }

    #[test]
    fn defaults_follow_configured_rules_and_yield_to_linux_devices() {
        let configured = vec![oci(r#"{"allow":false,"access":"rwm"}"#)];
        let null: LinuxDevice =
            serde_json::from_str(r#"{"path":"/dev/null","type":"c","major":1,"minor":3}"#).unwrap();
        let all = container_device_rules(&configured, &[]);
        assert_eq!(all.len(), 1 + DEFAULT_ALLOWED.len());
        assert!(!all[0].allow());
        let without_null = container_device_rules(&configured, &[null]);
        assert_eq!(without_null.len(), all.len() - 1);
        assert!(!without_null
            .iter()
            .any(|r| r.major() == Some(1) && r.minor() == Some(3)));
    }
}
