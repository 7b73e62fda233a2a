//! The `linux.seccomp` part of `quai-runtime features`: what this build
//! understands and what the running kernel supports, in the runtime spec's
//! features format.

use oci_spec::runtime::{Arch, LinuxSeccompAction, Seccomp};

use super::kernel;

/// Every action, operator, architecture and flag the compiler accepts, and
/// the flags this kernel supports.
pub fn features() -> Seccomp {
    let flags = [
        ("SECCOMP_FILTER_FLAG_TSYNC", kernel::FLAG_TSYNC),
        ("SECCOMP_FILTER_FLAG_LOG", kernel::FLAG_LOG),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", kernel::FLAG_SPEC_ALLOW),
        (
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            kernel::FLAG_WAIT_KILLABLE_RECV | kernel::FLAG_NEW_LISTENER,
        ),
    ];
    let mut seccomp = Seccomp::default();
    seccomp.set_enabled(Some(true));
    seccomp.set_actions(Some(vec![
        LinuxSeccompAction::ScmpActAllow,
        LinuxSeccompAction::ScmpActErrno,
        LinuxSeccompAction::ScmpActKill,
        LinuxSeccompAction::ScmpActKillProcess,
        LinuxSeccompAction::ScmpActKillThread,
        LinuxSeccompAction::ScmpActLog,
        LinuxSeccompAction::ScmpActNotify,
        LinuxSeccompAction::ScmpActTrace,
        LinuxSeccompAction::ScmpActTrap,
    ]));
    seccomp.set_operators(Some(
        [
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_LE",
            "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ",
            "SCMP_CMP_NE",
        ]
        .map(String::from)
        .to_vec(),
    ));
    seccomp.set_archs(Some(vec![
        Arch::ScmpArchAarch64,
        Arch::ScmpArchArm,
        Arch::ScmpArchLoongarch64,
        Arch::ScmpArchM68k,
        Arch::ScmpArchMips,
        Arch::ScmpArchMips64,
        Arch::ScmpArchMips64n32,
        Arch::ScmpArchMipsel,
        Arch::ScmpArchMipsel64,
        Arch::ScmpArchMipsel64n32,
        Arch::ScmpArchParisc,
        Arch::ScmpArchParisc64,
        Arch::ScmpArchPpc,
        Arch::ScmpArchPpc64,
        Arch::ScmpArchPpc64le,
        Arch::ScmpArchRiscv64,
        Arch::ScmpArchS390,
        Arch::ScmpArchS390x,
        Arch::ScmpArchSh,
        Arch::ScmpArchSheb,
        Arch::ScmpArchX32,
        Arch::ScmpArchX86,
        Arch::ScmpArchX86_64,
    ]));
    seccomp.set_known_flags(Some(
        flags.iter().map(|(name, _)| name.to_string()).collect(),
    ));
    seccomp.set_supported_flags(Some(
        flags
            .iter()
            .filter(|(_, bits)| kernel::filter_flags_supported(*bits))
            .map(|(name, _)| name.to_string())
            .collect(),
    ));
    seccomp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_arch_compiles() {
        let features = features();
        for arch in features.archs().iter().flatten() {
            let json = format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","architectures":["{arch}"],
                    "syscalls":[{{"names":["read","write","openat"],"action":"SCMP_ACT_ALLOW"}}]}}"#
            );
            let seccomp: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_str(&json).expect("arch name round-trips");
            crate::seccomp::compile(&seccomp).expect("compiles for every listed arch");
        }
    }

    #[test]
    fn this_kernel_supports_the_known_flags() {
        // The test machines run Linux 6.x, which has all four.
        let features = features();
        assert_eq!(features.known_flags(), features.supported_flags());
    }
}
