//! kill -9 of the CLI and of the monitor at each step of `run`: the state
//! stays consistent, and `rm -f` removes everything the step left
//! (mounts, processes, directories, runtime state, rows).

mod engine_support;

use engine_support::Quai;

/// The crash steps (quai_engine::failpoint::STEPS), in `run`'s order.
const STEPS: &[&str] = &[
    "cli:created",
    "cli:spawned",
    "shim:namespace",
    "shim:mounted",
    "shim:runtime-created",
    "shim:runtime-started",
    "shim:recorded",
    "shim:exited",
    "shim:removing",
];

#[test]
fn rm_f_cleans_up_after_a_crash_at_every_step() {
    let q = Quai::new("crash");
    // The container's command line names the test root, so a container
    // process left behind would be found.
    let marker = q.tmp.path().display().to_string();
    for (i, step) in STEPS.iter().enumerate() {
        let name = format!("crash{i}");
        let script = match *step {
            "shim:exited" | "shim:removing" => format!(": {marker}; exit 0"),
            _ => format!("sleep 1000; : {marker}"),
        };
        let mut args = vec!["run", "-d", "--name", &name];
        if *step == "shim:removing" {
            args = vec!["run", "--rm", "--name", &name];
        }
        args.extend(["-v", "/anon", "busybox", "sh", "-c", &script]);
        let out = q.run_env(&args, &[("QUAI_ENGINE_CRASH", step)]);
        if step.starts_with("cli:") {
            assert!(!out.status.success(), "{step}: the CLI survived its crash");
        }
        if *step == "shim:exited" {
            q.wait_for("the container to exit", || {
                q.inspect(&name, "{{.State.Status}}") == "exited"
            });
        }
        // Whatever the step left, the container is visible and consistent.
        let status = q.inspect(&name, "{{.State.Status}}");
        assert!(
            ["created", "running", "exited", "removing"].contains(&status.as_str()),
            "{step}: status {status}"
        );
        let ps = q.run(&["ps", "-a"]);
        assert!(ps.status.success(), "{step}: ps -a fails after the crash");
        let id = q.inspect(&name, "{{.Id}}");
        q.ok(&["rm", "-f", "-v", &name]);
        q.assert_clean();
        for controller in ["memory", "pids", "freezer", "devices", "unified"] {
            let dir = std::path::Path::new("/sys/fs/cgroup")
                .join(controller)
                .join("quai")
                .join(&id);
            assert!(!dir.exists(), "{step}: cgroup {} left", dir.display());
        }
        assert_eq!(
            q.ok(&["volume", "ls", "-q"]),
            "",
            "{step}: anonymous volume left"
        );
    }
}

#[test]
fn a_monitor_killed_while_the_container_runs_is_repaired() {
    let q = Quai::new("killmon");
    let marker = q.tmp.path().display().to_string();
    q.ok(&[
        "run",
        "-d",
        "--name",
        "orphan",
        "busybox",
        "sh",
        "-c",
        &format!("sleep 1000; : {marker}"),
    ]);
    let monitor: i32 = q
        .ok(&["inspect", "-f", "{{.State.Pid}}", "orphan"])
        .trim()
        .parse()
        .unwrap();
    assert!(monitor > 0);
    // Kill the monitor (not the container): find it by its arguments.
    let monitors: Vec<i32> = engine_support::processes_under(&marker)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("shim"))
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(monitors.len(), 1, "{monitors:?}");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(monitors[0]).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    q.wait_for("the monitor to die", || {
        !engine_support::processes_under(&marker).contains(&monitors[0])
    });
    // ps repairs it: exited (255), the container's processes killed.
    let status = q.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(status.starts_with("Exited (255)"), "{status}");
    q.wait_for("the container to be killed", || {
        engine_support::processes_under(&marker).is_empty()
    });
    // It can start again, and be removed.
    q.ok(&["start", "orphan"]);
    assert_eq!(q.inspect("orphan", "{{.State.Status}}"), "running");
    q.ok(&["rm", "-f", "orphan"]);
    q.assert_clean();
}
