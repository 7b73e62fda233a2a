//! The event stream of `events`: a `stats` event every interval and an
//! `oom` event whenever the kernel reports one, as JSON objects shaped like
//! runc's (`{"type":"stats","id":…,"data":{…}}`, `{"type":"oom","id":…}`).
//! One thread, one poll(2) on the OOM notifier with the interval as timeout.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use serde::{Deserialize, Serialize};

use super::{Cgroup, CgroupError, OomEvents, Stats};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

impl Event {
    pub fn stats(id: &str, stats: Stats) -> Event {
        Event {
            kind: "stats".into(),
            id: id.into(),
            data: Some(stats),
        }
    }

    pub fn oom(id: &str) -> Event {
        Event {
            kind: "oom".into(),
            id: id.into(),
            data: None,
        }
    }
}

/// Emits events for container `id` until `emit` breaks or the cgroup is
/// removed. Without a memory controller there are stats events only.
pub fn watch(
    cg: &Cgroup,
    id: &str,
    interval: Duration,
    mut emit: impl FnMut(&Event) -> ControlFlow<()>,
) -> Result<(), CgroupError> {
    let mut notifier = cg.oom_notifier().ok();
    let mut next_stats = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_stats {
            if !cg.exists() {
                return Ok(());
            }
            if emit(&Event::stats(id, cg.stats()?)).is_break() {
                return Ok(());
            }
            next_stats = now + interval;
        }
        let wait = next_stats.saturating_duration_since(Instant::now());
        let timeout = Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let Some(n) = notifier.as_mut() else {
            std::thread::sleep(wait);
            continue;
        };
        let ready = {
            let mut fds = [PollFd::new(&*n, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(ready) => ready,
                Err(rustix::io::Errno::INTR) => 0,
                Err(e) => {
                    return Err(CgroupError::Watch {
                        path: cg
                            .controller_dir("memory")
                            .unwrap_or(Path::new(""))
                            .to_path_buf(),
                        source: e.into(),
                    })
                }
            }
        };
        if ready == 0 {
            continue;
        }
        match n.read_events()? {
            OomEvents::None => {}
            OomEvents::Oom(count) => {
                for _ in 0..count {
                    if emit(&Event::oom(id)).is_break() {
                        return Ok(());
                    }
                }
            }
            OomEvents::CgroupRemoved => return Ok(()),
        }
    }
}
