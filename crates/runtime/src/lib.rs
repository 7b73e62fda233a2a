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
pub mod rootfs;
pub mod runtime;
pub mod safe_path;
pub mod seccomp;
pub mod security;
pub mod signal;
pub mod state;
pub mod template;
pub mod timefmt;

pub use error::{Result, RuntimeError};
pub use runtime::{CreateOptions, ExecOptions, Runtime, Stdio};
