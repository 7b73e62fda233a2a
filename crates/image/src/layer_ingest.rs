//! Layers that arrive as a stream (a registry download): one pass stores
//! the compressed blob in the content store and unpacks it into its layer
//! directory, hashing both sides on the way (the compressed bytes are
//! hashed once, here). Nothing of the whole layer is kept in memory or in
//! a temporary file besides the blob being written.
//!
//! Order, for crash safety: a layer comes out of [`LayerSink::ingest_pending`]
//! verified (blob digest and size, diff id) but invisible (temporary blob,
//! staging directory) and not yet synced. [`LayerSink::publish`] makes any
//! number of them durable with one syncfs, then renames blobs and layer
//! directories into place and syncs the two directories; the image store
//! records them only later, in one transaction. A crash before the renames
//! leaves temporary files that garbage collection removes; after, complete
//! unreferenced layers that the next pull reuses. A failure leaves nothing
//! (temporary blob and staging directory are removed on drop).

use std::io::{self, Read, Write};
use std::path::PathBuf;

use crate::apply::{apply_layer, ApplyOptions};
use crate::compression::{decompress, LimitedReader, LIMIT_EXCEEDED};
use crate::content::{sync_dir, ContentStore, Ingest, PendingBlob};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::store::{check_diff_id, sync_filesystem, StagedLayer, VerifiedLayer};

/// What a layer stream is expected to be.
#[derive(Debug, Clone)]
pub struct ExpectedLayer {
    /// Digest and size of the compressed blob (the manifest's descriptor).
    pub blob: Digest,
    pub size: u64,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Chain id: the name of the layer's directory.
    pub chain_id: Digest,
}

/// A verified layer not yet durable nor visible: its blob under a
/// temporary name, its directory (unless that layer was unpacked already)
/// in staging. Dropping it removes both.
pub struct PendingLayer {
    blob: PendingBlob,
    staged: Option<StagedLayer>,
    verified: VerifiedLayer,
}

/// Cheap to clone and `Send`: one per layer in flight, each on its own
/// thread.
#[derive(Debug, Clone)]
pub struct LayerSink {
    content: ContentStore,
    layers_dir: PathBuf,
    opts: ApplyOptions,
}

impl LayerSink {
    pub(crate) fn new(content: ContentStore, layers_dir: PathBuf, opts: ApplyOptions) -> Self {
        LayerSink {
            content,
            layers_dir,
            opts,
        }
    }

    /// [`ingest_pending`](Self::ingest_pending) and [`publish`](Self::publish)
    /// of one layer.
    pub fn ingest(&self, compressed: impl Read, expected: &ExpectedLayer) -> Result<VerifiedLayer> {
        let pending = self.ingest_pending(compressed, expected)?;
        let mut published = self.publish(vec![pending])?;
        Ok(published.remove(0))
    }

    /// Reads the compressed layer from `compressed` to its end, writing it
    /// as blob `expected.blob` and, unless that layer is already unpacked,
    /// unpacking it under a staging name. Fails (keeping nothing) unless
    /// the blob's digest and size and the uncompressed content's diff id
    /// all match. Compression (gzip, zstd, none) is detected from the
    /// content.
    pub fn ingest_pending(
        &self,
        compressed: impl Read,
        expected: &ExpectedLayer,
    ) -> Result<PendingLayer> {
        let blob = &expected.blob;
        let mut ingest = self.content.ingest(Some(blob.clone()))?;
        ingest.expect_size(expected.size);
        let mut tee = Tee {
            inner: compressed,
            copy: &mut ingest,
        };
        let layer_dir = self.layers_dir.join(expected.chain_id.hex());
        let unpacked = if layer_dir.is_dir() {
            // Unpacked from another blob already: only check this one.
            hash_uncompressed(&mut tee, blob, &self.opts).map(|d| (d, None, None))
        } else {
            StagedLayer::create(&self.layers_dir, &expected.chain_id).and_then(|staged| {
                let applied = apply_layer(&mut tee, staged.path(), &blob.to_string(), &self.opts)?;
                Ok((applied.diff_id, Some(applied.size), Some(staged)))
            })
        };
        // Whatever follows the compressed stream still belongs to the blob;
        // after a failure, the rest tells whether the blob itself was bad.
        let drained = io::copy(&mut tee, &mut io::sink());
        let (diff_id, size, staged) = match unpacked {
            Ok(done) => done,
            Err(unpack_error) => {
                return Err(corrupt_blob(&ingest, expected).unwrap_or(unpack_error))
            }
        };
        drained.map_err(|e| Error::invalid(format!("layer {blob}"), format!("read: {e}")))?;
        check_diff_id(blob, &expected.diff_id, &diff_id)?;
        let blob_file = ingest.finish_pending()?;
        Ok(PendingLayer {
            blob: blob_file,
            staged,
            verified: VerifiedLayer {
                blob: blob.clone(),
                diff_id,
                size,
            },
        })
    }

    /// Makes `layers` durable with one sync of the store's filesystem, then
    /// moves their blobs and directories into place.
    pub fn publish(&self, layers: Vec<PendingLayer>) -> Result<Vec<VerifiedLayer>> {
        if layers.is_empty() {
            return Ok(Vec::new());
        }
        let blobs_dir = self.content.dir();
        sync_filesystem(&self.layers_dir)?;
        if !same_filesystem(blobs_dir, &self.layers_dir) {
            sync_filesystem(blobs_dir)?;
        }
        let mut verified = Vec::with_capacity(layers.len());
        for layer in layers {
            layer.blob.publish()?;
            if let Some(staged) = layer.staged {
                staged.move_into_place()?;
            }
            verified.push(layer.verified);
        }
        sync_dir(blobs_dir)?;
        sync_dir(&self.layers_dir)?;
        Ok(verified)
    }
}

impl PendingLayer {
    pub fn verified(&self) -> &VerifiedLayer {
        &self.verified
    }
}

/// The blob's own mismatch, when the bytes read to the end (or as far as
/// its size allows) are not what the manifest named: the real cause of a
/// bad archive.
fn corrupt_blob(ingest: &Ingest, expected: &ExpectedLayer) -> Option<Error> {
    let actual = ingest.digest_so_far();
    (actual != expected.blob).then(|| Error::DigestMismatch {
        what: format!("blob {}", expected.blob),
        expected: expected.blob.clone(),
        actual,
    })
}

fn same_filesystem(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

fn hash_uncompressed(blob: impl Read, digest: &Digest, opts: &ApplyOptions) -> Result<Digest> {
    let what = format!("layer {digest}");
    let read_error = |e: io::Error| {
        if e.to_string() == LIMIT_EXCEEDED {
            Error::TooLarge {
                what: what.clone(),
                limit: opts.max_size,
            }
        } else {
            Error::invalid(what.clone(), format!("read: {e}"))
        }
    };
    let (_, plain) = decompress(blob).map_err(read_error)?;
    let (diff_id, _) = HashingReader::new(LimitedReader::new(plain, opts.max_size))
        .finish()
        .map_err(read_error)?;
    Ok(diff_id)
}

/// Copies what is read from `inner` into the blob being written.
struct Tee<'a, R> {
    inner: R,
    copy: &'a mut Ingest,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::chain_ids;
    use crate::store::{ImageStore, StoreOptions};

    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn expected(blob: &[u8], tar: &[u8]) -> ExpectedLayer {
        let diff_id = Digest::of(tar);
        ExpectedLayer {
            blob: Digest::of(blob),
            size: blob.len() as u64,
            chain_id: chain_ids(std::slice::from_ref(&diff_id))[0].clone(),
            diff_id,
        }
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A store without the embedded images.
    fn empty_store(dir: &std::path::Path) -> ImageStore {
        ImageStore::open(
            dir,
            StoreOptions {
                no_seed: true,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn one_pass_stores_the_blob_and_unpacks_the_layer() {
        quai_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let store = empty_store(dir.path());
        let tar = layer_tar(&[("etc/motd", b"hi\n")]);
        let blob = gzip(&tar);
        let want = expected(&blob, &tar);
        let verified = store.layer_sink().ingest(&blob[..], &want).unwrap();
        assert_eq!(verified.diff_id(), &want.diff_id);
        assert_eq!(store.content().read(&want.blob, 1 << 20).unwrap(), blob);
        let motd = store.layer_dir(&want.chain_id).join("etc/motd");
        assert_eq!(std::fs::read(motd).unwrap(), b"hi\n");
        // The same layer again (a second image): only the blob is checked.
        store.content().remove(&want.blob).unwrap();
        store.layer_sink().ingest(&blob[..], &want).unwrap();
        assert!(store.content().contains(&want.blob));
    }

    #[test]
    fn pending_layers_are_invisible_until_published_and_dropped_without_a_trace() {
        quai_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let store = empty_store(dir.path());
        let sink = store.layer_sink();
        let layers: Vec<(Vec<u8>, ExpectedLayer)> = [b"one".as_slice(), b"two"]
            .iter()
            .map(|content| {
                let tar = layer_tar(&[("f", content)]);
                let blob = gzip(&tar);
                let want = expected(&blob, &tar);
                (blob, want)
            })
            .collect();
        let pending: Vec<PendingLayer> = layers
            .iter()
            .map(|(blob, want)| sink.ingest_pending(&blob[..], want).unwrap())
            .collect();
        for (_, want) in &layers {
            assert!(!store.content().contains(&want.blob));
            assert!(!store.layer_dir(&want.chain_id).exists());
        }
        let published = sink.publish(pending).unwrap();
        assert_eq!(published.len(), 2);
        for (blob, want) in &layers {
            assert_eq!(store.content().read(&want.blob, 1 << 20).unwrap(), *blob);
            assert!(store.layer_dir(&want.chain_id).join("f").is_file());
        }
        // Dropped before publishing (a failed or cancelled pull): nothing
        // stays, not even temporary names.
        let tar = layer_tar(&[("g", b"three")]);
        let blob = gzip(&tar);
        let want = expected(&blob, &tar);
        drop(sink.ingest_pending(&blob[..], &want).unwrap());
        assert_eq!(names(&dir.path().join("blobs/sha256")).len(), 2);
        assert_eq!(names(&dir.path().join("layers")).len(), 2);
    }

    #[test]
    fn a_wrong_blob_digest_or_diff_id_or_a_short_stream_stores_nothing() {
        quai_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let store = empty_store(dir.path());
        let tar = layer_tar(&[("a", b"x")]);
        let blob = gzip(&tar);
        let mut wrong_blob = expected(&blob, &tar);
        wrong_blob.blob = Digest::of(b"other");
        let err = store
            .layer_sink()
            .ingest(&blob[..], &wrong_blob)
            .unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        let mut wrong_diff = expected(&blob, &tar);
        wrong_diff.diff_id = Digest::of(b"other");
        let err = store
            .layer_sink()
            .ingest(&blob[..], &wrong_diff)
            .unwrap_err();
        assert!(err.to_string().contains("diff id"), "{err}");
        let truncated = &blob[..blob.len() - 10];
        let err = store
            .layer_sink()
            .ingest(truncated, &expected(&blob, &tar))
            .unwrap_err();
        assert!(
            err.to_string().contains(&Digest::of(&blob).to_string()),
            "{err}"
        );
        assert!(names(&dir.path().join("blobs/sha256")).is_empty());
        assert!(names(&dir.path().join("layers")).is_empty());
    }
}
