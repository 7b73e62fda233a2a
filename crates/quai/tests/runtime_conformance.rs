//! What the OCI runtime-tools validation suite checks and quai once got
//! wrong, proven here so that CI checks it without the suite: file-system
//! options on bind mounts (the `mounts` test), containers that inherit the
//! runtime's namespaces, the mount namespace included (`linux_ns_itype`).

mod common;

use std::fs;

use common::{mounts_below, stderr, Fixture};
use serde_json::json;

#[test]
fn bind_mounts_ignore_file_system_options_like_runc() {
    let f = Fixture::new(
        "bindopts",
        &[
            "sh",
            "-c",
            "cat /data/marker; grep ' /data ' /proc/self/mountinfo; touch /data/new",
        ],
    );
    let source = f.tmp.path().join("data");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("marker"), "from the host\n").unwrap();
    f.edit(|s| {
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data",
            "type": "bind",
            "source": source,
            // mode= and size= belong to tmpfs: a bind carries no data.
            "options": ["rbind", "mode=755", "size=1k", "sync", "ro", "nosuid"]
        }));
    });
    let (code, out, err) = f.run(&f.id("b"));
    assert!(
        out.contains("from the host"),
        "bind not mounted: {out} {err}"
    );
    let line = out
        .lines()
        .find(|l| l.contains(" /data "))
        .unwrap_or_else(|| panic!("no /data mount: {out}"));
    let per_mount = line.split(' ').nth(5).unwrap_or_default();
    assert!(
        per_mount.split(',').any(|o| o == "ro") && per_mount.contains("nosuid"),
        "per-mount flags lost: {line}"
    );
    assert!(!line.contains("mode=755"), "data reached the mount: {line}");
    assert_ne!(code, 0, "the read-only bind was writable: {out}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(err.contains("ignored"), "no warning about mode=755: {err}");
    assert!(!source.join("new").exists());
}

#[test]
fn bind_mounts_still_refuse_malformed_options() {
    let f = Fixture::new("bindbad", &["true"]);
    f.edit(|s| {
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data",
            "type": "bind",
            "source": "/tmp",
            "options": ["rbind", "=755"]
        }));
    });
    let id = f.id("b");
    let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("mounts[") && err.contains("no name"), "{err}");
    assert!(!f.state_dir(&id).exists());
    assert!(mounts_below(&f.rootfs()).is_empty());
}

/// A config without a mount namespace (runtime-tools' `linux_ns_itype`
/// removes every namespace): the container shares the runtime's mount
/// namespace, sees only its rootfs (chroot), gets its mounts, and `delete`
/// leaves no mount behind in the host's namespace.
#[test]
fn a_container_without_a_mount_namespace_shares_ours_and_leaves_no_mount() {
    let f = Fixture::new(
        "nomntns",
        &[
            "sh",
            "-c",
            "ls /; readlink /proc/self/ns/mnt; grep -c ' /proc ' /proc/self/mountinfo; sleep 30",
        ],
    );
    f.edit(|s| {
        let namespaces = s["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|n| n["type"] != "mount");
        s["linux"]["maskedPaths"] = json!([]);
        s["linux"]["readonlyPaths"] = json!([]);
    });
    let id = f.id("m");
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &id]);
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let ours = fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
        ours,
        "the container got a mount namespace of its own"
    );
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        fs::canonicalize(f.rootfs()).unwrap(),
        "not confined to its rootfs"
    );
    let mounted = mounts_below(&f.rootfs());
    assert!(
        mounted.iter().any(|m| m.ends_with("/rootfs/proc")),
        "the config's mounts were not made: {mounted:?}"
    );
    let out = f.ok(&["exec", &id, "sh", "-c", "ls /; cat /proc/1/comm"]);
    assert!(
        out.lines().any(|l| l == "bin"),
        "exec outside the rootfs: {out}"
    );
    f.ok(&["delete", "--force", &id]);
    assert!(
        mounts_below(&f.rootfs()).is_empty(),
        "mounts left in the host namespace: {:?}",
        mounts_below(&f.rootfs())
    );
}

#[test]
fn a_failed_create_without_a_mount_namespace_leaves_no_mount() {
    let f = Fixture::new("nomntfail", &["/no/such/program"]);
    f.edit(|s| {
        let namespaces = s["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|n| n["type"] != "mount");
        s["linux"]["maskedPaths"] = json!([]);
        s["linux"]["readonlyPaths"] = json!([]);
    });
    let id = f.id("m");
    let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success(), "a missing program was accepted");
    assert!(
        stderr(&out).contains("/no/such/program"),
        "{}",
        stderr(&out)
    );
    assert!(!f.state_dir(&id).exists());
    assert!(
        mounts_below(&f.rootfs()).is_empty(),
        "mounts left in the host namespace: {:?}",
        mounts_below(&f.rootfs())
    );
}

#[test]
fn what_needs_a_mount_namespace_is_refused_without_one() {
    let f = Fixture::new("nomntbad", &["true"]);
    f.edit(|s| {
        let namespaces = s["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|n| n["type"] != "mount");
    });
    // The default config masks /proc paths: that needs a private namespace.
    let id = f.id("m");
    let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("linux.maskedPaths") && err.contains("no mount entry"),
        "{err}"
    );
    assert!(!f.state_dir(&id).exists());
    assert!(mounts_below(&f.rootfs()).is_empty());
}
