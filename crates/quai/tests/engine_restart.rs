//! Restart policies, health checks, and the reboot simulation: every
//! monitor killed, the run root emptied, then `ps -a` and `system restore`.

mod engine_support;

use engine_support::{processes_under, Quai};

#[test]
fn restart_policies() {
    let q = Quai::new("restart");
    q.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    q.wait_for("retries to run out", || {
        q.inspect("flaky", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
    });
    assert_eq!(q.ok(&["wait", "flaky"]), "3\n");
    q.ok(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    q.wait_for("exit", || {
        q.inspect("fine", "{{.State.Status}}") == "exited"
    });
    assert_eq!(q.inspect("fine", "{{.RestartCount}}"), "0");
    q.ok(&[
        "run",
        "-d",
        "--name",
        "forever",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    q.wait_for("a restart", || {
        q.inspect("forever", "{{.RestartCount}}") != "0"
    });
    q.ok(&["stop", "-t", "1", "forever"]);
    assert_eq!(q.inspect("forever", "{{.State.Status}}"), "exited");
    let count = q.inspect("forever", "{{.RestartCount}}");
    // Stopped by hand: it stays stopped.
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(
        q.inspect("forever", "{{.State.Status}} {{.RestartCount}}"),
        format!("exited {count}")
    );
}

#[test]
fn health_checks_report_status() {
    let q = Quai::new("health");
    q.ok(&[
        "run",
        "-d",
        "--name",
        "checked",
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "5s",
        "busybox",
        "sleep",
        "1000",
    ]);
    q.wait_for("unhealthy", || {
        q.inspect("checked", "{{.State.Health.Status}}") == "unhealthy"
    });
    assert!(q
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(unhealthy)"));
    assert_eq!(
        q.ok(&[
            "ps",
            "--filter",
            "health=unhealthy",
            "--format",
            "{{.Names}}"
        ]),
        "checked\n"
    );
    q.ok(&["exec", "checked", "touch", "/tmp/ok"]);
    q.wait_for("healthy", || {
        q.inspect("checked", "{{.State.Health.Status}}") == "healthy"
    });
    assert_eq!(q.inspect("checked", "{{.State.Health.FailingStreak}}"), "0");
    let log: serde_json::Value =
        serde_json::from_str(&q.inspect("checked", "{{json .State.Health.Log}}")).unwrap();
    let last = log.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], 0);
    assert_eq!(last["Output"], "fine\n");
    let events = q.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "container=checked",
        "--format",
        "{{.Action}}",
    ]);
    assert!(events.contains("health_status: unhealthy"), "{events}");
    assert!(events.contains("health_status: healthy"), "{events}");
    // The committed image keeps the check; --no-healthcheck disables it.
    q.ok(&["commit", "--pause=false", "checked", "sick:v1"]);
    q.ok(&[
        "run",
        "-d",
        "--name",
        "nocheck",
        "--no-healthcheck",
        "sick:v1",
        "sleep",
        "1000",
    ]);
    let state = q.inspect("nocheck", "{{json .State}}");
    assert!(!state.contains("Health"), "{state}");
    assert!(q
        .inspect("checked", "{{json .Config.Healthcheck}}")
        .contains("CMD-SHELL"));
}

#[test]
fn reboot_then_system_restore() {
    let q = Quai::new("reboot");
    let marker = q.tmp.path().display().to_string();
    let script = format!("sleep 1000; : {marker}");
    for (name, policy) in [
        ("always", "always"),
        ("unless", "unless-stopped"),
        ("stopped", "unless-stopped"),
        ("plain", "no"),
        ("onfail", "on-failure"),
    ] {
        q.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "busybox",
            "sh",
            "-c",
            &script,
        ]);
    }
    q.ok(&["stop", "-t", "0", "stopped"]);
    // The "reboot": every monitor and container process dies at once, and
    // the run root (a tmpfs on real machines) is emptied.
    for pid in processes_under(&marker) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).unwrap(),
            rustix::process::Signal::KILL,
        );
    }
    q.wait_for("every process to die", || {
        processes_under(&marker).is_empty()
    });
    quai_testutil::unmount_below(&q.runroot());
    std::fs::remove_dir_all(q.runroot()).unwrap();
    let statuses = q.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    for line in statuses.lines() {
        assert!(line.ends_with(" exited"), "{statuses}");
    }
    assert_eq!(statuses.lines().count(), 5);
    let started = q.ok(&["system", "restore"]);
    assert_eq!(started.lines().count(), 2, "{started}");
    let running = q.ok(&["ps", "--format", "{{.Names}}"]);
    let mut running: Vec<&str> = running.lines().collect();
    running.sort();
    assert_eq!(running, vec!["always", "unless"]);
    // Restoring again changes nothing.
    assert_eq!(q.ok(&["system", "restore"]), "");
}
