//! The kernel's cgroup2 tree seen as a unified host, whatever this host's
//! layout: on a hybrid host (`/sys/fs/cgroup/unified`) the tree has no
//! resource controllers, but process tracking, `cgroup.freeze`,
//! `cgroup.kill` and eBPF device filters work on any cgroup2 directory.

use std::os::unix::process::ExitStatusExt;
use std::thread::sleep;
use std::time::Duration;

use quai_runtime::cgroups::devices::attached_program_count;
use quai_runtime::cgroups::FreezerState;
use quai_testutil::TempRoot;

use crate::fixtures::{cpu_ticks, read, resources, wait_until, Scratch};
use crate::host::{block_node, deny_all_but_defaults_and, open_from, ALLOW_READ_7_0};

#[test]
fn v2_create_places_processes_and_destroy_removes_everything() {
    let mut s = Scratch::unified();
    assert!(s.cg.is_unified());
    s.cg.create().unwrap();
    let dir = s.cg.unified_dir().unwrap().to_path_buf();
    let pid = s.spawn("exec sleep 1000");
    assert_eq!(s.cg.pids().unwrap(), vec![pid]);
    assert_eq!(read(&dir, "cgroup.procs"), pid.to_string());
    // Nested cgroups the container makes itself are found and removed.
    std::fs::create_dir(dir.join("inner")).unwrap();
    std::fs::write(dir.join("inner/cgroup.procs"), pid.to_string()).unwrap();
    assert_eq!(s.cg.pids().unwrap(), vec![pid]);
    s.cg.kill_and_destroy().unwrap();
    assert_eq!(s.child(pid).wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(!dir.exists());
}

#[test]
fn v2_freeze_uses_cgroup_freeze() {
    let mut s = Scratch::unified();
    s.cg.create().unwrap();
    let pid = s.spawn("while :; do :; done");
    assert!(wait_until(10, || cpu_ticks(pid) > 0));
    s.cg.freeze().unwrap();
    let dir = s.cg.unified_dir().unwrap();
    assert_eq!(read(dir, "cgroup.freeze"), "1");
    assert!(read(dir, "cgroup.events").contains("frozen 1"));
    assert_eq!(s.cg.freezer_state().unwrap(), FreezerState::Frozen);
    let frozen_at = cpu_ticks(pid);
    sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), frozen_at);
    s.cg.thaw().unwrap();
    assert_eq!(s.cg.freezer_state().unwrap(), FreezerState::Thawed);
    assert!(wait_until(10, || cpu_ticks(pid) > frozen_at));
}

#[test]
fn v2_kill_all_with_sigkill_uses_cgroup_kill_even_when_frozen() {
    let mut s = Scratch::unified();
    s.cg.create().unwrap();
    let a = s.spawn("exec sleep 1000");
    let b = s.spawn("sleep 1000 & exec sleep 1000");
    assert!(wait_until(10, || s.cg.pids().unwrap().len() == 3));
    s.cg.freeze().unwrap();
    s.cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(s.child(a).wait().unwrap().signal(), Some(libc::SIGKILL));
    assert_eq!(s.child(b).wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(wait_until(10, || s.cg.pids().unwrap().is_empty()));
}

#[test]
fn v2_ebpf_device_filter_denies_a_block_device_and_is_replaced_on_update() {
    let root = TempRoot::new("cgbpf");
    let node = block_node(&root);
    let s = Scratch::unified();
    s.cg.create().unwrap();
    let dir = s.cg.unified_dir().unwrap();
    assert_eq!(attached_program_count(dir).unwrap(), 0);
    let (ok, err) = open_from(&s.cg, &node);
    assert!(ok, "{err}");

    s.cg.apply(&deny_all_but_defaults_and(&[])).unwrap();
    assert_eq!(attached_program_count(dir).unwrap(), 1);
    let (ok, err) = open_from(&s.cg, &node);
    assert!(!ok);
    assert!(err.contains("Operation not permitted"), "{err}");

    // Update: allow reading the node. The old program is replaced, not
    // stacked (stacked filters would still deny).
    s.cg.apply(&deny_all_but_defaults_and(&[ALLOW_READ_7_0]))
        .unwrap();
    assert_eq!(attached_program_count(dir).unwrap(), 1);
    let (ok, err) = open_from(&s.cg, &node);
    assert!(ok, "after allowing b 7:0 r: {err}");

    // Write access was not granted.
    let script = format!("echo x > {}", node.display());
    let (_, child) = crate::fixtures::spawn_in(&s.cg, &script, std::process::Stdio::null());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
}

/// hugetlb is the one controller this machine's kernel binds to cgroup2.
/// The test enables it at the tree's root only if it is not enabled yet, and
/// disables it again afterwards.
#[test]
fn v2_hugetlb_limits_where_the_controller_is_available() {
    let host = quai_runtime::cgroups::Layout::detect().unwrap();
    let mount = host.unified().unwrap().mount_point.clone();
    let available = read(&mount, "cgroup.controllers");
    if !available.split_whitespace().any(|c| c == "hugetlb") {
        eprintln!("hugetlb not available in the cgroup2 tree: covered by the fake tree test");
        return;
    }
    let enabled_before = read(&mount, "cgroup.subtree_control")
        .split_whitespace()
        .any(|c| c == "hugetlb");
    if !enabled_before {
        std::fs::write(mount.join("cgroup.subtree_control"), "+hugetlb").unwrap();
    }
    struct Restore(std::path::PathBuf, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            if !self.1 {
                let _ = std::fs::write(self.0.join("cgroup.subtree_control"), "-hugetlb");
            }
        }
    }
    let _restore = Restore(mount, enabled_before);
    {
        let s = Scratch::unified();
        let r = resources(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#);
        s.cg.check(&r).unwrap();
        s.cg.create().unwrap();
        s.cg.apply(&r).unwrap();
        let dir = s.cg.unified_dir().unwrap();
        assert_eq!(read(dir, "hugetlb.2MB.max"), "4194304");
        if dir.join("hugetlb.2MB.rsvd.max").exists() {
            assert_eq!(read(dir, "hugetlb.2MB.rsvd.max"), "4194304");
        }
        let stats = s.cg.stats().unwrap();
        assert!(stats.hugetlb.contains_key("2MB"), "{:?}", stats.hugetlb);
    }
}

#[test]
fn v2_missing_controller_is_named() {
    let s = Scratch::unified();
    s.cg.create().unwrap();
    let available = read(s.cg.unified_dir().unwrap(), "cgroup.controllers");
    if available.split_whitespace().any(|c| c == "pids") {
        return; // a v2 host with pids delegated: nothing missing to report
    }
    let r = resources(r#"{"pids":{"limit":10}}"#);
    let err = s.cg.check(&r).unwrap_err().to_string();
    assert!(err.contains("pids controller is not available"), "{err}");
    let err = s.cg.apply(&r).unwrap_err().to_string();
    assert!(err.contains("pids controller is not enabled"), "{err}");
}

/// A v2-only view of this kernel, as crun needs it here: a mount namespace
/// where the only cgroup file system is a cgroup2 mount at /sys/fs/cgroup.
/// Detection must call that unified.
#[test]
fn private_cgroup2_mount_is_detected_as_unified() {
    quai_testutil::require_root();
    let out = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup \
             && cat /proc/self/mountinfo && echo @@ && cat /proc/self/cgroup",
        ])
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (mountinfo, self_cgroup) = text.split_once("@@\n").expect("both files printed");
    let layout = quai_runtime::cgroups::Layout::parse(mountinfo, self_cgroup).unwrap();
    match layout {
        quai_runtime::cgroups::Layout::Unified(u) => {
            assert_eq!(u.mount_point, std::path::Path::new("/sys/fs/cgroup"))
        }
        other => panic!("expected a unified layout, got {other:?}"),
    }
}

#[test]
fn v2_device_filter_replacement_never_cuts_access_transiently() {
    crate::host::updates_never_cut_access(Scratch::unified());
}
