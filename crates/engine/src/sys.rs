//! The system calls the engine makes that have no safe wrapper.

use rustix::process::Signal;

use crate::error::{EngineError, Result};

/// Moves this process into a new mount namespace.
pub fn unshare_mount_namespace() -> Result<()> {
    // SAFETY: unshare(CLONE_NEWNS) only changes this process's mount
    // namespace (callers are single-threaded); it does not unshare the
    // descriptor table, the case that makes unshare unsafe in rustix.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| EngineError::io("create a mount namespace", e.into()))
}

/// A signal number as rustix's `Signal`, real-time signals included
/// (34-64; 32 and 33 belong to the C library and are refused).
pub fn signal(n: i32) -> Option<Signal> {
    if let Some(s) = Signal::from_named_raw(n) {
        return Some(s);
    }
    if (34..=64).contains(&n) {
        // SAFETY: n is a valid, non-zero signal number outside the range
        // glibc reserves for itself (32, 33), so it may be sent.
        return Some(unsafe { Signal::from_raw_unchecked(n) });
    }
    None
}

/// Signals delivered through a descriptor (signalfd) instead of handlers:
/// the listed signals are blocked for the process and read from the fd,
/// which a poll loop watches. Dropping it unblocks them again.
pub struct SignalFd {
    fd: std::os::fd::OwnedFd,
    mask: libc::sigset_t,
}

impl SignalFd {
    pub fn new(signals: &[i32]) -> std::io::Result<SignalFd> {
        // SAFETY: sigset_t is plain data; sigemptyset initializes it.
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `mask` is a valid sigset_t owned by this frame.
        unsafe { libc::sigemptyset(&mut mask) };
        for &s in signals {
            // SAFETY: as above; an invalid number only makes sigaddset fail.
            unsafe { libc::sigaddset(&mut mask, s) };
        }
        // SAFETY: `mask` is initialized; the old mask is not requested.
        let r = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: -1 asks for a new descriptor; `mask` is initialized.
        let fd = unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: undoes the block above with the same valid mask.
            unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &mask, std::ptr::null_mut()) };
            return Err(e);
        }
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(SignalFd { fd, mask })
    }

    /// The next pending signal, if any.
    pub fn read(&self) -> Option<i32> {
        let mut buf = [0u8; 128];
        match rustix::io::read(&self.fd, &mut buf) {
            Ok(128) => Some(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as i32),
            _ => None,
        }
    }
}

impl std::os::fd::AsFd for SignalFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: unblocks exactly the signals `new` blocked.
        unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &self.mask, std::ptr::null_mut()) };
    }
}

/// Gives back memory a long-lived monitor no longer needs after its
/// start-up: the pages of clean, read-only file mappings (program text and
/// constants; they fault back in from the page cache if used again) and
/// free heap. Writable mappings, and read-only ones holding modified
/// pages (relocations made read-only after the fact), are left alone.
pub fn trim_memory() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut current: Option<(usize, usize, bool)> = None;
    let flush = |m: Option<(usize, usize, bool)>| {
        if let Some((start, end, true)) = m {
            // SAFETY: [start, end) is a private, read-only mapping of a file
            // in which no page was ever written (Anonymous: 0 kB), so
            // MADV_DONTNEED only drops page-table entries whose content the
            // next access reads back, identical, from the file.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    };
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                flush(current.take());
                let perms = words.next().unwrap_or("");
                let inode = words.nth(2).unwrap_or("0");
                let path = words.next().unwrap_or("");
                let candidate = perms.starts_with('r')
                    && perms.as_bytes().get(1) == Some(&b'-')
                    && perms.as_bytes().get(3) == Some(&b'p')
                    && inode != "0"
                    && path.starts_with('/');
                current = Some((start, end, candidate));
                continue;
            }
        }
        if let (Some(rest), Some(c)) = (line.strip_prefix("Anonymous:"), current.as_mut()) {
            if rest.trim() != "0 kB" {
                c.2 = false;
            }
        }
    }
    flush(current.take());
    // SAFETY: malloc_trim has no preconditions; it returns free heap
    // memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
