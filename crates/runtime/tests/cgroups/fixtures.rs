//! Test cgroups that clean up after themselves, and processes that join a
//! cgroup before they run anything.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use quai_runtime::cgroups::{Cgroup, Layout};
use quai_testutil::{require_root, unique_name, BUSYBOX};

/// A uniquely named cgroup `quai-test-…/ctr`, removed with its parent (and
/// every process the test started in it) when dropped, even after a panic.
pub struct Scratch {
    pub cg: Cgroup,
    /// The `quai-test-…` level (v1/hybrid scratch cgroups).
    parent: Option<Cgroup>,
    /// A directory the fixture created to stand for the runtime's own
    /// cgroup (v2 scratch cgroups), removed last.
    own_dir: Option<PathBuf>,
    children: Vec<Child>,
}

impl Scratch {
    /// A cgroup on the host's real layout: below the test process's own
    /// cgroups on v1/hybrid hosts, or as [`Scratch::unified`] on v2 hosts.
    pub fn host() -> Scratch {
        require_root();
        let layout = Layout::detect().expect("detect cgroup layout");
        if matches!(layout, Layout::Unified(_)) {
            return Scratch::unified();
        }
        let name = unique_name("quai-test-");
        let cg = Cgroup::new(&layout, Some(&format!("{name}/ctr")), "ctr").unwrap();
        let parent = Cgroup::new(&layout, Some(&name), "parent").unwrap();
        Scratch {
            cg,
            parent: Some(parent),
            own_dir: None,
            children: Vec::new(),
        }
    }

    /// A cgroup in the host's real cgroup2 tree (the only tree on a v2 host,
    /// `/sys/fs/cgroup/unified` on a hybrid one), seen through a unified
    /// layout. The fixture creates a directory to act as the runtime's own
    /// cgroup, so that enabling controllers never touches the tree's root.
    pub fn unified() -> Scratch {
        require_root();
        let host = Layout::detect().expect("detect cgroup layout");
        let mount = host
            .unified()
            .expect("this host has no cgroup2 tree")
            .mount_point
            .clone();
        let name = unique_name("quai-test-");
        let own = mount.join(&name);
        fs::create_dir(&own).expect("create the test's own cgroup2 directory");
        let layout = Layout::unified_at(&mount, format!("/{name}"));
        let cg = Cgroup::new(&layout, Some("ctr"), "ctr").unwrap();
        Scratch {
            cg,
            parent: None,
            own_dir: Some(own),
            children: Vec::new(),
        }
    }

    /// Starts `busybox sh -c SCRIPT` inside the cgroup: the shell waits for
    /// a line on stdin, which is sent once the process has joined.
    pub fn spawn(&mut self, script: &str) -> i32 {
        self.spawn_with(script, Stdio::null())
    }

    pub fn spawn_with(&mut self, script: &str, output: Stdio) -> i32 {
        let pid = spawn_in(&self.cg, script, output);
        self.children.push(pid.1);
        pid.0
    }

    /// The child started by `spawn` with this pid (to wait for it).
    pub fn child(&mut self, pid: i32) -> &mut Child {
        self.children
            .iter_mut()
            .find(|c| c.id() as i32 == pid)
            .expect("a child of this scratch cgroup")
    }
}

/// Starts a shell that joins `cg` before running `script`.
pub fn spawn_in(cg: &Cgroup, script: &str, output: Stdio) -> (i32, Child) {
    let mut child = Command::new(BUSYBOX)
        .args(["sh", "-c", &format!("read _go; {script}")])
        .stdin(Stdio::piped())
        .stdout(output)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn busybox sh");
    let pid = child.id() as i32;
    if let Err(e) = cg.add_process(pid) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("add process {pid} to the test cgroup: {e}");
    }
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"go\n").expect("release the child");
    (pid, child)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(e) = self.cg.kill_and_destroy() {
            eprintln!("cleanup of test cgroup failed: {e}");
        }
        if let Some(parent) = &self.parent {
            if let Err(e) = parent.destroy() {
                eprintln!("cleanup of test cgroup parent failed: {e}");
            }
        }
        if let Some(own) = &self.own_dir {
            let _ = fs::remove_dir(own);
        }
    }
}

/// Polls `cond` every 10 ms until it holds or `secs` pass; the deadline only
/// bounds a hung test, no result depends on how fast things happen.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        sleep(Duration::from_millis(10));
    }
    cond()
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after_comm = &stat[stat.rfind(')').expect("comm in stat") + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // Fields 14 and 15 of stat(5); after the comm, state is field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

pub fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

pub fn resources(json: &str) -> oci_spec::runtime::LinuxResources {
    serde_json::from_str(json).expect("test resources parse")
}
