//! The init layer: a read-only layer between a container's image and its
//! own changes that holds the mount points quai puts into every container
//! (`/proc`, `/sys`, `/dev`, `/etc/hosts`, ...), docker's "-init" layer.
//! Without it the runtime would create them in the container's upper
//! directory, and `diff` and `commit` would show them as the container's.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};

use crate::error::{IoContext, Result};

/// (path, is a directory)
const ENTRIES: &[(&str, bool)] = &[
    ("dev", true),
    ("proc", true),
    ("sys", true),
    ("etc", true),
    ("etc/hosts", false),
    ("etc/hostname", false),
    ("etc/resolv.conf", false),
];

/// What the topmost layer holding `path` has there: None when no layer
/// has it (or a whiteout hides it).
fn image_type(layers_top_first: &[PathBuf], path: &str) -> Option<FileType> {
    for layer in layers_top_first {
        let Ok(root) = crate::archive::open_dir(layer) else {
            continue;
        };
        match quai_runtime::safe_path::open_in_root_nofollow(
            root.as_fd(),
            Path::new(path),
            OFlags::PATH,
        ) {
            Ok(fd) => {
                let st = rustix::fs::fstat(&fd).ok()?;
                let ft = FileType::from_raw_mode(st.st_mode);
                if ft == FileType::CharacterDevice && st.st_rdev == 0 {
                    return None;
                }
                return Some(ft);
            }
            // A symlink on the way (ELOOP): the path is not plain here.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Some(FileType::Symlink),
            Err(_) => continue,
        }
    }
    None
}

/// Creates `<container dir>/init` unless it exists; `layers` are the
/// image's layer directories, bottom first.
pub fn ensure(container_dir: &Path, layers: &[PathBuf]) -> Result<PathBuf> {
    let dir = container_dir.join("init");
    if dir.is_dir() {
        return Ok(dir);
    }
    fs::create_dir_all(container_dir).at("create", container_dir)?;
    let tmp = container_dir.join(format!("init.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).at("create", &tmp)?;
    let top_first: Vec<PathBuf> = layers.iter().rev().cloned().collect();
    let mut skipped: Vec<&str> = Vec::new();
    for (path, is_dir) in ENTRIES {
        if skipped.iter().any(|s| path.starts_with(&format!("{s}/"))) {
            continue;
        }
        match (image_type(&top_first, path), is_dir) {
            (None, true) => fs::create_dir(tmp.join(path)).at("create", &tmp.join(path))?,
            (None, false) => {
                fs::write(tmp.join(path), b"").at("create", &tmp.join(path))?;
            }
            (Some(FileType::Directory), true) => {
                // Keep the image's directory; still make room for children.
                fs::create_dir(tmp.join(path)).at("create", &tmp.join(path))?;
                copy_mode(&top_first, path, &tmp.join(path));
            }
            (Some(_), true) => skipped.push(path),
            (Some(_), false) => {}
        }
    }
    fs::rename(&tmp, &dir).at("rename into place", &dir)?;
    Ok(dir)
}

/// Gives the init layer's copy of a directory the image's mode and owner
/// (an overlay directory takes the upper-most layer's attributes).
fn copy_mode(layers_top_first: &[PathBuf], path: &str, to: &Path) {
    for layer in layers_top_first {
        if let Ok(m) = fs::symlink_metadata(layer.join(path)) {
            if m.is_dir() {
                use std::os::unix::fs::{MetadataExt, PermissionsExt};
                let _ = fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777));
                let _ = std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_missing_mount_points_and_respects_the_image() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        fs::create_dir_all(layer.join("etc")).unwrap();
        fs::write(layer.join("etc/hosts"), "image's").unwrap();
        std::os::unix::fs::symlink("/nowhere", layer.join("sys")).unwrap();
        let c = tmp.path().join("c");
        let init = ensure(&c, std::slice::from_ref(&layer)).unwrap();
        assert!(init.join("proc").is_dir());
        assert!(init.join("dev").is_dir());
        assert!(init.join("etc").is_dir());
        assert!(init.join("etc/hostname").is_file());
        assert!(
            !init.join("etc/hosts").exists(),
            "the image's file stays visible"
        );
        assert!(
            !init.join("sys").exists(),
            "a symlink in the image is not shadowed"
        );
        // Idempotent.
        assert_eq!(ensure(&c, &[layer]).unwrap(), init);
    }
}
