//! The image crate's error type. Each variant names the object (image,
//! layer, blob, file) and says why the operation failed.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::reference::ReferenceError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{what} {path}: {source}")]
    Path {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("blob {0} is missing from the store")]
    BlobMissing(Digest),
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what}: uncompressed size exceeds the limit of {limit} bytes (a decompression bomb?); set QUAI_MAX_LAYER_SIZE to raise it")]
    TooLarge { what: String, limit: u64 },
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
    #[error("layer {layer}: entry {entry:?}: {why}")]
    HostileEntry {
        layer: String,
        entry: String,
        why: String,
    },
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("image database: {0}")]
    Db(#[from] quai_db::DbError),
    #[error("image database: {0}")]
    Sql(#[from] quai_db::rusqlite::Error),
}

impl From<crate::digest::DigestError> for Error {
    fn from(e: crate::digest::DigestError) -> Error {
        Error::invalid("digest", e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
    pub(crate) fn path(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Path {
            what,
            path: path.into(),
            source,
        }
    }
    pub(crate) fn invalid(what: impl Into<String>, why: impl Into<String>) -> Error {
        Error::Invalid {
            what: what.into(),
            why: why.into(),
        }
    }
}

/// Adds "what" context to io results.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
    fn at(self, what: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
    fn at(self, what: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::path(what, path, e))
    }
}
