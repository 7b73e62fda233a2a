//! Removing a container's traces: its runtime state (killing whatever is
//! left of it), its directories, its row. Shared by `rm`, `--rm` and the
//! repair of containers whose monitor died.

use std::fs;
use std::path::Path;

use quai_db::rusqlite::Connection;

use crate::error::{IoContext, Result};
use crate::lock::ContainerLock;
use crate::paths::Paths;
use crate::record::{self, Container};
use crate::volumes;

/// Kills what is left of container `id` in the runtime and removes its
/// runtime state; nothing to do when the runtime does not know it.
pub fn reap_runtime(paths: &Paths, id: &str) -> Result<()> {
    let root = paths.runtime_root();
    if !root.join(id).exists() {
        return Ok(());
    }
    let runtime = quai_runtime::Runtime::new(&root)?;
    match runtime.delete(id, true) {
        Ok(()) | Err(quai_runtime::RuntimeError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn remove_dir(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at("remove", path),
    }
}

/// Removes the container's directories. The overlay is normally mounted
/// only inside its monitor's mount namespace; anything mounted below the
/// container directory here is detached first all the same.
pub fn remove_files(paths: &Paths, id: &str) -> Result<()> {
    remove_tree(&paths.container_dir(id))?;
    remove_dir(&paths.run_dir(id))?;
    Ok(())
}

/// Removes a directory tree, detaching mounts below it first.
pub fn remove_tree(dir: &Path) -> Result<()> {
    detach_mounts_below(dir);
    remove_dir(dir)
}

/// Deletes the trash directories (removed containers' files) whose
/// monitor died before deleting them.
pub fn collect_trash(paths: &Paths) {
    let dir = paths.root.join("containers");
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(crate::paths::TRASH_PREFIX) else {
            continue;
        };
        let mut fields = rest.rsplitn(3, '-');
        let start = fields.next().and_then(|s| s.parse::<u64>().ok());
        let pid = fields.next().and_then(|s| s.parse::<i32>().ok());
        let owner_alive = match (pid, start) {
            (Some(pid), Some(start_time)) => {
                quai_runtime::procfs::ProcessIdentity { pid, start_time }.is_alive()
            }
            _ => false,
        };
        if !owner_alive {
            let _ = remove_tree(&e.path());
        }
    }
}

/// Lazily unmounts every mount at or below `dir` in this mount namespace.
pub fn detach_mounts_below(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut targets: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|t| t.replace("\\040", " ").replace("\\134", "\\"))
        .filter(|t| t == &prefix || t.starts_with(&format!("{prefix}/")))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = rustix::mount::unmount(t.as_str(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// Deletes the container's row (after its files are gone), its anonymous
/// volumes with `remove_volumes`... docker's `rm -v` and `--rm`.
pub fn delete_record(
    conn: &Connection,
    paths: &Paths,
    c: &Container,
    remove_volumes: bool,
) -> Result<()> {
    let anonymous: Vec<String> = if remove_volumes {
        let mut stmt = conn.prepare_cached(
            "SELECT v.name FROM container_volumes cv JOIN volumes v ON v.name = cv.volume \
             WHERE cv.container_id = ?1 AND v.anonymous = 1",
        )?;
        let rows = stmt
            .query_map([&c.id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        rows
    } else {
        Vec::new()
    };
    let tx = conn.unchecked_transaction()?;
    record::container_event(&tx, c, "destroy")?;
    record::delete(&tx, &c.id)?;
    tx.commit()?;
    for v in anonymous {
        if volumes::users(conn, &v)?.is_empty() {
            volumes::remove(conn, paths, &v, true)?;
        }
    }
    ContainerLock::remove_file(paths, &c.id);
    Ok(())
}
