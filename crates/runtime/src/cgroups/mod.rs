//! Control groups for containers, on cgroup v1, hybrid and unified (v2)
//! hosts.
//!
//! A [`Cgroup`] is one container's cgroup across every hierarchy the host
//! mounts. The runtime uses it in this order:
//!
//! ```text
//! layout = Layout::detect()
//! cg = Cgroup::new(&layout, spec.linux.cgroupsPath, id)   // resolves directories only
//! cg.check(&resources)          // bad input / unsupported here: nothing created yet
//! cg.create()                   // mkdir in every hierarchy
//! cg.apply(&resources)          // limits (also `update`, live)
//! cg.add_process(init_pid)      // before the container process goes on
//! … freeze / thaw / stats / oom_notifier / kill_all …
//! cg.destroy() or cg.kill_and_destroy()
//! ```
//!
//! `Cgroup` serialises to JSON so that later commands (`pause`, `delete`)
//! reuse the directories resolved at creation, whatever cgroup they run in.

pub mod devices;
mod error;
mod events;
mod files;
mod freezer;
mod layout;
mod oom;
mod resources;
mod stats;
mod update;
mod validate;

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use error::CgroupError;
pub use events::{watch as watch_events, Event};
pub use freezer::FreezerState;
pub use layout::{Layout, UnifiedHierarchy, V1Hierarchy};
pub use oom::{OomEvents, OomNotifier};
pub use resources::{blkio_weight_to_io_weight, host_page_sizes, shares_to_weight};
pub use stats::*;
pub use update::{merge_update, parse_byte_size, resources_from_flags, UpdateFlags};
pub use validate::validate;

/// How long `destroy` keeps retrying `rmdir` while the kernel still counts
/// members (processes that were just killed take a moment to leave).
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The directory of one v1 hierarchy (possibly several co-mounted
/// controllers, or a named hierarchy such as `name=systemd`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Dir {
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    pub path: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnifiedDir {
    pub mount_point: PathBuf,
    pub path: PathBuf,
    /// On a unified host: the first directory whose `cgroup.subtree_control`
    /// create() manages (the hierarchy root for an absolute cgroupsPath, the
    /// runtime's own cgroup for a relative one). `None` on a hybrid host,
    /// where the cgroup2 tree only tracks processes, as with runc.
    pub enable_controllers_from: Option<PathBuf>,
}

/// One container's cgroup in every hierarchy of the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    /// The cgroups path as configured (or defaulted), for messages.
    pub cgroups_path: String,
    pub v1: Vec<V1Dir>,
    pub unified: Option<UnifiedDir>,
}

/// Checks `cgroupsPath` and splits it into clean components. runc accepts
/// and lexically cleans `..`; quai refuses it, since a path that climbs out
/// of where it points is never what a user meant.
fn parse_cgroups_path(path: &str) -> Result<(bool, PathBuf), CgroupError> {
    let field = "linux.cgroupsPath";
    if path.contains('\0') {
        return Err(CgroupError::invalid(field, "contains a NUL byte"));
    }
    // "system.slice:docker:abc" is the systemd driver's syntax.
    let parts: Vec<&str> = path.split(':').collect();
    if parts.len() == 3 && !path.contains('/') {
        return Err(CgroupError::invalid(
            field,
            format!("{path:?} is a systemd \"slice:prefix:name\" path; quai-runtime manages cgroups through the file system only (no --systemd-cgroup)"),
        ));
    }
    let mut clean = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => clean.push(c),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CgroupError::invalid(
                    field,
                    format!("{path:?} contains \"..\""),
                ))
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(CgroupError::invalid(
            field,
            format!("{path:?} names the root of the hierarchy, which a container cannot own"),
        ));
    }
    Ok((path.starts_with('/'), clean))
}

fn relative(own: &Path) -> &Path {
    own.strip_prefix("/").unwrap_or(own)
}

impl Cgroup {
    /// Resolves the container's directories (creates nothing). Like runc: an
    /// absolute `cgroups_path` is relative to each hierarchy's root, a
    /// relative one to the runtime's own cgroup there, and without one the
    /// container id is used as a relative path.
    pub fn new(
        layout: &Layout,
        cgroups_path: Option<&str>,
        container_id: &str,
    ) -> Result<Cgroup, CgroupError> {
        let configured = match cgroups_path.filter(|p| !p.is_empty()) {
            Some(p) => p.to_string(),
            None => {
                if container_id.is_empty()
                    || container_id.contains('/')
                    || container_id.starts_with('.')
                {
                    return Err(CgroupError::invalid(
                        "container id",
                        format!("{container_id:?} cannot name a cgroup directory"),
                    ));
                }
                container_id.to_string()
            }
        };
        let (absolute, clean) = parse_cgroups_path(&configured)?;
        let place = |mount: &Path, own: &Path| -> PathBuf {
            if absolute {
                mount.join(&clean)
            } else {
                mount.join(relative(own)).join(&clean)
            }
        };
        let v1 = layout
            .v1_hierarchies()
            .iter()
            .map(|h| V1Dir {
                controllers: h.controllers.clone(),
                mount_point: h.mount_point.clone(),
                path: place(&h.mount_point, &h.own_cgroup),
            })
            .collect();
        let unified = layout.unified().map(|u| {
            // A runtime started from systemd's init.scope must not put
            // containers inside it (a v2 cgroup with processes cannot have
            // controllers enabled for children): use the parent, like runc.
            let own = if u.own_cgroup.ends_with("init.scope") {
                u.own_cgroup
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .to_path_buf()
            } else {
                u.own_cgroup.clone()
            };
            let enable_from = matches!(layout, Layout::Unified(_)).then(|| {
                if absolute {
                    u.mount_point.clone()
                } else {
                    u.mount_point.join(relative(&own))
                }
            });
            UnifiedDir {
                mount_point: u.mount_point.clone(),
                path: place(&u.mount_point, &own),
                enable_controllers_from: enable_from,
            }
        });
        Ok(Cgroup {
            cgroups_path: configured,
            v1,
            unified,
        })
    }

    /// True on a cgroup v2-only host.
    pub fn is_unified(&self) -> bool {
        self.v1.is_empty()
    }

    /// The directory of a v1 controller (or of the cgroup2 tree on a unified
    /// host, where all controllers share it).
    pub fn controller_dir(&self, controller: &str) -> Option<&Path> {
        if self.is_unified() {
            return self.unified.as_ref().map(|u| u.path.as_path());
        }
        self.v1
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.path.as_path())
    }

    /// The cgroup2 directory (the only one on a unified host, the
    /// process-tracking one on a hybrid host).
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_ref().map(|u| u.path.as_path())
    }

    /// Every directory of this cgroup, one per hierarchy.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.v1
            .iter()
            .map(|d| d.path.as_path())
            .chain(self.unified_dir())
    }

    /// Whether the cgroup exists in any hierarchy.
    pub fn exists(&self) -> bool {
        self.dirs().any(Path::exists)
    }

    /// All checks that can be done before anything exists: invalid values
    /// ([`validate`]) and requests this host cannot honour (controller not
    /// mounted, v1-only features on v2 and the reverse).
    pub fn check(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        validate(resources)?;
        resources::check_host(self, resources)
    }

    /// Creates the directories in every hierarchy (and, on a unified host,
    /// enables the available controllers down to the container's parent).
    /// On failure, whatever this call created is removed again.
    pub fn create(&self) -> Result<(), CgroupError> {
        let mut created: Vec<PathBuf> = Vec::new();
        let result = self.create_tracked(&mut created);
        if result.is_err() {
            for dir in created.iter().rev() {
                let _ = fs::remove_dir(dir);
            }
        }
        result
    }

    fn create_tracked(&self, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
        for d in &self.v1 {
            let is_cpuset = d.controllers.iter().any(|c| c == "cpuset");
            for level in make_dirs(&d.mount_point, &d.path, created)? {
                if is_cpuset {
                    let parent = level.parent().unwrap_or(&d.mount_point);
                    resources::cpuset::inherit_v1(&level, parent)?;
                }
            }
        }
        if let Some(u) = &self.unified {
            make_dirs(&u.mount_point, &u.path, created)?;
            if let Some(from) = &u.enable_controllers_from {
                enable_controllers(from, &u.path)?;
            }
        }
        Ok(())
    }

    /// Applies `resources`: only the fields present are written, so that
    /// `update` can change one limit of a running container.
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        resources::apply(self, resources)
    }

    /// Moves process `pid` (with all its threads) into the cgroup in every
    /// hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let value = pid.to_string();
        for dir in self.dirs() {
            files::write(dir, "cgroup.procs", &value)?;
        }
        Ok(())
    }

    /// The cgroup2 directory, opened for clone3(CLONE_INTO_CGROUP); `None`
    /// without a cgroup2 tree or when it cannot be opened (the process is
    /// then moved with [`Cgroup::add_process`]).
    pub fn open_unified(&self) -> Option<std::os::fd::OwnedFd> {
        let dir = self.unified_dir()?;
        rustix::fs::open(
            dir,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| tracing::debug!("open {}: {e}", dir.display()))
        .ok()
    }

    /// [`Cgroup::add_process`] for a process that already started in the
    /// cgroup2 directory (clone3 with CLONE_INTO_CGROUP): only the v1
    /// hierarchies are left.
    pub fn add_process_to_v1(&self, pid: i32) -> Result<(), CgroupError> {
        let value = pid.to_string();
        for dir in &self.v1 {
            files::write(&dir.path, "cgroup.procs", &value)?;
        }
        Ok(())
    }

    /// The directory whose subtree holds every process of the container.
    fn membership_dir(&self) -> Option<&Path> {
        self.unified_dir()
            .or_else(|| self.controller_dir("pids"))
            .or_else(|| self.controller_dir("freezer"))
            .or_else(|| self.v1.first().map(|d| d.path.as_path()))
    }

    /// Every process of the container, including those in cgroups the
    /// container created below its own.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let Some(dir) = self.membership_dir() else {
            return Ok(Vec::new());
        };
        let mut pids = Vec::new();
        for sub in files::subtree_postorder(dir) {
            pids.extend(files::read_pids(&sub)?);
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Freezes every process of the container and waits until the kernel
    /// reports the cgroup frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        freezer::Freezer::of(self)?.freeze()
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        freezer::Freezer::of(self)?.thaw()
    }

    /// `Thawed` when the host has no freezer (nothing can be frozen there).
    pub fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        match freezer::Freezer::of(self) {
            Ok(f) => f.state(),
            Err(CgroupError::Unsupported { .. }) => Ok(FreezerState::Thawed),
            Err(e) => Err(e),
        }
    }

    /// Sends `signal` to every process of the container. SIGKILL goes
    /// through `cgroup.kill` where the kernel has it (5.14+), which leaves no
    /// window for a fork to escape; otherwise the cgroup is frozen while the
    /// processes are listed and signalled, then thawed, as runc does. A
    /// paused container stays paused, except that SIGKILL thaws it so that
    /// its processes can die.
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        let freezer = freezer::Freezer::of(self).ok();
        let was_frozen = freezer
            .as_ref()
            .is_some_and(|f| f.state().ok() == Some(FreezerState::Frozen));
        if signal == libc::SIGKILL {
            if let Some(dir) = self
                .unified_dir()
                .filter(|d| files::exists(d, "cgroup.kill"))
            {
                files::write(dir, "cgroup.kill", "1")?;
                // v1-frozen tasks die only once thawed.
                if let (true, Some(f)) = (was_frozen, &freezer) {
                    f.thaw()?;
                }
                return Ok(());
            }
        }
        let froze_here = match (&freezer, was_frozen) {
            (Some(f), false) => match f.freeze() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("signalling without freezing first: {e}");
                    false
                }
            },
            _ => false,
        };
        let result = self.signal_each(signal);
        if froze_here || (was_frozen && signal == libc::SIGKILL) {
            if let Some(f) = &freezer {
                f.thaw()?;
            }
        }
        result
    }

    fn signal_each(&self, signal: i32) -> Result<(), CgroupError> {
        for pid in self.pids()? {
            if let Err(source) = sys_kill(pid, signal) {
                if source.raw_os_error() != Some(libc::ESRCH) {
                    return Err(CgroupError::Signal {
                        pid,
                        path: self.membership_dir().unwrap_or(Path::new("")).to_path_buf(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Resource usage, shaped like the `data` of runc's `events --stats`.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        stats::collect(self)
    }

    /// How many processes of this cgroup the OOM killer has killed.
    pub fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        oom::kill_count(self)
    }

    /// A file descriptor that becomes readable on OOM events, for a poll
    /// loop (eventfd on v1, inotify on `memory.events` on v2).
    pub fn oom_notifier(&self) -> Result<OomNotifier, CgroupError> {
        OomNotifier::new(self)
    }

    /// Removes the cgroup (and cgroups the container created inside it) in
    /// every hierarchy, retrying while the kernel still reports members.
    /// Fails, naming the processes, if some are still alive after that.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + REMOVE_TIMEOUT;
        for dir in self.dirs() {
            for sub in files::subtree_postorder(dir) {
                remove_dir_retrying(&sub, deadline)?;
            }
        }
        Ok(())
    }

    /// Kills every remaining process (SIGKILL), then [`destroy`](Self::destroy).
    pub fn kill_and_destroy(&self) -> Result<(), CgroupError> {
        if self.exists() {
            self.kill_all(libc::SIGKILL)?;
        }
        self.destroy()
    }
}

fn sys_kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates `target` and any missing parents up to `mount_point`, recording
/// each directory created; returns the created levels, top first.
fn make_dirs(
    mount_point: &Path,
    target: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<Vec<PathBuf>, CgroupError> {
    let rel = target.strip_prefix(mount_point).unwrap_or(target);
    let mut current = mount_point.to_path_buf();
    let mut new_levels = Vec::new();
    for part in rel.components() {
        current.push(part);
        match fs::create_dir(&current) {
            Ok(()) => {
                created.push(current.clone());
                new_levels.push(current.clone());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::Create {
                    path: current,
                    source,
                })
            }
        }
    }
    Ok(new_levels)
}

/// Enables, in every directory from `from` down to `leaf`'s parent, the
/// controllers available there, so that `leaf` gets them. A controller the
/// kernel refuses (a parent with processes of its own, a threaded subtree)
/// is skipped; `apply` then names it if the container needs it.
fn enable_controllers(from: &Path, leaf: &Path) -> Result<(), CgroupError> {
    let Ok(rel) = leaf.strip_prefix(from) else {
        return Ok(());
    };
    let mut dir = from.to_path_buf();
    for part in rel.components() {
        let available = files::read_optional(&dir, "cgroup.controllers")?.unwrap_or_default();
        let enabled = files::read_optional(&dir, "cgroup.subtree_control")?.unwrap_or_default();
        let missing: Vec<&str> = available
            .split_whitespace()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        if !missing.is_empty() {
            let all = missing
                .iter()
                .map(|c| format!("+{c}"))
                .collect::<Vec<_>>()
                .join(" ");
            if files::write_raw(&dir, "cgroup.subtree_control", &all).is_err() {
                for c in &missing {
                    if let Err(e) =
                        files::write_raw(&dir, "cgroup.subtree_control", &format!("+{c}"))
                    {
                        tracing::debug!("cannot enable {c} in {}: {e}", dir.display());
                    }
                }
            }
        }
        dir.push(part);
    }
    Ok(())
}

fn remove_dir_retrying(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let mut delay = Duration::from_millis(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                let pids = files::read_pids(dir).unwrap_or_default();
                let reason = if pids.is_empty() {
                    e.to_string()
                } else {
                    format!("{e}; processes still inside: {pids:?}")
                };
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    reason,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hybrid() -> Layout {
        Layout::parse(
            "\
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
",
            "1:cpu:/\n4:memory:/sandbox/x\n0::/\n",
        )
        .unwrap()
    }

    #[test]
    fn absolute_paths_hang_from_each_root() {
        let cg = Cgroup::new(&hybrid(), Some("/quai/abc"), "abc").unwrap();
        assert_eq!(
            cg.controller_dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/quai/abc")
        );
        assert_eq!(
            cg.controller_dir("cpu").unwrap(),
            Path::new("/sys/fs/cgroup/cpu/quai/abc")
        );
        assert_eq!(
            cg.unified_dir().unwrap(),
            Path::new("/sys/fs/cgroup/unified/quai/abc")
        );
        assert!(cg
            .unified
            .as_ref()
            .unwrap()
            .enable_controllers_from
            .is_none());
        assert!(!cg.is_unified());
    }

    #[test]
    fn relative_paths_and_default_hang_from_own_cgroup() {
        let cg = Cgroup::new(&hybrid(), Some("quai/abc"), "abc").unwrap();
        assert_eq!(
            cg.controller_dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/sandbox/x/quai/abc")
        );
        assert_eq!(
            cg.controller_dir("cpu").unwrap(),
            Path::new("/sys/fs/cgroup/cpu/quai/abc")
        );
        let cg = Cgroup::new(&hybrid(), None, "ctr1").unwrap();
        assert_eq!(
            cg.controller_dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/sandbox/x/ctr1")
        );
        assert_eq!(cg.cgroups_path, "ctr1");
    }

    #[test]
    fn unified_host_enables_controllers_from_the_right_level() {
        let layout = Layout::unified_at("/sys/fs/cgroup", "/system.slice/quai.service");
        let abs = Cgroup::new(&layout, Some("/machine/c1"), "c1").unwrap();
        assert!(abs.is_unified());
        assert_eq!(
            abs.controller_dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/machine/c1")
        );
        assert_eq!(
            abs.unified
                .as_ref()
                .unwrap()
                .enable_controllers_from
                .as_deref(),
            Some(Path::new("/sys/fs/cgroup"))
        );
        let rel = Cgroup::new(&layout, Some("c1"), "c1").unwrap();
        assert_eq!(
            rel.unified_dir().unwrap(),
            Path::new("/sys/fs/cgroup/system.slice/quai.service/c1")
        );
        let init = Layout::unified_at("/sys/fs/cgroup", "/init.scope");
        let cg = Cgroup::new(&init, None, "c2").unwrap();
        assert_eq!(cg.unified_dir().unwrap(), Path::new("/sys/fs/cgroup/c2"));
    }

    #[test]
    fn bad_paths_are_refused() {
        for (path, needle) in [
            ("/a/../../etc", ".."),
            ("/", "root"),
            ("system.slice:docker:abc", "systemd"),
            ("a\0b", "NUL"),
        ] {
            let err = Cgroup::new(&hybrid(), Some(path), "x").unwrap_err();
            assert!(err.to_string().contains("linux.cgroupsPath"), "{err}");
            assert!(err.to_string().contains(needle), "{path}: {err}");
        }
        assert!(Cgroup::new(&hybrid(), None, "../x").is_err());
    }

    #[test]
    fn state_round_trips_through_json() {
        let cg = Cgroup::new(&hybrid(), Some("/quai/abc"), "abc").unwrap();
        let json = serde_json::to_string(&cg).unwrap();
        let back: Cgroup = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cg);
    }
}
