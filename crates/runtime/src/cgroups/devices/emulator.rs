//! A model of the v1 devices controller's table. It serves three purposes:
//!
//! * computing the smallest set of writes that takes a live cgroup from its
//!   current table to the requested one, so that an `update` never leaves a
//!   running container without access to a device it keeps (writing
//!   `a *:* rwm` to `devices.deny` first, as a naive runtime would, cuts
//!   `/dev/null` off for a moment);
//! * refusing rules v1 would silently ignore (removing part of a wildcard);
//! * giving the eBPF program of cgroup v2 exactly v1's semantics.
//!
//! The kernel's table is either a deny-list (default allow, listed
//! exceptions denied) or an allow-list (default deny, listed exceptions
//! allowed); an `a` rule resets it to one of the two.

use std::collections::BTreeMap;

use super::rules::{Access, DeviceKind, DeviceRule};
use crate::cgroups::CgroupError;

/// The match part of a rule: (major, minor, kind); `None` is `*`. The key
/// order sorts rules by major, minor, kind, which keeps writes deterministic.
type Key = (Option<u32>, Option<u32>, DeviceKind);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Emulator {
    default_allow: bool,
    exceptions: BTreeMap<Key, Access>,
}

impl Emulator {
    /// An allow-list with no exceptions: nothing is accessible.
    pub fn deny_all() -> Emulator {
        Emulator::default()
    }

    /// The table that results from applying `rules` in order to a deny-all
    /// table (the state runc and the OCI spec assume before the rules).
    pub fn from_rules(rules: &[DeviceRule]) -> Result<Emulator, CgroupError> {
        let mut emu = Emulator::deny_all();
        for rule in rules {
            emu.apply(rule)?;
        }
        Ok(emu)
    }

    /// Reads the kernel's `devices.list`, which lists what is allowed: an
    /// `a *:* rwm` line means a deny-list table, whose deny exceptions the
    /// kernel does not show.
    pub fn from_list(list: &str) -> Result<Emulator, String> {
        let mut emu = Emulator::deny_all();
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let rule = parse_list_line(line)?;
            emu.apply(&rule).map_err(|e| e.to_string())?;
        }
        Ok(emu)
    }

    pub fn is_deny_list(&self) -> bool {
        self.default_allow
    }

    pub fn apply(&mut self, rule: &DeviceRule) -> Result<(), CgroupError> {
        if rule.kind == DeviceKind::All {
            *self = Emulator {
                default_allow: rule.allow,
                exceptions: BTreeMap::new(),
            };
            return Ok(());
        }
        let key = (rule.major, rule.minor, rule.kind);
        // In a deny-list, allow rules remove exceptions; in an allow-list,
        // deny rules do.
        if rule.allow == self.default_allow {
            self.remove(key, rule)
        } else {
            let entry = self.exceptions.entry(key).or_default();
            *entry = entry.union(rule.access);
            Ok(())
        }
    }

    fn remove(&mut self, key: Key, rule: &DeviceRule) -> Result<(), CgroupError> {
        let (major, minor, kind) = key;
        // v1 ignores a request to remove part of a wildcard exception ("deny
        // c 1:3" inside "allow c 1:*"): refuse it rather than let the user
        // believe the device is blocked.
        for wider in [(None, minor, kind), (major, None, kind), (None, None, kind)] {
            if wider == key {
                continue;
            }
            if let Some(perms) = self.exceptions.get(&wider) {
                if !perms.intersection(rule.access).is_empty() {
                    return Err(CgroupError::invalid(
                        "linux.resources.devices",
                        format!(
                            "rule \"{}\" ({}) punches a hole in the wider rule \"{}\", which the devices cgroup cannot express",
                            rule.cgroup_string(),
                            if rule.allow { "allow" } else { "deny" },
                            DeviceRule {
                                allow: !rule.allow,
                                kind,
                                major: wider.0,
                                minor: wider.1,
                                access: *perms,
                            }
                            .cgroup_string()
                        ),
                    ));
                }
            }
        }
        if let Some(perms) = self.exceptions.get_mut(&key) {
            *perms = perms.difference(rule.access);
            if perms.is_empty() {
                self.exceptions.remove(&key);
            }
        }
        Ok(())
    }

    /// The rules to write, in order, to take a cgroup whose table is `self`
    /// to `target` with as little disruption as possible.
    pub fn transition(&self, target: &Emulator) -> Vec<DeviceRule> {
        let mut out = Vec::new();
        let mut old = &self.exceptions;
        let empty = BTreeMap::new();
        // A change of default needs a reset rule. A deny-list's exceptions
        // are invisible in devices.list, so one is reset too.
        if self.default_allow || self.default_allow != target.default_allow {
            out.push(DeviceRule {
                allow: target.default_allow,
                kind: DeviceKind::All,
                major: None,
                minor: None,
                access: Access::ALL,
            });
            old = &empty;
        }
        let rule = |key: &Key, access: Access, allow: bool| DeviceRule {
            allow,
            kind: key.2,
            major: key.0,
            minor: key.1,
            access,
        };
        // First take away what the target no longer has…
        for (key, perms) in old {
            let dropped = perms.difference(target.exceptions.get(key).copied().unwrap_or_default());
            if !dropped.is_empty() {
                out.push(rule(key, dropped, target.default_allow));
            }
        }
        // …then add what it gains.
        for (key, perms) in &target.exceptions {
            let gained = perms.difference(old.get(key).copied().unwrap_or_default());
            if !gained.is_empty() {
                out.push(rule(key, gained, !target.default_allow));
            }
        }
        out
    }

    /// The minimal rules that, applied to a deny-all table, produce `self`:
    /// an optional leading `a` rule, then exceptions. The eBPF program is
    /// generated from these.
    pub fn minimal_rules(&self) -> Vec<DeviceRule> {
        Emulator::deny_all().transition(self)
    }
}

fn parse_list_line(line: &str) -> Result<DeviceRule, String> {
    let bad = || format!("malformed devices.list line {line:?}");
    let mut fields = line.split_whitespace();
    let (Some(kind), Some(numbers), Some(access), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad());
    };
    let kind = match kind {
        "a" => DeviceKind::All,
        "b" => DeviceKind::Block,
        "c" => DeviceKind::Char,
        _ => return Err(bad()),
    };
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |s: &str| -> Result<Option<u32>, String> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| bad())
        }
    };
    Ok(DeviceRule {
        allow: true,
        kind,
        major: number(major)?,
        minor: number(minor)?,
        access: Access::parse(access).ok_or_else(bad)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str, allow: bool) -> DeviceRule {
        let mut r = parse_list_line(s).unwrap();
        r.allow = allow;
        r
    }

    fn strings(rules: &[DeviceRule]) -> Vec<String> {
        rules
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    if r.allow { "allow" } else { "deny" },
                    r.cgroup_string()
                )
            })
            .collect()
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let emu = Emulator::from_rules(&[
            rule("a *:* rwm", false),
            rule("c 1:3 rwm", true),
            rule("c 1:3 w", false),
        ])
        .unwrap();
        assert!(!emu.is_deny_list());
        assert_eq!(strings(&emu.minimal_rules()), vec!["allow c 1:3 rm"]);
    }

    #[test]
    fn reset_to_allow_all_forgets_exceptions() {
        let emu =
            Emulator::from_rules(&[rule("c 1:3 rwm", true), rule("a *:* rwm", true)]).unwrap();
        assert!(emu.is_deny_list());
        assert_eq!(strings(&emu.minimal_rules()), vec!["allow a *:* rwm"]);
    }

    #[test]
    fn hole_in_a_wildcard_is_refused() {
        let err = Emulator::from_rules(&[rule("c 136:* rwm", true), rule("c 136:3 r", false)])
            .unwrap_err();
        assert!(err.to_string().contains("hole"), "{err}");
        // Same rule on disjoint permissions is fine.
        Emulator::from_rules(&[rule("c 136:* r", true), rule("c 136:3 w", false)]).unwrap();
    }

    #[test]
    fn update_of_an_allow_list_never_resets_the_table() {
        let current = Emulator::from_list("c 1:3 rwm\nc 1:5 rwm\nc 136:* rw\n").unwrap();
        let target = Emulator::from_rules(&[
            rule("a *:* rwm", false),
            rule("c 1:3 rwm", true),
            rule("c 136:* rwm", true),
            rule("b 8:0 r", true),
        ])
        .unwrap();
        let steps = strings(&current.transition(&target));
        assert_eq!(
            steps,
            vec!["deny c 1:5 rwm", "allow b 8:0 r", "allow c 136:* m"]
        );
        let mut applied = current.clone();
        for r in current.transition(&target) {
            applied.apply(&r).unwrap();
        }
        assert_eq!(applied, target);
    }

    #[test]
    fn deny_list_source_is_reset_first() {
        let current = Emulator::from_list("a *:* rwm\n").unwrap();
        assert!(current.is_deny_list());
        let target =
            Emulator::from_rules(&[rule("a *:* rwm", false), rule("c 1:3 rwm", true)]).unwrap();
        assert_eq!(
            strings(&current.transition(&target)),
            vec!["deny a *:* rwm", "allow c 1:3 rwm"]
        );
    }

    #[test]
    fn malformed_list_lines_are_errors() {
        assert!(Emulator::from_list("x 1:3 rwm").is_err());
        assert!(Emulator::from_list("c 1-3 rwm").is_err());
        assert!(Emulator::from_list("c 1:3").is_err());
        assert!(Emulator::from_list("c 1:3 rwz").is_err());
    }
}
