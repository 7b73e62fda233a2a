//! Creating the process that becomes the container's init (or an exec'd
//! process) inside its namespaces, as a direct child of the runtime so that
//! the runtime, or the engine's monitor calling it in-process, can wait for it.
//!
//! Fast path: one clone with the CLONE_NEW* flags, then setns for the
//! namespaces joined by path. Namespaces that only apply to children (pid
//! and time joined by setns, a new time namespace whose clock offsets must
//! be written before any process enters it) need an intermediate process:
//! it joins or unshares them, clones the final process with CLONE_PARENT
//! (so the final process is the runtime's child, not its own), reports the
//! pid and exits.

use std::os::fd::BorrowedFd;

use oci_spec::runtime::LinuxNamespaceType;
use rustix::process::{waitpid, Pid, WaitOptions};

use crate::error::{IoContext, Result, RuntimeError};
use crate::process::namespaces::{clone_flag, NamespaceFile};
use crate::process::sync::{Message, SyncSocket};
use crate::process::sys::{self, clone_process, Cloned};

/// How to build the namespaces of the new process.
pub struct SpawnPlan<'a> {
    /// CLONE_NEW* flags of namespaces to create.
    pub new_flags: i32,
    /// Namespaces to join, in joining order.
    pub join: &'a [NamespaceFile],
    /// Lines for /proc/self/timens_offsets when a new time namespace is made.
    pub time_offsets: Option<String>,
    /// A cgroup2 directory to start the process in (CLONE_INTO_CGROUP).
    pub into_cgroup: Option<BorrowedFd<'a>>,
}

/// The new process, and whether it already is in `SpawnPlan::into_cgroup`.
pub struct Spawned {
    pub pid: i32,
    pub in_cgroup: bool,
}

impl SpawnPlan<'_> {
    fn needs_intermediate(&self) -> bool {
        let children_only = [LinuxNamespaceType::Pid, LinuxNamespaceType::Time];
        let new_user = self.new_flags & clone_flag(LinuxNamespaceType::User) != 0;
        self.new_flags & clone_flag(LinuxNamespaceType::Time) != 0
            || self.join.iter().any(|f| children_only.contains(&f.typ))
            // Joined namespaces are entered before new ones are made, so
            // that a new user namespace owns the new ones and a joined user
            // namespace owns them too.
            || (new_user && !self.join.is_empty())
            || self.join.iter().any(|f| f.typ == LinuxNamespaceType::User)
    }
}

/// Starts the new process; in it, runs `child` (which must end in execve
/// or exit). In the runtime, returns the new process' pid and whether it
/// starts in `plan.into_cgroup` (only the direct clone can place it there;
/// the caller moves it otherwise). `sync` is the child's end of
/// the sync socket, `runtime_end` the runtime's: the intermediate process
/// reports the pid (or its failure) through them.
pub fn spawn(
    plan: &SpawnPlan,
    runtime_end: &SyncSocket,
    sync: &SyncSocket,
    child: impl FnOnce(),
) -> Result<Spawned> {
    if !plan.needs_intermediate() {
        let mut in_cgroup = false;
        let cloned = match plan.into_cgroup {
            Some(cgroup) => match sys::clone_process_into_cgroup(plan.new_flags, cgroup) {
                Ok(cloned) => {
                    in_cgroup = true;
                    Ok(cloned)
                }
                // Kernels before 5.7, or a cgroup the kernel will not start
                // a process in directly: clone, and the caller moves it.
                Err(e) => {
                    tracing::debug!("clone3 into the container's cgroup: {e}; cloning without");
                    clone_process(plan.new_flags)
                }
            },
            None => clone_process(plan.new_flags),
        };
        return match cloned.ctx(|| "clone the container process")? {
            Cloned::Parent(pid) => Ok(Spawned { pid, in_cgroup }),
            Cloned::Child => {
                if let Err(e) = join_all(plan.join) {
                    report_and_exit(sync, "join namespaces", &e);
                }
                child();
                // The child's code ends in execve or exit; never back here.
                sys::exit_now(1)
            }
        };
    }
    match clone_process(0).ctx(|| "fork the namespace-joining process")? {
        Cloned::Parent(intermediate) => Ok(Spawned {
            pid: collect_grandchild(intermediate, runtime_end)?,
            in_cgroup: false,
        }),
        Cloned::Child => {
            let result = (|| -> Result<i32> {
                join_all(plan.join)?;
                let mut flags = plan.new_flags;
                if flags & clone_flag(LinuxNamespaceType::Time) != 0 {
                    // clone(2) cannot take CLONE_NEWTIME (its bit is part of
                    // the exit signal field there): unshare it for children.
                    sys::unshare_time_namespace().ctx(|| "create a time namespace")?;
                    if let Some(offsets) = &plan.time_offsets {
                        std::fs::write("/proc/self/timens_offsets", offsets)
                            .ctx(|| "write the time namespace clock offsets")?;
                    }
                    flags &= !clone_flag(LinuxNamespaceType::Time);
                }
                match clone_process(flags | libc::CLONE_PARENT)
                    .ctx(|| "clone the container process")?
                {
                    Cloned::Parent(pid) => Ok(pid),
                    Cloned::Child => {
                        child();
                        sys::exit_now(1)
                    }
                }
            })();
            match result {
                Ok(pid) => {
                    let _ = sync.send(&Message::ChildPid(pid));
                    sys::exit_now(0)
                }
                Err(e) => report_and_exit(sync, "enter namespaces", &e),
            }
        }
    }
}

fn join_all(files: &[NamespaceFile]) -> Result<()> {
    files.iter().try_for_each(NamespaceFile::join)
}

/// Reports a setup failure to the runtime and ends this process.
pub fn report_and_exit(sync: &SyncSocket, step: &str, error: &RuntimeError) -> ! {
    let _ = sync.send(&Message::Failed {
        step: step.to_string(),
        message: error.to_string(),
    });
    sys::exit_now(1)
}

fn collect_grandchild(intermediate: i32, runtime_end: &SyncSocket) -> Result<i32> {
    loop {
        match waitpid(Pid::from_raw(intermediate), WaitOptions::empty()) {
            Err(rustix::io::Errno::INTR) => continue,
            r => {
                r.ctx(|| "wait for the namespace-joining process")?;
                break;
            }
        }
    }
    match runtime_end
        .recv()
        .ctx(|| "read from the namespace-joining process")?
    {
        Some(Message::ChildPid(pid)) => Ok(pid),
        Some(Message::Failed { step, message }) => Err(RuntimeError::Init { step, message }),
        other => Err(RuntimeError::Init {
            step: "enter namespaces".into(),
            message: format!("the namespace-joining process sent {other:?} instead of a pid"),
        }),
    }
}
