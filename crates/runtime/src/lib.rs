//! quai's OCI runtime: an OCI bundle (config.json + root file system) becomes
//! an isolated Linux process. No async code lives here: the runtime runs in
//! single-threaded processes (the `quai-runtime` CLI and the per-container
//! monitor) that fork without exec.

pub mod capabilities;
pub mod config;
pub mod error;
pub mod exe_guard;
pub mod failpoint;
mod fsutil;
pub mod hooks;
pub mod process;
pub mod procfs;
pub mod runtime;
pub mod security;
pub mod signal;
pub mod state;
pub mod template;
pub mod timefmt;

// TEMPORARY: the rootfs module lives on the runtime-rootfs branch; until it
// is merged, a minimal stand-in with the same API answers to this name.
mod minimal_rootfs;
pub(crate) use minimal_rootfs as rootfs;

pub use error::{Result, RuntimeError};
pub use runtime::{CreateOptions, ExecOptions, Runtime, Stdio};
