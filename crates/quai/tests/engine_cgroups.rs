//! Containers in cgroups: docker's resource flags reach the kernel's files,
//! `update` changes them live, `pause`/`unpause` freeze, `stats` reads the
//! counters, OOM kills are recorded, device rules hold, and every way a
//! container goes (rm -f, a killed monitor, a reboot) removes its cgroup.
//! On this machine's hybrid v1 layout; `unified_host_*` runs the engine in
//! a private mount namespace whose /sys/fs/cgroup is a cgroup2 mount.

mod engine_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use engine_support::Quai;
use quai_testutil::unique_name;

/// The container's directory in v1 controller `controller`.
fn v1_dir(controller: &str, parent: &str, id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(parent)
        .join(id)
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

fn is_v1_host() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

/// Removes a test's own cgroup parent directories at the end.
struct ParentGuard(String);

impl Drop for ParentGuard {
    fn drop(&mut self) {
        for controller in [
            "memory", "cpu", "cpuset", "pids", "blkio", "devices", "freezer", "cpuacct", "systemd",
            "unified",
        ] {
            let _ = fs::remove_dir(Path::new("/sys/fs/cgroup").join(controller).join(&self.0));
        }
    }
}

#[test]
fn limits_reach_the_cgroup_and_inspect() {
    if !is_v1_host() {
        eprintln!("skipped: written for a v1/hybrid host (see unified_host_*)");
        return;
    }
    let q = Quai::new("cglimits");
    let id = q
        .ok(&[
            "run",
            "-d",
            "--name",
            "lim",
            "-m",
            "64m",
            "--memory-reservation",
            "32m",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "20",
            "--device-read-bps",
            "/dev/loop0:1mb",
            "--device-write-iops",
            "/dev/loop0:100",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let mem = v1_dir("memory", "quai", &id);
    assert_eq!(
        read(&mem, "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    // docker's default: as much swap as memory.
    assert_eq!(
        read(&mem, "memory.memsw.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    assert_eq!(
        read(&mem, "memory.soft_limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    let cpu = v1_dir("cpu", "quai", &id);
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    assert_eq!(read(&v1_dir("cpuset", "quai", &id), "cpuset.cpus"), "0");
    assert_eq!(read(&v1_dir("pids", "quai", &id), "pids.max"), "20");
    let blkio = v1_dir("blkio", "quai", &id);
    assert_eq!(
        read(&blkio, "blkio.throttle.read_bps_device"),
        "7:0 1048576"
    );
    assert_eq!(read(&blkio, "blkio.throttle.write_iops_device"), "7:0 100");
    // The container's processes are in it.
    let pid = q.inspect("lim", "{{.State.Pid}}");
    assert!(read(&mem, "cgroup.procs").lines().any(|l| l == pid));
    assert_eq!(
        q.inspect(
            "lim",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.MemoryReservation}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.CpusetCpus}} {{.HostConfig.PidsLimit}}"
        ),
        format!("{} {} {} 500000000 512 0 20", 64u64 << 20, 128u64 << 20, 32u64 << 20)
    );
    assert!(q
        .inspect("lim", "{{json .HostConfig.BlkioDeviceReadBps}}")
        .contains("\"Rate\":1048576"));
    // The pids limit holds inside.
    let out = q.run(&[
        "exec",
        "lim",
        "sh",
        "-c",
        "for i in $(seq 40); do sleep 100 & done; wait",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("can't fork"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    q.ok(&["rm", "-f", "lim"]);
    for controller in [
        "memory", "cpu", "cpuset", "pids", "blkio", "devices", "freezer",
    ] {
        assert!(
            !v1_dir(controller, "quai", &id).exists(),
            "{controller} cgroup left"
        );
    }
    q.assert_clean();
}

#[test]
fn update_applies_limits_live_and_records_them() {
    if !is_v1_host() {
        return;
    }
    let q = Quai::new("cgupdate");
    let id = q
        .ok(&[
            "run", "-d", "--name", "upd", "-m", "64m", "busybox", "sleep", "1000",
        ])
        .trim()
        .to_string();
    assert_eq!(
        q.ok(&[
            "update",
            "-m",
            "96m",
            "--memory-swap",
            "256m",
            "--pids-limit",
            "30",
            "--cpus",
            "1.5",
            "--cpuset-cpus",
            "0-1",
            "upd"
        ]),
        "upd\n"
    );
    let mem = v1_dir("memory", "quai", &id);
    assert_eq!(
        read(&mem, "memory.limit_in_bytes"),
        (96u64 << 20).to_string()
    );
    assert_eq!(
        read(&mem, "memory.memsw.limit_in_bytes"),
        (256u64 << 20).to_string()
    );
    assert_eq!(read(&v1_dir("pids", "quai", &id), "pids.max"), "30");
    assert_eq!(
        read(&v1_dir("cpu", "quai", &id), "cpu.cfs_quota_us"),
        "150000"
    );
    assert_eq!(
        q.inspect(
            "upd",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}"
        ),
        format!("{} 30 1500000000", 96u64 << 20)
    );
    // docker's rules, docker's messages; nothing changes on failure.
    let (code, err) = q.fails(&["update", "-m", "512m", "upd"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Memory limit should be smaller than already set memoryswap limit"),
        "{err}"
    );
    let (_, err) = q.fails(&["update", "--cpu-quota", "50000", "upd"]);
    assert!(
        err.contains("CPU Quota cannot be updated as NanoCPUs has already been set"),
        "{err}"
    );
    let (_, err) = q.fails(&["update", "-m", "1m", "upd"]);
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    assert_eq!(
        read(&mem, "memory.limit_in_bytes"),
        (96u64 << 20).to_string()
    );
    // A stopped container keeps the new values for its next start.
    q.ok(&["stop", "-t", "0", "upd"]);
    q.ok(&["update", "--pids-limit", "12", "upd"]);
    q.ok(&["start", "upd"]);
    assert_eq!(read(&v1_dir("pids", "quai", &id), "pids.max"), "12");
    let events = q.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "event=update",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(events.lines().count(), 2, "{events}");
}

#[test]
fn pause_freezes_and_stop_or_rm_thaw() {
    let q = Quai::new("cgpause");
    let id = q
        .ok(&[
            "run",
            "-d",
            "--name",
            "pz",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 3' TERM; while :; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    assert_eq!(q.ok(&["pause", "pz"]), "pz\n");
    if is_v1_host() {
        assert_eq!(
            read(&v1_dir("freezer", "quai", &id), "freezer.state"),
            "FROZEN"
        );
    }
    assert_eq!(
        q.inspect(
            "pz",
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}"
        ),
        "paused true true"
    );
    assert!(q
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(Paused)"));
    let (code, err) = q.fails(&["pause", "pz"]);
    assert_eq!(code, 1);
    assert!(err.contains("is already paused"), "{err}");
    let (_, err) = q.fails(&["exec", "pz", "true"]);
    assert!(
        err.contains("is paused, unpause the container before exec"),
        "{err}"
    );
    assert_eq!(q.ok(&["unpause", "pz"]), "pz\n");
    if is_v1_host() {
        assert_eq!(
            read(&v1_dir("freezer", "quai", &id), "freezer.state"),
            "THAWED"
        );
    }
    q.ok(&["exec", "pz", "true"]);
    let (_, err) = q.fails(&["unpause", "pz"]);
    assert!(err.contains("is not paused"), "{err}");
    // Stopping a paused container thaws it so that its stop signal lands.
    q.ok(&["pause", "pz"]);
    q.ok(&["stop", "-t", "30", "pz"]);
    assert_eq!(
        q.inspect("pz", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 3"
    );
    q.ok(&["start", "pz"]);
    q.ok(&["pause", "pz"]);
    q.ok(&["rm", "-f", "pz"]);
    let events = q.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--format",
        "{{.Action}}",
    ]);
    assert!(
        events.contains("pause\n") && events.contains("unpause\n"),
        "{events}"
    );
    assert!(!v1_dir("freezer", "quai", &id).exists());
    q.assert_clean();
}

#[test]
fn commit_pauses_for_real_and_a_killed_commit_leaves_it_paused() {
    let q = Quai::new("cgcommit");
    let id = q
        .ok(&["run", "-d", "--name", "cm", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let actions = || {
        q.ok(&[
            "events",
            "--since",
            "1h",
            "--until",
            "0s",
            "--filter",
            "container=cm",
            "--format",
            "{{.Action}}",
        ])
    };
    // docker's sequence: the container is paused, committed, unpaused.
    q.ok(&["commit", "cm", "cm:one"]);
    assert!(
        actions().ends_with("start\npause\ncommit\nunpause\n"),
        "{}",
        actions()
    );
    assert_eq!(q.inspect("cm", "{{.State.Status}}"), "running");
    // --pause=false reads the changes of the running container as they are.
    q.ok(&["commit", "--pause=false", "cm", "cm:two"]);
    assert!(actions().ends_with("unpause\ncommit\n"), "{}", actions());
    // A commit killed while the container is frozen: the row says paused
    // (it is), and unpause thaws it.
    let out = q.run_env(
        &["commit", "cm", "cm:three"],
        &[("QUAI_ENGINE_CRASH", "commit:frozen")],
    );
    assert!(!out.status.success());
    assert_eq!(
        q.inspect("cm", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    if is_v1_host() {
        assert_eq!(
            read(&v1_dir("freezer", "quai", &id), "freezer.state"),
            "FROZEN"
        );
    }
    assert_eq!(q.ok(&["unpause", "cm"]), "cm\n");
    q.ok(&["exec", "cm", "true"]);
    q.ok(&["rm", "-f", "cm"]);
    q.ok(&["rmi", "cm:one", "cm:two"]);
}

#[test]
fn health_checks_do_not_run_while_paused() {
    let q = Quai::new("cghealth");
    q.ok(&[
        "run",
        "-d",
        "--name",
        "hp",
        "--health-cmd",
        "true",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "100ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]);
    q.wait_for("a healthy probe", || {
        q.inspect("hp", "{{.State.Health.Status}}") == "healthy"
    });
    q.ok(&["pause", "hp"]);
    // Many intervals and timeouts while paused: a probe would fail in the
    // frozen container (exit -1: unhealthy after one retry).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let log = || {
        q.inspect(
            "hp",
            "{{range .State.Health.Log}}{{.End}} {{.ExitCode}},{{end}}",
        )
    };
    let paused_log = log();
    assert_eq!(
        q.inspect(
            "hp",
            "{{.State.Health.Status}} {{.State.Health.FailingStreak}}"
        ),
        "healthy 0",
        "{paused_log}"
    );
    assert!(!paused_log.contains(" -1,"), "{paused_log}");
    q.ok(&["unpause", "hp"]);
    // Checks resume once it is thawed.
    q.wait_for("a probe after unpause", || log() != paused_log);
    assert!(!log().contains(" -1,"), "{}", log());
    q.ok(&["rm", "-f", "hp"]);
}

#[test]
fn stats_reports_dockers_columns_from_the_cgroup() {
    let q = Quai::new("cgstats");
    q.ok(&[
        "run",
        "-d",
        "--name",
        "st",
        "-m",
        "64m",
        // No interface but lo: NET I/O is exactly 0B / 0B.
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=20 2>/dev/null; sleep 1000",
    ]);
    q.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    q.ok(&["create", "--name", "idle", "busybox", "true"]);
    q.wait_for("the fill", || {
        q.run(&["exec", "st", "ls", "/dev/shm/fill"])
            .status
            .success()
            && q.ok(&["exec", "st", "du", "-m", "/dev/shm/fill"])
                .starts_with("20")
    });
    let table = q.ok(&["stats", "--no-stream"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for column in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(header.contains(column), "{header}");
    }
    // Running containers only, by default.
    assert_eq!(lines.count(), 2, "{table}");
    let row = q.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.NetIO}}",
        "st",
    ]);
    let fields: Vec<&str> = row.trim().split('|').collect();
    assert_eq!(fields[0], "st");
    let (usage, limit) = fields[1].split_once(" / ").unwrap();
    assert_eq!(limit, "64MiB", "{row}");
    let mib: f64 = usage.trim_end_matches("MiB").parse().unwrap_or(0.0);
    assert!(usage.ends_with("MiB") && mib >= 20.0, "{row}");
    // sh runs its last command with exec: one process.
    assert_eq!(fields[2], "1");
    assert_eq!(fields[3], "0B / 0B");
    let cpu = q.ok(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", "busy"]);
    let percent: f64 = cpu.trim().trim_end_matches('%').parse().unwrap();
    assert!(percent > 0.0, "{cpu}");
    let json = q.ok(&["stats", "--no-stream", "-a", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{json}");
    let idle = rows.iter().find(|r| r["Name"] == "idle").unwrap();
    assert_eq!(idle["CPUPerc"], "0.00%");
    assert_eq!(idle["PIDs"], "0");
    let (code, err) = q.fails(&["stats", "--no-stream", "ghost"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such container: ghost"), "{err}");
}

#[test]
fn oom_kill_is_recorded_with_137_and_an_event() {
    if !is_v1_host() {
        return;
    }
    let q = Quai::new("cgoom");
    let out = q.run(&[
        "run",
        "--name",
        "hog",
        "-m",
        "8m",
        "--memory-swap",
        "8m",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/shm/fill",
        "bs=1M",
        "count=64",
    ]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        q.inspect("hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    let events = q.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "event=oom",
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    // dd is the container's only process: one kill, one event (one OOM
    // burst notifies several times).
    assert_eq!(events, "hog\n");
    q.ok(&["rm", "hog"]);
    q.ok(&["run", "--name", "fine", "-m", "64m", "busybox", "true"]);
    assert_eq!(q.inspect("fine", "{{.State.OOMKilled}}"), "false");
}

#[test]
fn device_rules_deny_by_default_and_allow_what_is_given() {
    let q = Quai::new("cgdev");
    // mknod is a default capability; using the node is the cgroup's call.
    let (code, err) = q.fails(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mknod /b b 7 0 && head -c1 /b",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("Operation not permitted"), "{err}");
    q.ok(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        "b 7:* rwm",
        "busybox",
        "sh",
        "-c",
        "mknod /b b 7 0 && head -c1 /b",
    ]);
    // --device with read-only permissions: read, not write.
    q.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/loop0:/dev/xvda:r",
        "busybox",
        "head",
        "-c1",
        "/dev/xvda",
    ]);
    let (_, err) = q.fails(&[
        "run",
        "--rm",
        "--device",
        "/dev/loop0:/dev/xvda:r",
        "busybox",
        "sh",
        "-c",
        "echo x > /dev/xvda",
    ]);
    assert!(err.contains("Operation not permitted"), "{err}");
    // --privileged allows every device.
    q.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "mknod /b b 7 0 && head -c1 /b",
    ]);
    q.assert_clean();
}

#[test]
fn cgroup_parent_and_crash_cleanup() {
    if !is_v1_host() {
        return;
    }
    let q = Quai::new("cgparent");
    let parent = unique_name("quai-test");
    let _guard = ParentGuard(parent.clone());
    let id = q
        .ok(&[
            "run",
            "-d",
            "--cgroup-parent",
            &parent,
            "--name",
            "cp1",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let dir = v1_dir("memory", &parent, &id);
    assert!(dir.is_dir());
    assert_eq!(q.inspect("cp1", "{{.HostConfig.CgroupParent}}"), parent);
    // The monitor dies (kill -9) and then the run root goes (a reboot):
    // the runtime's record of the container is lost, its cgroup is not.
    let monitor: i32 =
        fs::read_to_string(format!("/proc/{}/stat", q.inspect("cp1", "{{.State.Pid}}")))
            .unwrap()
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
    let container_pid: i32 = q.inspect("cp1", "{{.State.Pid}}").parse().unwrap();
    Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status()
        .unwrap();
    q.wait_for("the monitor to go", || {
        !Path::new(&format!("/proc/{monitor}")).exists()
            || fs::read_to_string(format!("/proc/{monitor}/stat")).is_ok_and(|s| s.contains(") Z"))
    });
    let _ = fs::remove_dir_all(q.runroot().join("runtime").join(&id));
    // `ps -a` repairs it: recorded exited, processes and cgroup gone.
    assert!(q
        .ok(&["ps", "-a", "--format", "{{.Status}}"])
        .starts_with("Exited (255)"));
    assert!(!dir.exists(), "cgroup left after the repair");
    q.wait_for("the container process to die", || {
        fs::read_to_string(format!("/proc/{container_pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    });
    q.ok(&["rm", "cp1"]);
    q.assert_clean();
}

#[test]
fn unified_host_pause_resume_and_cleanup() {
    let q = Quai::new("cgv2");
    let mut cmd = Command::new("unshare");
    cmd.env("QUAI_ROOT", q.root())
        .env("QUAI_RUNROOT", q.runroot())
        .env("Q", engine_support::QUAI);
    let script = r#"
        id=$($Q run -d busybox sleep 1000)
        dir=/sys/fs/cgroup/quai/$id
        test -d $dir
        grep -qx "$($Q inspect -f '{{.State.Pid}}' $id)" $dir/cgroup.procs
        $Q pause $id >/dev/null
        echo "frozen=$(cat $dir/cgroup.freeze) $($Q inspect -f '{{.State.Status}}' $id)"
        $Q unpause $id >/dev/null
        echo "thawed=$(cat $dir/cgroup.freeze)"
        $Q stats --no-stream --format '{{.Name}} {{.PIDs}}' $id >/dev/null
        if grep -qw pids /sys/fs/cgroup/cgroup.controllers; then
            $Q run --rm --pids-limit 10 busybox true && echo "refused=125 resource limits (pids available)"
        else
            $Q run --rm --pids-limit 10 busybox true 2>&1 || echo "refused=$?"
        fi
        $Q rm -f $id >/dev/null
        test ! -e $dir && echo removed
    "#;
    let out = cmd
        .args([
            "-m",
            "sh",
            "-ec",
            &format!("umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup; {script}"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("frozen=1 paused"), "{stdout}");
    assert!(stdout.contains("thawed=0"), "{stdout}");
    // This host's cgroup2 tree holds no pids controller: refused at create
    // (a host whose tree has it runs the container instead).
    assert!(stdout.contains("refused=125"), "{stdout}");
    assert!(stdout.contains("resource limits"), "{stdout}");
    assert!(stdout.contains("removed"), "{stdout}");
    q.assert_clean();
}

#[test]
fn realtime_cpu_budget_and_kernel_memory_flags() {
    let q = Quai::new("cgrt");
    let (code, err) = q.fails(&[
        "run",
        "--cpu-rt-period",
        "10000",
        "--cpu-rt-runtime",
        "20000",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(
        err.contains("cpu-rt-runtime cannot be higher than cpu-rt-period"),
        "{err}"
    );
    // --kernel-memory: checked, then ignored with docker's deprecation.
    let (code, err) = q.fails(&["run", "--kernel-memory", "lots", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("--kernel-memory"), "{err}");
    let out = q.run(&["run", "--rm", "--kernel-memory", "64m", "busybox", "true"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARNING") && err.contains("--kernel-memory is ignored"),
        "{err}"
    );
    if !Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() {
        // cgroup v2 (or no RT group scheduling): refused as docker does.
        let (code, err) = q.fails(&["run", "--cpu-rt-runtime", "1000", "busybox", "true"]);
        assert_eq!(code, 125);
        assert!(
            err.contains("does not support CPU real-time scheduler"),
            "{err}"
        );
        q.assert_clean();
        return;
    }
    // quai's own parent has no real-time budget: refused, naming the file.
    let (code, err) = q.fails(&["run", "--cpu-rt-runtime", "5000", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("real-time budget") && err.contains("cpu.rt_runtime_us"),
        "{err}"
    );
    q.assert_clean();
    // A parent given a budget: the container gets its share.
    let parent = unique_name("quai-test");
    let _guard = ParentGuard(parent.clone());
    let parent_dir = Path::new("/sys/fs/cgroup/cpu").join(&parent);
    fs::create_dir_all(&parent_dir).unwrap();
    fs::write(parent_dir.join("cpu.rt_runtime_us"), "10000").unwrap();
    let id = q
        .ok(&[
            "run",
            "-d",
            "--cgroup-parent",
            &parent,
            "--cpu-rt-period",
            "500000",
            "--cpu-rt-runtime",
            "4000",
            "--name",
            "rt",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let dir = v1_dir("cpu", &parent, &id);
    assert_eq!(read(&dir, "cpu.rt_period_us"), "500000");
    assert_eq!(read(&dir, "cpu.rt_runtime_us"), "4000");
    assert_eq!(
        q.inspect(
            "rt",
            "{{.HostConfig.CpuRealtimePeriod}} {{.HostConfig.CpuRealtimeRuntime}}"
        ),
        "500000 4000"
    );
    q.ok(&["rm", "-f", "rt"]);
    q.assert_clean();
}
