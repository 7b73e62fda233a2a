//! User namespaces (run as root: the runtime writes the id maps itself):
//! the container's root is not the host's root.

mod common;

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};

use common::{stderr, Fixture};
use serde_json::{json, Value};

const HOST_BASE: u32 = 100_000;

fn userns_fixture(prefix: &str, args: &[&str]) -> Fixture {
    let f = Fixture::new(prefix, args);
    f.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]);
        s["linux"]["uidMappings"] = map.clone();
        s["linux"]["gidMappings"] = map;
    });
    f
}

#[test]
fn files_made_by_container_root_belong_to_the_mapped_uid() {
    let f = userns_fixture(
        "userns",
        &[
            "sh",
            "-c",
            "touch /data/by-root; id -u; cat /proc/self/uid_map",
        ],
    );
    let data = f.rootfs().join("data");
    fs::create_dir(&data).unwrap();
    chown(&data, Some(HOST_BASE), Some(HOST_BASE)).unwrap();
    let (code, out, err) = f.run(&f.id("u"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &HOST_BASE.to_string(), "65536"]);
    let made = fs::metadata(data.join("by-root")).unwrap();
    assert_eq!((made.uid(), made.gid()), (HOST_BASE, HOST_BASE));
}

#[test]
fn container_root_cannot_read_a_root_only_host_file() {
    let f = userns_fixture("usersecret", &["cat", "/secret"]);
    let secret = f.tmp.path().join("secret");
    fs::write(&secret, "host only\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    f.edit(|s| {
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/secret", "type": "bind", "source": secret, "options": ["bind", "ro"]
        }));
    });
    let (code, out, err) = f.run(&f.id("s"));
    assert_ne!(code, 0, "the container read the secret: {out}");
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn exec_enters_the_user_namespace() {
    let f = userns_fixture("userexec", &["sleep", "1000"]);
    let id = f.id("e");
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &id]);
    let out = f.ok(&["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert!(lines[1].contains(&HOST_BASE.to_string()), "{out}");
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let host_uid = fs::metadata(format!("/proc/{pid}")).unwrap().uid();
    assert_eq!(
        host_uid, HOST_BASE,
        "the init runs as the mapped uid on the host"
    );
}

#[test]
fn bad_mappings_are_refused() {
    let f = userns_fixture("usermap", &["true"]);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 10}, {"containerID": 5, "hostID": 200000, "size": 10}]}),
            "overlaps",
        ),
        (json!({"gidMappings": []}), "needs at least one mapping"),
        (
            json!({"uidMappings": [{"containerID": 1, "hostID": 100000, "size": 10}]}),
            "container id 0 is not mapped",
        ),
        (
            json!({"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 0}]}),
            "is zero",
        ),
    ];
    for (patch, expected) in cases {
        let original = f.spec();
        f.edit(|s| {
            for (k, v) in patch.as_object().unwrap() {
                s["linux"][k] = v.clone();
            }
        });
        let id = f.id("b");
        let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
        f.edit(|s| *s = original);
        assert_eq!(out.status.code(), Some(1), "{patch} accepted");
        assert!(stderr(&out).contains(expected), "{patch}: {}", stderr(&out));
        assert!(!f.state_dir(&id).exists());
    }
    // Mappings without a user namespace are refused too.
    f.edit(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user");
    });
    let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &f.id("b")]);
    assert!(
        stderr(&out).contains("need a new user namespace"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unprivileged_user_runs_a_rootless_container() {
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let f = Fixture::new("rootless", &["true"]);
    // The user must reach the bundle and own the state root and the
    // bundle directory (spec writes config.json there).
    fs::set_permissions(f.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(f.bundle.join("config.json")).unwrap();
    chown(&f.bundle, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::create_dir_all(&f.state_root).unwrap();
    chown(&f.state_root, Some(NOBODY), Some(NOBODY)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut cmd = f.cmd(args);
        cmd.uid(NOBODY).gid(NOBODY);
        common::run_captured(cmd, f.tmp.path())
    };
    let out = as_nobody(&["spec", "--rootless", "--bundle", f.bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    f.edit(|s| {
        s["process"]["terminal"] = json!(false);
        s["process"]["args"] = json!([
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; touch /tmp/x 2>&1 || true"
        ]);
    });
    let out = as_nobody(&["run", "--bundle", f.bundle.to_str().unwrap(), &f.id("r")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {text}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &NOBODY.to_string(), "1"]);
    // Root inside is the unprivileged user outside: the root-owned rootfs
    // (read-only here besides) is not writable.
    assert!(lines.len() > 2 && lines[2].contains("touch"), "{text}");
}
