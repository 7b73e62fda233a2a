//! Copying the image's files at a volume's mount point into a new, empty
//! volume (docker's copy-up). The walk never follows a symlink: links are
//! copied as links, so an image cannot make the copy read host files.

use std::fs;
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{IoContext, Result};

/// True when `dir` holds nothing.
pub fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// Copies the tree at `src` (a directory already checked to be inside the
/// container's root) into `dst`, with owners, modes and times of files.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).at("stat", src)?;
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777)).at("chmod", dst)?;
    lchown(dst, Some(meta.uid()), Some(meta.gid())).at("chown", dst)?;
    for entry in fs::read_dir(src).at("read directory", src)? {
        let entry = entry.at("read directory", src)?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let m = fs::symlink_metadata(&from).at("stat", &from)?;
        let ft = m.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&from).at("read link", &from)?;
            std::os::unix::fs::symlink(&target, &to).at("create symlink", &to)?;
        } else if ft.is_dir() {
            fs::create_dir(&to).at("create directory", &to)?;
            copy_tree(&from, &to)?;
            continue;
        } else if ft.is_file() {
            fs::copy(&from, &to).at("copy", &from)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(m.mode() & 0o7777))
                .at("chmod", &to)?;
        } else {
            // Device nodes, fifos and sockets are not copied (docker copies
            // regular content only for volumes of plain images).
            continue;
        }
        lchown(&to, Some(m.uid()), Some(m.gid())).at("chown", &to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_dirs_and_links_without_following() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/file"), "data").unwrap();
        fs::set_permissions(src.join("sub/file"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", src.join("link")).unwrap();
        let dst = dir.path().join("dst");
        fs::create_dir(&dst).unwrap();
        assert!(is_empty_dir(&dst));
        copy_tree(&src, &dst).unwrap();
        assert_eq!(fs::read_to_string(dst.join("sub/file")).unwrap(), "data");
        assert_eq!(
            fs::metadata(dst.join("sub/file")).unwrap().mode() & 0o777,
            0o640
        );
        assert_eq!(
            fs::read_link(dst.join("link")).unwrap(),
            Path::new("/etc/shadow")
        );
        assert!(!is_empty_dir(&dst));
    }
}
