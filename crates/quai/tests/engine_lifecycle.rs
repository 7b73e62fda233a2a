//! Container lifecycle and management commands: create, start, stop,
//! restart, kill, rm, wait, rename, ps, logs, inspect, exec, attach, top,
//! events, prune, update, info, version.

mod engine_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use engine_support::Quai;
use serde_json::Value;

#[test]
fn create_start_stop_restart_kill_rm() {
    let q = Quai::new("lifecycle");
    let id = q.ok(&[
        "create",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 7' TERM; echo up; while true; do sleep 0.1; done",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(q.inspect("web", "{{.State.Status}}"), "created");
    let ps = q.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert_eq!(ps, "web Created\n");
    assert_eq!(q.ok(&["start", "web"]), "web\n");
    assert_eq!(
        q.inspect("web", "{{.State.Status}} {{.State.Running}}"),
        "running true"
    );
    assert!(q.ok(&["ps", "--format", "{{.Status}}"]).starts_with("Up "));
    q.wait_for("output", || q.ok(&["logs", "web"]).contains("up"));
    assert_eq!(q.ok(&["stop", "web"]), "web\n");
    assert_eq!(
        q.inspect("web", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 7"
    );
    assert!(q.ok(&["logs", "web"]).ends_with("bye\n"));
    assert_eq!(q.ok(&["wait", "web"]), "7\n");
    // Stopping a stopped container is fine; killing it is not.
    q.ok(&["stop", "web"]);
    let (code, err) = q.fails(&["kill", "web"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not running"), "{err}");
    q.ok(&["restart", "-t", "1", "web"]);
    assert_eq!(q.inspect("web", "{{.State.Running}}"), "true");
    q.ok(&["kill", "-s", "TERM", "web"]);
    assert_eq!(q.ok(&["wait", "web"]), "7\n");
    q.ok(&["start", "web"]);
    let (code, err) = q.fails(&["rm", "web"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("container is running: stop the container before removing or force remove"),
        "{err}"
    );
    assert_eq!(q.ok(&["rm", "-f", &id[..12]]), format!("{}\n", &id[..12]));
    q.assert_clean();
}

#[test]
fn stop_timeout_kills_what_ignores_the_signal() {
    let q = Quai::new("stoptimeout");
    q.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap '' USR1 TERM; while true; do sleep 0.1; done",
    ]);
    q.ok(&["stop", "-t", "1", "stubborn"]);
    assert_eq!(q.inspect("stubborn", "{{.State.ExitCode}}"), "137");
    assert_eq!(q.inspect("stubborn", "{{.Config.StopSignal}}"), "USR1");
}

#[test]
fn start_attach_and_wait() {
    let q = Quai::new("startattach");
    q.ok(&[
        "create",
        "--name",
        "once",
        "busybox",
        "sh",
        "-c",
        "echo hello; exit 5",
    ]);
    let out = q.run(&["start", "-a", "once"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(q.ok(&["wait", "once"]), "5\n");
    let (code, err) = q.fails(&["wait", "ghost"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such container: ghost"), "{err}");
}

#[test]
fn rename_and_name_conflicts() {
    let q = Quai::new("rename");
    q.ok(&["create", "--name", "a1", "busybox", "true"]);
    q.ok(&["create", "--name", "b1", "busybox", "true"]);
    let (code, err) = q.fails(&["rename", "a1", "b1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Conflict. The container name \"/b1\" is already in use"),
        "{err}"
    );
    q.ok(&["rename", "a1", "c1"]);
    assert_eq!(q.inspect("c1", "{{.Name}}"), "/c1");
    let names = q.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, vec!["b1", "c1"]);
}

#[test]
fn ps_flags_filters_and_format() {
    let q = Quai::new("ps");
    q.ok(&["run", "--name", "done0", "-l", "tier=a", "busybox", "true"]);
    assert_eq!(
        q.run(&["run", "--name", "done3", "busybox", "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    q.ok(&[
        "run", "-d", "--name", "live", "-l", "tier=b", "busybox", "sleep", "1000",
    ]);
    let header = q.ok(&["ps"]);
    let mut lines = header.lines();
    let head = lines.next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(head.contains(col), "{head}");
    }
    assert_eq!(lines.count(), 1, "only running containers by default");
    assert_eq!(q.ok(&["ps", "-aq"]).lines().count(), 3);
    assert_eq!(q.ok(&["ps", "-q"]).trim().len(), 12);
    assert_eq!(q.ok(&["ps", "-q", "--no-trunc"]).trim().len(), 64);
    assert_eq!(q.ok(&["ps", "-l", "--format", "{{.Names}}"]), "live\n");
    assert_eq!(
        q.ok(&["ps", "-n", "2", "--format", "{{.Names}}"]),
        "live\ndone3\n"
    );
    assert_eq!(
        q.ok(&["ps", "-a", "--filter", "exited=3", "--format", "{{.Names}}"]),
        "done3\n"
    );
    assert_eq!(
        q.ok(&[
            "ps",
            "-a",
            "--filter",
            "status=running",
            "--format",
            "{{.Names}}"
        ]),
        "live\n"
    );
    assert_eq!(
        q.ok(&[
            "ps",
            "-a",
            "--filter",
            "label=tier=a",
            "--format",
            "{{.Names}}"
        ]),
        "done0\n"
    );
    assert_eq!(
        q.ok(&[
            "ps",
            "-a",
            "--filter",
            "name=done",
            "--format",
            "{{.Names}}"
        ])
        .lines()
        .count(),
        2
    );
    assert_eq!(
        q.ok(&["ps", "-a", "--filter", "ancestor=busybox", "-q"])
            .lines()
            .count(),
        3
    );
    assert_eq!(
        q.ok(&[
            "ps",
            "-a",
            "--filter",
            "before=done3",
            "--format",
            "{{.Names}}"
        ]),
        "done0\n"
    );
    let status = q.ok(&[
        "ps",
        "-a",
        "--filter",
        "name=done3",
        "--format",
        "{{.Status}}|{{.Command}}|{{.State}}",
    ]);
    assert!(status.starts_with("Exited (3) "), "{status}");
    assert!(status.contains("|\"sh -c 'exit 3'\"|exited"), "{status}");
    let json = q.ok(&["ps", "-a", "--format", "json", "--filter", "name=live"]);
    let v: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["Names"], "live");
    let sized = q.ok(&["ps", "-s", "--format", "{{.Size}}"]);
    assert!(sized.contains("(virtual "), "{sized}");
    let (code, err) = q.fails(&["ps", "--filter", "bogus=1"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");
}

#[test]
fn logs_follow_until_exit() {
    let q = Quai::new("logsf");
    q.ok(&[
        "run",
        "-d",
        "--name",
        "counter",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo n$i; echo e$i >&2; sleep 0.2; done",
    ]);
    let out = q.run(&["logs", "-f", "counter"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n1\nn2\nn3\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "e1\ne2\ne3\n");
    let since = q.ok(&["logs", "--since", "1h", "counter"]);
    assert_eq!(since, "n1\nn2\nn3\n");
    let none = q.ok(&["logs", "--until", "2000-01-01T00:00:00Z", "counter"]);
    assert_eq!(none, "");
}

#[test]
fn inspect_has_dockers_shape() {
    let q = Quai::new("inspect");
    q.ok(&[
        "create",
        "--name",
        "shape",
        "-e",
        "X=1",
        "--restart",
        "on-failure:2",
        "busybox",
        "echo",
        "hi",
    ]);
    let out = q.ok(&["inspect", "shape"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let c = &v[0];
    for key in [
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "LogPath",
        "Name",
        "RestartCount",
        "Driver",
        "Platform",
        "HostConfig",
        "GraphDriver",
        "Mounts",
        "Config",
        "NetworkSettings",
    ] {
        assert!(c.get(key).is_some(), "missing {key}");
    }
    assert_eq!(c["Path"], "echo");
    assert_eq!(c["Args"][0], "hi");
    assert_eq!(c["Name"], "/shape");
    assert_eq!(c["State"]["Status"], "created");
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(c["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    assert_eq!(c["Config"]["Image"], "busybox");
    assert!(c["Config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&Value::from("X=1")));
    assert!(c["Image"].as_str().unwrap().starts_with("sha256:"));
    // `inspect` finds images too; `container inspect` does not.
    assert!(q
        .ok(&["inspect", "-f", "{{.Id}}", "busybox"])
        .starts_with("sha256:"));
    let (code, err) = q.fails(&["container", "inspect", "busybox"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such container: busybox"), "{err}");
}

#[test]
fn exec_runs_in_the_container() {
    let q = Quai::new("exec");
    q.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let out = q.run(&[
        "exec",
        "box",
        "sh",
        "-c",
        "echo $HOSTNAME; tr '\\0' ' ' < /proc/1/cmdline; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sleep 1000"), "{text}");
    let out = q.run_with_stdin(
        &[
            "exec",
            "-i",
            "-e",
            "Y=2",
            "-w",
            "/etc",
            "-u",
            "1000",
            "box",
            "sh",
            "-c",
            "cat; echo $Y; pwd; id -u",
        ],
        b"piped\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "piped\n2\n/etc\n1000\n"
    );
    let (code, _) = q.fails(&["exec", "box", "nothing-here"]);
    assert_eq!(code, 127);
    q.ok(&["exec", "-d", "box", "sh", "-c", "echo detached > /tmp/mark"]);
    q.wait_for("detached exec", || {
        q.run(&["exec", "box", "cat", "/tmp/mark"]).status.success()
    });
    let out = q.ok(&[
        "exec",
        "--privileged",
        "box",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(!out.contains("00000000a80425fb"), "{out}");
    q.ok(&["stop", "-t", "0", "box"]);
    let (code, err) = q.fails(&["exec", "box", "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not running"), "{err}");
}

#[test]
fn attach_streams_output_and_exit() {
    let q = Quai::new("attach");
    // `create -i` sets StdinOnce as docker's does: the attached client's
    // end of input closes the container's stdin (with `run -d -i` it
    // would not).
    q.ok(&[
        "create",
        "-i",
        "--name",
        "echoer",
        "busybox",
        "sh",
        "-c",
        "while read l; do echo got $l; done; echo eof; exit 9",
    ]);
    q.ok(&["start", "echoer"]);
    let mut child = q
        .command()
        .args(["attach", "echoer"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"one\ntwo\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "got one\ngot two\neof\n"
    );
    assert_eq!(out.status.code(), Some(9));
    let (code, err) = q.fails(&["attach", "echoer"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("You cannot attach to a stopped container"),
        "{err}"
    );
}

#[test]
fn top_events_info_version() {
    let q = Quai::new("top");
    // From a time before anything happened: the events process may
    // subscribe only after `run` has begun on a busy machine.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .saturating_sub(1)
        .to_string();
    let mut events = q
        .command()
        .args([
            "events",
            "--since",
            &since,
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    q.ok(&["run", "-d", "--name", "topme", "busybox", "sleep", "1000"]);
    let top = q.ok(&["top", "topme"]);
    assert!(top.lines().next().unwrap().contains("PID"), "{top}");
    assert!(top.contains("sleep 1000"), "{top}");
    let top = q.ok(&["top", "topme", "-o", "pid,comm"]);
    assert!(top.contains("sleep"), "{top}");
    q.ok(&["rm", "-f", "topme"]);
    let mut seen = Vec::new();
    let mut reader = BufReader::new(events.stdout.take().unwrap());
    while seen.last().map(String::as_str) != Some("container destroy topme") {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "events ended: {seen:?}"
        );
        seen.push(line.trim().to_string());
    }
    let _ = events.kill();
    let _ = events.wait();
    assert_eq!(
        seen[..2],
        [
            "container create topme".to_string(),
            "container start topme".to_string()
        ]
    );
    assert!(
        seen.contains(&"container die topme".to_string()),
        "{seen:?}"
    );
    let past = q.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "event=create",
    ]);
    assert!(past.contains(" container create "), "{past}");
    let info = q.ok(&["info", "--format", "{{.Containers}} {{.Driver}}"]);
    assert_eq!(info.trim(), "0 overlay");
    assert_eq!(
        q.ok(&["version", "--format", "{{.Client.ApiVersion}}"])
            .trim(),
        "1.50"
    );
}

#[test]
fn prune_and_update_restart_policy() {
    let q = Quai::new("prune");
    q.ok(&["run", "--name", "old", "busybox", "true"]);
    q.ok(&["run", "-d", "--name", "alive", "busybox", "sleep", "1000"]);
    q.ok(&[
        "create", "--name", "kept", "-l", "keep=yes", "busybox", "true",
    ]);
    q.ok(&["create", "--name", "young", "busybox", "true"]);
    // Filters choose what goes: label!=keep spares "kept", until=1h spares
    // what is younger than an hour (all of them).
    let out = q.ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = q.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert_eq!(out.lines().count(), 5, "{out}");
    assert_eq!(
        q.ok(&["ps", "-a", "--format", "{{.Names}}"]),
        "kept\nalive\n"
    );
    let (code, err) = q.fails(&["container", "prune", "-f", "--filter", "color=red"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid filter 'color'"), "{err}");
    q.ok(&["container", "prune", "-f"]);
    assert_eq!(q.ok(&["ps", "-a", "--format", "{{.Names}}"]), "alive\n");
    q.ok(&["update", "--restart", "unless-stopped", "alive"]);
    assert_eq!(
        q.inspect("alive", "{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );
    let (code, err) = q.fails(&["update", "alive"]);
    assert_eq!(code, 1);
    assert!(err.contains("you must provide one or more flags"), "{err}");
}
