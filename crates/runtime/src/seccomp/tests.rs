//! The generated BPF, run through the interpreter, checked against a direct
//! (linear, obviously-correct) reading of the profile for many syscall
//! numbers and argument values: search tree, ranges, trampolines,
//! argument comparisons and architecture handling all go through it.

use std::collections::HashMap;

use oci_spec::runtime::{Arch, LinuxSeccomp};

use super::arch::{ArchSpec, X32_SYSCALL_BIT};
use super::profile::{self, Condition, Op, Profile, RET_ALLOW, RET_ERRNO, RET_KILL_THREAD};
use super::*;

const X86_64: u32 = 0xc000_003e;
const I386: u32 = 0x4000_0003;
const S390X: u32 = 0x8000_0016;
const AARCH64: u32 = 0xc000_00b7;
const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

fn seccomp(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).expect("test profile parses")
}

fn data(arch: u32, nr: u32, args: [u64; 6]) -> SeccompData {
    SeccompData {
        nr,
        arch,
        instruction_pointer: 0,
        args,
    }
}

fn holds(condition: &Condition, arch: &ArchSpec, args: &[u64; 6]) -> bool {
    let (mut arg, mut value) = (args[usize::from(condition.index)], condition.value);
    let mut mask = match condition.op {
        Op::MaskedEq { mask } => mask,
        _ => u64::MAX,
    };
    if !arch.wide_args {
        arg &= 0xffff_ffff;
        value &= 0xffff_ffff;
        mask &= 0xffff_ffff;
    }
    match condition.op {
        Op::Ne => arg != value,
        Op::Lt => arg < value,
        Op::Le => arg <= value,
        Op::Eq => arg == value,
        Op::Ge => arg >= value,
        Op::Gt => arg > value,
        Op::MaskedEq { .. } => arg & mask == value,
    }
}

/// What libseccomp + runc's ENOSYS stub decide, read straight off the
/// profile (with the rules of each ABI indexed by number, to stay quick).
struct Reference<'p> {
    profile: &'p Profile,
    /// Per ABI: rules by syscall number, in profile order, and the highest
    /// number the profile names.
    abis: Vec<AbiRules<'p>>,
}

type AbiRules<'p> = (ArchSpec, HashMap<u32, Vec<&'p profile::Rule>>, Option<u32>);

impl<'p> Reference<'p> {
    fn new(profile: &'p Profile) -> Self {
        let abis = profile
            .arches
            .iter()
            .map(|&abi| {
                let mut rules: HashMap<u32, Vec<&profile::Rule>> = HashMap::new();
                for rule in &profile.rules {
                    if let Some(nr) = abi.resolve(&rule.name) {
                        rules.entry(nr).or_default().push(rule);
                    }
                }
                let max = profile
                    .all_syscalls
                    .iter()
                    .filter_map(|&id| abi.number(id))
                    .max();
                (abi, rules, max)
            })
            .collect();
        Reference { profile, abis }
    }

    /// Whether any rule of this number on this token tests arguments.
    fn has_conditions(&self, token: u32, nr: u32) -> bool {
        self.abis.iter().any(|(abi, rules, _)| {
            abi.audit_token == token
                && rules
                    .get(&nr)
                    .is_some_and(|r| r.iter().any(|r| !r.conditions.is_empty()))
        })
    }

    fn decide(&self, token: u32, nr: u32, args: &[u64; 6]) -> u32 {
        let p = self.profile;
        let abis: Vec<_> = self
            .abis
            .iter()
            .filter(|a| a.0.audit_token == token)
            .collect();
        if abis.is_empty() {
            return RET_KILL_THREAD;
        }
        let shared = abis.iter().any(|a| a.0.splits_on_x32_bit());
        let find = |x32: bool| abis.iter().copied().find(|a| a.0.is_x32() == x32);

        if p.enosys_for_newer {
            if nr == 0 && abis.len() == 1 && abis[0].0.has_multiplexer_zero() {
                return ENOSYS;
            }
            let stub_abi = if shared {
                find(nr & X32_SYSCALL_BIT != 0)
            } else {
                Some(abis[0])
            };
            if let Some((_, _, Some(max))) = stub_abi {
                if *max != 0 && nr > *max {
                    return ENOSYS;
                }
            }
        }
        let (abi, rules, _) = if shared {
            match find(nr >= X32_SYSCALL_BIT) {
                Some(abi) => abi,
                None if nr == u32::MAX && find(false).is_some() => return p.default_ret,
                None => return RET_KILL_THREAD,
            }
        } else {
            abis[0]
        };
        let Some(rules) = rules.get(&nr) else {
            return p.default_ret;
        };
        if let Some(unconditional) = rules.iter().find(|r| r.conditions.is_empty()) {
            return unconditional.ret;
        }
        rules
            .iter()
            .find(|r| r.conditions.iter().all(|c| holds(c, abi, args)))
            .map_or(p.default_ret, |r| r.ret)
    }
}

const VALUES: [u64; 12] = [
    0,
    1,
    7,
    8,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0001,
    0x1_ffff_ffff,
    0xffff_ffff_0000_0000,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// Every number the profile names (±1), the range edges, and the argument
/// values above in the first two arguments.
fn check_against_reference(json: &str) {
    let oci = seccomp(json);
    let filter = compile(&oci).expect("profile compiles");
    let p = profile::parse(&oci).expect("profile parses");
    let reference = Reference::new(&p);
    let mut numbers: Vec<u32> = vec![
        0,
        1,
        X32_SYSCALL_BIT - 1,
        X32_SYSCALL_BIT,
        0x8000_0000,
        0xbfff_ffff,
        0xc000_0000,
        u32::MAX - 1,
        u32::MAX,
    ];
    for arch in &p.arches {
        for &id in &p.all_syscalls {
            if let Some(nr) = arch.number(id) {
                numbers.extend([nr.wrapping_sub(1), nr, nr.wrapping_add(1)]);
            }
        }
    }
    let mut tokens: Vec<u32> = p.arches.iter().map(|a| a.audit_token).collect();
    tokens.extend([X86_64, I386, S390X, AARCH64]);
    let mut checked = 0;
    for &token in &tokens {
        for &nr in &numbers {
            // Arguments only matter where a rule tests them.
            let (first, second): (&[u64], &[u64]) = if reference.has_conditions(token, nr) {
                (&VALUES, &[0, 0xffff_ffff, u64::MAX])
            } else {
                (&VALUES[..1], &[0])
            };
            for &a0 in first {
                for &a1 in second {
                    let args = [a0, a1, 0, 0, 0, 0];
                    let expected = reference.decide(token, nr, &args);
                    let got = filter
                        .evaluate(&data(token, nr, args))
                        .expect("program runs to a return");
                    assert_eq!(
                        got, expected,
                        "arch {token:#x} nr {nr:#x} args {a0:#x} {a1:#x}: got {got:#x}, \
                         expected {expected:#x}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100);
}

#[test]
fn every_operator_matches_the_reference_on_wide_and_narrow_abis() {
    for op in ["NE", "LT", "LE", "EQ", "GE", "GT"] {
        for value in VALUES {
            let json = format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW",
                    "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32","SCMP_ARCH_S390X"],
                    "syscalls":[{{"names":["personality","mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":22,
                      "args":[{{"index":0,"value":{value},"op":"SCMP_CMP_{op}"}}]}}]}}"#
            );
            check_against_reference(&json);
        }
    }
}

#[test]
fn masked_eq_matches_the_reference() {
    for (mask, expected) in [
        (0xffu64, 8u64),
        (0xffff_ffff_0000_0000, 0x1_0000_0000),
        (0x1_0000_0001, 0x1_0000_0001),
        (0, 0),
        (u64::MAX, 7),
    ] {
        let json = format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO",
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "syscalls":[{{"names":["read","write","clone"],"action":"SCMP_ACT_ALLOW"}},
                  {{"names":["clone"],"action":"SCMP_ACT_TRAP",
                  "args":[{{"index":0,"value":{mask},"valueTwo":{expected},"op":"SCMP_CMP_MASKED_EQ"}}]}},
                  {{"names":["personality"],"action":"SCMP_ACT_ALLOW",
                  "args":[{{"index":0,"value":{mask},"valueTwo":{expected},"op":"SCMP_CMP_MASKED_EQ"}}]}}]}}"#
        );
        check_against_reference(&json);
    }
}

#[test]
fn several_arguments_and_several_rules() {
    check_against_reference(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":13,
            "syscalls":[
              {"names":["read"],"action":"SCMP_ACT_ALLOW"},
              {"names":["kill"],"action":"SCMP_ACT_ALLOW",
               "args":[{"index":0,"value":1,"op":"SCMP_CMP_GT"},{"index":1,"value":8,"op":"SCMP_CMP_LE"}]},
              {"names":["kill"],"action":"SCMP_ACT_LOG",
               "args":[{"index":1,"value":4294967295,"op":"SCMP_CMP_EQ"}]},
              {"names":["tkill"],"action":"SCMP_ACT_TRAP",
               "args":[{"index":1,"value":7,"op":"SCMP_CMP_EQ"},{"index":1,"value":8,"op":"SCMP_CMP_EQ"}]},
              {"names":["mkdir"],"action":"SCMP_ACT_KILL_PROCESS",
               "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
              {"names":["mkdir"],"action":"SCMP_ACT_ALLOW"}
            ]}"#,
    );
}

#[test]
fn denying_mkdir_with_eperm() {
    let filter = compile(&seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .expect("compiles");
    let verdict = |nr| filter.verdict(&data(X86_64, nr, [0; 6])).expect("runs");
    assert_eq!(verdict(83), Some(Verdict::Errno(libc::EPERM as u16)));
    assert_eq!(verdict(258), Some(Verdict::Errno(libc::EPERM as u16)));
    assert_eq!(verdict(0), Some(Verdict::Allow));
    // A 32-bit call is a foreign architecture unless the profile lists it.
    let foreign = filter.verdict(&data(I386, 39, [0; 6])).expect("runs");
    assert_eq!(foreign, Some(Verdict::KillThread));
    // x32 numbers too, but -1 (a tracer skipping the call) is let through.
    let x32 = filter.verdict(&data(X86_64, 83 | X32_SYSCALL_BIT, [0; 6]));
    assert_eq!(x32, Ok(Some(Verdict::KillThread)));
    let skip = filter.verdict(&data(X86_64, u32::MAX, [0; 6]));
    assert_eq!(skip, Ok(Some(Verdict::Allow)));
}

#[test]
fn allows_tells_which_calls_pass_on_the_native_abi() {
    let filter = compile(&seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["execveat"],"action":"SCMP_ACT_ERRNO"},
            {"names":["write"],"action":"SCMP_ACT_ERRNO","args":[
                {"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
    ))
    .expect("compiles");
    assert!(filter.allows(&[("read", [0; 6]), ("execve", [0; 6])]));
    assert!(!filter.allows(&[("read", [0; 6]), ("execveat", [0; 6])]));
    assert!(filter.allows(&[("write", [1, 0, 0, 0, 0, 0])]));
    assert!(!filter.allows(&[("write", [2, 0, 0, 0, 0, 0])]));
    assert!(!filter.allows(&[("no_such_call", [0; 6])]));
}

#[test]
fn newer_syscalls_get_enosys_when_the_default_denies() {
    let filter = compile(&seccomp(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read","mkdir"],"action":"SCMP_ACT_ALLOW"}]}"#,
    ))
    .expect("compiles");
    let verdict = |nr| filter.evaluate(&data(X86_64, nr, [0; 6])).expect("runs");
    assert_eq!(verdict(83), RET_ALLOW);
    assert_eq!(verdict(50), RET_ERRNO | libc::EPERM as u32);
    assert_eq!(verdict(84), ENOSYS);
    assert_eq!(verdict(435), ENOSYS);
}

#[test]
fn the_docker_default_profile_matches_the_reference() {
    let path = quai_testutil::shared_reference("docker-default-seccomp.json");
    let json = std::fs::read_to_string(&path).expect("read Docker's default profile");
    let caps: Vec<String> = DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .collect();
    for (go_arch, arch) in [
        ("amd64", Arch::ScmpArchX86_64),
        ("arm64", Arch::ScmpArchAarch64),
        ("s390x", Arch::ScmpArchS390x),
    ] {
        let target = DockerProfileTarget {
            go_arch,
            arch,
            kernel: (6, 18),
            capabilities: &caps,
        };
        let oci = from_docker_profile(json.as_bytes(), &target).expect("converts");
        let filter = compile(&oci).expect("compiles");
        assert!(
            filter.instruction_count() < 1000,
            "{go_arch}: {} instructions",
            filter.instruction_count()
        );
        check_against_reference(&serde_json::to_string(&oci).expect("serializes"));
    }
}

#[test]
fn long_argument_chains_force_trampolines_and_still_match() {
    // 150 rules of 64-bit equality tests push the return instructions far
    // beyond the 255-instruction reach of a conditional jump.
    let rules: Vec<String> = (0..150)
        .map(|i| {
            format!(
                r#"{{"names":["ioctl"],"action":"SCMP_ACT_ERRNO","errnoRet":{},
                    "args":[{{"index":0,"value":{},"op":"SCMP_CMP_EQ"}}]}}"#,
                i + 1,
                i
            )
        })
        .collect();
    let json = format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#,
        rules.join(",")
    );
    let filter = compile(&seccomp(&json)).expect("compiles");
    assert!(filter.instruction_count() > 600);
    for i in 0..150u64 {
        let got = filter.evaluate(&data(X86_64, 16, [i, 0, 0, 0, 0, 0]));
        assert_eq!(got, Ok(RET_ERRNO | (i as u32 + 1)));
    }
    assert_eq!(
        filter.evaluate(&data(X86_64, 16, [150, 0, 0, 0, 0, 0])),
        Ok(RET_ALLOW)
    );
    check_against_reference(&json);
}

#[test]
fn unknown_names_are_skipped() {
    let filter = compile(&seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["no_such_call","mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .expect("unknown names do not fail the profile");
    assert_eq!(
        filter.verdict(&data(X86_64, 83, [0; 6])),
        Ok(Some(Verdict::Errno(1)))
    );
}

#[test]
fn notify_needs_a_listener_path() {
    let err = compile(&seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    ))
    .expect_err("no listenerPath");
    assert!(err.to_string().contains("listenerPath"), "{err}");
    let filter = compile(&seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
            "listenerMetadata":"meta","syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    ))
    .expect("compiles");
    assert!(filter.needs_listener());
    assert_eq!(filter.listener_metadata(), Some("meta"));
    assert_ne!(filter.flags() & widen(kernel::FLAG_NEW_LISTENER), 0);
}

#[test]
fn flags_follow_the_profile() {
    let flags = |json: &str| compile(&seccomp(json)).expect("compiles").flags();
    // Left out: SPEC_ALLOW, as runc does; listed empty: nothing.
    assert_eq!(
        flags(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#),
        widen(kernel::FLAG_SPEC_ALLOW)
    );
    assert_eq!(flags(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":[]}"#), 0);
    assert_eq!(
        flags(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#
        ),
        widen(kernel::FLAG_TSYNC | kernel::FLAG_LOG),
        "WAIT_KILLABLE_RECV only applies with a listener"
    );
    assert_eq!(
        flags(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/a","flags":[
                "SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#
        ),
        widen(
            kernel::FLAG_TSYNC
                | kernel::FLAG_TSYNC_ESRCH
                | kernel::FLAG_NEW_LISTENER
                | kernel::FLAG_WAIT_KILLABLE_RECV
        )
    );
}

#[test]
fn unknown_architecture_names_are_refused_at_parse_time() {
    let err = serde_json::from_str::<LinuxSeccomp>(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}"#,
    )
    .expect_err("no such architecture");
    assert!(err.to_string().contains("SCMP_ARCH_VAX"), "{err}");
}

#[test]
fn raw_programs_run_like_compiled_ones() {
    let filter = compile(&seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_TRAP"}]}"#,
    ))
    .expect("compiles");
    let bytes = filter.to_bytes();
    for nr in [0, 83, 84] {
        let d = data(X86_64, nr, [0; 6]);
        assert_eq!(evaluate_raw(&bytes, &d), filter.evaluate(&d));
    }
}

#[test]
fn the_agent_gets_the_container_process_state() {
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.sock");
    let agent = UnixListener::bind(&path).expect("bind");
    let filter = compile(&seccomp(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"{}","listenerMetadata":"hello",
            "syscalls":[{{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}}]}}"#,
        path.display()
    )))
    .expect("compiles");
    let container: oci_spec::runtime::State = serde_json::from_str(
        r#"{"ociVersion":"1.2.0","id":"c1","status":"created","pid":42,"bundle":"/b"}"#,
    )
    .expect("state parses");
    let (_read, write) = rustix::pipe::pipe().expect("pipe");
    filter
        .hand_over_listener(write.as_fd(), 42, &container)
        .expect("handed over");
    let (mut connection, _) = agent.accept().expect("accept");
    let mut buffer = [0u8; 1024];
    let (_fd, n) = recv_fd(connection.as_fd(), &mut buffer).expect("fd and state");
    let mut json = buffer[..n].to_vec();
    connection.read_to_end(&mut json).expect("rest");
    let state: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    assert_eq!(state["ociVersion"], "1.2.0");
    assert_eq!(state["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(state["pid"], 42);
    assert_eq!(state["metadata"], "hello");
    assert_eq!(state["state"]["id"], "c1");
}
