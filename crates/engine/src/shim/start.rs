//! One run of the container: what the monitor does at every (re)start,
//! from the mounts to a created-and-started container process.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use quai_image::digest::Digest;
use quai_runtime::{CreateOptions, Runtime, Stdio};
use rustix::fs::{Mode, OFlags};

use crate::devices;
use crate::engine::Engine;
use crate::error::{start_failure_status, EngineError, IoContext, Result};
use crate::etc_files;
use crate::netsetup;
use crate::record::Container;
use crate::spec::{self, EtcFiles, HostFacts, SpecInput};
use crate::users;

use super::fscopy;

/// The container process and the monitor's ends of its stdio.
pub struct Run {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub started: i64,
    /// Pipe ends (no terminal) or the pty master twice (terminal).
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
    pub pty: bool,
    /// What the container holds on its networks (host ports stay bound
    /// while this lives).
    pub network: Option<netsetup::Session>,
}

/// Mounts the overlay at the container's rootfs (in the monitor's own
/// mount namespace) unless it already is.
pub fn mount_rootfs(engine: &mut Engine, c: &Container, mounted: &mut bool) -> Result<()> {
    if *mounted {
        return Ok(());
    }
    let image = Digest::parse(&c.image_id).map_err(|e| EngineError::Corrupt {
        id: c.id.clone(),
        reason: format!("image id {}: {e}", c.image_id),
    })?;
    let new_init_layer = !engine.paths.init_layers().join(image.hex()).is_dir();
    mount_overlay(engine, &c.id, &image)?;
    *mounted = true;
    if new_init_layer {
        // A new image runs (rare): init layers of images gone since go.
        let in_use = crate::record::image_ids(engine.store.db().conn()).unwrap_or_default();
        let store = &engine.store;
        crate::initlayer::prune(&engine.paths, &in_use, |d| store.get(d).is_ok());
    }
    Ok(())
}

/// Mounts the container's overlay (image layers, init layer, upper) at
/// its rootfs directory, in the calling process's mount namespace.
pub fn mount_overlay(engine: &Engine, id: &str, image: &Digest) -> Result<()> {
    let dir = engine.paths.container_dir(id);
    let layers = engine.store.layer_dirs(image)?;
    let init = crate::initlayer::ensure(&engine.paths, &dir, image, &layers)?;
    quai_image::snapshot::prepare_rootfs_over(
        &engine.store,
        image,
        &dir,
        Some(&init),
        quai_image::snapshot::MountMethod::Auto,
    )?;
    Ok(())
}

/// Volume directories exist and new ones hold the image's files; missing
/// sources of `-v` binds are created (docker's behaviour).
fn prepare_mounts(engine: &Engine, c: &Container) -> Result<()> {
    let rootfs = engine.paths.rootfs(&c.id);
    for m in &c.def.mounts {
        match m.typ.as_str() {
            "volume" => {
                let data = engine.paths.volume_data(&m.name);
                let fresh = !data.exists();
                fs::create_dir_all(&data).at("create volume directory", &data)?;
                let no_copy = m.mode.split(',').any(|o| o == "nocopy");
                if (fresh || fscopy::is_empty_dir(&data)) && !no_copy {
                    copy_up(&rootfs, &m.destination, &data)?;
                }
            }
            "bind" => {
                let source = Path::new(&m.source);
                if fs::symlink_metadata(source).is_err() {
                    fs::create_dir_all(source).at("create bind source", source)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Copies what the image has at `destination` into the volume's `data`.
fn copy_up(rootfs: &Path, destination: &str, data: &Path) -> Result<()> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at("open", rootfs)?;
    let dir = match quai_runtime::safe_path::open_in_root(
        root.as_fd(),
        Path::new(destination),
        OFlags::PATH | OFlags::DIRECTORY,
    ) {
        Ok(fd) => fd,
        // Nothing there (or not a directory): nothing to copy.
        Err(_) => return Ok(()),
    };
    // The descriptor pins the resolved directory; its /proc path is the
    // walk's start, and the walk itself follows no symlink.
    let start = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&dir));
    let start = fs::read_link(&start).at("resolve", Path::new(&start))?;
    fscopy::copy_tree(&start, data)
}

/// Prepares everything and creates and starts the container process.
pub fn start(engine: &mut Engine, c: &Container, mounted: &mut bool) -> Result<Run> {
    let paths = engine.paths.clone();
    let id = c.id.as_str();
    let run_dir = paths.run_dir(id);
    fs::create_dir_all(&run_dir).at("create run directory", &run_dir)?;
    mount_rootfs(engine, c, mounted)?;
    crate::failpoint::crash_at("shim:mounted");
    crate::timeline::mark("shim:mounted");
    prepare_mounts(engine, c)?;
    let host_network = c.def.host_config.network_mode == "host";
    let hostname = c.def.config.hostname.clone();
    let etc = EtcFiles {
        hostname: paths.hostname_path(id),
        hosts: paths.hosts_path(id),
        resolv_conf: paths.resolv_conf_path(id),
    };
    etc_files::write_all(
        &paths.container_dir(id),
        &hostname,
        host_network,
        (&etc.hostname, &etc.hosts, &etc.resolv_conf),
    )?;
    // Addresses, host ports and DNS records are held from here on; every
    // error below gives them back.
    crate::timeline::mark("shim:etc-written");
    let mut network = netsetup::prepare(engine, c)?;
    crate::timeline::mark("shim:network-prepared");
    let result = start_with_network(engine, c, &paths, &etc, &hostname, &mut network);
    if result.is_err() {
        let _ = netsetup::teardown(engine.store.db().conn(), &engine.paths, id);
    }
    result.map(|mut run| {
        run.network = Some(network);
        run
    })
}

fn start_with_network(
    engine: &mut Engine,
    c: &Container,
    paths: &crate::paths::Paths,
    etc: &EtcFiles,
    hostname: &str,
    network: &mut netsetup::Session,
) -> Result<Run> {
    let id = c.id.as_str();
    let shared;
    let etc = match &network.shared_etc {
        Some(other) => {
            shared = EtcFiles {
                hostname: etc.hostname.clone(),
                hosts: other.hosts.clone(),
                resolv_conf: other.resolv_conf.clone(),
            };
            &shared
        }
        None => etc,
    };
    if let Some(hosts) = &network.hosts {
        etc_files::write_atomic(&etc.hosts, hosts.as_bytes())?;
    }
    if let Some(resolv) = &network.resolv_conf {
        etc_files::write_atomic(&etc.resolv_conf, resolv.as_bytes())?;
    }
    let rootfs = paths.rootfs(id);
    let user = users::resolve_in_root(&rootfs, &c.def.config.user)?;
    let mut devs = if c.def.host_config.privileged {
        devices::host_devices()
    } else {
        Vec::new()
    };
    devs.extend(devices::resolve(
        c.def.host_config.devices.as_deref().unwrap_or_default(),
    )?);
    let init = if c.def.host_config.init == Some(true) {
        Some(crate::init::install(&paths.init_binary())?)
    } else {
        None
    };
    let host = HostFacts::probe();
    let config = spec::generate(&SpecInput {
        id,
        def: &c.def,
        rootfs: &rootfs,
        hostname,
        user: &user,
        etc,
        host: &host,
        devices: &devs,
        init: init.as_deref(),
        netns_path: network.netns_path.as_deref(),
    })?;
    let bundle = paths.bundle(id);
    let bytes = serde_json::to_vec(&config)
        .map_err(|e| EngineError::invalid(format!("encode config.json: {e}")))?;
    etc_files::write_atomic(&bundle.join("config.json"), &bytes)?;

    crate::timeline::mark("shim:config-written");
    let runtime = Runtime::new(&paths.runtime_root())?;
    // A runtime record left by a monitor that died: nothing of it may stay.
    crate::remove::reap_runtime(paths, id)?;

    let tty = c.def.config.tty;
    let mut options = CreateOptions::default();
    let mut ours = Run {
        pid: 0,
        pidfd: rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .at("open", Path::new("/dev/null"))?,
        started: 0,
        stdout: None,
        stderr: None,
        stdin: None,
        pty: tty,
        network: None,
    };
    let mut console: Option<UnixStream> = None;
    if tty {
        let (mine, theirs) = UnixStream::pair().ctx(|| "create the console socket".into())?;
        options.console_socket = Some(OwnedFd::from(theirs));
        console = Some(mine);
    } else {
        let null = || {
            rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                .at("open", Path::new("/dev/null"))
        };
        let stdin_theirs = if c.def.config.open_stdin {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .ctx(|| "create the stdin pipe".into())?;
            ours.stdin = Some(w);
            r
        } else {
            null()?
        };
        let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .ctx(|| "create the stdout pipe".into())?;
        let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .ctx(|| "create the stderr pipe".into())?;
        ours.stdout = Some(out_r);
        ours.stderr = Some(err_r);
        options.stdio = Stdio::Fds([stdin_theirs, out_w, err_w]);
    }
    crate::timeline::mark("shim:runtime-create");
    let pid = match runtime.create(id, &bundle, options) {
        Ok(pid) => pid,
        Err(e) => {
            let message = e.to_string();
            return Err(EngineError::StartFailed {
                status: start_failure_status(&message),
                message: format!("failed to create the container: {message}"),
            });
        }
    };
    crate::failpoint::crash_at("shim:runtime-created");
    crate::timeline::mark("shim:runtime-created");
    if let Some(console) = console {
        let mut name = [0u8; 64];
        let (master, _) = quai_runtime::seccomp::recv_fd(console.as_fd(), &mut name)
            .ctx(|| "receive the container's terminal".into())?;
        let copy = master.try_clone().ctx(|| "duplicate the terminal".into())?;
        ours.stdout = Some(master);
        if c.def.config.open_stdin {
            ours.stdin = Some(copy);
        }
    }
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or_else(|| EngineError::invalid("pid 0"))?,
        rustix::process::PidfdFlags::empty(),
    )
    .ctx(|| format!("open a pidfd for the container process {pid}"))?;
    ours.pid = pid;
    ours.pidfd = pidfd;
    if let Err(e) = network.attach(engine, pid) {
        let _ = runtime.delete(id, true);
        return Err(e);
    }
    if let Err(e) = runtime.start(id) {
        let _ = runtime.delete(id, true);
        let message = e.to_string();
        return Err(EngineError::StartFailed {
            status: start_failure_status(&message),
            message: format!("failed to start the container: {message}"),
        });
    }
    crate::failpoint::crash_at("shim:runtime-started");
    crate::timeline::mark("shim:runtime-started");
    ours.started = crate::units::now_nanos();
    Ok(ours)
}
