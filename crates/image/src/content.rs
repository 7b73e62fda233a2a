//! The content store: blobs named by their sha256 under `blobs/sha256/<hex>`.
//!
//! A blob is written to a temporary file in the same directory, hashed on
//! the way, checked against the digest the writer expected, fsynced, and
//! renamed into place: a reader never sees a partial blob, a crash leaves at
//! most a temporary file (removed by garbage collection), and two writers of
//! the same blob each write their own temporary file and rename identical
//! content over each other.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};

/// Name prefix of blobs being written; never a valid digest, skipped by
/// listings, removed by garbage collection when no writer holds the store.
pub(crate) const INGEST_PREFIX: &str = ".ingest-";

#[derive(Debug, Clone)]
pub struct ContentStore {
    dir: PathBuf,
}

impl ContentStore {
    /// Opens the store rooted at `blobs_dir` (`<root>/blobs`), creating it.
    pub fn open(blobs_dir: &Path) -> Result<ContentStore> {
        let dir = blobs_dir.join("sha256");
        fs::create_dir_all(&dir).at("create blob directory", &dir)?;
        Ok(ContentStore { dir })
    }

    /// The directory blobs live in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `digest` lives (whether or not it is present).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Size of a present blob.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        match fs::metadata(self.path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobMissing(digest.clone()))
            }
            Err(e) => Err(Error::path("stat blob", self.path(digest), e)),
        }
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        match File::open(self.path(digest)) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobMissing(digest.clone()))
            }
            Err(e) => Err(Error::path("open blob", self.path(digest), e)),
        }
    }

    /// Reads a whole (small) blob, refusing blobs above `limit` bytes:
    /// manifests and configs are JSON of a few KiB, and a hostile archive
    /// must not make quai read gigabytes into memory.
    pub fn read(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let mut f = self.open_blob(digest)?;
        let mut buf = Vec::new();
        (&mut f)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .ctx(|| format!("read blob {digest}"))?;
        if buf.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: format!("blob {digest}"),
                limit,
            });
        }
        Ok(buf)
    }

    /// Starts writing a blob. With `expected`, the commit fails (and stores
    /// nothing) unless the content has that digest.
    pub fn ingest(&self, expected: Option<Digest>) -> Result<Ingest> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{INGEST_PREFIX}{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = self.dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .at("create temporary blob", &tmp)?;
        Ok(Ingest {
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            tmp,
            dir: self.dir.clone(),
            hasher: Hasher::new(),
            expected,
            expected_size: None,
            writeback_from: 0,
        })
    }

    /// Stores `bytes` and returns their digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut w = self.ingest(Some(digest.clone()))?;
        w.write_all(bytes).ctx(|| format!("write blob {digest}"))?;
        w.commit()?;
        Ok(digest)
    }

    /// Copies a stream into the store; verifies it against `expected`.
    pub fn write_from(
        &self,
        reader: &mut dyn Read,
        expected: Option<Digest>,
    ) -> Result<(Digest, u64)> {
        let what = match &expected {
            Some(d) => format!("write blob {d}"),
            None => "write blob".to_string(),
        };
        let mut w = self.ingest(expected)?;
        io::copy(reader, &mut w).ctx(|| what)?;
        w.commit()
    }

    /// Every stored blob.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).at("list blobs in", &self.dir)? {
            let entry = entry.at("list blobs in", &self.dir)?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes a blob; a missing blob is not an error.
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::path("remove blob", self.path(digest), e)),
        }
    }

    /// Removes temporary files that crashed writers left. Only call while
    /// no writer can be running (the image store's exclusive GC lock).
    pub(crate) fn remove_stale_ingests(&self) -> Result<u64> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir).at("list blobs in", &self.dir)? {
            let entry = entry.at("list blobs in", &self.dir)?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(INGEST_PREFIX)
            {
                removed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(removed)
    }
}

/// A blob being written. Dropping it without [`Ingest::commit`] removes the
/// temporary file.
pub struct Ingest {
    writer: Option<BufWriter<File>>,
    tmp: PathBuf,
    dir: PathBuf,
    hasher: Hasher,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    /// Where the next early writeback starts (see [`start_writeback`]).
    writeback_from: u64,
}

impl Ingest {
    /// Also require the content to be exactly `size` bytes long; writes
    /// beyond it fail at once (a registry that sends more than it said).
    pub fn expect_size(&mut self, size: u64) {
        self.expected_size = Some(size);
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }

    /// Flushes, fsyncs, verifies and renames the blob into place.
    pub fn commit(mut self) -> Result<(Digest, u64)> {
        let (file, digest, len) = self.close_verified()?;
        file.sync_all().at("fsync temporary blob", &self.tmp)?;
        drop(file);
        let target = self.dir.join(digest.hex());
        fs::rename(&self.tmp, &target).at("rename blob into place", &target)?;
        // Committed: nothing for Drop to clean up.
        self.tmp = PathBuf::new();
        sync_dir(&self.dir)?;
        Ok((digest, len))
    }

    /// Flushes and verifies the blob but leaves it unsynced under its
    /// temporary name: many blobs and layers of one pull become durable
    /// with one sync ([`publish_durable`](crate::layer_ingest)) instead of
    /// an fsync each.
    pub fn finish_pending(mut self) -> Result<PendingBlob> {
        let (file, digest, len) = self.close_verified()?;
        drop(file);
        let pending = PendingBlob {
            tmp: std::mem::take(&mut self.tmp),
            dir: self.dir.clone(),
            digest,
            len,
        };
        Ok(pending)
    }

    /// The digest of what was written so far: tells a corrupt download
    /// from a bad archive when unpacking stopped early.
    pub fn digest_so_far(&self) -> Digest {
        self.hasher.clone().finish()
    }

    fn close_verified(&mut self) -> Result<(File, Digest, u64)> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| Error::invalid("blob", "already committed"))?;
        let file = writer
            .into_inner()
            .map_err(|e| Error::path("write temporary blob", &self.tmp, e.into_error()))?;
        let hasher = std::mem::take(&mut self.hasher);
        let len = hasher.len();
        let digest = hasher.finish();
        if let Some(expected) = &self.expected {
            if *expected != digest {
                return Err(Error::DigestMismatch {
                    what: format!("blob {expected}"),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        if let Some(size) = self.expected_size {
            if size != len {
                return Err(Error::SizeMismatch {
                    what: format!("blob {digest}"),
                    expected: size,
                    actual: len,
                });
            }
        }
        Ok((file, digest, len))
    }
}

/// A verified blob under its temporary name, not yet synced: invisible to
/// readers, removed on drop unless published.
#[derive(Debug)]
pub struct PendingBlob {
    tmp: PathBuf,
    dir: PathBuf,
    digest: Digest,
    len: u64,
}

impl PendingBlob {
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Renames the blob into place. Only once its content is durable (a
    /// syncfs of the store's filesystem or an fsync of the file); the
    /// caller syncs the directory after its renames.
    pub(crate) fn publish(mut self) -> Result<()> {
        let target = self.dir.join(self.digest.hex());
        fs::rename(&self.tmp, &target).at("rename blob into place", &target)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(size) = self.expected_size {
            if self.hasher.len() + buf.len() as u64 > size {
                return Err(io::Error::other(format!(
                    "blob is larger than the expected {size} bytes"
                )));
            }
        }
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("blob already committed"))?;
        let n = w.write(buf)?;
        self.hasher.update(&buf[..n]);
        let written = self.hasher.len();
        if written - self.writeback_from >= WRITEBACK_STEP {
            start_writeback(w.get_ref(), self.writeback_from);
            // What the buffer still holds is not in the file yet.
            self.writeback_from = written.saturating_sub(w.buffer().len() as u64);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.writer = None;
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Bytes written between two early writebacks.
pub(crate) const WRITEBACK_STEP: u64 = 8 << 20;

/// Starts writing `file`'s dirty pages from `from` to the disk without
/// waiting (on Linux, `POSIX_FADV_DONTNEED` starts writeback of dirty
/// pages and drops only clean ones): the sync that later makes the file
/// durable then finds most of it written, instead of the whole pull's
/// data at once. A hint: errors are ignored.
pub(crate) fn start_writeback(file: &File, from: u64) {
    let _ = rustix::fs::fadvise(file, from, None, rustix::fs::Advice::DontNeed);
}

/// fsyncs a directory so that a rename in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("fsync directory", dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(&dir.path().join("blobs")).unwrap();
        (dir, store)
    }

    fn dir_names(store: &ContentStore) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&store.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_then_read_back() {
        let (_d, store) = store();
        let digest = store.write_bytes(b"hello").unwrap();
        assert_eq!(digest, Digest::of(b"hello"));
        assert!(store.contains(&digest));
        assert_eq!(store.read(&digest, 100).unwrap(), b"hello");
        assert_eq!(store.size(&digest).unwrap(), 5);
        assert_eq!(store.list().unwrap(), vec![digest.clone()]);
        assert!(matches!(
            store.read(&digest, 3),
            Err(Error::TooLarge { .. })
        ));
        store.remove(&digest).unwrap();
        assert!(matches!(
            store.open_blob(&digest),
            Err(Error::BlobMissing(_))
        ));
    }

    #[test]
    fn a_digest_mismatch_stores_nothing() {
        let (_d, store) = store();
        let wrong = Digest::of(b"something else");
        let mut w = store.ingest(Some(wrong.clone())).unwrap();
        w.write_all(b"hello").unwrap();
        let err = w.commit().unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert!(!store.contains(&wrong));
        assert!(dir_names(&store).is_empty(), "{:?}", dir_names(&store));
    }

    #[test]
    fn an_abandoned_write_leaves_nothing() {
        let (_d, store) = store();
        let mut w = store.ingest(None).unwrap();
        w.write_all(b"partial").unwrap();
        // While it is being written, the blob is not visible under its name.
        assert!(!store.contains(&Digest::of(b"partial")));
        assert!(store.list().unwrap().is_empty());
        drop(w);
        assert!(dir_names(&store).is_empty());
    }

    #[test]
    fn a_size_limit_stops_oversized_writes() {
        let (_d, store) = store();
        let mut w = store.ingest(None).unwrap();
        w.expect_size(4);
        assert!(w.write_all(b"hello").is_err());
        drop(w);
        let mut w = store.ingest(None).unwrap();
        w.expect_size(10);
        w.write_all(b"hello").unwrap();
        assert!(matches!(w.commit(), Err(Error::SizeMismatch { .. })));
        assert!(dir_names(&store).is_empty());
    }

    #[test]
    fn concurrent_writers_of_one_blob_do_not_clash() {
        let (_d, store) = store();
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = Digest::of(&data);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let mut w = store.ingest(Some(expected.clone())).unwrap();
                    for chunk in data.chunks(65536) {
                        w.write_all(chunk).unwrap();
                    }
                    w.commit().unwrap();
                    // Every reader sees the whole blob.
                    let back = store.read(&expected, 10_000_000).unwrap();
                    assert_eq!(back.len(), data.len());
                });
            }
        });
        assert_eq!(dir_names(&store), vec![expected.hex().to_string()]);
    }

    #[test]
    fn stale_ingests_are_collected() {
        let (_d, store) = store();
        let mut w = store.ingest(None).unwrap();
        w.write_all(b"abc").unwrap();
        std::mem::forget(w); // as a killed process would leave it
        assert_eq!(dir_names(&store).len(), 1);
        store.remove_stale_ingests().unwrap();
        assert!(dir_names(&store).is_empty());
    }
}
