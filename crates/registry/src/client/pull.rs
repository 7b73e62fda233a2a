//! `quai pull`: a registry image into the image store.
//!
//! The manifest is resolved (index → the platform's entry), the config
//! fetched (its diff ids name the layers' directories), then the layers
//! download in parallel (bounded by `parallel_transfers`). Each layer is a
//! single pass: the bytes go over a channel to a blocking thread that
//! stores the compressed blob and unpacks it while it arrives
//! ([`quai_image::layer_ingest`]); the download side checks the size, the
//! store side hashes (blob digest, diff id) as it writes. Layers already
//! unpacked are skipped. Finished layers stay invisible until all are
//! done; one syncfs then makes them durable and they move into place
//! (after a failure, those that finished still do, for the next pull to
//! reuse). The image is recorded (tag, repo digest) in one transaction at
//! the end; a kill leaves only verified blobs and layers, which the next
//! pull reuses and garbage collection removes.

use std::io::Read;

use bytes::{Buf, Bytes};
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use super::platform::Platform;
use super::progress::{Progress, ProgressDetail, ProgressSink, Throttle};
use super::reference::ImageRef;
use super::transfer::{resolve, Resolved};
use super::{Client, ClientError, Endpoint};
use crate::digest::Digest;
use crate::manifest::Descriptor;
use quai_image::layer_ingest::{ExpectedLayer, LayerSink, PendingLayer};
use quai_image::spec::{chain_ids, media, ImageConfig, MAX_JSON_SIZE};
use quai_image::store::{CommitExtras, ImageStore, NewImage, VerifiedLayer, WriteGuard};

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image ID (config digest).
    pub id: Digest,
    /// The digest the repository knows the image by (the index's, when
    /// the tag names an index).
    pub digest: Digest,
    /// False when the image was already there under that name: docker's
    /// "Image is up to date".
    pub changed: bool,
}

/// Chunks in flight between a download and its unpacking thread.
const CHANNEL_CHUNKS: usize = 64;

/// Pulls `image` for `platform` into `store`.
pub async fn pull_image(
    client: &Client,
    store: &mut ImageStore,
    image: &ImageRef,
    platform: &Platform,
    progress: &ProgressSink,
) -> Result<Pulled, ClientError> {
    let mut pulled = pull_images(
        client,
        store,
        std::slice::from_ref(image),
        platform,
        progress,
    )
    .await?;
    Ok(pulled.remove(0))
}

/// Pulls several images (`pull --all-tags`) as one transfer: manifests and
/// configs are read concurrently, then the layers of all of them download
/// together, bounded by `parallel_transfers`, each blob once however many
/// images share it; the images are recorded in order at the end.
pub async fn pull_images(
    client: &Client,
    store: &mut ImageStore,
    images: &[ImageRef],
    platform: &Platform,
    progress: &ProgressSink,
) -> Result<Vec<Pulled>, ClientError> {
    let Some(first) = images.first() else {
        return Ok(Vec::new());
    };
    let guard = store.write_guard().map_err(|source| {
        ClientError::store(
            format!("pulling {}: locking the image store", shown(first)),
            source,
        )
    })?;
    let shared: &ImageStore = store;
    let plans: Vec<Plan> = stream::iter(
        images
            .iter()
            .map(|image| plan(client, shared, image, platform, progress)),
    )
    .buffered(client.options().parallel_transfers.max(1))
    .try_collect()
    .await?;

    // Which layers to fetch: each blob once, none that is stored and unpacked.
    let mut todo: Vec<(&Plan, Descriptor, ExpectedLayer)> = Vec::new();
    for plan in &plans {
        for (i, desc) in plan.layers.iter().enumerate() {
            let id = desc.digest.short().to_string();
            let chain = &plan.chains[i];
            let present =
                shared.content().contains(&desc.digest) && shared.layer_dir(chain).is_dir();
            if present {
                progress(Progress::layer(&id, "Already exists"));
            } else if !todo
                .iter()
                .any(|(_, d, e)| d.digest == desc.digest && e.chain_id == *chain)
            {
                progress(Progress::layer(&id, "Pulling fs layer"));
                todo.push((
                    plan,
                    desc.clone(),
                    ExpectedLayer {
                        blob: desc.digest.clone(),
                        size: desc.size,
                        diff_id: plan.diff_ids[i].clone(),
                        chain_id: chain.clone(),
                    },
                ));
            }
        }
    }
    let sink = shared.layer_sink();
    let mut transfers = stream::iter(todo.into_iter().map(|(plan, desc, expected)| {
        let sink = sink.clone();
        let step = plan.step(&format!("layer {}", desc.digest));
        async move {
            pull_layer(
                &plan.resolved.endpoint,
                &plan.image.repository,
                &desc,
                expected,
                sink,
                step,
                progress,
            )
            .await
        }
    }))
    .buffer_unordered(client.options().parallel_transfers.max(1));
    let mut pending: Vec<PendingLayer> = Vec::new();
    let mut failed = None;
    while let Some(layer) = transfers.next().await {
        match layer {
            Ok(layer) => pending.push(layer),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    // Stops the transfers still running (their unpacking threads see the
    // end of their streams and remove what they wrote).
    drop(transfers);
    let published = publish(&sink, pending, plans[0].step("storing its layers")).await;
    if let Some(e) = failed {
        return Err(e);
    }
    let verified = published?;

    let mut pulled = Vec::with_capacity(plans.len());
    for plan in &plans {
        pulled.push(commit(store, plan, &verified, &guard, progress)?);
    }
    Ok(pulled)
}

/// One image of a pull, its manifest and config read.
struct Plan<'a> {
    image: &'a ImageRef,
    shown: String,
    resolved: Resolved,
    config_desc: Descriptor,
    layers: Vec<Descriptor>,
    diff_ids: Vec<Digest>,
    chains: Vec<Digest>,
    /// The image ID the name had, when the pull leaves it unchanged.
    was: Option<Digest>,
}

impl Plan<'_> {
    fn step(&self, what: &str) -> String {
        format!("pulling {}: {what}", self.shown)
    }
}

fn shown(image: &ImageRef) -> String {
    image.to_reference().familiar()
}

async fn plan<'a>(
    client: &Client,
    store: &ImageStore,
    image: &'a ImageRef,
    platform: &Platform,
    progress: &ProgressSink,
) -> Result<Plan<'a>, ClientError> {
    let shown = shown(image);
    let step = |what: &str| format!("pulling {shown}: {what}");
    progress(Progress::layer(
        &image.reference(),
        format!("Pulling from {}", image.repository),
    ));
    let resolved = resolve(client, image, platform).await?;
    let manifest = &resolved.manifest;
    let config_desc = manifest
        .manifest
        .config
        .clone()
        .expect("parsed image manifests have a config");
    let layers: Vec<Descriptor> = manifest.manifest.layers.clone().unwrap_or_default();
    check_media_types(&config_desc, &layers).map_err(|why| ClientError::Protocol {
        step: step("reading its manifest"),
        why,
    })?;
    let config_bytes = fetch_config(store, &resolved.endpoint, image, &config_desc, &shown).await?;
    let config = ImageConfig::parse(&format!("config {}", config_desc.digest), &config_bytes)
        .map_err(|source| ClientError::store(step("reading its config"), source))?;
    let diff_ids = config.rootfs.diff_ids;
    if diff_ids.len() != layers.len() {
        return Err(ClientError::Protocol {
            step: step("reading its config"),
            why: format!(
                "the config lists {} layers (diff ids), the manifest {}",
                diff_ids.len(),
                layers.len()
            ),
        });
    }
    let chains = chain_ids(&diff_ids);
    let was = store
        .resolve_id(&image.to_reference().to_string())
        .ok()
        .filter(|id| *id == config_desc.digest);
    Ok(Plan {
        image,
        shown,
        resolved,
        config_desc,
        layers,
        diff_ids,
        chains,
        was,
    })
}

/// Records one pulled image: manifests last, so that the image exists only
/// once everything it names does.
fn commit(
    store: &mut ImageStore,
    plan: &Plan,
    verified: &[VerifiedLayer],
    guard: &WriteGuard,
    progress: &ProgressSink,
) -> Result<Pulled, ClientError> {
    let store_error = |what: &str| {
        let step = plan.step(what);
        move |source| ClientError::store(step, source)
    };
    let manifest = &plan.resolved.manifest;
    let content = store.content();
    content
        .write_bytes(&manifest.bytes)
        .map_err(store_error("storing its manifest"))?;
    if let Some(index) = &plan.resolved.index {
        content
            .write_bytes(&index.bytes)
            .map_err(store_error("storing its index"))?;
    }
    let repo_digest = plan
        .resolved
        .index
        .as_ref()
        .map_or(&manifest.digest, |i| &i.digest)
        .clone();
    let image = plan.image;
    let reference = image.to_reference();
    let new = NewImage {
        config: plan.config_desc.digest.clone(),
        manifest: Some(manifest.digest.clone()),
        layers: plan
            .layers
            .iter()
            .map(|d| (d.digest.clone(), d.media_type.clone()))
            .collect(),
        tags: if image.tag.is_some() && image.digest.is_none() {
            vec![reference.clone()]
        } else {
            Vec::new()
        },
        repo_digests: vec![reference.name()],
        parent: None,
    };
    let extras = CommitExtras {
        verified_layers: verified
            .iter()
            .filter(|v| plan.layers.iter().any(|d| d.digest == *v.blob()))
            .cloned()
            .collect(),
        repo_digest: Some(repo_digest.clone()),
    };
    let id = store
        .commit_image_with(&new, guard, &extras)
        .map_err(store_error("recording the image"))?;
    progress(Progress::image(format!("Digest: {repo_digest}")));
    let changed = plan.was.is_none();
    progress(Progress::image(if changed {
        format!("Status: Downloaded newer image for {}", plan.shown)
    } else {
        format!("Status: Image is up to date for {}", plan.shown)
    }));
    Ok(Pulled {
        id,
        digest: repo_digest,
        changed,
    })
}

/// A config that is not an image config (a Helm chart, a signature...) or
/// a layer quai cannot unpack is refused before anything is downloaded.
fn check_media_types(config: &Descriptor, layers: &[Descriptor]) -> Result<(), String> {
    if config.media_type != media::OCI_CONFIG && config.media_type != media::DOCKER_CONFIG {
        return Err(format!(
            "config has media type {:?}: not a container image",
            config.media_type
        ));
    }
    for l in layers {
        if !media::is_layer(&l.media_type) {
            return Err(format!(
                "layer {} has unsupported media type {:?}",
                l.digest, l.media_type
            ));
        }
        if l.media_type == media::DOCKER_FOREIGN_LAYER || l.urls.is_some() {
            return Err(format!(
                "layer {} is a foreign layer (served from {:?}), which quai does not fetch",
                l.digest,
                l.urls.as_deref().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

async fn fetch_config(
    store: &ImageStore,
    endpoint: &Endpoint,
    image: &ImageRef,
    desc: &Descriptor,
    shown: &str,
) -> Result<Vec<u8>, ClientError> {
    let step = format!("pulling {shown}: config {}", desc.digest);
    let store_error = |source| ClientError::store(step.clone(), source);
    if store.content().contains(&desc.digest) {
        return store
            .content()
            .read(&desc.digest, MAX_JSON_SIZE)
            .map_err(store_error);
    }
    if desc.size > MAX_JSON_SIZE {
        return Err(ClientError::Protocol {
            step,
            why: format!(
                "config is {} bytes, more than the {MAX_JSON_SIZE}-byte limit",
                desc.size
            ),
        });
    }
    let mut reader = endpoint
        .open_blob(&image.repository, desc, step.clone())
        .await?;
    let mut bytes = Vec::with_capacity(desc.size as usize);
    while let Some(chunk) = reader.chunk().await? {
        bytes.extend_from_slice(&chunk);
    }
    store.content().write_bytes(&bytes).map_err(store_error)?;
    Ok(bytes)
}

/// Downloads one layer and streams it into the store.
async fn pull_layer(
    endpoint: &Endpoint,
    repository: &str,
    desc: &Descriptor,
    expected: ExpectedLayer,
    sink: LayerSink,
    step: String,
    progress: &ProgressSink,
) -> Result<PendingLayer, ClientError> {
    let id = desc.digest.short().to_string();
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let unpack = tokio::task::spawn_blocking(move || {
        sink.ingest_pending(
            ChannelReader {
                rx,
                chunk: Bytes::new(),
            },
            &expected,
        )
    });
    let downloaded = download(endpoint, repository, desc, &step, &id, tx, progress).await;
    // The sender is gone: the unpacking thread sees the end of the stream.
    let unpacked = unpack.await;
    downloaded?;
    let pending = unpacked
        .map_err(|e| ClientError::Protocol {
            step: step.clone(),
            why: format!("unpacking thread failed: {e}"),
        })?
        .map_err(|source| ClientError::store(step.clone(), source))?;
    progress(Progress::layer(&id, "Pull complete"));
    Ok(pending)
}

/// One sync for every finished layer, then into place (a blocking thread:
/// syncfs waits for the disk).
async fn publish(
    sink: &LayerSink,
    pending: Vec<PendingLayer>,
    step: String,
) -> Result<Vec<VerifiedLayer>, ClientError> {
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let sink = sink.clone();
    match tokio::task::spawn_blocking(move || sink.publish(pending)).await {
        Ok(published) => published.map_err(|source| ClientError::store(step, source)),
        Err(e) => Err(ClientError::Protocol {
            step,
            why: format!("publishing thread failed: {e}"),
        }),
    }
}

async fn download(
    endpoint: &Endpoint,
    repository: &str,
    desc: &Descriptor,
    step: &str,
    id: &str,
    tx: mpsc::Sender<Bytes>,
    progress: &ProgressSink,
) -> Result<(), ClientError> {
    // The store hashes the bytes as it writes them (one SHA-256 pass).
    let mut reader = endpoint
        .open_blob_digest_checked_by_caller(repository, desc, step.to_string())
        .await?;
    let mut throttle = Throttle::new(desc.size);
    while let Some(chunk) = reader.chunk().await? {
        if tx.send(chunk).await.is_err() {
            // The store side stopped (a bad tar, a full disk) after reading
            // what it needed to tell a corrupt blob from a bad archive: its
            // error is the one to report.
            return Ok(());
        }
        let current = reader.received();
        if throttle.due(current, desc.size) {
            progress(Progress {
                id: Some(id.to_string()),
                status: "Downloading".into(),
                detail: Some(ProgressDetail {
                    current,
                    total: desc.size,
                }),
            });
        }
    }
    progress(Progress::layer(id, "Verifying Checksum"));
    progress(Progress::layer(id, "Download complete"));
    progress(Progress::layer(id, "Extracting"));
    Ok(())
}

/// The blocking side of a download: chunks from the channel as a `Read`;
/// the end of the channel is the end of the stream.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// Every tag of `image`'s repository, for `pull --all-tags`.
pub async fn list_tags(client: &Client, image: &ImageRef) -> Result<Vec<String>, ClientError> {
    let endpoint = client.endpoint(&image.registry).await?;
    endpoint.tags(&image.repository).await
}
