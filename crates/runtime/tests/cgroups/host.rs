//! The host's own layout (v1 controllers on a hybrid host, the cgroup2 tree
//! on a unified one): limits enforced by the kernel.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::thread::sleep;
use std::time::Duration;

use quai_runtime::cgroups::{Cgroup, FreezerState, OomEvents};
use quai_testutil::TempRoot;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{mknodat, FileType, Mode, CWD};

use crate::fixtures::{cpu_ticks, read, resources, wait_until, Scratch};

#[test]
fn fork_bomb_is_contained_by_the_pids_limit() {
    let mut s = Scratch::host();
    s.cg.create().unwrap();
    s.cg.apply(&resources(r#"{"pids":{"limit":16}}"#)).unwrap();
    let dir = s.cg.controller_dir("pids").unwrap().to_path_buf();
    assert_eq!(read(&dir, "pids.max"), "16");
    s.spawn("bomb() { bomb | bomb & }; bomb");
    // The kernel counts refused forks in pids.events.
    let refused = || {
        std::fs::read_to_string(dir.join("pids.events"))
            .ok()
            .and_then(|t| {
                t.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    assert!(
        wait_until(30, || refused() > 0),
        "the fork bomb never hit pids.max"
    );
    let current: u64 = read(&dir, "pids.current").parse().unwrap();
    assert!(current <= 16, "pids.current {current} exceeds the limit");
    assert!(s.cg.pids().unwrap().len() <= 16);
    let stats = s.cg.stats().unwrap();
    assert_eq!(stats.pids.limit, 16);
    // Killing everything and removing the cgroup must work against a bomb.
    s.cg.kill_and_destroy().unwrap();
    assert!(!s.cg.exists());
}

/// A shell that doubles a string until the OOM killer stops it.
const MEMORY_HOG: &str = "x=0123456789abcdef; while :; do x=$x$x; done";

/// A created cgroup limited to 32 MiB, memory+swap equal to memory (no swap
/// to escape to).
fn memory_limited_32m() -> Scratch {
    let s = Scratch::host();
    s.cg.create().unwrap();
    s.cg.apply(&resources(
        r#"{"memory":{"limit":33554432,"swap":33554432}}"#,
    ))
    .unwrap();
    s
}

#[test]
fn memory_hog_is_oom_killed_and_reported() {
    let mut s = memory_limited_32m();
    assert_eq!(s.cg.oom_kill_count().unwrap(), 0);
    let mut notifier = s.cg.oom_notifier().unwrap();
    let pid = s.spawn(MEMORY_HOG);
    let status = s.child(pid).wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "hog ended with {status:?}"
    );
    assert!(s.cg.oom_kill_count().unwrap() >= 1);
    let mut fds = [PollFd::new(&notifier, PollFlags::IN)];
    let ready = poll(
        &mut fds,
        Some(&rustix::event::Timespec {
            tv_sec: 30,
            tv_nsec: 0,
        }),
    )
    .unwrap();
    assert_eq!(ready, 1, "the OOM notifier never became readable");
    match notifier.read_events().unwrap() {
        OomEvents::Oom(n) => assert!(n >= 1),
        other => panic!("expected an OOM event, got {other:?}"),
    }
}

#[test]
fn freeze_stops_a_busy_loop_and_thaw_restarts_it() {
    let mut s = Scratch::host();
    s.cg.create().unwrap();
    let pid = s.spawn("while :; do :; done");
    assert!(wait_until(10, || cpu_ticks(pid) > 0), "the loop never ran");
    assert_eq!(s.cg.freezer_state().unwrap(), FreezerState::Thawed);
    s.cg.freeze().unwrap();
    assert_eq!(s.cg.freezer_state().unwrap(), FreezerState::Frozen);
    let frozen_at = cpu_ticks(pid);
    sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), frozen_at, "a frozen process used CPU time");
    s.cg.thaw().unwrap();
    assert_eq!(s.cg.freezer_state().unwrap(), FreezerState::Thawed);
    assert!(
        wait_until(10, || cpu_ticks(pid) > frozen_at),
        "the thawed loop never ran again"
    );
}

/// A block device node in a temporary directory: opening it is refused by
/// the device rules, not by where it lives.
pub fn block_node(root: &TempRoot) -> std::path::PathBuf {
    let node = root.path().join("blk");
    mknodat(
        CWD,
        &node,
        FileType::BlockDevice,
        Mode::from_raw_mode(0o600),
        rustix::fs::makedev(7, 0),
    )
    .unwrap();
    node
}

/// Opens `node` from a process in `cg`; returns (success, stderr).
pub fn open_from(cg: &Cgroup, node: &std::path::Path) -> (bool, String) {
    let script = format!("dd if={} of=/dev/null bs=1 count=0", node.display());
    let (_, child) = crate::fixtures::spawn_in(cg, &script, Stdio::null());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Deny everything, then the default devices, then `extra` rules (JSON).
pub fn deny_all_but_defaults_and(extra: &[&str]) -> oci_spec::runtime::LinuxResources {
    let mut r = resources(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#);
    let mut rules = quai_runtime::cgroups::devices::container_device_rules(
        r.devices().as_deref().unwrap(),
        &[],
    );
    rules.extend(extra.iter().map(|j| serde_json::from_str(j).unwrap()));
    r.set_devices(Some(rules));
    r
}

pub const ALLOW_READ_7_0: &str = r#"{"allow":true,"type":"b","major":7,"minor":0,"access":"r"}"#;

#[test]
fn device_rules_deny_a_block_device() {
    let root = TempRoot::new("cgdev");
    let node = block_node(&root);
    let s = Scratch::host();
    s.cg.create().unwrap();
    let (ok, err) = open_from(&s.cg, &node);
    assert!(ok, "without rules the node must open: {err}");
    s.cg.apply(&deny_all_but_defaults_and(&[])).unwrap();
    let (ok, err) = open_from(&s.cg, &node);
    assert!(!ok);
    assert!(err.contains("Operation not permitted"), "{err}");
    if let Some(dir) =
        s.cg.controller_dir("devices")
            .filter(|_| !s.cg.is_unified())
    {
        let list = read(dir, "devices.list");
        assert!(list.contains("c 1:3 rwm"), "{list}");
        assert!(!list.contains("a *:*"), "{list}");
    }
    // An update that also allows the node applies live.
    s.cg.apply(&deny_all_but_defaults_and(&[ALLOW_READ_7_0]))
        .unwrap();
    let (ok, err) = open_from(&s.cg, &node);
    assert!(ok, "after allowing b 7:0 r: {err}");
}

#[test]
fn limits_read_back_from_the_kernel() {
    let s = Scratch::host();
    s.cg.create().unwrap();
    s.cg.apply(&resources(
        r#"{"memory":{"limit":67108864,"reservation":33554432,"swap":134217728},
            "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0","mems":"0"},
            "pids":{"limit":100}}"#,
    ))
    .unwrap();
    let mem = s.cg.controller_dir("memory").unwrap();
    let cpu = s.cg.controller_dir("cpu").unwrap();
    let cpuset = s.cg.controller_dir("cpuset").unwrap();
    if s.cg.is_unified() {
        assert_eq!(read(mem, "memory.max"), "67108864");
        assert_eq!(read(mem, "memory.low"), "33554432");
        assert_eq!(read(mem, "memory.swap.max"), "67108864");
        assert_eq!(read(cpu, "cpu.weight"), "59");
        assert_eq!(read(cpu, "cpu.max"), "50000 100000");
        assert_eq!(read(cpuset, "cpuset.cpus"), "0");
    } else {
        assert_eq!(read(mem, "memory.limit_in_bytes"), "67108864");
        assert_eq!(read(mem, "memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(read(mem, "memory.memsw.limit_in_bytes"), "134217728");
        assert_eq!(read(cpu, "cpu.shares"), "512");
        assert_eq!(read(cpu, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(read(cpuset, "cpuset.cpus"), "0");
        assert_eq!(read(cpuset, "cpuset.mems"), "0");
    }
    assert_eq!(
        read(s.cg.controller_dir("pids").unwrap(), "pids.max"),
        "100"
    );

    // A live update changes one value and keeps the others.
    s.cg.apply(&resources(
        r#"{"cpu":{"quota":25000}, "pids":{"limit":-1}}"#,
    ))
    .unwrap();
    if s.cg.is_unified() {
        assert_eq!(read(cpu, "cpu.max"), "25000 100000");
    } else {
        assert_eq!(read(cpu, "cpu.cfs_quota_us"), "25000");
        assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
    }
    assert_eq!(
        read(s.cg.controller_dir("pids").unwrap(), "pids.max"),
        "max"
    );
}

#[test]
fn block_io_throttle_reads_back() {
    let s = Scratch::host();
    s.cg.create().unwrap();
    // Any block device of the host will do: throttles need a real one.
    let dev = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("dev")).ok())
        .map(|d| d.trim().to_string())
        .find(|d| !d.starts_with("7:"))
        .expect("a block device");
    let (major, minor) = dev.split_once(':').unwrap();
    s.cg.apply(&resources(&format!(
        r#"{{"blockIO":{{"throttleReadBpsDevice":[{{"major":{major},"minor":{minor},"rate":1048576}}],
             "throttleWriteIOPSDevice":[{{"major":{major},"minor":{minor},"rate":100}}]}}}}"#
    )))
    .unwrap();
    if s.cg.is_unified() {
        let io = read(s.cg.unified_dir().unwrap(), "io.max");
        assert!(io.contains(&format!("{dev} rbps=1048576")), "{io}");
        assert!(io.contains("wiops=100"), "{io}");
    } else {
        let d = s.cg.controller_dir("blkio").unwrap();
        assert_eq!(
            read(d, "blkio.throttle.read_bps_device"),
            format!("{dev} 1048576")
        );
        assert_eq!(
            read(d, "blkio.throttle.write_iops_device"),
            format!("{dev} 100")
        );
    }
}

#[test]
fn blkio_weight_goes_to_the_scheduler_that_has_weights() {
    let s = Scratch::host();
    s.cg.create().unwrap();
    let result = s.cg.apply(&resources(r#"{"blockIO":{"weight":300}}"#));
    let dir =
        s.cg.controller_dir(if s.cg.is_unified() { "io" } else { "blkio" })
            .unwrap();
    let candidates = [
        "blkio.weight",
        "blkio.bfq.weight",
        "io.bfq.weight",
        "io.weight",
    ];
    match candidates.iter().find(|f| dir.join(f).exists()) {
        Some(file) => {
            result.unwrap();
            let text = read(dir, file);
            assert!(
                text.contains("300") || *file == "io.weight",
                "{file}: {text}"
            );
        }
        None => {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("blockIO"), "{err}");
        }
    }
}

#[test]
fn stats_parse_and_serialize_like_runc() {
    let mut s = Scratch::host();
    s.cg.create().unwrap();
    s.cg.apply(&resources(
        r#"{"memory":{"limit":67108864},"pids":{"limit":50}}"#,
    ))
    .unwrap();
    // Memory charged after joining counts (v1 does not move old charges).
    let pid = s.spawn("x=$(head -c 1000000 /dev/zero | tr '\\0' a); while :; do :; done");
    assert!(wait_until(10, || s.cg.stats().unwrap().memory.usage.usage > 0));
    assert!(wait_until(10, || s.cg.pids().unwrap() == vec![pid]));
    // pids.current still counts an exited child until it is reaped.
    assert!(wait_until(10, || s.cg.stats().unwrap().pids.current == 1));
    let stats = s.cg.stats().unwrap();
    assert_eq!(stats.pids.limit, 50);
    assert_eq!(stats.memory.usage.limit, 67108864);
    assert!(!stats.memory.raw.is_empty());
    assert!(wait_until(10, || s.cg.stats().unwrap().cpu.usage.total > 0));
    let json = serde_json::to_value(s.cg.stats().unwrap()).unwrap();
    for key in [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert_eq!(json["pids"]["limit"], 50);
    assert_eq!(s.cg.pids().unwrap(), vec![pid]);
}

#[test]
fn kill_all_signals_every_process_and_destroy_leaves_nothing() {
    let mut s = Scratch::host();
    s.cg.create().unwrap();
    let a = s.spawn("exec sleep 1000");
    let b = s.spawn("sleep 1000 & sleep 1000 & wait");
    assert!(wait_until(10, || s.cg.pids().unwrap().len() == 4));
    // A gentle signal first: the cgroup is thawed again afterwards.
    s.cg.kill_all(libc::SIGTERM).unwrap();
    assert_eq!(s.child(a).wait().unwrap().signal(), Some(libc::SIGTERM));
    assert_eq!(s.child(b).wait().unwrap().signal(), Some(libc::SIGTERM));
    assert_eq!(s.cg.freezer_state().unwrap(), FreezerState::Thawed);
    assert!(wait_until(10, || s.cg.pids().unwrap().is_empty()));
    let dirs: Vec<_> = s.cg.dirs().map(|d| d.to_path_buf()).collect();
    assert!(dirs.iter().all(|d| d.exists()));
    s.cg.destroy().unwrap();
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn destroy_refuses_while_processes_live_and_names_them() {
    let mut s = Scratch::host();
    s.cg.create().unwrap();
    let pid = s.spawn("exec sleep 1000");
    assert!(wait_until(10, || s.cg.pids().unwrap() == vec![pid]));
    let err = s.cg.destroy().unwrap_err().to_string();
    assert!(err.contains(&pid.to_string()), "{err}");
    s.cg.kill_and_destroy().unwrap();
    assert!(!s.cg.exists());
}

#[test]
fn bad_input_is_refused_before_anything_exists() {
    let s = Scratch::host();
    for json in [
        r#"{"memory":{"limit":-2}}"#,
        r#"{"cpu":{"quota":50000,"period":5}}"#,
        r#"{"devices":[{"allow":true,"type":"c","major":1,"access":"rwq"}]}"#,
        r#"{"pids":{"limit":-9}}"#,
    ] {
        let err = s.cg.check(&resources(json)).unwrap_err().to_string();
        assert!(err.contains("linux.resources"), "{json}: {err}");
    }
    assert!(!s.cg.exists());
}

#[test]
fn unsupported_requests_say_why() {
    let s = Scratch::host();
    // Controllers this kernel offers to neither tree: net_cls under v2.
    if s.cg.is_unified() {
        let err =
            s.cg.check(&resources(r#"{"network":{"classID":1}}"#))
                .unwrap_err()
                .to_string();
        assert!(err.contains("network"), "{err}");
        let err =
            s.cg.check(&resources(r#"{"cpu":{"realtimeRuntime":1000}}"#))
                .unwrap_err()
                .to_string();
        assert!(err.contains("realtime"), "{err}");
    } else {
        for (json, controller) in [
            (
                r#"{"hugepageLimits":[{"pageSize":"2MB","limit":0}]}"#,
                "hugetlb",
            ),
            (r#"{"network":{"classID":1}}"#, "net_cls"),
        ] {
            if s.cg.controller_dir(controller).is_none() {
                let err = s.cg.check(&resources(json)).unwrap_err().to_string();
                assert!(
                    err.contains(controller) && err.contains("not mounted"),
                    "{err}"
                );
            }
        }
    }
    assert!(!s.cg.exists());
}

#[test]
fn events_stream_stats_and_oom_like_runc() {
    let mut s = memory_limited_32m();
    s.spawn(&format!("sleep 0.3; {MEMORY_HOG}"));
    let mut seen = Vec::new();
    quai_runtime::cgroups::watch_events(&s.cg, "ctr1", Duration::from_millis(100), |e| {
        seen.push(e.clone());
        // Bounded so that a missing OOM event fails instead of hanging.
        if e.kind == "oom" || seen.len() > 600 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last.kind, "oom", "no oom event among {} events", seen.len());
    assert!(last.data.is_none());
    let first = &seen[0];
    assert_eq!((first.kind.as_str(), first.id.as_str()), ("stats", "ctr1"));
    let json = serde_json::to_value(first).unwrap();
    assert_eq!(json["type"], "stats");
    assert_eq!(json["data"]["memory"]["usage"]["limit"], 33554432);
    assert_eq!(
        serde_json::to_string(last).unwrap(),
        r#"{"type":"oom","id":"ctr1"}"#
    );
}

/// Re-applies alternating device rule sets to a cgroup while a process in it
/// reads /dev/zero without pause; any moment without access to it (a naive
/// "deny all, then allow" update) makes a read fail.
pub fn updates_never_cut_access(mut s: Scratch) {
    s.cg.create().unwrap();
    let a = deny_all_but_defaults_and(&[]);
    let b = deny_all_but_defaults_and(&[ALLOW_READ_7_0]);
    s.cg.apply(&a).unwrap();
    let root = TempRoot::new("cgupd");
    let reading = root.path().join("reading");
    let pid = s.spawn_with(
        &format!(
            "while :; do head -c1 /dev/zero >/dev/null || {{ echo LOST; exit 1; }}; : > {}; done",
            reading.display()
        ),
        Stdio::piped(),
    );
    assert!(wait_until(10, || reading.exists()), "the reader never ran");
    // (The same loop with a naive reset-then-allow update loses access
    // within a few hundred updates on this kernel.)
    for i in 0..1000 {
        s.cg.apply(if i % 2 == 0 { &b } else { &a }).unwrap();
    }
    s.cg.kill_all(libc::SIGKILL).unwrap();
    let out = std::mem::replace(
        s.child(pid),
        std::process::Command::new("true").spawn().unwrap(),
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("LOST"));
}

#[test]
fn device_rule_updates_never_cut_access_transiently() {
    updates_never_cut_access(Scratch::host());
}
