//! The init layer: a read-only layer between a container's image and its
//! own changes that holds the mount points quai puts into every container
//! (`/proc`, `/sys`, `/dev`, `/etc/hosts`, ...), docker's "-init" layer.
//! Without it the runtime would create them in the container's upper
//! directory, and `diff` and `commit` would show them as the container's.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};

use quai_image::digest::Digest;

use crate::error::{IoContext, Result};
use crate::paths::Paths;

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

/// The init layer of the containers of image `image` (`layers`: its
/// layer directories, bottom first): `<root>/init-layers/<image hex>`,
/// made once per image and shared by its containers, a read-only lower
/// layer like the image's own (making it per container cost ~1.5 ms of
/// file system metadata at every first start, and as much again at its
/// removal). A container made when init layers were per container keeps
/// its own `<container>/init`. Made in a temporary directory renamed into
/// place: a crash leaves no half-made layer, and of two monitors making it
/// at once, one rename wins and the other uses its result.
pub fn ensure(
    paths: &Paths,
    container_dir: &Path,
    image: &Digest,
    layers: &[PathBuf],
) -> Result<PathBuf> {
    let own = container_dir.join("init");
    if own.is_dir() {
        return Ok(own);
    }
    let all = paths.init_layers();
    let dir = all.join(image.hex());
    if dir.is_dir() {
        return Ok(dir);
    }
    fs::create_dir_all(&all).at("create", &all)?;
    let tmp = all.join(format!("{}{TMP_MARK}{}", image.hex(), std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).at("create", &tmp)?;
    let made = fill(&tmp, layers).and_then(|()| match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(()),
        // Another monitor made it first.
        Err(_) if dir.is_dir() => Ok(()),
        Err(e) => Err(e).at("rename into place", &dir),
    });
    let _ = fs::remove_dir_all(&tmp);
    made.map(|()| dir)
}

/// Marks a layer being made: `<image hex>.tmp-<pid>`.
const TMP_MARK: &str = ".tmp-";

/// Makes in `tmp` the mount points the image lacks.
fn fill(tmp: &Path, layers: &[PathBuf]) -> Result<()> {
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
                fs::create_dir(tmp.join(path)).at("create", &tmp.join(path))?;
                copy_mode(&top_first, path, &tmp.join(path));
            }
            (Some(_), true) => skipped.push(path),
            (Some(_), false) => {}
        }
    }
    Ok(())
}

/// Removes the init layers of images that are gone and that no container
/// names any more (`in_use`: the image ids containers name), and layers
/// left half-made by a process that died.
pub fn prune(paths: &Paths, in_use: &[String], image_exists: impl Fn(&Digest) -> bool) {
    let Ok(entries) = fs::read_dir(paths.init_layers()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = match name.split_once(TMP_MARK) {
            Some((_, pid)) => !Path::new("/proc").join(pid).exists(),
            None => match Digest::parse(&format!("sha256:{name}")) {
                Ok(image) => {
                    !image_exists(&image) && !in_use.iter().any(|id| id == &image.to_string())
                }
                Err(_) => false,
            },
        };
        if stale {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

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
        let paths = Paths::new(&tmp.path().join("root"), &tmp.path().join("run"));
        let image = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let init = ensure(&paths, &c, &image, std::slice::from_ref(&layer)).unwrap();
        assert_eq!(init, paths.init_layers().join(image.hex()));
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
        // Idempotent, and shared by the image's containers.
        let other = tmp.path().join("c2");
        assert_eq!(
            ensure(&paths, &other, &image, std::slice::from_ref(&layer)).unwrap(),
            init
        );
        // A container made with an init layer of its own keeps it.
        fs::create_dir_all(other.join("init")).unwrap();
        assert_eq!(
            ensure(&paths, &other, &image, &[layer]).unwrap(),
            other.join("init")
        );
        assert_eq!(fs::read_dir(paths.init_layers()).unwrap().count(), 1);
    }

    #[test]
    fn prune_removes_layers_of_gone_images_only() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::new(&tmp.path().join("root"), &tmp.path().join("run"));
        let layer = tmp.path().join("layer");
        fs::create_dir_all(&layer).unwrap();
        let digest = |c: &str| Digest::parse(&format!("sha256:{}", c.repeat(64))).unwrap();
        let (kept, used, gone) = (digest("a"), digest("b"), digest("c"));
        for image in [&kept, &used, &gone] {
            ensure(
                &paths,
                &tmp.path().join("x"),
                image,
                std::slice::from_ref(&layer),
            )
            .unwrap();
        }
        // Half made by a process that died (pid numbers stop well below).
        let dead = paths
            .init_layers()
            .join(format!("{}{TMP_MARK}999999999", "d".repeat(64)));
        fs::create_dir_all(&dead).unwrap();
        prune(&paths, &[used.to_string()], |d| *d == kept);
        let mut left: Vec<String> = fs::read_dir(paths.init_layers())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![kept.hex().to_string(), used.hex().to_string()]);
    }
}
