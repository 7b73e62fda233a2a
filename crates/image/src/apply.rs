//! Unpacking a layer tar into its own directory in overlay format.
//!
//! One pass over the stream: decompress (by magic bytes), hash the
//! uncompressed bytes (the diff id), and write each entry. Docker's
//! `.wh.NAME` whiteouts become overlay whiteouts (a 0/0 character device) and
//! `.wh..wh..opq` marks its directory opaque (`trusted.overlay.opaque=y`).
//!
//! Layer tars are hostile. Every path is resolved by the kernel inside the
//! layer root (openat2 with RESOLVE_IN_ROOT), so a symlink in the layer,
//! absolute or not, can never lead a write outside it; entries with `..`
//! components are refused; absolute names are taken relative to the root;
//! the final component is always created or changed without following a
//! symlink; hardlink targets are resolved inside the root as well; xattrs in
//! overlay's `trusted.overlay.` namespace are dropped (they would steer the
//! overlay mount); the uncompressed size is bounded.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;

use crate::compression::{decompress, Compression, LimitedReader, LIMIT_EXCEEDED};
use crate::content::{start_writeback, WRITEBACK_STEP};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// Default bound on a layer's uncompressed size (64 GiB).
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Uncompressed bytes after which unpacking stops with an error.
    pub max_size: u64,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            max_size: DEFAULT_MAX_LAYER_SIZE,
        }
    }
}

/// What unpacking a layer found.
#[derive(Debug, Clone)]
pub struct Applied {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Bytes of content (regular files once per inode, symlink targets).
    pub size: u64,
    pub compression: Compression,
}

/// Unpacks the layer read from `blob` into `target`, an existing empty
/// directory. `layer` names the layer in errors. On error `target` holds a
/// partial layer: the caller unpacks into a staging directory and removes it.
pub fn apply_layer(
    blob: impl Read,
    target: &Path,
    layer: &str,
    opts: &ApplyOptions,
) -> Result<Applied> {
    let io_err = |e: io::Error| {
        if e.to_string() == LIMIT_EXCEEDED {
            Error::TooLarge {
                what: format!("layer {layer}"),
                limit: opts.max_size,
            }
        } else {
            Error::invalid(format!("layer {layer}"), format!("read: {e}"))
        }
    };
    let (compression, plain) = decompress(blob).map_err(io_err)?;
    let hashing = HashingReader::new(LimitedReader::new(plain, opts.max_size));
    let root = rfs::open(
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::path("open layer directory", target, e.into()))?;
    let mut unpacker = Unpacker {
        root,
        layer,
        size: 0,
        dirs: Vec::new(),
        cached_parent: None,
        copy_buf: vec![0u8; COPY_BUF_SIZE],
    };
    let mut archive = tar::Archive::new(PadAtEof {
        inner: hashing,
        pad_left: TAR_TAIL,
    });
    {
        let entries = archive.entries().map_err(io_err)?;
        for entry in entries {
            let mut entry = entry.map_err(io_err)?;
            unpacker.entry(&mut entry).map_err(|e| match e {
                Error::Io { source, .. } if source.to_string() == LIMIT_EXCEEDED => io_err(source),
                other => other,
            })?;
        }
    }
    unpacker.fix_dir_times()?;
    // The diff id covers the whole stream, including the end-of-archive
    // blocks after the last entry.
    let (diff_id, _) = archive.into_inner().inner.finish().map_err(io_err)?;
    Ok(Applied {
        diff_id,
        size: unpacker.size,
        compression,
    })
}

/// Padding of a last entry plus the two zero blocks that end a tar.
const TAR_TAIL: usize = 511 + 1024;

/// Some writers (umoci, for one) end a layer right after the last entry's
/// data, without padding or end-of-archive blocks, and hash it that way:
/// supply those zeros after the real end (never counted in the diff id).
/// A stream cut short anywhere else still fails, and its diff id does not
/// match the config's.
struct PadAtEof<R> {
    inner: R,
    pad_left: usize,
}

impl<R: Read> Read for PadAtEof<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let k = buf.len().min(self.pad_left);
        buf[..k].fill(0);
        self.pad_left -= k;
        Ok(k)
    }
}

struct Unpacker<'a> {
    root: OwnedFd,
    layer: &'a str,
    size: u64,
    /// Directories whose times are set after their contents are written.
    dirs: Vec<(Vec<u8>, Timestamps)>,
    /// The last parent directory resolved, by path: most entries of a tar
    /// share their parent with the previous one.
    cached_parent: Option<(Vec<u8>, OwnedFd)>,
    /// File content passes through this one buffer (allocated once per
    /// layer, not per file).
    copy_buf: Vec<u8>,
}

/// A path split into checked components.
struct EntryPath<'p> {
    parent: Vec<&'p [u8]>,
    name: Option<&'p [u8]>,
}

fn split_path<'p>(raw: &'p [u8]) -> std::result::Result<EntryPath<'p>, &'static str> {
    let mut comps = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path has a \"..\" component"),
            c => comps.push(c),
        }
    }
    let name = comps.pop();
    Ok(EntryPath {
        parent: comps,
        name,
    })
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
}

fn timestamps(header: &tar::Header, pax: &PaxFields) -> Timestamps {
    let mtime = pax
        .mtime
        .unwrap_or_else(|| (header.mtime().unwrap_or(0) as i64, 0));
    let atime = pax.atime.unwrap_or(mtime);
    let ts = |(sec, nsec): (i64, i64)| Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    Timestamps {
        last_access: ts(atime),
        last_modification: ts(mtime),
    }
}

#[derive(Default)]
struct PaxFields {
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<(i64, i64)>,
    atime: Option<(i64, i64)>,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn parse_pax_time(v: &str) -> Option<(i64, i64)> {
    let (sec, frac) = v.split_once('.').unwrap_or((v, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut nanos = 0i64;
    for (i, c) in frac.chars().take(9).enumerate() {
        nanos += c.to_digit(10)? as i64 * 10i64.pow(8 - i as u32);
    }
    Some((sec, if sec < 0 { -nanos } else { nanos }))
}

impl Unpacker<'_> {
    fn hostile(&self, entry: &[u8], why: impl Into<String>) -> Error {
        Error::HostileEntry {
            layer: self.layer.to_string(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            why: why.into(),
        }
    }

    fn fail(&self, entry: &[u8], op: &str, e: impl Into<io::Error>) -> Error {
        Error::invalid(
            format!(
                "layer {}: entry {:?}",
                self.layer,
                String::from_utf8_lossy(entry)
            ),
            format!("{op}: {}", e.into()),
        )
    }

    fn pax(&self, entry: &mut tar::Entry<'_, impl Read>, raw: &[u8]) -> Result<PaxFields> {
        let mut out = PaxFields::default();
        let Some(exts) = entry
            .pax_extensions()
            .map_err(|e| self.fail(raw, "read pax header", e))?
        else {
            return Ok(out);
        };
        for ext in exts {
            let ext = ext.map_err(|e| self.fail(raw, "read pax header", e))?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            let text = std::str::from_utf8(value).ok();
            match key {
                "uid" => out.uid = text.and_then(|t| t.parse().ok()),
                "gid" => out.gid = text.and_then(|t| t.parse().ok()),
                "mtime" => out.mtime = text.and_then(parse_pax_time),
                "atime" => out.atime = text.and_then(parse_pax_time),
                k => {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        if !name.starts_with(OVERLAY_XATTR_PREFIX) {
                            out.xattrs.push((name.to_string(), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Opens directory `comps` inside the root, creating missing ones.
    fn parent_dir(&mut self, comps: &[&[u8]], raw: &[u8]) -> Result<BorrowedFd<'_>> {
        let key = join(comps);
        let hit = matches!(&self.cached_parent, Some((k, _)) if *k == key);
        if !hit {
            let fd = self.ensure_dir(comps, raw, 0)?;
            self.cached_parent = Some((key, fd));
        }
        Ok(self
            .cached_parent
            .as_ref()
            .map(|(_, fd)| fd.as_fd())
            .expect("cached parent"))
    }

    fn resolve(&self, path: &[u8]) -> rustix::io::Result<OwnedFd> {
        rfs::openat2(
            &self.root,
            OsStr::from_bytes(path),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    fn ensure_dir(&self, comps: &[&[u8]], raw: &[u8], depth: usize) -> Result<OwnedFd> {
        match self.resolve(&join(comps)) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT) if !comps.is_empty() && depth < 256 => {
                let (last, up) = comps.split_last().expect("non-empty");
                let parent = self.ensure_dir(up, raw, depth + 1)?;
                match rfs::mkdirat(&parent, OsStr::from_bytes(last), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(self.fail(raw, "create parent directory", e)),
                }
                self.resolve(&join(comps)).map_err(|e| {
                    if e == Errno::NOENT {
                        self.hostile(
                            raw,
                            "parent is a symlink to a directory missing from the layer",
                        )
                    } else {
                        self.fail(raw, "open parent directory", e)
                    }
                })
            }
            Err(e) => Err(self.fail(raw, "open parent directory", e)),
        }
    }

    /// Removes whatever is at `name` in `dir`, unless `keep_dir` and it is a
    /// directory. Returns whether a directory was kept.
    fn clear(&self, dir: BorrowedFd<'_>, name: &[u8], keep_dir: bool, raw: &[u8]) -> Result<bool> {
        let name_os = OsStr::from_bytes(name);
        let st = match rfs::statat(dir, name_os, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(self.fail(raw, "stat existing entry", e)),
        };
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if is_dir && keep_dir {
            return Ok(true);
        }
        let r = if is_dir {
            let path = format!("/proc/self/fd/{}/", dir.as_raw_fd());
            std::fs::remove_dir_all(Path::new(&path).join(name_os))
        } else {
            rfs::unlinkat(dir, name_os, AtFlags::empty()).map_err(io::Error::from)
        };
        r.map_err(|e| self.fail(raw, "replace existing entry", e))?;
        Ok(false)
    }

    fn entry(&mut self, entry: &mut tar::Entry<'_, impl Read>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let path = split_path(&raw).map_err(|why| self.hostile(&raw, why))?;
        let pax = self.pax(entry, &raw)?;
        let header = entry.header().clone();
        let uid = pax.uid.unwrap_or(header.uid().unwrap_or(0) as u32);
        let gid = pax.gid.unwrap_or(header.gid().unwrap_or(0) as u32);
        let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & 0o7777);
        let times = timestamps(&header, &pax);

        let Some(name) = path.name else {
            // The root itself ("./"): take its metadata.
            if kind == tar::EntryType::Directory {
                let root = self
                    .root
                    .try_clone()
                    .map_err(|e| self.fail(&raw, "dup", e))?;
                rfs::fchown(
                    &root,
                    Some(rfs::Uid::from_raw(uid)),
                    Some(rfs::Gid::from_raw(gid)),
                )
                .map_err(|e| self.fail(&raw, "chown", e))?;
                rfs::fchmod(&root, mode).map_err(|e| self.fail(&raw, "chmod", e))?;
                self.dirs.push((b".".to_vec(), times));
            }
            return Ok(());
        };
        let name_str = String::from_utf8_lossy(name);

        // Whiteouts.
        if name_str == OPAQUE_WHITEOUT {
            let dir = self.parent_dir(&path.parent, &raw)?;
            rfs::fsetxattr(dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| self.fail(&raw, "mark directory opaque", e))?;
            return Ok(());
        }
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(self.hostile(&raw, "whiteout of an invalid name"));
            }
            let hidden = hidden.as_bytes().to_vec();
            let dir = self
                .parent_dir(&path.parent, &raw)?
                .try_clone_to_owned()
                .map_err(|e| self.fail(&raw, "dup", e))?;
            self.clear(dir.as_fd(), &hidden, false, &raw)?;
            rfs::mknodat(
                &dir,
                OsStr::from_bytes(&hidden),
                FileType::CharacterDevice,
                Mode::empty(),
                rfs::makedev(0, 0),
            )
            .map_err(|e| self.fail(&raw, "create whiteout", e))?;
            self.chown_at(dir.as_fd(), &hidden, uid, gid, &raw)?;
            return Ok(());
        }

        let dir = self
            .parent_dir(&path.parent, &raw)?
            .try_clone_to_owned()
            .map_err(|e| self.fail(&raw, "dup", e))?;
        let name_os = OsStr::from_bytes(name);
        let kept_dir = self.clear(dir.as_fd(), name, kind == tar::EntryType::Directory, &raw)?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rfs::openat(
                    &dir,
                    name_os,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.fail(&raw, "create file", e))?;
                let mut file = File::from(fd);
                let written = write_sparse(&mut file, entry, &mut self.copy_buf).map_err(|e| {
                    Error::io(
                        format!("layer {}: entry {:?}: write", self.layer, name_str),
                        e,
                    )
                })?;
                self.size += written;
                rfs::fchown(
                    &file,
                    Some(rfs::Uid::from_raw(uid)),
                    Some(rfs::Gid::from_raw(gid)),
                )
                .map_err(|e| self.fail(&raw, "chown", e))?;
                // After chown, which clears setuid/setgid bits.
                rfs::fchmod(&file, mode).map_err(|e| self.fail(&raw, "chmod", e))?;
                for (k, v) in &pax.xattrs {
                    rfs::fsetxattr(&file, k.as_str(), v, XattrFlags::empty())
                        .map_err(|e| self.fail(&raw, &format!("set xattr {k}"), e))?;
                }
                rfs::futimens(&file, &times).map_err(|e| self.fail(&raw, "set times", e))?;
                return Ok(());
            }
            tar::EntryType::Directory => {
                if !kept_dir {
                    rfs::mkdirat(&dir, name_os, Mode::from_raw_mode(0o700))
                        .map_err(|e| self.fail(&raw, "create directory", e))?;
                }
                let mut full = path.parent.clone();
                full.push(name);
                self.dirs.push((join(&full), times.clone()));
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.hostile(&raw, "symlink without a target"))?
                    .into_owned();
                rfs::symlinkat(OsStr::from_bytes(&target), &dir, name_os)
                    .map_err(|e| self.fail(&raw, "create symlink", e))?;
                self.size += target.len() as u64;
                // A new symlink can change what a cached path resolves to.
                self.cached_parent = None;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.hostile(&raw, "hardlink without a target"))?
                    .into_owned();
                let tpath = split_path(&target)
                    .map_err(|why| self.hostile(&raw, format!("hardlink target: {why}")))?;
                let tname = tpath
                    .name
                    .ok_or_else(|| self.hostile(&raw, "hardlink to the layer root"))?;
                let tdir = self.resolve(&join(&tpath.parent)).map_err(|e| {
                    self.hostile(
                        &raw,
                        format!(
                            "hardlink target {:?} is not in the layer: {e}",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
                rfs::linkat(
                    &tdir,
                    OsStr::from_bytes(tname),
                    &dir,
                    name_os,
                    AtFlags::empty(),
                )
                .map_err(|e| {
                    if e == Errno::NOENT {
                        self.hostile(
                            &raw,
                            format!(
                                "hardlink target {:?} is not in the layer",
                                String::from_utf8_lossy(&target)
                            ),
                        )
                    } else {
                        self.fail(&raw, "create hardlink", e)
                    }
                })?;
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rfs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rfs::mknodat(&dir, name_os, ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| self.fail(&raw, "create device node", e))?;
            }
            other => {
                tracing::debug!(layer = self.layer, entry = %name_str, kind = ?other, "skipping tar entry of unsupported type");
                return Ok(());
            }
        }
        // Metadata of what was created above, never following a symlink.
        self.chown_at(dir.as_fd(), name, uid, gid, &raw)?;
        let is_symlink = kind == tar::EntryType::Symlink;
        if !is_symlink {
            rfs::chmodat(&dir, name_os, mode, AtFlags::empty())
                .map_err(|e| self.fail(&raw, "chmod", e))?;
        }
        if !pax.xattrs.is_empty() {
            let proc_path = Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name_os);
            for (k, v) in &pax.xattrs {
                rfs::lsetxattr(&proc_path, k.as_str(), v, XattrFlags::empty())
                    .map_err(|e| self.fail(&raw, &format!("set xattr {k}"), e))?;
            }
        }
        if kind != tar::EntryType::Directory {
            rfs::utimensat(&dir, name_os, &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.fail(&raw, "set times", e))?;
        }
        Ok(())
    }

    fn chown_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        uid: u32,
        gid: u32,
        raw: &[u8],
    ) -> Result<()> {
        rfs::chownat(
            dir,
            OsStr::from_bytes(name),
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.fail(raw, "chown", e))
    }

    /// Sets directory times last (writing into a directory changes its
    /// mtime), deepest first.
    fn fix_dir_times(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.iter().filter(|&&b| b == b'/').count()));
        for (path, times) in dirs {
            // A later entry may have replaced the directory: skip then.
            if let Ok(fd) = self.resolve(&path) {
                rfs::futimens(&fd, &times)
                    .map_err(|e| self.fail(&path, "set directory times", e))?;
            }
        }
        Ok(())
    }
}

/// Size of the buffer file content is copied through.
const COPY_BUF_SIZE: usize = 1 << 20;

/// Copies an entry's content, leaving holes where whole 4 KiB blocks are
/// zero (tar's sparse files come back sparse). Returns the file size.
fn write_sparse(file: &mut File, reader: &mut impl Read, buf: &mut [u8]) -> io::Result<u64> {
    const BLOCK: usize = 4096;
    let mut offset: u64 = 0;
    let mut writeback_from: u64 = 0;
    let mut hole_pending = false;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = reader.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        // Runs of data blocks go out in one write each: a write per 4 KiB
        // block made unpacking a large layer syscall-bound.
        let data = &buf[..filled];
        let mut start = 0;
        while start < data.len() {
            let block_end = |at: usize| (at + BLOCK).min(data.len());
            let is_hole = |at: usize| block_end(at) - at == BLOCK && is_zero(&data[at..at + BLOCK]);
            let mut end = start;
            if is_hole(start) {
                while end < data.len() && is_hole(end) {
                    end = block_end(end);
                }
                hole_pending = true;
            } else {
                while end < data.len() && !is_hole(end) {
                    end = block_end(end);
                }
                if hole_pending {
                    rfs::seek(&*file, rfs::SeekFrom::Start(offset))?;
                    hole_pending = false;
                }
                file.write_all(&data[start..end])?;
            }
            offset += (end - start) as u64;
            start = end;
        }
        if offset - writeback_from >= WRITEBACK_STEP {
            start_writeback(file, writeback_from);
            writeback_from = offset;
        }
    }
    if hole_pending {
        rfs::ftruncate(&*file, offset)?;
    }
    // Large files start on their way to the disk now; small ones wait for
    // the layer's sync.
    if offset >= 1 << 20 {
        start_writeback(file, writeback_from);
    }
    Ok(offset)
}

fn is_zero(chunk: &[u8]) -> bool {
    let words = chunk.chunks_exact(8);
    let tail_zero = words.remainder().iter().all(|&b| b == 0);
    tail_zero
        && words
            .map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
            .all(|w| w == 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    /// Builds tars entry by entry, writing names as given (even hostile
    /// ones that `tar::Builder` would refuse).
    pub(crate) struct TarMaker {
        b: tar::Builder<Vec<u8>>,
    }

    impl TarMaker {
        pub(crate) fn new() -> Self {
            TarMaker {
                b: tar::Builder::new(Vec::new()),
            }
        }
        fn header(kind: tar::EntryType, path: &str, mode: u32) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_mode(mode);
            h.set_mtime(1_600_000_000);
            h.set_size(0);
            h
        }
        pub(crate) fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
            let mut h = Self::header(tar::EntryType::Regular, path, mode);
            h.set_size(data.len() as u64);
            h.set_cksum();
            self.b.append(&h, data).unwrap();
            self
        }
        pub(crate) fn dir(mut self, path: &str) -> Self {
            let mut h = Self::header(tar::EntryType::Directory, path, 0o755);
            h.set_cksum();
            self.b.append(&h, &[][..]).unwrap();
            self
        }
        pub(crate) fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
            let mut h = Self::header(kind, path, 0o777);
            h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
            h.set_cksum();
            self.b.append(&h, &[][..]).unwrap();
            self
        }
        pub(crate) fn with(mut self, f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Self {
            f(&mut self.b);
            self
        }
        pub(crate) fn finish(self) -> Vec<u8> {
            self.b.into_inner().unwrap()
        }
    }

    fn apply(tar: &[u8]) -> (tempfile::TempDir, Result<Applied>) {
        let dir = tempfile::tempdir().unwrap();
        let r = apply_layer(tar, dir.path(), "test", &ApplyOptions::default());
        (dir, r)
    }

    #[test]
    fn unpacks_every_kind_of_entry_with_its_metadata() {
        quai_testutil::require_root();
        let tar = TarMaker::new()
            .dir("./")
            .dir("etc/")
            .file("etc/hosts", b"127.0.0.1 localhost\n", 0o644)
            .file("bin/su", b"#!setuid", 0o4755)
            .link(tar::EntryType::Symlink, "etc/alias", "hosts")
            .link(tar::EntryType::Link, "etc/hardhosts", "etc/hosts")
            .with(|b| {
                let mut h = tar::Header::new_gnu();
                h.set_path("dev/null").unwrap();
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
                h.set_mode(0o666);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
                let mut h = tar::Header::new_gnu();
                h.set_path("run/fifo").unwrap();
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o600);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
                let data = b"owned";
                let mut h = tar::Header::new_ustar();
                h.set_path("home/user/owned").unwrap();
                h.set_uid(1000);
                h.set_gid(2000);
                h.set_mode(0o640);
                h.set_mtime(1_234_567_890);
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append_pax_extensions([
                    ("SCHILY.xattr.user.color", &b"blue"[..]),
                    ("SCHILY.xattr.trusted.overlay.redirect", &b"/x"[..]),
                ])
                .unwrap();
                b.append(&h, &data[..]).unwrap();
                // A sparse-looking file: 1 MiB of zeros around one byte.
                let mut data = vec![0u8; 1 << 20];
                data[500_000] = 1;
                let mut h = tar::Header::new_gnu();
                h.set_path("var/sparse").unwrap();
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, &data[..]).unwrap();
            })
            .finish();
        let (dir, r) = apply(&tar);
        let applied = r.unwrap();
        assert_eq!(applied.diff_id, Digest::of(&tar));
        assert_eq!(applied.compression, Compression::None);
        let root = dir.path();
        assert_eq!(
            fs::read(root.join("etc/hosts")).unwrap(),
            b"127.0.0.1 localhost\n"
        );
        assert_eq!(
            fs::symlink_metadata(root.join("bin/su")).unwrap().mode() & 0o7777,
            0o4755
        );
        assert_eq!(
            fs::read_link(root.join("etc/alias")).unwrap(),
            Path::new("hosts")
        );
        let a = fs::metadata(root.join("etc/hosts")).unwrap();
        let b = fs::metadata(root.join("etc/hardhosts")).unwrap();
        assert_eq!(a.ino(), b.ino());
        let null = fs::metadata(root.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rfs::makedev(1, 3));
        assert!(fs::metadata(root.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        let owned = fs::metadata(root.join("home/user/owned")).unwrap();
        assert_eq!(
            (owned.uid(), owned.gid(), owned.mode() & 0o777),
            (1000, 2000, 0o640)
        );
        assert_eq!(owned.mtime(), 1_234_567_890);
        let mut color = [0u8; 16];
        let n = rfs::getxattr(root.join("home/user/owned"), "user.color", &mut color).unwrap();
        assert_eq!(&color[..n], b"blue");
        assert!(rfs::getxattr(
            root.join("home/user/owned"),
            "trusted.overlay.redirect",
            &mut color
        )
        .is_err());
        // Directory times are set after their contents were written.
        assert_eq!(
            fs::metadata(root.join("etc")).unwrap().mtime(),
            1_600_000_000
        );
        let sparse = fs::metadata(root.join("var/sparse")).unwrap();
        assert_eq!(sparse.len(), 1 << 20);
        assert!(
            sparse.blocks() * 512 < 64 * 1024,
            "{} blocks",
            sparse.blocks()
        );
        assert_eq!(fs::read(root.join("var/sparse")).unwrap()[500_000], 1);
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        quai_testutil::require_root();
        let tar = TarMaker::new()
            .dir("etc/")
            .file("etc/.wh.passwd", b"", 0o644)
            .dir("opt/")
            .file("opt/.wh..wh..opq", b"", 0o644)
            .finish();
        let (dir, r) = apply(&tar);
        r.unwrap();
        let wh = fs::symlink_metadata(dir.path().join("etc/passwd")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!dir.path().join("etc/.wh.passwd").exists());
        let mut v = [0u8; 4];
        let n = rfs::getxattr(dir.path().join("opt"), OPAQUE_XATTR, &mut v).unwrap();
        assert_eq!(&v[..n], b"y");
        assert!(!dir.path().join("opt/.wh..wh..opq").exists());
    }

    #[test]
    fn dot_dot_entries_are_refused() {
        for tar in [
            TarMaker::new().file("../escape", b"x", 0o644).finish(),
            TarMaker::new().file("a/../../escape", b"x", 0o644).finish(),
            TarMaker::new().file("../.wh.escape", b"", 0o644).finish(),
            TarMaker::new()
                .file("ok", b"x", 0o644)
                .link(tar::EntryType::Link, "l", "../../etc/passwd")
                .finish(),
        ] {
            let outer = tempfile::tempdir().unwrap();
            let target = outer.path().join("layer");
            fs::create_dir(&target).unwrap();
            let err =
                apply_layer(&tar[..], &target, "hostile", &ApplyOptions::default()).unwrap_err();
            assert!(matches!(err, Error::HostileEntry { .. }), "{err}");
            assert!(err.to_string().contains("layer hostile"), "{err}");
            assert!(!outer.path().join("escape").exists());
            assert!(!outer.path().join("l").exists());
        }
    }

    #[test]
    fn absolute_names_stay_inside_the_layer() {
        quai_testutil::require_root();
        let tar = TarMaker::new()
            .file("/abs-file", b"x", 0o644)
            .file("/.wh.abs-whiteout", b"", 0o644)
            .finish();
        let (dir, r) = apply(&tar);
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("abs-file")).unwrap(), b"x");
        assert!(fs::symlink_metadata(dir.path().join("abs-whiteout"))
            .unwrap()
            .file_type()
            .is_char_device());
        assert!(!Path::new("/abs-file").exists());
    }

    #[test]
    fn writes_through_symlinks_are_confined_to_the_layer() {
        let outside = tempfile::tempdir().unwrap();
        let out = outside.path().to_str().unwrap().to_string();
        // a -> <outside dir> (absolute), b -> ../../../<outside> (relative):
        // both resolve inside the layer root, where those dirs do not exist.
        for link in [out.clone(), format!("../../../../../../..{out}")] {
            let tar = TarMaker::new()
                .link(tar::EntryType::Symlink, "a", &link)
                .file("a/passwd", b"pwned", 0o644)
                .finish();
            let (_dir, r) = apply(&tar);
            let err = r.unwrap_err();
            assert!(matches!(err, Error::HostileEntry { .. }), "{err}");
            assert!(!outside.path().join("passwd").exists());
        }
        // With the target present inside the layer, the write lands there.
        let tar = TarMaker::new()
            .dir("etc/")
            .link(tar::EntryType::Symlink, "a", "/etc")
            .file("a/passwd", b"confined", 0o644)
            .finish();
        let (dir, r) = apply(&tar);
        r.unwrap();
        assert_eq!(
            fs::read(dir.path().join("etc/passwd")).unwrap(),
            b"confined"
        );
        // A symlink as the final component is replaced, not followed.
        let victim = outside.path().join("victim");
        fs::write(&victim, b"safe").unwrap();
        let tar = TarMaker::new()
            .link(tar::EntryType::Symlink, "v", victim.to_str().unwrap())
            .file("v", b"pwned", 0o644)
            .finish();
        let (dir, r) = apply(&tar);
        r.unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"safe");
        assert_eq!(fs::read(dir.path().join("v")).unwrap(), b"pwned");
    }

    #[test]
    fn hardlinks_to_outside_targets_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        fs::write(&secret, b"secret").unwrap();
        let tar = TarMaker::new()
            .link(tar::EntryType::Link, "stolen", secret.to_str().unwrap())
            .finish();
        let (dir, r) = apply(&tar);
        assert!(matches!(r.unwrap_err(), Error::HostileEntry { .. }));
        assert!(!dir.path().join("stolen").exists());
        // Through a symlink to the outside dir: resolved inside the root.
        let tar = TarMaker::new()
            .link(
                tar::EntryType::Symlink,
                "d",
                outside.path().to_str().unwrap(),
            )
            .link(tar::EntryType::Link, "stolen", "d/secret")
            .finish();
        let (dir, r) = apply(&tar);
        assert!(matches!(r.unwrap_err(), Error::HostileEntry { .. }));
        assert!(!dir.path().join("stolen").exists());
        assert_eq!(fs::metadata(&secret).unwrap().nlink(), 1);
    }

    #[test]
    fn a_decompression_bomb_is_stopped_by_the_limit() {
        let big = TarMaker::new()
            .file("zeros", &vec![0u8; 4 << 20], 0o644)
            .finish();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&big).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 64 * 1024);
        let dir = tempfile::tempdir().unwrap();
        let err = apply_layer(
            &gz[..],
            dir.path(),
            "bomb",
            &ApplyOptions { max_size: 1 << 20 },
        )
        .unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("layer bomb"), "{err}");
        // Within the limit it unpacks, and the diff id is the plain tar's.
        let applied = apply_layer(
            &gz[..],
            tempfile::tempdir().unwrap().path(),
            "ok",
            &ApplyOptions { max_size: 8 << 20 },
        )
        .unwrap();
        assert_eq!(applied.diff_id, Digest::of(&big));
        assert_eq!(applied.compression, Compression::Gzip);
    }

    #[test]
    fn zstd_layers_unpack() {
        let tar = TarMaker::new().file("f", b"zstd content", 0o644).finish();
        let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let applied = apply_layer(&zst[..], dir.path(), "z", &ApplyOptions::default()).unwrap();
        assert_eq!(applied.compression, Compression::Zstd);
        assert_eq!(applied.diff_id, Digest::of(&tar));
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"zstd content");
    }

    #[test]
    fn a_tar_without_its_end_blocks_unpacks_and_hashes_as_written() {
        // As umoci writes it: the last entry's data, then nothing.
        let tar = TarMaker::new().file("f", &[5u8; 700], 0o644).finish();
        let cut = &tar[..512 + 700];
        let dir = tempfile::tempdir().unwrap();
        let applied = apply_layer(cut, dir.path(), "umoci", &ApplyOptions::default()).unwrap();
        assert_eq!(applied.diff_id, Digest::of(cut));
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), vec![5u8; 700]);
    }

    #[test]
    fn a_truncated_tar_is_an_error_naming_the_layer() {
        let tar = TarMaker::new()
            .file("f", &vec![1u8; 10_000], 0o644)
            .finish();
        let dir = tempfile::tempdir().unwrap();
        let err = apply_layer(
            &tar[..5000],
            dir.path(),
            "sha256:cut",
            &ApplyOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("layer sha256:cut"), "{err}");
        let _ = fs::Permissions::from_mode(0o644);
    }
}
