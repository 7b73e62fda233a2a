//! `events`, `info`, `version` and `system restore`.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use quai_engine::events::Event;
use quai_engine::record::Status;
use quai_engine::units::{now_nanos, parse_timestamp};

use super::format::{go_json_pretty, Template};
use super::{Exit, GlobalOptions};

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Filter output based on conditions provided (container, event, image, label, type, volume)
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output using a custom template ('json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {}

const EVENT_FILTERS: &[&str] = &["container", "event", "image", "label", "type", "volume"];

fn matches(e: &Event, filters: &[(String, String)]) -> bool {
    for key in EVENT_FILTERS {
        let vals: Vec<&str> = filters
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        if vals.is_empty() {
            continue;
        }
        let hit = vals.iter().any(|v| match *key {
            "container" => {
                e.typ == "container"
                    && (e.actor.starts_with(v)
                        || e.attributes.get("name").map(String::as_str) == Some(v))
            }
            "event" => e.action == *v || e.action.split(':').next() == Some(v),
            "image" => e.attributes.get("image").map(String::as_str) == Some(v),
            "label" => match v.split_once('=') {
                Some((k, val)) => e.attributes.get(k).map(String::as_str) == Some(val),
                None => e.attributes.contains_key(*v),
            },
            "type" => e.typ == *v,
            "volume" => e.typ == "volume" && e.actor == *v,
            _ => false,
        });
        if !hit {
            return false;
        }
    }
    true
}

pub fn events(a: EventsArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let now = now_nanos();
    let ts = |v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| parse_timestamp(s, now).map_err(|e| Exit::with(1, e.to_string())))
            .transpose()
    };
    let since = ts(&a.since)?;
    let until = ts(&a.until)?;
    let mut filters = Vec::new();
    for f in &a.filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| Exit::with(1, "bad format of filter (expected name=value)"))?;
        if !EVENT_FILTERS.contains(&k) {
            return Err(Exit::with(1, format!("invalid filter '{k}'")));
        }
        filters.push((k.to_string(), v.to_string()));
    }
    let template = match a.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(f) => Some(Template::parse(f)?),
    };
    // Without --since, only what happens from now on (docker).
    let mut after = if since.is_some() {
        0
    } else {
        engine.last_event()?
    };
    loop {
        let batch = engine.events(after, since, until)?;
        for e in &batch {
            after = e.seq;
            if !matches(e, &filters) {
                continue;
            }
            let line = match &template {
                Some(t) => t.render(&e.to_json())?,
                None => e.line(),
            };
            println!("{line}");
        }
        if until.is_some_and(|u| u <= now_nanos()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn info_value(g: &GlobalOptions) -> Result<Value> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let containers = engine.list()?;
    let count = |s: &[Status]| {
        containers
            .iter()
            .filter(|c| s.contains(&c.state.status))
            .count()
    };
    let images = engine.images().list()?.len();
    let uname = rustix::system::uname();
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    let (cgroup_version, controllers) = quai_engine::resources::host_cgroups();
    let has = |c: &str| controllers.iter().any(|x| x == c);
    Ok(json!({
        "ID": "",
        "Containers": containers.len(),
        "ContainersRunning": count(&[Status::Running, Status::Restarting]),
        "ContainersPaused": count(&[Status::Paused]),
        "ContainersStopped": count(&[Status::Created, Status::Exited, Status::Dead]),
        "Images": images,
        "Driver": "overlay",
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "MemoryLimit": has("memory"),
        "SwapLimit": has("memory"),
        "CpuCfsPeriod": has("cpu"),
        "CpuCfsQuota": has("cpu"),
        "CPUShares": has("cpu"),
        "CPUSet": has("cpuset"),
        "PidsLimit": has("pids"),
        "OomKillDisable": has("memory") && cgroup_version == "1",
        "KernelVersion": uname.release().to_string_lossy(),
        "OperatingSystem": os,
        "OSType": "linux",
        "Architecture": uname.machine().to_string_lossy(),
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total,
        "DockerRootDir": g.root,
        "Name": uname.nodename().to_string_lossy(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"quai": {"path": "quai-runtime"}},
        "DefaultRuntime": "quai",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": ["WARNING: no bridge networking in this build of quai (see the README)"],
    }))
}

pub fn info(a: InfoArgs, g: &GlobalOptions) -> Result<()> {
    let v = info_value(g)?;
    if let Some(f) = a.format.as_deref() {
        let t = if f == "json" {
            Template::parse("{{json .}}")?
        } else {
            Template::parse(f)?
        };
        println!("{}", t.render(&v)?);
        return Ok(());
    }
    let s = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Server Version: {}", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    println!(" Logging Driver: {}", s("LoggingDriver"));
    println!(" Cgroup Driver: {}", s("CgroupDriver"));
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    println!(" Default Runtime: {}", s("DefaultRuntime"));
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" OSType: {}", s("OSType"));
    println!(" Architecture: {}", s("Architecture"));
    println!(" CPUs: {}", s("NCPU"));
    println!(" Total Memory: {}", s("MemTotal"));
    println!(" Name: {}", s("Name"));
    println!(" Docker Root Dir: {}", s("DockerRootDir"));
    for w in v["Warnings"].as_array().into_iter().flatten() {
        eprintln!("{}", w.as_str().unwrap_or_default());
    }
    Ok(())
}

pub fn version(a: VersionArgs) -> Result<()> {
    let uname = rustix::system::uname();
    let arch = match uname.machine().to_string_lossy().as_ref() {
        "x86_64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        other => other.to_string(),
    };
    let v = json!({
        "Client": {
            "Version": env!("CARGO_PKG_VERSION"),
            "ApiVersion": "1.50",
            "Os": "linux",
            "Arch": arch,
        },
        "Server": {
            "Version": env!("CARGO_PKG_VERSION"),
            "ApiVersion": "1.50",
            "MinAPIVersion": "1.24",
            "Os": "linux",
            "Arch": arch,
            "KernelVersion": uname.release().to_string_lossy(),
        },
    });
    match a.format.as_deref() {
        None | Some("") => {
            println!("quai version {}", env!("CARGO_PKG_VERSION"));
            println!("Client:");
            println!(" Version:           {}", env!("CARGO_PKG_VERSION"));
            println!(" API version:       1.50");
            println!(" OS/Arch:           linux/{arch}");
            println!();
            println!("Server: (daemonless: the engine runs in each quai command)");
            println!(" Engine:");
            println!("  Version:          {}", env!("CARGO_PKG_VERSION"));
            println!("  API version:      1.50 (minimum version 1.24)");
            println!("  OS/Arch:          linux/{arch}");
            println!("  Kernel Version:   {}", uname.release().to_string_lossy());
        }
        Some("json") => println!("{}", go_json_pretty(&v)),
        Some(f) => println!("{}", Template::parse(f)?.render(&v)?),
    }
    Ok(())
}

pub fn restore(_a: RestoreArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let (started, failed) = engine.restore()?;
    // Kernel leftovers (veths, port rules) of containers that are gone.
    if let Err(e) = engine.reclaim_networking() {
        eprintln!("Error: reclaim networking leftovers: {e}");
    }
    for id in &started {
        println!("{id}");
    }
    for (id, e) in &failed {
        eprintln!("Error: restart {id}: {e}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Exit::status(1))
    }
}

#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// `system reset`: every container, network (bridges, veths, nftables
/// table, DNS servers), image and volume, and quai's state directories.
pub fn reset(a: ResetArgs, g: &GlobalOptions) -> Result<()> {
    if !a.force {
        use std::io::{BufRead, Write};
        eprint!(
            "WARNING! This will remove:\n  - all containers\n  - all networks (bridges, nftables rules)\n  - all images\n  - all volumes\n  - {} and {}\nAre you sure you want to continue? [y/N] ",
            g.root.display(),
            g.runroot.display()
        );
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let mut failed = false;
    for c in engine.list()? {
        if let Err(e) = engine.remove(&c.id, true, true) {
            eprintln!("Error: remove container {}: {e}", c.name);
            failed = true;
        }
    }
    engine
        .network_reset()
        .map_err(|e| Exit::with(1, format!("Error: remove networks: {e}")))?;
    drop(engine);
    for dir in [&g.runroot, &g.root] {
        quai_engine::remove::remove_tree(dir)
            .map_err(|e| Exit::with(1, format!("Error: remove {}: {e}", dir.display())))?;
    }
    if failed {
        return Err(Exit::status(1));
    }
    Ok(())
}
