//! Fixtures shared by the registry tests: a `quai registry serve` process,
//! Debian's `docker-registry`, test images built with umoci, and a small
//! async HTTP helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use quai_testutil::busybox_rootfs;

pub const QUAI: &str = env!("CARGO_BIN_EXE_quai");

/// A child process ended by pid when the test ends, however it ends.
pub struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    pub fn from_child(child: Child) -> Daemon {
        Daemon { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the process now (SIGKILL: no chance to tidy up).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `quai registry serve` on a free loopback port.
pub struct QuaiRegistry {
    pub daemon: Daemon,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl QuaiRegistry {
    pub fn start(root: &Path, extra: &[&str]) -> QuaiRegistry {
        QuaiRegistry::start_on(root, "127.0.0.1:0", extra)
    }

    pub fn start_on(root: &Path, listen: &str, extra: &[&str]) -> QuaiRegistry {
        let mut child = Command::new(QUAI)
            .args(["registry", "serve", "--listen", listen, "--root"])
            .arg(root)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start quai registry serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let daemon = Daemon { child };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .rsplit("//")
            .next()
            .filter(|a| a.contains(':'))
            .unwrap_or_else(|| panic!("quai registry serve did not start: {line:?}"))
            .to_string();
        QuaiRegistry { daemon, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A loopback port free right now (for servers that cannot report theirs).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Runs a command, panicking with its output unless it succeeds; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds an OCI layout at `dir` holding `NAME:TAG` = a busybox rootfs (one
/// layer) plus, when `extra_layer` is set, a second layer with that file.
pub fn build_busybox_image(dir: &Path, tag: &str, extra_layer: Option<(&str, &str)>) -> PathBuf {
    let layout = dir.join("layout");
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs).expect("busybox rootfs");
    let image = format!("{}:{tag}", layout.display());
    run_ok(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout),
    );
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(
        Command::new("umoci")
            .args(["insert", "--image", &image])
            .arg(&rootfs)
            .arg("/"),
    );
    if let Some((name, content)) = extra_layer {
        let extra = dir.join("extra");
        std::fs::create_dir_all(&extra).expect("extra dir");
        std::fs::write(extra.join(name), content).expect("extra file");
        run_ok(
            Command::new("umoci")
                .args(["insert", "--image", &image])
                .arg(extra.join(name))
                .arg(format!("/{name}")),
        );
    }
    run_ok(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "PATH=/bin:/sbin:/usr/bin:/usr/sbin",
    ]));
    layout
}

/// `skopeo inspect --raw` digest (of the manifest as the registry serves it).
pub fn skopeo_digest(reference: &str, extra: &[&str]) -> String {
    let out = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .args(extra)
            .arg(reference),
    );
    out.trim().to_string()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub fn sha256_hex(data: &[u8]) -> String {
    quai_registry::Digest::of(data).hex().to_string()
}
pub mod fake;
