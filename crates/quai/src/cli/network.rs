//! `network create|ls|inspect|rm|prune|connect|disconnect` and `port`.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use anyhow::Result;
use clap::{Args, Subcommand};
use quai_engine::networks::{NetworkCreate, NetworkRecord};
use quai_engine::types::{EndpointIpamConfig, EndpointSettings};
use serde_json::{json, Value};

use super::format::{go_json_pretty, Format, Template};
use super::{Exit, GlobalOptions};

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network (only "bridge")
    #[arg(short, long)]
    pub driver: Option<String>,
    /// Subnet in CIDR format (one per address family)
    #[arg(long, value_name = "CIDR")]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 gateway for the subnet
    #[arg(long, value_name = "IP")]
    pub gateway: Vec<String>,
    /// Allocate container addresses from a sub-range
    #[arg(long = "ip-range", value_name = "CIDR")]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable IPv6 networking
    #[arg(long)]
    pub ipv6: bool,
    /// Set metadata on a network
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Set driver specific options (com.docker.network.driver.mtu=N, com.docker.network.bridge.name=DEV)
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opts: Vec<String>,
    /// Enable manual container attachment (always possible in quai)
    #[arg(long)]
    pub attachable: bool,
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge", "name=x", "id=x", "label=k", "type=custom")
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(value_name = "NETWORK", required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
    #[arg(value_name = "NETWORK", required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "ALIAS")]
    pub alias: Vec<String>,
    /// IPv4 address
    #[arg(long, value_name = "ADDRESS")]
    pub ip: Option<String>,
    /// IPv6 address
    #[arg(long, value_name = "ADDRESS")]
    pub ip6: Option<String>,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// PRIVATE_PORT[/PROTO]: only this port's bindings
    #[arg(value_name = "PRIVATE_PORT")]
    pub port: Option<String>,
}

fn pairs(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// docker's CLI prints the daemon's refusals as they are, exit status 1.
fn daemon_error(e: quai_engine::EngineError) -> anyhow::Error {
    eprintln!("Error response from daemon: {e}");
    Exit::status(1)
}

pub fn run(cmd: NetworkCommand, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    match cmd {
        NetworkCommand::Create(a) => {
            let rec = engine
                .network_create(&NetworkCreate {
                    name: a.name,
                    driver: a.driver,
                    subnets: a.subnet,
                    gateways: a.gateway,
                    ip_ranges: a.ip_range,
                    internal: a.internal,
                    ipv6: a.ipv6,
                    labels: pairs(&a.labels),
                    options: pairs(&a.opts),
                })
                .map_err(daemon_error)?;
            println!("{}", rec.net.id);
            Ok(())
        }
        NetworkCommand::Ls(a) => list(&mut engine, a),
        NetworkCommand::Inspect(a) => {
            let template = match a.format.as_deref() {
                None | Some("") => None,
                Some("json") => Some(Template::parse("{{json .}}")?),
                Some(f) => Some(Template::parse(f)?),
            };
            let mut docs = Vec::new();
            let mut failed = false;
            for n in &a.names {
                match engine.network_inspect(n) {
                    Ok(v) => docs.push(v),
                    Err(quai_engine::EngineError::NoSuchNetwork(_)) => {
                        eprintln!("Error: No such network: {n}");
                        failed = true;
                    }
                    Err(e) => return Err(daemon_error(e)),
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
        NetworkCommand::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                match engine.network_remove(n) {
                    Ok(_) => println!("{n}"),
                    Err(quai_engine::EngineError::NoSuchNetwork(_)) if a.force => {}
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
        NetworkCommand::Prune(a) => {
            if !a.force {
                eprint!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
                io::stderr().flush()?;
                let mut line = String::new();
                io::stdin().lock().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    return Ok(());
                }
            }
            let removed = engine.network_prune().map_err(daemon_error)?;
            if !removed.is_empty() {
                println!("Deleted Networks:");
                for n in &removed {
                    println!("{n}");
                }
            }
            Ok(())
        }
        NetworkCommand::Connect(a) => {
            let settings = EndpointSettings {
                ipam_config: (a.ip.is_some() || a.ip6.is_some()).then(|| EndpointIpamConfig {
                    ipv4_address: a.ip.clone().unwrap_or_default(),
                    ipv6_address: a.ip6.clone().unwrap_or_default(),
                }),
                aliases: (!a.alias.is_empty()).then(|| a.alias.clone()),
                mac_address: String::new(),
            };
            engine
                .network_connect(&a.network, &a.container, &settings)
                .map_err(daemon_error)
        }
        NetworkCommand::Disconnect(a) => engine
            .network_disconnect(&a.network, &a.container, a.force)
            .map_err(daemon_error),
    }
}

/// id, name, driver, IPv6, labels, internal.
type ListRow = (String, String, String, bool, BTreeMap<String, String>, bool);

fn list(engine: &mut quai_engine::Engine, a: LsArgs) -> Result<()> {
    let stored = engine.network_list().map_err(daemon_error)?;
    let mut rows: Vec<ListRow> = stored
        .iter()
        .map(|r: &NetworkRecord| {
            (
                r.net.id.clone(),
                r.net.name.clone(),
                "bridge".to_string(),
                r.net.ipv6.is_some(),
                r.net.labels.clone(),
                r.net.internal,
            )
        })
        .collect();
    for (id, name, driver) in quai_engine::networks::pseudo_networks() {
        rows.push((id, name, driver, false, BTreeMap::new(), false));
    }
    for f in &a.filters {
        let (k, val) = f
            .split_once('=')
            .ok_or_else(|| Exit::with(1, "bad format of filter (expected name=value)"))?;
        let predefined = |name: &str| quai_engine::networks::PREDEFINED.contains(&name);
        rows.retain(|(id, name, driver, _, labels, _)| match k {
            "name" => name.contains(val),
            "id" => id.starts_with(val),
            "driver" => driver == val,
            "label" => match val.split_once('=') {
                Some((lk, lv)) => labels.get(lk).map(String::as_str) == Some(lv),
                None => labels.contains_key(val),
            },
            "type" => match val {
                "custom" => !predefined(name),
                "builtin" => predefined(name),
                _ => false,
            },
            _ => true,
        });
        if !matches!(k, "name" | "id" | "driver" | "label" | "type") {
            return Err(Exit::with(1, format!("invalid filter '{k}'")));
        }
        if k == "type" && !matches!(val, "custom" | "builtin") {
            return Err(Exit::with(
                1,
                format!("invalid filter: 'type'='{val}' (use custom or builtin)"),
            ));
        }
    }
    rows.sort_by(|x, y| x.1.cmp(&y.1));
    let short = |id: &str| {
        if a.no_trunc {
            id.to_string()
        } else {
            id[..12.min(id.len())].to_string()
        }
    };
    if a.quiet {
        for r in &rows {
            println!("{}", short(&r.0));
        }
        return Ok(());
    }
    let values: Vec<Value> = rows
        .iter()
        .map(|(id, name, driver, ipv6, labels, internal)| {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            json!({
                "ID": short(id),
                "Name": name,
                "Driver": driver,
                "Scope": "local",
                "IPv6": ipv6.to_string(),
                "Internal": internal.to_string(),
                "Labels": labels.join(","),
            })
        })
        .collect();
    let format = Format::parse(
        a.format.as_deref(),
        "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    )?;
    print!(
        "{}",
        format.render(
            &values,
            &[
                ("ID", "NETWORK ID"),
                ("Name", "NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
                ("IPv6", "IPV6"),
                ("Internal", "INTERNAL"),
                ("Labels", "LABELS"),
            ]
        )?
    );
    Ok(())
}

/// `quai port CONTAINER [PRIVATE_PORT[/PROTO]]`.
pub fn port(a: PortArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let bindings = engine.published_ports(&a.container).map_err(daemon_error)?;
    let wanted = match &a.port {
        None => None,
        Some(p) => {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let port: u16 = port
                .parse()
                .map_err(|_| Exit::with(1, format!("invalid port ({p})")))?;
            Some((port, proto.to_string()))
        }
    };
    let mut shown = 0;
    for b in &bindings {
        if let Some((port, proto)) = &wanted {
            if b.container_port != *port || b.protocol.as_str() != proto {
                continue;
            }
        }
        // Every address: both families, as docker lists them.
        let mut hosts = vec![b.host_address()];
        if b.host_ip.is_none() {
            hosts.push(format!("[::]:{}", b.host_port));
        }
        for host in hosts {
            match &wanted {
                None => println!("{}/{} -> {host}", b.container_port, b.protocol),
                Some(_) => println!("{host}"),
            }
        }
        shown += 1;
    }
    if shown == 0 {
        if let Some(p) = &a.port {
            return Err(Exit::with(
                1,
                format!(
                    "No public port '{}' published for {}",
                    if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/tcp")
                    },
                    a.container
                ),
            ));
        }
    }
    Ok(())
}
