//! The `--init` program (init/init.c, built by build.rs): written once per
//! state root to `<root>/init/quai-init`, read-only, and bind-mounted
//! read-only into containers at `/sbin/docker-init`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

pub const PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/quai-init"));

/// Puts the program at `path` unless an identical copy is there: written
/// to a temporary file, synced, made read-only and renamed into place.
pub fn install(path: &Path) -> Result<PathBuf> {
    if fs::read(path).is_ok_and(|b| b == PROGRAM) {
        return Ok(path.to_path_buf());
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).at("create directory", dir)?;
    let tmp = dir.join(format!(".quai-init-{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o555)
        .open(&tmp)
        .at("create", &tmp)?;
    f.write_all(PROGRAM).at("write", &tmp)?;
    f.sync_all().at("sync", &tmp)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o555)).at("chmod", &tmp)?;
    fs::rename(&tmp, path).at("rename into place", path)?;
    Ok(path.to_path_buf())
}
