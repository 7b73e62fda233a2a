//! The embedded `hello-world:latest` image: the static program built from
//! hello/hello.c, packed into a deterministic image (one file, fixed
//! owner and timestamps, fixed config), so its ID is the same on every
//! machine that builds the same program. A new store gets it on first open.

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::spec::{media, Descriptor, History, ImageConfig, Manifest, Platform, RootFs};
use crate::store::{ImageStore, NewImage};

/// The program, built by build.rs.
pub const PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello"));

/// The image's creation time (fixed: the image must be reproducible).
const CREATED: &str = "2026-01-01T00:00:00Z";
const MTIME: u64 = 1_767_225_600;

pub const REFERENCE: &str = "hello-world:latest";

/// The image's blobs: (config, manifest, layer).
pub fn blobs() -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(PROGRAM.len() as u64);
    tar.append_data(&mut h, "hello", PROGRAM)
        .ctx(|| "pack hello-world layer".into())?;
    let layer = tar.into_inner().ctx(|| "pack hello-world layer".into())?;
    let diff_id = Digest::of(&layer);
    let platform = Platform::host();
    let config = ImageConfig {
        created: Some(CREATED.into()),
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        config: Some(serde_json::json!({
            // Keys in sorted order: the same bytes whether or not serde_json
            // preserves insertion order in this build.
            "Cmd": ["/hello"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
        })),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.clone()],
        },
        history: vec![
            History {
                created: Some(CREATED.into()),
                created_by: Some("COPY hello / # quai's embedded hello-world".into()),
                ..Default::default()
            },
            History {
                created: Some(CREATED.into()),
                created_by: Some("CMD [\"/hello\"]".into()),
                empty_layer: true,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let config = serde_json::to_vec(&config)
        .map_err(|e| Error::invalid("hello-world config", e.to_string()))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: media::OCI_CONFIG.into(),
            digest: Digest::of(&config),
            size: config.len() as u64,
            annotations: None,
            platform: None,
            artifact_type: None,
            urls: None,
        },
        layers: vec![Descriptor {
            media_type: media::OCI_LAYER.into(),
            digest: diff_id,
            size: layer.len() as u64,
            annotations: None,
            platform: None,
            artifact_type: None,
            urls: None,
        }],
        annotations: None,
    };
    let manifest = serde_json::to_vec(&manifest)
        .map_err(|e| Error::invalid("hello-world manifest", e.to_string()))?;
    Ok((config, manifest, layer))
}

/// Imports hello-world into a store once; marks the store seeded so that a
/// user's `rmi hello-world` sticks.
pub(crate) fn seed(store: &mut ImageStore) -> Result<()> {
    let (config, manifest, layer) = blobs()?;
    let guard = store.write_guard()?;
    let layer_digest = store.content().write_bytes(&layer)?;
    let config_digest = store.content().write_bytes(&config)?;
    let manifest_digest = store.content().write_bytes(&manifest)?;
    let img = NewImage {
        config: config_digest,
        manifest: Some(manifest_digest),
        layers: vec![(layer_digest, media::OCI_LAYER.to_string())],
        tags: vec![Reference::parse_tagged(REFERENCE)?],
        repo_digests: Vec::new(),
        parent: None,
    };
    store.commit_image(&img, &guard)?;
    drop(guard);
    store.set_meta("hello_world_seeded", CREATED)
}
