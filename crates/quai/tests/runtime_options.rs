//! runc's flags that change how a container is made: --no-pivot,
//! --no-new-keyring, socket activation (LISTEN_FDS), --log/--log-format,
//! and the informational commands spec and features.

mod common;

use std::fs;

use common::{stderr, Fixture};
use serde_json::{json, Value};

#[test]
fn no_pivot_still_confines_the_root() {
    let f = Fixture::new(
        "nopivot",
        &["sh", "-c", "ls /; cat /proc/self/mountinfo | wc -l"],
    );
    let id = f.id("n");
    let out = f.ok(&[
        "run",
        "--no-pivot",
        "--bundle",
        f.bundle.to_str().unwrap(),
        &id,
    ]);
    assert!(out.lines().any(|l| l == "bin"), "{out}");
    assert!(
        !out.lines().any(|l| l == "work"),
        "host root visible: {out}"
    );
}

#[test]
fn session_keyring_is_private_unless_no_new_keyring() {
    let f = Fixture::new("keyring", &["true"]);
    // /proc/keys is masked by the default config; unmask it to look.
    f.edit(|s| {
        s["linux"]["maskedPaths"] = json!([]);
        s["process"]["args"] = json!(["cat", "/proc/keys"]);
    });
    let id = f.id("k");
    let out = f.ok(&["run", "--bundle", f.bundle.to_str().unwrap(), &id]);
    assert!(
        out.contains(&format!("_ses.{id}")),
        "no private session keyring: {out}"
    );
    let id = f.id("k");
    let out = f.ok(&[
        "run",
        "--no-new-keyring",
        "--bundle",
        f.bundle.to_str().unwrap(),
        &id,
    ]);
    assert!(!out.contains(&format!("_ses.{id}")), "{out}");
}

#[test]
fn socket_activation_descriptors_are_passed_and_announced() {
    let f = Fixture::new(
        "listen",
        &["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; cat <&3"],
    );
    fs::write(f.tmp.path().join("socket-standin"), "activated\n").unwrap();
    // LISTEN_PID must name the runtime itself: exec keeps the shell's pid.
    let script = format!(
        "exec 3<{}/socket-standin; export LISTEN_FDS=1 LISTEN_PID=$$; exec {} --root {} run --bundle {} {}",
        f.tmp.path().display(),
        f.binary.display(),
        f.state_root.display(),
        f.bundle.display(),
        f.id("l")
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]);
    let out = common::run_captured(cmd, f.tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 1\nactivated\n");
}

#[test]
fn errors_are_logged_in_runcs_json_format() {
    let f = Fixture::new("log", &["no-such-program"]);
    let log = f.tmp.path().join("log.json");
    let out = f.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        f.bundle.to_str().unwrap(),
        &f.id("l"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"]
            .as_str()
            .unwrap()
            .contains("executable file not found"),
        "{text}"
    );
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn spec_and_features_describe_the_runtime() {
    let f = Fixture::new("spec", &["true"]);
    let again = f.rt(&["spec", "--bundle", f.bundle.to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "spec must not overwrite config.json"
    );
    assert!(stderr(&again).contains("exists"));

    let dir = f.tmp.path().join("rootless");
    fs::create_dir(&dir).unwrap();
    f.ok(&["spec", "--rootless", "--bundle", dir.to_str().unwrap()]);
    let spec: Value = serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert!(spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user"));
    assert_eq!(spec["linux"]["uidMappings"][0]["containerID"], 0);

    let features: Value = serde_json::from_str(&f.ok(&["features"])).unwrap();
    assert_eq!(features["ociVersionMin"], "1.0.0");
    assert!(features["hooks"]
        .as_array()
        .unwrap()
        .contains(&json!("createContainer")));
    let namespaces = features["linux"]["namespaces"].as_array().unwrap();
    assert!(namespaces.contains(&json!("time")));
    let caps = features["linux"]["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("CAP_SYS_ADMIN")));
}
