//! The seccomp(2) calls: loading a filter, and asking the running kernel
//! which flags and actions it supports. libc has no wrapper for seccomp(2),
//! so this is the one place with `unsafe` in the module.

use std::ffi::{c_uint, c_ulong, c_void};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::bpf::Instruction;

pub(super) const FLAG_TSYNC: c_ulong = libc::SECCOMP_FILTER_FLAG_TSYNC;
pub(super) const FLAG_LOG: c_ulong = libc::SECCOMP_FILTER_FLAG_LOG;
pub(super) const FLAG_SPEC_ALLOW: c_ulong = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW;
pub(super) const FLAG_NEW_LISTENER: c_ulong = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
pub(super) const FLAG_TSYNC_ESRCH: c_ulong = libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
pub(super) const FLAG_WAIT_KILLABLE_RECV: c_ulong = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;

/// Raw seccomp(2); returns the kernel's result or the errno.
///
/// # Safety
/// `args` must be what `operation` expects: null, or a valid pointer to its
/// argument structure for the duration of the call.
unsafe fn seccomp(operation: c_uint, flags: c_ulong, args: *const c_void) -> io::Result<i64> {
    // SAFETY: the caller vouches for `args`; the other arguments are plain
    // integers the kernel validates.
    let result = unsafe { libc::syscall(libc::SYS_seccomp, operation, flags, args) };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Whether the kernel accepts `flags` for SECCOMP_SET_MODE_FILTER. Known
/// flags get past validation and fail on the null program with EFAULT;
/// unknown ones are refused first with EINVAL. Nothing is installed.
pub(super) fn filter_flags_supported(flags: c_ulong) -> bool {
    // SAFETY: a null program is never dereferenced: the kernel fails the
    // copy from user memory with EFAULT.
    let result = unsafe { seccomp(libc::SECCOMP_SET_MODE_FILTER, flags, std::ptr::null()) };
    matches!(result, Err(e) if e.raw_os_error() == Some(libc::EFAULT))
}

/// Whether the kernel knows the action of a return value.
pub(super) fn action_available(action: u32) -> bool {
    // SAFETY: `action` is a valid u32 that outlives the call.
    let result = unsafe {
        seccomp(
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            (&action as *const u32).cast(),
        )
    };
    result.is_ok()
}

/// What went wrong loading a filter; built without allocating, since it is
/// reported from a forked child.
#[derive(Debug)]
pub(super) enum LoadError {
    Kernel(io::Error),
    /// TSYNC could not move this thread of the process onto the filter.
    ThreadNotSynchronized(i64),
}

/// Loads `program` on the calling thread. Does not allocate.
pub(super) fn load(program: &[Instruction], flags: c_ulong) -> Result<Option<OwnedFd>, LoadError> {
    let fprog = libc::sock_fprog {
        // The compiler caps programs at BPF_MAXINSNS (4096).
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points to `program`, which the kernel copies before the
    // call returns; both outlive the call.
    let result = unsafe {
        seccomp(
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            (&fprog as *const libc::sock_fprog).cast(),
        )
    }
    .map_err(LoadError::Kernel)?;
    if flags & FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a fresh descriptor
        // that nothing else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(result as i32) }));
    }
    if result != 0 {
        // Plain TSYNC reports the thread that could not follow.
        return Err(LoadError::ThreadNotSynchronized(result));
    }
    Ok(None)
}
