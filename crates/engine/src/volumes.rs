//! Named volumes: a row in `volumes` and a directory
//! `<root>/volumes/<name>/_data` (created on first use). A volume in use by
//! a container (`container_volumes`) cannot be removed.

use std::collections::BTreeMap;
use std::fs;

use quai_db::rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{EngineError, IoContext, Result};
use crate::paths::Paths;
use crate::record;
use crate::units::{now_nanos, rfc3339_nanos};

#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub created: i64,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub anonymous: bool,
}

/// docker's `Volume` object (`volume inspect`, `volume ls --format`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeView {
    pub created_at: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: String,
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub scope: String,
}

impl Volume {
    pub fn view(&self, paths: &Paths) -> VolumeView {
        VolumeView {
            created_at: rfc3339_nanos(self.created),
            driver: self.driver.clone(),
            labels: self.labels.clone(),
            mountpoint: paths.volume_data(&self.name).to_string_lossy().into_owned(),
            name: self.name.clone(),
            options: self.options.clone(),
            scope: "local".into(),
        }
    }
}

fn from_row(r: &quai_db::rusqlite::Row) -> quai_db::rusqlite::Result<Volume> {
    let labels: String = r.get(3)?;
    let options: String = r.get(4)?;
    Ok(Volume {
        name: r.get(0)?,
        driver: r.get(1)?,
        created: r.get(2)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        options: serde_json::from_str(&options).unwrap_or_default(),
        anonymous: r.get(5)?,
    })
}

pub fn get(conn: &Connection, name: &str) -> Result<Option<Volume>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, driver, created, labels, options, anonymous FROM volumes WHERE name = ?1 AND status = 'ready'",
        )?
        .query_row([name], from_row)
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Volume>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, driver, created, labels, options, anonymous FROM volumes WHERE status = 'ready' ORDER BY name",
    )?;
    let rows = stmt.query_map([], from_row)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Creates the volume's row unless it exists (docker's `volume create` of
/// an existing name succeeds); returns whether it was created.
pub fn ensure(
    conn: &Connection,
    name: &str,
    driver: &str,
    labels: &BTreeMap<String, String>,
    options: &BTreeMap<String, String>,
    anonymous: bool,
) -> Result<bool> {
    if driver != "local" {
        return Err(EngineError::Unsupported(format!(
            "volume driver {driver:?} is not supported: quai has the local driver only"
        )));
    }
    if let Some(key) = options.keys().next() {
        return Err(EngineError::Unsupported(format!(
            "volume option {key:?} is not supported: quai's local volumes are directories"
        )));
    }
    let exists: Option<String> = conn
        .prepare_cached("SELECT status FROM volumes WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    match exists.as_deref() {
        Some("ready") => return Ok(false),
        Some(_) => {
            return Err(EngineError::conflict(format!(
                "volume {name} is being removed"
            )))
        }
        None => {}
    }
    conn.prepare_cached(
        "INSERT INTO volumes (name, driver, created, labels, options, anonymous) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        name,
        driver,
        now_nanos(),
        serde_json::to_string(labels).unwrap_or_else(|_| "{}".into()),
        serde_json::to_string(options).unwrap_or_else(|_| "{}".into()),
        anonymous
    ])?;
    let mut attrs = BTreeMap::new();
    attrs.insert("driver".to_string(), driver.to_string());
    record::event(conn, "volume", "create", name, &attrs)?;
    Ok(true)
}

/// Containers using volume `name`.
pub fn users(conn: &Connection, name: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT DISTINCT container_id FROM container_volumes WHERE volume = ?1")?;
    let rows = stmt
        .query_map([name], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Removes volume `name`: marked, its directory deleted, then its row
/// (a crash in between leaves a row that a second `rm` finishes).
pub fn remove(conn: &Connection, paths: &Paths, name: &str, force: bool) -> Result<()> {
    let exists: Option<String> = conn
        .prepare_cached("SELECT status FROM volumes WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        if force {
            return Ok(());
        }
        return Err(EngineError::NoSuchVolume(name.to_string()));
    }
    let users = users(conn, name)?;
    if let Some(c) = users.first() {
        return Err(EngineError::conflict(format!(
            "remove {name}: volume is in use - [{c}]"
        )));
    }
    conn.prepare_cached("UPDATE volumes SET status = 'removing' WHERE name = ?1")?
        .execute([name])?;
    let dir = paths.volume_dir(name);
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).at("remove volume directory", &dir),
    }
    conn.prepare_cached("DELETE FROM volumes WHERE name = ?1")?
        .execute([name])?;
    record::event(conn, "volume", "destroy", name, &BTreeMap::new())?;
    Ok(())
}

impl crate::Engine {
    /// A volume by name.
    pub fn volume(&mut self, name: &str) -> Result<Option<Volume>> {
        get(self.conn(), name)
    }

    /// Every volume, by name.
    pub fn volumes(&mut self) -> Result<Vec<Volume>> {
        list(self.conn())
    }

    /// docker volume create: a new name gets a row (its directory comes
    /// with first use); an existing one is returned as it is.
    pub fn create_volume(
        &mut self,
        name: Option<&str>,
        driver: &str,
        labels: &BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
    ) -> Result<Volume> {
        let name = match name {
            Some(n) => {
                crate::mounts::validate_volume_name(n)?;
                n.to_string()
            }
            None => crate::ids::new_id()?,
        };
        let tx = self.store.db().write()?;
        ensure(&tx, &name, driver, labels, options, false)?;
        tx.commit()?;
        get(self.conn(), &name)?.ok_or_else(|| EngineError::NoSuchVolume(name))
    }

    /// docker volume rm.
    pub fn remove_volume(&mut self, name: &str, force: bool) -> Result<()> {
        let paths = self.paths.clone();
        remove(self.conn(), &paths, name, force)
    }

    /// Names of the volumes no container uses (all, or only anonymous
    /// ones as docker's `volume prune` without `--all`).
    pub fn unused_volumes(&mut self, all: bool) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        for v in list(self.conn())? {
            if (all || v.anonymous) && users(self.conn(), &v.name)?.is_empty() {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Containers that use volume `name`.
    pub fn volume_users(&mut self, name: &str) -> Result<Vec<String>> {
        users(self.conn(), name)
    }
}
