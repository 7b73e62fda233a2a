//! `rename`, `top`, `update`, `pause`, `unpause`, `stats`,
//! `container prune`.

use std::io::{self, BufRead, Write};

use anyhow::Result;
use clap::Args;

use quai_engine::manage::needs_cgroups;
use quai_engine::record::Container;
use quai_engine::types::RestartPolicy;
use quai_engine::units::{now_nanos, parse_timestamp};

use super::format::{human_size, tabwrite};
use super::{Exit, GlobalOptions};

#[derive(Args, Debug)]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Options passed to ps (default -ef)
    #[arg(
        value_name = "ps OPTIONS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Memory limit
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PauseArgs {
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>", "label=<key>=<value>")
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

fn engine(g: &GlobalOptions) -> Result<quai_engine::Engine> {
    g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))
}

pub fn rename(a: RenameArgs, g: &GlobalOptions) -> Result<()> {
    let mut e = engine(g)?;
    e.rename(&a.container, &a.new_name)
        .map_err(|e| Exit::with(1, e.to_string()))
}

pub fn top(a: TopArgs, g: &GlobalOptions) -> Result<()> {
    let mut e = engine(g)?;
    let top = e
        .top(&a.container, &a.ps_args)
        .map_err(|e| Exit::with(1, e.to_string()))?;
    let mut lines = vec![top.titles.join("\t")];
    for p in &top.processes {
        lines.push(p.join("\t"));
    }
    print!("{}", tabwrite(&lines));
    Ok(())
}

pub fn update(a: UpdateArgs, g: &GlobalOptions) -> Result<()> {
    let cgroup_flags = [
        ("--memory", a.memory.is_some()),
        ("--memory-swap", a.memory_swap.is_some()),
        ("--cpus", a.cpus.is_some()),
        ("--cpu-shares", a.cpu_shares.is_some()),
        ("--cpuset-cpus", a.cpuset_cpus.is_some()),
        ("--pids-limit", a.pids_limit.is_some()),
    ];
    if let Some((flag, _)) = cgroup_flags.iter().find(|(_, set)| *set) {
        return Err(Exit::with(
            1,
            needs_cgroups(&format!("update {flag}")).to_string(),
        ));
    }
    let Some(restart) = &a.restart else {
        return Err(Exit::with(
            1,
            "you must provide one or more flags when using this command",
        ));
    };
    let (name, count) = match restart.split_once(':') {
        Some((n, c)) => (
            n,
            c.parse::<i64>()
                .map_err(|_| Exit::with(1, format!("invalid restart policy: {restart}")))?,
        ),
        None => (restart.as_str(), 0),
    };
    let policy = RestartPolicy {
        name: name.to_string(),
        maximum_retry_count: count,
    };
    let mut e = engine(g)?;
    let mut failed = false;
    for c in &a.containers {
        match e.update_restart_policy(c, policy.clone()) {
            Ok(()) => println!("{c}"),
            Err(err) => {
                eprintln!("Error response from daemon: {err}");
                failed = true;
            }
        }
    }
    if failed {
        Err(Exit::status(1))
    } else {
        Ok(())
    }
}

pub fn pause(_a: PauseArgs, _g: &GlobalOptions) -> Result<()> {
    Err(Exit::with(
        1,
        needs_cgroups("pause (the cgroup freezer)").to_string(),
    ))
}

pub fn unpause(_a: PauseArgs, _g: &GlobalOptions) -> Result<()> {
    Err(Exit::with(
        1,
        needs_cgroups("unpause (the cgroup freezer)").to_string(),
    ))
}

pub fn stats(_a: StatsArgs, _g: &GlobalOptions) -> Result<()> {
    Err(Exit::with(
        1,
        needs_cgroups("stats (cgroup usage counters)").to_string(),
    ))
}

fn confirm(prompt: &str) -> Result<bool> {
    eprint!("{prompt}\nAre you sure you want to continue? [y/N] ");
    io::stderr().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

pub fn prune(a: PruneArgs, g: &GlobalOptions) -> Result<()> {
    let now = now_nanos();
    let mut until: Option<i64> = None;
    let mut labels: Vec<(bool, String, Option<String>)> = Vec::new();
    for f in &a.filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| Exit::with(1, "bad format of filter (expected name=value)"))?;
        match k {
            "until" => {
                until = Some(parse_timestamp(v, now).map_err(|e| Exit::with(1, e.to_string()))?)
            }
            "label" | "label!" => {
                let (lk, lv) = match v.split_once('=') {
                    Some((a, b)) => (a.to_string(), Some(b.to_string())),
                    None => (v.to_string(), None),
                };
                labels.push((k == "label!", lk, lv));
            }
            other => return Err(Exit::with(1, format!("invalid filter '{other}'"))),
        }
    }
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(());
    }
    let keep = |c: &Container| -> bool {
        if until.is_some_and(|u| c.created >= u) {
            return false;
        }
        labels.iter().all(|(negate, k, v)| {
            let has = match v {
                Some(v) => c.def.config.labels.get(k) == Some(v),
                None => c.def.config.labels.contains_key(k),
            };
            has != *negate
        })
    };
    let mut e = engine(g)?;
    let (removed, reclaimed) = e.prune_containers(&keep)?;
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for id in &removed {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(())
}
