//! `ps`: docker's container listing, its filters and `--format`.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::json;

use quai_engine::record::{Container, Status};
use quai_engine::units::now_nanos;
use quai_engine::Engine;

use super::format::{go_time, human_duration, human_size, Format};
use super::{Exit, GlobalOptions};

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Filter output based on conditions provided (id, name, label, status, exited, ancestor, before, since, volume, health)
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long)]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(
        short = 'n',
        long = "last",
        default_value = "-1",
        allow_hyphen_values = true
    )]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
}

const KNOWN_FILTERS: &[&str] = &[
    "id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume", "health",
];

/// docker's `STATUS` column.
pub fn status_text(c: &Container, now: i64) -> String {
    let s = &c.state;
    let ago = |t: i64| human_duration((now - t) / 1_000_000_000);
    match s.status {
        Status::Created => "Created".into(),
        Status::Running | Status::Paused => {
            let mut t = format!("Up {}", ago(s.started_at));
            if s.status == Status::Paused {
                t.push_str(" (Paused)");
            } else if let Some(h) = &s.health {
                match h.status.as_str() {
                    "starting" => t.push_str(" (health: starting)"),
                    "" => {}
                    other => t.push_str(&format!(" ({other})")),
                }
            }
            t
        }
        Status::Restarting => format!("Restarting ({}) {} ago", s.exit_code, ago(s.finished_at)),
        Status::Exited => {
            if s.finished_at == 0 {
                "Created".into()
            } else {
                format!("Exited ({}) {} ago", s.exit_code, ago(s.finished_at))
            }
        }
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

fn command_text(c: &Container, no_trunc: bool) -> String {
    // docker's daemon quotes the arguments that hold a space.
    let mut cmd = c.def.path.clone();
    for a in &c.def.args {
        cmd.push(' ');
        if a.contains(' ') {
            cmd.push_str(&format!("'{a}'"));
        } else {
            cmd.push_str(a);
        }
    }
    if !no_trunc && cmd.chars().count() > 20 {
        cmd = cmd.chars().take(19).collect::<String>() + "…";
    }
    serde_json::to_string(&cmd).unwrap_or_default()
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

struct Filters(Vec<(String, String)>);

impl Filters {
    fn parse(raw: &[String]) -> Result<Filters> {
        let mut out = Vec::new();
        for f in raw {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
            let k = k.trim().to_ascii_lowercase();
            if !KNOWN_FILTERS.contains(&k.as_str()) {
                bail!("invalid filter '{k}'");
            }
            if k == "status"
                && ![
                    "created",
                    "restarting",
                    "running",
                    "removing",
                    "paused",
                    "exited",
                    "dead",
                ]
                .contains(&v)
            {
                bail!("invalid filter 'status={v}'");
            }
            if k == "health" && !["starting", "healthy", "unhealthy", "none"].contains(&v) {
                bail!("invalid filter 'health={v}'");
            }
            if k == "exited" && v.parse::<i32>().is_err() {
                bail!("invalid filter 'exited={v}'");
            }
            out.push((k, v.to_string()));
        }
        Ok(Filters(out))
    }

    fn values(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Keeps `c`? Values of one key are ORed, keys are ANDed (docker).
    fn keeps(&self, c: &Container, engine: &mut Engine, all: &[Container]) -> Result<bool> {
        let any = |vals: Vec<&str>, f: &mut dyn FnMut(&str) -> bool| {
            vals.is_empty() || vals.into_iter().any(f)
        };
        if !any(self.values("id"), &mut |v| c.id.starts_with(v)) {
            return Ok(false);
        }
        if !any(self.values("name"), &mut |v| {
            c.name.contains(v.trim_start_matches('/'))
        }) {
            return Ok(false);
        }
        let labels = &c.def.config.labels;
        if !self
            .values("label")
            .into_iter()
            .all(|v| match v.split_once('=') {
                Some((k, val)) => labels.get(k).map(String::as_str) == Some(val),
                None => labels.contains_key(v),
            })
        {
            return Ok(false);
        }
        if !any(self.values("status"), &mut |v| c.state.status.as_str() == v) {
            return Ok(false);
        }
        if !any(self.values("exited"), &mut |v| {
            c.state.status == Status::Exited && v.parse::<i32>().ok() == Some(c.state.exit_code)
        }) {
            return Ok(false);
        }
        if !any(self.values("health"), &mut |v| {
            let h = c
                .state
                .health
                .as_ref()
                .map(|h| h.status.as_str())
                .unwrap_or("none");
            h == v
        }) {
            return Ok(false);
        }
        if !any(self.values("volume"), &mut |v| {
            c.def
                .mounts
                .iter()
                .any(|m| m.name == v || m.destination == v || m.source == v)
        }) {
            return Ok(false);
        }
        let ancestors = self.values("ancestor");
        if !ancestors.is_empty() {
            let mut hit = false;
            for a in ancestors {
                if let Ok(id) = engine.images().resolve_id(a) {
                    if id.to_string() == c.image_id {
                        hit = true;
                    }
                }
            }
            if !hit {
                return Ok(false);
            }
        }
        for (key, before) in [("before", true), ("since", false)] {
            for v in self.values(key) {
                let other = all
                    .iter()
                    .find(|o| o.id.starts_with(v) || o.name == v.trim_start_matches('/'))
                    .ok_or_else(|| anyhow!("No such container: {v}"))?;
                let keep = if before {
                    c.created < other.created
                } else {
                    c.created > other.created
                };
                if !keep {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

pub fn ps(a: PsArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let filters = Filters::parse(&a.filters).map_err(|e| Exit::with(1, e.to_string()))?;
    let all = engine.list()?;
    let last = if a.latest { 1 } else { a.last };
    let show_all = a.all || last > 0 || !filters.0.is_empty();
    let mut shown = Vec::new();
    for c in &all {
        if !show_all
            && !matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Restarting
            )
        {
            continue;
        }
        if !filters.0.is_empty() && !filters.keeps(c, &mut engine, &all)? {
            continue;
        }
        shown.push(c.clone());
    }
    if last > 0 {
        shown.truncate(last as usize);
    }
    if a.quiet {
        for c in &shown {
            println!(
                "{}",
                if a.no_trunc {
                    c.id.as_str()
                } else {
                    c.short_id()
                }
            );
        }
        return Ok(());
    }
    let now = now_nanos();
    let mut rows = Vec::new();
    for c in &shown {
        let size = if a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size")) {
            let rw = quai_image::store::dir_size(&engine.paths().upper(&c.id)).unwrap_or(0);
            let base = quai_image::digest::Digest::parse(&c.image_id)
                .ok()
                .and_then(|d| engine.images().get(&d).ok())
                .map(|r| r.size)
                .unwrap_or(0);
            format!("{} (virtual {})", human_size(rw), human_size(rw + base))
        } else {
            String::new()
        };
        let mounts: Vec<String> = c
            .def
            .mounts
            .iter()
            .map(|m| {
                if m.name.is_empty() {
                    m.source.clone()
                } else {
                    m.name.clone()
                }
            })
            .collect();
        rows.push(json!({
            "ID": if a.no_trunc { c.id.clone() } else { c.short_id().to_string() },
            "Image": c.def.config.image,
            "Command": command_text(c, a.no_trunc),
            "CreatedAt": go_time(c.created / 1_000_000_000),
            "RunningFor": format!("{} ago", human_duration((now - c.created) / 1_000_000_000)),
            "Ports": quai_engine::netsetup::ports_column(
                &engine.published_ports(&c.id).unwrap_or_default(),
                c,
            ),
            "State": c.state.status.as_str(),
            "Status": status_text(c, now),
            "Size": size,
            "Names": c.name,
            "Labels": labels_text(&c.def.config.labels),
            "Mounts": mounts.join(","),
            "Networks": c.def.host_config.network_mode,
            "LocalVolumes": c.def.mounts.iter().filter(|m| m.typ == "volume").count().to_string(),
        }));
    }
    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let format =
        Format::parse(a.format.as_deref(), default).map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let out = format.render(
        &rows,
        &[
            ("ID", "CONTAINER ID"),
            ("Image", "IMAGE"),
            ("Command", "COMMAND"),
            ("CreatedAt", "CREATED AT"),
            ("RunningFor", "CREATED"),
            ("Ports", "PORTS"),
            ("State", "STATE"),
            ("Status", "STATUS"),
            ("Size", "SIZE"),
            ("Names", "NAMES"),
            ("Labels", "LABELS"),
            ("Mounts", "MOUNTS"),
            ("Networks", "NETWORKS"),
            ("LocalVolumes", "LOCAL VOLUMES"),
        ],
    )?;
    print!("{out}");
    Ok(())
}
