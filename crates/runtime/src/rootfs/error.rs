//! The one error type of the rootfs module.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Every variant names the object (a config field or a path) and the cause.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The configuration asks for something invalid or unsupported; `field`
    /// is the JSON path in config.json (`mounts[2].options`).
    #[error("{field}: {reason}")]
    Config { field: String, reason: String },

    /// A system call failed while doing `action` (which names the object).
    #[error("{}", SysDisplay(self))]
    Sys {
        action: String,
        err: io::Error,
        /// What the kernel logged on the file system context, if anything
        /// (`tmpfs: Bad value for 'size'`).
        detail: Option<String>,
    },

    /// The root file system contains something that would steer the runtime
    /// elsewhere (a symlinked mount point, a fake `/dev/null`, a planted
    /// `/proc`): refused rather than followed.
    #[error("refusing to {action} {}: {reason}", path.display())]
    Unsafe {
        action: String,
        path: PathBuf,
        reason: String,
    },
}

struct SysDisplay<'a>(&'a RootfsError);

impl fmt::Display for SysDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let RootfsError::Sys {
            action,
            err,
            detail,
        } = self.0
        {
            write!(f, "{action}: {err}")?;
            if let Some(detail) = detail {
                write!(f, " ({detail})")?;
            }
        }
        Ok(())
    }
}

impl RootfsError {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> RootfsError {
        RootfsError::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn sys(action: impl Into<String>, err: impl Into<io::Error>) -> RootfsError {
        RootfsError::Sys {
            action: action.into(),
            err: err.into(),
            detail: None,
        }
    }

    pub(crate) fn unsafe_path(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        reason: impl Into<String>,
    ) -> RootfsError {
        RootfsError::Unsafe {
            action: action.into(),
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The OS error number behind a failed system call, if that is the cause.
    pub fn errno(&self) -> Option<i32> {
        match self {
            RootfsError::Sys { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }
}

/// Shorthand to attach an action to a failing system call.
pub(crate) trait SysContext<T> {
    fn or_sys(self, action: impl FnOnce() -> String) -> Result<T, RootfsError>;
}

impl<T, E: Into<io::Error>> SysContext<T> for Result<T, E> {
    fn or_sys(self, action: impl FnOnce() -> String) -> Result<T, RootfsError> {
        self.map_err(|e| RootfsError::sys(action(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_object_and_the_cause() {
        let e = RootfsError::config("mounts[2].destination", "must be an absolute path");
        assert_eq!(
            e.to_string(),
            "mounts[2].destination: must be an absolute path"
        );

        let e = RootfsError::Sys {
            action: "mount tmpfs on /dev/shm".into(),
            err: io::Error::from_raw_os_error(libc::EINVAL),
            detail: Some("tmpfs: Bad value for 'size'".into()),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("mount tmpfs on /dev/shm: Invalid argument"),
            "{text}"
        );
        assert!(text.ends_with("(tmpfs: Bad value for 'size')"), "{text}");
        assert_eq!(e.errno(), Some(libc::EINVAL));

        let e = RootfsError::unsafe_path("mount proc on", "/proc", "it is a symlink");
        assert_eq!(
            e.to_string(),
            "refusing to mount proc on /proc: it is a symlink"
        );
        assert_eq!(e.errno(), None);
    }
}
