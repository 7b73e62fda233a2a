//! The one error type of the cgroup module. Every variant names the object
//! (file, directory, field) and says why, so that the CLI can print it as is.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A value of `linux.resources` (or `cgroupsPath`) that no host accepts.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },

    /// A valid request this host cannot honour (controller or file absent,
    /// feature of the other cgroup version).
    #[error("{what} is not supported on this host: {reason}")]
    Unsupported { what: String, reason: String },

    /// The cgroup mounts could not be found or understood.
    #[error("cannot determine the cgroup layout: {0}")]
    Layout(String),

    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },

    #[error("cannot create cgroup directory {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot remove cgroup directory {path}: {reason}")]
    Remove { path: PathBuf, reason: String },

    #[error("cannot set memory limit to {limit} in {path}: the cgroup already uses {usage} bytes (peak {peak})")]
    MemoryInUse {
        path: PathBuf,
        limit: i64,
        usage: u64,
        peak: u64,
    },

    #[error("cgroup {path} did not reach the {state} state: {reason}")]
    Freezer {
        path: PathBuf,
        state: &'static str,
        reason: String,
    },

    #[error("cannot signal process {pid} of cgroup {path}: {source}")]
    Signal {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("eBPF device filter for {path}: {op} failed: {source}")]
    Bpf {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("cannot watch {path} for OOM events: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CgroupError {
    /// True when the kernel refused for lack of permission (an unprivileged
    /// runtime without a delegated cgroup): rootless containers without
    /// limits then run without a cgroup of their own, as with runc.
    pub fn is_permission_denied(&self) -> bool {
        let source = match self {
            CgroupError::Create { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Read { source, .. } => source,
            _ => return false,
        };
        matches!(
            source.raw_os_error(),
            Some(libc::EACCES | libc::EPERM | libc::EROFS)
        )
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CgroupError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(what: impl Into<String>, reason: impl Into<String>) -> Self {
        CgroupError::Unsupported {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
