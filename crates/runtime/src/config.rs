//! Loading and validating a bundle's config.json. Everything that can be
//! checked without touching the kernel is checked here, before any state
//! directory, process or mount exists, and every error names the JSON field.

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Spec};

use crate::error::{IoContext, Result, RuntimeError};
use crate::rootfs;
use crate::security;

/// A bundle whose config.json parsed and validated.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub path: PathBuf,
    /// Absolute path of the container's root file system.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// Reads `<bundle>/config.json` and validates it for `create`.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let path = fs::canonicalize(bundle).ctx(|| format!("bundle {}", bundle.display()))?;
    let config_path = path.join("config.json");
    let data = fs::read(&config_path).ctx(|| format!("read {}", config_path.display()))?;
    let spec = parse_spec(&data)?;
    let rootfs = validate(&spec, &path)?;
    Ok(Bundle { path, rootfs, spec })
}

/// Parses config.json, naming the JSON path of whatever does not fit the
/// OCI schema (an unknown namespace type, capability, rlimit ...).
pub fn parse_spec(data: &[u8]) -> Result<Spec> {
    // The plain parse is the common case and costs a fraction of the one
    // that tracks paths; that one runs again only to name a bad field.
    if let Ok(spec) = serde_json::from_slice(data) {
        return Ok(spec);
    }
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." {
            "(document)".to_string()
        } else {
            field
        };
        RuntimeError::config(field, e.into_inner().to_string())
    })
}

/// Parses an OCI process document (`exec --process`), naming the JSON path
/// of any field that does not fit.
pub fn parse_process(data: &[u8]) -> Result<oci_spec::runtime::Process> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        RuntimeError::config(format!("process.{field}"), e.into_inner().to_string())
    })
}

/// Compiles linux.seccomp, so that a bad profile fails before anything is
/// created; the filter is installed by the container process.
pub fn seccomp_filter(spec: &Spec) -> Result<Option<crate::seccomp::Filter>> {
    let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    crate::seccomp::compile(profile)
        .map(Some)
        .map_err(RuntimeError::InvalidSeccomp)
}

/// Validates `spec` for a container created from `bundle` and returns the
/// absolute path of its root file system.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    validate_version(spec)?;
    let rootfs = validate_root(spec, bundle)?;
    validate_process(spec)?;
    let namespaces = validate_namespaces(spec)?;
    validate_uts(spec, &namespaces)?;
    validate_sysctl(spec, &namespaces)?;
    validate_hooks(spec)?;
    validate_linux_extras(spec, &namespaces)?;
    security::validate(spec)?;
    rootfs::validate(spec, bundle).map_err(RuntimeError::InvalidRootfsConfig)?;
    Ok(rootfs)
}

fn validate_version(spec: &Spec) -> Result<()> {
    let version = spec.version();
    let major = version.split('.').next().unwrap_or("");
    if major != "1" {
        return Err(RuntimeError::config(
            "ociVersion",
            format!("{version:?} is not a 1.x version of the OCI runtime spec"),
        ));
    }
    Ok(())
}

fn validate_root(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec.root().as_ref().ok_or_else(|| {
        RuntimeError::config("root", "missing: a container needs a root file system")
    })?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    let meta = fs::metadata(&rootfs)
        .map_err(|e| RuntimeError::config("root.path", format!("{}: {e}", rootfs.display())))?;
    if !meta.is_dir() {
        return Err(RuntimeError::config(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    fs::canonicalize(&rootfs).ctx(|| format!("resolve root.path {}", rootfs.display()))
}

fn validate_process(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::config("process", "missing: create needs a process to run"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => {
            return Err(RuntimeError::config(
                "process.args",
                "must name a program to run",
            ))
        }
    }
    if process.command_line().is_some() {
        return Err(RuntimeError::config(
            "process.commandLine",
            "is a Windows field; use process.args on Linux",
        ));
    }
    if !process.cwd().is_absolute() {
        return Err(RuntimeError::config(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    for (i, var) in process.env().iter().flatten().enumerate() {
        if !var.contains('=') || var.starts_with('=') {
            return Err(RuntimeError::config(
                format!("process.env[{i}]"),
                format!("{var:?} is not of the form NAME=value"),
            ));
        }
        if var.contains('\0') {
            return Err(RuntimeError::config(
                format!("process.env[{i}]"),
                "contains a NUL byte",
            ));
        }
    }
    if process.user().username().is_some() {
        return Err(RuntimeError::config(
            "process.user.username",
            "is a Windows field; give uid and gid on Linux",
        ));
    }
    if let Some(umask) = process.user().umask() {
        if umask > 0o777 {
            return Err(RuntimeError::config(
                "process.user.umask",
                format!("{umask:#o} is not a file mode mask (0 to 0777)"),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, rlimit) in process.rlimits().iter().flatten().enumerate() {
        let field = format!("process.rlimits[{i}]");
        if !seen.insert(rlimit.typ() as u32) {
            return Err(RuntimeError::config(
                field,
                format!("{} is given twice", rlimit_name(rlimit.typ())),
            ));
        }
        if rlimit.soft() > rlimit.hard() {
            return Err(RuntimeError::config(
                field,
                format!(
                    "soft limit {} of {} is above its hard limit {}",
                    rlimit.soft(),
                    rlimit_name(rlimit.typ()),
                    rlimit.hard()
                ),
            ));
        }
    }
    if let Some(oom) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&oom) {
            return Err(RuntimeError::config(
                "process.oomScoreAdj",
                format!("{oom} is outside -1000..1000"),
            ));
        }
    }
    if process.scheduler().is_some() {
        return Err(RuntimeError::Unsupported(
            "process.scheduler is not supported yet".into(),
        ));
    }
    if process.exec_cpu_affinity().is_some() {
        return Err(RuntimeError::Unsupported(
            "process.execCPUAffinity is not supported yet".into(),
        ));
    }
    if let Some(prio) = process.io_priority() {
        if !(0..=7).contains(&prio.priority()) {
            return Err(RuntimeError::config(
                "process.ioPriority.priority",
                format!("{} is outside 0..7", prio.priority()),
            ));
        }
    }
    Ok(())
}

pub fn rlimit_name(typ: PosixRlimitType) -> String {
    typ.to_string()
}

/// What the configuration asks for each namespace type.
#[derive(Debug, Default, Clone)]
pub struct NamespaceRequest {
    /// Types that get a new namespace.
    pub new: HashSet<LinuxNamespaceType>,
    /// Types joined from an existing namespace file.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl NamespaceRequest {
    pub fn from_spec(spec: &Spec) -> NamespaceRequest {
        let mut req = NamespaceRequest::default();
        let entries = spec.linux().as_ref().and_then(|l| l.namespaces().clone());
        for ns in entries.into_iter().flatten() {
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => req.join.push((ns.typ(), p.clone())),
                _ => {
                    req.new.insert(ns.typ());
                }
            }
        }
        req
    }

    /// True when the container has its own namespace of `typ`, new or joined.
    pub fn isolates(&self, typ: LinuxNamespaceType) -> bool {
        self.new.contains(&typ) || self.join.iter().any(|(t, _)| *t == typ)
    }
}

pub fn namespace_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

fn validate_namespaces(spec: &Spec) -> Result<NamespaceRequest> {
    let linux = spec.linux().as_ref().ok_or_else(|| {
        RuntimeError::config("linux", "missing: this runtime runs Linux containers")
    })?;
    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        if !seen.insert(ns.typ()) {
            return Err(RuntimeError::config(
                field,
                format!("the {} namespace is listed twice", namespace_name(ns.typ())),
            ));
        }
        if let Some(path) = ns.path() {
            if !path.as_os_str().is_empty() && !path.is_absolute() {
                return Err(RuntimeError::config(
                    format!("{field}.path"),
                    format!("{} is not an absolute path", path.display()),
                ));
            }
        }
    }
    let req = NamespaceRequest::from_spec(spec);
    if !req.isolates(LinuxNamespaceType::Mount) {
        validate_shared_mount_namespace(linux, &req)?;
    }
    validate_id_mappings(spec, &req)?;
    Ok(req)
}

/// A container without a mount namespace shares the runtime's (runc allows
/// it): its mounts are made on a private bind of the rootfs there and it
/// enters the rootfs by chroot. What only a private mount namespace can
/// give is refused: hiding or write-protecting paths over the host's own
/// /proc and /sys mounts, a propagation for the whole tree, and mounting
/// from a new user namespace (which does not own the host's mounts).
fn validate_shared_mount_namespace(
    linux: &oci_spec::runtime::Linux,
    req: &NamespaceRequest,
) -> Result<()> {
    let why =
        "needs a mount namespace of the container's own, and linux.namespaces has no mount entry";
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        if paths.as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(RuntimeError::config(field, why));
        }
    }
    if linux.rootfs_propagation().is_some() {
        return Err(RuntimeError::config("linux.rootfsPropagation", why));
    }
    if req.new.contains(&LinuxNamespaceType::User) {
        return Err(RuntimeError::config(
            "linux.namespaces",
            "a new user namespace without a mount namespace cannot mount anything for the \
             container: add a mount namespace",
        ));
    }
    Ok(())
}

/// Id mappings: required for a new user namespace (with container id 0
/// mapped, since the init sets up the container as its root), refused
/// otherwise; ranges must not overlap on either side.
fn validate_id_mappings(spec: &Spec, req: &NamespaceRequest) -> Result<()> {
    let linux = spec
        .linux()
        .as_ref()
        .expect("checked by validate_namespaces");
    let new_userns = req.new.contains(&LinuxNamespaceType::User);
    for (field, mappings) in [
        ("linux.uidMappings", linux.uid_mappings()),
        ("linux.gidMappings", linux.gid_mappings()),
    ] {
        let mappings = mappings.as_deref().unwrap_or_default();
        if !new_userns {
            if !mappings.is_empty() {
                return Err(RuntimeError::config(
                    field,
                    "id mappings need a new user namespace in linux.namespaces",
                ));
            }
            continue;
        }
        if mappings.is_empty() {
            return Err(RuntimeError::config(
                field,
                "a new user namespace needs at least one mapping",
            ));
        }
        if mappings.len() > 340 {
            return Err(RuntimeError::config(
                field,
                "the kernel takes at most 340 mappings",
            ));
        }
        let ranges: Vec<(u64, u64, u64)> = mappings
            .iter()
            .map(|m| (m.container_id() as u64, m.host_id() as u64, m.size() as u64))
            .collect();
        for (i, (inside, outside, size)) in ranges.iter().enumerate() {
            if *size == 0 {
                return Err(RuntimeError::config(
                    format!("{field}[{i}].size"),
                    "is zero",
                ));
            }
            if inside + size > 1 << 32 || outside + size > 1 << 32 {
                return Err(RuntimeError::config(
                    format!("{field}[{i}]"),
                    "goes past id 4294967295",
                ));
            }
            for (j, (inside2, outside2, size2)) in ranges.iter().enumerate().skip(i + 1) {
                let overlap = |a: u64, b: u64| a < b + size2 && b < a + size;
                if overlap(*inside, *inside2) || overlap(*outside, *outside2) {
                    return Err(RuntimeError::config(
                        format!("{field}[{j}]"),
                        format!("overlaps {field}[{i}]"),
                    ));
                }
            }
        }
        if !ranges
            .iter()
            .any(|(inside, _, size)| *inside == 0 && *size > 0)
        {
            return Err(RuntimeError::config(
                field,
                "container id 0 is not mapped: the container's init needs a root inside",
            ));
        }
    }
    Ok(())
}

/// Lines of /proc/PID/uid_map (or gid_map) for `mappings`.
pub fn id_map_text(mappings: &[oci_spec::runtime::LinuxIdMapping]) -> String {
    mappings
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

fn validate_uts(spec: &Spec, ns: &NamespaceRequest) -> Result<()> {
    for (field, value) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        let Some(value) = value else { continue };
        if value.is_empty() {
            continue;
        }
        if !ns.isolates(LinuxNamespaceType::Uts) {
            return Err(RuntimeError::config(
                field,
                "cannot be set without a private UTS namespace (linux.namespaces has no uts entry)",
            ));
        }
        if value.len() > 64 || value.contains('\0') {
            return Err(RuntimeError::config(
                field,
                format!("{value:?} is longer than 64 bytes or contains NUL"),
            ));
        }
    }
    Ok(())
}

/// The file under /proc/sys that a sysctl key names, refusing keys that
/// would climb out of /proc/sys.
pub fn sysctl_path(key: &str) -> Option<PathBuf> {
    // sysctl(8) convention: dots separate levels, slashes stand for dots
    // inside one level (e.g. net.ipv4.conf.eth0/100.forwarding).
    let relative: String = key
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect();
    let path = PathBuf::from(&relative);
    let sane = !relative.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(s) if s != "." && s != ".."))
        && !relative.contains("//");
    sane.then(|| Path::new("/proc/sys").join(path))
}

fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

fn validate_sysctl(spec: &Spec, ns: &NamespaceRequest) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for key in sysctl.keys() {
        let field = format!("linux.sysctl.{key}");
        if sysctl_path(key).is_none() {
            return Err(RuntimeError::config(field, "is not a valid sysctl name"));
        }
        match sysctl_namespace(key) {
            Some(typ) if ns.isolates(typ) => {}
            Some(typ) => {
                return Err(RuntimeError::config(
                    field,
                    format!(
                        "needs a private {} namespace, which linux.namespaces does not give",
                        namespace_name(typ)
                    ),
                ))
            }
            None => {
                return Err(RuntimeError::config(
                    field,
                    "is not namespaced by the kernel: setting it would change the host",
                ))
            }
        }
    }
    Ok(())
}

fn validate_hooks(spec: &Spec) -> Result<()> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    #[allow(deprecated)]
    let lists = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (kind, list) in lists {
        for (i, hook) in list.iter().flatten().enumerate() {
            let field = format!("hooks.{kind}[{i}]");
            if !hook.path().is_absolute() {
                return Err(RuntimeError::config(
                    format!("{field}.path"),
                    format!("{} is not an absolute path", hook.path().display()),
                ));
            }
            if let Some(timeout) = hook.timeout() {
                if timeout <= 0 {
                    return Err(RuntimeError::config(
                        format!("{field}.timeout"),
                        format!("{timeout} is not a positive number of seconds"),
                    ));
                }
            }
            for (j, var) in hook.env().iter().flatten().enumerate() {
                if !var.contains('=') {
                    return Err(RuntimeError::config(
                        format!("{field}.env[{j}]"),
                        format!("{var:?} is not of the form NAME=value"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn validate_linux_extras(spec: &Spec, ns: &NamespaceRequest) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if let Some(resources) = linux.resources() {
        crate::cgroups::validate(resources)?;
    }
    if linux.intel_rdt().is_some() {
        return Err(RuntimeError::Unsupported(
            "linux.intelRdt is not supported".into(),
        ));
    }
    if linux.memory_policy().is_some() {
        return Err(RuntimeError::Unsupported(
            "linux.memoryPolicy is not supported yet".into(),
        ));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(RuntimeError::Unsupported(
            "linux.netDevices is not supported yet".into(),
        ));
    }
    if let Some(offsets) = linux.time_offsets() {
        if !ns.new.contains(&LinuxNamespaceType::Time) {
            return Err(RuntimeError::config(
                "linux.timeOffsets",
                "needs a new time namespace in linux.namespaces",
            ));
        }
        for clock in offsets.keys() {
            if clock != "monotonic" && clock != "boottime" {
                return Err(RuntimeError::config(
                    format!("linux.timeOffsets.{clock}"),
                    "only the monotonic and boottime clocks can be offset",
                ));
            }
        }
    }
    if let Some(personality) = linux.personality() {
        if personality.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(RuntimeError::config(
                "linux.personality.flags",
                "no personality flags are defined by the OCI spec",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_paths_stay_under_proc_sys() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            Path::new("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0/100.forwarding").unwrap(),
            Path::new("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
        assert!(sysctl_path("net/../../etc").is_none());
        assert!(sysctl_path("net..x").is_none());
        assert!(sysctl_path("").is_none());
    }

    #[test]
    fn sysctls_map_to_their_namespace() {
        assert_eq!(
            sysctl_namespace("net.core.somaxconn"),
            Some(LinuxNamespaceType::Network)
        );
        assert_eq!(
            sysctl_namespace("kernel.shmmax"),
            Some(LinuxNamespaceType::Ipc)
        );
        assert_eq!(
            sysctl_namespace("fs.mqueue.msg_max"),
            Some(LinuxNamespaceType::Ipc)
        );
        assert_eq!(
            sysctl_namespace("kernel.domainname"),
            Some(LinuxNamespaceType::Uts)
        );
        assert_eq!(sysctl_namespace("vm.swappiness"), None);
    }

    #[test]
    fn parse_errors_name_the_field() {
        let json =
            br#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#;
        let err = parse_spec(json).unwrap_err().to_string();
        assert!(err.contains("linux.namespaces[1]"), "{err}");
        assert!(err.contains("bogus"), "{err}");

        let json = br#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},
            "capabilities":{"bounding":["CAP_CHOWN","CAP_FLY"]}}}"#;
        let err = parse_spec(json).unwrap_err().to_string();
        assert!(err.contains("process.capabilities.bounding"), "{err}");
    }
}
