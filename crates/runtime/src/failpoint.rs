//! Failure injection for tests: in debug builds, setting
//! `QUAI_RUNTIME_FAILPOINT=<name>` makes the step called `<name>` fail, so
//! tests can prove that a failure at any step leaves nothing behind. Release
//! builds compile the check away.

use crate::error::{Result, RuntimeError};

/// Environment variable naming the step to fail.
pub const ENV: &str = "QUAI_RUNTIME_FAILPOINT";

/// Every named step, for tests that walk them all.
pub const POINTS: &[&str] = &[
    "create:state-dir",
    "create:spawned",
    "init:started",
    "init:sysctl",
    "init:rootfs-prepared",
    "init:create-container-hooks",
    "init:rootfs-finalized",
    "init:ready",
    "create:ready",
];

#[inline]
pub fn check(point: &'static str) -> Result<()> {
    if cfg!(debug_assertions) && std::env::var_os(ENV).is_some_and(|v| v == point) {
        return Err(RuntimeError::Init {
            step: point.to_string(),
            message: "failure injected by QUAI_RUNTIME_FAILPOINT".to_string(),
        });
    }
    Ok(())
}
