//! The reverse of apply: an overlay upper directory (or any directory)
//! becomes a layer tar, for commit, export and the builder.
//!
//! The output is deterministic: entries sorted by name, parents before
//! children, no user/group names, no access or change times, the same
//! header format for every entry; the same tree always gives the same diff
//! id. Overlay whiteouts (0/0 character devices) become `.wh.NAME` entries
//! and opaque directories get a `.wh..wh..opq` entry.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::apply::{OPAQUE_WHITEOUT, OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};

/// Writes the layer tar of `dir` to `out`; returns its diff id and length.
pub fn diff_dir(dir: &Path, out: impl Write) -> Result<(Digest, u64)> {
    let mut builder = tar::Builder::new(HashingWriter::new(out));
    builder.follow_symlinks(false);
    let mut walker = Walker {
        builder: &mut builder,
        links: HashMap::new(),
    };
    walker.walk(dir, "")?;
    builder
        .finish()
        .ctx(|| format!("write layer of {}", dir.display()))?;
    let (_, digest, len) = builder
        .into_inner()
        .ctx(|| format!("write layer of {}", dir.display()))?
        .finish();
    Ok((digest, len))
}

struct Walker<'b, W: Write> {
    builder: &'b mut tar::Builder<W>,
    /// First path seen of each multiply-linked inode, for hardlink entries.
    links: HashMap<(u64, u64), String>,
}

fn base_header(meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value)?;
        value.truncate(len);
        out.push((name, value));
    }
    out.sort();
    Ok(out)
}

fn is_opaque(path: &Path) -> bool {
    let mut v = [0u8; 2];
    matches!(rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut v), Ok(1) if v[0] == b'y')
}

impl<W: Write> Walker<'_, W> {
    fn walk(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .at("read directory", dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .at("read directory", dir)?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let rel = format!("{prefix}{}", name.to_string_lossy());
            let meta = fs::symlink_metadata(&path).at("stat", &path)?;
            self.entry(&path, &rel, &meta)?;
            if meta.is_dir() {
                if is_opaque(&path) {
                    let mut h = base_header(&meta, tar::EntryType::Regular);
                    h.set_mode(0o644);
                    self.append(
                        &mut h,
                        &format!("{rel}/{OPAQUE_WHITEOUT}"),
                        io::empty(),
                        &path,
                    )?;
                }
                self.walk(&path, &format!("{rel}/"))?;
            }
        }
        Ok(())
    }

    fn append(
        &mut self,
        h: &mut tar::Header,
        name: &str,
        data: impl io::Read,
        path: &Path,
    ) -> Result<()> {
        self.builder
            .append_data(h, name, data)
            .ctx(|| format!("add {} to layer", path.display()))
    }

    fn entry(&mut self, path: &Path, rel: &str, meta: &fs::Metadata) -> Result<()> {
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            let mut h = base_header(meta, tar::EntryType::Regular);
            let (parent, name) = match rel.rsplit_once('/') {
                Some((p, n)) => (format!("{p}/"), n),
                None => (String::new(), rel),
            };
            return self.append(
                &mut h,
                &format!("{parent}{WHITEOUT_PREFIX}{name}"),
                io::empty(),
                path,
            );
        }
        let attrs = xattrs(path).at("read xattrs of", path)?;
        if !attrs.is_empty() {
            let pax: Vec<(String, Vec<u8>)> = attrs
                .into_iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
                .collect();
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .ctx(|| format!("add xattrs of {} to layer", path.display()))?;
        }
        if ft.is_dir() {
            let mut h = base_header(meta, tar::EntryType::Directory);
            return self.append(&mut h, &format!("{rel}/"), io::empty(), path);
        }
        if ft.is_symlink() {
            let target = fs::read_link(path).at("read symlink", path)?;
            let mut h = base_header(meta, tar::EntryType::Symlink);
            return self
                .builder
                .append_link(&mut h, rel, &target)
                .ctx(|| format!("add {} to layer", path.display()));
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                let mut h = base_header(meta, tar::EntryType::Link);
                let first = first.clone();
                return self
                    .builder
                    .append_link(&mut h, rel, &first)
                    .ctx(|| format!("add {} to layer", path.display()));
            }
            self.links.insert(key, rel.to_string());
        }
        if ft.is_file() {
            let mut h = base_header(meta, tar::EntryType::Regular);
            h.set_size(meta.len());
            let f = File::open(path).at("open", path)?;
            return self.append(&mut h, rel, f, path);
        }
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else if ft.is_fifo() {
            tar::EntryType::Fifo
        } else {
            return Err(Error::invalid(
                format!("layer of {}", path.display()),
                "sockets cannot be stored in a layer",
            ));
        };
        let mut h = base_header(meta, kind);
        let dev = meta.rdev();
        h.set_device_major(rustix::fs::major(dev))
            .ctx(|| "device number".into())?;
        h.set_device_minor(rustix::fs::minor(dev))
            .ctx(|| "device number".into())?;
        self.append(&mut h, rel, io::empty(), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply_layer, ApplyOptions};

    #[test]
    fn diff_round_trips_through_apply_and_is_deterministic() {
        quai_testutil::require_root();
        let upper = tempfile::tempdir().unwrap();
        let u = upper.path();
        fs::create_dir_all(u.join("etc/ssl")).unwrap();
        fs::write(u.join("etc/ssl/cert"), b"cert").unwrap();
        fs::write(u.join("b"), b"bee").unwrap();
        fs::hard_link(u.join("b"), u.join("b2")).unwrap();
        std::os::unix::fs::symlink("etc/ssl", u.join("ssl")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            u.join("gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        fs::create_dir(u.join("opaque")).unwrap();
        rustix::fs::setxattr(
            u.join("opaque"),
            OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let long = "d".repeat(120);
        fs::create_dir_all(u.join(&long)).unwrap();
        fs::write(u.join(&long).join("f".repeat(100)), b"long").unwrap();

        let mut tar1 = Vec::new();
        let (d1, len) = diff_dir(u, &mut tar1).unwrap();
        assert_eq!(len, tar1.len() as u64);
        assert_eq!(d1, Digest::of(&tar1));
        let (d2, _) = diff_dir(u, io::sink()).unwrap();
        assert_eq!(d1, d2, "same tree, same diff id");

        let names: Vec<String> = tar::Archive::new(&tar1[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&".wh.gone".to_string()), "{names:?}");
        assert!(
            names.contains(&format!("opaque/{OPAQUE_WHITEOUT}")),
            "{names:?}"
        );
        assert_eq!(
            names.first().map(String::as_str),
            Some("b"),
            "sorted: {names:?}"
        );

        let back = tempfile::tempdir().unwrap();
        let applied = apply_layer(&tar1[..], back.path(), "rt", &ApplyOptions::default()).unwrap();
        assert_eq!(applied.diff_id, d1);
        let b = back.path();
        assert_eq!(fs::read(b.join("etc/ssl/cert")).unwrap(), b"cert");
        assert_eq!(
            fs::metadata(b.join("b")).unwrap().ino(),
            fs::metadata(b.join("b2")).unwrap().ino()
        );
        assert!(fs::symlink_metadata(b.join("gone"))
            .unwrap()
            .file_type()
            .is_char_device());
        assert!(is_opaque(&b.join("opaque")));
        assert_eq!(
            fs::read(b.join(&long).join("f".repeat(100))).unwrap(),
            b"long"
        );
        // And the unpacked copy diffs to the same bytes.
        let (d3, _) = diff_dir(b, io::sink()).unwrap();
        assert_eq!(d3, d1);
    }
}
