//! Times quai's seccomp compiler on a profile (Docker's format or the OCI
//! section), for bench/seccomp-compile.sh. With `--flatten` it prints the
//! profile's rules as the line format bench/seccomp-compile-libseccomp.c
//! reads, so that libseccomp compiles exactly the same rules.
//!
//! With `--oci` it prints the profile as the OCI `linux.seccomp` section
//! (Docker's profile specialised for this machine), for bundles that
//! benchmark whole runtimes.
//!
//! Usage: seccomp_compile PROFILE [--iterations N | --flatten | --oci]

use std::process::ExitCode;
use std::time::Instant;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};
use quai_runtime::seccomp::{self, DockerProfileTarget};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: seccomp_compile PROFILE [--iterations N | --flatten | --oci]");
        return ExitCode::from(2);
    };
    let json = match std::fs::read(path) {
        Ok(json) => json,
        Err(e) => {
            eprintln!("seccomp_compile: reading {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let caps: Vec<String> = seccomp::DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .collect();
    let profile = match seccomp::from_docker_profile(&json, &DockerProfileTarget::host(&caps)) {
        Ok(profile) => profile,
        Err(e) => {
            eprintln!("seccomp_compile: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.get(1).map(String::as_str) == Some("--oci") {
        match serde_json::to_string_pretty(&profile) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("seccomp_compile: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    if args.get(1).map(String::as_str) == Some("--flatten") {
        print!("{}", flatten(&profile));
        return ExitCode::SUCCESS;
    }
    let iterations: u32 = match args.get(1).map(String::as_str) {
        Some("--iterations") => match args.get(2).and_then(|n| n.parse().ok()) {
            Some(n) if n > 0 => n,
            _ => {
                eprintln!("seccomp_compile: --iterations needs a positive number");
                return ExitCode::from(2);
            }
        },
        None => 1000,
        Some(other) => {
            eprintln!("seccomp_compile: unknown argument {other:?}");
            return ExitCode::from(2);
        }
    };
    let mut instructions = 0;
    let start = Instant::now();
    for _ in 0..iterations {
        match seccomp::compile(&profile) {
            Ok(filter) => instructions = filter.instruction_count(),
            Err(e) => {
                eprintln!("seccomp_compile: {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mean_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    println!("{mean_us:.1} {instructions}");
    ExitCode::SUCCESS
}

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

/// One line per libseccomp call runc would make: `default RET`,
/// `arch TOKEN`, `rule RET NAME COUNT [INDEX OP VALUE VALUE2]...`
/// (rules restating the default dropped, a rule testing one argument twice
/// split in two, as runc does).
fn flatten(profile: &LinuxSeccomp) -> String {
    let default = ret_of(profile.default_action(), profile.default_errno_ret());
    let mut out = format!("default {default}\n");
    for arch in profile.architectures().iter().flatten() {
        out += &format!("arch {}\n", *arch as u32);
    }
    for syscall in profile.syscalls().iter().flatten() {
        let ret = ret_of(syscall.action(), syscall.errno_ret());
        if ret == default {
            continue;
        }
        let conditions: Vec<String> = syscall
            .args()
            .iter()
            .flatten()
            .map(|a| {
                format!(
                    "{} {} {} {}",
                    a.index(),
                    a.op() as u32,
                    a.value(),
                    a.value_two().unwrap_or(0)
                )
            })
            .collect();
        let mut indexes: Vec<usize> = syscall.args().iter().flatten().map(|a| a.index()).collect();
        indexes.sort_unstable();
        let groups: Vec<&[String]> = if indexes.windows(2).any(|w| w[0] == w[1]) {
            conditions.chunks(1).collect()
        } else {
            vec![&conditions[..]]
        };
        for name in syscall.names() {
            for group in &groups {
                out += &format!("rule {ret} {name} {} {}\n", group.len(), group.join(" "));
            }
        }
    }
    out
}
