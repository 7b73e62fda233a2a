//! `exec` runs a process inside a running container: its namespaces, root,
//! and the container's process settings unless overridden.

mod common;

use std::fs;

use common::{stderr, Fixture};
use serde_json::json;

fn running(f: &Fixture) -> String {
    let id = f.id("x");
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &id]);
    id
}

#[test]
fn exec_joins_the_container() {
    let f = Fixture::new("exec", &["sleep", "1000"]);
    f.edit(|s| s["hostname"] = json!("execbox"));
    let id = running(&f);
    let init = f.state(&id)["pid"].as_i64().unwrap();
    let init_mnt = fs::read_link(format!("/proc/{init}/ns/mnt")).unwrap();
    let out = f.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo $$; hostname; readlink /proc/self/ns/mnt; cat /proc/1/comm; ls /",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "1");
    assert_eq!(lines[1], "execbox");
    assert_eq!(lines[2], init_mnt.to_str().unwrap());
    assert_eq!(lines[3], "sleep");
    assert!(
        out.contains("busybox") || out.contains("bin"),
        "root is the container's: {out}"
    );
}

#[test]
fn exec_returns_the_exit_status_and_applies_overrides() {
    let f = Fixture::new("execopt", &["sleep", "1000"]);
    let id = running(&f);
    let out = f.rt(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    let out = f.ok(&[
        "exec",
        "--user",
        "1000:2000",
        "--cwd",
        "/tmp",
        "--env",
        "EXTRA=1",
        &id,
        "sh",
        "-c",
        "id -u; id -g; pwd; echo $EXTRA; grep NoNewPrivs /proc/self/status",
    ]);
    assert_eq!(out, "1000\n2000\n/tmp\n1\nNoNewPrivs:\t1\n");
    let out = f.ok(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        &id,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    let eff = u64::from_str_radix(out.trim().rsplit('\t').next().unwrap(), 16).unwrap();
    assert_ne!(eff & (1 << 21), 0, "CAP_SYS_ADMIN added: {out}");
}

#[test]
fn exec_detached_with_pid_file_and_process_file() {
    let f = Fixture::new("execd", &["sleep", "1000"]);
    let id = running(&f);
    let process = f.tmp.path().join("process.json");
    fs::write(
        &process,
        json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "echo from-process-file > /tmp/pf; sleep 1000"], "env": ["PATH=/bin"]}).to_string(),
    )
    .unwrap();
    let pid_file = f.tmp.path().join("exec.pid");
    f.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--process",
        process.to_str().unwrap(),
        &id,
    ]);
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(common::pid_alive(pid));
    // The exec'd process is part of the container: listed by ps, killed
    // by kill --all.
    let pids: Vec<i32> = serde_json::from_str(&f.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks {pid}");
    let table = f.ok(&["ps", &id]);
    assert!(
        table.starts_with("UID") && table.contains(&pid.to_string()),
        "{table}"
    );
    f.ok(&["kill", "--all", &id, "KILL"]);
    f.wait_status(&id, "stopped");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while common::pid_alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!common::pid_alive(pid));
}

#[test]
fn exec_into_a_stopped_container_is_refused() {
    let f = Fixture::new("execstop", &["true"]);
    let id = f.id("s");
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &id]);
    f.wait_status(&id, "stopped");
    let out = f.rt(&["exec", &id, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
    let out = f.rt(&["exec", "--user", "root", &id, "true"]);
    assert!(!out.status.success());
}
