//! OOM kills of a container: the count, and a file descriptor a poll loop
//! can wait on. cgroup v1 signals OOM through an eventfd registered in
//! `cgroup.event_control` for `memory.oom_control`; cgroup v2 updates the
//! counters of `memory.events`, which inotify reports as modifications.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::event::{eventfd, EventfdFlags};
use rustix::fs::inotify;

use super::{files, Cgroup, CgroupError};

fn memory_dir(cg: &Cgroup) -> Result<&Path, CgroupError> {
    cg.controller_dir("memory").ok_or_else(|| {
        CgroupError::unsupported("OOM reporting", "the memory controller is not mounted")
    })
}

pub(crate) fn kill_count(cg: &Cgroup) -> Result<u64, CgroupError> {
    let dir = memory_dir(cg)?;
    let file = if cg.is_unified() {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    let map = files::read_flat_keyed(dir, file)?.ok_or_else(|| {
        CgroupError::unsupported(
            "OOM reporting",
            format!("{} does not exist", dir.join(file).display()),
        )
    })?;
    // Kernels before 4.13 have no oom_kill counter in memory.oom_control.
    map.get("oom_kill")
        .copied()
        .ok_or_else(|| CgroupError::Parse {
            path: dir.join(file),
            reason: "no oom_kill counter (kernel older than 4.13)".into(),
        })
}

/// What happened since the last [`OomNotifier::read_events`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OomEvents {
    /// Nothing new (a spurious wake-up, or another counter changed).
    None,
    /// The cgroup ran out of memory this many times.
    Oom(u64),
    /// The cgroup was removed: nothing more will come.
    CgroupRemoved,
}

enum Source {
    V1 {
        eventfd: OwnedFd,
        // Registered with the eventfd; must stay open while it is in use.
        _oom_control: File,
        dir: PathBuf,
    },
    V2 {
        inotify: OwnedFd,
        dir: PathBuf,
        last: u64,
    },
}

/// Readable (poll/epoll `POLLIN`) when OOM events may have happened; call
/// [`read_events`](Self::read_events) then. The descriptor is non-blocking
/// and close-on-exec.
pub struct OomNotifier {
    source: Source,
}

/// v2's `memory.events` count of OOM situations; `oom_kill` as a fallback
/// for kernels that only count kills.
fn v2_oom_counter(dir: &Path) -> Result<u64, CgroupError> {
    let map = files::read_flat_keyed(dir, "memory.events")?.unwrap_or_default();
    Ok(map
        .get("oom")
        .copied()
        .unwrap_or(0)
        .max(map.get("oom_kill").copied().unwrap_or(0)))
}

impl OomNotifier {
    pub(crate) fn new(cg: &Cgroup) -> Result<OomNotifier, CgroupError> {
        let dir = memory_dir(cg)?.to_path_buf();
        let watch_err = |path: PathBuf| {
            move |e: rustix::io::Errno| CgroupError::Watch {
                path,
                source: io::Error::from(e),
            }
        };
        if cg.is_unified() {
            let events = dir.join("memory.events");
            let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
                .map_err(watch_err(events.clone()))?;
            inotify::add_watch(&fd, &events, inotify::WatchFlags::MODIFY)
                .map_err(watch_err(events.clone()))?;
            let last = v2_oom_counter(&dir)?;
            return Ok(OomNotifier {
                source: Source::V2 {
                    inotify: fd,
                    dir,
                    last,
                },
            });
        }
        let control_path = dir.join("memory.oom_control");
        let oom_control = File::open(&control_path).map_err(|source| CgroupError::Watch {
            path: control_path.clone(),
            source,
        })?;
        let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(watch_err(control_path.clone()))?;
        let registration = format!("{} {}", efd.as_raw_fd(), oom_control.as_raw_fd());
        files::write(&dir, "cgroup.event_control", &registration)?;
        Ok(OomNotifier {
            source: Source::V1 {
                eventfd: efd,
                _oom_control: oom_control,
                dir,
            },
        })
    }

    /// Consumes the readiness of the descriptor and says what happened.
    pub fn read_events(&mut self) -> Result<OomEvents, CgroupError> {
        match &mut self.source {
            Source::V1 { eventfd, dir, .. } => {
                let mut buf = [0u8; 8];
                let count = match rustix::io::read(&*eventfd, &mut buf) {
                    Ok(8) => u64::from_ne_bytes(buf),
                    Ok(_) | Err(rustix::io::Errno::AGAIN) => 0,
                    Err(e) => {
                        return Err(CgroupError::Watch {
                            path: dir.join("memory.oom_control"),
                            source: e.into(),
                        })
                    }
                };
                // The kernel also signals the eventfd when the cgroup goes.
                if !dir.join("memory.oom_control").exists() {
                    return Ok(OomEvents::CgroupRemoved);
                }
                Ok(if count == 0 {
                    OomEvents::None
                } else {
                    OomEvents::Oom(count)
                })
            }
            Source::V2 {
                inotify: fd,
                dir,
                last,
            } => {
                let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
                let mut reader = inotify::Reader::new(&*fd, &mut buf);
                let mut removed = false;
                loop {
                    match reader.next() {
                        Ok(event) => {
                            if event.events().contains(inotify::ReadFlags::IGNORED) {
                                removed = true;
                            }
                        }
                        Err(rustix::io::Errno::AGAIN) => break,
                        Err(e) => {
                            return Err(CgroupError::Watch {
                                path: dir.join("memory.events"),
                                source: e.into(),
                            })
                        }
                    }
                }
                if removed || !dir.join("memory.events").exists() {
                    return Ok(OomEvents::CgroupRemoved);
                }
                let now = v2_oom_counter(dir)?;
                let new = now.saturating_sub(*last);
                *last = now;
                Ok(if new == 0 {
                    OomEvents::None
                } else {
                    OomEvents::Oom(new)
                })
            }
        }
    }
}

impl AsFd for OomNotifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            Source::V1 { eventfd, .. } => eventfd.as_fd(),
            Source::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}
