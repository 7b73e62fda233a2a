//! What `spec` and `features` print: runc's default config.json (so that
//! tools and tutorials written for runc work unchanged) and the OCI features
//! document describing what this runtime implements.

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespaceType, Spec};
use serde_json::{json, Value};

use crate::config::parse_spec;
use crate::error::Result;
use crate::security::{apparmor_enabled, selinux_enabled};

const DEFAULT_SPEC: &str = include_str!("default_spec.json");

/// runc's default configuration: busybox-friendly `sh` with a terminal,
/// new pid/net/ipc/uts/mount namespaces and the usual mounts. With
/// `rootless`, adapted like `runc spec --rootless` for the calling user.
pub fn default_spec(rootless: bool) -> Result<Spec> {
    let mut spec = parse_spec(DEFAULT_SPEC.as_bytes())?;
    if rootless {
        make_rootless(&mut spec);
    }
    Ok(spec)
}

fn single_mapping(host_id: u32) -> Vec<LinuxIdMapping> {
    let mapping = LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(host_id)
        .size(1u32)
        .build()
        .expect("all fields of an id mapping are set");
    vec![mapping]
}

fn make_rootless(spec: &mut Spec) {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    if let Some(mounts) = spec.mounts_mut() {
        // An unprivileged user can mount neither sysfs nor devpts with a gid
        // it does not own: bind the host's /sys, drop the gid option.
        for m in mounts.iter_mut() {
            if m.typ().as_deref() == Some("sysfs") {
                m.set_typ(Some("none".into()));
                m.set_source(Some("/sys".into()));
                m.set_options(Some(
                    ["rbind", "nosuid", "noexec", "nodev", "ro"]
                        .map(String::from)
                        .to_vec(),
                ));
            } else if m.typ().as_deref() == Some("devpts") {
                if let Some(options) = m.options_mut() {
                    options.retain(|o| !o.starts_with("gid="));
                }
            }
        }
    }
    if let Some(linux) = spec.linux_mut() {
        linux.set_resources(None);
        linux.set_uid_mappings(Some(single_mapping(uid)));
        linux.set_gid_mappings(Some(single_mapping(gid)));
        if let Some(namespaces) = linux.namespaces_mut() {
            // Without privileges on the host a new network namespace has no
            // way out; runc's rootless spec shares the host's.
            namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
            let mut user = oci_spec::runtime::LinuxNamespace::default();
            user.set_typ(LinuxNamespaceType::User);
            namespaces.push(user);
        }
    }
}

/// Capability names this kernel knows, in the kernel's order.
pub fn known_capability_names() -> Vec<String> {
    crate::capabilities::ALL
        .iter()
        .filter(|(_, number)| *number <= crate::capabilities::last_cap())
        .map(|(name, _)| format!("CAP_{name}"))
        .collect()
}

/// The OCI features document (runtime-spec features.md).
pub fn features() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": known_capability_names(),
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true },
            "seccomp": crate::seccomp::features(),
            "apparmor": { "enabled": apparmor_enabled() },
            "selinux": { "enabled": selinux_enabled() },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": true } }
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.version": crate::state::OCI_VERSION
        }
    })
}

/// Mount options of the OCI spec the rootfs module understands.
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_runcs() {
        let spec = default_spec(false).unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.args().as_ref().unwrap(), &["sh".to_string()]);
        assert_eq!(spec.hostname().as_deref(), Some("runc"));
        let ns = spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap();
        assert_eq!(ns.len(), 5);
    }

    #[test]
    fn rootless_spec_maps_the_caller_and_drops_netns() {
        let spec = default_spec(true).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let uid = rustix::process::getuid().as_raw();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), uid);
        let ns = linux.namespaces().as_ref().unwrap();
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        assert!(linux.resources().is_none());
    }
}
