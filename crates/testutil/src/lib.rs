//! Fixtures for integration tests. Tests run as root against the real kernel,
//! in parallel, so every fixture hands out private directories and names that
//! no other test (or a concurrent run of the suite) can collide with.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where Debian's `busybox-static` package installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Panics with a clear message unless the test runs as root: integration
/// tests need namespaces, mounts and cgroups, and must fail loudly, not skip,
/// when they cannot test anything.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "integration tests must run as root (see README: make test)"
    );
}

/// A name unique to this process and call, short enough for a network
/// interface (15 bytes) when `prefix` has at most 4 bytes.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{:x}", std::process::id(), n)
}

/// A temporary directory removed when dropped. Mounts below it are detached
/// first so that a failed test cannot leave the host with stray mounts.
pub struct TempRoot {
    dir: Option<tempfile::TempDir>,
}

impl TempRoot {
    pub fn new(prefix: &str) -> TempRoot {
        let dir = tempfile::Builder::new()
            .prefix(&format!("quai-test-{prefix}-"))
            .tempdir_in(std::env::temp_dir())
            .expect("create temporary test directory");
        TempRoot { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("temp root present").path()
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            unmount_below(dir.path());
            let _ = dir.close();
        }
    }
}

/// Lazily detaches every mount at or below `path`, deepest first.
pub fn unmount_below(path: &Path) {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = path.to_string_lossy().into_owned();
    let mut targets: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|t| t == &prefix || t.starts_with(&format!("{prefix}/")))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = Command::new("umount").arg("-l").arg(&t).status();
    }
}

fn unescape_mountinfo(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Builds a minimal root file system at `root`: a static busybox with a link
/// per applet, the usual top-level directories, and `/etc/passwd` and
/// `/etc/group` with root, `nobody` and a user `1000` to test `user` fields.
pub fn busybox_rootfs(root: &Path) -> io::Result<()> {
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home",
        "var", "run",
    ] {
        fs::create_dir_all(root.join(dir))?;
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::copy(BUSYBOX, root.join("bin/busybox"))?;
    let list = Command::new(BUSYBOX).arg("--list-full").output()?;
    if !list.status.success() {
        return Err(io::Error::other("busybox --list-full failed"));
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = root.join(applet);
        if link.exists() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink("/bin/busybox", &link)?;
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         user:x:1000:1000:user:/home/user:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(
        root.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nextra:x:2000:user\nnogroup:x:65534:\n",
    )?;
    Ok(())
}

/// Path of the `quai` binary that cargo built for this test run, for tests
/// outside the `quai` package (which get `CARGO_BIN_EXE_quai` directly).
pub fn quai_binary() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_quai") {
        return PathBuf::from(p);
    }
    let mut exe = std::env::current_exe().expect("current test executable");
    exe.pop();
    if exe.ends_with("deps") {
        exe.pop();
    }
    exe.join("quai")
}

/// A reference data file committed under `tests/fixtures/` at the top of the
/// workspace (copies of public reference data, see its README). Panics when
/// it cannot be found: a test that compares against it must not pass without it.
pub fn shared_reference(name: &str) -> PathBuf {
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .map(|dir| dir.join("tests/fixtures").join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("tests/fixtures/{name} not found above {}", start.display()))
}

pub mod dockerd;
pub mod netns;
