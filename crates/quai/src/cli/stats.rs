//! `docker stats`: CPU, memory, network, block I/O and pids of containers
//! from their cgroups, in docker's columns and units. CPU % is the share of
//! the host's CPU time the container used between two samples, times the
//! number of CPUs (docker's formula), so one busy core reads 100%.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use quai_engine::control::Usage;
use quai_engine::record::Container;

use super::format::{bytes_size, human_size, Format};
use super::manage::StatsArgs;
use super::{Exit, GlobalOptions};

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

const HEADERS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// Time between the two samples of `--no-stream` and between refreshes.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// docker's CPU %: the container's CPU time over the host's, times the
/// number of CPUs.
pub fn cpu_percent(before: &Usage, now: &Usage) -> f64 {
    let cpu = now.cpu_total.saturating_sub(before.cpu_total) as f64;
    let system = now.system_cpu.saturating_sub(before.system_cpu) as f64;
    if cpu > 0.0 && system > 0.0 {
        cpu / system * now.online_cpus.max(1) as f64 * 100.0
    } else {
        0.0
    }
}

/// One row of the table, as docker's template fields name them.
pub fn row(
    label: &str,
    c: &Container,
    before: Option<&Usage>,
    now: Option<&Usage>,
    no_trunc: bool,
) -> Value {
    let id = if no_trunc {
        c.id.as_str()
    } else {
        c.short_id()
    };
    let zero = Usage::default();
    let u = now.unwrap_or(&zero);
    let cpu = match (before, now) {
        (Some(b), Some(n)) => cpu_percent(b, n),
        _ => 0.0,
    };
    let mem_percent = if u.memory_limit > 0 {
        u.memory as f64 / u.memory_limit as f64 * 100.0
    } else {
        0.0
    };
    json!({
        "Container": label,
        "ID": id,
        "Name": c.name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(u.memory), bytes_size(u.memory_limit)),
        "MemPerc": format!("{mem_percent:.2}%"),
        "NetIO": format!("{} / {}", human_size(u.net_rx), human_size(u.net_tx)),
        "BlockIO": format!("{} / {}", human_size(u.block_read), human_size(u.block_write)),
        "PIDs": u.pids.to_string(),
    })
}

fn select(e: &mut quai_engine::Engine, a: &StatsArgs) -> Result<Vec<(String, Container)>> {
    if a.containers.is_empty() {
        let all = e.list().map_err(|err| Exit::with(1, err.to_string()))?;
        let mut out: Vec<(String, Container)> = all
            .into_iter()
            .filter(|c| a.all || c.state.status.is_active())
            .map(|c| (c.short_id().to_string(), c))
            .collect();
        out.reverse();
        return Ok(out);
    }
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in &a.containers {
        match e.container(name) {
            Ok(c) => out.push((name.clone(), c)),
            Err(err) => missing.push(err.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(Exit::with(
            1,
            format!("Error response from daemon: {}", missing.join(", ")),
        ));
    }
    Ok(out)
}

fn sample(
    e: &mut quai_engine::Engine,
    containers: &[(String, Container)],
) -> Result<BTreeMap<String, Usage>> {
    let mut out = BTreeMap::new();
    for (_, c) in containers {
        if let Some(u) = e.usage(c).map_err(|err| Exit::with(1, err.to_string()))? {
            out.insert(c.id.clone(), u);
        }
    }
    Ok(out)
}

pub fn run(a: StatsArgs, g: &GlobalOptions) -> Result<()> {
    let format = Format::parse(a.format.as_deref(), DEFAULT_FORMAT)
        .map_err(|err| Exit::with(1, format!("{err:#}")))?;
    let mut e = g
        .engine()
        .map_err(|err| Exit::with(1, format!("{err:#}")))?;
    let named = !a.containers.is_empty();
    let mut containers = select(&mut e, &a)?;
    let mut before = sample(&mut e, &containers)?;
    let terminal = std::io::stdout().is_terminal();
    let mut first = true;
    loop {
        std::thread::sleep(if first {
            SAMPLE_INTERVAL
        } else {
            REFRESH_INTERVAL
        });
        first = false;
        let now = sample(&mut e, &containers)?;
        let rows: Vec<Value> = containers
            .iter()
            .map(|(label, c)| row(label, c, before.get(&c.id), now.get(&c.id), a.no_trunc))
            .collect();
        let text = format
            .render(&rows, HEADERS)
            .map_err(|err| Exit::with(1, format!("{err:#}")))?;
        let mut out = std::io::stdout().lock();
        if !a.no_stream && terminal {
            // docker redraws the table in place.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        write!(out, "{text}")?;
        out.flush()?;
        if a.no_stream {
            return Ok(());
        }
        before = now;
        if !named {
            // New containers appear, gone ones leave, as in docker.
            containers = select(&mut e, &a)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_dockers_formula() {
        let before = Usage {
            cpu_total: 1_000_000_000,
            system_cpu: 10_000_000_000,
            online_cpus: 2,
            ..Default::default()
        };
        // Half a second of one CPU while the host's two CPUs ran 1 s each.
        let now = Usage {
            cpu_total: 1_500_000_000,
            system_cpu: 12_000_000_000,
            online_cpus: 2,
            ..Default::default()
        };
        assert!((cpu_percent(&before, &now) - 50.0).abs() < 1e-9);
        assert_eq!(cpu_percent(&now, &now), 0.0);
    }
}
