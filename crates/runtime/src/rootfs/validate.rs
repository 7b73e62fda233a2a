//! `validate`: everything about the root file system that can be checked
//! before anything exists, with errors that name the config field.

use std::fs;
use std::path::Path;

use oci_spec::runtime::Spec;

use super::options::MountKind;
use super::plan::{self, MountPlan};
use super::RootfsError;
use crate::safe_path::{is_within, magic};

/// Files under `/proc` that tools like lxcfs replace with a bind mount; no
/// other mount may land inside `/proc` (runc's list).
pub const PROC_OVERRIDABLE: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// What may be mounted at a destination under `/proc`, judged on the cleaned
/// destination. A bind onto `/proc` itself must come from a procfs, which
/// the caller checks on the source.
pub fn check_proc_destination(m: &MountPlan) -> Result<ProcTarget, RootfsError> {
    let dest = &m.clean_destination;
    if !is_within(dest, Path::new("/proc")) || m.kind == MountKind::Remount {
        return Ok(ProcTarget::Outside);
    }
    if dest == Path::new("/proc") {
        return match &m.kind {
            MountKind::Fs(t) if t == "proc" => Ok(ProcTarget::ProcRoot),
            MountKind::Bind { .. } => Ok(ProcTarget::ProcRootBind),
            _ => Err(RootfsError::config(
                format!("{}.destination", m.field),
                "only a procfs (type proc, or a bind of one) may be mounted on /proc",
            )),
        };
    }
    if PROC_OVERRIDABLE.iter().any(|p| Path::new(p) == dest) {
        return Ok(ProcTarget::Overridable);
    }
    Err(RootfsError::config(
        format!("{}.destination", m.field),
        format!(
            "{} is inside /proc, where only these may be mounted over: {}",
            m.destination.display(),
            PROC_OVERRIDABLE.join(", ")
        ),
    ))
}

/// Where a mount lands with respect to `/proc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcTarget {
    Outside,
    ProcRoot,
    ProcRootBind,
    Overridable,
}

pub(super) fn validate(spec: &Spec, bundle: &Path) -> Result<(), RootfsError> {
    let root = spec.root().as_ref().ok_or_else(|| {
        RootfsError::config("root", "missing: a container needs a root file system")
    })?;
    if root.path().as_os_str().is_empty() {
        return Err(RootfsError::config("root.path", "is empty"));
    }
    let root_path = bundle.join(root.path());
    match fs::metadata(&root_path) {
        Err(e) => {
            return Err(RootfsError::config(
                "root.path",
                format!("{}: {e}", root_path.display()),
            ))
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(RootfsError::config(
                "root.path",
                format!("{} is not a directory", root_path.display()),
            ))
        }
        Ok(_) => {}
    }

    for m in plan::mounts(spec)? {
        if !m.ignored_options.is_empty() {
            tracing::warn!(
                "{}: options {:?} mean nothing for a bind mount and are ignored (as runc does)",
                m.describe(),
                m.ignored_options
            );
        }
        let target = check_proc_destination(&m)?;
        if let MountKind::Bind { .. } = m.kind {
            let source = m.bind_source(Some(bundle)).unwrap_or_default();
            if let Err(e) = fs::metadata(&source) {
                return Err(RootfsError::config(
                    format!("{}.source", m.field),
                    format!("{}: {e}", source.display()),
                ));
            }
            if target == ProcTarget::ProcRootBind && !is_procfs(&source) {
                return Err(RootfsError::config(
                    format!("{}.source", m.field),
                    format!(
                        "{} is not a procfs: only a procfs may be mounted on /proc",
                        source.display()
                    ),
                ));
            }
        }
    }
    plan::devices(spec)?;
    plan::rootfs_propagation(spec)?;
    plan::paths(spec, true)?;
    plan::paths(spec, false)?;
    if plan::mount_label(spec).is_some() && !selinux_enabled() {
        return Err(RootfsError::config(
            "linux.mountLabel",
            "this host has no SELinux (no /sys/fs/selinux): the label cannot be applied",
        ));
    }
    Ok(())
}

fn is_procfs(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|st| (st.f_type as u64 & 0xffff_ffff) as u32 == magic::PROC)
}

pub(super) fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).expect("test config parses")
    }

    struct Bundle {
        dir: tempfile::TempDir,
    }

    fn bundle() -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        fs::write(dir.path().join("file"), "").unwrap();
        Bundle { dir }
    }

    fn check(b: &Bundle, json: &str) -> Result<(), String> {
        validate(&spec(json), b.dir.path()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_plain_config_is_valid() {
        let b = bundle();
        check(
            &b,
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},
               "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                         {"destination":"/data","type":"bind","source":"file","options":["ro"]},
                         {"destination":"/proc/cpuinfo","type":"bind","source":"/proc/cpuinfo"}],
               "linux":{"rootfsPropagation":"rprivate","maskedPaths":["/proc/kcore"]}}"#,
        )
        .unwrap();
    }

    #[test]
    fn root_must_exist_and_be_a_directory() {
        let b = bundle();
        assert_eq!(
            check(&b, r#"{"ociVersion":"1.0.2"}"#).unwrap_err(),
            "root: missing: a container needs a root file system"
        );
        let err = check(&b, r#"{"ociVersion":"1.0.2","root":{"path":"nope"}}"#).unwrap_err();
        assert!(
            err.starts_with("root.path: ") && err.contains("nope: No such file"),
            "{err}"
        );
        let err = check(&b, r#"{"ociVersion":"1.0.2","root":{"path":"file"}}"#).unwrap_err();
        assert!(err.ends_with("file is not a directory"), "{err}");
        let err = check(&b, r#"{"ociVersion":"1.0.2","root":{"path":""}}"#).unwrap_err();
        assert_eq!(err, "root.path: is empty");
    }

    #[test]
    fn bind_sources_must_exist() {
        let b = bundle();
        let err = check(
            &b,
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
               "mounts":[{"destination":"/x","type":"bind","source":"missing"}]}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("mounts[0].source: ") && err.contains("missing: No such file"));
    }

    #[test]
    fn proc_destinations_follow_runc_rules() {
        let b = bundle();
        let err = check(
            &b,
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
               "mounts":[{"destination":"/proc","type":"tmpfs","source":"tmpfs"}]}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("mounts[0].destination: only a procfs"),
            "{err}"
        );
        let err = check(
            &b,
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
               "mounts":[{"destination":"/proc/sys/kernel","type":"tmpfs"}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("is inside /proc, where only these"), "{err}");
        let err = check(
            &b,
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
               "mounts":[{"destination":"/proc","type":"bind","source":"file"}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("is not a procfs"), "{err}");
        check(
            &b,
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
               "mounts":[{"destination":"/proc","type":"bind","source":"/proc"},
                         {"destination":"/hostproc","type":"proc"}]}"#,
        )
        .unwrap();
    }

    #[test]
    fn the_other_sections_are_checked_too() {
        let b = bundle();
        let err = check(
            &b,
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
               "linux":{"devices":[{"path":"/dev/x","type":"c","major":99999,"minor":0}]}}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("linux.devices[0].major"), "{err}");
        let err = check(
            &b,
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"linux":{"rootfsPropagation":"x"}}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("linux.rootfsPropagation"), "{err}");
        let err = check(
            &b,
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"linux":{"maskedPaths":["kcore"]}}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("linux.maskedPaths[0]"), "{err}");
        if !selinux_enabled() {
            let err = check(
                &b,
                r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"linux":{"mountLabel":"system_u:object_r:container_file_t:s0"}}"#,
            )
            .unwrap_err();
            assert!(
                err.starts_with("linux.mountLabel: this host has no SELinux"),
                "{err}"
            );
        }
    }
}
