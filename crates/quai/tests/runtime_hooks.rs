//! OCI hooks run at their points of the lifecycle, in the right namespaces,
//! with the state on stdin; a failing or hanging hook fails create and
//! leaves nothing behind.

mod common;

use std::fs;

use common::{stderr, Fixture};
use serde_json::{json, Value};

/// A hook that appends "<name> <state json>" to `log` (the state arrives on
/// stdin), plus what the extra shell snippet prints.
fn recorder(log: &str, name: &str, extra: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("printf '%s ' {name} >> {log}; cat >> {log}; {extra} echo >> {log}")],
        "env": ["HOOK_ENV=present"]
    })
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let f = Fixture::new("hooks", &["sh", "-c", "echo container ran"]);
    let log = f.tmp.path().join("hooks.log");
    let log_s = log.to_str().unwrap().to_string();
    f.edit(|s| {
        s["hostname"] = json!("hookbox");
        s["hooks"] = json!({
            "prestart": [recorder(&log_s, "prestart", "")],
            "createRuntime": [recorder(&log_s, "createRuntime", "printf \"$HOOK_ENV \" >> LOG;")],
            // Runs in the container's namespaces (before pivot_root).
            "createContainer": [recorder(&log_s, "createContainer", "printf \"$(hostname) \" >> LOG;")],
            "poststart": [recorder(&log_s, "poststart", "")],
            "poststop": [recorder(&log_s, "poststop", "")]
        });
    });
    // The placeholder LOG stands for the log path inside the snippets.
    let text = fs::read_to_string(f.bundle.join("config.json"))
        .unwrap()
        .replace("LOG", &log_s);
    fs::write(f.bundle.join("config.json"), text).unwrap();

    let id = f.id("h");
    let (code, out, err) = f.run(&id);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "container ran\n");
    let text = fs::read_to_string(&log).unwrap();
    let entries: Vec<(&str, Value)> = text
        .lines()
        .map(|l| {
            let (name, rest) = l.split_once(' ').unwrap();
            let json_end = rest.rfind('}').unwrap() + 1;
            (name, serde_json::from_str(&rest[..json_end]).unwrap())
        })
        .collect();
    let names: Vec<&str> = entries.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
    );
    for (name, state) in &entries {
        assert_eq!(state["id"], id.as_str(), "{name}");
        assert_eq!(state["bundle"], f.bundle.to_str().unwrap(), "{name}");
    }
    assert_eq!(entries[0].1["status"], "creating");
    assert!(entries[0].1["pid"].as_i64().unwrap() > 0);
    assert_eq!(entries[3].1["status"], "running");
    assert_eq!(entries[4].1["status"], "stopped");
    assert!(
        text.lines().nth(1).unwrap().ends_with("present "),
        "hook env: {text}"
    );
    assert!(
        text.lines().nth(2).unwrap().ends_with("hookbox "),
        "createContainer namespaces: {text}"
    );
}

#[test]
fn start_container_hooks_run_inside_the_container() {
    let f = Fixture::new("starthook", &["cat", "/tmp/from-hook"]);
    f.edit(|s| {
        s["hooks"] = json!({
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/from-hook"]}]
        });
    });
    let (code, out, err) = f.run(&f.id("s"));
    assert_eq!(code, 0, "{err}");
    let state: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(state["status"], "created");
    // The hook wrote inside the container's root, not the host's /tmp.
    assert!(f.rootfs().join("tmp/from-hook").exists());
}

#[test]
fn failing_or_hanging_hooks_fail_create_cleanly() {
    let f = Fixture::new("badhook", &["true"]);
    for (hooks, expected) in [
        (
            json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]}]}),
            "exit status 3: broken",
        ),
        (
            json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}),
            "timed out after 1s",
        ),
        (
            json!({"createContainer": [{"path": "/no/such/hook"}]}),
            "cannot start",
        ),
    ] {
        f.edit(|s| s["hooks"] = hooks.clone());
        let id = f.id("b");
        let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
        assert_eq!(out.status.code(), Some(1), "{hooks}");
        assert!(stderr(&out).contains(expected), "{hooks}: {}", stderr(&out));
        assert!(!f.state_dir(&id).exists());
    }
}
