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
    assert!(out.contains("from the host"), "bind not mounted: {out} {err}");
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
