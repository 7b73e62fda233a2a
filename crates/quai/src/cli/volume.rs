//! `volume create|ls|inspect|rm|prune`.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::format::{go_json_pretty, human_size, Format, Template};
use super::{Exit, GlobalOptions};

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Set driver specific options
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opts: Vec<String>,
    /// The volume's name (default: a random one)
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
    /// The volume's name (as docker's --name)
    #[arg(long = "name", conflicts_with = "name")]
    pub name_flag: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "dangling=true", "name=x", "label=k")
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(value_name = "VOLUME", required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    #[arg(value_name = "VOLUME", required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

fn pairs(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

pub fn run(cmd: VolumeCommand, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let fail = |e: quai_engine::EngineError| Exit::with(1, e.to_string());
    match cmd {
        VolumeCommand::Create(a) => {
            let name = a.name.or(a.name_flag);
            let v = engine
                .create_volume(
                    name.as_deref(),
                    &a.driver,
                    &pairs(&a.labels),
                    &pairs(&a.opts),
                )
                .map_err(fail)?;
            println!("{}", v.name);
            Ok(())
        }
        VolumeCommand::Ls(a) => {
            let mut rows = Vec::new();
            for v in engine.volumes().map_err(fail)? {
                let mut keep = true;
                for f in &a.filters {
                    let (k, val) = f.split_once('=').ok_or_else(|| {
                        Exit::with(1, "bad format of filter (expected name=value)")
                    })?;
                    keep &= match k {
                        "name" => v.name.contains(val),
                        "driver" => v.driver == val,
                        "label" => match val.split_once('=') {
                            Some((lk, lv)) => v.labels.get(lk).map(String::as_str) == Some(lv),
                            None => v.labels.contains_key(val),
                        },
                        "dangling" => {
                            let unused = engine.volume_users(&v.name).map_err(fail)?.is_empty();
                            match val {
                                "true" | "1" => unused,
                                "false" | "0" => !unused,
                                _ => {
                                    return Err(Exit::with(
                                        1,
                                        format!("invalid filter 'dangling={val}'"),
                                    ))
                                }
                            }
                        }
                        other => return Err(Exit::with(1, format!("invalid filter '{other}'"))),
                    };
                }
                if keep {
                    rows.push(v);
                }
            }
            if a.quiet {
                for v in &rows {
                    println!("{}", v.name);
                }
                return Ok(());
            }
            let values: Vec<Value> = rows
                .iter()
                .map(|v| {
                    let view = v.view(engine.paths());
                    let labels: Vec<String> =
                        v.labels.iter().map(|(k, l)| format!("{k}={l}")).collect();
                    json!({
                        "Driver": view.driver,
                        "Name": view.name,
                        "Mountpoint": view.mountpoint,
                        "Scope": view.scope,
                        "Labels": labels.join(","),
                        "CreatedAt": view.created_at,
                    })
                })
                .collect();
            let format = Format::parse(a.format.as_deref(), "table {{.Driver}}\t{{.Name}}")?;
            print!(
                "{}",
                format.render(
                    &values,
                    &[
                        ("Driver", "DRIVER"),
                        ("Name", "VOLUME NAME"),
                        ("Mountpoint", "MOUNTPOINT"),
                        ("Scope", "SCOPE"),
                        ("Labels", "LABELS"),
                        ("CreatedAt", "CREATED AT"),
                    ]
                )?
            );
            Ok(())
        }
        VolumeCommand::Inspect(a) => {
            let template = match a.format.as_deref() {
                None | Some("") => None,
                Some("json") => Some(Template::parse("{{json .}}")?),
                Some(f) => Some(Template::parse(f)?),
            };
            let mut docs = Vec::new();
            let mut failed = false;
            for n in &a.names {
                match engine.volume(n).map_err(fail)? {
                    Some(v) => docs.push(serde_json::to_value(v.view(engine.paths()))?),
                    None => {
                        eprintln!("Error: No such volume: {n}");
                        failed = true;
                    }
                }
            }
            match template {
                None => println!("{}", go_json_pretty(&Value::Array(docs))),
                Some(t) => {
                    for d in &docs {
                        println!("{}", t.render(d)?);
                    }
                }
            }
            if failed {
                Err(Exit::status(1))
            } else {
                Ok(())
            }
        }
        VolumeCommand::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                match engine.remove_volume(n, a.force) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
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
        VolumeCommand::Prune(a) => {
            let mut label_filters = Vec::new();
            for f in &a.filters {
                match f.split_once('=') {
                    Some(("label", v)) => label_filters.push(v.to_string()),
                    Some(("all", v)) if v == "true" || v == "1" => {}
                    _ => return Err(Exit::with(1, format!("invalid filter '{f}'"))),
                }
            }
            let all = a.all || a.filters.iter().any(|f| f == "all=true" || f == "all=1");
            if !a.force {
                let what = if all {
                    "WARNING! This will remove all local volumes not used by at least one container."
                } else {
                    "WARNING! This will remove anonymous local volumes not used by at least one container."
                };
                eprint!("{what}\nAre you sure you want to continue? [y/N] ");
                io::stderr().flush()?;
                let mut line = String::new();
                io::stdin().lock().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    return Ok(());
                }
            }
            let mut removed = Vec::new();
            let mut reclaimed = 0;
            for v in engine.unused_volumes(all).map_err(fail)? {
                let keep = label_filters.iter().all(|l| match l.split_once('=') {
                    Some((k, val)) => v.labels.get(k).map(String::as_str) == Some(val),
                    None => v.labels.contains_key(l),
                });
                if !keep {
                    continue;
                }
                let size =
                    quai_image::store::dir_size(&engine.paths().volume_dir(&v.name)).unwrap_or(0);
                if engine.remove_volume(&v.name, false).is_ok() {
                    removed.push(v.name.clone());
                    reclaimed += size;
                }
            }
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                for n in &removed {
                    println!("{n}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", human_size(reclaimed));
            Ok(())
        }
    }
}
