//! quai's OCI runtime: an OCI bundle (config.json + root file system) becomes
//! an isolated Linux process. No async code lives here: the runtime runs in
//! single-threaded processes (the `quai-runtime` CLI and the per-container
//! monitor) that fork without exec.

pub mod rootfs;
pub mod safe_path;
pub mod seccomp;
