//! Shared fixture of the runtime tests: a private state root and a busybox
//! bundle per test, the `quai-runtime` command (through an argv[0] link to
//! the built binary), and cleanup of every container the test left behind.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use quai_testutil::{busybox_rootfs, require_root, unique_name, TempRoot};
use serde_json::{json, Value};

pub struct Fixture {
    pub tmp: TempRoot,
    pub state_root: PathBuf,
    pub bundle: PathBuf,
    pub binary: PathBuf,
}

impl Fixture {
    /// A bundle from `quai-runtime spec` with a busybox root, no terminal,
    /// running `args`.
    pub fn new(prefix: &str, args: &[&str]) -> Fixture {
        require_root();
        let tmp = TempRoot::new(prefix);
        let state_root = tmp.path().join("state");
        let bundle = tmp.path().join("bundle");
        fs::create_dir_all(bundle.join("rootfs")).unwrap();
        busybox_rootfs(&bundle.join("rootfs")).expect("busybox rootfs");
        let binary = tmp.path().join("quai-runtime");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_quai"), &binary).unwrap();
        let fixture = Fixture {
            tmp,
            state_root,
            bundle,
            binary,
        };
        let out = fixture.rt(&["spec", "--bundle", fixture.bundle.to_str().unwrap()]);
        assert!(out.status.success(), "spec failed: {}", stderr(&out));
        fixture.edit(|spec| {
            spec["process"]["terminal"] = json!(false);
            spec["process"]["args"] = json!(args);
            spec["root"]["readonly"] = json!(false);
        });
        fixture
    }

    pub fn id(&self, prefix: &str) -> String {
        unique_name(prefix)
    }

    pub fn spec(&self) -> Value {
        serde_json::from_slice(&fs::read(self.bundle.join("config.json")).unwrap()).unwrap()
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut spec = self.spec();
        f(&mut spec);
        fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// `quai-runtime --root <private root> ARGS`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.state_root).args(args);
        c.current_dir(&self.bundle);
        c.stdin(Stdio::null());
        c
    }

    /// Runs quai-runtime with stdout and stderr captured in files rather
    /// than pipes: a detached container inherits them and would keep a pipe
    /// open (and `output()` waiting) for as long as it runs.
    pub fn rt(&self, args: &[&str]) -> Output {
        run_captured(self.cmd(args), self.tmp.path())
    }

    /// Runs and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.rt(args);
        assert!(
            out.status.success(),
            "quai-runtime {args:?} failed ({:?}): {}",
            out.status,
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state is JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits (without asserting on time) until `id` reaches `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Until `create` made it, the container does not exist yet.
            let out = self.rt(&["state", id]);
            let current = serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v["status"].as_str().map(String::from));
            if current.as_deref() == Some(status) {
                return;
            }
            assert!(Instant::now() < deadline, "{id} never became {status}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.state_root.join(id)
    }

    /// Runs the container to completion and returns (exit code, stdout, stderr).
    pub fn run(&self, id: &str) -> (i32, String, String) {
        let out = self.rt(&["run", "--bundle", self.bundle.to_str().unwrap(), id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr(&out),
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Whatever a failed assertion left running goes away.
        if let Ok(out) = self.cmd(&["list", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.cmd(&["delete", "--force", id]).output();
            }
        }
    }
}

pub fn run_captured(mut cmd: Command, dir: &Path) -> Output {
    let name = quai_testutil::unique_name("out");
    let out_path = dir.join(format!("{name}.stdout"));
    let err_path = dir.join(format!("{name}.stderr"));
    cmd.stdout(fs::File::create(&out_path).unwrap());
    cmd.stderr(fs::File::create(&err_path).unwrap());
    let status = cmd.status().expect("run quai-runtime");
    let output = Output {
        status,
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    output
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Mount points at or below `path` in this process' mount namespace.
pub fn mounts_below(path: &Path) -> Vec<String> {
    let prefix = path.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(&prefix))
        .map(String::from)
        .collect()
}
