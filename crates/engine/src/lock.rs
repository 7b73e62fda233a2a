//! Per-container locks: an exclusive flock on `<run>/locks/<id>.lock`
//! serializes the commands that change one container (start, stop, rm...)
//! across processes. Every holder re-reads the database after locking, so a
//! lock file unlinked by `rm` while someone waited on it is harmless: the
//! waiter finds the container gone.

use std::fs::{self, File, OpenOptions};
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use crate::error::{IoContext, Result};
use crate::paths::Paths;

pub struct ContainerLock {
    _file: File,
}

impl ContainerLock {
    /// Waits for and takes the lock of container `id`.
    pub fn acquire(paths: &Paths, id: &str) -> Result<ContainerLock> {
        let file = open(&paths.lock_path(id))?;
        flock(&file, FlockOperation::LockExclusive).at("lock", &paths.lock_path(id))?;
        Ok(ContainerLock { _file: file })
    }

    /// Takes the lock if nobody holds it.
    pub fn try_acquire(paths: &Paths, id: &str) -> Result<Option<ContainerLock>> {
        let file = open(&paths.lock_path(id))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(ContainerLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e).at("lock", &paths.lock_path(id)),
        }
    }

    /// Removes the lock file of a container that no longer exists.
    pub fn remove_file(paths: &Paths, id: &str) {
        let _ = fs::remove_file(paths.lock_path(id));
    }
}

fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).at("create lock directory", dir)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .at("open lock", path)
}
