//! `quai push`: an image of the store to a registry.
//!
//! The manifest the image was pulled or loaded with is pushed byte for byte
//! when it still describes the image (so the digest is the one the source
//! registry had); an image without one (imported, committed, loaded from a
//! legacy docker archive) gets an OCI manifest written here. Blobs go first,
//! in parallel: HEAD (present blobs are not sent), a cross-repository mount
//! when the image came from another repository of the same registry, else
//! an upload. The manifest goes last.

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};

use super::progress::{Progress, ProgressDetail, ProgressSink, Throttle};
use super::reference::{ImageRef, Reference};
use super::{BytesSent, Client, ClientError};
use crate::digest::Digest;
use crate::manifest::Descriptor;
use quai_image::compression::Compression;
use quai_image::spec::{media, parse_manifest_or_index, Manifest, ManifestOrIndex, MAX_JSON_SIZE};
use quai_image::store::{ImageRecord, ImageStore};

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    /// Size of the manifest in bytes (docker prints it).
    pub size: usize,
}

/// Pushes the local image named `dest` (a tag, as docker requires) to the
/// registry and repository that name says.
pub async fn push_image(
    client: &Client,
    store: &mut ImageStore,
    dest: &ImageRef,
    progress: &ProgressSink,
) -> Result<Pushed, ClientError> {
    let reference = dest.to_reference();
    let shown = reference.familiar();
    let step = |what: &str| format!("pushing {shown}: {what}");
    let record = store
        .resolve(&reference.to_string())
        .map_err(|source| match source {
            quai_image::Error::NoSuchImage(_) => ClientError::Protocol {
                step: step("finding the image"),
                why: format!(
                    "An image does not exist locally with the tag: {}",
                    reference.familiar_name()
                ),
            },
            source => ClientError::store(step("finding the image"), source),
        })?;
    let (manifest_bytes, media_type, manifest) = manifest_for(store, &record)
        .map_err(|source| ClientError::store(step("reading its manifest"), source))?;
    let mount_from = mount_source(&record, dest);
    let endpoint = client.endpoint(&dest.registry).await?;
    let blobs: Vec<Descriptor> = std::iter::once(manifest.config.clone())
        .chain(manifest.layers.iter().cloned())
        .collect();
    for d in &manifest.layers {
        progress(Progress::layer(d.digest.short(), "Preparing"));
    }
    let content = store.content();
    let config_digest = &manifest.config.digest;
    stream::iter(blobs.into_iter().map(|d| {
        let endpoint = endpoint.clone();
        let path = content.path(&d.digest);
        let mount_from = mount_from.as_deref();
        async move {
            let is_config = &d.digest == config_digest;
            let sent = (!is_config).then(|| {
                progress(Progress::layer(d.digest.short(), "Pushing"));
                bytes_sent(&d, progress)
            });
            let how = endpoint
                .push_blob(&dest.repository, &d, &path, mount_from, sent)
                .await?;
            if !is_config {
                progress(Progress::layer(d.digest.short(), how.status()));
            }
            Ok::<(), ClientError>(())
        }
    }))
    .buffer_unordered(client.options().parallel_transfers.max(1))
    .try_collect::<Vec<()>>()
    .await?;
    let tag = dest.reference();
    let size = manifest_bytes.len();
    let digest = endpoint
        .put_manifest(&dest.repository, &tag, manifest_bytes, &media_type)
        .await?;
    store
        .add_repo_digest(&record.id, &reference.name(), &digest)
        .map_err(|source| ClientError::store(step("recording the repository digest"), source))?;
    progress(Progress::image(format!(
        "{tag}: digest: {digest} size: {size}"
    )));
    Ok(Pushed { digest, size })
}

/// docker's `Pushing [==>  ] 12MB/60MB` messages for one layer, at most
/// a few hundred per layer.
fn bytes_sent(layer: &Descriptor, progress: &ProgressSink) -> BytesSent {
    let id = layer.digest.short().to_string();
    let total = layer.size;
    let throttle = std::sync::Mutex::new(Throttle::new(total));
    let progress = progress.clone();
    BytesSent(std::sync::Arc::new(move |current| {
        let due = throttle
            .lock()
            .map(|mut t| t.due(current, total))
            .unwrap_or(false);
        if due {
            progress(Progress {
                id: Some(id.clone()),
                status: "Pushing".into(),
                detail: Some(ProgressDetail { current, total }),
            });
        }
    }))
}

/// The image's own manifest when it still matches the record, else a new
/// OCI manifest. Returns (bytes, media type, parsed).
fn manifest_for(
    store: &ImageStore,
    record: &ImageRecord,
) -> quai_image::Result<(Bytes, String, Manifest)> {
    if let Some(digest) = &record.manifest_digest {
        if store.content().contains(digest) {
            let bytes = store.content().read(digest, MAX_JSON_SIZE)?;
            if let ManifestOrIndex::Manifest(m) =
                parse_manifest_or_index(&format!("manifest {digest}"), &bytes)?
            {
                let same = m.config.digest == record.id
                    && m.layers.len() == record.layers.len()
                    && m.layers
                        .iter()
                        .zip(&record.layers)
                        .all(|(d, l)| d.digest == l.blob);
                if same {
                    let media_type = m
                        .media_type
                        .clone()
                        .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
                    return Ok((Bytes::from(bytes), media_type, m));
                }
            }
        }
    }
    let descriptor = |media_type: &str, digest: &Digest| -> quai_image::Result<Descriptor> {
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest: digest.clone(),
            size: store.content().size(digest)?,
            artifact_type: None,
            annotations: None,
            platform: None,
            urls: None,
        })
    };
    let mut layers = Vec::new();
    for l in &record.layers {
        layers.push(descriptor(layer_media_type(store, &l.blob)?, &l.blob)?);
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        config: descriptor(media::OCI_CONFIG, &record.id)?,
        layers,
        annotations: None,
    };
    let bytes = serde_json::to_vec(&manifest).expect("manifests serialize");
    Ok((
        Bytes::from(bytes),
        media::OCI_MANIFEST.to_string(),
        manifest,
    ))
}

/// The OCI layer media type for a stored blob, from its compression.
fn layer_media_type(store: &ImageStore, blob: &Digest) -> quai_image::Result<&'static str> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut f = store.content().open_blob(blob)?;
    let n = f.read(&mut head).map_err(|source| quai_image::Error::Io {
        what: format!("read blob {blob}"),
        source,
    })?;
    Ok(match Compression::detect(&head[..n]) {
        Compression::Gzip => media::OCI_LAYER_GZIP,
        Compression::Zstd => media::OCI_LAYER_ZSTD,
        Compression::None => media::OCI_LAYER,
    })
}

/// Another repository of the destination registry that has the image's
/// blobs: one it was pulled from or pushed to.
fn mount_source(record: &ImageRecord, dest: &ImageRef) -> Option<String> {
    record.repo_digests.iter().find_map(|(repo, _)| {
        let r = Reference::parse(repo).ok()?;
        (r.domain() == dest.registry && r.path() != dest.repository).then(|| r.path().to_string())
    })
}
