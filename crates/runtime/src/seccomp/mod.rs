//! seccomp for containers: the OCI `linux.seccomp` section compiled to a
//! BPF program by quai itself (no libseccomp), installed in the container's
//! init right before execve.
//!
//! The work is split so the forked child does as little as possible:
//! [`compile`] runs in the runtime before clone and does all parsing,
//! validation, syscall-name resolution, BPF generation and kernel feature
//! probing; [`Filter::install`] is a single seccomp(2) call that neither
//! allocates nor takes locks. When a rule uses `SCMP_ACT_NOTIFY`, install
//! returns the notification fd, which the runtime hands to the agent with
//! [`send_listener`].
//!
//! See `docs/architecture.md` (runtime/seccomp) for the semantics and why
//! quai generates its own BPF.

mod arch;
mod bpf;
mod codegen;
mod docker;
mod features;
mod kernel;
mod notify;
mod profile;
mod syscall_table;

use std::ffi::c_ulong;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    ContainerProcessState, LinuxSeccomp, LinuxSeccompFilterFlag, State, SECCOMP_FD_NAME,
};

pub use bpf::{RunError, SeccompData};
pub use docker::{from_docker_profile, DockerProfileTarget, DOCKER_DEFAULT_CAPABILITIES};
pub use features::features;
pub use notify::{recv_fd, send_fd, send_listener};

use bpf::Instruction;
use profile::{
    action_of, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, RET_KILL_THREAD, RET_LOG, RET_TRACE,
    RET_TRAP, RET_USER_NOTIF,
};

/// Why a seccomp profile could not be compiled, installed or handed over.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {what} is {value}, which does not fit the kernel's 16-bit return data")]
    InvalidErrnoRet { what: String, value: u32 },
    #[error(
        "seccomp rule for syscall {syscall:?}: argument index {index} is out of range \
         (syscalls have arguments 0 to 5)"
    )]
    InvalidArgIndex { syscall: String, index: usize },
    #[error("seccomp: syscalls[{position}] contains an empty syscall name")]
    EmptySyscallName { position: usize },
    #[error(
        "seccomp: SCMP_ACT_NOTIFY cannot be the default action: the runtime's own calls \
         before execve would wait for an agent that has no fd yet"
    )]
    NotifyAsDefault,
    #[error(
        "seccomp: SCMP_ACT_NOTIFY cannot be used for syscall {syscall:?}: the runtime needs it \
         to hand the notification fd over"
    )]
    NotifyRefused { syscall: String },
    #[error("seccomp: SCMP_ACT_NOTIFY is used but linux.seccomp.listenerPath is not set")]
    NotifyWithoutListener,
    #[error("seccomp: {flag} is not supported by this kernel")]
    FlagUnsupported { flag: String },
    #[error("seccomp: action {action} is not supported by this kernel")]
    ActionUnsupported { action: &'static str },
    #[error(
        "seccomp: the profile compiles to {instructions} BPF instructions, more than the \
         kernel's limit of 4096"
    )]
    ProgramTooLarge { instructions: usize },
    #[error("seccomp: loading the filter failed: {source}{}", load_hint(.source))]
    Install { source: io::Error },
    #[error("seccomp: TSYNC could not move thread {tid} onto the filter")]
    ThreadNotSynchronized { tid: i64 },
    #[error("seccomp: invalid Docker seccomp profile: {reason}")]
    DockerProfile { reason: String },
    #[error("seccomp: handing the notification fd to the agent at {path:?} failed: {source}")]
    Listener { path: PathBuf, source: io::Error },
}

fn load_hint(error: &io::Error) -> &'static str {
    if error.raw_os_error() == Some(libc::EACCES) {
        " (the process has neither no_new_privs nor CAP_SYS_ADMIN)"
    } else {
        ""
    }
}

/// A compiled seccomp profile, ready to install.
#[derive(Debug, Clone)]
pub struct Filter {
    instructions: Vec<Instruction>,
    flags: c_ulong,
    needs_listener: bool,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
}

/// What a filter decides for one syscall (a seccomp return value, decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    KillProcess,
    KillThread,
    Trap,
    Errno(u16),
    Notify,
    Trace(u16),
    Log,
    Allow,
}

impl Verdict {
    /// Decodes a seccomp return value; `None` for values no action has.
    pub fn from_ret(ret: u32) -> Option<Verdict> {
        let data = (ret & 0xffff) as u16;
        Some(match action_of(ret) {
            RET_KILL_PROCESS => Verdict::KillProcess,
            RET_KILL_THREAD => Verdict::KillThread,
            RET_TRAP => Verdict::Trap,
            RET_ERRNO => Verdict::Errno(data),
            RET_USER_NOTIF => Verdict::Notify,
            RET_TRACE => Verdict::Trace(data),
            RET_LOG => Verdict::Log,
            RET_ALLOW => Verdict::Allow,
            _ => return None,
        })
    }
}

/// Compiles the OCI seccomp section into a filter for this kernel. Call it
/// before cloning the container's init: it allocates, logs and probes the
/// kernel (which flags and actions it supports), so that the child only has
/// to [`install`](Filter::install).
///
/// Syscall names that none of the profile's architectures has are skipped
/// (logged at debug level), as runc does. Unknown architecture, action,
/// operator or flag names are refused when the config is parsed.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let profile = profile::parse(seccomp)?;
    let program = codegen::generate(&profile)?;
    let needs_listener = program
        .returns
        .iter()
        .any(|&ret| action_of(ret) == RET_USER_NOTIF);
    if needs_listener && seccomp.listener_path().is_none() {
        return Err(SeccompError::NotifyWithoutListener);
    }
    for &ret in &program.returns {
        let action = action_of(ret);
        if action != RET_ALLOW && !kernel::action_available(action) {
            return Err(SeccompError::ActionUnsupported {
                action: action_name(action),
            });
        }
    }
    let flags = filter_flags(profile.flags.as_deref(), needs_listener)?;
    tracing::debug!(
        instructions = program.instructions.len(),
        flags,
        needs_listener,
        "seccomp: filter compiled"
    );
    Ok(Filter {
        instructions: program.instructions,
        flags,
        needs_listener,
        listener_path: seccomp.listener_path().clone(),
        listener_metadata: seccomp.listener_metadata().clone(),
    })
}

fn action_name(action: u32) -> &'static str {
    match action {
        RET_KILL_PROCESS => "SCMP_ACT_KILL_PROCESS",
        RET_KILL_THREAD => "SCMP_ACT_KILL_THREAD",
        RET_TRAP => "SCMP_ACT_TRAP",
        RET_ERRNO => "SCMP_ACT_ERRNO",
        RET_USER_NOTIF => "SCMP_ACT_NOTIFY",
        RET_TRACE => "SCMP_ACT_TRACE",
        RET_LOG => "SCMP_ACT_LOG",
        _ => "SCMP_ACT_ALLOW",
    }
}

/// The seccomp(2) flags for a profile, each checked against the kernel.
/// Without a `flags` list, SPEC_ALLOW is set where supported, as runc does
/// (the container then keeps the host's speculative-store-bypass policy
/// instead of being forced into the slower mitigation).
fn filter_flags(
    requested: Option<&[LinuxSeccompFilterFlag]>,
    needs_listener: bool,
) -> Result<c_ulong, SeccompError> {
    let unsupported = |flag: &str| SeccompError::FlagUnsupported {
        flag: flag.to_owned(),
    };
    let mut flags: c_ulong = 0;
    let mut wait_killable = false;
    match requested {
        None => {
            if kernel::filter_flags_supported(kernel::FLAG_SPEC_ALLOW) {
                flags |= kernel::FLAG_SPEC_ALLOW;
            }
        }
        Some(list) => {
            for flag in list {
                let (bits, name) = match flag {
                    LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {
                        (kernel::FLAG_TSYNC, "SECCOMP_FILTER_FLAG_TSYNC")
                    }
                    LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                        (kernel::FLAG_LOG, "SECCOMP_FILTER_FLAG_LOG")
                    }
                    LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                        (kernel::FLAG_SPEC_ALLOW, "SECCOMP_FILTER_FLAG_SPEC_ALLOW")
                    }
                    LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                        // Only meaningful (and only accepted by the kernel)
                        // together with a notification listener.
                        wait_killable = true;
                        (
                            kernel::FLAG_WAIT_KILLABLE_RECV | kernel::FLAG_NEW_LISTENER,
                            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                        )
                    }
                };
                if !kernel::filter_flags_supported(bits) {
                    return Err(unsupported(name));
                }
                if bits & kernel::FLAG_WAIT_KILLABLE_RECV == 0 {
                    flags |= bits;
                }
            }
        }
    }
    if needs_listener {
        flags |= kernel::FLAG_NEW_LISTENER;
        if wait_killable {
            flags |= kernel::FLAG_WAIT_KILLABLE_RECV;
        }
        if flags & kernel::FLAG_TSYNC != 0 {
            // The kernel refuses TSYNC with a listener unless TSYNC failures
            // are reported as ESRCH (the return value is taken by the fd).
            flags |= kernel::FLAG_TSYNC_ESRCH;
            if !kernel::filter_flags_supported(flags) {
                return Err(unsupported(
                    "SECCOMP_FILTER_FLAG_TSYNC together with SCMP_ACT_NOTIFY (Linux 5.7 or newer)",
                ));
            }
        }
    } else if wait_killable {
        tracing::debug!("seccomp: WAIT_KILLABLE_RECV ignored: no rule uses SCMP_ACT_NOTIFY");
    }
    Ok(flags)
}

/// `c_ulong` is 32 bits wide on 32-bit targets.
#[allow(clippy::useless_conversion)]
fn widen(flags: c_ulong) -> u64 {
    u64::from(flags)
}

impl Filter {
    /// Loads the filter on the calling thread (all threads with TSYNC).
    /// Call it last before execve, after setuid and capability changes,
    /// with no_new_privs set or CAP_SYS_ADMIN still held. Returns the
    /// user-notification fd when the profile uses `SCMP_ACT_NOTIFY`.
    ///
    /// Safe in a child forked from a multi-threaded process: one syscall,
    /// no allocation, no locks (errors carry only the errno).
    pub fn install(&self) -> Result<Option<OwnedFd>, SeccompError> {
        kernel::load(&self.instructions, self.flags).map_err(|error| match error {
            kernel::LoadError::Kernel(source) => SeccompError::Install { source },
            kernel::LoadError::ThreadNotSynchronized(tid) => {
                SeccompError::ThreadNotSynchronized { tid }
            }
        })
    }

    /// Whether [`install`](Self::install) returns a notification fd that
    /// must go to the agent at [`listener_path`](Self::listener_path).
    pub fn needs_listener(&self) -> bool {
        self.needs_listener
    }

    pub fn listener_path(&self) -> Option<&Path> {
        self.listener_path.as_deref()
    }

    /// `listenerMetadata`, for the `metadata` field of the process state
    /// sent to the agent.
    pub fn listener_metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
    }

    /// Hands the notification fd `install` returned to the seccomp agent at
    /// `listenerPath`, with the container process state the runtime spec
    /// prescribes (`fds: ["seccompFd"]`, the init's `pid` as the runtime
    /// sees it, `listenerMetadata`, and the container's `state`).
    pub fn hand_over_listener(
        &self,
        listener: BorrowedFd<'_>,
        pid: i32,
        container: &State,
    ) -> Result<(), SeccompError> {
        let path = self
            .listener_path
            .as_deref()
            .ok_or(SeccompError::NotifyWithoutListener)?;
        let mut process_state = ContainerProcessState::default();
        process_state
            .set_version(container.version().clone())
            .set_fds(vec![SECCOMP_FD_NAME.to_owned()])
            .set_pid(pid)
            .set_metadata(self.listener_metadata.clone())
            .set_state(container.clone());
        let json = serde_json::to_vec(&process_state).map_err(|e| SeccompError::Listener {
            path: path.to_owned(),
            source: io::Error::other(e),
        })?;
        send_listener(path, listener, &json)
    }

    /// Number of BPF instructions.
    pub fn instruction_count(&self) -> usize {
        self.instructions.len()
    }

    /// The seccomp(2) flags the filter is loaded with.
    pub fn flags(&self) -> u64 {
        widen(self.flags)
    }

    /// The raw return value the kernel would get from this filter for one
    /// syscall, computed by interpreting the program.
    pub fn evaluate(&self, data: &SeccompData) -> Result<u32, RunError> {
        bpf::run(&self.instructions, data)
    }

    /// True when the filter lets the native ABI make each of `calls` (a
    /// syscall name and its arguments) undisturbed.
    pub fn allows(&self, calls: &[(&str, [u64; 6])]) -> bool {
        let native = arch::ArchSpec::native();
        calls.iter().all(|(name, args)| {
            let Some(nr) = native.resolve(name) else {
                return false;
            };
            let data = SeccompData {
                nr,
                arch: native.audit_token,
                instruction_pointer: 0,
                args: *args,
            };
            matches!(self.verdict(&data), Ok(Some(Verdict::Allow | Verdict::Log)))
        })
    }

    /// [`evaluate`](Self::evaluate), decoded.
    pub fn verdict(&self, data: &SeccompData) -> Result<Option<Verdict>, RunError> {
        self.evaluate(data).map(Verdict::from_ret)
    }

    /// The program as `struct sock_filter` records in native byte order
    /// (what `seccomp_export_bpf` writes), for inspection and comparison.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.instructions.len() * 8);
        for insn in &self.instructions {
            out.extend_from_slice(&insn.code.to_ne_bytes());
            out.push(insn.jt);
            out.push(insn.jf);
            out.extend_from_slice(&insn.k.to_ne_bytes());
        }
        out
    }
}

/// Runs a program given as `struct sock_filter` records in native byte
/// order (see [`Filter::to_bytes`]) on `data`: lets tests put programs from
/// other compilers (libseccomp) through the same interpreter.
pub fn evaluate_raw(program: &[u8], data: &SeccompData) -> Result<u32, RunError> {
    let instructions: Vec<Instruction> = program
        .chunks_exact(8)
        .map(|record| Instruction {
            code: u16::from_ne_bytes([record[0], record[1]]),
            jt: record[2],
            jf: record[3],
            k: u32::from_ne_bytes([record[4], record[5], record[6], record[7]]),
        })
        .collect();
    bpf::run(&instructions, data)
}

#[cfg(test)]
mod tests;
