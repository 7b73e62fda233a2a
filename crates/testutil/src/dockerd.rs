//! A private dockerd (Debian's docker.io) for interop tests: its own data
//! root, exec root, pid file and socket under a directory of the test, no
//! bridge and no iptables rules. Stopped by its pid when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dockerd {
    child: Option<Child>,
    sock: PathBuf,
}

impl Dockerd {
    /// Starts dockerd with its state in `dir` and waits (2 minutes at
    /// most) until it answers.
    pub fn start(dir: &Path) -> Dockerd {
        fs::create_dir_all(dir).unwrap();
        let sock = dir.join("docker.sock");
        let log = fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd (Debian package docker.io)");
        let d = Dockerd {
            child: Some(child),
            sock,
        };
        let start = Instant::now();
        while !d
            .docker()
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "dockerd did not come up (see {}/dockerd.log)",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    /// A `docker` command talking to this dockerd (classic builder).
    pub fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H").arg(format!("unix://{}", self.sock.display()));
        c.env("DOCKER_BUILDKIT", "0");
        c
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
