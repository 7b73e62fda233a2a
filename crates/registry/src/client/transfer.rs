//! Resolving a reference to the image manifest of one platform (mirrors
//! first, then the registry). Pulls and pushes themselves are in `pull` and
//! `push`.

use std::sync::Arc;

use super::ops::FetchedManifest;
use super::platform::{self, Platform};
pub use super::progress::{Progress, ProgressDetail, ProgressSink};
use super::reference::ImageRef;
use super::{Client, ClientError, Endpoint};
use crate::manifest::{manifest_kind, ManifestKind};

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
    platform: &Platform,
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
    platform: &Platform,
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
