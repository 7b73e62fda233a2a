//! ID-mapped bind mounts (`mounts[].uidMappings/gidMappings`, `idmap` and
//! `ridmap`): owners seen inside through the mapping, files created inside
//! landing with the host-side ids, bad mappings refused before anything
//! exists, and `features` announcing the extension.

mod common;

use std::fs;
use std::os::unix::fs::{chown, MetadataExt};
use std::path::Path;

use common::{mounts_below, stderr, Fixture};
use serde_json::{json, Value};

fn idmapped_bind(source: &Path, options: &[&str], uid: Value, gid: Value) -> Value {
    json!({
        "destination": "/data",
        "type": "bind",
        "source": source,
        "options": options,
        "uidMappings": uid,
        "gidMappings": gid,
    })
}

fn add_mount(f: &Fixture, mount: Value) {
    f.edit(|s| s["mounts"].as_array_mut().unwrap().push(mount));
}

// As in runc, a mapping line is written to the mount's user namespace as
// given: `containerID` is the id on the source file system, `hostID` the id
// seen through the mount (here by a container without a user namespace).
#[test]
fn owner_is_seen_through_the_mapping_and_new_files_get_host_ids() {
    let f = Fixture::new(
        "idmap",
        &[
            "sh",
            "-c",
            "stat -c '%u:%g' /data/owned /data/other; touch /data/created; mkdir /data/dir",
        ],
    );
    let source = f.tmp.path().join("source");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("owned"), "x").unwrap();
    fs::write(source.join("other"), "x").unwrap();
    chown(source.join("owned"), Some(1000), Some(2000)).unwrap();
    chown(source.join("other"), Some(1005), Some(2003)).unwrap();
    // The container's root (uid 0) must be able to write the directory as
    // its mapped owner does.
    chown(&source, Some(1000), Some(2000)).unwrap();
    add_mount(
        &f,
        idmapped_bind(
            &source,
            &["bind", "idmap"],
            json!([{"containerID": 1000, "hostID": 0, "size": 10}]),
            json!([{"containerID": 2000, "hostID": 0, "size": 10}]),
        ),
    );
    let (code, out, err) = f.run(&f.id("im"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "0:0\n5:3\n");
    for name in ["created", "dir"] {
        let meta = fs::metadata(source.join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 2000), "{name}");
    }
    assert!(mounts_below(&f.rootfs()).is_empty());
    assert!(mounts_below(&source).is_empty());
}

#[test]
fn ridmap_maps_the_mounts_below_a_recursive_bind() {
    let f = Fixture::new(
        "ridmap",
        &["stat", "-c", "%u", "/data/top", "/data/sub/inner"],
    );
    let source = f.tmp.path().join("source");
    let sub_source = f.tmp.path().join("sub-source");
    fs::create_dir_all(source.join("sub")).unwrap();
    fs::create_dir(&sub_source).unwrap();
    fs::write(source.join("top"), "x").unwrap();
    fs::write(sub_source.join("inner"), "x").unwrap();
    chown(source.join("top"), Some(1001), Some(1001)).unwrap();
    chown(sub_source.join("inner"), Some(1002), Some(1002)).unwrap();
    // A submount of the source, in a private mount namespace of a child so
    // that nothing is left on the host if the test fails.
    let script = format!(
        "mount --make-rprivate / && mount --bind {sub} {src}/sub && exec {bin} --root {state} run --bundle {bundle} {id}",
        sub = sub_source.display(),
        src = source.display(),
        bin = f.binary.display(),
        state = f.state_root.display(),
        bundle = f.bundle.display(),
        id = f.id("rim"),
    );
    add_mount(
        &f,
        idmapped_bind(
            &source,
            &["rbind", "ridmap"],
            json!([{"containerID": 1000, "hostID": 0, "size": 10}]),
            json!([{"containerID": 1000, "hostID": 0, "size": 10}]),
        ),
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script]);
    let out = common::run_captured(cmd, f.tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\n");
}

#[test]
fn idmap_alone_takes_the_mappings_of_the_containers_user_namespace() {
    // The container's root is host uid 100000; through a mount ID-mapped
    // with the container's own mappings, host-owned files keep their owners
    // inside and the files it creates are owned by the host's root.
    let f = Fixture::new(
        "idmapuserns",
        &[
            "sh",
            "-c",
            "stat -c '%u:%g' /data/owned; touch /data/created",
        ],
    );
    let source = f.tmp.path().join("source");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("owned"), "x").unwrap();
    chown(source.join("owned"), Some(5), Some(6)).unwrap();
    // The mount point exists: the container's root cannot create it in a
    // rootfs owned by the host's root.
    fs::create_dir(f.rootfs().join("data")).unwrap();
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    f.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        s["linux"]["uidMappings"] = map.clone();
        s["linux"]["gidMappings"] = map.clone();
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": source, "options": ["bind", "idmap"]
        }));
    });
    let (code, out, err) = f.run(&f.id("imu"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "5:6\n");
    let meta = fs::metadata(source.join("created")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    assert!(mounts_below(&f.rootfs()).is_empty());
}

#[test]
fn bad_mappings_are_refused_before_anything_is_created() {
    let f = Fixture::new("idmapbad", &["true"]);
    let source = f.tmp.path().join("source");
    fs::create_dir(&source).unwrap();
    let one = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let cases = [
        (
            idmapped_bind(
                &source,
                &["bind"],
                json!([
                    {"containerID": 0, "hostID": 1000, "size": 10},
                    {"containerID": 5, "hostID": 5000, "size": 1}
                ]),
                one.clone(),
            ),
            "mounts[",
            "overlap in containerID",
        ),
        (
            idmapped_bind(&source, &["bind"], one.clone(), json!([])),
            "gidMappings",
            "empty",
        ),
        (
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                   "options": ["idmap"], "uidMappings": one, "gidMappings": one}),
            ".type",
            "only a bind mount can be ID-mapped",
        ),
        (
            json!({"destination": "/data", "type": "bind", "source": source,
                   "options": ["bind", "idmap"]}),
            "uidMappings",
            "uidMappings and gidMappings: the container has no user namespace",
        ),
    ];
    let original = f.spec();
    for (mount, field, reason) in cases {
        f.edit(|s| *s = original.clone());
        add_mount(&f, mount.clone());
        let id = f.id("bad");
        let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
        let err = stderr(&out);
        assert!(!out.status.success(), "accepted {mount}");
        assert!(
            err.contains(field) && err.contains(reason),
            "{mount}: {err}"
        );
        assert!(!f.state_dir(&id).exists(), "{mount}: state left behind");
    }
    assert!(mounts_below(&f.rootfs()).is_empty());
}

#[test]
fn a_failed_idmapped_mount_leaves_no_mount_and_no_container() {
    // procfs cannot be ID-mapped: the mapping fails after the user
    // namespace is made, inside the container's mount namespace.
    let f = Fixture::new("idmapfail", &["true"]);
    add_mount(
        &f,
        idmapped_bind(
            Path::new("/proc"),
            &["rbind"],
            json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
            json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
        ),
    );
    let id = f.id("fail");
    let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ID-map rbind on /data"),
        "{}",
        stderr(&out)
    );
    assert!(!f.state_dir(&id).exists());
    assert!(mounts_below(&f.rootfs()).is_empty());
}

#[test]
fn features_announce_idmapped_mounts() {
    let f = Fixture::new("idmapfeat", &["true"]);
    let out = f.ok(&["features"]);
    let features: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        features["linux"]["mountExtensions"]["idmap"]["enabled"],
        json!(true)
    );
    let options = features["mountOptions"].as_array().unwrap();
    for option in ["idmap", "ridmap"] {
        assert!(options.contains(&json!(option)), "{option} missing");
    }
}
