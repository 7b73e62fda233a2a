//! `type: "cgroup"` mounts, the way runc makes them.
//!
//! - cgroup v2 host (`/sys/fs/cgroup` is cgroup2): a cgroup2 mount; where the
//!   kernel refuses one (user namespace without a cgroup namespace), a bind
//!   of the container's cgroup directory (or of the whole hierarchy).
//! - cgroup v1 or hybrid host: a tmpfs at the destination and, inside it,
//!   one mount per v1 hierarchy named like on the host (`cpu,cpuacct`,
//!   `memory`, `systemd`): with a cgroup namespace a new cgroup mount of that
//!   hierarchy (rooted at the namespace's cgroup), otherwise a bind of the
//!   container's own cgroup directory; plus the `cpu -> cpu,cpuacct`
//!   symlinks for co-mounted controllers.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use super::error::SysContext;
use super::mount_api::{self, attr, FsContext};
use super::mountinfo::{self, CgroupMembership, MountEntry};
use super::mounts::{self, MountContext};
use super::options::{AttrChange, DataOption, MountKind, MountOptions};
use super::plan::MountPlan;
use super::RootfsError;
use crate::safe_path::{self, magic, Kind};

const HOST_CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub(super) fn mount(ctx: &mut MountContext<'_>, m: &MountPlan) -> Result<(), RootfsError> {
    let host = rfs::statfs(HOST_CGROUP_ROOT).or_sys(|| format!("statfs {HOST_CGROUP_ROOT}"))?;
    if (host.f_type as u64 & 0xffff_ffff) as u32 == magic::CGROUP2 {
        unified(ctx, m)
    } else {
        per_controller(ctx, m)
    }
}

fn unified(ctx: &mut MountContext<'_>, m: &MountPlan) -> Result<(), RootfsError> {
    let as_cgroup2 = MountPlan {
        kind: MountKind::Fs("cgroup2".into()),
        ..m.clone()
    };
    let err = match mounts::new_fs(ctx, &as_cgroup2, "cgroup2") {
        Ok(_) => return Ok(()),
        Err(e) if matches!(e.errno(), Some(libc::EPERM) | Some(libc::EBUSY)) => e,
        Err(e) => return Err(e),
    };
    // No cgroup2 mount allowed here (a user namespace without its own cgroup
    // namespace): bind the host hierarchy instead, like runc. With a cgroup
    // namespace the host path of our cgroup is not known from inside it.
    if ctx.cgroupns {
        return Err(err);
    }
    tracing::debug!("cgroup2 mount refused ({err}); binding {HOST_CGROUP_ROOT}");
    let target = mounts::target(ctx, m, Kind::Directory)?;
    bind_cgroup_dir(Path::new(HOST_CGROUP_ROOT), target.fd.as_fd(), m)
}

/// A v1 hierarchy as this container should see it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Hierarchy {
    /// The directory name under the destination: the host's mount point name.
    name: String,
    /// The options naming the hierarchy (`cpu`, `cpuacct`, `name=systemd`).
    selectors: Vec<String>,
    /// The container's cgroup directory in the host's mount of it; unknown
    /// inside a cgroup namespace whose root lies outside that mount.
    own_dir: Option<PathBuf>,
}

fn per_controller(ctx: &mut MountContext<'_>, m: &MountPlan) -> Result<(), RootfsError> {
    let hierarchies = hierarchies(&mountinfo::mounts()?, &mountinfo::own_cgroups()?);
    let tmpfs = MountPlan {
        kind: MountKind::Fs("tmpfs".into()),
        source: Some(PathBuf::from("tmpfs")),
        options: MountOptions {
            attrs: AttrChange {
                set: attr::NOSUID | attr::NODEV | attr::NOEXEC,
                ..AttrChange::default()
            },
            data: vec![DataOption::Value("mode".into(), "755".into())],
            propagation: m.options.propagation.clone(),
            ..MountOptions::default()
        },
        ..m.clone()
    };
    let dir = mounts::new_fs(ctx, &tmpfs, "tmpfs")?;
    for h in &hierarchies {
        let name = OsStr::new(&h.name);
        rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)).or_sys(|| {
            format!(
                "create {}/{} for {}",
                m.destination.display(),
                h.name,
                m.describe()
            )
        })?;
        let sub = safe_path::open_entry(dir.as_fd(), name, OFlags::PATH | OFlags::DIRECTORY)
            .or_sys(|| format!("open {}/{}", m.destination.display(), h.name))?;
        match (&h.own_dir, ctx.cgroupns) {
            (_, true) => new_v1_mount(h, sub.as_fd(), m)?,
            (Some(own_dir), false) => bind_cgroup_dir(own_dir, sub.as_fd(), m)?,
            (None, false) => {
                return Err(RootfsError::sys(
                    format!(
                        "find this process's cgroup in the host's {} hierarchy for {}",
                        h.name,
                        m.describe()
                    ),
                    Errno::NOENT,
                ))
            }
        }
    }
    for h in hierarchies.iter().filter(|h| h.name.contains(',')) {
        for part in h.name.split(',') {
            match rfs::symlinkat(h.name.as_str(), &dir, part) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(RootfsError::sys(
                        format!("link {}/{part} to {}", m.destination.display(), h.name),
                        e,
                    ))
                }
            }
        }
    }
    Ok(())
}

/// The v1 hierarchies mounted on the host, with this process's cgroup in
/// each. A hierarchy without a membership line is skipped.
fn hierarchies(mounts: &[MountEntry], own: &[CgroupMembership]) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for mnt in mounts.iter().filter(|m| m.fstype == "cgroup") {
        let Some(name) = mnt.mount_point.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if out.iter().any(|h| h.name == name) {
            continue;
        }
        let Some(membership) = own.iter().find(|c| {
            !c.controllers.is_empty() && c.controllers.iter().all(|c| mnt.super_options.contains(c))
        }) else {
            continue;
        };
        // A mount of a sub-tree (mountinfo root) sees the cgroup relative to
        // it; in a cgroup namespace the root may lie outside ("/..").
        let root_outside = mnt.root.to_string_lossy().split('/').any(|c| c == "..");
        let own_dir = membership
            .path
            .strip_prefix(&mnt.root)
            .ok()
            .filter(|_| !root_outside)
            .filter(|relative| {
                relative
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            })
            .map(|relative| mnt.mount_point.join(relative));
        out.push(Hierarchy {
            name: name.to_string(),
            selectors: membership.controllers.clone(),
            own_dir,
        });
    }
    out
}

fn new_v1_mount(h: &Hierarchy, target: BorrowedFd<'_>, m: &MountPlan) -> Result<(), RootfsError> {
    let fs = FsContext::new("cgroup")
        .or_sys(|| format!("open a cgroup file system for {}", m.describe()))?;
    let configure = || -> std::io::Result<()> {
        fs.set_string(
            "source",
            if h.name == "systemd" {
                "systemd"
            } else {
                "cgroup"
            },
        )?;
        for selector in &h.selectors {
            match selector.split_once('=') {
                Some((key, value)) => fs.set_string(key, value)?,
                None => fs.set_flag(selector)?,
            }
        }
        Ok(())
    };
    let mount_error = |e| RootfsError::Sys {
        action: format!("mount cgroup hierarchy {} for {}", h.name, m.describe()),
        err: e,
        detail: fs.messages(),
    };
    configure().map_err(mount_error)?;
    let attrs = attr::NOSUID | attr::NODEV | attr::NOEXEC | (m.options.attrs.set & attr::RDONLY);
    let mnt = fs.mount(attrs).map_err(mount_error)?;
    mount_api::attach(mnt.as_fd(), target)
        .or_sys(|| format!("mount cgroup hierarchy {} for {}", h.name, m.describe()))?;
    mounts::propagate(mnt.as_fd(), m)
}

fn bind_cgroup_dir(
    source: &Path,
    target: BorrowedFd<'_>,
    m: &MountPlan,
) -> Result<(), RootfsError> {
    let tree: OwnedFd = mount_api::clone_path(source, true)
        .or_sys(|| format!("clone {} for {}", source.display(), m.describe()))?;
    let change = AttrChange {
        set: m.options.attrs.set | attr::NOSUID | attr::NODEV | attr::NOEXEC,
        ..m.options.attrs
    };
    mount_api::set_attrs(tree.as_fd(), &change, false).or_sys(|| {
        format!(
            "apply options to {} from {}",
            m.describe(),
            source.display()
        )
    })?;
    mount_api::attach(tree.as_fd(), target)
        .or_sys(|| format!("bind {} for {}", source.display(), m.describe()))?;
    mounts::propagate(tree.as_fd(), m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(root: &str, point: &str, fstype: &str, opts: &str) -> MountEntry {
        MountEntry {
            id: 0,
            root: root.into(),
            mount_point: point.into(),
            fstype: fstype.into(),
            super_options: opts.split(',').map(str::to_string).collect(),
        }
    }

    fn member(controllers: &str, path: &str) -> CgroupMembership {
        CgroupMembership {
            controllers: controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            path: path.into(),
        }
    }

    #[test]
    fn hierarchies_pair_mounts_with_this_process_cgroups() {
        let mounts = vec![
            entry("/", "/sys/fs/cgroup", "tmpfs", "rw,mode=755"),
            entry(
                "/",
                "/sys/fs/cgroup/cpu,cpuacct",
                "cgroup",
                "rw,cpu,cpuacct",
            ),
            entry("/", "/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
            entry(
                "/..",
                "/sys/fs/cgroup/systemd",
                "cgroup",
                "rw,xattr,name=systemd",
            ),
            entry("/docker", "/other/memory", "cgroup", "rw,memory"),
            entry("/", "/sys/fs/cgroup/unified", "cgroup2", "rw"),
            entry("/", "/sys/fs/cgroup/pids", "cgroup", "rw,pids"),
        ];
        let own = vec![
            member("cpu,cpuacct", "/ctr"),
            member("memory", "/ctr/mem"),
            member("name=systemd", "/"),
            member("", "/ignored"),
        ];
        let got = hierarchies(&mounts, &own);
        assert_eq!(
            got,
            vec![
                Hierarchy {
                    name: "cpu,cpuacct".into(),
                    selectors: vec!["cpu".into(), "cpuacct".into()],
                    own_dir: Some("/sys/fs/cgroup/cpu,cpuacct/ctr".into()),
                },
                Hierarchy {
                    name: "memory".into(),
                    selectors: vec!["memory".into()],
                    own_dir: Some("/sys/fs/cgroup/memory/ctr/mem".into()),
                },
                Hierarchy {
                    name: "systemd".into(),
                    selectors: vec!["name=systemd".into()],
                    own_dir: None,
                },
            ]
        );
    }
}
