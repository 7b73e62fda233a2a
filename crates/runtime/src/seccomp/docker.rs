//! Docker's seccomp profile format (what `docker run --security-opt
//! seccomp=FILE` takes and what Docker's default profile is written in) to
//! the OCI section: keeps the architectures of this machine from `archMap`,
//! and the rules whose `includes`/`excludes` match the machine's
//! architecture, the kernel version and the container's capabilities.

use std::cmp::Ordering;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSyscall,
};
use serde::Deserialize;

use super::SeccompError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<Arch>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMapEntry>>,
    #[serde(default)]
    syscalls: Vec<DockerSyscall>,
    #[serde(default)]
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    listener_path: Option<std::path::PathBuf>,
    #[serde(default)]
    listener_metadata: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerSyscall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// The capabilities Docker grants a container by default (its default
/// bounding set): what the `caps` conditions of Docker's profile see for a
/// container started without `--cap-add`/`--cap-drop`.
pub const DOCKER_DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The machine a Docker profile is specialised for.
#[derive(Clone, Debug)]
pub struct DockerProfileTarget<'a> {
    /// The architecture as Go (and so Docker's `arches` lists) names it:
    /// amd64, arm64, 386, arm, ppc64le, s390x, riscv64, ...
    pub go_arch: &'static str,
    /// The OCI name of the same architecture, matched against `archMap`.
    pub arch: Arch,
    /// Running kernel's version (major, minor), for `minKernel`.
    pub kernel: (u32, u32),
    /// The container's bounding capabilities (`CAP_…`), for `caps`.
    pub capabilities: &'a [String],
}

impl<'a> DockerProfileTarget<'a> {
    /// This machine and kernel, for a container with `capabilities`.
    pub fn host(capabilities: &'a [String]) -> Self {
        DockerProfileTarget {
            go_arch: HOST_GO_ARCH,
            arch: super::arch::NATIVE,
            kernel: running_kernel(),
            capabilities,
        }
    }
}

#[cfg(target_arch = "x86_64")]
const HOST_GO_ARCH: &str = "amd64";
#[cfg(target_arch = "x86")]
const HOST_GO_ARCH: &str = "386";
#[cfg(target_arch = "aarch64")]
const HOST_GO_ARCH: &str = "arm64";
#[cfg(target_arch = "arm")]
const HOST_GO_ARCH: &str = "arm";
#[cfg(target_arch = "riscv64")]
const HOST_GO_ARCH: &str = "riscv64";
#[cfg(target_arch = "loongarch64")]
const HOST_GO_ARCH: &str = "loong64";
#[cfg(target_arch = "s390x")]
const HOST_GO_ARCH: &str = "s390x";
#[cfg(all(target_arch = "powerpc64", target_endian = "little"))]
const HOST_GO_ARCH: &str = "ppc64le";
#[cfg(all(target_arch = "powerpc64", target_endian = "big"))]
const HOST_GO_ARCH: &str = "ppc64";

fn running_kernel() -> (u32, u32) {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    parse_kernel_version(&release).unwrap_or((0, 0))
}

/// "6.18.0-foo" → (6, 18).
fn parse_kernel_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Converts a profile in Docker's format to the OCI seccomp section for
/// `target`, the way dockerd does before it hands the spec to the runtime.
pub fn from_docker_profile(
    json: &[u8],
    target: &DockerProfileTarget<'_>,
) -> Result<LinuxSeccomp, SeccompError> {
    let profile: DockerProfile =
        serde_json::from_slice(json).map_err(|e| SeccompError::DockerProfile {
            reason: e.to_string(),
        })?;

    let architectures = match (&profile.arch_map, &profile.architectures) {
        (Some(_), Some(_)) => {
            return Err(SeccompError::DockerProfile {
                reason: "'architectures' and 'archMap' cannot both be set".into(),
            })
        }
        (Some(map), None) => map
            .iter()
            .filter(|entry| entry.architecture == target.arch)
            .flat_map(|entry| {
                std::iter::once(entry.architecture)
                    .chain(entry.sub_architectures.iter().flatten().copied())
            })
            .collect(),
        (None, Some(list)) => list.clone(),
        (None, None) => Vec::new(),
    };

    let mut syscalls = Vec::new();
    for (position, call) in profile.syscalls.into_iter().enumerate() {
        let names = match (call.name, call.names.is_empty()) {
            (Some(_), false) => {
                return Err(SeccompError::DockerProfile {
                    reason: format!("syscalls[{position}] sets both 'name' and 'names'"),
                })
            }
            (Some(name), true) => vec![name],
            (None, _) => call.names,
        };
        if !applies(&call.includes, &call.excludes, target, position)? {
            continue;
        }
        let mut syscall = LinuxSyscall::default();
        syscall.set_names(names);
        syscall.set_action(call.action);
        syscall.set_errno_ret(call.errno_ret);
        syscall.set_args(call.args);
        syscalls.push(syscall);
    }

    let mut seccomp = LinuxSeccomp::default();
    seccomp.set_default_action(profile.default_action);
    seccomp.set_default_errno_ret(profile.default_errno_ret);
    seccomp.set_architectures((!architectures.is_empty()).then_some(architectures));
    seccomp.set_flags(profile.flags);
    seccomp.set_listener_path(profile.listener_path);
    seccomp.set_listener_metadata(profile.listener_metadata);
    seccomp.set_syscalls(Some(syscalls));
    Ok(seccomp)
}

/// Docker's rule: every included arch/cap/minKernel condition must hold and
/// no excluded one may.
fn applies(
    includes: &Filter,
    excludes: &Filter,
    target: &DockerProfileTarget<'_>,
    position: usize,
) -> Result<bool, SeccompError> {
    let has_cap = |cap: &String| target.capabilities.iter().any(|c| c == cap);
    let kernel_at_least = |min: &str| -> Result<bool, SeccompError> {
        let wanted = parse_kernel_version(min).ok_or_else(|| SeccompError::DockerProfile {
            reason: format!("syscalls[{position}]: minKernel {min:?} is not a kernel version"),
        })?;
        Ok(target.kernel.cmp(&wanted) != Ordering::Less)
    };

    if !includes.arches.is_empty() && !includes.arches.iter().any(|a| a == target.go_arch) {
        return Ok(false);
    }
    if !includes.caps.iter().all(has_cap) {
        return Ok(false);
    }
    if let Some(min) = &includes.min_kernel {
        if !kernel_at_least(min)? {
            return Ok(false);
        }
    }
    if excludes.arches.iter().any(|a| a == target.go_arch) {
        return Ok(false);
    }
    if excludes.caps.iter().any(has_cap) {
        return Ok(false);
    }
    if let Some(min) = &excludes.min_kernel {
        if kernel_at_least(min)? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
        ],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
            {"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}}
        ]
    }"#;

    fn names(seccomp: &LinuxSeccomp) -> Vec<String> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn keeps_rules_that_match_the_target() {
        let caps = vec!["CAP_CHOWN".to_owned()];
        let target = DockerProfileTarget {
            go_arch: "amd64",
            arch: Arch::ScmpArchX86_64,
            kernel: (6, 1),
            capabilities: &caps,
        };
        let seccomp = from_docker_profile(PROFILE.as_bytes(), &target).expect("converts");
        assert_eq!(
            seccomp.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        assert_eq!(
            names(&seccomp),
            ["read", "write", "arch_prctl", "clone3", "ptrace"]
        );
        assert_eq!(seccomp.default_errno_ret(), Some(1));
    }

    #[test]
    fn capabilities_arch_and_kernel_change_the_rule_set() {
        let caps = vec!["CAP_SYS_BOOT".to_owned(), "CAP_SYS_ADMIN".to_owned()];
        let target = DockerProfileTarget {
            go_arch: "arm64",
            arch: Arch::ScmpArchAarch64,
            kernel: (4, 4),
            capabilities: &caps,
        };
        let seccomp = from_docker_profile(PROFILE.as_bytes(), &target).expect("converts");
        assert_eq!(names(&seccomp), ["read", "write", "reboot"]);
        assert_eq!(
            seccomp.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
    }

    #[test]
    fn kernel_versions_parse_like_uname_prints_them() {
        assert_eq!(parse_kernel_version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel_version("5"), Some((5, 0)));
        assert_eq!(parse_kernel_version("x"), None);
    }

    #[test]
    fn malformed_profiles_are_refused() {
        let caps = Vec::new();
        let target = DockerProfileTarget::host(&caps);
        for (json, expected) in [
            (r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, "SCMP_ACT_NOPE"),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#,
                "both 'name' and 'names'",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["b"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"new"}}]}"#,
                "minKernel",
            ),
        ] {
            let message = from_docker_profile(json.as_bytes(), &target)
                .expect_err(json)
                .to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }
}
