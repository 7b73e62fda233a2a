//! Binds (`-v /host:/ctr:ro`), volumes (`-v name:/ctr`, `-v /ctr`, the
//! image's `VOLUME`s), `--mount` and `--tmpfs`, checked and resolved at
//! create time the way docker does.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use crate::error::{EngineError, Result};
use crate::types::{HostConfig, Mount, MountPoint};

/// A mount `create` settled, and the volume it needs (created with the
/// container when it does not exist yet).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub point: MountPoint,
    /// `nocopy`: do not copy the image's files into a new volume.
    pub no_copy: bool,
    /// Named volume to create when missing; anonymous ones get a fresh name.
    pub volume: Option<VolumeNeed>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VolumeNeed {
    pub name: String,
    pub anonymous: bool,
}

const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// docker's rule for local volume names.
pub fn validate_volume_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(format!(
            "\"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )))
    }
}

fn check_destination(spec: &str, typ: &str, dest: &str) -> Result<String> {
    if !dest.starts_with('/') {
        return Err(EngineError::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"{typ}\": invalid mount path: '{dest}' mount path must be absolute"
        )));
    }
    let clean = quai_runtime::safe_path::lexical_clean(Path::new(dest));
    if clean == Path::new("/") {
        return Err(EngineError::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"{typ}\": invalid specification: destination can't be '/'"
        )));
    }
    Ok(clean.to_string_lossy().into_owned())
}

/// Parses one `-v`/`--volume` value.
pub fn parse_bind(spec: &str) -> Result<Planned> {
    let parts: Vec<&str> = spec.split(':').collect();
    let invalid = || EngineError::invalid(format!("invalid volume specification: '{spec}'"));
    let (source, dest, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(invalid()),
    };
    if dest.is_empty() || (parts.len() > 1 && source.is_empty()) {
        return Err(invalid());
    }
    let mut rw = true;
    let mut no_copy = false;
    let mut propagation = String::new();
    let mut seen_rw = false;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" | "rw" if !seen_rw => {
                rw = m == "rw";
                seen_rw = true;
            }
            // SELinux relabelling: this host enforces no SELinux, docker
            // skips relabelling then too.
            "z" | "Z" => {}
            "nocopy" => no_copy = true,
            p if PROPAGATIONS.contains(&p) && propagation.is_empty() => propagation = p.into(),
            _ => return Err(EngineError::invalid(format!("invalid mode: {mode}"))),
        }
    }
    let is_bind = source.starts_with('/');
    let typ = if is_bind { "bind" } else { "volume" };
    let destination = check_destination(spec, typ, dest)?;
    if is_bind {
        if no_copy {
            return Err(EngineError::invalid(format!("invalid mode: {mode}")));
        }
        let source = quai_runtime::safe_path::lexical_clean(Path::new(source))
            .to_string_lossy()
            .into_owned();
        return Ok(Planned {
            point: MountPoint {
                typ: "bind".into(),
                source,
                destination,
                mode: mode.to_string(),
                rw,
                propagation: if propagation.is_empty() {
                    "rprivate".into()
                } else {
                    propagation
                },
                ..Default::default()
            },
            no_copy: false,
            volume: None,
        });
    }
    if !propagation.is_empty() {
        return Err(EngineError::invalid(format!("invalid mode: {mode}")));
    }
    let volume = if source.is_empty() {
        VolumeNeed {
            name: String::new(),
            anonymous: true,
        }
    } else {
        validate_volume_name(source)?;
        VolumeNeed {
            name: source.to_string(),
            anonymous: false,
        }
    };
    Ok(Planned {
        point: MountPoint {
            typ: "volume".into(),
            name: volume.name.clone(),
            destination,
            driver: "local".into(),
            mode: mode.to_string(),
            rw,
            ..Default::default()
        },
        no_copy,
        volume: Some(volume),
    })
}

/// Resolves one `--mount` of type bind or volume (tmpfs mounts are
/// handled with `--tmpfs`).
pub fn plan_mount(m: &Mount) -> Result<Planned> {
    let spec = format!("{}:{}", m.source, m.target);
    if m.target.is_empty() {
        return Err(EngineError::invalid(format!(
            "invalid mount config for type \"{}\": field Target must not be empty",
            m.typ
        )));
    }
    let destination = check_destination(&spec, &m.typ, &m.target)?;
    match m.typ.as_str() {
        "bind" => {
            if m.source.is_empty() {
                return Err(EngineError::invalid(
                    "invalid mount config for type \"bind\": field Source must not be empty",
                ));
            }
            if !m.source.starts_with('/') {
                return Err(EngineError::invalid(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{}' mount path must be absolute",
                    m.source
                )));
            }
            let create = m.bind_options.as_ref().is_some_and(|b| b.create_mountpoint);
            if !create && fs::symlink_metadata(&m.source).is_err() {
                return Err(EngineError::invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    m.source
                )));
            }
            let propagation = m
                .bind_options
                .as_ref()
                .map(|b| b.propagation.clone())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "rprivate".into());
            if !PROPAGATIONS.contains(&propagation.as_str()) {
                return Err(EngineError::invalid(format!(
                    "invalid mount config for type \"bind\": invalid propagation mode: {propagation}"
                )));
            }
            Ok(Planned {
                point: MountPoint {
                    typ: "bind".into(),
                    source: m.source.clone(),
                    destination,
                    rw: !m.read_only,
                    propagation,
                    ..Default::default()
                },
                no_copy: false,
                volume: None,
            })
        }
        "volume" => {
            if m.bind_options.is_some() {
                return Err(EngineError::invalid(
                    "invalid mount config for type \"volume\": bind options are not allowed with type volume",
                ));
            }
            let anonymous = m.source.is_empty();
            let no_copy = m.volume_options.as_ref().is_some_and(|v| v.no_copy);
            if !anonymous {
                validate_volume_name(&m.source)?;
            }
            Ok(Planned {
                point: MountPoint {
                    typ: "volume".into(),
                    name: m.source.clone(),
                    destination,
                    driver: "local".into(),
                    mode: if no_copy { "nocopy" } else { "z" }.into(),
                    rw: !m.read_only,
                    ..Default::default()
                },
                no_copy,
                volume: Some(VolumeNeed {
                    name: m.source.clone(),
                    anonymous,
                }),
            })
        }
        "tmpfs" => Err(EngineError::invalid(
            "tmpfs mounts are planned with --tmpfs",
        )),
        other => Err(EngineError::invalid(format!(
            "invalid mount config: mount type unknown: \"{other}\""
        ))),
    }
}

/// Turns a `--mount type=tmpfs` into `--tmpfs` form (destination, options).
pub fn tmpfs_of_mount(m: &Mount) -> Result<(String, String)> {
    let spec = format!(":{}", m.target);
    let destination = check_destination(&spec, "tmpfs", &m.target)?;
    if !m.source.is_empty() {
        return Err(EngineError::invalid(
            "invalid mount config for type \"tmpfs\": field Source must not be specified",
        ));
    }
    let mut options = Vec::new();
    if m.read_only {
        options.push("ro".to_string());
    }
    if let Some(t) = &m.tmpfs_options {
        if t.size_bytes > 0 {
            options.push(format!("size={}", t.size_bytes));
        }
        if t.mode != 0 {
            options.push(format!("mode={:o}", t.mode));
        }
    }
    Ok((destination, options.join(",")))
}

/// Checks `--tmpfs` options (the kernel has the last word at start).
pub fn check_tmpfs(dest: &str, options: &str) -> Result<String> {
    let destination = check_destination(&format!("{dest}:{options}"), "tmpfs", dest)?;
    for o in options.split(',').filter(|o| !o.is_empty()) {
        let key = o.split('=').next().unwrap_or(o);
        let known = [
            "ro",
            "rw",
            "size",
            "mode",
            "uid",
            "gid",
            "nr_inodes",
            "nr_blocks",
            "exec",
            "noexec",
            "suid",
            "nosuid",
            "dev",
            "nodev",
            "atime",
            "noatime",
            "relatime",
            "strictatime",
            "nodiratime",
            "diratime",
            "sync",
            "async",
            "huge",
            "mpol",
        ];
        if !known.contains(&key) {
            return Err(EngineError::invalid(format!(
                "invalid tmpfs option {o:?} for {dest}"
            )));
        }
    }
    Ok(destination)
}

/// Every bind and volume of a container: `-v` values, `--mount`s, and the
/// image's `VOLUME`s not covered by them. Destinations must be unique
/// (tmpfs mounts included).
pub fn plan_all(hc: &HostConfig, image_volumes: &[String]) -> Result<Vec<Planned>> {
    let mut planned = Vec::new();
    for b in hc.binds.iter().flatten() {
        planned.push(parse_bind(b)?);
    }
    for m in hc.mounts.iter().flatten() {
        if m.typ != "tmpfs" {
            planned.push(plan_mount(m)?);
        }
    }
    let mut seen = BTreeSet::new();
    for p in &planned {
        if !seen.insert(p.point.destination.clone()) {
            return Err(EngineError::invalid(format!(
                "Duplicate mount point: {}",
                p.point.destination
            )));
        }
    }
    let mut tmpfs: Vec<String> = Vec::new();
    for (dest, options) in hc.tmpfs.iter().flatten() {
        tmpfs.push(check_tmpfs(dest, options)?);
    }
    for m in hc.mounts.iter().flatten().filter(|m| m.typ == "tmpfs") {
        tmpfs.push(tmpfs_of_mount(m)?.0);
    }
    for t in tmpfs {
        if !seen.insert(t.clone()) {
            return Err(EngineError::invalid(format!("Duplicate mount point: {t}")));
        }
    }
    for v in image_volumes {
        let dest = quai_runtime::safe_path::lexical_clean(Path::new(v))
            .to_string_lossy()
            .into_owned();
        if !dest.starts_with('/') || dest == "/" || seen.contains(&dest) {
            continue;
        }
        seen.insert(dest.clone());
        planned.push(Planned {
            point: MountPoint {
                typ: "volume".into(),
                destination: dest,
                driver: "local".into(),
                rw: true,
                ..Default::default()
            },
            no_copy: false,
            volume: Some(VolumeNeed {
                name: String::new(),
                anonymous: true,
            }),
        });
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{BindOptions, VolumeOptions};

    #[test]
    fn binds_and_volumes() {
        let p = parse_bind("/srv/data:/data:ro").unwrap();
        assert_eq!(p.point.typ, "bind");
        assert_eq!(p.point.source, "/srv/data");
        assert_eq!(p.point.destination, "/data");
        assert!(!p.point.rw);
        assert_eq!(p.point.propagation, "rprivate");
        let p = parse_bind("cache:/var/cache:nocopy").unwrap();
        assert_eq!(p.point.typ, "volume");
        assert!(p.no_copy);
        assert_eq!(p.volume.unwrap().name, "cache");
        let p = parse_bind("/anon").unwrap();
        assert!(p.volume.unwrap().anonymous);
        let p = parse_bind("/a:/b:rshared,rw").unwrap();
        assert_eq!(p.point.propagation, "rshared");
    }

    #[test]
    fn bad_binds_get_dockers_messages() {
        let e = |s: &str| parse_bind(s).unwrap_err().to_string();
        assert_eq!(e("a:b:c:d"), "invalid volume specification: 'a:b:c:d'");
        assert!(
            e("/x:rel").contains("mount path must be absolute"),
            "{}",
            e("/x:rel")
        );
        assert!(e("/x:/").contains("destination can't be '/'"));
        assert_eq!(e("/x:/y:bogus"), "invalid mode: bogus");
        assert!(e("./rel:/y").contains("includes invalid characters for a local volume name"));
        assert!(e("/x:/y:ro,rw").contains("invalid mode"));
    }

    #[test]
    fn mounts_check_sources_and_types() {
        let mut m = Mount {
            typ: "bind".into(),
            source: "/definitely/not/here".into(),
            target: "/x".into(),
            ..Default::default()
        };
        let e = plan_mount(&m).unwrap_err().to_string();
        assert!(e.contains("bind source path does not exist"), "{e}");
        m.bind_options = Some(BindOptions {
            create_mountpoint: true,
            ..Default::default()
        });
        assert!(plan_mount(&m).is_ok());
        let v = Mount {
            typ: "volume".into(),
            source: "vol1".into(),
            target: "/v".into(),
            volume_options: Some(VolumeOptions {
                no_copy: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(plan_mount(&v).unwrap().no_copy);
        let bad = Mount {
            typ: "nfs".into(),
            target: "/v".into(),
            ..Default::default()
        };
        assert!(plan_mount(&bad)
            .unwrap_err()
            .to_string()
            .contains("mount type unknown"));
    }

    #[test]
    fn duplicates_and_image_volumes() {
        let hc = HostConfig {
            binds: Some(vec!["/a:/data".into(), "vol:/data".into()]),
            ..Default::default()
        };
        let e = plan_all(&hc, &[]).unwrap_err().to_string();
        assert_eq!(e, "Duplicate mount point: /data");
        let hc = HostConfig {
            binds: Some(vec!["/a:/data".into()]),
            ..Default::default()
        };
        let p = plan_all(&hc, &["/data".into(), "/logs".into()]).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].point.destination, "/logs");
        assert!(p[1].volume.as_ref().unwrap().anonymous);
    }
}
