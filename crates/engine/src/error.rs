//! The engine's error type. Messages follow docker's wording where docker
//! users know it ("No such container: x", "Conflict. The container name
//! ..."), and otherwise say what failed, on which object, and why.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such volume: {0}")]
    NoSuchVolume(String),
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("No such exec instance or process: {0}")]
    NoSuchProcess(String),
    /// The request conflicts with the state of an object (a taken name, a
    /// running container that must be stopped first...).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is invalid (a bad flag value, a bad mount...).
    #[error("{0}")]
    Invalid(String),
    /// A feature quai does not have in this build; says what is missing.
    #[error("{0}")]
    Unsupported(String),
    /// The container's program could not be started. `status` is docker's
    /// exit status for it: 127 not found, 126 not executable, 125 otherwise.
    #[error("{message}")]
    StartFailed { message: String, status: i32 },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{what} {path}: {source}")]
    Path {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Image(#[from] quai_image::Error),
    #[error(transparent)]
    Net(#[from] quai_net::NetError),
    #[error(transparent)]
    Runtime(#[from] quai_runtime::RuntimeError),
    #[error("container database: {0}")]
    Db(#[from] quai_db::DbError),
    #[error("container database: {0}")]
    Sql(#[from] quai_db::rusqlite::Error),
    #[error("container record {id}: {reason}")]
    Corrupt { id: String, reason: String },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub fn io(what: impl Into<String>, source: io::Error) -> EngineError {
        EngineError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn path(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> EngineError {
        EngineError::Path {
            what,
            path: path.into(),
            source,
        }
    }

    pub fn invalid(message: impl Into<String>) -> EngineError {
        EngineError::Invalid(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> EngineError {
        EngineError::Conflict(message.into())
    }

    /// docker's exit status for this error in `run`/`start`/`exec`.
    pub fn exit_status(&self) -> i32 {
        match self {
            EngineError::StartFailed { status, .. } => *status,
            _ => 125,
        }
    }
}

/// docker's exit status for a container that could not be started, read
/// from the runtime's message as the docker CLI does: 127 when the program
/// is missing, 126 when it cannot be executed, 125 otherwise.
pub fn start_failure_status(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied")
        || m.contains("is a directory")
        || m.contains("not a regular file")
        || m.contains("exec format error")
    {
        126
    } else {
        125
    }
}

/// Adds "what" context to io results.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
    fn at(self, what: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T, E: Into<io::Error>> IoContext<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| EngineError::io(what(), e.into()))
    }
    fn at(self, what: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| EngineError::path(what, path, e.into()))
    }
}
