//! Known container escapes stay closed, bad configs are refused before
//! anything exists, and a failure at any step of create leaves nothing
//! behind.

mod common;

use std::fs;
use std::os::fd::AsRawFd;

use common::{mounts_below, stderr, Fixture};
use serde_json::json;

/// Processes whose command line mentions `needle` (a container's init is a
/// fork of the runtime, so it carries the runtime's arguments).
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// What a process in the container would do to the runtime process `pid`:
/// keep a handle on its exe, wait for it to go (`after`), then reopen the
/// handle for writing. Returns the handle.
fn grab_exe_then_write(pid: i64, after: impl FnOnce()) -> std::os::fd::OwnedFd {
    let handle = rustix::fs::open(
        format!("/proc/{pid}/exe"),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    after();
    let reopen = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let write = fs::OpenOptions::new()
        .write(true)
        .open(&reopen)
        .and_then(|mut file| std::io::Write::write_all(&mut file, b"\x7fELF"));
    assert!(write.is_err(), "the runtime's exe was written to");
    handle
}

fn is_runtime_binary(handle: &std::os::fd::OwnedFd) -> bool {
    use std::os::unix::fs::MetadataExt;
    let binary = fs::metadata(env!("CARGO_BIN_EXE_quai")).unwrap();
    let exposed = fs::metadata(format!("/proc/self/fd/{}", handle.as_raw_fd())).unwrap();
    (exposed.dev(), exposed.ino()) == (binary.dev(), binary.ino())
}

#[test]
fn cve_2019_5736_a_created_container_sees_only_a_sealed_init() {
    // In its own pid namespace the init hands over to quai-init (a sealed
    // memfd) before `create` returns: the container's first process never
    // has the runtime's binary as its exe.
    let f = Fixture::new("exe", &["sleep", "1000"]);
    let id = f.id("e");
    f.ok(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let link = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        link.to_string_lossy().starts_with("/memfd:quai-init"),
        "the created container's init runs {link:?}"
    );
    let handle = grab_exe_then_write(pid, || {
        f.ok(&["delete", &id]);
    });
    assert!(!is_runtime_binary(&handle));
    let readable = fs::File::open(format!("/proc/self/fd/{}", handle.as_raw_fd())).unwrap();
    let seals = rustix::fs::fcntl_get_seals(&readable).unwrap();
    assert!(seals.contains(rustix::fs::SealFlags::WRITE | rustix::fs::SealFlags::SEAL));
}

#[test]
fn cve_2019_5736_joining_a_pid_namespace_runs_a_read_only_runtime() {
    // A container that joins another's pid namespace is visible to it
    // while its init is still the runtime: then the runtime re-executes
    // from a read-only view of its binary first.
    let f = Fixture::new("exejoin", &["sleep", "1000"]);
    let first = f.id("a");
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &first]);
    let first_pid = f.state(&first)["pid"].as_i64().unwrap();
    f.edit(|spec| {
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{first_pid}/ns/pid"));
            }
        }
    });
    let second = f.id("b");
    f.ok(&["create", "--bundle", f.bundle.to_str().unwrap(), &second]);
    let pid = f.state(&second)["pid"].as_i64().unwrap();
    let handle = grab_exe_then_write(pid, || {
        f.ok(&["delete", "--force", &second]);
        f.ok(&["delete", "--force", &first]);
    });
    // The handle is the runtime binary itself, but on a read-only mount.
    // (Opening it for writing may also meet ETXTBSY while other tests run
    // the same binary; the read-only mount is what holds when none does.)
    assert!(is_runtime_binary(&handle));
    let mount = rustix::fs::fstatvfs(&handle).unwrap();
    assert!(
        mount.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        "the runtime binary must only be reachable read-only"
    );
    // Control: the binary itself sits on a writable file system, so the
    // protection above is the runtime's doing.
    let direct = rustix::fs::statvfs(env!("CARGO_BIN_EXE_quai")).unwrap();
    assert!(!direct
        .f_flag
        .contains(rustix::fs::StatVfsMountFlags::RDONLY));
}

#[test]
fn cve_2019_5736_a_script_run_by_proc_self_exe_gets_no_runtime() {
    // The original exploit: the container's program is a script whose
    // interpreter is /proc/self/exe, which at execve time is whatever the
    // executing process runs. Here that is quai-init, which refuses the
    // arguments: the runtime's binary never runs in the container.
    let f = Fixture::new("exesh", &["/evil"]);
    fs::write(f.rootfs().join("evil"), "#!/proc/self/exe\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(f.rootfs().join("evil"), fs::Permissions::from_mode(0o755)).unwrap();
    let out = f.rt(&["run", "--bundle", f.bundle.to_str().unwrap(), &f.id("s")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("usage: quai-init FIFO_FD"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn magic_link_programs_are_refused() {
    let f = Fixture::new("magic", &["/proc/self/exe"]);
    let id = f.id("m");
    let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("magic link"), "{}", stderr(&out));
    assert!(!f.state_dir(&id).exists());
}

#[test]
fn cve_2024_21626_no_host_descriptor_reaches_the_container() {
    let f = Fixture::new("fds", &["ls", "/proc/self/fd"]);
    // fd 5 is open in the runtime (inherited, not CLOEXEC) but not passed.
    let script = format!(
        "exec 5</etc/hostname; exec {} --root {} run --bundle {} {}",
        f.binary.display(),
        f.state_root.display(),
        f.bundle.display(),
        f.id("f")
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]);
    let out = common::run_captured(cmd, f.tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    // ls sees its stdio and the descriptor of the directory it lists.
    let fds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "descriptors visible in the container"
    );
}

#[test]
fn preserved_descriptors_are_passed() {
    let f = Fixture::new("keepfd", &["sh", "-c", "cat <&3; cat <&4"]);
    fs::write(f.tmp.path().join("three"), "three\n").unwrap();
    fs::write(f.tmp.path().join("four"), "four\n").unwrap();
    let script = format!(
        "exec 3<{0}/three 4<{0}/four; exec {1} --root {2} run --preserve-fds 2 --bundle {3} {4}",
        f.tmp.path().display(),
        f.binary.display(),
        f.state_root.display(),
        f.bundle.display(),
        f.id("p")
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]);
    let out = common::run_captured(cmd, f.tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "three\nfour\n");

    let missing = f.rt(&[
        "run",
        "--preserve-fds",
        "40",
        "--bundle",
        f.bundle.to_str().unwrap(),
        &f.id("p"),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("--preserve-fds"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn cve_2024_21626_working_directory_outside_the_root_is_refused() {
    // A directory descriptor of the host handed to the container: a cwd of
    // /proc/self/fd/3 would put the process outside its root.
    let f = Fixture::new("cwd", &["pwd"]);
    f.edit(|s| s["process"]["cwd"] = json!("/proc/self/fd/3"));
    let id = f.id("c");
    let script = format!(
        "exec 3</etc; exec {} --root {} run --preserve-fds 1 --bundle {} {}",
        f.binary.display(),
        f.state_root.display(),
        f.bundle.display(),
        id
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]);
    let out = common::run_captured(cmd, f.tmp.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr(&out).contains("outside the container's root"),
        "{}",
        stderr(&out)
    );
    assert!(!f.state_dir(&id).exists());
}

fn assert_refused(f: &Fixture, edit: impl FnOnce(&mut serde_json::Value), expected: &[&str]) {
    let original = f.spec();
    f.edit(edit);
    let id = f.id("bad");
    let out = f.rt(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    f.edit(|s| *s = original);
    assert_eq!(
        out.status.code(),
        Some(1),
        "config accepted, expected {expected:?}"
    );
    let err = stderr(&out);
    for needle in expected {
        assert!(
            err.contains(needle),
            "error {err:?} does not mention {needle:?}"
        );
    }
    assert!(
        !f.state_dir(&id).exists(),
        "state left behind for a refused config"
    );
    assert!(processes_mentioning(&id).is_empty());
}

#[test]
fn invalid_configs_are_refused_naming_the_field() {
    let f = Fixture::new("badcfg", &["true"]);
    assert_refused(
        &f,
        |s| s["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "bogus"}]),
        &["linux.namespaces[1]", "bogus"],
    );
    assert_refused(
        &f,
        |s| s["root"]["path"] = json!("no-such-rootfs"),
        &["root.path", "no-such-rootfs"],
    );
    assert_refused(
        &f,
        |s| s["process"]["cwd"] = json!("relative"),
        &["process.cwd", "absolute"],
    );
    assert_refused(
        &f,
        |s| s["process"]["capabilities"]["bounding"] = json!(["CAP_CHOWN", "CAP_FLY"]),
        &["process.capabilities.bounding", "CAP_FLY"],
    );
    assert_refused(
        &f,
        |s| s["hooks"] = json!({"prestart": [{"path": "relative/hook"}]}),
        &["hooks.prestart[0].path", "absolute"],
    );
    assert_refused(
        &f,
        |s| s["linux"]["sysctl"] = json!({"vm.swappiness": "10"}),
        &["linux.sysctl.vm.swappiness", "not namespaced"],
    );
    assert_refused(
        &f,
        |s| {
            s["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}]);
            s["hostname"] = json!("box");
        },
        &["hostname", "UTS"],
    );
    assert_refused(
        &f,
        |s| s["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "mount"}]),
        &["linux.namespaces[1]", "twice"],
    );
    assert_refused(
        &f,
        |s| s["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "uts"}, {"type": "network", "path": "/proc/self/ns/pid"}]),
        &["network namespace", "another type"],
    );
    assert_refused(
        &f,
        |s| s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]),
        &["process.rlimits[0]", "above its hard limit"],
    );
    assert_refused(&f, |s| s["process"]["args"] = json!([]), &["process.args"]);
    assert_refused(&f, |s| s["ociVersion"] = json!("2.0.0"), &["ociVersion"]);
    assert_refused(
        &f,
        |s| s["process"]["apparmorProfile"] = json!("docker-default"),
        &["AppArmor"],
    );
    assert_refused(
        &f,
        |s| s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
        &["linux.seccomp", "default action"],
    );
    assert_refused(
        &f,
        |s| s["process"]["terminal"] = json!(true),
        &["--console-socket", "terminal"],
    );
}

#[test]
fn a_failure_at_any_step_of_create_leaves_nothing_behind() {
    let f = Fixture::new("fail", &["true"]);
    let pid_file = f.tmp.path().join("pid");
    for point in quai_runtime::failpoint::POINTS {
        let id = f.id("fp");
        let mut cmd = f.cmd(&[
            "create",
            "--bundle",
            f.bundle.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
        ]);
        cmd.env(quai_runtime::failpoint::ENV, point);
        let out = common::run_captured(cmd, f.tmp.path());
        assert_eq!(
            out.status.code(),
            Some(1),
            "failpoint {point} did not fail create"
        );
        assert!(
            stderr(&out).contains(point),
            "failpoint {point}: {}",
            stderr(&out)
        );
        assert!(
            !f.state_dir(&id).exists(),
            "failpoint {point} left a state directory"
        );
        assert!(!pid_file.exists(), "failpoint {point} left a pid file");
        assert!(
            processes_mentioning(&id).is_empty(),
            "failpoint {point} left a process"
        );
        assert!(
            mounts_below(&f.rootfs()).is_empty(),
            "failpoint {point} left a mount"
        );
    }
    // Without an injected failure the same create succeeds.
    let id = f.id("fp");
    f.ok(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    assert_eq!(f.status(&id), "created");
}

#[test]
fn kept_binary_binds_of_replaced_binaries_are_dropped() {
    let f = Fixture::new("stale", &["true"]);
    // In the host's pid namespace the container could see its init: the
    // runtime re-executes from its kept read-only bind.
    f.edit(|spec| {
        spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|ns| ns["type"] != "pid");
    });
    let kept = f.state_root.join("@exe");
    fs::create_dir_all(&kept).unwrap();
    let stale = kept.join("quai-1-2");
    fs::write(&stale, b"").unwrap();
    rustix::mount::mount_bind("/bin/true", &stale).unwrap();
    let (code, _, err) = f.run(&f.id("s"));
    assert_eq!(code, 0, "{err}");
    assert!(!stale.exists(), "the bind of a replaced binary was kept");
    assert!(mounts_below(&stale).is_empty());
    let current: Vec<_> = fs::read_dir(&kept).unwrap().flatten().collect();
    assert_eq!(current.len(), 1, "one read-only bind of the running binary");
}

#[test]
fn a_create_killed_midway_is_cleaned_up_by_delete() {
    let f = Fixture::new("kill9", &["true"]);
    let hook_pid = f.tmp.path().join("hook.pid");
    // The prestart hook parks create (runtime side, init already cloned).
    f.edit(|s| {
        s["hooks"] = json!({"prestart": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 1000", hook_pid.display())]
        }]});
    });
    let id = f.id("k");
    let mut create = f.cmd(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    create
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut create = create.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fs::read_to_string(&hook_pid)
        .map(|s| s.trim().is_empty())
        .unwrap_or(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the prestart hook never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    create.kill().unwrap();
    create.wait().unwrap();
    let hook: i32 = fs::read_to_string(&hook_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(hook).unwrap(),
        rustix::process::Signal::KILL,
    );

    // The record survived intact; the init died with its creator.
    let state = f.state(&id);
    assert!(
        state["status"] == "stopped" || state["status"] == "creating",
        "{state}"
    );
    f.ok(&["delete", &id]);
    assert!(!f.state_dir(&id).exists());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !processes_mentioning(&id).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "processes of {id} left behind"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn no_descriptor_leaks_when_seccomp_refuses_close_range() {
    // Without no_new_privs the filter goes on before the privileges are
    // dropped, so it is in force when the runtime closes its descriptors.
    let f = Fixture::new("fdsecc", &["ls", "/proc/self/fd"]);
    f.edit(|s| {
        s["process"]["noNewPrivileges"] = json!(false);
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let script = format!(
        "exec 5</etc/hostname; exec {} --root {} run --bundle {} {}",
        f.binary.display(),
        f.state_root.display(),
        f.bundle.display(),
        f.id("f")
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]);
    let out = common::run_captured(cmd, f.tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let fds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "descriptors visible in the container"
    );
}

#[test]
fn cve_2019_5736_a_filter_that_would_stop_quai_init_gets_a_read_only_runtime() {
    // quai-init runs under the container's seccomp filter: when the filter
    // refuses what it needs (here execveat), the runtime re-executes from
    // its read-only bind and the init executes the program itself.
    let f = Fixture::new("exesec", &["sleep", "1000"]);
    f.edit(|spec| {
        spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    let id = f.id("s");
    f.ok(&["create", "--bundle", f.bundle.to_str().unwrap(), &id]);
    let pid = f.state(&id)["pid"].as_i64().unwrap();
    let handle = grab_exe_then_write(pid, || {
        f.ok(&["start", &id]);
        f.ok(&["delete", "--force", &id]);
    });
    assert!(is_runtime_binary(&handle));
    assert!(rustix::fs::fstatvfs(&handle)
        .unwrap()
        .f_flag
        .contains(rustix::fs::StatVfsMountFlags::RDONLY));
}
