//! cgroups through runc's command line: limits from config.json enforced by
//! the kernel, the container's view of its cgroup, pause/resume, update,
//! events, kill --all and delete. Every container gets a uniquely named
//! cgroup below `quai-test-…`, removed by a guard even when a test fails.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{pid_alive, stderr, Fixture};
use quai_runtime::cgroups::{Cgroup, Layout};
use quai_testutil::unique_name;
use serde_json::{json, Value};

/// A `quai-test-…` parent for the test's containers (cgroupsPath
/// `quai-test-…/<id>`, relative to the test's own cgroup), removed on drop
/// after the fixture deleted its containers.
struct CgroupParent {
    name: String,
    fixture: Fixture,
    /// The device rules of `quai-runtime spec`'s config.
    default_devices: Value,
}

impl CgroupParent {
    fn new(prefix: &str, args: &[&str]) -> CgroupParent {
        let fixture = Fixture::new(prefix, args);
        let default_devices = fixture.spec()["linux"]["resources"]["devices"].clone();
        CgroupParent {
            name: unique_name("quai-test-"),
            fixture,
            default_devices,
        }
    }

    /// Gives container `id` its own cgroup below the parent, plus `resources`.
    fn configure(&self, id: &str, resources: Value) {
        let path = format!("{}/{id}", self.name);
        self.fixture.edit(|s| {
            s["linux"]["cgroupsPath"] = json!(path);
            s["linux"]["resources"] = resources;
            if s["linux"]["resources"]["devices"].is_null() {
                s["linux"]["resources"]["devices"] = self.default_devices.clone();
            }
        });
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        if let Ok(out) = self.fixture.cmd(&["list", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.fixture.cmd(&["delete", "--force", id]).output();
            }
        }
        if let Ok(layout) = Layout::detect() {
            if let Ok(parent) = Cgroup::new(&layout, Some(&self.name), "parent") {
                if let Err(e) = parent.destroy() {
                    eprintln!("removing test cgroup {}: {e}", self.name);
                }
            }
        }
    }
}

/// The host directory of `pid`'s cgroup for `controller` (the cgroup2 tree
/// on a unified host).
fn host_cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    let layout = Layout::detect().unwrap();
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, ctrls, path) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let rel = path.trim_start_matches('/');
        match &layout {
            Layout::Unified(u) if id == "0" => return u.mount_point.join(rel),
            Layout::Unified(_) => {}
            _ if ctrls.split(',').any(|c| c == controller) => {
                return layout
                    .v1_hierarchy(controller)
                    .unwrap()
                    .mount_point
                    .join(rel)
            }
            _ => {}
        }
    }
    panic!("no {controller} cgroup for process {pid}: {own}");
}

fn read(path: PathBuf) -> String {
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn is_unified() -> bool {
    matches!(Layout::detect().unwrap(), Layout::Unified(_))
}

fn init_pid(f: &Fixture, id: &str) -> i32 {
    f.state(id)["pid"].as_i64().unwrap() as i32
}

fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn limits_apply_and_the_container_sees_its_cgroup_as_root() {
    let p = CgroupParent::new(
        "cglim",
        &["sh", "-c", "cat /proc/self/cgroup; echo; sleep 1000"],
    );
    let id = p.fixture.id("c");
    p.configure(
        &id,
        json!({"memory": {"limit": 67108864}, "pids": {"limit": 40}}),
    );
    p.fixture.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "cgroup"}))
    });
    p.fixture.ok(&["run", "-d", &id]);
    let pid = init_pid(&p.fixture, &id);
    if is_unified() {
        assert_eq!(
            read(host_cgroup_dir(pid, "memory").join("memory.max")),
            "67108864"
        );
        assert_eq!(read(host_cgroup_dir(pid, "pids").join("pids.max")), "40");
    } else {
        assert_eq!(
            read(host_cgroup_dir(pid, "memory").join("memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(read(host_cgroup_dir(pid, "pids").join("pids.max")), "40");
    }
    assert!(host_cgroup_dir(pid, "pids").ends_with(format!("{}/{id}", p.name)));
    // Inside its cgroup namespace the container's cgroup is the root.
    let inside = p.fixture.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    for line in inside.lines() {
        assert!(
            line.ends_with(":/"),
            "exec'd process not at its cgroup's root: {inside}"
        );
    }
    // exec'd processes join the container's cgroup.
    p.fixture.ok(&["exec", "-d", &id, "sleep", "1000"]);
    let pids: Vec<i32> =
        serde_json::from_str(&p.fixture.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&pid));
    let dir = host_cgroup_dir(pid, "pids");
    p.fixture.ok(&["delete", "--force", &id]);
    assert!(!dir.exists(), "delete left {} behind", dir.display());
}

#[test]
fn fork_bomb_is_contained_and_killed() {
    let p = CgroupParent::new(
        "cgbomb",
        &["sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 1000"],
    );
    let id = p.fixture.id("c");
    p.configure(&id, json!({"pids": {"limit": 20}}));
    p.fixture.ok(&["run", "-d", &id]);
    let pid = init_pid(&p.fixture, &id);
    let dir = host_cgroup_dir(pid, "pids");
    let refused = || {
        fs::read_to_string(dir.join("pids.events"))
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
        "the bomb never reached pids.max"
    );
    let stats: Value = serde_json::from_str(&p.fixture.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(stats["type"], "stats");
    assert!(stats["data"]["pids"]["current"].as_u64().unwrap() <= 20);
    assert_eq!(stats["data"]["pids"]["limit"], 20);
    p.fixture.ok(&["kill", "--all", &id, "KILL"]);
    p.fixture.ok(&["delete", "--force", &id]);
    assert!(!dir.exists());
}

const MEMORY_HOG: &str = "x=0123456789abcdef; while :; do x=$x$x; done";

#[test]
fn memory_hog_is_oom_killed_with_status_137() {
    let p = CgroupParent::new("cgoom", &["sh", "-c", MEMORY_HOG]);
    let id = p.fixture.id("c");
    p.configure(
        &id,
        json!({"memory": {"limit": 33554432, "swap": 33554432}}),
    );
    let (code, _, err) = p.fixture.run(&id);
    assert_eq!(code, 128 + 9, "stderr: {err}");
}

#[test]
fn events_report_stats_and_the_oom_kill() {
    let p = CgroupParent::new("cgevt", &["sh", "-c", MEMORY_HOG]);
    let id = p.fixture.id("c");
    p.configure(
        &id,
        json!({"memory": {"limit": 33554432, "swap": 33554432}}),
    );
    p.fixture.ok(&["create", &id]);
    let out_path = p.fixture.tmp.path().join("events.out");
    let mut events = p.fixture.cmd(&["events", "--interval", "100ms", &id]);
    events
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null());
    let mut events = events.spawn().unwrap();
    // The first stats line means the OOM watch is in place.
    assert!(wait_until(30, || fs::read_to_string(&out_path)
        .unwrap_or_default()
        .contains("\"stats\"")));
    p.fixture.ok(&["start", &id]);
    p.fixture.wait_status(&id, "stopped");
    assert!(wait_until(30, || fs::read_to_string(&out_path)
        .unwrap_or_default()
        .contains(&format!(r#"{{"type":"oom","id":"{id}"}}"#))));
    // Deleting the container removes its cgroup, which ends the stream.
    p.fixture.ok(&["delete", &id]);
    let status = events.wait().unwrap();
    assert!(status.success(), "events ended with {status:?}");
    for line in fs::read_to_string(&out_path).unwrap().lines() {
        let event: Value = serde_json::from_str(line).expect("one JSON object per line");
        assert_eq!(event["id"], id.as_str());
    }
}

#[test]
fn pause_stops_a_busy_loop_and_resume_restarts_it() {
    let p = CgroupParent::new("cgpause", &["sh", "-c", "while :; do :; done"]);
    let id = p.fixture.id("c");
    p.configure(&id, json!({}));
    p.fixture.ok(&["run", "-d", &id]);
    let pid = init_pid(&p.fixture, &id);
    assert!(wait_until(10, || cpu_ticks(pid) > 0));
    p.fixture.ok(&["pause", &id]);
    assert_eq!(p.fixture.status(&id), "paused");
    let listed = p.fixture.ok(&["list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("paused")),
        "{listed}"
    );
    let out = p.fixture.rt(&["pause", &id]);
    assert!(!out.status.success(), "pausing twice must fail");
    let frozen_at = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cpu_ticks(pid),
        frozen_at,
        "a paused container used CPU time"
    );
    // A gentle signal to all leaves it paused.
    p.fixture.ok(&["kill", "--all", &id, "USR2"]);
    assert_eq!(p.fixture.status(&id), "paused");
    p.fixture.ok(&["resume", &id]);
    assert_eq!(p.fixture.status(&id), "running");
    let out = p.fixture.rt(&["resume", &id]);
    assert!(stderr(&out).contains("not paused"), "{}", stderr(&out));
    assert!(wait_until(10, || cpu_ticks(pid) > frozen_at));
    // A paused container is killed by delete --force.
    p.fixture.ok(&["pause", &id]);
    p.fixture.ok(&["delete", "--force", &id]);
    assert!(!pid_alive(pid));
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let p = CgroupParent::new("cgupd", &["sleep", "1000"]);
    let id = p.fixture.id("c");
    p.configure(
        &id,
        json!({"memory": {"limit": 67108864}, "pids": {"limit": 40}, "cpu": {"shares": 512}}),
    );
    p.fixture.ok(&["run", "-d", &id]);
    let pid = init_pid(&p.fixture, &id);
    p.fixture.ok(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "80",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        &id,
    ]);
    let v2 = is_unified();
    let mem = host_cgroup_dir(pid, "memory");
    let cpu = host_cgroup_dir(pid, "cpu");
    let pids = host_cgroup_dir(pid, "pids");
    assert_eq!(
        read(mem.join(if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        })),
        "134217728"
    );
    assert_eq!(read(pids.join("pids.max")), "80");
    if v2 {
        assert_eq!(read(cpu.join("cpu.max")), "50000 100000");
    } else {
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
        // Not in the update: kept.
        assert_eq!(read(cpu.join("cpu.shares")), "512");
    }
    // A resources file; later updates build on earlier ones.
    let file = p.fixture.tmp.path().join("resources.json");
    fs::write(&file, r#"{"pids": {"limit": 30}}"#).unwrap();
    p.fixture.ok(&["update", "-r", file.to_str().unwrap(), &id]);
    assert_eq!(read(pids.join("pids.max")), "30");
    assert_eq!(
        read(mem.join(if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        })),
        "134217728"
    );

    // Bad input is refused and changes nothing.
    for (args, needle) in [
        (vec!["update", "--memory", "lots", &id], "--memory"),
        (vec!["update", "--cpu-quota", "10", &id], "cpu.quota"),
        (vec!["update", "--pids-limit", "-7", &id], "pids.limit"),
    ] {
        let out = p.fixture.rt(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    fs::write(&file, "{not json").unwrap();
    let out = p.fixture.rt(&["update", "-r", file.to_str().unwrap(), &id]);
    assert!(stderr(&out).contains("resources.json"), "{}", stderr(&out));
    assert_eq!(read(pids.join("pids.max")), "30");
    let out = p
        .fixture
        .rt(&["update", "--memory", "1g", "no-such-container"]);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn kill_all_and_delete_reach_processes_outside_the_init_tree() {
    // No pid namespace: a daemon that detaches from the init is only found
    // through the cgroup.
    let p = CgroupParent::new(
        "cgleft",
        &[
            "sh",
            "-c",
            "setsid sleep 1000 </dev/null >/dev/null 2>&1 & sleep 1000 & exec sleep 1000",
        ],
    );
    let id = p.fixture.id("c");
    p.configure(&id, json!({}));
    p.fixture.edit(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    p.fixture.ok(&["run", "-d", &id]);
    let pids = || -> Vec<i32> {
        serde_json::from_str(&p.fixture.ok(&["ps", "--format", "json", &id])).unwrap()
    };
    assert!(wait_until(10, || pids().len() == 3), "{:?}", pids());
    let all = pids();
    // The init exits; the daemons stay, and delete must kill them.
    p.fixture.ok(&["kill", &id, "KILL"]);
    p.fixture.wait_status(&id, "stopped");
    let left: Vec<i32> = all.iter().copied().filter(|p| pid_alive(*p)).collect();
    assert!(
        !left.is_empty(),
        "nothing outlived the init: the test proves nothing"
    );
    p.fixture.ok(&["delete", &id]);
    for pid in &all {
        assert!(
            wait_until(10, || !pid_alive(*pid)),
            "process {pid} survived delete"
        );
    }
}

#[test]
fn device_rules_deny_a_block_device_inside() {
    let p = CgroupParent::new(
        "cgdev",
        &["dd", "if=/blk", "of=/dev/null", "bs=1", "count=0"],
    );
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p.fixture.rootfs().join("blk"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(7, 0),
    )
    .unwrap();
    // The default config denies every device but runc's defaults.
    let id = p.fixture.id("c");
    p.configure(&id, json!({}));
    let (code, _, err) = p.fixture.run(&id);
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");
    let id = p.fixture.id("c");
    p.configure(
        &id,
        json!({"devices": [{"allow": false, "access": "rwm"},
                           {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]}),
    );
    let (code, _, err) = p.fixture.run(&id);
    assert_eq!(code, 0, "with b 7:0 r allowed: {err}");
}

#[test]
fn bad_resources_are_refused_before_anything_exists() {
    let p = CgroupParent::new("cgbad", &["true"]);
    for (resources, needle) in [
        (
            json!({"memory": {"limit": -5}}),
            "linux.resources.memory.limit",
        ),
        (
            json!({"cpu": {"quota": 50000, "period": 10}}),
            "linux.resources.cpu.period",
        ),
        (
            json!({"devices": [{"allow": true, "type": "c", "access": "rwx"}]}),
            "devices[0].access",
        ),
        (json!({"unified": {"../x": "1"}}), "linux.resources.unified"),
    ] {
        let id = p.fixture.id("c");
        p.configure(&id, resources.clone());
        let out = p.fixture.rt(&["create", &id]);
        assert!(!out.status.success(), "{resources} accepted");
        assert!(
            stderr(&out).contains(needle),
            "{resources}: {}",
            stderr(&out)
        );
        assert!(!p.fixture.state_dir(&id).exists());
    }
    // Unsupported here, refused before anything exists as well.
    let layout = Layout::detect().unwrap();
    if layout.v1_hierarchy("net_cls").is_none() {
        let id = p.fixture.id("c");
        p.configure(&id, json!({"network": {"classID": 1}}));
        let out = p.fixture.rt(&["create", &id]);
        assert!(stderr(&out).contains("net_cls"), "{}", stderr(&out));
        assert!(!p.fixture.state_dir(&id).exists());
    }
    // Nothing was created for any of them.
    let parent = Cgroup::new(&layout, Some(&p.name), "x").unwrap();
    assert!(!parent.exists(), "a refused create left cgroup directories");
    let out = p.fixture.rt(&["--systemd-cgroup", "list"]);
    assert!(
        stderr(&out).contains("--systemd-cgroup"),
        "{}",
        stderr(&out)
    );
}

/// A cgroup v2 host, whatever this one is: the runtime runs in a private
/// mount namespace where cgroup2 is mounted on /sys/fs/cgroup (the host's
/// one cgroup2 hierarchy, with the controllers it holds there). The
/// container starts inside its cgroup (clone3 into the cgroup), device
/// rules are enforced by the eBPF program, and delete removes the cgroup.
#[test]
fn on_a_unified_host_the_container_starts_in_its_cgroup_and_devices_are_filtered() {
    let f = Fixture::new("cgv2", &["sleep", "30"]);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f.rootfs().join("blk"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(7, 0),
    )
    .unwrap();
    let parent = unique_name("quai-test-");
    let id = f.id("v2");
    f.edit(|s| s["linux"]["cgroupsPath"] = json!(format!("/{parent}/{id}")));
    // Whatever the script leaves, seen from the host's own cgroup2 mount.
    struct RemoveParent(Option<PathBuf>);
    impl Drop for RemoveParent {
        fn drop(&mut self) {
            if let Some(dir) = &self.0 {
                for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                    if entry.path().is_dir() {
                        let _ = fs::remove_dir(entry.path());
                    }
                }
                let _ = fs::remove_dir(dir);
            }
        }
    }
    let host_v2 = match Layout::detect().unwrap() {
        Layout::Unified(u) => Some(u.mount_point),
        Layout::Hybrid { unified, .. } => Some(unified.mount_point),
        Layout::V1 { .. } => None,
    };
    let _cleanup = RemoveParent(host_v2.map(|m| m.join(&parent)));
    let script = r#"
set -u
umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup || exit 99
rt() { "$RT" --root "$STATE" "$@"; }
rt run -d --bundle "$BUNDLE" "$ID" || exit 98
pid=$(rt state "$ID" | tr -d ' \n' | sed 's/.*"pid":\([0-9]*\).*/\1/')
grep -qx "$pid" "/sys/fs/cgroup/$PARENT/$ID/cgroup.procs" && echo in-cgroup
rt exec "$ID" dd if=/blk of=/dev/null bs=1 count=0 2>&1 | grep -q 'Operation not permitted' && echo device-denied
rt delete --force "$ID"
[ -e "/sys/fs/cgroup/$PARENT/$ID" ] || echo cgroup-removed
rmdir "/sys/fs/cgroup/$PARENT"
"#;
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("RT", &f.binary)
        .env("STATE", &f.state_root)
        .env("BUNDLE", &f.bundle)
        .env("ID", &id)
        .env("PARENT", &parent)
        .stdin(Stdio::null());
    let out = common::run_captured(cmd, f.tmp.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["in-cgroup", "device-denied", "cgroup-removed"],
        "status {:?}: {}",
        out.status,
        stderr(&out)
    );
}
