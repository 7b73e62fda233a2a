//! `rename`, `top`, `update`, `pause`, `unpause`, `container prune`
//! (`stats` is in its own module).

use std::io::{self, BufRead, Write};

use anyhow::Result;
use clap::Args;

use quai_engine::control::ResourceUpdate;
use quai_engine::record::Container;
use quai_engine::units::{now_nanos, parse_timestamp};

use super::create_flags::{parse_cpus, parse_memory, parse_restart};
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
    #[arg(short, long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long, value_name = "DECIMAL")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "INT")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "INT")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "INT", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "MEMS")]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "INT", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight", value_name = "UINT16")]
    pub blkio_weight: Option<u16>,
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

fn update_request(a: &UpdateArgs) -> Result<ResourceUpdate> {
    let bad = |e: anyhow::Error| Exit::with(1, format!("{e:#}"));
    let upd = ResourceUpdate {
        memory: parse_memory(a.memory.as_deref(), "memory").map_err(bad)?,
        memory_swap: parse_memory(a.memory_swap.as_deref(), "memory-swap").map_err(bad)?,
        memory_reservation: parse_memory(a.memory_reservation.as_deref(), "memory-reservation")
            .map_err(bad)?,
        nano_cpus: a
            .cpus
            .as_deref()
            .map(parse_cpus)
            .transpose()
            .map_err(bad)?
            .unwrap_or(0),
        cpu_shares: a.cpu_shares.unwrap_or(0),
        cpu_period: a.cpu_period.unwrap_or(0),
        cpu_quota: a.cpu_quota.unwrap_or(0),
        cpuset_cpus: a.cpuset_cpus.clone(),
        cpuset_mems: a.cpuset_mems.clone(),
        pids_limit: a.pids_limit,
        blkio_weight: a.blkio_weight.unwrap_or(0),
        restart_policy: a
            .restart
            .as_deref()
            .map(parse_restart)
            .transpose()
            .map_err(bad)?,
    };
    if !upd.changes_resources() && upd.restart_policy.is_none() {
        return Err(Exit::with(
            1,
            "you must provide one or more flags when using this command",
        ));
    }
    Ok(upd)
}

/// Runs `op` on each container, printing its name or docker's error line;
/// exits 1 when any failed.
fn each_container(
    containers: &[String],
    mut op: impl FnMut(&str) -> quai_engine::Result<()>,
) -> Result<()> {
    let mut failed = false;
    for c in containers {
        match op(c) {
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

pub fn update(a: UpdateArgs, g: &GlobalOptions) -> Result<()> {
    let upd = update_request(&a)?;
    let mut e = engine(g)?;
    each_container(&a.containers, |c| {
        for w in e.update(c, &upd)? {
            eprintln!("WARNING: {w}");
        }
        Ok(())
    })
}

pub fn pause(a: PauseArgs, g: &GlobalOptions) -> Result<()> {
    let mut e = engine(g)?;
    each_container(&a.containers, |c| e.pause(c))
}

pub fn unpause(a: PauseArgs, g: &GlobalOptions) -> Result<()> {
    let mut e = engine(g)?;
    each_container(&a.containers, |c| e.unpause(c))
}

pub fn stats(a: StatsArgs, g: &GlobalOptions) -> Result<()> {
    super::stats::run(a, g)
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
