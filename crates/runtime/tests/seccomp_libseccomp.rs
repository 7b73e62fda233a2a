//! Differential test: quai's seccomp compiler against libseccomp (what runc
//! and crun install). Each profile is compiled by both — libseccomp driven
//! the way runc drives it — and both BPF programs run through the same
//! interpreter for every syscall number libseccomp knows on each listed
//! architecture, foreign architectures and edge numbers, with argument
//! values chosen around 32- and 64-bit boundaries. The verdicts must agree.
//!
//! Where quai knowingly differs, the comparison leaves the case out:
//! syscalls newer than the installed libseccomp (quai knows them, runc
//! skips their rules), and numbers above the profile's highest syscall when
//! the default action denies (runc prepends its ENOSYS stub there, which
//! libseccomp's own program lacks; quai's unit tests check that region).

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use quai_runtime::seccomp::{self, DockerProfileTarget, SeccompData};

#[repr(C)]
struct ScmpArgCmp {
    arg: c_uint,
    op: c_int,
    datum_a: u64,
    datum_b: u64,
}

#[link(name = "seccomp")]
extern "C" {
    fn seccomp_init(def_action: u32) -> *mut c_void;
    fn seccomp_release(ctx: *mut c_void);
    fn seccomp_arch_add(ctx: *mut c_void, arch_token: u32) -> c_int;
    fn seccomp_syscall_resolve_name(name: *const c_char) -> c_int;
    fn seccomp_syscall_resolve_name_arch(arch_token: u32, name: *const c_char) -> c_int;
    fn seccomp_syscall_resolve_num_arch(arch_token: u32, num: c_int) -> *mut c_char;
    fn seccomp_rule_add_array(
        ctx: *mut c_void,
        action: u32,
        syscall: c_int,
        arg_cnt: c_uint,
        arg_array: *const ScmpArgCmp,
    ) -> c_int;
    fn seccomp_export_bpf(ctx: *mut c_void, fd: c_int) -> c_int;
}

const X86_64: u32 = 0xc000_003e;
const X32: u32 = 0x4000_003e;
const AARCH64: u32 = 0xc000_00b7;
const X32_BIT: u32 = 0x4000_0000;

/// The kernel return value of an action, as runc computes it.
fn ret_of(action: LinuxSeccompAction, errno: Option<u32>) -> u32 {
    let data = errno.unwrap_or(libc::EPERM as u32);
    match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => 0,
        LinuxSeccompAction::ScmpActKillProcess => 0x8000_0000,
        LinuxSeccompAction::ScmpActTrap => 0x0003_0000,
        LinuxSeccompAction::ScmpActErrno => 0x0005_0000 | data,
        LinuxSeccompAction::ScmpActNotify => 0x7fc0_0000,
        LinuxSeccompAction::ScmpActTrace => 0x7ff0_0000 | data,
        LinuxSeccompAction::ScmpActLog => 0x7ffc_0000,
        LinuxSeccompAction::ScmpActAllow => 0x7fff_0000,
    }
}

/// libseccomp's program for `profile`, built as runc's InitSeccomp does.
fn libseccomp_program(profile: &LinuxSeccomp) -> Vec<u8> {
    let default = ret_of(profile.default_action(), profile.default_errno_ret());
    // SAFETY: plain libseccomp API use on a context we own and release.
    unsafe {
        let ctx = seccomp_init(default);
        assert!(!ctx.is_null(), "seccomp_init");
        for arch in profile.architectures().iter().flatten() {
            let rc = seccomp_arch_add(ctx, *arch as u32);
            assert!(
                rc == 0 || rc == -libc::EEXIST,
                "seccomp_arch_add {arch:?}: {rc}"
            );
        }
        for syscall in profile.syscalls().iter().flatten() {
            let ret = ret_of(syscall.action(), syscall.errno_ret());
            if ret == default {
                continue;
            }
            for name in syscall.names() {
                let c_name = CString::new(name.as_str()).expect("name");
                let nr = seccomp_syscall_resolve_name(c_name.as_ptr());
                if nr == -1 {
                    continue; // unknown to libseccomp: runc skips it
                }
                let conditions: Vec<ScmpArgCmp> = syscall
                    .args()
                    .iter()
                    .flatten()
                    .map(|a| ScmpArgCmp {
                        arg: a.index() as c_uint,
                        op: op_number(a.op()),
                        datum_a: a.value(),
                        datum_b: a.value_two().unwrap_or(0),
                    })
                    .collect();
                let mut indexes: Vec<c_uint> = conditions.iter().map(|c| c.arg).collect();
                indexes.sort_unstable();
                let groups: Vec<&[ScmpArgCmp]> = if indexes.windows(2).any(|w| w[0] == w[1]) {
                    conditions.chunks(1).collect()
                } else {
                    vec![&conditions[..]]
                };
                for group in groups {
                    let rc =
                        seccomp_rule_add_array(ctx, ret, nr, group.len() as c_uint, group.as_ptr());
                    assert_eq!(rc, 0, "seccomp_rule_add_array {name}");
                }
            }
        }
        let mut file = tempfile::tempfile().expect("temporary file");
        assert_eq!(seccomp_export_bpf(ctx, file.as_raw_fd()), 0, "export");
        seccomp_release(ctx);
        file.rewind().expect("rewind");
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).expect("read program");
        bytes
    }
}

fn op_number(op: LinuxSeccompOperator) -> c_int {
    op as c_int
}

/// Whether libseccomp knows syscall `nr` on `arch` (a libseccomp token).
fn libseccomp_knows(arch: u32, nr: u32) -> bool {
    // SAFETY: returns a malloc'd string or NULL; freed below.
    unsafe {
        let name = seccomp_syscall_resolve_num_arch(arch, nr as c_int);
        if name.is_null() {
            return false;
        }
        let known = !CStr::from_ptr(name).to_bytes().is_empty();
        libc::free(name.cast());
        known
    }
}

/// libseccomp's number for `name` on `arch`, when the arch has it.
fn libseccomp_number(arch: u32, name: &str) -> Option<u32> {
    let c_name = CString::new(name).expect("name");
    // SAFETY: `c_name` is a valid C string for the call.
    let nr = unsafe { seccomp_syscall_resolve_name_arch(arch, c_name.as_ptr()) };
    (nr >= 0).then_some(nr as u32)
}

const VALUES: [u64; 9] = [
    0,
    1,
    8,
    0x7e02_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0008,
    0xffff_ffff_0000_0000,
    u64::MAX,
];

fn compare(profile_json: &str) {
    let profile: LinuxSeccomp = serde_json::from_str(profile_json).expect("profile parses");
    compare_profile(&profile);
}

fn compare_profile(profile: &LinuxSeccomp) {
    let ours = seccomp::compile(profile).expect("quai compiles the profile");
    let theirs = libseccomp_program(profile);
    let default_allows = matches!(
        profile.default_action(),
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    );
    let mut arches: Vec<u32> = vec![X86_64];
    arches.extend(profile.architectures().iter().flatten().map(|a| *a as u32));
    arches.dedup();
    let names: Vec<&String> = profile
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|s| s.names())
        .collect();
    // Highest number the profile names per libseccomp arch: runc's stub
    // region starts above it.
    let highest = |arch: u32| {
        names
            .iter()
            .filter_map(|n| libseccomp_number(arch, n))
            .max()
    };

    let mut compared = 0;
    for &arch in &arches {
        let token = if arch == X32 { X86_64 } else { arch };
        let base = if arch == X32 { X32_BIT } else { 0 };
        let mut numbers: Vec<u32> = (base..base + 1024).collect();
        numbers.extend([
            X32_BIT - 1,
            X32_BIT,
            0x8000_0000,
            0xc000_0000,
            u32::MAX - 1,
            u32::MAX,
        ]);
        for nr in numbers {
            let in_range = if base == 0 {
                nr < X32_BIT || token != X86_64
            } else {
                nr >= X32_BIT
            };
            // runc's stub tells x86_64 and x32 apart by the bit alone.
            let stub_arch = match (token, nr & X32_BIT != 0) {
                (X86_64, true) => X32,
                (X86_64, false) => X86_64,
                _ => arch,
            };
            let stub_region = !default_allows
                && highest(stub_arch).is_some_and(|max| nr > max)
                && arches.contains(&stub_arch);
            if stub_region || (in_range && !libseccomp_knows(arch, nr) && !default_allows) {
                continue;
            }
            for &a0 in &VALUES {
                for &a1 in &VALUES[..3] {
                    let data = SeccompData {
                        nr,
                        arch: token,
                        instruction_pointer: 0,
                        args: [a0, a1, a0, 0, 0, 0],
                    };
                    let mine = ours.evaluate(&data).expect("quai's program runs");
                    let reference =
                        seccomp::evaluate_raw(&theirs, &data).expect("libseccomp's program runs");
                    assert_eq!(
                        mine, reference,
                        "arch {token:#x} nr {nr:#x} args {a0:#x} {a1:#x}: quai {mine:#x}, \
                         libseccomp {reference:#x}"
                    );
                    compared += 1;
                }
            }
        }
    }
    // A foreign architecture nobody listed.
    for nr in [0, 20, 1000] {
        let data = SeccompData {
            nr,
            arch: AARCH64,
            ..Default::default()
        };
        assert_eq!(
            ours.evaluate(&data),
            seccomp::evaluate_raw(&theirs, &data),
            "foreign arch nr {nr}"
        );
    }
    assert!(compared > 1000, "compared only {compared} cases");
}

#[test]
fn docker_default_profile_agrees_with_libseccomp() {
    let json = std::fs::read(quai_testutil::shared_reference(
        "docker-default-seccomp.json",
    ))
    .expect("read Docker's default profile");
    let caps = ["CAP_CHOWN", "CAP_SETUID", "CAP_SYS_CHROOT", "CAP_KILL"].map(String::from);
    let oci =
        seccomp::from_docker_profile(&json, &DockerProfileTarget::host(&caps)).expect("converts");
    compare_profile(&oci);
    // With CAP_SYS_ADMIN the profile allows clone and clone3 outright.
    let caps = ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME"].map(String::from);
    let oci =
        seccomp::from_docker_profile(&json, &DockerProfileTarget::host(&caps)).expect("converts");
    compare_profile(&oci);
}

#[test]
fn every_operator_agrees_with_libseccomp() {
    for op in ["NE", "LT", "LE", "EQ", "GE", "GT"] {
        for value in [0u64, 8, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0008, u64::MAX] {
            compare(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW",
                    "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                    "syscalls":[{{"names":["personality","lseek"],"action":"SCMP_ACT_ERRNO","errnoRet":22,
                      "args":[{{"index":0,"value":{value},"op":"SCMP_CMP_{op}"}}]}}]}}"#
            ));
        }
    }
    for (mask, bits) in [
        (0xffu64, 8u64),
        (0x7e02_0000, 0),
        (0xffff_ffff_0000_0000, 0x1_0000_0000),
    ] {
        compare(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW",
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "syscalls":[{{"names":["clone"],"action":"SCMP_ACT_TRAP",
                  "args":[{{"index":0,"value":{mask},"valueTwo":{bits},"op":"SCMP_CMP_MASKED_EQ"}}]}}]}}"#
        ));
    }
}

#[test]
fn rule_combinations_agree_with_libseccomp() {
    compare(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":13,
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X32"],
            "syscalls":[
              {"names":["read","write","exit_group","getpid"],"action":"SCMP_ACT_ALLOW"},
              {"names":["kill"],"action":"SCMP_ACT_ALLOW",
               "args":[{"index":0,"value":1,"op":"SCMP_CMP_GT"},{"index":1,"value":8,"op":"SCMP_CMP_LE"}]},
              {"names":["tkill"],"action":"SCMP_ACT_LOG",
               "args":[{"index":1,"value":1,"op":"SCMP_CMP_EQ"},{"index":1,"value":8,"op":"SCMP_CMP_EQ"}]},
              {"names":["mkdir"],"action":"SCMP_ACT_KILL_PROCESS",
               "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
              {"names":["mkdir"],"action":"SCMP_ACT_ALLOW"},
              {"names":["ptrace"],"action":"SCMP_ACT_TRACE","errnoRet":5},
              {"names":["reboot"],"action":"SCMP_ACT_KILL"}
            ]}"#,
    );
    compare(
        r#"{"defaultAction":"SCMP_ACT_LOG","syscalls":[
              {"names":["mkdir","rmdir","unlink"],"action":"SCMP_ACT_ERRNO"},
              {"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,
               "args":[{"index":0,"value":10,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
}
