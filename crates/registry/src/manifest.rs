//! Manifests, indexes and descriptors in the two wire formats registries
//! serve: OCI image spec v1.1 and Docker's schema 2. One set of types reads
//! both; fields that only one format has are optional.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use quai_image::spec::media::{
    DOCKER_LIST as DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
};
pub use quai_image::spec::{Descriptor, Platform};

pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Every manifest type quai reads, in preference order, for `Accept`.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// The largest manifest quai accepts, as sender or receiver. Real manifests are
/// a few KiB; anything near this is an attack or a broken registry.
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    /// One image: a config and layers (OCI image manifest or Docker schema 2).
    Image,
    /// A list of manifests, one per platform (OCI index or Docker manifest list).
    Index,
}

/// What a media type names, `None` for types quai does not handle.
pub fn manifest_kind(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Image),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
        _ => None,
    }
}

/// An image manifest or an index, whichever the JSON is.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest schemaVersion is {0}, expected 2 (Docker schema 1 is not supported)")]
    SchemaVersion(u32),
    #[error("Docker schema 1 manifests ({0}) are deprecated and not supported")]
    Schema1(String),
    #[error("unsupported manifest media type {0:?}")]
    UnknownMediaType(String),
    #[error("manifest media type {body:?} in the body contradicts {declared:?}")]
    MediaTypeMismatch { declared: String, body: String },
    #[error("image manifest has no {0}")]
    MissingField(&'static str),
    #[error("index has no manifests list")]
    MissingManifests,
    #[error("manifest is {size} bytes, more than the {MAX_MANIFEST_SIZE}-byte limit")]
    TooLarge { size: usize },
}

impl Manifest {
    /// Parses and checks a manifest. `declared` is the media type the sender
    /// gave (a `Content-Type` header); the media type the body names must agree
    /// with it. Returns the manifest and its effective media type.
    pub fn parse(
        bytes: &[u8],
        declared: Option<&str>,
    ) -> Result<(Manifest, String), ManifestError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge { size: bytes.len() });
        }
        let manifest: Manifest = serde_json::from_slice(bytes)?;
        let declared = declared
            .map(|d| d.split(';').next().unwrap_or(d).trim())
            .filter(|d| !d.is_empty() && manifest_kind_or_schema1(d));
        for t in [declared, manifest.media_type.as_deref()]
            .into_iter()
            .flatten()
        {
            if t == DOCKER_SCHEMA1 || t == DOCKER_SCHEMA1_SIGNED {
                return Err(ManifestError::Schema1(t.to_string()));
            }
        }
        if manifest.schema_version != 2 {
            return Err(ManifestError::SchemaVersion(manifest.schema_version));
        }
        let media_type = match (declared, manifest.media_type.as_deref()) {
            (Some(d), Some(b)) if d != b => {
                return Err(ManifestError::MediaTypeMismatch {
                    declared: d.to_string(),
                    body: b.to_string(),
                })
            }
            (_, Some(b)) => b.to_string(),
            (Some(d), None) => d.to_string(),
            // OCI lets the body omit mediaType; tell the kinds apart by shape.
            (None, None) if manifest.manifests.is_some() => OCI_INDEX.to_string(),
            (None, None) => OCI_MANIFEST.to_string(),
        };
        match manifest_kind(&media_type) {
            None => return Err(ManifestError::UnknownMediaType(media_type)),
            Some(ManifestKind::Image) => {
                if manifest.config.is_none() {
                    return Err(ManifestError::MissingField("config"));
                }
                if manifest.layers.is_none() {
                    return Err(ManifestError::MissingField("layers"));
                }
            }
            Some(ManifestKind::Index) => {
                if manifest.manifests.is_none() {
                    return Err(ManifestError::MissingManifests);
                }
            }
        }
        Ok((manifest, media_type))
    }

    /// The artifact type the referrers API reports for this manifest.
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
    }

    /// Every blob or manifest this one points at (not its subject).
    pub fn references(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter().flatten())
            .chain(self.manifests.iter().flatten())
    }
}

fn manifest_kind_or_schema1(media_type: &str) -> bool {
    // A Content-Type such as application/octet-stream says nothing; only a
    // manifest type can contradict the body.
    manifest_kind(media_type).is_some()
        || media_type == DOCKER_SCHEMA1
        || media_type == DOCKER_SCHEMA1_SIGNED
        || media_type.starts_with("application/vnd.")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(media_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CONFIG}","size":0}},"layers":[]}}"#
        )
    }

    #[test]
    fn parses_oci_and_docker_image_manifests() {
        let (m, t) = Manifest::parse(image(OCI_MANIFEST).as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(t, OCI_MANIFEST);
        assert_eq!(m.references().count(), 1);
        let (_, t) = Manifest::parse(image(DOCKER_MANIFEST).as_bytes(), None).unwrap();
        assert_eq!(t, DOCKER_MANIFEST);
    }

    #[test]
    fn refuses_contradictions_schema1_unknown_types_and_junk() {
        assert!(matches!(
            Manifest::parse(image(OCI_MANIFEST).as_bytes(), Some(DOCKER_MANIFEST)),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            Manifest::parse(
                br#"{"schemaVersion":1,"name":"x"}"#,
                Some(DOCKER_SCHEMA1_SIGNED)
            ),
            Err(ManifestError::Schema1(_))
        ));
        assert!(matches!(
            Manifest::parse(image("application/x-thing").as_bytes(), None),
            Err(ManifestError::UnknownMediaType(_))
        ));
        assert!(matches!(
            Manifest::parse(b"{", None),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            Manifest::parse(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
                None
            ),
            Err(ManifestError::MissingField("config"))
        ));
        let huge = vec![b' '; MAX_MANIFEST_SIZE + 1];
        assert!(matches!(
            Manifest::parse(&huge, None),
            Err(ManifestError::TooLarge { .. })
        ));
    }

    #[test]
    fn index_without_media_type_is_recognised_by_shape() {
        let (_, t) = Manifest::parse(br#"{"schemaVersion":2,"manifests":[]}"#, None).unwrap();
        assert_eq!(t, OCI_INDEX);
    }
}
