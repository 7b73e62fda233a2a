//! Each runc command over the runtime library.

use std::fs;
use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capability, LinuxResources, Process};
use quai_runtime::capabilities;
use quai_runtime::cgroups::UpdateFlags;
use quai_runtime::process::foreground::{wait_forwarding, SignalForwarding};
use quai_runtime::state::{ContainerStatus, OCI_VERSION};
use quai_runtime::{CreateOptions, ExecOptions, Runtime, Stdio};
use serde::Serialize;

use super::{CreateArgs, ExecArgs, ListFormat, RuntimeCli, RuntimeCommand, UpdateArgs};

pub fn run(cli: RuntimeCli) -> Result<u8> {
    if cli.systemd_cgroup {
        bail!(
            "--systemd-cgroup is not supported: quai-runtime manages cgroups through cgroupfs only"
        );
    }
    let root = super::state_root(&cli);
    let runtime = || Runtime::new(&root).with_context(|| format!("state root {}", root.display()));
    match cli.command {
        RuntimeCommand::Create(args) => {
            create(&runtime()?, &args)?;
            Ok(0)
        }
        RuntimeCommand::Start { id } => {
            runtime()?.start(&id)?;
            Ok(0)
        }
        RuntimeCommand::Run {
            create: args,
            detach,
            keep,
            no_subreaper,
        } => run_container(&runtime()?, &args, detach, keep, no_subreaper),
        RuntimeCommand::State { id } => {
            let status = runtime()?.state(&id)?;
            print_json(&RuncState::from(&status))?;
            Ok(0)
        }
        RuntimeCommand::Kill { all, id, signal } => {
            let signal = quai_runtime::signal::parse(&signal)?;
            runtime()?.kill(&id, signal, all)?;
            Ok(0)
        }
        RuntimeCommand::Delete { force, id } => {
            let rt = runtime()?;
            match rt.delete(&id, force) {
                // runc: deleting what does not exist is fine with --force.
                Err(quai_runtime::RuntimeError::NotFound(_)) if force => Ok(0),
                r => r.map(|()| 0).map_err(Into::into),
            }
        }
        RuntimeCommand::Exec(args) => exec(&runtime()?, &args),
        RuntimeCommand::Ps {
            format,
            id,
            ps_args,
        } => ps(&runtime()?, format, &id, &ps_args),
        RuntimeCommand::List { format, quiet } => list(&runtime()?, format, quiet),
        RuntimeCommand::Spec { bundle, rootless } => spec(&bundle, rootless),
        RuntimeCommand::Pause { id } => {
            runtime()?.pause(&id)?;
            Ok(0)
        }
        RuntimeCommand::Resume { id } => {
            runtime()?.resume(&id)?;
            Ok(0)
        }
        RuntimeCommand::Update(args) => update(&runtime()?, &args),
        RuntimeCommand::Events {
            stats,
            interval,
            id,
        } => events(&runtime()?, &id, stats, &interval),
        RuntimeCommand::Features => {
            print_json(&quai_runtime::template::features())?;
            Ok(0)
        }
    }
}

fn print_json(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("encode JSON")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").context("write to stdout")?;
    Ok(())
}

/// runc's `state` document: the OCI state plus rootfs, created and owner.
#[derive(Serialize)]
struct RuncState {
    #[serde(rename = "ociVersion")]
    oci_version: String,
    id: String,
    pid: i32,
    status: String,
    bundle: PathBuf,
    rootfs: PathBuf,
    created: String,
    owner: String,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    annotations: std::collections::HashMap<String, String>,
}

impl From<&ContainerStatus> for RuncState {
    fn from(s: &ContainerStatus) -> RuncState {
        RuncState {
            oci_version: OCI_VERSION.to_string(),
            id: s.record.id.clone(),
            pid: s.pid(),
            status: s.runc_status(),
            bundle: s.record.bundle.clone(),
            rootfs: s.record.rootfs.clone(),
            created: s.record.created.clone(),
            owner: String::new(),
            annotations: s.record.annotations(),
        }
    }
}

fn connect_console(path: &Path) -> Result<OwnedFd> {
    let stream = UnixStream::connect(path)
        .with_context(|| format!("connect to console socket {}", path.display()))?;
    Ok(OwnedFd::from(stream))
}

fn create_options(args: &CreateArgs, console: Option<OwnedFd>) -> CreateOptions {
    CreateOptions {
        console_socket: console,
        stdio: Stdio::Inherit,
        pid_file: args.pid_file.clone(),
        preserve_fds: args.preserve_fds,
        listen_fds: listen_fds(),
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
    }
}

/// Socket-activation descriptors handed to us (systemd's LISTEN_FDS, for
/// this very process) are passed on to the container, as runc does.
fn listen_fds() -> u32 {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    if !for_us {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn create(runtime: &Runtime, args: &CreateArgs) -> Result<i32> {
    if args.console_socket.is_some() {
        // The console connection would not survive a re-execution.
        protect_binary(runtime)?;
    }
    let console = args
        .console_socket
        .as_deref()
        .map(connect_console)
        .transpose()?;
    create_with(runtime, args, console)
}

/// Re-executes this process from a read-only view of its binary
/// (CVE-2019-5736, see quai_runtime::exe_guard), unless it runs from one
/// already; returns only then, or on failure.
fn protect_binary(runtime: &Runtime) -> Result<()> {
    let keep_in = runtime.root().join(quai_runtime::exe_guard::KEPT_DIR);
    quai_runtime::exe_guard::reexec_protected(Some(&keep_in))
        .context("re-execute from a read-only view of the runtime binary")
}

/// Creates the container. Most containers need no re-execution of the
/// runtime (its init hands over to quai-init); for those that do, the
/// runtime says so before it creates anything, and this re-executes and
/// tries again.
fn create_with(runtime: &Runtime, args: &CreateArgs, console: Option<OwnedFd>) -> Result<i32> {
    let result = match runtime.create(&args.id, &args.bundle, create_options(args, console)) {
        Err(quai_runtime::RuntimeError::UnprotectedBinary) => {
            protect_binary(runtime)?;
            runtime.create(&args.id, &args.bundle, create_options(args, None))
        }
        other => other,
    };
    result.with_context(|| format!("create container {:?}", args.id))
}

fn run_container(
    runtime: &Runtime,
    args: &CreateArgs,
    detach: bool,
    keep: bool,
    no_subreaper: bool,
) -> Result<u8> {
    if detach {
        create(runtime, args)?;
        if let Err(e) = runtime.start(&args.id) {
            let _ = runtime.delete(&args.id, true);
            return Err(e).with_context(|| format!("start container {:?}", args.id));
        }
        return Ok(0);
    }
    if !no_subreaper {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .context("become a child subreaper")?;
    }
    // In the foreground with a terminal and no console socket, the runtime
    // itself holds the pty master and relays it to its own stdio.
    let terminal = args.console_socket.is_none() && terminal_requested(&args.bundle)?;
    if args.console_socket.is_some() || terminal {
        // The console would not survive a re-execution.
        protect_binary(runtime)?;
    }
    let (console, relay_end) = match &args.console_socket {
        Some(path) => (Some(connect_console(path)?), None),
        None if terminal => {
            let (ours, theirs) = UnixStream::pair().context("create a console socket pair")?;
            (Some(OwnedFd::from(theirs)), Some(ours))
        }
        None => (None, None),
    };
    let pid = create_with(runtime, args, console)?;
    let master = relay_end.map(|sock| receive_fd(&sock)).transpose()?;
    // Held from before the start: a signal sent once the container runs
    // reaches it even if the wait has not begun.
    let forwarding = match SignalForwarding::install() {
        Ok(f) => f,
        Err(e) => {
            let _ = runtime.delete(&args.id, true);
            return Err(e).context("watch the runtime's signals");
        }
    };
    let code = match runtime.start(&args.id) {
        Ok(()) => forwarding.wait(pid, master)?,
        Err(e) => {
            let _ = runtime.delete(&args.id, true);
            return Err(e).with_context(|| format!("start container {:?}", args.id));
        }
    };
    if !keep {
        runtime
            .delete(&args.id, true)
            .with_context(|| format!("delete container {:?}", args.id))?;
    }
    Ok(code.clamp(0, 255) as u8)
}

fn terminal_requested(bundle: &Path) -> Result<bool> {
    let data = fs::read(bundle.join("config.json"))
        .with_context(|| format!("read {}/config.json", bundle.display()))?;
    let spec = quai_runtime::config::parse_spec(&data)?;
    Ok(spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false))
}

fn receive_fd(socket: &UnixStream) -> Result<OwnedFd> {
    quai_runtime::process::setup::receive_fd(socket).context("receive the pty master")
}

fn exec(runtime: &Runtime, args: &ExecArgs) -> Result<u8> {
    let process = exec_process(runtime, args)?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && args.detach && args.console_socket.is_none() {
        bail!("--console-socket is required to exec with a terminal in detached mode");
    }
    let (console, relay_end) = match &args.console_socket {
        Some(path) => (Some(connect_console(path)?), None),
        None if terminal => {
            let (ours, theirs) = UnixStream::pair().context("create a console socket pair")?;
            (Some(OwnedFd::from(theirs)), Some(ours))
        }
        None => (None, None),
    };
    let options = ExecOptions {
        console_socket: console,
        stdio: Stdio::Inherit,
        pid_file: args.pid_file.clone(),
        preserve_fds: args.preserve_fds,
    };
    let pid = runtime
        .exec(&args.id, &process, options)
        .with_context(|| format!("exec in container {:?}", args.id))?;
    let master = relay_end.map(|sock| receive_fd(&sock)).transpose()?;
    if args.detach {
        return Ok(0);
    }
    let code = wait_forwarding(pid, master)?;
    Ok(code.clamp(0, 255) as u8)
}

/// The process of `exec`: from --process, or the container's own process
/// with ARGS and the command-line overrides (runc's rules).
fn exec_process(runtime: &Runtime, args: &ExecArgs) -> Result<Process> {
    if let Some(path) = &args.process {
        let data =
            fs::read(path).with_context(|| format!("read process file {}", path.display()))?;
        return quai_runtime::config::parse_process(&data)
            .with_context(|| format!("process file {}", path.display()));
    }
    if args.args.is_empty() {
        bail!("exec needs a command to run (ARGS) or --process FILE");
    }
    let record = runtime.state(&args.id)?.record;
    let mut process = record.spec.process().clone().unwrap_or_default();
    process.set_args(Some(args.args.clone()));
    process.set_terminal(Some(args.tty));
    process.set_console_size(None);
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if !args.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        env.extend(args.env.iter().cloned());
        process.set_env(Some(env));
    }
    if let Some(user) = &args.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let uid: u32 = uid
            .parse()
            .with_context(|| format!("--user {user}: uid must be a number"))?;
        let mut u = process.user().clone();
        u.set_uid(uid);
        if let Some(g) = gid {
            u.set_gid(
                g.parse()
                    .with_context(|| format!("--user {user}: gid must be a number"))?,
            );
        }
        process.set_user(u);
    }
    if !args.additional_gids.is_empty() {
        let mut u = process.user().clone();
        u.set_additional_gids(Some(args.additional_gids.clone()));
        process.set_user(u);
    }
    if !args.cap.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let cap: Capability = capabilities::parse(name)
                .with_context(|| format!("--cap {name}: unknown capability"))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            caps.set_inheritable(add(caps.inheritable()));
            caps.set_ambient(add(caps.ambient()));
        }
        process.set_capabilities(Some(caps));
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &args.apparmor {
        process.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &args.process_label {
        process.set_selinux_label(Some(label.clone()));
    }
    Ok(process)
}

fn ps(runtime: &Runtime, format: ListFormat, id: &str, ps_args: &[String]) -> Result<u8> {
    let pids = runtime.pids(id)?;
    if format == ListFormat::Json {
        print_json(&pids)?;
        return Ok(0);
    }
    let ps_args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let output = Command::new("ps")
        .args(&ps_args)
        .output()
        .context("run ps")?;
    if !output.status.success() {
        bail!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_column = header
        .split_whitespace()
        .position(|c| c == "PID")
        .context("ps output has no PID column")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(0)
}

fn list(runtime: &Runtime, format: ListFormat, quiet: bool) -> Result<u8> {
    let all = runtime.list()?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &all {
            writeln!(out, "{}", s.record.id)?;
        }
        return Ok(0);
    }
    if format == ListFormat::Json {
        drop(out);
        let states: Vec<RuncState> = all.iter().map(RuncState::from).collect();
        print_json(&states)?;
        return Ok(0);
    }
    let rows: Vec<[String; 6]> = all
        .iter()
        .map(|s| {
            [
                s.record.id.clone(),
                s.pid().to_string(),
                s.runc_status(),
                s.record.bundle.display().to_string(),
                s.record.created.clone(),
                "root".to_string(),
            ]
        })
        .collect();
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(0)
}

fn spec(bundle: &Path, rootless: bool) -> Result<u8> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} exists: remove it first", path.display());
    }
    let spec = quai_runtime::template::default_spec(rootless)?;
    let text = serde_json::to_string_pretty(&spec).context("encode config.json")?;
    fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}

/// `update`: a resources JSON file (`-r FILE`, `-` for stdin) or runc's
/// flags; the file wins, as with runc.
fn update(runtime: &Runtime, args: &UpdateArgs) -> Result<u8> {
    let patch: LinuxResources = match &args.resources {
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("read resources from stdin")?;
                text
            } else {
                fs::read_to_string(path)
                    .with_context(|| format!("read resources from {}", path.display()))?
            };
            serde_json::from_str(&text).with_context(|| {
                format!("{}: not an OCI linux.resources JSON object", path.display())
            })?
        }
        None => quai_runtime::cgroups::resources_from_flags(&UpdateFlags {
            blkio_weight: args.blkio_weight,
            cpu_period: args.cpu_period.clone(),
            cpu_quota: args.cpu_quota.clone(),
            cpu_burst: args.cpu_burst.clone(),
            cpu_shares: args.cpu_shares.clone(),
            cpu_rt_period: args.cpu_rt_period.clone(),
            cpu_rt_runtime: args.cpu_rt_runtime.clone(),
            cpu_idle: args.cpu_idle.clone(),
            cpuset_cpus: args.cpuset_cpus.clone(),
            cpuset_mems: args.cpuset_mems.clone(),
            memory: args.memory.clone(),
            memory_swap: args.memory_swap.clone(),
            memory_reservation: args.memory_reservation.clone(),
            kernel_memory: args.kernel_memory.clone(),
            kernel_memory_tcp: args.kernel_memory_tcp.clone(),
            pids_limit: args.pids_limit,
        })?,
    };
    runtime.update(&args.id, &patch)?;
    Ok(0)
}

/// `events`: with `--stats` one stats event, else a stats event every
/// interval and an oom event per OOM until the container is deleted. One
/// JSON object per line, as runc prints them.
fn events(runtime: &Runtime, id: &str, stats_once: bool, interval: &str) -> Result<u8> {
    if stats_once {
        let event = quai_runtime::cgroups::Event::stats(id, runtime.stats(id)?);
        print_json_line(&event)?;
        return Ok(0);
    }
    let interval = parse_interval(interval)?;
    let mut failure = None;
    runtime.events(id, interval, |event| match print_json_line(event) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            failure = Some(e);
            ControlFlow::Break(())
        }
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

fn print_json_line(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string(value).context("encode JSON")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").context("write to stdout")?;
    out.flush().context("write to stdout")?;
    Ok(())
}

/// A Go-style duration as runc's `--interval` takes it: `5s`, `500ms`,
/// `1m30s`, `2h`.
fn parse_interval(text: &str) -> Result<Duration> {
    let bad = || anyhow::anyhow!("--interval {text:?}: not a duration like 5s, 500ms or 1m30s");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..split].parse().map_err(|_| bad())?;
        rest = &rest[split..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(value * seconds);
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        bail!("--interval {text:?}: must be longer than zero");
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_interval;
    use std::time::Duration;

    #[test]
    fn intervals_parse_like_go_durations() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("1m30s").unwrap(), Duration::from_secs(90));
        for bad in ["", "5", "5x", "0s", "s"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
