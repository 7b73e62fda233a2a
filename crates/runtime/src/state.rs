//! Containers on disk: one directory per container under the state root,
//! holding `state.json` (replaced atomically) and, between create and start,
//! the `exec.fifo` the init waits on. Commands that change a container hold
//! an exclusive flock on its directory, so they serialize; readers (`state`,
//! `list`) need no lock because state.json is never torn.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{ContainerState, Spec, State as OciState};
use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, RuntimeError};
use crate::fsutil::write_atomic;
use crate::procfs::ProcessIdentity;

/// Where runtime state lives unless `--root` says otherwise.
pub const DEFAULT_ROOT: &str = "/run/quai/runtime";
const STATE_FILE: &str = "state.json";
const EXEC_FIFO: &str = "exec.fifo";
/// OCI runtime spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

/// The phase `create` has reached; running and stopped are not recorded but
/// derived from the init process, which may exit at any moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Creating,
    Created,
}

/// Options of `create` that later commands must honour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedOptions {
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

/// Everything later commands (`start`, `state`, `kill`, `exec`, `delete`,
/// `ps`) need, captured at create time so that edits to the bundle after
/// create change nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub phase: Phase,
    pub init: Option<ProcessIdentity>,
    /// RFC 3339 creation time.
    pub created: String,
    pub options: RecordedOptions,
    pub spec: Spec,
    /// The container's cgroup directories, resolved at create; `None` for
    /// an unprivileged container that runs without a cgroup of its own.
    #[serde(default)]
    pub cgroup: Option<crate::cgroups::Cgroup>,
    /// For a container without a mount namespace of its own: the mount id
    /// of its rootfs before create stacked the container's bind on it in
    /// the runtime's namespace. `delete` detaches what lies above.
    #[serde(default)]
    pub shared_mount_ns_rootfs_mount: Option<u64>,
}

impl ContainerRecord {
    pub fn annotations(&self) -> HashMap<String, String> {
        self.spec.annotations().clone().unwrap_or_default()
    }
}

/// The OCI state of a container plus what `list` prints.
#[derive(Debug, Clone)]
pub struct ContainerStatus {
    pub record: ContainerRecord,
    pub status: ContainerState,
}

impl ContainerStatus {
    /// Pid of the init while it exists (runc reports 0 once stopped).
    pub fn pid(&self) -> i32 {
        match (self.status, self.record.init) {
            (ContainerState::Stopped, _) | (_, None) => 0,
            (_, Some(init)) => init.pid,
        }
    }

    /// Whether `pause` froze the container. "paused" is runc's status on top
    /// of the OCI ones (the OCI state, for hooks, says "running" or
    /// "created"); a cgroup that cannot be read is not reported paused.
    pub fn is_paused(&self) -> bool {
        matches!(
            self.status,
            ContainerState::Running | ContainerState::Created
        ) && self
            .record
            .cgroup
            .as_ref()
            .is_some_and(|cg| cg.freezer_state().ok() == Some(crate::cgroups::FreezerState::Frozen))
    }

    /// The status as runc prints it (`state`, `list`): the OCI status, or
    /// "paused".
    pub fn runc_status(&self) -> String {
        if self.is_paused() {
            "paused".to_string()
        } else {
            self.status.to_string()
        }
    }

    /// The state document of the OCI runtime spec, as `state` prints it and
    /// hooks read it on stdin.
    pub fn oci_state(&self) -> OciState {
        let mut state = OciState::default();
        state.set_version(OCI_VERSION.to_string());
        state.set_id(self.record.id.clone());
        state.set_status(self.status);
        let pid = self.pid();
        state.set_pid((pid > 0).then_some(pid));
        state.set_bundle(self.record.bundle.clone());
        let annotations = self.record.annotations();
        state.set_annotations((!annotations.is_empty()).then_some(annotations));
        state
    }
}

/// The directory that holds every container's state.
#[derive(Debug, Clone)]
pub struct StateRoot {
    path: PathBuf,
}

/// Checks an id the way runc does: it becomes a directory name, so no
/// slashes, no `.`/`..`, and only a conservative character set.
pub fn validate_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        Some("is empty")
    } else if id == "." || id == ".." {
        Some("is a relative directory name")
    } else if id.len() > 1024 {
        Some("is longer than 1024 bytes")
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'))
    {
        Some("may only contain letters, digits, '_', '+', '-' and '.'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(RuntimeError::InvalidId {
            id: id.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

impl StateRoot {
    /// Opens (creating it if needed, mode 0700) the state root at `path`.
    pub fn open(path: &Path) -> Result<StateRoot> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .ctx(|| format!("create state root {}", path.display()))?;
        let path = fs::canonicalize(path).ctx(|| format!("state root {}", path.display()))?;
        Ok(StateRoot { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir_of(&self, id: &str) -> PathBuf {
        self.path.join(id)
    }

    /// Creates the directory of a new container and locks it; fails if a
    /// container with this id exists.
    pub fn create(&self, id: &str) -> Result<LockedContainer> {
        validate_id(id)?;
        let dir = self.dir_of(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !self.reclaim_abandoned(&dir) {
                    return Err(RuntimeError::AlreadyExists(id.to_string()));
                }
                fs::DirBuilder::new()
                    .mode(0o711)
                    .create(&dir)
                    .map_err(|_| RuntimeError::AlreadyExists(id.to_string()))?;
            }
            Err(e) => return Err(RuntimeError::io(format!("create {}", dir.display()), e)),
        }
        // The umask may have narrowed the mode; the init, possibly running as
        // another user, needs to traverse the directory.
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o711));
        match lock_dir(&dir) {
            Ok(lock) => Ok(LockedContainer {
                id: id.to_string(),
                dir,
                _lock: lock,
            }),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Removes a container directory that a create killed before it wrote
    /// any state left behind; true when it did. A directory whose lock is
    /// held belongs to a create still running, and is left alone.
    fn reclaim_abandoned(&self, dir: &Path) -> bool {
        if dir.join(STATE_FILE).exists() {
            return false;
        }
        let Ok(fd) = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        ) else {
            return false;
        };
        if flock(fd.as_fd(), FlockOperation::NonBlockingLockExclusive).is_err() {
            return false;
        }
        !dir.join(STATE_FILE).exists() && fs::remove_dir_all(dir).is_ok()
    }

    /// Locks an existing container, waiting for other commands on it.
    pub fn lock(&self, id: &str) -> Result<LockedContainer> {
        validate_id(id)?;
        let dir = self.dir_of(id);
        let lock = match lock_dir(&dir) {
            Ok(lock) => lock,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => return Err(e),
        };
        // A delete that held the lock before us may have removed the
        // directory (and a create made a new one under the same name): the
        // lock only counts if it is on the directory that is there now.
        let locked = rustix::fs::fstat(&lock).ctx(|| format!("inspect {}", dir.display()))?;
        match rustix::fs::stat(&dir) {
            Ok(now) if now.st_dev == locked.st_dev && now.st_ino == locked.st_ino => {}
            _ => return Err(RuntimeError::NotFound(id.to_string())),
        }
        Ok(LockedContainer {
            id: id.to_string(),
            dir,
            _lock: lock,
        })
    }

    /// Reads a container's record without locking it.
    pub fn read(&self, id: &str) -> Result<ContainerRecord> {
        validate_id(id)?;
        read_record(id, &self.dir_of(id))
    }

    /// Current status of a container, without locking it.
    pub fn status(&self, id: &str) -> Result<ContainerStatus> {
        let record = self.read(id)?;
        let status = derive_status(&record, &self.dir_of(id));
        Ok(ContainerStatus { record, status })
    }

    /// Ids of every container directory, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.path).ctx(|| format!("read {}", self.path.display()))? {
            let entry = entry.ctx(|| format!("read {}", self.path.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_id(&name).is_ok() && entry.path().is_dir() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

fn lock_dir(dir: &Path) -> Result<OwnedFd> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", dir.display()))?;
    flock(fd.as_fd(), FlockOperation::LockExclusive).ctx(|| format!("lock {}", dir.display()))?;
    Ok(fd)
}

fn read_record(id: &str, dir: &Path) -> Result<ContainerRecord> {
    let path = dir.join(STATE_FILE);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(RuntimeError::NotFound(id.to_string()))
        }
        Err(e) => return Err(RuntimeError::io(format!("read {}", path.display()), e)),
    };
    serde_json::from_slice(&data).map_err(|e| RuntimeError::CorruptState {
        id: id.to_string(),
        reason: format!("{}: {e}", path.display()),
    })
}

fn derive_status(record: &ContainerRecord, dir: &Path) -> ContainerState {
    match record.init {
        None => match record.phase {
            Phase::Creating => ContainerState::Creating,
            Phase::Created => ContainerState::Stopped,
        },
        Some(init) if !init.is_alive() => ContainerState::Stopped,
        Some(_) => match record.phase {
            Phase::Creating => ContainerState::Creating,
            Phase::Created if dir.join(EXEC_FIFO).exists() => ContainerState::Created,
            Phase::Created => ContainerState::Running,
        },
    }
}

/// A container directory held under an exclusive lock; dropping it
/// releases the lock.
#[derive(Debug)]
pub struct LockedContainer {
    id: String,
    dir: PathBuf,
    _lock: OwnedFd,
}

impl LockedContainer {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn exec_fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<ContainerRecord> {
        read_record(&self.id, &self.dir)
    }

    pub fn status(&self) -> Result<ContainerStatus> {
        let record = self.load()?;
        let status = derive_status(&record, &self.dir);
        Ok(ContainerStatus { record, status })
    }

    pub fn save(&self, record: &ContainerRecord) -> Result<()> {
        let data = serde_json::to_vec(record).map_err(|e| RuntimeError::CorruptState {
            id: self.id.clone(),
            reason: format!("cannot serialize state: {e}"),
        })?;
        write_atomic(&self.dir.join(STATE_FILE), &data, 0o600)
    }

    /// Removes the container's directory. The record goes first so that a
    /// crash halfway leaves a directory `list` ignores and `create` reuses
    /// only after `delete`.
    pub fn remove(self) -> Result<()> {
        let state = self.dir.join(STATE_FILE);
        match fs::remove_file(&state) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io(format!("remove {}", state.display()), e)),
        }
        fs::remove_dir_all(&self.dir).ctx(|| format!("remove {}", self.dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_like_runc() {
        for good in ["a", "abc-1.2_3+x", "A"] {
            validate_id(good).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "x\u{e9}"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_directory_left_without_state_is_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::open(&dir.path().join("state")).unwrap();
        // What a create killed right after mkdir leaves.
        fs::create_dir(root.path().join("c2")).unwrap();
        let reclaimed = root.create("c2").unwrap();
        assert!(reclaimed.dir().exists());
        // While its creator holds the lock, it is not reclaimed.
        assert!(matches!(
            root.create("c2"),
            Err(RuntimeError::AlreadyExists(_))
        ));
    }

    #[test]
    fn create_refuses_duplicates_and_lock_finds_missing() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::open(&dir.path().join("state")).unwrap();
        let first = root.create("c1").unwrap();
        first
            .save(&ContainerRecord {
                id: "c1".into(),
                bundle: PathBuf::from("/b"),
                rootfs: PathBuf::from("/b/rootfs"),
                shared_mount_ns_rootfs_mount: None,
                phase: Phase::Creating,
                init: None,
                created: String::new(),
                options: RecordedOptions::default(),
                spec: Spec::default(),
                cgroup: None,
            })
            .unwrap();
        drop(first);
        assert!(matches!(
            root.create("c1"),
            Err(RuntimeError::AlreadyExists(_))
        ));
        assert!(matches!(root.lock("nope"), Err(RuntimeError::NotFound(_))));
        assert!(matches!(root.read("nope"), Err(RuntimeError::NotFound(_))));
        assert_eq!(root.status("c1").unwrap().status, ContainerState::Creating);
    }
}
