//! Layers that arrive as a stream (a registry download): one pass stores
//! the compressed blob in the content store and unpacks it into its layer
//! directory, hashing both sides on the way. Nothing of the whole layer is
//! kept in memory or in a temporary file besides the blob being written.
//!
//! Order, for crash safety: the blob is committed (verified digest and
//! size, fsync, rename) before the unpacked layer is renamed under its
//! chain id; the image store records both only later, in one transaction.
//! A crash in between leaves unreferenced files that garbage collection
//! removes; a failure leaves nothing (temporary blob and staging directory
//! are removed on drop).

use std::io::{self, Read, Write};
use std::path::PathBuf;

use crate::apply::{apply_layer, ApplyOptions};
use crate::compression::{decompress, LimitedReader, LIMIT_EXCEEDED};
use crate::content::{ContentStore, Ingest};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::store::{check_diff_id, StagedLayer, VerifiedLayer};

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

    /// Reads the compressed layer from `compressed` to its end, storing it
    /// as blob `expected.blob` and, unless that layer is already unpacked,
    /// unpacking it under its chain id. Fails (storing nothing) unless the
    /// blob's digest and size and the uncompressed content's diff id all
    /// match. Compression (gzip, zstd, none) is detected from the content.
    pub fn ingest(&self, compressed: impl Read, expected: &ExpectedLayer) -> Result<VerifiedLayer> {
        let blob = &expected.blob;
        let mut ingest = self.content.ingest(Some(blob.clone()))?;
        ingest.expect_size(expected.size);
        let mut tee = Tee {
            inner: compressed,
            copy: &mut ingest,
        };
        let layer_dir = self.layers_dir.join(expected.chain_id.hex());
        let (diff_id, size, staged) = if layer_dir.is_dir() {
            // Unpacked from another blob already: only check this one.
            let diff_id = hash_uncompressed(&mut tee, blob, &self.opts)?;
            (diff_id, None, None)
        } else {
            let staged = StagedLayer::create(&self.layers_dir, &expected.chain_id)?;
            let applied = apply_layer(&mut tee, staged.path(), &blob.to_string(), &self.opts)?;
            (applied.diff_id, Some(applied.size), Some(staged))
        };
        // Whatever follows the compressed stream still belongs to the blob.
        io::copy(&mut tee, &mut io::sink())
            .map_err(|e| Error::invalid(format!("layer {blob}"), format!("read: {e}")))?;
        check_diff_id(blob, &expected.diff_id, &diff_id)?;
        ingest.commit()?;
        if let Some(staged) = staged {
            staged.publish()?;
        }
        Ok(VerifiedLayer {
            blob: blob.clone(),
            diff_id,
            size,
        })
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

    #[test]
    fn one_pass_stores_the_blob_and_unpacks_the_layer() {
        quai_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(
            dir.path(),
            StoreOptions {
                no_seed: true,
                ..Default::default()
            },
        )
        .unwrap();
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
    fn a_wrong_blob_digest_or_diff_id_or_a_short_stream_stores_nothing() {
        quai_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(
            dir.path(),
            StoreOptions {
                no_seed: true,
                ..Default::default()
            },
        )
        .unwrap();
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
