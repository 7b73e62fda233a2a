//! The container process gets what config.json says: namespaces (new and
//! joined), hostname, sysctls, user and groups, umask, capabilities,
//! rlimits, environment, working directory, OOM score, no_new_privs,
//! personality.

mod common;

use common::{stderr, Fixture};
use serde_json::json;

fn run_sh(f: &Fixture, script: &str) -> String {
    f.edit(|s| s["process"]["args"] = json!(["sh", "-c", script]));
    let (code, out, err) = f.run(&f.id("p"));
    assert_eq!(code, 0, "{script}: {err}");
    out
}

#[test]
fn new_namespaces_isolate_the_process() {
    let f = Fixture::new("ns", &["true"]);
    f.edit(|s| s["hostname"] = json!("quaibox"));
    let out = run_sh(
        &f,
        "echo $$; hostname; for n in net ipc uts; do readlink /proc/self/ns/$n; done",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the process is pid 1 of its namespace");
    assert_eq!(lines[1], "quaibox");
    for (line, kind) in lines[2..].iter().zip(["net", "ipc", "uts"]) {
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        assert_ne!(
            *line,
            host.to_str().unwrap(),
            "{kind} namespace is the host's"
        );
    }
}

#[test]
fn domainname_and_namespaced_sysctls_are_set() {
    let f = Fixture::new("sysctl", &["true"]);
    f.edit(|s| {
        s["domainname"] = json!("example.org");
        s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    });
    let out = run_sh(
        &f,
        "cat /proc/sys/kernel/domainname /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni",
    );
    assert_eq!(out, "example.org\n1\n1234\n");
}

#[test]
fn user_groups_umask_and_home_follow_the_config() {
    let f = Fixture::new("user", &["true"]);
    f.edit(|s| {
        s["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [2000], "umask": 23});
        s["process"]["env"] = json!(["PATH=/bin", "GREETING=hi there"]);
        s["process"]["cwd"] = json!("/tmp");
    });
    let out = run_sh(
        &f,
        "id -u; id -g; id -G; umask; echo \"$HOME|$GREETING\"; pwd",
    );
    assert_eq!(
        out,
        "1000\n1000\n1000 2000\n0027\n/home/user|hi there\n/tmp\n"
    );
}

#[test]
fn capabilities_are_the_configured_sets() {
    let f = Fixture::new("caps", &["true"]);
    let out = run_sh(&f, "grep -E '^Cap(Eff|Bnd|Amb)' /proc/self/status");
    // runc's default: AUDIT_WRITE (29), KILL (5), NET_BIND_SERVICE (10).
    let default = format!("{:016x}", (1u64 << 29) | (1 << 5) | (1 << 10));
    assert!(out.contains(&format!("CapEff:\t{default}")), "{out}");
    assert!(out.contains(&format!("CapBnd:\t{default}")), "{out}");

    // A non-root user keeps only its ambient capabilities across execve.
    f.edit(|s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        let caps = json!(["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]);
        s["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": caps, "ambient": ["CAP_NET_BIND_SERVICE"]
        });
    });
    let out = run_sh(&f, "grep -E '^Cap(Eff|Amb|Bnd)' /proc/self/status");
    let ambient = format!("{:016x}", 1u64 << 10);
    let bounding = format!("{:016x}", (1u64 << 10) | 1);
    assert!(out.contains(&format!("CapAmb:\t{ambient}")), "{out}");
    assert!(out.contains(&format!("CapEff:\t{ambient}")), "{out}");
    assert!(out.contains(&format!("CapBnd:\t{bounding}")), "{out}");
}

#[test]
fn rlimits_oom_score_nnp_personality_and_io_priority_apply() {
    let f = Fixture::new("attrs", &["true"]);
    f.edit(|s| {
        s["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768},
            {"type": "RLIMIT_NPROC", "soft": 300, "hard": 300}
        ]);
        s["process"]["oomScoreAdj"] = json!(321);
        s["process"]["noNewPrivileges"] = json!(true);
        s["linux"]["personality"] = json!({"domain": "LINUX32"});
        s["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    });
    let out = run_sh(
        &f,
        "ulimit -n; ulimit -Hn; ulimit -u; cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status; uname -m; ionice",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..4], ["512", "768", "300", "321"], "{out}");
    assert_eq!(lines[4], "NoNewPrivs:\t1");
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(lines[5], "i686", "PER_LINUX32 shows a 32-bit machine");
    }
    assert_eq!(lines[6], "idle", "ioPriority");
}

#[test]
fn missing_program_is_reported_at_create() {
    let f = Fixture::new("noexe", &["no-such-program"]);
    let id = f.id("n");
    let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("executable file not found"),
        "{}",
        stderr(&out)
    );
    assert!(!f.state_dir(&id).exists());
}

#[test]
fn namespaces_of_another_container_can_be_joined() {
    let f = Fixture::new("join", &["sleep", "1000"]);
    let first = f.id("a");
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &first]);
    let pid = f.state(&first)["pid"].as_i64().unwrap();
    let net = format!("/proc/{pid}/ns/net");
    let pidns = format!("/proc/{pid}/ns/pid");
    let expected_net = std::fs::read_link(&net).unwrap();
    f.edit(|s| {
        s["linux"]["namespaces"] = json!([
            {"type": "mount"}, {"type": "uts"}, {"type": "ipc"},
            {"type": "network", "path": net},
            {"type": "pid", "path": pidns}
        ]);
    });
    // Joining a pid namespace makes the process a member, not its init:
    // it sees the first container's sleep as pid 1.
    let out = run_sh(&f, "readlink /proc/self/ns/net; echo $$; cat /proc/1/comm");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], expected_net.to_str().unwrap());
    assert_ne!(lines[1], "1");
    assert_eq!(lines[2], "sleep");
}

#[test]
fn time_namespace_offsets_shift_the_clocks() {
    let f = Fixture::new("time", &["true"]);
    f.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        s["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000, "nanosecs": 0}});
    });
    let out = run_sh(&f, "cut -d. -f1 /proc/uptime");
    let uptime: u64 = out.trim().parse().unwrap();
    assert!(uptime >= 864000, "uptime {uptime} lacks the 10-day offset");
}

#[test]
fn seccomp_filters_the_container_and_its_exec_processes() {
    let f = Fixture::new("seccomp", &["sleep", "1000"]);
    let deny_mkdir = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    for nnp in [true, false] {
        f.edit(|s| {
            s["linux"]["seccomp"] = deny_mkdir.clone();
            s["process"]["noNewPrivileges"] = json!(nnp);
        });
        let out = run_sh(&f, "mkdir /tmp/denied 2>&1; echo status=$?");
        assert!(
            out.contains("Operation not permitted") && out.contains("status=1"),
            "nnp={nnp}: {out}"
        );
    }
    f.edit(|s| s["process"]["args"] = json!(["sleep", "1000"]));
    let id = f.id("s");
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &id]);
    let out = f.rt(&["exec", &id, "mkdir", "/tmp/denied-too"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
}
