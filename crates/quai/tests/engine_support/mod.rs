//! Helpers for the container integration tests: a private state root per
//! test with a busybox image imported into it, a runner for the `quai`
//! binary, and a guard that removes every container (and so every monitor
//! and container process) when the test ends, passed or failed.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use quai_testutil::netns::Netns;
use quai_testutil::{busybox_rootfs, require_root, TempRoot};

pub const QUAI: &str = env!("CARGO_BIN_EXE_quai");

/// A busybox rootfs tarball, built once per test process.
fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<(TempRoot, PathBuf)> = OnceLock::new();
    let (_, path) = TAR.get_or_init(|| {
        let tmp = TempRoot::new("bbtar");
        let rootfs = tmp.path().join("rootfs");
        busybox_rootfs(&rootfs).expect("build busybox rootfs");
        let tar = tmp.path().join("busybox.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("run tar");
        assert!(status.success(), "tar of the busybox rootfs failed");
        (tmp, tar)
    });
    path
}

/// A private quai state root with `busybox:latest` in it, whose commands
/// run in a network namespace of their own: containers on the default
/// bridge network never touch the real host's network.
pub struct Quai {
    pub tmp: TempRoot,
    pub netns: Netns,
    /// Runs in this namespace (another root's) instead of `netns`.
    shared_netns: Option<PathBuf>,
}

impl Quai {
    pub fn new(name: &str) -> Quai {
        Quai::setup(name, None)
    }

    /// A second state root whose commands run in `other`'s network
    /// namespace: two roots on one host. Drop it before `other`.
    pub fn sharing_netns_of(name: &str, other: &Quai) -> Quai {
        Quai::setup(name, Some(other.netns.path.clone()))
    }

    fn setup(name: &str, shared_netns: Option<PathBuf>) -> Quai {
        require_root();
        let q = Quai {
            tmp: TempRoot::new(name),
            netns: Netns::new("qe"),
            shared_netns,
        };
        let tar = busybox_tar().to_string_lossy().into_owned();
        q.ok(&["import", "-c", "CMD [\"/bin/sh\"]", &tar, "busybox:latest"]);
        q
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    pub fn runroot(&self) -> PathBuf {
        self.tmp.path().join("run")
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new("nsenter");
        let netns = self.shared_netns.as_ref().unwrap_or(&self.netns.path);
        c.arg(format!("--net={}", netns.display()))
            .arg(QUAI)
            .env("QUAI_ROOT", self.root())
            .env("QUAI_RUNROOT", self.runroot())
            .env_remove("QUAI_ENGINE_CRASH")
            .env_remove("QUAI_RUNTIME_FAILPOINT");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run quai")
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command();
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run quai")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quai");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait quai");
        writer.join().expect("stdin writer");
        out
    }

    /// Runs quai and returns stdout, failing the test on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "quai {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs quai expecting failure; returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "quai {args:?} succeeded unexpectedly:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `inspect -f TEMPLATE NAME`, trimmed.
    pub fn inspect(&self, name: &str, template: &str) -> String {
        self.ok(&["inspect", "-f", template, name])
            .trim()
            .to_string()
    }

    /// Waits (up to a minute: the machine is shared) until `cond` holds.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every container id (`ps -aq --no-trunc`).
    pub fn container_ids(&self) -> Vec<String> {
        let out = self.run(&["ps", "-aq", "--no-trunc"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    }

    /// Names in a directory of the state root, sorted (empty if missing).
    pub fn names_in(&self, dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Nothing of any container is left: no row, no directory, no runtime
    /// state, no monitor socket, no mount below the test root, no process.
    /// Monitors finish deleting a removed container's files after telling
    /// their client: this waits (a minute at most) for them.
    pub fn assert_clean(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.leftovers() {
                None => return,
                Some(what) if Instant::now() >= deadline => panic!("{what}"),
                Some(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn leftovers(&self) -> Option<String> {
        let ids = self.container_ids();
        if !ids.is_empty() {
            return Some(format!("containers left: {ids:?}"));
        }
        let dirs = self.names_in(&self.root().join("containers"));
        if !dirs.is_empty() {
            return Some(format!("container directories left: {dirs:?}"));
        }
        let run = self.names_in(&self.runroot().join("containers"));
        if !run.is_empty() {
            return Some(format!("run directories left: {run:?}"));
        }
        // The runtime's kept read-only bind of the quai binary (runtime/@exe,
        // CVE-2019-5736) is shared by all containers and stays.
        let runtime_state: Vec<String> = self
            .names_in(&self.runroot().join("runtime"))
            .into_iter()
            .filter(|n| n != "@exe")
            .collect();
        if !runtime_state.is_empty() {
            return Some(format!("runtime state left: {runtime_state:?}"));
        }
        let prefix = self.tmp.path().to_string_lossy().into_owned();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let leaked: Vec<&str> = mounts
            .lines()
            .filter(|l| l.contains(&prefix) && !l.contains("/@exe/"))
            .collect();
        if !leaked.is_empty() {
            return Some(format!("mounts left on the host: {leaked:?}"));
        }
        let procs = processes_under(&prefix);
        if !procs.is_empty() {
            return Some(format!("processes left: {procs:?}"));
        }
        None
    }
}

/// Pids of processes whose command line mentions `needle` (monitors carry
/// the state root in their arguments).
pub fn processes_under(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
                    // Zombies are already dead.
                    if stat
                        .rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                    {
                        continue;
                    }
                }
                out.push(pid);
            }
        }
    }
    out
}

impl Drop for Quai {
    fn drop(&mut self) {
        // Every container goes (killing its monitor and processes) before
        // the temporary root is unmounted and removed.
        for id in self.container_ids() {
            let _ = self.run(&["rm", "-f", &id]);
        }
    }
}
