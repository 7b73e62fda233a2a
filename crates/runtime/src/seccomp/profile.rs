//! Checks an OCI seccomp section and turns it into plain rules: one per
//! syscall name, with the kernel's return value for its action and its
//! argument conditions, following runc's reading of the spec where the spec
//! leaves room.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::arch::{ArchSpec, SyscallId};
use super::SeccompError;

/// seccomp return values (linux/seccomp.h). The low 16 bits carry data.
pub(super) const RET_KILL_THREAD: u32 = 0x0000_0000;
pub(super) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(super) const RET_TRAP: u32 = 0x0003_0000;
pub(super) const RET_ERRNO: u32 = 0x0005_0000;
pub(super) const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub(super) const RET_TRACE: u32 = 0x7ff0_0000;
pub(super) const RET_LOG: u32 = 0x7ffc_0000;
pub(super) const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ACTION_FULL: u32 = 0xffff_0000;

/// Syscalls the runtime's init makes between installing the filter and
/// handing the notification fd over; routing them to a supervisor that does
/// not have the fd yet would hang the container's start (runc refuses
/// `write` for the same reason).
const NOTIFY_REFUSED: &[&str] = &["write", "sendmsg"];

/// Linux syscalls take at most six arguments.
const MAX_ARGS: usize = 6;

/// The action part of a seccomp return value (errno/trace data stripped).
pub(super) fn action_of(ret: u32) -> u32 {
    if ret & RET_ACTION_FULL == RET_KILL_PROCESS {
        RET_KILL_PROCESS
    } else {
        ret & RET_ACTION_FULL
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & mask) == value`, with `value` already masked as libseccomp
    /// does.
    MaskedEq {
        mask: u64,
    },
}

/// One comparison of a syscall argument with a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Condition {
    pub index: u8,
    pub op: Op,
    pub value: u64,
}

/// What one syscall name gets when its conditions (all of them) hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Rule {
    pub name: String,
    /// `None` when our syscall table does not know the name.
    pub syscall: Option<SyscallId>,
    pub ret: u32,
    pub conditions: Vec<Condition>,
}

/// A seccomp section after checking, ready for code generation.
#[derive(Debug)]
pub(super) struct Profile {
    pub default_ret: u32,
    /// Rules in profile order; rules whose action is the default one are
    /// dropped, as runc does.
    pub rules: Vec<Rule>,
    /// Every known syscall the profile names, also in dropped rules (runc
    /// answers ENOSYS above the highest of them); sorted, no repeats.
    pub all_syscalls: Vec<SyscallId>,
    /// Names our syscall table does not know (their rules are skipped).
    pub unknown_names: Vec<String>,
    /// Native architecture first, then those listed, without repeats.
    pub arches: Vec<ArchSpec>,
    /// Whether syscalls newer than the profile get ENOSYS instead of the
    /// default action (runc's stub; only when the default action denies).
    pub enosys_for_newer: bool,
    /// Explicit `flags`, or `None` when the profile leaves them out.
    pub flags: Option<Vec<LinuxSeccompFilterFlag>>,
}

/// The kernel's return value for an OCI action. `errnoRet` applies to ERRNO
/// and TRACE (EPERM when absent, as in runc) and is ignored otherwise.
fn action_ret(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    what: &str,
) -> Result<u32, SeccompError> {
    let data = || -> Result<u32, SeccompError> {
        let errno = errno_ret.unwrap_or(libc::EPERM as u32);
        if errno > u32::from(u16::MAX) {
            return Err(SeccompError::InvalidErrnoRet {
                what: what.to_owned(),
                value: errno,
            });
        }
        Ok(errno)
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data()?,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data()?,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActNotify => RET_USER_NOTIF,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
    })
}

fn condition(
    syscall: &str,
    arg: &oci_spec::runtime::LinuxSeccompArg,
) -> Result<Condition, SeccompError> {
    let index = arg.index();
    if index >= MAX_ARGS {
        return Err(SeccompError::InvalidArgIndex {
            syscall: syscall.to_owned(),
            index,
        });
    }
    let value = arg.value();
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => Op::Ne,
        LinuxSeccompOperator::ScmpCmpLt => Op::Lt,
        LinuxSeccompOperator::ScmpCmpLe => Op::Le,
        LinuxSeccompOperator::ScmpCmpEq => Op::Eq,
        LinuxSeccompOperator::ScmpCmpGe => Op::Ge,
        LinuxSeccompOperator::ScmpCmpGt => Op::Gt,
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            // OCI: `value` is the mask, `valueTwo` the expected bits.
            let mask = value;
            return Ok(Condition {
                index: index as u8,
                op: Op::MaskedEq { mask },
                value: arg.value_two().unwrap_or(0) & mask,
            });
        }
    };
    Ok(Condition {
        index: index as u8,
        op,
        value,
    })
}

pub(super) fn parse(seccomp: &LinuxSeccomp) -> Result<Profile, SeccompError> {
    let default_ret = action_ret(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "defaultErrnoRet",
    )?;
    if action_of(default_ret) == RET_USER_NOTIF {
        return Err(SeccompError::NotifyAsDefault);
    }

    let mut arches = vec![ArchSpec::native()];
    for arch in seccomp.architectures().iter().flatten() {
        let spec = ArchSpec::from_oci(*arch);
        if !arches.contains(&spec) {
            arches.push(spec);
        }
    }

    let mut rules = Vec::new();
    let mut all_syscalls = Vec::new();
    let mut unknown_names = Vec::new();
    for (position, syscall) in seccomp.syscalls().iter().flatten().enumerate() {
        let ret = action_ret(
            syscall.action(),
            syscall.errno_ret(),
            &format!("syscalls[{position}].errnoRet"),
        )?;
        for name in syscall.names() {
            if name.is_empty() {
                return Err(SeccompError::EmptySyscallName { position });
            }
            let conditions = syscall
                .args()
                .iter()
                .flatten()
                .map(|arg| condition(name, arg))
                .collect::<Result<Vec<_>, _>>()?;
            let syscall = SyscallId::lookup(name);
            match syscall {
                Some(id) => all_syscalls.push(id),
                None => unknown_names.push(name.clone()),
            }
            if action_of(ret) == RET_USER_NOTIF && NOTIFY_REFUSED.contains(&name.as_str()) {
                return Err(SeccompError::NotifyRefused {
                    syscall: name.clone(),
                });
            }
            // runc skips rules that only restate the default action.
            if ret == default_ret {
                continue;
            }
            let mut indexes: Vec<u8> = conditions.iter().map(|c| c.index).collect();
            indexes.sort_unstable();
            let repeats_an_argument = indexes.windows(2).any(|w| w[0] == w[1]);
            if repeats_an_argument {
                // runc's reading: when one argument is tested more than
                // once, each test becomes a rule of its own (OR).
                rules.extend(conditions.into_iter().map(|c| Rule {
                    name: name.clone(),
                    syscall,
                    ret,
                    conditions: vec![c],
                }));
            } else {
                rules.push(Rule {
                    name: name.clone(),
                    syscall,
                    ret,
                    conditions,
                });
            }
        }
    }

    all_syscalls.sort_unstable();
    all_syscalls.dedup();
    let denies_by_default = !matches!(action_of(default_ret), RET_ALLOW | RET_LOG | RET_TRACE);
    Ok(Profile {
        default_ret,
        rules,
        all_syscalls,
        unknown_names,
        arches,
        enosys_for_newer: denies_by_default,
        flags: seccomp.flags().clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> Result<Profile, SeccompError> {
        let seccomp: LinuxSeccomp = serde_json::from_str(json).expect("test profile parses");
        parse(&seccomp)
    }

    #[test]
    fn errno_defaults_to_eperm_and_honours_errno_ret() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                {"names":["rmdir"],"action":"SCMP_ACT_TRACE"}]}"#,
        )
        .expect("valid");
        assert_eq!(p.default_ret, RET_ERRNO | libc::EPERM as u32);
        assert_eq!(p.rules[0].ret, RET_ERRNO | 13);
        assert_eq!(p.rules[1].ret, RET_TRACE | libc::EPERM as u32);
        assert!(p.enosys_for_newer);
    }

    #[test]
    fn rules_restating_the_default_are_dropped_but_counted() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                {"names":["mkdir"],"action":"SCMP_ACT_KILL"}]}"#,
        )
        .expect("valid");
        assert_eq!(p.rules.len(), 1);
        assert_eq!(p.rules[0].ret, RET_KILL_THREAD);
        let names: Vec<&str> = p.all_syscalls.iter().map(|id| id.name()).collect();
        assert_eq!(names, ["mkdir", "read", "write"]);
        assert!(!p.enosys_for_newer);
    }

    #[test]
    fn masked_eq_takes_mask_from_value_and_masks_value_two() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["clone"],
                "action":"SCMP_ACT_ERRNO","args":[
                {"index":0,"value":255,"valueTwo":4097,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
        )
        .expect("valid");
        assert_eq!(
            p.rules[0].conditions,
            [Condition {
                index: 0,
                op: Op::MaskedEq { mask: 255 },
                value: 1
            }]
        );
    }

    #[test]
    fn one_argument_tested_twice_splits_into_alternatives() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["kill"],
                "action":"SCMP_ACT_ERRNO","args":[
                {"index":1,"value":9,"op":"SCMP_CMP_EQ"},
                {"index":1,"value":15,"op":"SCMP_CMP_EQ"}]}]}"#,
        )
        .expect("valid");
        assert_eq!(p.rules.len(), 2);
        assert!(p.rules.iter().all(|r| r.conditions.len() == 1));
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let cases = [
            (
                r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/x"}"#,
                "default action",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x",
                    "syscalls":[{"names":["write"],"action":"SCMP_ACT_NOTIFY"}]}"#,
                "write",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
                    "action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
                "index 6",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[""],
                    "action":"SCMP_ACT_ERRNO"}]}"#,
                "empty syscall name",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#,
                "70000",
            ),
        ];
        for (json, expected) in cases {
            let message = profile(json).expect_err(json).to_string();
            assert!(
                message.contains(expected),
                "{message:?} should mention {expected:?}"
            );
        }
    }
}
