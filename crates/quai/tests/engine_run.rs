//! `quai run`: docker's flags, output and exit codes, on busybox.

mod engine_support;

use std::fs;

use engine_support::Quai;

#[test]
fn hello_world_runs_from_the_embedded_image_and_leaves_nothing() {
    let q = Quai::new("hello");
    let out = q.ok(&["run", "--rm", "hello-world"]);
    assert!(out.contains("Hello from quai!"), "{out}");
    q.assert_clean();
}

#[test]
fn exit_codes_and_streams_are_dockers() {
    let q = Quai::new("codes");
    let out = q.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let (code, err) = q.fails(&["run", "--rm", "busybox", "no-such-program"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("executable file not found"), "{err}");
    let (code, err) = q.fails(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    let (code, _) = q.fails(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "sh -c 'kill -9 $$'; exit $?",
    ]);
    assert_eq!(code, 137);
    q.assert_clean();
}

#[test]
fn config_flags_reach_the_process() {
    let q = Quai::new("flags");
    let env_file = q.tmp.path().join("env");
    fs::write(&env_file, "# comment\nFROM_FILE=yes\n").unwrap();
    let out = q.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        env_file.to_str().unwrap(),
        "-w",
        "/tmp",
        "-u",
        "user",
        "-h",
        "myhost",
        "-l",
        "k=v",
        "--entrypoint",
        "/bin/sh",
        "busybox",
        "-c",
        "echo $A $FROM_FILE; pwd; id -u; hostname; cat /etc/hostname; echo $HOME",
    ]);
    assert_eq!(out, "1 yes\n/tmp\n1000\nmyhost\nmyhost\n/home/user\n");
    let out = q.ok(&["run", "--rm", "-u", "1000:2000", "busybox", "id"]);
    assert!(out.starts_with("uid=1000(user) gid=2000(extra)"), "{out}");
    let (code, err) = q.fails(&["run", "--rm", "-u", "ghost", "busybox", "id"]);
    assert_eq!(code, 125);
    assert!(err.contains("unable to find user ghost"), "{err}");
}

#[test]
fn docker_defaults_isolate_the_container() {
    let q = Quai::new("defaults");
    let script = "grep CapEff /proc/self/status; \
                  mount | grep -E ' on /(proc|sys|dev/shm) ' | cut -d' ' -f3,5,6; \
                  cat /proc/kcore 2>&1 | head -c 0; ls /proc/kcore >/dev/null && echo kcore-visible; \
                  echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo sysctl-ro; \
                  ip link 2>/dev/null | grep -c 'state' ; ulimit -Hn";
    let out = q.ok(&["run", "--rm", "busybox", "sh", "-c", script]);
    // docker's 14 default capabilities.
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("/proc proc (rw"), "{out}");
    assert!(out.contains("/sys sysfs (ro"), "{out}");
    assert!(
        out.contains("/dev/shm tmpfs (rw,nosuid,nodev,noexec"),
        "{out}"
    );
    assert!(out.contains("sysctl-ro"), "{out}");
    // Never above the host's hard limit.
    let host_hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap();
    assert!(out.trim_end().ends_with(&host_hard.to_string()), "{out}");
    let size = q.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "df -k /dev/shm | tail -1",
    ]);
    assert!(size.contains("65536"), "64 MiB /dev/shm: {size}");
}

#[test]
fn security_flags() {
    let q = Quai::new("security");
    let out = q.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "KILL",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(out.contains("0000000000000020"), "{out}");
    let out = q.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    assert!(out.contains("1"), "{out}");
    let out = q.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "mount | grep ' on /sys '",
    ]);
    assert!(out.contains("(rw"), "{out}");
    let out = q.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        "busybox",
        "sh",
        "-c",
        "touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs-ok",
    ]);
    assert_eq!(out, "ro\ntmpfs-ok\n");
    let out = q.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(out, "100\n200\n");
    let out = q.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "sh",
        "-c",
        "echo x > /dev/mynull && echo dev-ok",
    ]);
    assert_eq!(out, "dev-ok\n");
}

#[test]
fn stdin_is_passed_with_i() {
    let q = Quai::new("stdin");
    let out = q.run_with_stdin(
        &[
            "run",
            "--rm",
            "-i",
            "busybox",
            "sh",
            "-c",
            "wc -l; echo done",
        ],
        b"a\nb\nc\n",
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\ndone\n");
    // Without -i the container reads nothing.
    let out = q.run_with_stdin(&["run", "--rm", "busybox", "wc", "-c"], b"ignored");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

#[test]
fn binds_and_volumes() {
    let q = Quai::new("volumes");
    let host = q.tmp.path().join("host");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("in"), "from host").unwrap();
    let spec = format!("{}:/data", host.display());
    let out = q.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "cat /data/in; echo back > /data/out",
    ]);
    assert_eq!(out, "from host");
    assert_eq!(fs::read_to_string(host.join("out")).unwrap(), "back\n");
    let ro = format!("{}:/data:ro", host.display());
    let out = q.ok(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "busybox",
        "sh",
        "-c",
        "touch /data/x 2>/dev/null || echo ro",
    ]);
    assert_eq!(out, "ro\n");
    // Named volume, copied up from the image on first use.
    q.ok(&["run", "--rm", "-v", "etcvol:/etc", "busybox", "true"]);
    let out = q.ok(&[
        "run",
        "--rm",
        "-v",
        "etcvol:/mnt",
        "busybox",
        "cat",
        "/mnt/passwd",
    ]);
    assert!(out.starts_with("root:x:0:0"), "{out}");
    let out = q.ok(&["volume", "ls", "-q"]);
    assert_eq!(out, "etcvol\n");
    // --mount and an anonymous volume removed with --rm.
    let m = format!("type=bind,source={},target=/m,readonly", host.display());
    let out = q.ok(&[
        "run",
        "--rm",
        "--mount",
        &m,
        "-v",
        "/anon",
        "busybox",
        "sh",
        "-c",
        "cat /m/in; touch /anon/f && echo anon-ok",
    ]);
    assert_eq!(out, "from hostanon-ok\n");
    assert_eq!(
        q.ok(&["volume", "ls", "-q"]),
        "etcvol\n",
        "--rm removes anonymous volumes"
    );
    let (code, err) = q.fails(&["volume", "rm", "etcvol", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such volume: nope"), "{err}");
    assert_eq!(q.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn init_reaps_zombies_and_forwards_signals() {
    let q = Quai::new("init");
    let out = q.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid,comm | head -3",
    ]);
    assert!(out.starts_with("/sbin/docker-init -- sh -c"), "{out}");
    // A signal to the container reaches the program under the init.
    q.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "--init",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' USR1; while true; do sleep 0.1; done",
    ]);
    q.ok(&["kill", "-s", "USR1", "sig"]);
    let code = q.ok(&["wait", "sig"]);
    assert_eq!(code.trim(), "42");
    // Orphans are reaped: no zombie stays.
    let out = q.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "(sleep 0.2 &) ; sleep 1; ps -o stat | grep -c Z || true",
    ]);
    assert_eq!(out.trim(), "0");
}

#[test]
fn detached_run_logs_and_rotation() {
    let q = Quai::new("logs");
    let id = q.ok(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do echo line $i; i=$((i+1)); done",
    ]);
    assert_eq!(id.trim().len(), 64);
    assert_eq!(q.ok(&["wait", "chatty"]).trim(), "0");
    let logs = q.ok(&["logs", "chatty"]);
    assert!(logs.ends_with("line 399\n"), "{logs}");
    assert!(!logs.contains("line 0\n"), "rotated away");
    let dir = q.root().join("containers").join(id.trim());
    let files: Vec<String> = q
        .names_in(&dir)
        .into_iter()
        .filter(|n| n.contains("-json.log"))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(
        q.ok(&["logs", "--tail", "2", "chatty"]),
        "line 398\nline 399\n"
    );
    let ts = q.ok(&["logs", "-t", "--tail", "1", "chatty"]);
    assert!(ts.contains("Z line 399"), "{ts}");
    let (code, err) = q.fails(&["run", "--log-opt", "bogus=1", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("unknown log opt 'bogus'"), "{err}");
}

#[test]
fn host_and_none_networks() {
    let q = Quai::new("net");
    let out = q.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net",
    ]);
    assert_eq!(out.trim(), "lo");
    let out = q.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net | wc -l",
    ]);
    assert!(out.trim().parse::<u32>().unwrap() >= 1);
    // The default is docker's: the bridge network, with eth0.
    let out = q.ok(&["run", "--rm", "busybox", "sh", "-c", "ls /sys/class/net"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    q.assert_clean();
}
