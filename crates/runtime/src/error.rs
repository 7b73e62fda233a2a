//! The runtime's error type. Every variant names the object and the reason,
//! so that a message printed as-is tells the user what to fix.

use std::io;

use oci_spec::runtime::ContainerState;

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    /// A field of config.json is invalid; `field` is its JSON path.
    #[error("invalid config.json: {field}: {reason}")]
    InvalidConfig { field: String, reason: String },

    /// A caller-supplied option (not config.json) is invalid.
    #[error("{option}: {reason}")]
    InvalidOption { option: String, reason: String },

    #[error("container {0:?} does not exist")]
    NotFound(String),

    #[error("container {0:?} already exists")]
    AlreadyExists(String),

    #[error("container {id:?} is {status}: {reason}")]
    WrongState {
        id: String,
        status: ContainerState,
        reason: String,
    },

    /// A system call or file operation failed; `what` says on which object.
    #[error("{what}: {error}")]
    Io { what: String, error: io::Error },

    /// The container's init process reported a failure while setting up.
    #[error("container init failed to {step}: {message}")]
    Init { step: String, message: String },

    #[error("{kind} hook {path:?} failed: {reason}")]
    Hook {
        kind: &'static str,
        path: String,
        reason: String,
    },

    /// This container needs a runtime whose binary the container cannot
    /// reach writably, and this process runs a writable one: the caller
    /// re-executes itself with `exe_guard::reexec_protected` and retries.
    #[error(
        "the runtime binary is writable through /proc/self/exe; the process creating or \
         entering this container must first re-execute itself with \
         quai_runtime::exe_guard::reexec_protected() (CVE-2019-5736)"
    )]
    UnprotectedBinary,

    /// A feature of the OCI spec this build does not implement (yet).
    #[error("{0}")]
    Unsupported(String),

    /// config.json asks for a root file system that cannot be set up.
    #[error("invalid config.json: {0}")]
    InvalidRootfsConfig(crate::rootfs::RootfsError),

    /// Setting up the root file system failed.
    #[error("{0}")]
    Rootfs(crate::rootfs::RootfsError),

    /// linux.seccomp does not compile to a filter.
    #[error("invalid config.json: linux.{0}")]
    InvalidSeccomp(crate::seccomp::SeccompError),

    /// linux.resources is invalid, or a cgroup operation failed; the
    /// message names the field or file and why.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),

    /// The runtime's own state on disk is not what it wrote.
    #[error("state of container {id:?} is corrupt: {reason}")]
    CorruptState { id: String, reason: String },
}

impl RuntimeError {
    pub fn io(what: impl Into<String>, error: impl Into<io::Error>) -> RuntimeError {
        RuntimeError::Io {
            what: what.into(),
            error: error.into(),
        }
    }

    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn option(option: impl Into<String>, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::InvalidOption {
            option: option.into(),
            reason: reason.into(),
        }
    }

    /// The errno behind this error, when it comes from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            RuntimeError::Io { error, .. } => error.raw_os_error(),
            _ => None,
        }
    }
}

/// Adds "what failed, on which object" to io results.
pub trait IoContext<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<io::Error>> IoContext<T> for std::result::Result<T, E> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| RuntimeError::io(what(), e))
    }
}
