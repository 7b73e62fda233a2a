//! Reads the rootfs-related parts of config.json into checked plans: what
//! `validate` inspects and what `prepare`/`finalize` carry out. Both read the
//! config through here, so a config that validates is one prepare can do.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceType, LinuxIdMapping, LinuxNamespaceType, Mount, Spec};
use rustix::fs::FileType;

use super::idmap::{self, IdMap};
use super::mount_api::Propagation;
use super::options::{self, MountKind, MountOptions};
use super::RootfsError;
use crate::safe_path::lexical_clean;

/// One entry of `mounts`, read and checked.
#[derive(Clone, Debug)]
pub struct MountPlan {
    /// `mounts[3]`, for messages.
    pub field: String,
    /// The destination as written, for messages.
    pub destination: PathBuf,
    /// The destination cleaned lexically, for rules about well-known paths.
    pub clean_destination: PathBuf,
    pub source: Option<PathBuf>,
    pub kind: MountKind,
    pub options: MountOptions,
    /// Options written in the config that this kind of mount cannot carry
    /// (file-system data on a bind), dropped as runc drops them.
    pub ignored_options: Vec<String>,
    /// The mappings of an ID-mapped bind mount.
    pub idmap: Option<IdMap>,
}

impl MountPlan {
    pub fn fs_type(&self) -> Option<&str> {
        match &self.kind {
            MountKind::Fs(t) => Some(t),
            MountKind::Cgroup => Some("cgroup"),
            _ => None,
        }
    }

    /// What the mount is, for messages: `tmpfs on /dev/shm (mounts[3])`.
    pub fn describe(&self) -> String {
        let what = match &self.kind {
            MountKind::Bind { recursive: true } => "rbind".to_string(),
            MountKind::Bind { recursive: false } => "bind".to_string(),
            MountKind::Remount => "remount".to_string(),
            MountKind::Cgroup => "cgroup".to_string(),
            MountKind::Fs(t) => t.clone(),
        };
        format!("{what} on {} ({})", self.destination.display(), self.field)
    }

    /// Bind sources are host paths; relative ones are relative to the bundle.
    pub fn bind_source(&self, bundle: Option<&Path>) -> Option<PathBuf> {
        let source = self.source.as_ref()?;
        Some(match bundle {
            Some(bundle) if source.is_relative() => bundle.join(source),
            _ => source.clone(),
        })
    }
}

/// Reads and checks every entry of `mounts`.
pub fn mounts(spec: &Spec) -> Result<Vec<MountPlan>, RootfsError> {
    let Some(mounts) = spec.mounts() else {
        return Ok(Vec::new());
    };
    // The container's own mappings, which `idmap` without mappings means.
    let container_maps = spec.linux().as_ref().and_then(|l| {
        let new_userns = l
            .namespaces()
            .as_ref()
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
        match (l.uid_mappings(), l.gid_mappings()) {
            (Some(uid), Some(gid)) if new_userns => Some((uid.as_slice(), gid.as_slice())),
            _ => None,
        }
    });
    mounts
        .iter()
        .enumerate()
        .map(|(i, m)| mount(i, m, container_maps))
        .collect()
}

/// The uid and gid mappings of the container's user namespace.
type ContainerMaps<'a> = Option<(&'a [LinuxIdMapping], &'a [LinuxIdMapping])>;

fn mount(index: usize, m: &Mount, container_maps: ContainerMaps) -> Result<MountPlan, RootfsError> {
    let field = format!("mounts[{index}]");
    let destination = m.destination().clone();
    if !destination.is_absolute() {
        return Err(RootfsError::config(
            format!("{field}.destination"),
            format!("{:?} must be an absolute path", destination),
        ));
    }
    let clean_destination = lexical_clean(&destination);
    if clean_destination == Path::new("/") {
        return Err(RootfsError::config(
            format!("{field}.destination"),
            "mounting over the container's root is not supported (use root.path)",
        ));
    }
    let raw_options = m.options().clone().unwrap_or_default();
    let mut options = options::parse(&raw_options)
        .map_err(|reason| RootfsError::config(format!("{field}.options"), reason))?;
    let kind = options::kind(m.typ().as_deref(), &options)
        .map_err(|reason| RootfsError::config(format!("{field}.type"), reason))?;
    let ignored_options = options::drop_ignored(&kind, &mut options);
    let idmap = id_mapping(&field, m, &options, &kind, container_maps)?;
    let source = m.source().clone().filter(|s| !s.as_os_str().is_empty());
    if matches!(kind, MountKind::Bind { .. }) && source.is_none() {
        return Err(RootfsError::config(
            format!("{field}.source"),
            "a bind mount needs a source",
        ));
    }
    Ok(MountPlan {
        field,
        destination,
        clean_destination,
        source,
        kind,
        options,
        ignored_options,
        idmap,
    })
}

/// The ID mapping of a mount: given by `uidMappings`/`gidMappings` (which
/// make the mount ID-mapped even without the `idmap` option, as in runc), or
/// by `idmap`/`ridmap` alone, which take the container's own mappings; only
/// on a bind mount, whose source is an existing file system to show with
/// other owners.
fn id_mapping(
    field: &str,
    m: &Mount,
    options: &MountOptions,
    kind: &MountKind,
    container_maps: ContainerMaps,
) -> Result<Option<IdMap>, RootfsError> {
    let has_mappings = m.uid_mappings().is_some() || m.gid_mappings().is_some();
    if options.idmap.is_none() && !has_mappings {
        return Ok(None);
    }
    if !matches!(kind, MountKind::Bind { .. }) {
        return Err(RootfsError::config(
            format!("{field}.type"),
            "only a bind mount can be ID-mapped (type \"bind\", or option \"bind\"/\"rbind\")",
        ));
    }
    let (uid, gid) = match (m.uid_mappings(), m.gid_mappings(), container_maps) {
        (Some(uid), Some(gid), _) => (uid.as_slice(), gid.as_slice()),
        (None, None, Some(maps)) => maps,
        (None, None, None) => {
            return Err(RootfsError::config(
                format!("{field}.uidMappings"),
                "an ID-mapped mount needs uidMappings and gidMappings: the container has no user namespace with mappings of its own to take",
            ))
        }
        _ => {
            return Err(RootfsError::config(
                format!("{field}.uidMappings"),
                "an ID-mapped mount needs both uidMappings and gidMappings",
            ))
        }
    };
    let uid = idmap::ranges(uid)
        .map_err(|reason| RootfsError::config(format!("{field}.uidMappings"), reason))?;
    let gid = idmap::ranges(gid)
        .map_err(|reason| RootfsError::config(format!("{field}.gidMappings"), reason))?;
    Ok(Some(IdMap {
        uid,
        gid,
        recursive: options.idmap == Some(true),
    }))
}

/// A device node to create in the container's `/dev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePlan {
    pub field: String,
    pub path: PathBuf,
    pub file_type: FileType,
    pub major: u32,
    pub minor: u32,
    /// Permission bits only.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Linux encodes a device number in 32 bits: 12 for the major, 20 for the minor.
const MAX_MAJOR: i64 = (1 << 12) - 1;
const MAX_MINOR: i64 = (1 << 20) - 1;

/// The devices every container gets (runc's and Docker's list); an entry of
/// `linux.devices` with the same path replaces the default one.
const DEFAULT_DEVICES: &[(&str, u32, u32)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The default devices followed by `linux.devices`, checked. `/dev/ptmx` is
/// left out: it is always the symlink to `pts/ptmx`.
pub fn devices(spec: &Spec) -> Result<Vec<DevicePlan>, RootfsError> {
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let mut plans: Vec<DevicePlan> = Vec::new();
    for (i, d) in configured.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let path = d.path();
        if !path.is_absolute() || lexical_clean(path) == Path::new("/") {
            return Err(RootfsError::config(
                format!("{field}.path"),
                format!("{path:?} must be an absolute path to a file"),
            ));
        }
        let file_type = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
            LinuxDeviceType::B => FileType::BlockDevice,
            LinuxDeviceType::P => FileType::Fifo,
            LinuxDeviceType::A => {
                return Err(RootfsError::config(
                    format!("{field}.type"),
                    "\"a\" (all devices) belongs in device cgroup rules, not in linux.devices; use c, b, u or p",
                ))
            }
        };
        let (major, minor) = if file_type == FileType::Fifo {
            (0, 0)
        } else {
            (
                device_number(&field, "major", d.major(), MAX_MAJOR)?,
                device_number(&field, "minor", d.minor(), MAX_MINOR)?,
            )
        };
        let mode = match d.file_mode() {
            None => 0o666,
            Some(mode) => file_mode(&field, mode, file_type)?,
        };
        let clean = lexical_clean(path);
        if plans.iter().any(|p| p.path == clean) {
            return Err(RootfsError::config(
                format!("{field}.path"),
                format!("{} is listed twice", clean.display()),
            ));
        }
        if clean == Path::new("/dev/ptmx") {
            continue;
        }
        plans.push(DevicePlan {
            field,
            path: clean,
            file_type,
            major,
            minor,
            mode,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    let defaults = DEFAULT_DEVICES
        .iter()
        .filter(|(path, _, _)| !plans.iter().any(|p| p.path == Path::new(path)))
        .map(|&(path, major, minor)| DevicePlan {
            field: format!("default device {path}"),
            path: PathBuf::from(path),
            file_type: FileType::CharacterDevice,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect::<Vec<_>>();
    Ok(defaults.into_iter().chain(plans).collect())
}

fn device_number(field: &str, name: &str, value: i64, max: i64) -> Result<u32, RootfsError> {
    if (0..=max).contains(&value) {
        Ok(value as u32)
    } else {
        Err(RootfsError::config(
            format!("{field}.{name}"),
            format!("{value} is out of range (0 to {max})"),
        ))
    }
}

/// `fileMode` holds permission bits; a full `st_mode` is accepted when its
/// type bits agree with `type`.
fn file_mode(field: &str, mode: u32, file_type: FileType) -> Result<u32, RootfsError> {
    let type_bits = mode & libc::S_IFMT;
    if type_bits != 0 && FileType::from_raw_mode(type_bits) != file_type {
        return Err(RootfsError::config(
            format!("{field}.fileMode"),
            format!("{mode:#o} has file type bits that contradict the device type"),
        ));
    }
    let perm = mode & !libc::S_IFMT;
    if perm > 0o7777 {
        return Err(RootfsError::config(
            format!("{field}.fileMode"),
            format!("{mode:#o} is not a file mode"),
        ));
    }
    Ok(perm)
}

/// `linux.rootfsPropagation`, if set.
pub fn rootfs_propagation(spec: &Spec) -> Result<Option<Propagation>, RootfsError> {
    let Some(value) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    options::parse_propagation(&value).map(Some).ok_or_else(|| {
        RootfsError::config(
            "linux.rootfsPropagation",
            format!(
                "{value:?} is not one of shared, slave, private, unbindable, rshared, rslave, rprivate, runbindable"
            ),
        )
    })
}

/// `linux.maskedPaths` or `linux.readonlyPaths`, checked to be absolute.
pub fn paths(spec: &Spec, masked: bool) -> Result<Vec<PathBuf>, RootfsError> {
    let linux = spec.linux().as_ref();
    let (name, list) = if masked {
        (
            "linux.maskedPaths",
            linux.and_then(|l| l.masked_paths().clone()),
        )
    } else {
        (
            "linux.readonlyPaths",
            linux.and_then(|l| l.readonly_paths().clone()),
        )
    };
    let mut out: Vec<PathBuf> = Vec::new();
    for (i, path) in list.unwrap_or_default().iter().enumerate() {
        let path = Path::new(path);
        if !path.is_absolute() {
            return Err(RootfsError::config(
                format!("{name}[{i}]"),
                format!("{path:?} must be an absolute path"),
            ));
        }
        let clean = lexical_clean(path);
        if clean == Path::new("/") {
            return Err(RootfsError::config(
                format!("{name}[{i}]"),
                "the container's root cannot be masked or made read-only this way (use root.readonly)",
            ));
        }
        if !out.contains(&clean) {
            out.push(clean);
        }
    }
    Ok(out)
}

/// Whether the container has a cgroup namespace (new or joined), which
/// decides how cgroup mounts are made.
pub fn has_cgroup_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup))
}

/// `linux.mountLabel`, if set.
pub fn mount_label(spec: &Spec) -> Option<String> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.mount_label().clone())
        .filter(|l| !l.is_empty())
}

/// Whether `root.readonly` is set.
pub fn readonly_root(spec: &Spec) -> bool {
    spec.root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(json: &str) -> Spec {
        serde_json::from_str(json).expect("test config parses")
    }

    fn mount_error(mount_json: &str) -> String {
        let s = spec(&format!(
            r#"{{"ociVersion":"1.0.2","mounts":[{mount_json}]}}"#
        ));
        mounts(&s).unwrap_err().to_string()
    }

    #[test]
    fn mounts_are_read_into_plans() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","mounts":[
              {"destination":"/proc","type":"proc","source":"proc"},
              {"destination":"/data/../data2","type":"none","source":"/srv","options":["rbind","ro"]},
              {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro"]}
            ]}"#,
        );
        let plans = mounts(&s).unwrap();
        assert_eq!(plans[0].kind, MountKind::Fs("proc".into()));
        assert_eq!(plans[1].kind, MountKind::Bind { recursive: true });
        assert_eq!(plans[1].clean_destination, Path::new("/data2"));
        assert!(plans[1].options.read_only());
        assert_eq!(plans[2].kind, MountKind::Cgroup);
        assert_eq!(plans[1].describe(), "rbind on /data/../data2 (mounts[1])");
        assert_eq!(
            plans[1].bind_source(Some(Path::new("/bundle"))),
            Some(PathBuf::from("/srv"))
        );
    }

    #[test]
    fn relative_bind_sources_are_relative_to_the_bundle() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","mounts":[
              {"destination":"/x","type":"bind","source":"data"}]}"#,
        );
        let plans = mounts(&s).unwrap();
        assert_eq!(
            plans[0].bind_source(Some(Path::new("/bundle"))),
            Some(PathBuf::from("/bundle/data"))
        );
    }

    #[test]
    fn mount_errors_name_the_field_and_the_reason() {
        assert_eq!(
            mount_error(r#"{"destination":"tmp","type":"tmpfs"}"#),
            "mounts[0].destination: \"tmp\" must be an absolute path"
        );
        assert!(mount_error(r#"{"destination":"/a/..","type":"tmpfs"}"#)
            .starts_with("mounts[0].destination: mounting over the container's root"));
        assert!(mount_error(r#"{"destination":"/x"}"#)
            .starts_with("mounts[0].type: a type is required"));
        assert!(mount_error(r#"{"destination":"/x","type":"bind"}"#)
            .starts_with("mounts[0].source: a bind mount needs a source"));
        assert!(
            mount_error(r#"{"destination":"/x","type":"tmpfs","options":["idmap"]}"#)
                .starts_with("mounts[0].type: only a bind mount can be ID-mapped")
        );
        let bind_with_data = spec(
            r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/x","type":"none","source":"/s","options":["rbind","size=1m"]}]}"#,
        );
        let plans = mounts(&bind_with_data).unwrap();
        assert_eq!(plans[0].ignored_options, vec!["size=1m".to_string()]);
        assert!(plans[0].options.data.is_empty());
        let idmapped = spec(
            r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/x","type":"bind","source":"/s",
                "options":["rbind","ridmap"],
                "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
                "gidMappings":[{"containerID":0,"hostID":2000,"size":10}]}]}"#,
        );
        let map = mounts(&idmapped).unwrap()[0].idmap.clone().unwrap();
        assert!(map.recursive);
        assert_eq!(
            (map.uid[0].host, map.gid[0].host, map.gid[0].size),
            (1000, 2000, 10)
        );
        assert!(mount_error(
            r#"{"destination":"/x","type":"bind","source":"/s","options":["idmap"]}"#
        )
        .starts_with("mounts[0].uidMappings: an ID-mapped mount needs uidMappings and gidMappings: the container has no user namespace"));
        assert!(mount_error(
            r#"{"destination":"/x","type":"bind","source":"/s",
                "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
                "gidMappings":[]}"#
        )
        .starts_with("mounts[0].gidMappings: the list is empty"));
        assert!(mount_error(
            r#"{"destination":"/x","type":"bind","source":"/s",
                "uidMappings":[{"containerID":0,"hostID":1000,"size":5},{"containerID":3,"hostID":0,"size":1}],
                "gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#
        )
        .starts_with("mounts[0].uidMappings: [1] and [0] overlap in containerID"));
        let in_userns = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"user"}],
                "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
                "gidMappings":[{"containerID":0,"hostID":200000,"size":65536}]},
                "mounts":[{"destination":"/x","type":"bind","source":"/s","options":["idmap"]}]}"#,
        );
        let map = mounts(&in_userns).unwrap()[0].idmap.clone().unwrap();
        assert_eq!((map.uid[0].host, map.gid[0].host), (100000, 200000));
        assert!(mount_error(
            r#"{"destination":"/x","type":"bind","source":"/s",
                "uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#
        )
        .starts_with("mounts[0].uidMappings: an ID-mapped mount needs both"));
    }

    fn device_error(device_json: &str) -> String {
        let s = spec(&format!(
            r#"{{"ociVersion":"1.0.2","linux":{{"devices":[{device_json}]}}}}"#
        ));
        devices(&s).unwrap_err().to_string()
    }

    #[test]
    fn default_devices_come_first_and_configured_ones_replace_them() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"devices":[
              {"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0},
              {"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":384},
              {"path":"/dev/ptmx","type":"c","major":5,"minor":2},
              {"path":"/dev/fifo0","type":"p"},
              {"path":"/dev/sda9","type":"b","major":8,"minor":9,"fileMode":25008,"uid":5,"gid":6}
            ]}}"#,
        );
        let plans = devices(&s).unwrap();
        let paths: Vec<&str> = plans.iter().map(|p| p.path.to_str().unwrap()).collect();
        assert_eq!(
            paths,
            vec![
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty",
                "/dev/fuse",
                "/dev/null",
                "/dev/fifo0",
                "/dev/sda9"
            ]
        );
        let null = plans
            .iter()
            .find(|p| p.path == Path::new("/dev/null"))
            .unwrap();
        assert_eq!(null.mode, 0o600);
        let sda = plans.last().unwrap();
        assert_eq!(
            (
                sda.file_type,
                sda.major,
                sda.minor,
                sda.mode,
                sda.uid,
                sda.gid
            ),
            (FileType::BlockDevice, 8, 9, 0o660, 5, 6)
        );
        let fifo = plans
            .iter()
            .find(|p| p.path == Path::new("/dev/fifo0"))
            .unwrap();
        assert_eq!(fifo.file_type, FileType::Fifo);
        assert_eq!(fifo.mode, 0o666);
    }

    #[test]
    fn device_errors_name_the_field_and_the_reason() {
        assert_eq!(
            device_error(r#"{"path":"dev/x","type":"c","major":1,"minor":1}"#),
            "linux.devices[0].path: \"dev/x\" must be an absolute path to a file"
        );
        assert!(device_error(r#"{"path":"/dev/x","type":"a"}"#)
            .starts_with("linux.devices[0].type: \"a\""));
        assert_eq!(
            device_error(r#"{"path":"/dev/x","type":"c","major":4096,"minor":1}"#),
            "linux.devices[0].major: 4096 is out of range (0 to 4095)"
        );
        assert_eq!(
            device_error(r#"{"path":"/dev/x","type":"b","major":1,"minor":-1}"#),
            "linux.devices[0].minor: -1 is out of range (0 to 1048575)"
        );
        assert!(device_error(
            r#"{"path":"/dev/x","type":"c","major":1,"minor":1,"fileMode":24996}"#
        )
        .starts_with("linux.devices[0].fileMode: 0o60644 has file type bits"));
        assert!(device_error(
            r#"{"path":"/dev/x","type":"c","major":1,"minor":1},
               {"path":"/dev/./x","type":"c","major":1,"minor":2}"#
        )
        .starts_with("linux.devices[1].path: /dev/x is listed twice"));
    }

    #[test]
    fn rootfs_propagation_values() {
        let s = spec(r#"{"ociVersion":"1.0.2","linux":{"rootfsPropagation":"rslave"}}"#);
        assert_eq!(
            rootfs_propagation(&s).unwrap().unwrap().to_string(),
            "rslave"
        );
        let s = spec(r#"{"ociVersion":"1.0.2","linux":{"rootfsPropagation":"sideways"}}"#);
        assert!(rootfs_propagation(&s)
            .unwrap_err()
            .to_string()
            .starts_with("linux.rootfsPropagation: \"sideways\" is not one of"));
        let s = spec(r#"{"ociVersion":"1.0.2"}"#);
        assert!(rootfs_propagation(&s).unwrap().is_none());
    }

    #[test]
    fn masked_and_readonly_paths_are_absolute_and_deduplicated() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{
              "maskedPaths":["/proc/kcore","/proc/./kcore","/sys/firmware"],
              "readonlyPaths":["proc/sys"]}}"#,
        );
        assert_eq!(
            paths(&s, true).unwrap(),
            vec![PathBuf::from("/proc/kcore"), PathBuf::from("/sys/firmware")]
        );
        assert_eq!(
            paths(&s, false).unwrap_err().to_string(),
            "linux.readonlyPaths[0]: \"proc/sys\" must be an absolute path"
        );
    }
}
