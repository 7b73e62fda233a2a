//! Which cgroup hierarchies the host has and where the runtime itself sits in
//! them. Three shapes exist in the wild:
//!
//! * **v1**: one mount per controller (or group of co-mounted controllers),
//!   usually under `/sys/fs/cgroup/<controller>`;
//! * **hybrid**: v1 controllers plus a cgroup2 mount (systemd puts it at
//!   `/sys/fs/cgroup/unified`) that holds few or no controllers but tracks
//!   processes, can freeze and kill them, and runs eBPF device filters;
//! * **unified**: a single cgroup2 mount, usually at `/sys/fs/cgroup`.
//!
//! Detection reads `/proc/self/mountinfo` and `/proc/self/cgroup`; the parser
//! is separate so that tests feed it the text of other hosts, and the
//! constructors let tests point a layout at a fake tree or a private mount.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::CgroupError;

/// The v1 controllers the kernel knows; anything else in a v1 mount's super
/// options (`rw`, `clone_children`, `release_agent=…`) is not a controller.
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "io",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// One v1 hierarchy: a mount with one or more co-mounted controllers (or a
/// named hierarchy such as `name=systemd`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    /// The runtime's own cgroup in this hierarchy, relative to `mount_point`
    /// (`/` when the runtime sits at the root).
    pub own_cgroup: PathBuf,
}

impl V1Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// A cgroup2 mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnifiedHierarchy {
    pub mount_point: PathBuf,
    /// The runtime's own cgroup, relative to `mount_point`.
    pub own_cgroup: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    V1 {
        hierarchies: Vec<V1Hierarchy>,
    },
    Hybrid {
        hierarchies: Vec<V1Hierarchy>,
        unified: UnifiedHierarchy,
    },
    Unified(UnifiedHierarchy),
}

impl Layout {
    /// The layout of the host as this process sees it.
    pub fn detect() -> Result<Layout, CgroupError> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| CgroupError::Layout(format!("cannot read /proc/self/mountinfo: {e}")))?;
        let self_cgroup = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| CgroupError::Layout(format!("cannot read /proc/self/cgroup: {e}")))?;
        Layout::parse(&mountinfo, &self_cgroup)
    }

    /// The layout described by the text of a `mountinfo` file and a
    /// `/proc/<pid>/cgroup` file.
    pub fn parse(mountinfo: &str, self_cgroup: &str) -> Result<Layout, CgroupError> {
        let memberships = parse_self_cgroup(self_cgroup)?;
        let mut hierarchies: Vec<V1Hierarchy> = Vec::new();
        let mut unified: Option<UnifiedHierarchy> = None;
        let mut seen_v1: HashSet<Vec<String>> = HashSet::new();

        for line in mountinfo.lines() {
            let Some(mount) = MountLine::parse(line) else {
                continue;
            };
            match mount.fs_type {
                "cgroup2" => {
                    let own = memberships
                        .iter()
                        .find(|m| m.controllers.is_empty() && m.hierarchy_id == "0")
                        .map(|m| relative_to_mount_root(&m.path, mount.root))
                        .unwrap_or_else(|| PathBuf::from("/"));
                    let candidate = UnifiedHierarchy {
                        mount_point: PathBuf::from(unescape(mount.mount_point)),
                        own_cgroup: own,
                    };
                    // Prefer the conventional mount points when a cgroup2
                    // tree is mounted more than once (bind mounts).
                    let conventional = |p: &Path| {
                        p == Path::new("/sys/fs/cgroup") || p == Path::new("/sys/fs/cgroup/unified")
                    };
                    match &unified {
                        None => unified = Some(candidate),
                        Some(u)
                            if !conventional(&u.mount_point)
                                && conventional(&candidate.mount_point) =>
                        {
                            unified = Some(candidate)
                        }
                        Some(_) => {}
                    }
                }
                "cgroup" => {
                    let mut controllers: Vec<String> = mount
                        .super_options
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    controllers.sort();
                    if !seen_v1.insert(controllers.clone()) {
                        continue;
                    }
                    let own = memberships
                        .iter()
                        .find(|m| {
                            let mut c = m.controllers.clone();
                            c.sort();
                            c == controllers
                        })
                        .map(|m| relative_to_mount_root(&m.path, mount.root))
                        .unwrap_or_else(|| PathBuf::from("/"));
                    hierarchies.push(V1Hierarchy {
                        controllers,
                        mount_point: PathBuf::from(unescape(mount.mount_point)),
                        own_cgroup: own,
                    });
                }
                _ => {}
            }
        }

        // Named hierarchies alone (systemd's name=systemd next to a full
        // cgroup2 tree) do not make a host v1.
        let has_v1_controllers = hierarchies
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        match (has_v1_controllers, unified) {
            (true, Some(unified)) => Ok(Layout::Hybrid {
                hierarchies,
                unified,
            }),
            (true, None) => Ok(Layout::V1 { hierarchies }),
            (false, Some(unified)) => Ok(Layout::Unified(unified)),
            (false, None) => Err(CgroupError::Layout(
                "no cgroup or cgroup2 file system is mounted".into(),
            )),
        }
    }

    /// A cgroup2 layout at `mount_point` (a real mount or a fake tree), the
    /// runtime's own cgroup being `own_cgroup` below it.
    pub fn unified_at(mount_point: impl Into<PathBuf>, own_cgroup: impl Into<PathBuf>) -> Layout {
        Layout::Unified(UnifiedHierarchy {
            mount_point: mount_point.into(),
            own_cgroup: own_cgroup.into(),
        })
    }

    pub fn v1_hierarchies(&self) -> &[V1Hierarchy] {
        match self {
            Layout::V1 { hierarchies } | Layout::Hybrid { hierarchies, .. } => hierarchies,
            Layout::Unified(_) => &[],
        }
    }

    pub fn unified(&self) -> Option<&UnifiedHierarchy> {
        match self {
            Layout::V1 { .. } => None,
            Layout::Hybrid { unified, .. } | Layout::Unified(unified) => Some(unified),
        }
    }

    /// The v1 hierarchy carrying `controller`, if mounted.
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1_hierarchies().iter().find(|h| h.has(controller))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Layout::V1 { .. } => "cgroup v1",
            Layout::Hybrid { .. } => "cgroup v1 (hybrid, with a cgroup2 tree)",
            Layout::Unified(_) => "cgroup v2",
        }
    }
}

/// A line of `/proc/self/cgroup`: `id:controllers:path`.
#[derive(Debug)]
struct Membership {
    hierarchy_id: String,
    controllers: Vec<String>,
    path: String,
}

fn parse_self_cgroup(text: &str) -> Result<Vec<Membership>, CgroupError> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut parts = line.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(id), Some(ctrls), Some(path)) => Ok(Membership {
                    hierarchy_id: id.to_string(),
                    controllers: ctrls
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect(),
                    path: path.to_string(),
                }),
                _ => Err(CgroupError::Layout(format!(
                    "malformed line {line:?} in /proc/self/cgroup"
                ))),
            }
        })
        .collect()
}

/// Our cgroup path as the kernel reports it is relative to the hierarchy's
/// root; when only a subtree is mounted (a bind mount of `/docker/abc` into a
/// container), the mount root has to be cut off to find the directory.
fn relative_to_mount_root(path: &str, mount_root: &str) -> PathBuf {
    let p = Path::new(path);
    let root = Path::new(mount_root);
    match p.strip_prefix(root) {
        Ok(rest) => Path::new("/").join(rest),
        Err(_) => PathBuf::from(path),
    }
}

struct MountLine<'a> {
    root: &'a str,
    mount_point: &'a str,
    fs_type: &'a str,
    super_options: &'a str,
}

impl<'a> MountLine<'a> {
    fn parse(line: &'a str) -> Option<MountLine<'a>> {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        let rest: Vec<&str> = after.split(' ').collect();
        Some(MountLine {
            root: fields.get(3)?,
            mount_point: fields.get(4)?,
            fs_type: rest.first()?,
            super_options: rest.get(2).copied().unwrap_or(""),
        })
    }
}

fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_SELF: &str = "\
9:name=systemd:/
6:freezer:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_host_is_recognised_with_own_cgroups() {
        let layout = Layout::parse(HYBRID_MOUNTINFO, HYBRID_SELF).unwrap();
        let Layout::Hybrid {
            hierarchies,
            unified,
        } = &layout
        else {
            panic!("expected hybrid, got {layout:?}");
        };
        assert_eq!(unified.mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(hierarchies.len(), 5);
        let memory = layout.v1_hierarchy("memory").unwrap();
        assert_eq!(memory.own_cgroup, Path::new("/process_api/abc"));
        assert_eq!(memory.mount_point, Path::new("/sys/fs/cgroup/memory"));
        let systemd = layout.v1_hierarchy("name=systemd").unwrap();
        assert_eq!(systemd.controllers, vec!["name=systemd".to_string()]);
        assert!(layout.v1_hierarchy("pids").is_none());
    }

    #[test]
    fn comounted_controllers_form_one_hierarchy() {
        let mountinfo = "\
25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu
26 20 0:23 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";
        let own = "3:cpu,cpuacct:/user.slice\n2:pids:/user.slice/x\n";
        let layout = Layout::parse(mountinfo, own).unwrap();
        assert!(matches!(layout, Layout::V1 { .. }));
        let cpu = layout.v1_hierarchy("cpu").unwrap();
        assert!(cpu.has("cpuacct"));
        assert_eq!(cpu.own_cgroup, Path::new("/user.slice"));
        assert_eq!(
            layout.v1_hierarchy("pids").unwrap().own_cgroup,
            Path::new("/user.slice/x")
        );
    }

    #[test]
    fn unified_host_with_nested_own_cgroup() {
        let mountinfo =
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let layout =
            Layout::parse(mountinfo, "0::/user.slice/user-0.slice/session-1.scope\n").unwrap();
        assert_eq!(
            layout,
            Layout::unified_at("/sys/fs/cgroup", "/user.slice/user-0.slice/session-1.scope")
        );
    }

    #[test]
    fn bind_mounted_subtree_strips_the_mount_root() {
        let mountinfo = "\
30 23 0:26 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
";
        let layout = Layout::parse(mountinfo, "4:memory:/docker/abc/inner\n").unwrap();
        assert_eq!(
            layout.v1_hierarchy("memory").unwrap().own_cgroup,
            Path::new("/inner")
        );
    }

    #[test]
    fn named_hierarchy_alone_does_not_make_a_v1_host() {
        let mountinfo = "\
30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
31 23 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
";
        let layout = Layout::parse(mountinfo, "1:name=systemd:/\n0::/\n").unwrap();
        assert!(matches!(layout, Layout::Unified(_)));
    }

    #[test]
    fn no_cgroup_mount_is_an_error() {
        let err = Layout::parse("22 1 0:5 / /proc rw - proc proc rw\n", "0::/\n").unwrap_err();
        assert!(err.to_string().contains("no cgroup"), "{err}");
        let err = Layout::parse("", "garbage\n").unwrap_err();
        assert!(err.to_string().contains("/proc/self/cgroup"), "{err}");
    }

    #[test]
    fn this_host_is_detected() {
        // Whatever the host, detection must succeed and find the cgroup2 or
        // v1 trees that are mounted.
        let layout = Layout::detect().unwrap();
        assert!(layout.unified().is_some() || !layout.v1_hierarchies().is_empty());
    }
}
