//! Whole-image transfers: resolve a reference (with platform selection),
//! download config and layers in parallel (bounded), upload likewise.
//!
//! Until the image store lands, images land in (and are pushed from) an OCI
//! image layout directory; the blob writes follow the content store's rules
//! (temporary file, verified digest, fsync, rename), so a failed or killed
//! pull leaves no partial blob and no index entry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use super::ops::FetchedManifest;
use super::platform::{self, PlatformSpec};
pub use super::progress::{Progress, ProgressDetail, ProgressSink};
use super::reference::ImageRef;
use super::{Client, ClientError, Endpoint};
use crate::digest::Digest;
use crate::fsutil::{atomic_write, random_id, sync_dir};
use crate::manifest::{manifest_kind, Descriptor, ManifestKind, OCI_INDEX};

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

/// The manifest `image` names for `platform`, and the index it came from.
pub struct Resolved {
    pub endpoint: Arc<Endpoint>,
    pub manifest: FetchedManifest,
    pub index: Option<FetchedManifest>,
}

/// Fetches the manifest, trying mirrors first, and picks the platform's
/// entry when it is an index.
pub async fn resolve(
    client: &Client,
    image: &ImageRef,
    platform: &PlatformSpec,
) -> Result<Resolved, ClientError> {
    let mut last_error = None;
    for endpoint in client.pull_endpoints(&image.registry).await {
        let endpoint = match endpoint {
            Ok(e) => e,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        match resolve_on(&endpoint, image, platform).await {
            Ok((manifest, index)) => {
                return Ok(Resolved {
                    endpoint,
                    manifest,
                    index,
                })
            }
            Err(e) => {
                tracing::debug!("{}: {e}", endpoint.base());
                last_error = Some(e);
            }
        }
    }
    Err(last_error.expect("the registry itself is always tried"))
}

async fn resolve_on(
    endpoint: &Endpoint,
    image: &ImageRef,
    platform: &PlatformSpec,
) -> Result<(FetchedManifest, Option<FetchedManifest>), ClientError> {
    let shown = image.to_string();
    let top = endpoint
        .get_manifest(&image.repository, &image.reference(), &shown)
        .await?;
    if manifest_kind(&top.media_type) != Some(ManifestKind::Index) {
        return Ok((top, None));
    }
    let chosen =
        platform::select(&top.manifest, platform).ok_or_else(|| ClientError::NoPlatform {
            image: shown.clone(),
            wanted: platform.to_string(),
            available: platform::available(&top.manifest),
        })?;
    let child = endpoint
        .get_manifest(
            &image.repository,
            &chosen.digest.to_string(),
            &format!("{shown} ({platform})"),
        )
        .await?;
    if manifest_kind(&child.media_type) != Some(ManifestKind::Image) {
        return Err(ClientError::Protocol {
            step: format!("fetching manifest of {shown}"),
            why: format!("index entry {} is not an image manifest", chosen.digest),
        });
    }
    Ok((child, Some(top)))
}

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    pub fn create(root: &Path) -> Result<OciLayout, ClientError> {
        let io = |what: &str| {
            let what = format!("{what} {}", root.display());
            move |source| ClientError::Io { what, source }
        };
        std::fs::create_dir_all(root.join("blobs/sha256")).map_err(io("creating OCI layout"))?;
        if !root.join("oci-layout").exists() {
            atomic_write(
                &root.join("oci-layout"),
                br#"{"imageLayoutVersion":"1.0.0"}"#,
                0o644,
            )
            .map_err(io("writing oci-layout of"))?;
        }
        Ok(OciLayout {
            root: root.to_path_buf(),
        })
    }

    pub fn open(root: &Path) -> Result<OciLayout, ClientError> {
        if !root.join("index.json").is_file() {
            return Err(ClientError::Io {
                what: format!("{} is not an OCI image layout", root.display()),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        Ok(OciLayout {
            root: root.to_path_buf(),
        })
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    fn write_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ClientError> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(());
        }
        atomic_write(&path, bytes, 0o644).map_err(|source| ClientError::Io {
            what: format!("writing blob {digest}"),
            source,
        })
    }

    fn index(&self) -> Result<serde_json::Value, ClientError> {
        match std::fs::read(self.root.join("index.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
                step: format!("reading {}/index.json", self.root.display()),
                why: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({
                "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []
            })),
            Err(source) => Err(ClientError::Io {
                what: format!("reading {}/index.json", self.root.display()),
                source,
            }),
        }
    }

    /// Points `name` at the manifest (replacing an entry of that name).
    fn tag(&self, name: &str, descriptor: &Descriptor) -> Result<(), ClientError> {
        let mut index = self.index()?;
        let mut entry = serde_json::to_value(descriptor).expect("descriptors serialize");
        entry["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": name });
        let manifests = index["manifests"]
            .as_array_mut()
            .ok_or_else(|| ClientError::Protocol {
                step: format!("reading {}/index.json", self.root.display()),
                why: "manifests is not a list".into(),
            })?;
        manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != name);
        manifests.push(entry);
        atomic_write(
            &self.root.join("index.json"),
            &serde_json::to_vec_pretty(&index).expect("JSON"),
            0o644,
        )
        .map_err(|source| ClientError::Io {
            what: format!("writing {}/index.json", self.root.display()),
            source,
        })
    }

    /// The manifest descriptor tagged `name`, or the only one.
    fn find(&self, name: Option<&str>) -> Result<Descriptor, ClientError> {
        let index = self.index()?;
        let entries: Vec<Descriptor> =
            serde_json::from_value(index["manifests"].clone()).map_err(|e| {
                ClientError::Protocol {
                    step: format!("reading {}/index.json", self.root.display()),
                    why: e.to_string(),
                }
            })?;
        let found = match name {
            Some(n) => entries.into_iter().find(|d| {
                d.annotations
                    .as_ref()
                    .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                    .is_some_and(|r| r == n)
            }),
            None if entries.len() == 1 => entries.into_iter().next(),
            None => None,
        };
        found.ok_or_else(|| ClientError::Protocol {
            step: format!("reading {}/index.json", self.root.display()),
            why: format!("no single image named {}", name.unwrap_or("(none given)")),
        })
    }
}

/// Pulls `image` into an OCI layout, tagged with its tag (or digest).
/// Blobs the layout has are skipped; layers download in parallel.
pub async fn pull_to_layout(
    client: &Client,
    image: &ImageRef,
    platform: &PlatformSpec,
    layout: &OciLayout,
    progress: Option<ProgressSink>,
) -> Result<Digest, ClientError> {
    let report = |p: Progress| {
        if let Some(sink) = &progress {
            sink(p)
        }
    };
    let resolved = resolve(client, image, platform).await?;
    let manifest = &resolved.manifest;
    let mut blobs: Vec<Descriptor> = manifest.manifest.config.iter().cloned().collect();
    blobs.extend(manifest.manifest.layers.iter().flatten().cloned());
    let shown = image.to_string();
    stream::iter(blobs.into_iter().map(|d| {
        let endpoint = resolved.endpoint.clone();
        let shown = shown.clone();
        let report = &report;
        async move {
            let id = Some(short(&d.digest));
            if layout.blob_path(&d.digest).exists() {
                report(Progress {
                    id,
                    status: "Already exists".into(),
                    detail: None,
                });
                return Ok(());
            }
            let step = format!("pulling {shown}: downloading blob {}", d.digest);
            download(&endpoint, &image.repository, &d, layout, step, |current| {
                report(Progress {
                    id: id.clone(),
                    status: "Downloading".into(),
                    detail: Some(ProgressDetail {
                        current,
                        total: d.size,
                    }),
                })
            })
            .await?;
            report(Progress {
                id,
                status: "Download complete".into(),
                detail: None,
            });
            Ok::<(), ClientError>(())
        }
    }))
    .buffer_unordered(client.options().parallel_transfers.max(1))
    .try_collect::<Vec<()>>()
    .await?;
    // Manifests last: the layout names an image only once all its blobs are in.
    layout.write_blob(&manifest.digest, &manifest.bytes)?;
    let top = resolved.index.as_ref().unwrap_or(manifest);
    if let Some(index) = &resolved.index {
        layout.write_blob(&index.digest, &index.bytes)?;
    }
    let descriptor = Descriptor {
        media_type: manifest.media_type.clone(),
        digest: manifest.digest.clone(),
        size: manifest.bytes.len() as u64,
        artifact_type: None,
        annotations: None,
        platform: None,
        urls: None,
    };
    layout.tag(&image.reference(), &descriptor)?;
    report(Progress {
        id: None,
        status: format!("Digest: {}", top.digest),
        detail: None,
    });
    Ok(top.digest.clone())
}

async fn download(
    endpoint: &Endpoint,
    repository: &str,
    descriptor: &Descriptor,
    layout: &OciLayout,
    step: String,
    on_bytes: impl Fn(u64),
) -> Result<(), ClientError> {
    let target = layout.blob_path(&descriptor.digest);
    let dir = target
        .parent()
        .expect("blob path has a parent")
        .to_path_buf();
    let tmp = dir.join(format!(
        ".{}.partial-{}",
        descriptor.digest.hex(),
        random_id()
    ));
    let io = |what: &str| {
        let what = format!("{step}: {what}");
        move |source| ClientError::Io { what, source }
    };
    // Removes the partial file however this ends: an error here, or the
    // future dropped because a sibling download failed.
    let mut guard = TempFile(Some(tmp.clone()));
    let mut reader = endpoint
        .open_blob(repository, descriptor, step.clone())
        .await?;
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(io("creating temporary file"))?;
    while let Some(chunk) = reader.chunk().await? {
        file.write_all(&chunk).await.map_err(io("writing"))?;
        on_bytes(reader.received());
    }
    file.sync_all().await.map_err(io("syncing"))?;
    drop(file);
    tokio::fs::rename(&tmp, &target)
        .await
        .map_err(io("renaming into place"))?;
    guard.0 = None;
    sync_dir(&dir).map_err(io("syncing blob directory"))
}

struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Pushes the layout's image `name` (or its only image) to `dest`: blobs in
/// parallel (skipping those the registry has, mounting from `mount_from`),
/// children of an index first, the tagged manifest last.
pub async fn push_from_layout(
    client: &Client,
    layout: &OciLayout,
    name: Option<&str>,
    dest: &ImageRef,
    mount_from: Option<&str>,
    progress: Option<ProgressSink>,
) -> Result<Digest, ClientError> {
    let endpoint = client.endpoint(&dest.registry).await?;
    let top = layout.find(name)?;
    let read = |d: &Descriptor| -> Result<Bytes, ClientError> {
        std::fs::read(layout.blob_path(&d.digest))
            .map(Bytes::from)
            .map_err(|source| ClientError::Io {
                what: format!("reading manifest {} from the layout", d.digest),
                source,
            })
    };
    let top_bytes = read(&top)?;
    let (top_manifest, top_type) =
        crate::manifest::Manifest::parse(&top_bytes, Some(&top.media_type)).map_err(|source| {
            ClientError::Manifest {
                step: format!("pushing {dest}"),
                source,
            }
        })?;
    let children: Vec<Descriptor> = match manifest_kind(&top_type) {
        Some(ManifestKind::Index) => top_manifest.manifests.clone().unwrap_or_default(),
        _ => vec![top.clone()],
    };
    for child in &children {
        let bytes = read(child)?;
        let (m, media_type) = crate::manifest::Manifest::parse(&bytes, Some(&child.media_type))
            .map_err(|source| ClientError::Manifest {
                step: format!("pushing {dest}"),
                source,
            })?;
        let blobs: Vec<Descriptor> = m
            .config
            .iter()
            .chain(m.layers.iter().flatten())
            .cloned()
            .collect();
        stream::iter(blobs.into_iter().map(|d| {
            let endpoint = endpoint.clone();
            let progress = progress.clone();
            async move {
                let sent = endpoint
                    .push_blob(
                        &dest.repository,
                        &d,
                        &layout.blob_path(&d.digest),
                        mount_from,
                    )
                    .await?;
                if let Some(p) = &progress {
                    p(Progress {
                        id: Some(short(&d.digest)),
                        status: sent.status(),
                        detail: None,
                    });
                }
                Ok::<(), ClientError>(())
            }
        }))
        .buffer_unordered(client.options().parallel_transfers.max(1))
        .try_collect::<Vec<()>>()
        .await?;
        if children.len() > 1 || child.digest != top.digest {
            endpoint
                .put_manifest(
                    &dest.repository,
                    &child.digest.to_string(),
                    bytes,
                    &media_type,
                )
                .await?;
        }
    }
    let digest = endpoint
        .put_manifest(&dest.repository, &dest.reference(), top_bytes, &top_type)
        .await?;
    if let Some(p) = &progress {
        p(Progress {
            id: None,
            status: format!("{}: digest: {digest} size: {}", dest.reference(), top.size),
            detail: None,
        });
    }
    Ok(digest)
}
