//! Kernel-level tests of the rootfs module (run as root).
//!
//! Forking from a multi-threaded test harness is unsafe, so this target has
//! `harness = false`: `main` runs the cases one after another. Each case
//! builds a busybox bundle in its own temporary directory, then re-executes
//! this binary with `QUAI_ROOTFS_BUNDLE` set; that child unshares a mount
//! namespace, runs `validate`/`prepare`/`enter`/`finalize` on the bundle and
//! execs busybox in the new root to print what a container sees. The parent
//! checks the output, and checks that no mount leaked into its own (the
//! host's) namespace. The child's mounts die with its namespace.
//!
//! `cargo test -p quai-runtime --test rootfs [SUBSTRING]` runs the cases
//! whose names contain SUBSTRING.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::runtime::Spec;
use quai_runtime::rootfs::{self, RootfsOptions};
use quai_runtime::safe_path;
use quai_testutil::{busybox_rootfs, require_root, TempRoot};
use rustix::fs::OFlags;
use rustix::mount::{mount_change, MountPropagationFlags};
use rustix::thread::UnshareFlags;
use serde_json::{json, Value};

type CaseResult = Result<(), String>;
type Case = (&'static str, fn() -> CaseResult);

const BUNDLE_ENV: &str = "QUAI_ROOTFS_BUNDLE";

fn main() {
    if let Ok(bundle) = std::env::var(BUNDLE_ENV) {
        child(Path::new(&bundle));
    }
    require_root();
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in CASES {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let result = case();
        match &result {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                println!("test {name} ... FAILED\n    {}", e.replace('\n', "\n    "));
                failed.push(*name);
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        println!("failures: {}", failed.join(", "));
        std::process::exit(1);
    }
}

/// Lists cases by function name; the name is what filters match.
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        &[$((stringify!($case), $case as fn() -> CaseResult)),*]
    };
}

const CASES: &[Case] = cases![
    container_root_devices_and_links,
    linux_devices_are_created,
    planted_device_files_are_replaced,
    tmpfs_options_are_applied,
    tmpfs_keeps_existing_directory_mode,
    bind_mounts_with_flags,
    idmapped_bind_made_in_place,
    recursive_bind_attributes,
    mount_propagation_options,
    rootfs_propagation_values,
    remount_changes_an_existing_mount,
    readonly_root,
    delayed_readonly_dev_and_tmpfs,
    masked_and_readonly_paths,
    no_pivot_moves_root_and_chroots,
    cgroup_mount_without_namespace,
    cgroup_mount_with_namespace,
    readonly_path_on_the_cgroup_tmpfs,
    console_before_and_after_enter,
    user_namespace_binds_devices,
    user_namespace_keeps_locked_flags,
    bad_options_report_the_kernel_reason,
    escape_symlinked_mount_destination,
    escape_dangling_symlink_file_destination,
    escape_destination_resolving_to_root,
    escape_planted_proc_symlink,
    escape_planted_proc_directory,
    escape_mount_into_procfs_through_symlink,
    escape_fake_dev_null_file,
    escape_dev_null_symlink,
    escape_dev_console_symlink,
    escape_dev_symlink_for_console,
];

// ---------------------------------------------------------------------------
// Fixture: a bundle, a run of the child, the outcome.

struct Fixture {
    tmp: TempRoot,
    bundle: PathBuf,
    rootfs: PathBuf,
}

#[derive(Default)]
struct Knobs {
    no_pivot: bool,
    /// Set up the console "before" or "after" enter.
    console: Option<&'static str>,
    cgroupns: bool,
    /// A tmpfs mounted at this host path (in the child's namespace) before prepare.
    pre_mount: Option<PathBuf>,
    /// Open /proc/sys/kernel/hostname through `open_on_pseudo_fs` after enter.
    probe_proc: bool,
    /// Run as root of a new user namespace (uid 0 mapped to itself), where
    /// mknod is refused and inherited mounts have locked flags. The
    /// pre-mount, if any, is made `ro,nosuid` before the user namespace.
    userns: bool,
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn ok(&self) -> CaseResult {
        if self.code == Some(0) {
            Ok(())
        } else {
            Err(format!(
                "child exited with {:?}\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            ))
        }
    }

    /// The step error of a child that was expected to fail.
    fn failure(&self) -> Result<&str, String> {
        if self.code == Some(3) {
            Ok(self.stderr.as_str())
        } else {
            Err(format!(
                "expected a step to fail, child exited with {:?}\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            ))
        }
    }

    fn section(&self, n: usize) -> &str {
        self.stdout.split("---\n").nth(n).unwrap_or("")
    }
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let tmp = TempRoot::new(name);
        let bundle = tmp.path().to_path_buf();
        let rootfs = bundle.join("rootfs");
        busybox_rootfs(&rootfs).expect("build busybox rootfs");
        Fixture {
            tmp,
            bundle,
            rootfs,
        }
    }

    fn run(&self, config: &Value, script: &str, knobs: &Knobs) -> Outcome {
        fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(config).expect("serialize config"),
        )
        .expect("write config.json");
        fs::write(self.bundle.join("script.sh"), script).expect("write script");
        let mut cmd = Command::new(std::env::current_exe().expect("test binary path"));
        cmd.env(BUNDLE_ENV, &self.bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if knobs.no_pivot {
            cmd.env("QUAI_ROOTFS_NO_PIVOT", "1");
        }
        if let Some(when) = knobs.console {
            cmd.env("QUAI_ROOTFS_CONSOLE", when);
        }
        if knobs.cgroupns {
            cmd.env("QUAI_ROOTFS_CGROUPNS", "1");
        }
        if let Some(path) = &knobs.pre_mount {
            cmd.env("QUAI_ROOTFS_PRE_MOUNT", path);
        }
        if knobs.probe_proc {
            cmd.env("QUAI_ROOTFS_PROBE_PROC", "1");
        }
        if knobs.userns {
            cmd.env("QUAI_ROOTFS_USERNS", "1");
        }
        let out = cmd.output().expect("run the child");
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Nothing the child mounted may show up in the host's namespace.
    fn no_host_leak(&self) -> CaseResult {
        let info = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let prefix = self.tmp.path().to_string_lossy().into_owned();
        let leaked: Vec<&str> = info.lines().filter(|l| l.contains(&prefix)).collect();
        if leaked.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "mounts leaked into the host namespace:\n{}",
                leaked.join("\n")
            ))
        }
    }
}

fn standard_mounts() -> Vec<Value> {
    vec![
        json!({"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]}),
        json!({"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}),
        json!({"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]}),
        json!({"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]}),
        json!({"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]}),
        json!({"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}),
    ]
}

fn config_with(mounts: Vec<Value>, linux: Value) -> Value {
    json!({"ociVersion":"1.0.2","root":{"path":"rootfs"},"mounts":mounts,"linux":linux})
}

fn standard_config(extra: Vec<Value>, linux: Value) -> Value {
    let mut mounts = standard_mounts();
    mounts.extend(extra);
    config_with(mounts, linux)
}

const MOUNTINFO: &str = "cat /proc/self/mountinfo\n";

/// A mount seen in the container's mountinfo (the last one at `point`).
struct SeenMount {
    options: Vec<String>,
    optional: Vec<String>,
    fstype: String,
    super_options: Vec<String>,
}

fn mount_at(mountinfo: &str, point: &str) -> Option<SeenMount> {
    mountinfo.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        if left.get(4) != Some(&point) {
            return None;
        }
        let mut right = right.split(' ');
        Some(SeenMount {
            options: left.get(5)?.split(',').map(str::to_string).collect(),
            optional: left[6..].iter().map(|s| s.to_string()).collect(),
            fstype: right.next()?.to_string(),
            super_options: right
                .nth(1)
                .unwrap_or("")
                .split(',')
                .map(str::to_string)
                .collect(),
        })
    })
}

fn expect_mount(mountinfo: &str, point: &str) -> Result<SeenMount, String> {
    mount_at(mountinfo, point).ok_or_else(|| format!("no mount at {point} in:\n{mountinfo}"))
}

fn has(list: &[String], word: &str) -> bool {
    list.iter().any(|w| w == word)
}

fn check(cond: bool, what: impl FnOnce() -> String) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn expect_lines(out: &Outcome, lines: &[&str]) -> CaseResult {
    lines.iter().try_for_each(|line| expect_line(out, line))
}

fn expect_line(out: &Outcome, line: &str) -> CaseResult {
    check(out.stdout.lines().any(|l| l.trim() == line), || {
        format!(
            "expected the line {line:?} in:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        )
    })
}

// ---------------------------------------------------------------------------
// The child side.

fn child(bundle: &Path) -> ! {
    // Read now: the bundle is out of reach once the root has changed.
    let script = fs::read_to_string(bundle.join("script.sh")).unwrap_or_default();
    let mut console_master = None;
    let result = run_steps(bundle, &mut console_master);
    match result {
        Err(e) => {
            eprintln!("STEP FAILED: {e}");
            std::process::exit(3);
        }
        Ok(()) => {
            let err = Command::new("/bin/busybox")
                .args(["sh", "-c", &script])
                .env_clear()
                .env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
                .exec();
            eprintln!("exec busybox in the new root: {err}");
            std::process::exit(4);
        }
    }
}

fn run_steps(
    bundle: &Path,
    console_master: &mut Option<std::os::fd::OwnedFd>,
) -> Result<(), String> {
    let userns = std::env::var_os("QUAI_ROOTFS_USERNS").is_some();
    let mut flags = UnshareFlags::NEWNS;
    if std::env::var_os("QUAI_ROOTFS_CGROUPNS").is_some() {
        flags |= UnshareFlags::NEWCGROUP;
    }
    // SAFETY: this process is single-threaded (harness = false, no thread
    // was started) and FILES is not among the flags.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(|e| format!("unshare: {e}"))?;
    // Keep the test's own mounts (below) from propagating to the host.
    mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| format!("make / rslave: {e}"))?;
    if let Some(path) = std::env::var_os("QUAI_ROOTFS_PRE_MOUNT") {
        let flags = if userns {
            rustix::mount::MountFlags::RDONLY | rustix::mount::MountFlags::NOSUID
        } else {
            rustix::mount::MountFlags::empty()
        };
        rustix::mount::mount("tmpfs", &path, "tmpfs", flags, None)
            .map_err(|e| format!("pre-mount tmpfs: {e}"))?;
    }
    if userns {
        enter_user_namespace()?;
    }
    let text = fs::read_to_string(bundle.join("config.json")).map_err(|e| e.to_string())?;
    let spec: Spec = serde_json::from_str(&text).map_err(|e| format!("config: {e}"))?;
    let rootfs = bundle.join("rootfs");
    let opts = RootfsOptions {
        no_pivot: std::env::var_os("QUAI_ROOTFS_NO_PIVOT").is_some(),
        bundle: Some(bundle.to_path_buf()),
        host_mount_namespace: false,
        idmapped_trees: Vec::new(),
    };
    let console = std::env::var("QUAI_ROOTFS_CONSOLE").ok();
    rootfs::validate(&spec, bundle).map_err(|e| format!("validate: {e}"))?;
    rootfs::prepare(&spec, &rootfs, &opts).map_err(|e| format!("prepare: {e}"))?;
    if console.as_deref() == Some("before") {
        *console_master = Some(console_step()?);
    }
    rootfs::enter(&rootfs, &opts).map_err(|e| format!("enter: {e}"))?;
    if console.as_deref() == Some("after") {
        *console_master = Some(console_step()?);
    }
    if std::env::var_os("QUAI_ROOTFS_PROBE_PROC").is_some() {
        let root = rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| e.to_string())?;
        match safe_path::open_on_pseudo_fs(
            root.as_fd(),
            Path::new("/proc/sys/kernel/hostname"),
            OFlags::RDONLY,
        ) {
            Ok(_) => println!("probe: procfs"),
            Err(e) => println!("probe: refused: {e}"),
        }
    }
    rootfs::finalize(&spec, &opts).map_err(|e| format!("finalize: {e}"))?;
    Ok(())
}

/// Becomes root of a new user namespace (mapping only our own ids, which
/// needs no privilege), then of a new mount namespace owned by it: every
/// inherited mount now has its flags locked.
fn enter_user_namespace() -> Result<(), String> {
    // SAFETY: single-threaded process; FILES is not among the flags.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER) }
        .map_err(|e| format!("unshare user: {e}"))?;
    fs::write("/proc/self/setgroups", "deny").map_err(|e| format!("setgroups: {e}"))?;
    fs::write("/proc/self/uid_map", "0 0 1").map_err(|e| format!("uid_map: {e}"))?;
    fs::write("/proc/self/gid_map", "0 0 1").map_err(|e| format!("gid_map: {e}"))?;
    // SAFETY: as above.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }
        .map_err(|e| format!("unshare mount: {e}"))
}

fn console_step() -> Result<std::os::fd::OwnedFd, String> {
    let (master, slave) = rootfs::open_pty().map_err(|e| format!("open_pty: {e}"))?;
    rootfs::setup_console(slave.as_fd()).map_err(|e| format!("setup_console: {e}"))?;
    Ok(master)
}

// ---------------------------------------------------------------------------
// Cases: what a container sees.

fn container_root_devices_and_links() -> CaseResult {
    let f = Fixture::new("basic");
    let out = f.run(
        &standard_config(vec![], json!({})),
        "cat /proc/self/mountinfo; echo ---
         stat -c '%n %F %t:%T %a %u:%g' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; echo ---
         for l in ptmx fd stdin stdout stderr; do echo \"$l -> $(readlink /dev/$l)\"; done; echo ---
         ls /; echo ---
         echo hi > /dev/null && head -c 4 /dev/zero | wc -c",
        &Knobs::default(),
    );
    out.ok()?;
    f.no_host_leak()?;
    let info = out.section(0);
    check(expect_mount(info, "/proc")?.fstype == "proc", || {
        "proc".into()
    })?;
    let dev = expect_mount(info, "/dev")?;
    check(dev.fstype == "tmpfs" && has(&dev.options, "nosuid"), || {
        "dev".into()
    })?;
    let pts = expect_mount(info, "/dev/pts")?;
    check(
        pts.fstype == "devpts" && has(&pts.super_options, "ptmxmode=666"),
        || format!("devpts options {:?}", pts.super_options),
    )?;
    let sys = expect_mount(info, "/sys")?;
    check(sys.fstype == "sysfs" && has(&sys.options, "ro"), || {
        "sysfs ro".into()
    })?;
    check(
        expect_mount(info, "/dev/mqueue")?.fstype == "mqueue",
        || "mqueue".into(),
    )?;
    check(expect_mount(info, "/dev/shm")?.fstype == "tmpfs", || {
        "shm".into()
    })?;
    expect_mount(info, "/")?;
    // The old root is gone: every mount point is the container's.
    let host_tmp = f.tmp.path().to_string_lossy().into_owned();
    check(
        !info.lines().any(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|p| p.starts_with(&host_tmp) || p == "/work")
        }),
        || format!("the old root is still visible:\n{info}"),
    )?;
    expect_lines(
        &out,
        &[
            "/dev/null character special file 1:3 666 0:0",
            "/dev/zero character special file 1:5 666 0:0",
            "/dev/full character special file 1:7 666 0:0",
            "/dev/random character special file 1:8 666 0:0",
            "/dev/urandom character special file 1:9 666 0:0",
            "/dev/tty character special file 5:0 666 0:0",
            "ptmx -> pts/ptmx",
            "fd -> /proc/self/fd",
            "stdin -> /proc/self/fd/0",
            "stdout -> /proc/self/fd/1",
            "stderr -> /proc/self/fd/2",
            "4",
        ],
    )?;
    let listing = out.section(3);
    check(
        listing.lines().any(|l| l == "bin") && !listing.lines().any(|l| l == "work"),
        || format!("ls / shows the wrong root:\n{listing}"),
    )
}

fn linux_devices_are_created() -> CaseResult {
    let f = Fixture::new("devices");
    let linux = json!({"devices":[
        {"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":0o600,"uid":1000,"gid":2000},
        {"path":"/dev/loop-test","type":"b","major":7,"minor":0,"fileMode":0o660},
        {"path":"/dev/myfifo","type":"p"},
        {"path":"/dev/net/tun","type":"c","major":10,"minor":200},
        {"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":0o600}
    ]});
    let out = f.run(
        &standard_config(vec![], linux),
        "stat -c '%n %F %t:%T %a %u:%g' /dev/fuse /dev/loop-test /dev/myfifo /dev/net/tun /dev/null",
        &Knobs::default(),
    );
    out.ok()?;
    f.no_host_leak()?;
    expect_lines(
        &out,
        &[
            "/dev/fuse character special file a:e5 600 1000:2000",
            "/dev/loop-test block special file 7:0 660 0:0",
            "/dev/myfifo fifo 0:0 666 0:0",
            "/dev/net/tun character special file a:c8 666 0:0",
            "/dev/null character special file 1:3 600 0:0",
        ],
    )?;
    Ok(())
}

fn planted_device_files_are_replaced() -> CaseResult {
    // No /dev tmpfs: devices are created in the image's own /dev, where the
    // image planted a regular file and a symlink to a host path.
    let f = Fixture::new("planted-dev");
    fs::write(f.rootfs.join("dev/null"), "not a device").map_err(|e| e.to_string())?;
    symlink("/etc/passwd", f.rootfs.join("dev/zero")).map_err(|e| e.to_string())?;
    let mounts = vec![json!({"destination":"/proc","type":"proc","source":"proc"})];
    let out = f.run(
        &config_with(mounts, json!({})),
        "stat -c '%n %F %t:%T' /dev/null /dev/zero; cat /etc/passwd | head -1",
        &Knobs::default(),
    );
    out.ok()?;
    expect_line(&out, "/dev/null character special file 1:3")?;
    expect_line(&out, "/dev/zero character special file 1:5")?;
    expect_line(&out, "root:x:0:0:root:/root:/bin/sh")
}

fn tmpfs_options_are_applied() -> CaseResult {
    let f = Fixture::new("tmpfs");
    let extra = vec![
        json!({"destination":"/data","type":"tmpfs","source":"tmpfs","options":["nosuid","nodev","noexec","noatime","size=1m","mode=700"]}),
        json!({"destination":"/rodata","type":"tmpfs","source":"tmpfs","options":["ro","nodiratime","strictatime"]}),
        json!({"destination":"/syncdata","type":"tmpfs","source":"tmpfs","options":["sync","dirsync","nosymfollow"]}),
    ];
    let out = f.run(
        &standard_config(extra, json!({})),
        "cat /proc/self/mountinfo; echo ---
         stat -c 'mode %a' /data
         touch /rodata/x 2>/dev/null && echo rodata-writable || echo rodata-refused",
        &Knobs::default(),
    );
    out.ok()?;
    f.no_host_leak()?;
    let info = out.section(0);
    let data = expect_mount(info, "/data")?;
    for o in ["nosuid", "nodev", "noexec", "noatime"] {
        check(has(&data.options, o), || {
            format!("/data lacks {o}: {:?}", data.options)
        })?;
    }
    check(has(&data.super_options, "size=1024k"), || {
        format!("{:?}", data.super_options)
    })?;
    expect_line(&out, "mode 700")?;
    let ro = expect_mount(info, "/rodata")?;
    check(
        has(&ro.options, "ro") && has(&ro.options, "nodiratime") && !has(&ro.options, "relatime"),
        || format!("/rodata options {:?}", ro.options),
    )?;
    expect_line(&out, "rodata-refused")?;
    let sync = expect_mount(info, "/syncdata")?;
    check(
        has(&sync.super_options, "sync") && has(&sync.super_options, "dirsync"),
        || format!("/syncdata super options {:?}", sync.super_options),
    )?;
    check(has(&sync.options, "nosymfollow"), || {
        format!("{:?}", sync.options)
    })
}

fn tmpfs_keeps_existing_directory_mode() -> CaseResult {
    let f = Fixture::new("tmpfs-mode");
    for (dir, mode) in [("keep", 0o711), ("override", 0o711)] {
        fs::create_dir(f.rootfs.join(dir)).map_err(|e| e.to_string())?;
        fs::set_permissions(f.rootfs.join(dir), fs::Permissions::from_mode(mode))
            .map_err(|e| e.to_string())?;
    }
    let extra = vec![
        json!({"destination":"/keep","type":"tmpfs","source":"tmpfs"}),
        json!({"destination":"/override","type":"tmpfs","source":"tmpfs","options":["mode=750"]}),
        json!({"destination":"/fresh","type":"tmpfs","source":"tmpfs"}),
    ];
    let out = f.run(
        &standard_config(extra, json!({})),
        "stat -c '%n %a' /keep /override /fresh",
        &Knobs::default(),
    );
    out.ok()?;
    expect_line(&out, "/keep 711")?;
    expect_line(&out, "/override 750")?;
    expect_line(&out, "/fresh 1777")
}

fn bind_mounts_with_flags() -> CaseResult {
    let f = Fixture::new("bind");
    let src = f.bundle.join("src");
    fs::create_dir(&src).map_err(|e| e.to_string())?;
    fs::write(src.join("hello"), "hello from the host\n").map_err(|e| e.to_string())?;
    fs::write(f.bundle.join("file.txt"), "a file\n").map_err(|e| e.to_string())?;
    let extra = vec![
        json!({"destination":"/mnt/ro","type":"none","source":src,"options":["bind","ro","nosuid","nodev"]}),
        json!({"destination":"/mnt/rel","type":"bind","source":"src","options":["rbind"]}),
        json!({"destination":"/etc/bound.txt","type":"bind","source":"file.txt","options":["ro"]}),
    ];
    let out = f.run(
        &standard_config(extra, json!({})),
        "cat /proc/self/mountinfo; echo ---
         cat /mnt/ro/hello /mnt/rel/hello /etc/bound.txt
         touch /mnt/ro/x 2>/dev/null && echo ro-writable || echo ro-refused
         echo more >> /etc/bound.txt 2>/dev/null && echo file-writable || echo file-refused
         touch /mnt/rel/fromcontainer && echo rel-writable",
        &Knobs::default(),
    );
    out.ok()?;
    f.no_host_leak()?;
    let info = out.section(0);
    let ro = expect_mount(info, "/mnt/ro")?;
    check(
        has(&ro.options, "ro") && has(&ro.options, "nosuid") && has(&ro.options, "nodev"),
        || format!("/mnt/ro options {:?}", ro.options),
    )?;
    check(
        has(&expect_mount(info, "/etc/bound.txt")?.options, "ro"),
        || "bound file not ro".into(),
    )?;
    expect_lines(
        &out,
        &[
            "hello from the host",
            "a file",
            "ro-refused",
            "file-refused",
            "rel-writable",
        ],
    )?;
    check(src.join("fromcontainer").exists(), || {
        "the rw bind does not reach the host directory".into()
    })
}

/// `prepare` called without trees made by the runtime (a library caller
/// with full privileges) maps the bind itself.
fn idmapped_bind_made_in_place() -> CaseResult {
    let f = Fixture::new("idmap");
    let src = f.bundle.join("idsrc");
    fs::create_dir(&src).map_err(|e| e.to_string())?;
    fs::write(src.join("owned"), "x").map_err(|e| e.to_string())?;
    std::os::unix::fs::chown(src.join("owned"), Some(1003), Some(1004))
        .map_err(|e| e.to_string())?;
    let map = json!([{"containerID": 1000, "hostID": 0, "size": 10}]);
    let extra = vec![json!({"destination":"/mnt/idm","type":"bind","source":src,
        "options":["bind","idmap"],"uidMappings":map,"gidMappings":map})];
    let out = f.run(
        &standard_config(extra, json!({})),
        "stat -c '%u:%g' /mnt/idm/owned",
        &Knobs::default(),
    );
    out.ok()?;
    f.no_host_leak()?;
    expect_line(&out, "3:4")
}

fn recursive_bind_attributes() -> CaseResult {
    let f = Fixture::new("rbind");
    let src = f.bundle.join("src");
    fs::create_dir_all(src.join("sub")).map_err(|e| e.to_string())?;
    let extra = vec![
        json!({"destination":"/r1","type":"bind","source":src,"options":["rbind","rro","rnosuid"]}),
        json!({"destination":"/r2","type":"bind","source":src,"options":["rbind","ro"]}),
        json!({"destination":"/r3","type":"bind","source":src,"options":["bind"]}),
    ];
    let out = f.run(
        &standard_config(extra, json!({})),
        "cat /proc/self/mountinfo; echo ---
         touch /r1/sub/x 2>/dev/null && echo r1-writable || echo r1-refused
         touch /r2/sub/x 2>/dev/null && echo r2-sub-writable || echo r2-sub-refused
         touch /r2/x 2>/dev/null && echo r2-writable || echo r2-refused",
        &Knobs {
            pre_mount: Some(src.join("sub")),
            ..Knobs::default()
        },
    );
    out.ok()?;
    f.no_host_leak()?;
    let info = out.section(0);
    let r1sub = expect_mount(info, "/r1/sub")?;
    check(
        has(&r1sub.options, "ro") && has(&r1sub.options, "nosuid"),
        || format!("/r1/sub options {:?}", r1sub.options),
    )?;
    check(!has(&expect_mount(info, "/r2/sub")?.options, "ro"), || {
        "plain ro must not reach submounts".into()
    })?;
    check(mount_at(info, "/r3/sub").is_none(), || {
        "a non-recursive bind carried a submount".into()
    })?;
    expect_line(&out, "r1-refused")?;
    expect_line(&out, "r2-sub-writable")?;
    expect_line(&out, "r2-refused")
}

fn mount_propagation_options() -> CaseResult {
    let f = Fixture::new("propagation");
    let src = f.bundle.join("src");
    fs::create_dir(&src).map_err(|e| e.to_string())?;
    let extra = vec![
        json!({"destination":"/p-shared","type":"bind","source":src,"options":["rbind","rshared"]}),
        json!({"destination":"/p-unbindable","type":"bind","source":src,"options":["rbind","unbindable"]}),
        json!({"destination":"/p-private","type":"tmpfs","source":"tmpfs","options":["shared","private"]}),
    ];
    let out = f.run(
        &standard_config(extra, json!({})),
        MOUNTINFO,
        &Knobs::default(),
    );
    out.ok()?;
    f.no_host_leak()?;
    let shared = expect_mount(&out.stdout, "/p-shared")?;
    check(
        shared.optional.iter().any(|o| o.starts_with("shared:")),
        || format!("/p-shared optional fields {:?}", shared.optional),
    )?;
    let unbindable = expect_mount(&out.stdout, "/p-unbindable")?;
    check(has(&unbindable.optional, "unbindable"), || {
        format!("/p-unbindable optional fields {:?}", unbindable.optional)
    })?;
    let private = expect_mount(&out.stdout, "/p-private")?;
    check(private.optional.is_empty(), || {
        format!("/p-private optional fields {:?}", private.optional)
    })
}

fn rootfs_propagation_values() -> CaseResult {
    for value in [
        "private",
        "rprivate",
        "slave",
        "rslave",
        "shared",
        "rshared",
        "unbindable",
        "runbindable",
    ] {
        let f = Fixture::new("rootprop");
        let out = f.run(
            &standard_config(vec![], json!({"rootfsPropagation": value})),
            MOUNTINFO,
            &Knobs::default(),
        );
        out.ok()
            .map_err(|e| format!("rootfsPropagation {value}: {e}"))?;
        f.no_host_leak()
            .map_err(|e| format!("rootfsPropagation {value}: {e}"))?;
        let root = expect_mount(&out.stdout, "/")?;
        let shows = |prefix: &str| root.optional.iter().any(|o| o.starts_with(prefix));
        let ok = match value {
            "shared" | "rshared" => shows("shared:"),
            "unbindable" | "runbindable" => shows("unbindable"),
            _ => !shows("shared:"),
        };
        check(ok, || {
            format!(
                "rootfsPropagation {value}: / has optional fields {:?}",
                root.optional
            )
        })?;
    }
    Ok(())
}

fn remount_changes_an_existing_mount() -> CaseResult {
    let f = Fixture::new("remount");
    let extra = vec![
        json!({"destination":"/data","type":"tmpfs","source":"tmpfs","options":["size=1m"]}),
        json!({"destination":"/data","options":["remount","ro","nosuid","size=2m"]}),
    ];
    let out = f.run(
        &standard_config(extra, json!({})),
        "cat /proc/self/mountinfo; echo ---
         touch /data/x 2>/dev/null && echo writable || echo refused",
        &Knobs::default(),
    );
    out.ok()?;
    let data = expect_mount(out.section(0), "/data")?;
    check(
        has(&data.options, "ro")
            && has(&data.options, "nosuid")
            && has(&data.super_options, "size=2048k"),
        || format!("/data {:?} {:?}", data.options, data.super_options),
    )?;
    expect_line(&out, "refused")
}

fn readonly_root() -> CaseResult {
    let f = Fixture::new("roroot");
    let mut config = standard_config(
        vec![json!({"destination":"/tmp","type":"tmpfs","source":"tmpfs"})],
        json!({}),
    );
    config["root"]["readonly"] = json!(true);
    let out = f.run(
        &config,
        "cat /proc/self/mountinfo; echo ---
         touch /x 2>/dev/null && echo root-writable || echo root-refused
         touch /tmp/x && echo tmp-writable",
        &Knobs::default(),
    );
    out.ok()?;
    check(
        has(&expect_mount(out.section(0), "/")?.options, "ro"),
        || "/ is not ro".into(),
    )?;
    expect_line(&out, "root-refused")?;
    expect_line(&out, "tmp-writable")
}

fn delayed_readonly_dev_and_tmpfs() -> CaseResult {
    let f = Fixture::new("delayed");
    let mut mounts = standard_mounts();
    mounts[1] = json!({"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","ro","mode=755"]});
    mounts.push(json!({"destination":"/ro","type":"tmpfs","source":"tmpfs","options":["ro"]}));
    // A mount inside a read-only tmpfs needs its mount point created first.
    mounts.push(json!({"destination":"/ro/inner","type":"tmpfs","source":"tmpfs"}));
    let out = f.run(
        &config_with(mounts, json!({})),
        "cat /proc/self/mountinfo; echo ---
         stat -c '%n %t:%T' /dev/null
         touch /dev/x 2>/dev/null && echo dev-writable || echo dev-refused
         touch /ro/x 2>/dev/null && echo ro-writable || echo ro-refused
         touch /ro/inner/x && echo inner-writable",
        &Knobs::default(),
    );
    out.ok()?;
    let info = out.section(0);
    check(has(&expect_mount(info, "/dev")?.options, "ro"), || {
        "/dev not ro".into()
    })?;
    check(has(&expect_mount(info, "/ro")?.options, "ro"), || {
        "/ro not ro".into()
    })?;
    expect_lines(
        &out,
        &[
            "/dev/null 1:3",
            "dev-refused",
            "ro-refused",
            "inner-writable",
        ],
    )?;
    Ok(())
}

fn masked_and_readonly_paths() -> CaseResult {
    let f = Fixture::new("masked");
    let linux = json!({
        "maskedPaths": ["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys","/proc/latency_stats",
                        "/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi",
                        "/sys/firmware","/sys/devices/virtual/powercap","/proc/kcore"],
        "readonlyPaths": ["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]
    });
    let out = f.run(
        &standard_config(vec![], linux),
        "cat /proc/self/mountinfo; echo ---
         echo \"keys $(wc -c < /proc/keys)\"
         echo \"timer_list $(wc -c < /proc/timer_list)\"
         echo \"firmware $(ls -A /sys/firmware | wc -l)\"
         touch /sys/firmware/x 2>/dev/null && echo firmware-writable || echo firmware-refused
         echo quai > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable || echo sys-refused
         cat /proc/sys/kernel/ostype",
        &Knobs::default(),
    );
    out.ok()?;
    f.no_host_leak()?;
    let info = out.section(0);
    let sys = expect_mount(info, "/proc/sys")?;
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        check(has(&sys.options, o), || {
            format!("/proc/sys lacks {o}: {:?}", sys.options)
        })?;
    }
    // Files are covered by the container's /dev/null (on its /dev tmpfs).
    for file in ["/proc/keys", "/proc/timer_list"] {
        check(expect_mount(info, file)?.fstype == "tmpfs", || {
            format!("{file} is not covered by the container's /dev/null")
        })?;
    }
    let firmware = expect_mount(info, "/sys/firmware")?;
    check(
        firmware.fstype == "tmpfs" && has(&firmware.options, "ro"),
        || format!("/sys/firmware {} {:?}", firmware.fstype, firmware.options),
    )?;
    expect_lines(
        &out,
        &[
            "keys 0",
            "timer_list 0",
            "firmware 0",
            "firmware-refused",
            "sys-refused",
            "Linux",
        ],
    )?;
    Ok(())
}

fn no_pivot_moves_root_and_chroots() -> CaseResult {
    let f = Fixture::new("nopivot");
    let out = f.run(
        &standard_config(vec![], json!({"maskedPaths":["/proc/keys"]})),
        "ls /; echo ---
         cat /proc/self/mountinfo; echo ---
         stat -c '%n %t:%T' /dev/null
         echo \"keys $(wc -c < /proc/keys)\"",
        &Knobs {
            no_pivot: true,
            ..Knobs::default()
        },
    );
    out.ok()?;
    f.no_host_leak()?;
    check(out.section(0).lines().any(|l| l == "bin"), || {
        "wrong root".into()
    })?;
    let proc_mounts = out
        .section(1)
        .lines()
        .filter(|l| l.contains(" - proc "))
        .count();
    check(proc_mounts == 1, || {
        format!("expected only the container's procfs:\n{}", out.section(1))
    })?;
    expect_line(&out, "/dev/null 1:3")?;
    expect_line(&out, "keys 0")
}

fn host_is_cgroup2() -> bool {
    rustix::fs::statfs("/sys/fs/cgroup")
        .map(|s| (s.f_type as u64 & 0xffff_ffff) as u32 == safe_path::magic::CGROUP2)
        .unwrap_or(false)
}

fn cgroup_config() -> Value {
    standard_config(
        vec![
            json!({"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}),
        ],
        json!({}),
    )
}

fn cgroup_mount_without_namespace() -> CaseResult {
    let f = Fixture::new("cgroup");
    let out = f.run(
        &cgroup_config(),
        "cat /proc/self/mountinfo; echo ---
         ls /sys/fs/cgroup; echo ---
         touch /sys/fs/cgroup/quai-test 2>/dev/null && echo top-writable || echo top-refused",
        &Knobs::default(),
    );
    out.ok()?;
    f.no_host_leak()?;
    let info = out.section(0);
    if host_is_cgroup2() {
        let m = expect_mount(info, "/sys/fs/cgroup")?;
        check(m.fstype == "cgroup2" && has(&m.options, "ro"), || {
            format!("{} {:?}", m.fstype, m.options)
        })?;
        return expect_line(&out, "top-refused");
    }
    let top = expect_mount(info, "/sys/fs/cgroup")?;
    check(top.fstype == "tmpfs", || {
        "no tmpfs at /sys/fs/cgroup".into()
    })?;
    let memory = expect_mount(info, "/sys/fs/cgroup/memory")?;
    check(
        memory.fstype == "cgroup" && has(&memory.options, "ro"),
        || format!("memory: {} {:?}", memory.fstype, memory.options),
    )?;
    let listing = out.section(1);
    check(listing.lines().any(|l| l == "memory"), || {
        listing.to_string()
    })
}

fn readonly_path_on_the_cgroup_tmpfs() -> CaseResult {
    // The cgroup v1 tmpfs is the config's, not the image's: accepted under
    // /sys. A directory of the image itself under /sys is refused.
    let f = Fixture::new("cgroup-ro");
    let mut config = cgroup_config();
    config["linux"]["readonlyPaths"] = json!(["/sys/fs/cgroup"]);
    let out = f.run(&config, MOUNTINFO, &Knobs::default());
    out.ok()?;
    check(
        has(&expect_mount(&out.stdout, "/sys/fs/cgroup")?.options, "ro"),
        || "/sys/fs/cgroup not read-only".into(),
    )?;
    fs::create_dir_all(f.rootfs.join("sys/firmware")).map_err(|e| e.to_string())?;
    let out = f.run(
        &config_with(
            vec![json!({"destination":"/dev","type":"tmpfs","source":"tmpfs"})],
            json!({"maskedPaths":["/sys/firmware"]}),
        ),
        "true",
        &Knobs::default(),
    );
    let err = out.failure()?;
    check(
        err.contains("refusing to protect masked path /sys/firmware"),
        || err.to_string(),
    )?;
    f.no_host_leak()
}

fn cgroup_mount_with_namespace() -> CaseResult {
    let f = Fixture::new("cgroupns");
    let mut config = cgroup_config();
    config["linux"]["namespaces"] = json!([{"type":"mount"},{"type":"cgroup"}]);
    let out = f.run(
        &config,
        "cat /proc/self/mountinfo; echo ---
         cat /proc/self/cgroup",
        &Knobs {
            cgroupns: true,
            ..Knobs::default()
        },
    );
    out.ok()?;
    f.no_host_leak()?;
    let info = out.section(0);
    if host_is_cgroup2() {
        let m = expect_mount(info, "/sys/fs/cgroup")?;
        return check(m.fstype == "cgroup2", || m.fstype.clone());
    }
    let memory = expect_mount(info, "/sys/fs/cgroup/memory")?;
    check(
        memory.fstype == "cgroup" && has(&memory.super_options, "memory"),
        || format!("memory: {} {:?}", memory.fstype, memory.super_options),
    )?;
    let root_field = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup/memory"))
        .and_then(|l| l.split(' ').nth(3))
        .unwrap_or("");
    check(root_field == "/", || {
        format!("a cgroup-namespace mount must be rooted at the namespace: {root_field}")
    })
}

fn console_before_and_after_enter() -> CaseResult {
    for when in ["before", "after"] {
        let f = Fixture::new("console");
        let out = f.run(
            &standard_config(vec![], json!({})),
            "stat -c '%n %F %t' /dev/console; cat /proc/self/mountinfo",
            &Knobs {
                console: Some(when),
                ..Knobs::default()
            },
        );
        out.ok().map_err(|e| format!("console {when}: {e}"))?;
        f.no_host_leak()?;
        expect_line(&out, "/dev/console character special file 88")
            .map_err(|e| format!("console {when}: {e}"))?;
        check(mount_at(&out.stdout, "/dev/console").is_some(), || {
            format!("console {when}: nothing mounted at /dev/console")
        })?;
    }
    Ok(())
}

/// No procfs or sysfs here: mounting those in a user namespace needs pid
/// and network namespaces of its own, which the lifecycle provides.
fn userns_config(extra: Vec<Value>) -> Value {
    let mut mounts = vec![
        json!({"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}),
        json!({"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]}),
    ];
    mounts.extend(extra);
    config_with(
        mounts,
        json!({"devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]}),
    )
}

fn user_namespace_binds_devices() -> CaseResult {
    let f = Fixture::new("userns-dev");
    if !Path::new("/dev/fuse").exists() {
        return Err("the host has no /dev/fuse to bind".into());
    }
    let out = f.run(
        &userns_config(vec![]),
        "cat /proc/self/uid_map; stat -c '%n %F %t:%T' /dev/null /dev/zero /dev/tty /dev/fuse
         echo hi > /dev/null && echo null-works",
        &Knobs {
            userns: true,
            ..Knobs::default()
        },
    );
    out.ok()?;
    f.no_host_leak()?;
    expect_lines(
        &out,
        &[
            "/dev/null character special file 1:3",
            "/dev/zero character special file 1:5",
            "/dev/tty character special file 5:0",
            "/dev/fuse character special file a:e5",
            "null-works",
        ],
    )?;
    Ok(())
}

fn user_namespace_keeps_locked_flags() -> CaseResult {
    let f = Fixture::new("userns-locked");
    let src = f.bundle.join("locked");
    fs::create_dir(&src).map_err(|e| e.to_string())?;
    let knobs = Knobs {
        userns: true,
        pre_mount: Some(src.clone()),
        ..Knobs::default()
    };
    // Options that do not touch the locked flags are applied on top of them.
    let out = f.run(
        &userns_config(vec![
            json!({"destination":"/proc","type":"bind","source":"/proc","options":["rbind"]}),
            json!({"destination":"/locked","type":"bind","source":src,"options":["bind","nodev"]}),
        ]),
        MOUNTINFO,
        &knobs,
    );
    out.ok()?;
    let m = expect_mount(&out.stdout, "/locked")?;
    for o in ["ro", "nosuid", "nodev"] {
        check(has(&m.options, o), || {
            format!("/locked lacks {o}: {:?}", m.options)
        })?;
    }
    // Asking to clear a locked flag is an error that says so.
    let out = f.run(
        &userns_config(vec![
            json!({"destination":"/locked","type":"bind","source":src,"options":["bind","rw"]}),
        ]),
        "true",
        &knobs,
    );
    let err = out.failure()?;
    check(
        err.contains("clear ro on bind on /locked") && err.contains("locked"),
        || err.to_string(),
    )?;
    f.no_host_leak()
}

fn bad_options_report_the_kernel_reason() -> CaseResult {
    let f = Fixture::new("badopts");
    let out = f.run(
        &standard_config(
            vec![json!({"destination":"/data","type":"tmpfs","source":"tmpfs","options":["size=lots"]})],
            json!({}),
        ),
        "true",
        &Knobs::default(),
    );
    let err = out.failure()?;
    check(
        err.contains("tmpfs on /data (mounts[6])") && err.contains("Bad value for 'size'"),
        || format!("unclear error: {err}"),
    )?;
    f.no_host_leak()?;
    let out = f.run(
        &standard_config(
            vec![json!({"destination":"/data","type":"nosuchfs","source":"x"})],
            json!({}),
        ),
        "true",
        &Knobs::default(),
    );
    let err = out.failure()?;
    check(
        err.contains("mounts[6].type: file system type \"nosuchfs\" is not known"),
        || format!("unclear error: {err}"),
    )?;
    f.no_host_leak()
}

// ---------------------------------------------------------------------------
// Escape attempts.

fn escape_symlinked_mount_destination() -> CaseResult {
    let f = Fixture::new("esc-symlink");
    symlink("/etc", f.rootfs.join("foo")).map_err(|e| e.to_string())?;
    symlink("../../../../../../../../tmp", f.rootfs.join("bar")).map_err(|e| e.to_string())?;
    let marker = format!("quai-escape-{}", std::process::id());
    let extra = vec![
        json!({"destination":format!("/foo/{marker}"),"type":"tmpfs","source":"tmpfs"}),
        json!({"destination":format!("/bar/{marker}"),"type":"tmpfs","source":"tmpfs"}),
    ];
    let out = f.run(
        &standard_config(extra, json!({})),
        MOUNTINFO,
        &Knobs::default(),
    );
    out.ok()?;
    f.no_host_leak()?;
    for host in [format!("/etc/{marker}"), format!("/tmp/{marker}")] {
        check(!Path::new(&host).exists(), || {
            format!("{host} was created on the host")
        })?;
    }
    check(f.rootfs.join("etc").join(&marker).is_dir(), || {
        "the mount point was not created inside the rootfs".into()
    })?;
    check(f.rootfs.join("tmp").join(&marker).is_dir(), || {
        "the .. mount point was not clamped to the rootfs".into()
    })?;
    expect_mount(&out.stdout, &format!("/etc/{marker}"))?;
    expect_mount(&out.stdout, &format!("/tmp/{marker}"))?;
    Ok(())
}

fn escape_dangling_symlink_file_destination() -> CaseResult {
    let f = Fixture::new("esc-dangling");
    let marker = format!("quai-escape-file-{}", std::process::id());
    fs::remove_file(f.rootfs.join("etc/group")).map_err(|e| e.to_string())?;
    symlink(format!("/../../tmp/{marker}"), f.rootfs.join("etc/group"))
        .map_err(|e| e.to_string())?;
    fs::write(f.bundle.join("group"), "root:x:0:\n").map_err(|e| e.to_string())?;
    let extra =
        vec![json!({"destination":"/etc/group","type":"bind","source":"group","options":["ro"]})];
    let out = f.run(
        &standard_config(extra, json!({})),
        "cat /etc/group",
        &Knobs::default(),
    );
    out.ok()?;
    f.no_host_leak()?;
    check(!Path::new(&format!("/tmp/{marker}")).exists(), || {
        "the file was created on the host".into()
    })?;
    check(f.rootfs.join("tmp").join(&marker).is_file(), || {
        "the dangling link's target was not created inside the rootfs".into()
    })?;
    expect_line(&out, "root:x:0:")
}

fn escape_destination_resolving_to_root() -> CaseResult {
    let f = Fixture::new("esc-root");
    symlink("/", f.rootfs.join("up")).map_err(|e| e.to_string())?;
    let extra = vec![json!({"destination":"/up","type":"tmpfs","source":"tmpfs"})];
    let out = f.run(
        &standard_config(extra, json!({})),
        "true",
        &Knobs::default(),
    );
    let err = out.failure()?;
    check(
        err.contains("it resolves to the container's root itself"),
        || err.to_string(),
    )?;
    f.no_host_leak()
}

fn escape_planted_proc_symlink() -> CaseResult {
    let f = Fixture::new("esc-proc");
    fs::remove_dir(f.rootfs.join("proc")).map_err(|e| e.to_string())?;
    symlink("/tmp", f.rootfs.join("proc")).map_err(|e| e.to_string())?;
    let out = f.run(
        &standard_config(vec![], json!({})),
        "true",
        &Knobs::default(),
    );
    let err = out.failure()?;
    check(
        err.contains("refusing to mount proc on /proc") && err.contains("symlink"),
        || err.to_string(),
    )?;
    f.no_host_leak()
}

fn escape_planted_proc_directory() -> CaseResult {
    // A rootfs with its own /proc/sys tree. Without a procfs mounted over it,
    // nothing under /proc may be treated as the kernel's.
    let f = Fixture::new("esc-procdir");
    fs::create_dir_all(f.rootfs.join("proc/sys/kernel")).map_err(|e| e.to_string())?;
    fs::write(f.rootfs.join("proc/sys/kernel/hostname"), "planted").map_err(|e| e.to_string())?;
    let mounts = vec![json!({"destination":"/dev","type":"tmpfs","source":"tmpfs"})];
    let out = f.run(
        &config_with(mounts.clone(), json!({"readonlyPaths":["/proc/sys"]})),
        "true",
        &Knobs {
            probe_proc: true,
            ..Knobs::default()
        },
    );
    let err = out.failure()?;
    check(err.contains("not on procfs"), || err.to_string())?;
    expect_line(
        &out,
        "probe: refused: not on procfs (file system magic 0x1021994)",
    )
    .or_else(|_| check(out.stdout.contains("probe: refused"), || out.stdout.clone()))?;
    // With a procfs mounted over the planted tree, the real one is found.
    let out = f.run(
        &standard_config(vec![], json!({"readonlyPaths":["/proc/sys"]})),
        "cat /proc/sys/kernel/hostname",
        &Knobs {
            probe_proc: true,
            ..Knobs::default()
        },
    );
    out.ok()?;
    expect_line(&out, "probe: procfs")?;
    check(!out.stdout.contains("planted"), || out.stdout.clone())?;
    f.no_host_leak()
}

fn escape_mount_into_procfs_through_symlink() -> CaseResult {
    let f = Fixture::new("esc-intoproc");
    symlink("/proc/sys/kernel", f.rootfs.join("kernel")).map_err(|e| e.to_string())?;
    fs::write(f.bundle.join("pattern"), "|/bin/evil").map_err(|e| e.to_string())?;
    let extra =
        vec![json!({"destination":"/kernel/core_pattern","type":"bind","source":"pattern"})];
    let out = f.run(
        &standard_config(extra, json!({})),
        "true",
        &Knobs::default(),
    );
    let err = out.failure()?;
    check(
        err.contains("it resolves into procfs through a symlink"),
        || err.to_string(),
    )?;
    f.no_host_leak()
}

/// A /dev bound from a directory the attacker controls, so that prepare
/// does not create the devices itself.
fn planted_dev_config(f: &Fixture) -> Result<Value, String> {
    let dev = f.bundle.join("fakedev");
    fs::create_dir(&dev).map_err(|e| e.to_string())?;
    Ok(config_with(
        vec![
            json!({"destination":"/proc","type":"proc","source":"proc"}),
            json!({"destination":"/dev","type":"bind","source":"fakedev","options":["rbind"]}),
        ],
        json!({"maskedPaths":["/proc/kcore","/proc/timer_list"]}),
    ))
}

fn escape_fake_dev_null_file() -> CaseResult {
    let f = Fixture::new("esc-null");
    let config = planted_dev_config(&f)?;
    fs::write(f.bundle.join("fakedev/null"), "").map_err(|e| e.to_string())?;
    let out = f.run(&config, "true", &Knobs::default());
    let err = out.failure()?;
    check(
        err.contains("refusing to mask paths with /dev/null")
            && err.contains("expected character device 1:3, found a regular file"),
        || err.to_string(),
    )?;
    f.no_host_leak()
}

fn escape_dev_null_symlink() -> CaseResult {
    let f = Fixture::new("esc-nulllink");
    let config = planted_dev_config(&f)?;
    symlink(
        "/proc/sys/kernel/core_pattern",
        f.bundle.join("fakedev/null"),
    )
    .map_err(|e| e.to_string())?;
    let out = f.run(&config, "true", &Knobs::default());
    let err = out.failure()?;
    check(
        err.contains("refusing to mask paths with /dev/null: it is a symlink"),
        || err.to_string(),
    )?;
    f.no_host_leak()
}

fn escape_dev_console_symlink() -> CaseResult {
    // No /dev tmpfs: the image's /dev/console is a symlink to a file the
    // pty must not be mounted over.
    let f = Fixture::new("esc-console");
    symlink("/etc/passwd", f.rootfs.join("dev/console")).map_err(|e| e.to_string())?;
    let mounts = vec![
        json!({"destination":"/proc","type":"proc","source":"proc"}),
        json!({"destination":"/dev/pts","type":"devpts","source":"devpts","options":["newinstance","ptmxmode=0666"]}),
    ];
    let out = f.run(
        &config_with(mounts, json!({})),
        "stat -c '%n %F %t' /dev/console; stat -c '%n %F' /etc/passwd; head -1 /etc/passwd; cat /proc/self/mountinfo",
        &Knobs {
            console: Some("before"),
            ..Knobs::default()
        },
    );
    out.ok()?;
    f.no_host_leak()?;
    expect_line(&out, "/dev/console character special file 88")?;
    expect_line(&out, "/etc/passwd regular file")?;
    expect_line(&out, "root:x:0:0:root:/root:/bin/sh")?;
    check(mount_at(&out.stdout, "/etc/passwd").is_none(), || {
        "the pty was mounted over the symlink's target".into()
    })
}

fn escape_dev_symlink_for_console() -> CaseResult {
    let f = Fixture::new("esc-devlink");
    fs::remove_dir(f.rootfs.join("dev")).map_err(|e| e.to_string())?;
    fs::create_dir_all(f.rootfs.join("realdev/pts")).map_err(|e| e.to_string())?;
    symlink("/realdev", f.rootfs.join("dev")).map_err(|e| e.to_string())?;
    let mounts = vec![
        json!({"destination":"/proc","type":"proc","source":"proc"}),
        json!({"destination":"/realdev/pts","type":"devpts","source":"devpts","options":["newinstance","ptmxmode=0666"]}),
    ];
    let out = f.run(
        &config_with(mounts, json!({})),
        "true",
        &Knobs {
            console: Some("before"),
            ..Knobs::default()
        },
    );
    let err = out.failure()?;
    check(
        err.contains("open_pty") || err.contains("/dev is a symlink"),
        || err.to_string(),
    )?;
    f.no_host_leak()
}
