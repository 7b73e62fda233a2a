//! A container as the database keeps it: one row of `containers` whose
//! `config` column holds what `create` was asked and resolved
//! ([`Definition`]) and whose other columns hold its [`State`].

use std::collections::BTreeMap;

use quai_db::rusqlite::{params, Connection, OptionalExtension, Row};
use quai_runtime::procfs::ProcessIdentity;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::types::{Config, Health, HostConfig, MountPoint};
use crate::units::now_nanos;

/// Everything `create` settled; never changes afterwards except through
/// `rename` and `update`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Definition {
    pub config: Config,
    pub host_config: HostConfig,
    /// The program and its arguments (entrypoint + cmd resolved with the
    /// image's), as `inspect` reports them in `Path` and `Args`.
    pub path: String,
    pub args: Vec<String>,
    /// Binds, volumes and tmpfs mounts, resolved.
    pub mounts: Vec<MountPoint>,
    /// The image's default stop signal and user, resolved at create.
    pub image_ref: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Removing,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Paused => "paused",
            Status::Exited => "exited",
            Status::Removing => "removing",
            Status::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "created" => Status::Created,
            "running" => Status::Running,
            "restarting" => Status::Restarting,
            "paused" => Status::Paused,
            "exited" => Status::Exited,
            "removing" => Status::Removing,
            "dead" => Status::Dead,
            _ => return None,
        })
    }

    /// A monitor is supposed to be alive in this state.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Restarting | Status::Paused)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub monitor: Option<ProcessIdentity>,
    pub exit_code: i32,
    pub error: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub oom_killed: bool,
    pub restart_count: i64,
    pub manually_stopped: bool,
    pub health: Option<Health>,
}

impl Default for State {
    fn default() -> State {
        State {
            status: Status::Created,
            pid: 0,
            monitor: None,
            exit_code: 0,
            error: String::new(),
            started_at: 0,
            finished_at: 0,
            oom_killed: false,
            restart_count: 0,
            manually_stopped: false,
            health: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub created: i64,
    pub def: Definition,
    pub state: State,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// Whether the monitor recorded for this container is still the live
    /// process it was (pid and start time).
    pub fn monitor_alive(&self) -> bool {
        self.state.monitor.is_some_and(|m| m.is_alive())
    }
}

const COLUMNS: &str = "id, name, image_id, created, config, status, pid, monitor_pid, monitor_start, \
     exit_code, error, started_at, finished_at, oom_killed, restart_count, manually_stopped, health";

fn from_row(row: &Row) -> quai_db::rusqlite::Result<(Container, String, String, Option<String>)> {
    let monitor_pid: i32 = row.get(7)?;
    let monitor_start: i64 = row.get(8)?;
    let container = Container {
        id: row.get(0)?,
        name: row.get(1)?,
        image_id: row.get(2)?,
        created: row.get(3)?,
        def: Definition::default(),
        state: State {
            status: Status::Created,
            pid: row.get(6)?,
            monitor: (monitor_pid > 0).then_some(ProcessIdentity {
                pid: monitor_pid,
                start_time: monitor_start as u64,
            }),
            exit_code: row.get(9)?,
            error: row.get(10)?,
            started_at: row.get(11)?,
            finished_at: row.get(12)?,
            oom_killed: row.get(13)?,
            restart_count: row.get(14)?,
            manually_stopped: row.get(15)?,
            health: None,
        },
    };
    Ok((container, row.get(4)?, row.get(5)?, row.get(16)?))
}

fn finish(raw: (Container, String, String, Option<String>)) -> Result<Container> {
    let (mut c, config, status, health) = raw;
    c.def = serde_json::from_str(&config).map_err(|e| EngineError::Corrupt {
        id: c.id.clone(),
        reason: format!("config column: {e}"),
    })?;
    c.state.status = Status::parse(&status).ok_or_else(|| EngineError::Corrupt {
        id: c.id.clone(),
        reason: format!("unknown status {status:?}"),
    })?;
    c.state.health = match health {
        Some(h) => Some(serde_json::from_str(&h).map_err(|e| EngineError::Corrupt {
            id: c.id.clone(),
            reason: format!("health column: {e}"),
        })?),
        None => None,
    };
    Ok(c)
}

/// The container with exactly this id.
pub fn get(conn: &Connection, id: &str) -> Result<Option<Container>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"))?;
    let raw = stmt.query_row([id], from_row).optional()?;
    raw.map(finish).transpose()
}

/// Finds a container as docker does: full id, then exact name (with or
/// without the leading `/`), then a unique id prefix.
pub fn find(conn: &Connection, name_or_id: &str) -> Result<Container> {
    let not_found = || EngineError::NoSuchContainer(name_or_id.to_string());
    if name_or_id.is_empty() {
        return Err(not_found());
    }
    if name_or_id.len() == 64 {
        if let Some(c) = get(conn, name_or_id)? {
            return Ok(c);
        }
    }
    let name = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM containers WHERE name = ?1"))?;
    if let Some(raw) = stmt.query_row([name], from_row).optional()? {
        return finish(raw);
    }
    if !name_or_id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(not_found());
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM containers WHERE id >= ?1 AND id < ?2 LIMIT 2"
    ))?;
    let hi = format!("{name_or_id}\u{7f}");
    let rows: Vec<_> = stmt
        .query_map(params![name_or_id, hi], from_row)?
        .collect::<Result<_, _>>()?;
    match rows.len() {
        0 => Err(not_found()),
        1 => finish(rows.into_iter().next().expect("one row")),
        _ => Err(EngineError::invalid(format!(
            "multiple IDs found with provided prefix: {name_or_id}"
        ))),
    }
}

/// Every container, newest first.
/// The image ids containers name.
pub fn image_ids(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT DISTINCT image_id FROM containers")?;
    let ids = stmt
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<Vec<String>, _>>()?;
    Ok(ids)
}

pub fn list(conn: &Connection) -> Result<Vec<Container>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM containers ORDER BY created DESC, id"
    ))?;
    let rows: Vec<_> = stmt.query_map([], from_row)?.collect::<Result<_, _>>()?;
    rows.into_iter().map(finish).collect()
}

/// Inserts a new container; a taken name gives docker's conflict message.
pub fn insert(conn: &Connection, c: &Container) -> Result<()> {
    let config = serde_json::to_string(&c.def).map_err(|e| EngineError::Corrupt {
        id: c.id.clone(),
        reason: format!("encode config: {e}"),
    })?;
    let taken: Option<String> = conn
        .prepare_cached("SELECT id FROM containers WHERE name = ?1")?
        .query_row([&c.name], |r| r.get(0))
        .optional()?;
    if let Some(other) = taken {
        return Err(name_conflict(&c.name, &other));
    }
    conn.prepare_cached(
        "INSERT INTO containers (id, name, image_id, created, config, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        c.id,
        c.name,
        c.image_id,
        c.created,
        config,
        c.state.status.as_str()
    ])?;
    Ok(())
}

pub fn name_conflict(name: &str, holder: &str) -> EngineError {
    EngineError::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

/// Writes the state columns of container `id`.
pub fn save_state(conn: &Connection, id: &str, s: &State) -> Result<()> {
    let health = match &s.health {
        Some(h) => Some(serde_json::to_string(h).map_err(|e| EngineError::Corrupt {
            id: id.to_string(),
            reason: format!("encode health: {e}"),
        })?),
        None => None,
    };
    let (monitor_pid, monitor_start) = s
        .monitor
        .map(|m| (m.pid, m.start_time as i64))
        .unwrap_or((0, 0));
    conn.prepare_cached(
        "UPDATE containers SET status = ?2, pid = ?3, monitor_pid = ?4, monitor_start = ?5, \
         exit_code = ?6, error = ?7, started_at = ?8, finished_at = ?9, oom_killed = ?10, \
         restart_count = ?11, manually_stopped = ?12, health = ?13 WHERE id = ?1",
    )?
    .execute(params![
        id,
        s.status.as_str(),
        s.pid,
        monitor_pid,
        monitor_start,
        s.exit_code,
        s.error,
        s.started_at,
        s.finished_at,
        s.oom_killed,
        s.restart_count,
        s.manually_stopped,
        health
    ])?;
    Ok(())
}

/// Rewrites the definition of container `id` (rename, update).
pub fn save_definition(conn: &Connection, id: &str, def: &Definition) -> Result<()> {
    let config = serde_json::to_string(def).map_err(|e| EngineError::Corrupt {
        id: id.to_string(),
        reason: format!("encode config: {e}"),
    })?;
    conn.prepare_cached("UPDATE containers SET config = ?2 WHERE id = ?1")?
        .execute(params![id, config])?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM containers WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Appends an event (`docker events`).
pub fn event(
    conn: &Connection,
    typ: &str,
    action: &str,
    actor: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<()> {
    let attrs = serde_json::to_string(attributes).unwrap_or_else(|_| "{}".into());
    conn.prepare_cached(
        "INSERT INTO events (time, type, action, actor, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![now_nanos(), typ, action, actor, attrs])?;
    Ok(())
}

/// docker's attributes of a container event: name, image and labels.
pub fn container_attributes(c: &Container) -> BTreeMap<String, String> {
    let mut attrs = c.def.config.labels.clone();
    attrs.insert("name".into(), c.name.clone());
    attrs.insert("image".into(), c.def.config.image.clone());
    attrs
}

/// Records a container event.
pub fn container_event(conn: &Connection, c: &Container, action: &str) -> Result<()> {
    event(conn, "container", action, &c.id, &container_attributes(c))
}
