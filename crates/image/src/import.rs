//! `import`: a root file system tarball becomes a one-layer image.

use std::io::{self, Read};

use serde_json::{Map, Value};

use crate::changes::apply_changes;
use crate::compression::decompress;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::spec::{media, History, ImageConfig, Platform, RootFs};
use crate::store::{ImageStore, NewImage};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub reference: Option<Reference>,
    /// Dockerfile instructions (`--change`).
    pub changes: Vec<String>,
    /// Commit message (`--message`).
    pub message: Option<String>,
    pub platform: Option<Platform>,
}

/// Imports the tarball read from `input` (plain, gzip or zstd); returns the
/// image ID. The layer is stored uncompressed, as docker does.
pub fn import(store: &mut ImageStore, input: impl Read, opts: &ImportOptions) -> Result<Digest> {
    // Validate the changes before reading anything.
    let mut container_config = Map::new();
    apply_changes(&mut container_config, &opts.changes)?;
    let guard = store.write_guard()?;
    let result = import_locked(store, input, opts, container_config, &guard);
    drop(guard);
    if result.is_err() {
        // Leave the store as it was: drop the blobs this import stored.
        if let Err(e) = store.gc() {
            tracing::warn!("cleaning up after a failed import: {e}");
        }
    }
    result
}

fn import_locked(
    store: &mut ImageStore,
    input: impl Read,
    opts: &ImportOptions,
    container_config: Map<String, Value>,
    guard: &crate::store::WriteGuard,
) -> Result<Digest> {
    let (_, mut plain) = decompress(input).ctx(|| "read import source".into())?;
    let mut w = store.content().ingest(None)?;
    io::copy(&mut plain, &mut w).ctx(|| "read import source".into())?;
    let (layer, _) = w.commit()?;
    let (secs, nanos) = crate::time::now();
    let created = crate::time::format_rfc3339(secs, nanos);
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let comment = opts
        .message
        .clone()
        .unwrap_or_else(|| "Imported from -".to_string());
    let config = ImageConfig {
        created: Some(created.clone()),
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        config: (!container_config.is_empty()).then_some(Value::Object(container_config)),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.clone()],
        },
        history: vec![History {
            created: Some(created),
            comment: Some(comment),
            ..Default::default()
        }],
        comment: opts.message.clone(),
        ..Default::default()
    };
    let bytes =
        serde_json::to_vec(&config).map_err(|e| Error::invalid("import config", e.to_string()))?;
    let config_digest = store.content().write_bytes(&bytes)?;
    let img = NewImage {
        config: config_digest,
        manifest: None,
        layers: vec![(layer, media::OCI_LAYER.to_string())],
        tags: opts.reference.iter().cloned().collect(),
        repo_digests: Vec::new(),
        parent: None,
    };
    store.commit_image(&img, guard)
}
