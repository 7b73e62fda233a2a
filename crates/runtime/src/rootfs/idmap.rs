//! ID-mapped bind mounts (`mounts[].uidMappings`/`gidMappings`, options
//! `idmap`/`ridmap`): the mappings, checked, and the user namespace that
//! carries them to `mount_setattr(MOUNT_ATTR_IDMAP)`.

use std::fmt::Write as _;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use oci_spec::runtime::LinuxIdMapping;
use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::{pidfd_open, waitpid, Pid, PidfdFlags, WaitOptions};

use crate::process::sys::{self, Cloned};

/// Most lines a uid_map or gid_map may hold (the kernel's
/// UID_GID_MAP_MAX_EXTENTS).
const MAX_RANGES: usize = 340;

/// One line of a mapping: `size` ids from `container` on are `host` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// The checked mappings of one ID-mapped mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdMap {
    pub uid: Vec<IdRange>,
    pub gid: Vec<IdRange>,
    /// `ridmap`: every mount of the bind's tree is mapped, not just its root.
    pub recursive: bool,
}

/// Checks one list of mappings: not empty, no empty range, no range past
/// the 32-bit id space, no two ranges overlapping on either side (the
/// kernel refuses such a map, but only after the container is half made).
pub fn ranges(list: &[LinuxIdMapping]) -> Result<Vec<IdRange>, String> {
    if list.is_empty() {
        return Err("the list is empty; an ID-mapped mount needs at least one range".into());
    }
    if list.len() > MAX_RANGES {
        return Err(format!(
            "{} ranges; the kernel takes at most {MAX_RANGES}",
            list.len()
        ));
    }
    let ranges: Vec<IdRange> = list
        .iter()
        .map(|m| IdRange {
            container: m.container_id(),
            host: m.host_id(),
            size: m.size(),
        })
        .collect();
    for (i, r) in ranges.iter().enumerate() {
        if r.size == 0 {
            return Err(format!("[{i}] has size 0"));
        }
        for (side, start) in [("containerID", r.container), ("hostID", r.host)] {
            if u64::from(start) + u64::from(r.size) > 1 << 32 {
                return Err(format!(
                    "[{i}]: {side} {start} + size {} goes past the largest id (4294967295)",
                    r.size
                ));
            }
        }
        for (j, other) in ranges[..i].iter().enumerate() {
            let overlaps = |a: u32, b: u32| {
                u64::from(a) < u64::from(b) + u64::from(other.size)
                    && u64::from(b) < u64::from(a) + u64::from(r.size)
            };
            if overlaps(r.container, other.container) {
                return Err(format!("[{i}] and [{j}] overlap in containerID"));
            }
            if overlaps(r.host, other.host) {
                return Err(format!("[{i}] and [{j}] overlap in hostID"));
            }
        }
    }
    Ok(ranges)
}

fn map_text(ranges: &[IdRange]) -> String {
    let mut text = String::new();
    for r in ranges {
        let _ = writeln!(text, "{} {} {}", r.container, r.host, r.size);
    }
    text
}

/// A child parked in a new user namespace until its pipe closes; dropping
/// it closes the pipe and reaps the child, on every path.
struct Holder {
    pid: Pid,
    release: Option<OwnedFd>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.release = None;
        // The child exits as soon as its pipe reads end-of-file; a failure
        // here (ECHILD when SIGCHLD is ignored) leaves nothing to reap.
        let _ = waitpid(Some(self.pid), WaitOptions::empty());
    }
}

/// A user namespace with `map`'s mappings, for `MOUNT_ATTR_IDMAP`: a
/// short-lived child is cloned into a new user namespace, its maps are
/// written from here, and its `/proc/<pid>/ns/user` opened; the namespace
/// lives on through the returned fd after the child is gone.
///
/// Same contract as [`sys::clone_process`]: the caller is single-threaded
/// (the container's init, or a test's forked child).
pub fn user_namespace(map: &IdMap) -> io::Result<OwnedFd> {
    let (wait_end, release_end) = pipe_with(PipeFlags::CLOEXEC)?;
    let pid = match sys::clone_process(libc::CLONE_NEWUSER)? {
        Cloned::Child => {
            drop(release_end);
            // Only async-signal-safe calls here: read until the parent
            // closes its end (or dies), then leave.
            let _ = rustix::io::read(wait_end.as_fd(), &mut [0u8; 1]);
            sys::exit_now(0)
        }
        Cloned::Parent(pid) => pid,
    };
    drop(wait_end);
    let holder = Holder {
        pid: Pid::from_raw(pid).ok_or_else(|| io::Error::other("clone returned pid 0"))?,
        release: Some(release_end),
    };
    let proc_pid = pid_in_mounted_proc(holder.pid)?;
    for (file, ranges) in [("uid_map", &map.uid), ("gid_map", &map.gid)] {
        std::fs::write(format!("/proc/{proc_pid}/{file}"), map_text(ranges))
            .map_err(|e| io::Error::new(e.kind(), format!("write /proc/{proc_pid}/{file}: {e}")))?;
    }
    let userns = rfs::open(
        format!("/proc/{proc_pid}/ns/user"),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    drop(holder);
    Ok(userns)
}

/// The number `/proc` knows our child `pid` by. The init runs in the
/// container's new pid namespace while `/proc` is still the host's, where
/// the child has another number: a pidfd's fdinfo gives the pid as seen by
/// the procfs it is read through.
fn pid_in_mounted_proc(pid: Pid) -> io::Result<i32> {
    let pidfd = pidfd_open(pid, PidfdFlags::empty())?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&pidfd);
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|n| n.trim().parse::<i32>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            io::Error::other(format!(
                "child {} is not visible in /proc (no Pid in the fdinfo of its pidfd)",
                pid.as_raw_nonzero()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(container: u32, host: u32, size: u32) -> LinuxIdMapping {
        oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(container)
            .host_id(host)
            .size(size)
            .build()
            .unwrap()
    }

    #[test]
    fn good_ranges_are_kept_in_order() {
        let got = ranges(&[mapping(0, 1000, 1), mapping(1, 100000, 65535)]).unwrap();
        assert_eq!(
            got,
            vec![
                IdRange {
                    container: 0,
                    host: 1000,
                    size: 1
                },
                IdRange {
                    container: 1,
                    host: 100000,
                    size: 65535
                },
            ]
        );
        assert_eq!(map_text(&got), "0 1000 1\n1 100000 65535\n");
    }

    #[test]
    fn bad_ranges_are_refused_with_the_reason() {
        assert!(ranges(&[]).unwrap_err().contains("empty"));
        assert!(ranges(&[mapping(0, 0, 0)]).unwrap_err().contains("size 0"));
        assert!(ranges(&[mapping(0, 10, 5), mapping(4, 100, 1)])
            .unwrap_err()
            .contains("[1] and [0] overlap in containerID"));
        assert!(ranges(&[mapping(0, 10, 5), mapping(100, 14, 1)])
            .unwrap_err()
            .contains("overlap in hostID"));
        assert!(ranges(&[mapping(u32::MAX, 0, 2)])
            .unwrap_err()
            .contains("containerID 4294967295 + size 2"));
        // Adjacent ranges do not overlap.
        assert!(ranges(&[mapping(0, 10, 5), mapping(5, 15, 5)]).is_ok());
        let many: Vec<_> = (0..341).map(|i| mapping(i, i, 1)).collect();
        assert!(ranges(&many).unwrap_err().contains("at most 340"));
    }
}
