//! The engine over one state root: containers, volumes and events in
//! `quai.db`, images through the image store. Commands of the CLI (and of
//! the API server) are methods here.

use std::path::Path;

use quai_db::rusqlite::Connection;
use quai_image::store::{ImageStore, StoreOptions};

use crate::client::{PendingShim, ShimLauncher};
use crate::error::Result;
use crate::paths::Paths;

pub struct Engine {
    pub(crate) paths: Paths,
    pub(crate) store: ImageStore,
    pub(crate) launcher: ShimLauncher,
    /// A monitor started ahead for the next container started.
    pub(crate) pending_monitor: Option<PendingShim>,
}

impl Engine {
    /// Opens the engine over `root` (persistent state) and `runroot`
    /// (runtime state).
    pub fn open(root: &Path, runroot: &Path, store: StoreOptions) -> Result<Engine> {
        let store = ImageStore::open(root, store)?;
        Ok(Engine {
            paths: Paths::new(root, runroot),
            store,
            launcher: ShimLauncher::default(),
            pending_monitor: None,
        })
    }

    /// Wraps an image store opened by the caller.
    pub fn with_store(store: ImageStore, runroot: &Path) -> Engine {
        let paths = Paths::new(store.root(), runroot);
        Engine {
            paths,
            store,
            launcher: ShimLauncher::default(),
            pending_monitor: None,
        }
    }

    /// How monitors are started (the `quai` binary to run).
    pub fn set_launcher(&mut self, launcher: ShimLauncher) {
        self.launcher = launcher;
    }

    /// A monitor started ahead ([`ShimLauncher::prespawn`]) for the
    /// container this command is about to create and start (`run`): the
    /// next [`Engine::start`] hands the container to it. If nothing is
    /// started, it exits when the engine is dropped.
    pub fn set_pending_monitor(&mut self, pending: PendingShim) {
        self.pending_monitor = Some(pending);
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn images(&mut self) -> &mut ImageStore {
        &mut self.store
    }

    pub(crate) fn conn(&mut self) -> &Connection {
        self.store.db().conn()
    }
}
