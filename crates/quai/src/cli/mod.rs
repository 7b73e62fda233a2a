//! docker's command line, one module per family of commands.

pub mod format;
pub mod image;
pub mod login;
pub mod registry;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use quai_image::apply::{ApplyOptions, DEFAULT_MAX_LAYER_SIZE};
use quai_image::store::{ImageStore, StoreOptions};

/// Options every command takes: where quai keeps its state. Tests and
/// rootless users point them at their own directories.
#[derive(Args, Clone, Debug)]
pub struct GlobalOptions {
    /// Directory of quai's persistent state (images, containers, volumes)
    #[arg(
        long,
        global = true,
        env = "QUAI_ROOT",
        default_value = "/var/lib/quai",
        value_name = "DIR"
    )]
    pub root: PathBuf,
    /// Directory of quai's runtime state (sockets, locks, running containers)
    #[arg(
        long,
        global = true,
        env = "QUAI_RUNROOT",
        default_value = "/run/quai",
        value_name = "DIR",
        alias = "run-root"
    )]
    pub runroot: PathBuf,
}

/// Environment variable bounding a layer's uncompressed size, in bytes.
pub const MAX_LAYER_SIZE_ENV: &str = "QUAI_MAX_LAYER_SIZE";

impl GlobalOptions {
    /// Opens the image store under `--root`.
    pub fn image_store(&self) -> Result<ImageStore> {
        let max_size = match std::env::var(MAX_LAYER_SIZE_ENV) {
            Ok(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| {
                    format!("{MAX_LAYER_SIZE_ENV}={v:?} is not a positive number of bytes")
                })?,
            Err(_) => DEFAULT_MAX_LAYER_SIZE,
        };
        let opts = StoreOptions {
            apply: ApplyOptions { max_size },
            no_seed: false,
        };
        // No context: the error already names the file, and docker-style
        // messages (e.g. "No such image") must reach the user unchanged.
        Ok(ImageStore::open(&self.root, opts)?)
    }
}
