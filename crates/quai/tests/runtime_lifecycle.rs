//! The OCI lifecycle through runc's command line: create/start split, state
//! transitions, kill, delete, list, pid files, exit statuses.

mod common;

use std::fs;

use common::{pid_alive, stderr, Fixture};
use serde_json::json;

#[test]
fn run_prints_and_returns_the_exit_status() {
    let f = Fixture::new("run", &["echo", "hello from quai"]);
    let (code, out, err) = f.run(&f.id("r"));
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "hello from quai\n");

    f.edit(|s| s["process"]["args"] = json!(["sh", "-c", "exit 7"]));
    let id = f.id("r");
    let (code, _, err) = f.run(&id);
    assert_eq!(code, 7, "stderr: {err}");
    // run deletes the container once it exited.
    assert!(!f.state_dir(&id).exists());
}

#[test]
fn run_reports_death_by_signal_like_a_shell() {
    let f = Fixture::new("runsig", &["sleep", "1000"]);
    let id = f.id("r");
    let mut run = f.cmd(&["run", "--bundle", f.bundle.to_str().unwrap(), &id]);
    run.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut run = run.spawn().unwrap();
    f.wait_status(&id, "running");
    f.ok(&["kill", &id, "KILL"]);
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 9));
    assert!(!f.state_dir(&id).exists());
}

#[test]
fn run_forwards_signals_to_the_container() {
    // As pid 1 of its namespace, the shell only gets signals it handles.
    let f = Fixture::new(
        "runfwd",
        &[
            "sh",
            "-c",
            "trap 'exit 42' USR1; while true; do sleep 0.05; done",
        ],
    );
    let id = f.id("r");
    let mut run = f.cmd(&["run", "--bundle", f.bundle.to_str().unwrap(), &id]);
    run.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut run = run.spawn().unwrap();
    f.wait_status(&id, "running");
    // The trap is set once the shell runs its loop; until then USR1 would
    // be ignored, so keep sending until the runtime exits.
    let code = loop {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&run),
            rustix::process::Signal::USR1,
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        if let Some(status) = run.try_wait().unwrap() {
            break status.code();
        }
    };
    assert_eq!(code, Some(42));
}

#[test]
fn create_waits_until_start() {
    let f = Fixture::new(
        "split",
        &["sh", "-c", "echo started > /tmp/marker; exec sleep 1000"],
    );
    let id = f.id("c");
    let pid_file = f.tmp.path().join("init.pid");
    f.ok(&[
        "create",
        "--bundle",
        f.bundle.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);

    let state = f.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["bundle"], f.bundle.to_str().unwrap());
    let pid = state["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0 && pid_alive(pid));
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    // The program has not run yet.
    assert!(!f.rootfs().join("tmp/marker").exists());

    f.ok(&["start", &id]);
    assert_eq!(f.status(&id), "running");
    assert_eq!(
        fs::read_to_string(f.rootfs().join("tmp/marker")).unwrap(),
        "started\n"
    );
    let listed = f.ok(&["list", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "running");

    // A second start is refused.
    let again = f.rt(&["start", &id]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("running"), "{}", stderr(&again));

    f.ok(&["kill", &id, "KILL"]);
    f.wait_status(&id, "stopped");
    assert_eq!(f.state(&id)["pid"], 0);
    f.ok(&["delete", &id]);
    assert!(!f.state_dir(&id).exists());
    let missing = f.rt(&["state", &id]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("does not exist"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn kill_takes_names_and_numbers() {
    // pid 1 of a namespace receives only the signals it handles (and KILL).
    let f = Fixture::new(
        "kill",
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.05; done",
        ],
    );
    for signal in ["TERM", "SIGKILL", "9"] {
        let id = f.id("k");
        f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &id]);
        assert_eq!(f.status(&id), "running");
        f.ok(&["kill", &id, signal]);
        f.wait_status(&id, "stopped");
        f.ok(&["delete", &id]);
    }
    let id = f.id("k");
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &id]);
    let bad = f.rt(&["kill", &id, "NOTASIGNAL"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("NOTASIGNAL"), "{}", stderr(&bad));
    assert_eq!(f.status(&id), "running");
}

#[test]
fn delete_refuses_a_running_container_unless_forced() {
    let f = Fixture::new("del", &["sleep", "1000"]);
    let id = f.id("d");
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &id]);
    let pid = f.state(&id)["pid"].as_i64().unwrap() as i32;
    let refused = f.rt(&["delete", &id]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("running"), "{}", stderr(&refused));
    assert!(pid_alive(pid));
    f.ok(&["delete", "--force", &id]);
    assert!(!pid_alive(pid));
    assert!(!f.state_dir(&id).exists());
}

#[test]
fn deleting_a_created_container_kills_its_init() {
    let f = Fixture::new("delc", &["true"]);
    let id = f.id("d");
    f.ok(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    let pid = f.state(&id)["pid"].as_i64().unwrap() as i32;
    f.ok(&["delete", &id]);
    assert!(!pid_alive(pid));
    assert!(!f.state_dir(&id).exists());
}

#[test]
fn duplicate_ids_and_bad_ids_are_refused() {
    let f = Fixture::new("dup", &["sleep", "1000"]);
    let id = f.id("d");
    f.ok(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    let dup = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));
    assert_eq!(f.status(&id), "created");

    let bad = f.rt(&[
        "create",
        "--bundle",
        f.bundle.to_str().unwrap(),
        "../escape",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("invalid container id"),
        "{}",
        stderr(&bad)
    );
    assert!(!f.tmp.path().join("escape").exists());
}

#[test]
fn list_shows_every_container() {
    let f = Fixture::new("list", &["sleep", "1000"]);
    let a = f.id("a");
    let b = f.id("b");
    f.ok(&["create", "--bundle", f.bundle.to_str().unwrap(), &a]);
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &b]);
    let quiet = f.ok(&["list", "-q"]);
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort();
    let mut expected = vec![a.as_str(), b.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    let table = f.ok(&["list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&a) && l.contains("created")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&b) && l.contains("running")),
        "{table}"
    );
}

#[test]
fn quai_runtime_subcommand_is_the_same_cli() {
    let f = Fixture::new("sub", &["echo", "via quai runtime"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quai"))
        .args([
            "runtime",
            "--root",
            f.state_root.to_str().unwrap(),
            "run",
            "--bundle",
        ])
        .arg(&f.bundle)
        .arg(f.id("s"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via quai runtime\n");
}

#[test]
fn systemd_cgroup_is_refused_clearly() {
    let f = Fixture::new("sysd", &["true"]);
    let out = f.rt(&["--systemd-cgroup", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--systemd-cgroup is not supported"),
        "{}",
        stderr(&out)
    );
}
