//! Bad input gets docker's messages and exit codes, and leaves nothing
//! behind: no row, no directory, no mount, no process.

mod engine_support;

use engine_support::Quai;

fn assert_nothing_created(q: &Quai) {
    q.assert_clean();
    assert_eq!(q.ok(&["volume", "ls", "-q"]), "", "volumes left");
    // A monitor that reported a failed start may still be cleaning up.
    q.wait_for("the monitors to exit", || monitors(q).is_empty());
}

/// Monitor processes of this state root.
fn monitors(q: &Quai) -> Vec<i32> {
    engine_support::processes_under(&format!("--root\0{}\0", q.root().display()))
}

#[test]
fn bad_run_and_create_requests_create_nothing() {
    let q = Quai::new("badinput");
    let host_file = q.tmp.path().join("afile");
    std::fs::write(&host_file, "x").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--bogus-flag", "busybox"],
            "unexpected argument '--bogus-flag'",
        ),
        (vec!["run", "UPPER/Case:tag"], "invalid reference format"),
        // A missing image is pulled (--pull missing); tests reach only
        // loopback, where nothing listens on port 1.
        (
            vec!["run", "127.0.0.1:1/no-such-image"],
            "contacting registry 127.0.0.1:1",
        ),
        (
            vec!["run", "--pull", "never", "no-such-image"],
            "No such image",
        ),
        (
            vec!["run", "--pull", "sometimes", "busybox"],
            "invalid pull option",
        ),
        (
            vec!["run", "--name=-bad", "busybox"],
            "Invalid container name (-bad)",
        ),
        (
            vec!["run", "-v", "a:b:c:d", "busybox"],
            "invalid volume specification: 'a:b:c:d'",
        ),
        (
            vec!["run", "-v", "/x:relative", "busybox"],
            "mount path must be absolute",
        ),
        (
            vec!["run", "-v", "/x:/y:bogus", "busybox"],
            "invalid mode: bogus",
        ),
        (
            vec!["run", "-v", "/a:/same", "-v", "/b:/same", "busybox"],
            "Duplicate mount point: /same",
        ),
        (
            vec![
                "run",
                "--mount",
                "type=bind,source=/does/not/exist,target=/x",
                "busybox",
            ],
            "bind source path does not exist",
        ),
        (
            vec!["run", "--mount", "type=nfs,target=/x", "busybox"],
            "mount type unknown",
        ),
        (
            vec!["run", "--rm", "--restart", "always", "busybox"],
            "Conflicting options: --restart and --rm",
        ),
        (
            vec!["run", "--restart", "sometimes", "busybox"],
            "unknown policy 'sometimes'",
        ),
        (
            vec!["run", "--restart", "always:3", "busybox"],
            "maximum retry count",
        ),
        (
            vec!["run", "--cap-add", "NOT_A_CAP", "busybox"],
            "unknown capability: \"CAP_NOT_A_CAP\"",
        ),
        (
            vec!["run", "--security-opt", "nonsense", "busybox"],
            "invalid --security-opt",
        ),
        (
            vec!["run", "--stop-signal", "SIGNOPE", "busybox"],
            "Invalid signal: SIGNOPE",
        ),
        (
            vec!["run", "--ulimit", "nofile=10:5", "busybox"],
            "soft limit must be less than or equal to hard limit",
        ),
        (
            vec!["run", "--ulimit", "bogus=1", "busybox"],
            "invalid ulimit type: bogus",
        ),
        (
            vec!["run", "--ulimit", "nofile=99999999:99999999", "busybox"],
            "above this host's",
        ),
        (
            vec!["run", "--device", "/no/such/device", "busybox"],
            "error gathering device information",
        ),
        (
            vec!["run", "--device", host_file.to_str().unwrap(), "busybox"],
            "not a device node",
        ),
        (
            vec!["run", "--log-driver", "syslog", "busybox"],
            "log driver \"syslog\" is not supported",
        ),
        (
            vec!["run", "--log-opt", "max-size=huge", "busybox"],
            "invalid max-size",
        ),
        (
            vec!["run", "--health-interval", "1x", "busybox"],
            "invalid duration",
        ),
        (
            vec!["run", "--no-healthcheck", "--health-cmd", "true", "busybox"],
            "conflicts with --health",
        ),
        (
            vec!["run", "-w", "relative", "busybox"],
            "it needs to be an absolute path",
        ),
        (
            vec!["run", "--network", "container:other", "busybox"],
            "No such container: other",
        ),
        (
            vec!["run", "--network", "mynet", "busybox"],
            "network mynet not found",
        ),
        (
            vec!["run", "--memory", "1m", "busybox"],
            "Minimum memory limit allowed is 6MB",
        ),
        (
            vec!["run", "--cpus", "4096", "busybox"],
            "Range of CPUs is from 0.01 to",
        ),
        (
            vec!["run", "--cpus", "1", "--cpu-quota", "50000", "busybox"],
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        (
            vec!["run", "-m", "64m", "--memory-swap", "32m", "busybox"],
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (
            vec!["run", "--cpuset-cpus", "4000", "busybox"],
            "Requested CPUs are not available - requested 4000",
        ),
        (
            vec!["run", "--blkio-weight", "5", "busybox"],
            "Range of blkio weight is from 10 to 1000",
        ),
        (
            vec!["run", "--device-cgroup-rule", "z 1:3 rwm", "busybox"],
            "invalid device cgroup format 'z 1:3 rwm'",
        ),
        (
            vec!["run", "--device-read-bps", "/dev/null:1mb", "busybox"],
            "--device-read-bps /dev/null: not a block device",
        ),
        (
            vec!["run", "--device-read-bps", "sda:1mb", "busybox"],
            "bad format for device path: sda:1mb",
        ),
        (
            vec!["run", "--cgroup-parent", "../escape", "busybox"],
            "--cgroup-parent",
        ),
        (
            vec!["run", "--entrypoint", "", "busybox"],
            "No command specified",
        ),
        (
            vec!["run", "--detach-keys", "ctrl-1", "busybox"],
            "Invalid detach keys",
        ),
        // docker's flags quai lacks are refused by name, not as unknown.
        (
            vec!["run", "--sysctl", "net.ipv4.ip_forward=1", "busybox"],
            "--sysctl is not supported by quai yet",
        ),
        (
            vec!["run", "--pid", "host", "busybox"],
            "--pid is not supported by quai yet",
        ),
        (
            vec!["create", "--volumes-from", "other", "busybox"],
            "--volumes-from is not supported by quai yet",
        ),
    ];
    for (args, message) in cases {
        let (code, err) = q.fails(&args);
        // `run` starts the container's monitor while it creates the
        // container: told nothing, it is gone by the time `run` has failed.
        assert_eq!(monitors(&q), Vec::<i32>::new(), "{args:?}: monitors left");
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(
            err.contains(message),
            "{args:?}: expected {message:?} in:\n{err}"
        );
        assert_nothing_created(&q);
    }
}

#[test]
fn taken_names_and_missing_containers() {
    let q = Quai::new("names");
    q.ok(&["create", "--name", "taken", "busybox", "true"]);
    let (code, err) = q.fails(&["run", "--name", "taken", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("Conflict. The container name \"/taken\" is already in use by container"),
        "{err}"
    );
    assert_eq!(q.container_ids().len(), 1);
    for cmd in [
        "start", "stop", "restart", "kill", "rm", "wait", "logs", "inspect", "top", "diff",
        "export", "port",
    ] {
        if cmd == "port" {
            continue;
        }
        let (code, err) = q.fails(&[cmd, "ghost"]);
        assert_eq!(code, 1, "{cmd}: {err}");
        assert!(err.contains("ghost"), "{cmd}: {err}");
    }
    let (code, _) = q.fails(&["ps", "--no-such-flag"]);
    assert_eq!(code, 125);
    let (code, err) = q.fails(&["kill", "-s", "NOPE", "taken"]);
    assert_eq!(code, 1);
    assert!(err.contains("Invalid signal"), "{err}");
    let (code, err) = q.fails(&["rename", "taken", "bad name"]);
    assert_eq!(code, 1);
    assert!(err.contains("Invalid container name"), "{err}");
    let (code, err) = q.fails(&["cp", "/etc/hostname", "/tmp/x"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("must specify at least one container source"),
        "{err}"
    );
    q.ok(&["rm", "taken"]);
    assert_nothing_created(&q);
}

#[test]
fn a_failed_start_leaves_the_container_created_and_rm_cleans_it() {
    let q = Quai::new("failstart");
    let (code, _) = q.fails(&["run", "--name", "nocmd", "busybox", "/not/there"]);
    assert_eq!(code, 127);
    assert_eq!(
        q.inspect("nocmd", "{{.State.Status}} {{.State.ExitCode}}"),
        "created 127"
    );
    assert!(q
        .inspect("nocmd", "{{.State.Error}}")
        .contains("/not/there"));
    // docker start reports the failure with status 1.
    let (code, err) = q.fails(&["start", "nocmd"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("executable file not found") || err.contains("/not/there"),
        "{err}"
    );
    q.ok(&["rm", "nocmd"]);
    // With --rm the failed container goes too.
    let (code, _) = q.fails(&["run", "--rm", "busybox", "/not/there"]);
    assert_eq!(code, 127);
    assert_nothing_created(&q);
}
