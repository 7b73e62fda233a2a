//! Mount options of config.json (`mount(8)` words) turned into what the new
//! mount API needs: per-mount attributes, superblock flags, propagation
//! changes, recursive attributes and file system data.

use super::mount_api::{attr, Atime, Propagation, PropagationType};

/// What one config mount is, once its type and options are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// `bind`/`rbind` option or `type: "bind"`.
    Bind { recursive: bool },
    /// `remount` of a mount that already exists at the destination.
    Remount,
    /// `type: "cgroup"`: the container's cgroups, the way runc mounts them.
    Cgroup,
    /// A new file system instance of this type (tmpfs, proc, sysfs, ...).
    Fs(String),
}

/// Attribute changes on a mount: bits of `MOUNT_ATTR_*` to set and to clear,
/// and the access-time mode when one was asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttrChange {
    pub set: u64,
    pub clear: u64,
    pub atime: Option<Atime>,
}

impl AttrChange {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0 && self.atime.is_none()
    }

    fn apply(&mut self, flag: Flag) {
        match flag {
            Flag::Attr(bit, on) => self.set_flag(bit, on),
            Flag::Atime(mode) => self.atime = Some(mode),
            Flag::NotAtime(mode) => self.negate_atime(mode),
        }
    }

    fn set_flag(&mut self, flag: u64, on: bool) {
        if on {
            self.set |= flag;
            self.clear &= !flag;
        } else {
            self.clear |= flag;
            self.set &= !flag;
        }
    }

    /// `atime`, `norelatime`, `nostrictatime` undo the mode they name; the
    /// kernel default (relatime) applies when nothing else is asked for.
    fn negate_atime(&mut self, mode: Atime) {
        if self.atime == Some(mode) || self.atime.is_none() {
            self.atime = None;
        }
    }
}

/// Superblock flags understood by the VFS itself (`fsconfig` flag names).
pub const SB_FLAGS: &[&str] = &[
    "sync",
    "async",
    "dirsync",
    "lazytime",
    "nolazytime",
    "mand",
    "nomand",
    "silent",
    "iversion",
    "noiversion",
];

/// A file-system-specific option, passed through to the file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataOption {
    Flag(String),
    Value(String, String),
}

/// The parsed options of one mount.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    pub bind: Option<bool>,
    pub remount: bool,
    pub attrs: AttrChange,
    pub recursive_attrs: AttrChange,
    pub sb_flags: Vec<&'static str>,
    pub propagation: Vec<Propagation>,
    pub data: Vec<DataOption>,
    /// `idmap` (false) or `ridmap` (true): an ID-mapped bind mount, the
    /// mapping applied to the bind's root mount or to every mount below it.
    pub idmap: Option<bool>,
}

impl MountOptions {
    pub fn read_only(&self) -> bool {
        self.attrs.set & attr::RDONLY != 0
    }
}

/// Parses the `options` of a config mount. Errors name the offending option
/// and say why; they never mention the field (the caller does).
pub fn parse(options: &[String]) -> Result<MountOptions, String> {
    let mut parsed = MountOptions::default();
    for option in options {
        let option = option.as_str();
        if let Some(flag) = per_mount_flag(option) {
            parsed.attrs.apply(flag);
            continue;
        }
        // Every per-mount flag has an `r` form (mount_setattr AT_RECURSIVE)
        // in the runtime spec; superblock flags do not, being per file system.
        if let Some(rest) = option.strip_prefix('r') {
            if let Some(flag) = per_mount_flag(rest) {
                parsed.recursive_attrs.apply(flag);
                continue;
            }
        }
        if let Some(propagation) = propagation(option) {
            parsed.propagation.push(propagation);
            continue;
        }
        if let Some(&flag) = SB_FLAGS.iter().find(|f| **f == option) {
            parsed.sb_flags.retain(|f| *f != flag);
            parsed.sb_flags.push(flag);
            continue;
        }
        match option {
            "defaults" | "loud" => {}
            "bind" => parsed.bind = Some(parsed.bind.unwrap_or(false)),
            "rbind" => parsed.bind = Some(true),
            "remount" => parsed.remount = true,
            "idmap" => parsed.idmap = Some(parsed.idmap.unwrap_or(false)),
            "ridmap" => parsed.idmap = Some(true),
            "tmpcopyup" => {
                return Err(
                    "option \"tmpcopyup\" (a runc extension) is not supported by quai".into(),
                )
            }
            "" => return Err("an empty option is not a mount option".into()),
            // mount(8) keeps x-* options to userspace helpers; so do we.
            _ if option.starts_with("x-") => {}
            _ => parsed.data.push(match option.split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    DataOption::Value(key.to_string(), value.to_string())
                }
                Some(_) => return Err(format!("option {option:?} has no name before '='")),
                None => DataOption::Flag(option.to_string()),
            }),
        }
    }
    Ok(parsed)
}

enum Flag {
    Attr(u64, bool),
    Atime(Atime),
    NotAtime(Atime),
}

fn per_mount_flag(option: &str) -> Option<Flag> {
    Some(match option {
        "ro" => Flag::Attr(attr::RDONLY, true),
        "rw" => Flag::Attr(attr::RDONLY, false),
        "nosuid" => Flag::Attr(attr::NOSUID, true),
        "suid" => Flag::Attr(attr::NOSUID, false),
        "nodev" => Flag::Attr(attr::NODEV, true),
        "dev" => Flag::Attr(attr::NODEV, false),
        "noexec" => Flag::Attr(attr::NOEXEC, true),
        "exec" => Flag::Attr(attr::NOEXEC, false),
        "nodiratime" => Flag::Attr(attr::NODIRATIME, true),
        "diratime" => Flag::Attr(attr::NODIRATIME, false),
        "nosymfollow" => Flag::Attr(attr::NOSYMFOLLOW, true),
        "symfollow" => Flag::Attr(attr::NOSYMFOLLOW, false),
        "noatime" => Flag::Atime(Atime::No),
        "relatime" => Flag::Atime(Atime::Relative),
        "strictatime" => Flag::Atime(Atime::Strict),
        "atime" => Flag::NotAtime(Atime::No),
        "norelatime" => Flag::NotAtime(Atime::Relative),
        "nostrictatime" => Flag::NotAtime(Atime::Strict),
        _ => return None,
    })
}

fn propagation(option: &str) -> Option<Propagation> {
    let (recursive, name) = match option.strip_prefix('r') {
        Some(name @ ("shared" | "slave" | "private" | "unbindable")) => (true, name),
        _ => (false, option),
    };
    let kind = match name {
        "shared" => PropagationType::Shared,
        "slave" => PropagationType::Slave,
        "private" => PropagationType::Private,
        "unbindable" => PropagationType::Unbindable,
        _ => return None,
    };
    Some(Propagation { kind, recursive })
}

/// Parses `linux.rootfsPropagation`.
pub fn parse_propagation(value: &str) -> Option<Propagation> {
    propagation(value)
}

/// Decides what a mount is from its `type` and parsed options.
pub fn kind(typ: Option<&str>, options: &MountOptions) -> Result<MountKind, String> {
    let typ = typ.filter(|t| !t.is_empty());
    if let Some(recursive) = options.bind {
        return Ok(MountKind::Bind { recursive });
    }
    if typ == Some("bind") {
        return Ok(MountKind::Bind { recursive: false });
    }
    if options.remount {
        return Ok(MountKind::Remount);
    }
    match typ {
        None => Err("a type is required unless the mount is a bind mount or a remount".into()),
        Some("cgroup") => Ok(MountKind::Cgroup),
        Some(t) if is_fs_type_name(t) => Ok(MountKind::Fs(t.to_string())),
        Some(t) => Err(format!("{t:?} is not a file system type name")),
    }
}

/// File system type names are short words like `tmpfs`, `fuse.sshfs`.
fn is_fs_type_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

/// Drops the options a bind mount cannot carry (file-system data such as
/// `mode=755`, superblock flags such as `sync`) and returns them as written.
/// A bind attaches an existing file system: mount(2) ignores its data
/// argument, and a bind remount applies only per-mount flags, so runc and
/// crun ignore these words too; configs generated for tmpfs-or-bind
/// destinations carry them. The caller warns about what was dropped.
pub fn drop_ignored(kind: &MountKind, options: &mut MountOptions) -> Vec<String> {
    if !matches!(kind, MountKind::Bind { .. }) {
        return Vec::new();
    }
    let mut ignored: Vec<String> = options.sb_flags.drain(..).map(str::to_string).collect();
    ignored.extend(options.data.drain(..).map(|data| match data {
        DataOption::Flag(f) => f,
        DataOption::Value(k, v) => format!("{k}={v}"),
    }));
    ignored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("valid options")
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn parse_err(list: &[&str]) -> String {
        parse(&strings(list)).unwrap_err()
    }

    #[test]
    fn per_mount_flags_set_and_clear_in_order() {
        let o = opts(&["ro", "nosuid", "nodev", "noexec", "rw", "exec"]);
        assert_eq!(o.attrs.set, attr::NOSUID | attr::NODEV);
        assert_eq!(o.attrs.clear, attr::RDONLY | attr::NOEXEC);
        assert!(!o.read_only());
        assert!(opts(&["rw", "ro"]).read_only());
        let o = opts(&["nodiratime", "nosymfollow", "suid", "dev"]);
        assert_eq!(o.attrs.set, attr::NODIRATIME | attr::NOSYMFOLLOW);
        assert_eq!(o.attrs.clear, attr::NOSUID | attr::NODEV);
    }

    #[test]
    fn access_time_modes_take_the_last_word() {
        assert_eq!(opts(&["noatime"]).attrs.atime, Some(Atime::No));
        assert_eq!(
            opts(&["noatime", "strictatime"]).attrs.atime,
            Some(Atime::Strict)
        );
        assert_eq!(opts(&["noatime", "atime"]).attrs.atime, None);
        assert_eq!(
            opts(&["strictatime", "atime"]).attrs.atime,
            Some(Atime::Strict),
            "atime only undoes noatime"
        );
        assert_eq!(opts(&["relatime", "norelatime"]).attrs.atime, None);
        assert_eq!(opts(&["strictatime", "nostrictatime"]).attrs.atime, None);
    }

    #[test]
    fn recursive_forms_go_to_recursive_attrs() {
        let o = opts(&["rro", "rnosuid", "rnodev", "rnoexec", "rnoatime", "rrw"]);
        assert_eq!(
            o.recursive_attrs.set,
            attr::NOSUID | attr::NODEV | attr::NOEXEC
        );
        assert_eq!(o.recursive_attrs.clear, attr::RDONLY);
        assert_eq!(o.recursive_attrs.atime, Some(Atime::No));
        assert!(o.attrs.is_empty());
        let o = opts(&[
            "rsuid",
            "rdev",
            "rexec",
            "rdiratime",
            "rnodiratime",
            "rsymfollow",
        ]);
        assert_eq!(o.recursive_attrs.set, attr::NODIRATIME);
        assert_eq!(
            o.recursive_attrs.clear,
            attr::NOSUID | attr::NODEV | attr::NOEXEC | attr::NOSYMFOLLOW
        );
        assert_eq!(
            opts(&["rstrictatime"]).recursive_attrs.atime,
            Some(Atime::Strict)
        );
        assert_eq!(
            opts(&["rrelatime"]).recursive_attrs.atime,
            Some(Atime::Relative)
        );
        assert_eq!(opts(&["rnoatime", "ratime"]).recursive_attrs.atime, None);
    }

    #[test]
    fn propagation_words_keep_their_order() {
        let o = opts(&["rprivate", "shared", "rslave", "unbindable", "runbindable"]);
        let got: Vec<(PropagationType, bool)> = o
            .propagation
            .iter()
            .map(|p| (p.kind, p.recursive))
            .collect();
        assert_eq!(
            got,
            vec![
                (PropagationType::Private, true),
                (PropagationType::Shared, false),
                (PropagationType::Slave, true),
                (PropagationType::Unbindable, false),
                (PropagationType::Unbindable, true),
            ]
        );
        assert_eq!(
            parse_propagation("rshared").map(|p| p.recursive),
            Some(true)
        );
        assert!(parse_propagation("bogus").is_none());
        assert!(parse_propagation("").is_none());
    }

    #[test]
    fn bind_rbind_remount_and_superblock_flags() {
        assert_eq!(opts(&["bind"]).bind, Some(false));
        assert_eq!(opts(&["rbind"]).bind, Some(true));
        assert_eq!(opts(&["rbind", "bind"]).bind, Some(true));
        assert!(opts(&["remount"]).remount);
        let o = opts(&[
            "sync", "dirsync", "lazytime", "mand", "silent", "iversion", "sync",
        ]);
        assert_eq!(
            o.sb_flags,
            vec!["dirsync", "lazytime", "mand", "silent", "iversion", "sync"]
        );
        assert!(opts(&["defaults", "loud", "x-systemd.automount"])
            .attrs
            .is_empty());
    }

    #[test]
    fn other_words_are_file_system_data() {
        let o = opts(&[
            "mode=755",
            "size=65536k",
            "newinstance",
            "ptmxmode=0666",
            "gid=5",
        ]);
        assert_eq!(
            o.data,
            vec![
                DataOption::Value("mode".into(), "755".into()),
                DataOption::Value("size".into(), "65536k".into()),
                DataOption::Flag("newinstance".into()),
                DataOption::Value("ptmxmode".into(), "0666".into()),
                DataOption::Value("gid".into(), "5".into()),
            ]
        );
        assert_eq!(
            opts(&["context=system_u:object_r:container_file_t:s0:c1,c2"]).data,
            vec![DataOption::Value(
                "context".into(),
                "system_u:object_r:container_file_t:s0:c1,c2".into()
            )]
        );
    }

    #[test]
    fn unsupported_options_are_refused_with_the_reason() {
        assert_eq!(parse(&strings(&["idmap"])).unwrap().idmap, Some(false));
        assert_eq!(
            parse(&strings(&["idmap", "ridmap"])).unwrap().idmap,
            Some(true)
        );
        assert_eq!(
            parse(&strings(&["ridmap", "idmap"])).unwrap().idmap,
            Some(true)
        );
        assert!(parse_err(&["tmpcopyup"]).contains("runc extension"));
        assert!(parse_err(&[""]).contains("empty option"));
        assert!(parse_err(&["=5"]).contains("no name"));
    }

    #[test]
    fn kind_follows_options_then_type() {
        assert_eq!(
            kind(Some("none"), &opts(&["rbind"])),
            Ok(MountKind::Bind { recursive: true })
        );
        assert_eq!(
            kind(Some("bind"), &opts(&["ro"])),
            Ok(MountKind::Bind { recursive: false })
        );
        assert_eq!(
            kind(None, &opts(&["remount", "ro"])),
            Ok(MountKind::Remount)
        );
        assert_eq!(kind(Some("cgroup"), &opts(&[])), Ok(MountKind::Cgroup));
        assert_eq!(
            kind(Some("fuse.sshfs"), &opts(&[])),
            Ok(MountKind::Fs("fuse.sshfs".into()))
        );
        assert!(kind(None, &opts(&["ro"]))
            .unwrap_err()
            .contains("type is required"));
        assert!(kind(Some(""), &opts(&[]))
            .unwrap_err()
            .contains("type is required"));
        assert!(kind(Some("tmp fs"), &opts(&[]))
            .unwrap_err()
            .contains("not a file system type"));
    }

    #[test]
    fn bind_mounts_drop_file_system_options_like_runc() {
        let bind = MountKind::Bind { recursive: true };
        let mut kept = opts(&["ro", "nosuid", "rprivate", "rro"]);
        let before = kept.clone();
        assert!(drop_ignored(&bind, &mut kept).is_empty());
        assert_eq!(kept, before);

        let mut options = opts(&["rbind", "mode=755", "ro", "sync", "size=1k", "noacl"]);
        assert_eq!(
            drop_ignored(&bind, &mut options),
            vec!["sync", "mode=755", "size=1k", "noacl"]
        );
        assert!(options.data.is_empty() && options.sb_flags.is_empty());
        assert!(options.read_only(), "per-mount flags stay");

        let tmpfs = MountKind::Fs("tmpfs".into());
        let mut tmpfs_options = opts(&["sync", "mode=755"]);
        assert!(drop_ignored(&tmpfs, &mut tmpfs_options).is_empty());
        assert_eq!(tmpfs_options.data.len(), 1);
        assert_eq!(tmpfs_options.sb_flags, vec!["sync"]);
    }
}
