//! Crash injection for tests: in debug builds, `QUAI_ENGINE_CRASH=<step>`
//! makes the process that reaches `<step>` kill itself with SIGKILL
//! there, so tests can prove that `rm -f` cleans up after a crash at any
//! step of `run`. Release builds compile the check away.

/// Environment variable naming the step.
pub const ENV: &str = "QUAI_ENGINE_CRASH";

/// Every step, in the order `run` reaches them; `cli:` steps are in the
/// command, `shim:` steps in the container's monitor.
pub const STEPS: &[&str] = &[
    "cli:created",
    "cli:spawned",
    "shim:namespace",
    "shim:mounted",
    "shim:runtime-created",
    "shim:runtime-started",
    "shim:recorded",
    "shim:exited",
    "shim:removing",
];

/// Steps of other commands: `commit:frozen` (the container frozen and
/// recorded paused, its changes not read yet).
pub const OTHER_STEPS: &[&str] = &["commit:frozen"];

#[inline]
pub fn crash_at(step: &'static str) {
    if cfg!(debug_assertions) && std::env::var_os(ENV).is_some_and(|v| v == step) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL to ourselves does not return; in case it did:
        std::process::abort();
    }
}
