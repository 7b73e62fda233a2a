//! `quai-init`: the few instructions a container's init runs between the
//! runtime's setup and the container's program, so that no process the
//! container can reach ever has the runtime's writable binary as
//! /proc/PID/exe (CVE-2019-5736) without re-executing the runtime itself.
//!
//! The runtime's init execs this program (from a sealed memfd) once the
//! container is set up, with:
//!
//!   argv = ["quai-init", FIFO_FD, PATH, ARG0, ARG1, ...], envp = the container's
//!
//! It blocks until `start` writes a byte to the exec fifo FIFO_FD, closes
//! it (which tells `start` that the program is about to run), and executes
//! PATH with ARG0... On failure it prints why on stderr and exits like the
//! runtime would: 127 when PATH is missing, 126 when it cannot be executed,
//! 1 when the fifo closed before `start`.
//!
//! Built by the runtime crate's build.rs as a static, freestanding
//! executable (no libc: a few system calls), and embedded in the runtime.

#![no_std]
#![no_main]

use core::arch::naked_asm;

#[cfg(target_arch = "x86_64")]
mod sys {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;

    /// # Safety
    /// The arguments must be what system call `nr` expects.
    pub unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> isize {
        let ret: isize;
        // SAFETY: the caller passes valid arguments for `nr`; the kernel
        // clobbers only rcx and r11 besides rax.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            );
        }
        ret
    }
}

#[cfg(target_arch = "aarch64")]
mod sys {
    pub const READ: usize = 63;
    pub const WRITE: usize = 64;
    pub const CLOSE: usize = 57;
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;

    /// # Safety
    /// The arguments must be what system call `nr` expects.
    pub unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> isize {
        let ret: isize;
        // SAFETY: the caller passes valid arguments for `nr`.
        unsafe {
            core::arch::asm!(
                "svc 0",
                in("x8") nr,
                inlateout("x0") a as isize => ret,
                in("x1") b,
                in("x2") c,
                options(nostack)
            );
        }
        ret
    }
}

const EINTR: isize = 4;
const ENOENT: isize = 2;

/// The process entry point: hands the initial stack pointer (argc, argv,
/// envp) to `main`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!("mov rdi, rsp", "and rsp, -16", "call {main}", "ud2", main = sym main)
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!("mov x0, sp", "bl {main}", "brk #0", main = sym main)
}

fn exit(status: usize) -> ! {
    // SAFETY: exit_group takes a status and does not return.
    unsafe { sys::syscall3(sys::EXIT_GROUP, status, 0, 0) };
    loop {}
}

fn write_all(bytes: &[u8]) {
    let mut at = 0;
    while at < bytes.len() {
        // SAFETY: the buffer is valid for `len - at` bytes from `at`.
        let n = unsafe {
            sys::syscall3(
                sys::WRITE,
                2,
                bytes.as_ptr() as usize + at,
                bytes.len() - at,
            )
        };
        if n == -EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
        at += n as usize;
    }
}

/// The bytes of a NUL-terminated string.
///
/// # Safety
/// `s` must point to a NUL-terminated string that outlives the result.
unsafe fn c_bytes<'a>(s: *const u8) -> &'a [u8] {
    let mut len = 0;
    // A volatile read keeps the compiler from turning this loop into a call
    // of libc's strlen, which this program does not have.
    // SAFETY: the string is NUL-terminated (caller's promise).
    while unsafe { core::ptr::read_volatile(s.add(len)) } != 0 {
        len += 1;
    }
    // SAFETY: `len` bytes from `s` are readable.
    unsafe { core::slice::from_raw_parts(s, len) }
}

fn parse_fd(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let mut fd = 0usize;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        fd = fd * 10 + (d - b'0') as usize;
    }
    Some(fd)
}

fn fail(what: &[u8], detail: &[u8], errno: isize, status: usize) -> ! {
    write_all(b"quai-runtime: ");
    write_all(what);
    write_all(detail);
    write_all(b": ");
    write_all(match errno {
        1 => b"Operation not permitted".as_slice(),
        2 => b"No such file or directory",
        7 => b"Argument list too long",
        8 => b"Exec format error",
        12 => b"Cannot allocate memory",
        13 => b"Permission denied",
        20 => b"Not a directory",
        22 => b"Invalid argument",
        26 => b"Text file busy",
        40 => b"Too many levels of symbolic links",
        0 => b"exec fifo closed before start",
        _ => b"system call failed",
    });
    if errno != 0 {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = errno as usize;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        write_all(b" (os error ");
        write_all(&digits[at..]);
        write_all(b")");
    }
    write_all(b"\n");
    exit(status)
}

/// # Safety
/// `stack` is the initial process stack the kernel laid out.
unsafe extern "C" fn main(stack: *const usize) -> ! {
    // SAFETY: the kernel's layout: argc, argv[0..argc], NULL, envp..., NULL.
    let (argc, argv, envp) = unsafe {
        let argc = *stack;
        let argv = stack.add(1) as *const *const u8;
        (argc, argv, argv.add(argc + 1))
    };
    if argc < 4 {
        fail(b"usage: quai-init FIFO_FD PATH ARG0 [ARG...]", b"", 22, 1);
    }
    // SAFETY: argv has argc valid entries.
    let (fd_arg, path) = unsafe { (c_bytes(*argv.add(1)), *argv.add(2)) };
    let Some(fifo) = parse_fd(fd_arg) else {
        fail(b"bad exec fifo descriptor ", fd_arg, 22, 1)
    };
    let mut byte = 0u8;
    loop {
        // SAFETY: reads one byte into `byte`.
        let n = unsafe { sys::syscall3(sys::READ, fifo, &mut byte as *mut u8 as usize, 1) };
        match n {
            1 => break,
            n if n == -EINTR => continue,
            n if n < 0 => fail(b"wait for start", b"", -n, 1),
            _ => fail(b"wait for start", b"", 0, 1),
        }
    }
    // SAFETY: closes a descriptor this program owns.
    unsafe { sys::syscall3(sys::CLOSE, fifo, 0, 0) };
    // SAFETY: path, argv[3..] and envp are NUL-terminated as the kernel
    // passed them.
    let errno = -unsafe {
        sys::syscall3(
            sys::EXECVE,
            path as usize,
            argv.add(3) as usize,
            envp as usize,
        )
    };
    // SAFETY: path is NUL-terminated.
    let path = unsafe { c_bytes(path) };
    fail(b"exec ", path, errno, if errno == ENOENT { 127 } else { 126 })
}

/// The precompiled `core` refers to an unwinding personality even though
/// this program aborts on panic; it is never called.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(255)
}
