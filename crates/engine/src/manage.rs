//! Container management that is not lifecycle: rename, top, prune,
//! `system restore`.

use std::collections::BTreeMap;
use std::process::Command;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::ids;
use crate::record::{self, Container, Status};

/// `docker top`: the host's `ps` output restricted to the container's
/// processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// Splits `ps` output into titles and rows; the last column (the
/// command) keeps its spaces.
pub fn parse_ps(output: &str, pids: &[i32]) -> Result<Top> {
    let mut lines = output.lines();
    let header = lines
        .next()
        .ok_or_else(|| EngineError::invalid("ps printed nothing"))?;
    let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| EngineError::invalid("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields: Vec<String> = Vec::new();
        let mut rest = line.trim_start();
        while fields.len() + 1 < titles.len() {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
        fields.push(rest.to_string());
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pids.contains(&pid) {
            processes.push(fields);
        }
    }
    Ok(Top { titles, processes })
}

/// `system restore`'s result: the ids started, and those that failed
/// with why.
pub type Restored = (Vec<String>, Vec<(String, EngineError)>);

impl Engine {
    /// Renames a container (docker rename).
    pub fn rename(&mut self, name_or_id: &str, new_name: &str) -> Result<()> {
        let new_name = ids::validate_name(new_name)?;
        let (_lock, c) = self.locked(name_or_id)?;
        if c.name == new_name {
            return Err(EngineError::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        let tx = self.store.db().write()?;
        let holder: Option<String> = tx
            .query_row(
                "SELECT id FROM containers WHERE name = ?1",
                [&new_name],
                |r| r.get(0),
            )
            .ok();
        if let Some(h) = holder {
            return Err(record::name_conflict(&new_name, &h));
        }
        tx.execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            (&c.id, &new_name),
        )?;
        let mut renamed = c.clone();
        renamed.name = new_name;
        let mut attrs = record::container_attributes(&renamed);
        attrs.insert("oldName".into(), format!("/{}", c.name));
        record::event(&tx, "container", "rename", &c.id, &attrs)?;
        tx.commit()?;
        // The embedded DNS answers for names: the new one from now on.
        for a in crate::netsetup::attachments(self.conn(), &c.id)? {
            if a.ipv4.is_some() || a.ipv6.is_some() {
                crate::netsetup::refresh_dns(self.store.db().conn(), &self.paths, &a.network)?;
            }
        }
        Ok(())
    }

    /// The container's processes as `ps ARGS` shows them (docker top).
    pub fn top(&mut self, name_or_id: &str, ps_args: &[String]) -> Result<Top> {
        let c = self.container(name_or_id)?;
        if !(c.state.status == Status::Running && c.monitor_alive()) {
            return Err(EngineError::conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        let runtime = quai_runtime::Runtime::new(&self.paths.runtime_root())?;
        let pids = runtime.pids(&c.id)?;
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let out = Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| EngineError::io("run ps (procps)", e))?;
        if !out.status.success() {
            return Err(EngineError::invalid(format!(
                "ps {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }

    /// Removes stopped containers (docker container prune); `keep`
    /// filters them. Returns the ids removed and the bytes reclaimed.
    pub fn prune_containers(
        &mut self,
        keep: &dyn Fn(&Container) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        let mut removed = Vec::new();
        let mut reclaimed = 0;
        for c in self.list()? {
            if !matches!(
                c.state.status,
                Status::Created | Status::Exited | Status::Dead
            ) {
                continue;
            }
            if !keep(&c) {
                continue;
            }
            let size = quai_image::store::dir_size(&self.paths.upper(&c.id)).unwrap_or(0);
            match self.remove(&c.id, false, false) {
                Ok(id) => {
                    removed.push(id);
                    reclaimed += size;
                }
                // Started or removed meanwhile: not ours to prune.
                Err(EngineError::Conflict(_)) | Err(EngineError::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("reclaimed".to_string(), reclaimed.to_string());
        record::event(self.conn(), "container", "prune", "", &attrs)?;
        Ok((removed, reclaimed))
    }

    /// After a reboot (or crashed monitors): every container whose monitor
    /// is gone is recorded as exited, and those whose policy says so are
    /// started again: `always`, and `unless-stopped` unless stopped by
    /// hand. Returns the ids started and the errors met.
    pub fn restore(&mut self) -> Result<Restored> {
        let mut started = Vec::new();
        let mut failed = Vec::new();
        crate::remove::collect_trash(&self.paths);
        for c in self.list()? {
            let policy = c.def.host_config.restart_policy.name.as_str();
            let wanted = match policy {
                "always" => true,
                "unless-stopped" => !c.state.manually_stopped,
                _ => false,
            };
            if !wanted || c.state.status.is_active() && c.monitor_alive() {
                continue;
            }
            if c.state.status == Status::Removing {
                continue;
            }
            match self.start(&c.id, None) {
                Ok(_) => started.push(c.id.clone()),
                Err(e) => failed.push((c.id.clone(), e)),
            }
        }
        Ok((started, failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output_is_filtered_by_pid() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                   root           1       0  0 10:00 ?        00:00:01 /sbin/init splash\n\
                   root        4242       1  0 10:01 ?        00:00:00 sleep 1000\n";
        let top = parse_ps(out, &[4242]).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(top.processes.len(), 1);
        assert_eq!(top.processes[0][7], "sleep 1000");
        assert!(parse_ps("USER CMD\nroot x\n", &[1]).is_err());
    }
}
