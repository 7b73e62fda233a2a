//! Pausing a container: the v1 freezer controller (`freezer.state`), or on
//! cgroup v2 (and on hybrid hosts without a v1 freezer) `cgroup.freeze`.
//! Freezing is asynchronous in both: the write starts it, and the state
//! file says when every task has stopped.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{files, Cgroup, CgroupError};

/// How long freeze() waits for every task to stop before giving up (and
/// thawing again, so that a failed pause leaves the container running).
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FreezerState {
    Thawed,
    Freezing,
    Frozen,
}

pub(crate) enum Freezer<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

impl<'a> Freezer<'a> {
    pub(crate) fn of(cg: &'a Cgroup) -> Result<Freezer<'a>, CgroupError> {
        if !cg.is_unified() {
            if let Some(dir) = cg.controller_dir("freezer") {
                return Ok(Freezer::V1(dir));
            }
        }
        match cg.unified_dir() {
            Some(dir) if cg.is_unified() || files::exists(dir, "cgroup.freeze") => {
                Ok(Freezer::V2(dir))
            }
            _ => Err(CgroupError::unsupported(
                "freezing (pause)",
                "no v1 freezer controller and no cgroup2 tree with cgroup.freeze",
            )),
        }
    }

    fn dir(&self) -> &Path {
        match self {
            Freezer::V1(d) | Freezer::V2(d) => d,
        }
    }

    pub(crate) fn state(&self) -> Result<FreezerState, CgroupError> {
        match self {
            Freezer::V1(dir) => {
                let text = files::read(dir, "freezer.state")?;
                match text.trim() {
                    "THAWED" => Ok(FreezerState::Thawed),
                    "FREEZING" => Ok(FreezerState::Freezing),
                    "FROZEN" => Ok(FreezerState::Frozen),
                    other => Err(CgroupError::Parse {
                        path: dir.join("freezer.state"),
                        reason: format!("unknown state {other:?}"),
                    }),
                }
            }
            Freezer::V2(dir) => {
                let wanted = files::read(dir, "cgroup.freeze")?;
                if wanted.trim() == "0" {
                    return Ok(FreezerState::Thawed);
                }
                let events = files::parse_flat_keyed(
                    dir,
                    "cgroup.events",
                    &files::read(dir, "cgroup.events")?,
                )?;
                Ok(if events.get("frozen") == Some(&1) {
                    FreezerState::Frozen
                } else {
                    FreezerState::Freezing
                })
            }
        }
    }

    fn request(&self, frozen: bool) -> Result<(), CgroupError> {
        match self {
            Freezer::V1(dir) => files::write(
                dir,
                "freezer.state",
                if frozen { "FROZEN" } else { "THAWED" },
            ),
            Freezer::V2(dir) => files::write(dir, "cgroup.freeze", if frozen { "1" } else { "0" }),
        }
    }

    pub(crate) fn freeze(&self) -> Result<(), CgroupError> {
        self.request(true)?;
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        let mut delay = Duration::from_micros(100);
        let mut attempts = 0u32;
        loop {
            match self.state()? {
                FreezerState::Frozen => return Ok(()),
                // A thaw under us (another runtime call): ask again.
                FreezerState::Thawed => self.request(true)?,
                FreezerState::Freezing => {}
            }
            if Instant::now() >= deadline {
                let _ = self.request(false);
                return Err(CgroupError::Freezer {
                    path: self.dir().to_path_buf(),
                    state: "frozen",
                    reason: format!(
                        "some tasks did not stop within {}s (thawed again)",
                        FREEZE_TIMEOUT.as_secs()
                    ),
                });
            }
            attempts += 1;
            // v1 can get stuck in FREEZING on tasks in vfork or uninterruptible
            // sleep; a thaw/freeze cycle lets them reach a freezable point.
            if matches!(self, Freezer::V1(_)) && attempts.is_multiple_of(25) {
                self.request(false)?;
                self.request(true)?;
            }
            sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(10));
        }
    }

    pub(crate) fn thaw(&self) -> Result<(), CgroupError> {
        self.request(false)?;
        match self.state()? {
            // v1 reports FROZEN while a parent cgroup is frozen.
            FreezerState::Thawed => Ok(()),
            _ => Err(CgroupError::Freezer {
                path: self.dir().to_path_buf(),
                state: "thawed",
                reason: "the kernel still reports it frozen (is a parent cgroup frozen?)".into(),
            }),
        }
    }
}
