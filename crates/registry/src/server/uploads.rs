//! Blob upload sessions: monolithic (`POST ?digest=`), chunked (`PATCH` with
//! or without `Content-Range`, then `PUT ?digest=`) and cross-repository
//! mounts (`POST ?mount=&from=`).
//!
//! Data goes to `uploads/<id>/data` and is hashed on the way in; the hash
//! state lives in memory and is rebuilt from the file after a restart. The
//! blob becomes visible only after the digest matched and the file was
//! fsynced and renamed into the content store.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::errors::{ApiError, Code};
use super::http_util::{empty, query_param, set, Body};
use super::storage::{hash_file, Storage};
use super::{blocking, parse_digest, Registry};
use crate::digest::Digest;
use crate::names::is_valid_repository;

/// Bytes gathered before each write to disk.
const WRITE_BUFFER: usize = 1 << 20;

#[derive(Clone)]
struct HashState {
    hasher: Sha256,
    offset: u64,
}

type Entry = Arc<tokio::sync::Mutex<Option<HashState>>>;

pub struct Sessions {
    expiry: Duration,
    live: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    pub fn new(expiry: Duration) -> Sessions {
        Sessions {
            expiry,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn entry(&self, id: &str) -> Entry {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.entry(id.to_string()).or_default().clone()
    }

    fn forget(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Removes sessions idle past the expiry, on disk and in memory.
    pub fn expire(&self, storage: &Storage) -> io::Result<usize> {
        let removed = storage.expire_uploads(self.expiry)?;
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| storage.upload_dir(id).exists());
        Ok(removed)
    }
}

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::BlobUploadUnknown,
        format!("upload {id} is unknown or expired"),
    )
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// `Range` of an upload: the bytes received so far, inclusive.
fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn session_response(status: StatusCode, name: &str, id: &str, offset: u64) -> Response<Body> {
    let mut r = empty(status);
    let headers = r.headers_mut();
    set(headers, header::LOCATION, &upload_location(name, id));
    set(headers, header::RANGE, &range_header(offset));
    set(headers, "Docker-Upload-UUID", id);
    r
}

fn blob_created(name: &str, digest: &Digest) -> Response<Body> {
    let mut r = empty(StatusCode::CREATED);
    set(
        r.headers_mut(),
        header::LOCATION,
        &format!("/v2/{name}/blobs/{digest}"),
    );
    set(
        r.headers_mut(),
        "Docker-Content-Digest",
        &digest.to_string(),
    );
    r
}

/// `POST /v2/<name>/blobs/uploads/`
pub async fn start(
    registry: &Arc<Registry>,
    name: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let query = req.uri().query().map(str::to_string);
    let query = query.as_deref();
    if let Some(mount) = query_param(query, "mount") {
        let digest = parse_digest(&mount)?;
        if let Some(from) = query_param(query, "from").filter(|f| is_valid_repository(f)) {
            if registry.storage.repo_blob_size(&from, &digest).is_some() {
                let r = registry.clone();
                let (repo, d) = (name.to_string(), digest.clone());
                blocking("mounting blob", move || r.storage.link_blob(&repo, &d)).await?;
                return Ok(blob_created(name, &digest));
            }
        }
        // Not mountable: the spec says to open an ordinary session instead.
    } else if let Some(wanted) = query_param(query, "digest") {
        let wanted = parse_digest(&wanted)?;
        return monolithic(registry, name, wanted, req.into_body()).await;
    }
    let r = registry.clone();
    let repo = name.to_string();
    let id = blocking("creating upload session", move || {
        r.storage.create_upload(&repo)
    })
    .await?;
    Ok(session_response(StatusCode::ACCEPTED, name, &id, 0))
}

async fn monolithic(
    registry: &Arc<Registry>,
    name: &str,
    wanted: Digest,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let tmp = registry.storage.tmp_path();
    let result = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| ApiError::internal("creating temporary blob file", e))?;
        let mut state = HashState {
            hasher: Sha256::new(),
            offset: 0,
        };
        append_body(body, &mut file, &mut state).await?;
        verify_digest(&state, &wanted)?;
        let r = registry.clone();
        let (repo, d, t) = (name.to_string(), wanted.clone(), tmp.clone());
        blocking("storing blob", move || {
            r.storage.commit_blob(&t, &d)?;
            r.storage.link_blob(&repo, &d)
        })
        .await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result.map(|()| blob_created(name, &wanted))
}

fn verify_digest(state: &HashState, wanted: &Digest) -> Result<(), ApiError> {
    let got = Digest::from_hasher(state.hasher.clone());
    if &got != wanted {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::DigestInvalid,
            format!(
                "uploaded content ({} bytes) has digest {got}, not {wanted}",
                state.offset
            ),
        )
        .with_detail(serde_json::json!({ "digest": wanted.to_string() })));
    }
    Ok(())
}

/// Streams the body to the end of `file`, hashing it.
async fn append_body(
    mut body: Incoming,
    file: &mut tokio::fs::File,
    state: &mut HashState,
) -> Result<(), ApiError> {
    let mut buffer = BytesMut::with_capacity(WRITE_BUFFER);
    let write_error = |e| ApiError::internal("writing upload data", e);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::BlobUploadInvalid,
                format!("upload body cut short after {} bytes: {e}", state.offset),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        state.hasher.update(&data);
        state.offset += data.len() as u64;
        buffer.extend_from_slice(&data);
        if buffer.len() >= WRITE_BUFFER {
            file.write_all(&buffer).await.map_err(write_error)?;
            buffer.clear();
        }
    }
    file.write_all(&buffer).await.map_err(write_error)?;
    file.flush().await.map_err(write_error)?;
    Ok(())
}

/// Finds a live session of `name` and loads its hash state.
async fn open_session(registry: &Arc<Registry>, name: &str, id: &str) -> Result<Entry, ApiError> {
    if registry.storage.upload_repository(id).as_deref() != Some(name) {
        return Err(upload_unknown(id));
    }
    if registry
        .storage
        .upload_idle(id)
        .is_none_or(|idle| idle > registry.uploads.expiry)
    {
        let _ = registry.storage.remove_upload(id);
        registry.uploads.forget(id);
        return Err(upload_unknown(id));
    }
    Ok(registry.uploads.entry(id))
}

async fn loaded_state(
    registry: &Arc<Registry>,
    id: &str,
    slot: &mut Option<HashState>,
) -> Result<HashState, ApiError> {
    if let Some(state) = slot {
        return Ok(state.clone());
    }
    let data = registry.storage.upload_data(id);
    let (hasher, offset) = blocking("re-reading upload data", move || hash_file(&data)).await?;
    let state = HashState { hasher, offset };
    *slot = Some(state.clone());
    Ok(state)
}

/// `Content-Range: <first>-<last>` of a chunk (a `bytes=` or `bytes ` prefix
/// is tolerated, as some clients send one).
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let v = value.trim();
    let v = v
        .strip_prefix("bytes=")
        .or_else(|| v.strip_prefix("bytes "))
        .unwrap_or(v);
    let v = v.split('/').next()?;
    let (first, last) = v.split_once('-')?;
    let (first, last) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    (first <= last).then_some((first, last))
}

/// Appends a request's body to the session, enforcing the chunk rules:
/// a `Content-Range` must start where the upload stands (416 otherwise) and
/// match the body's length. On any failure the data is cut back.
async fn receive_chunk(
    registry: &Arc<Registry>,
    name: &str,
    id: &str,
    slot: &mut Option<HashState>,
    req: Request<Incoming>,
) -> Result<HashState, ApiError> {
    let before = loaded_state(registry, id, slot).await?;
    let headers = req.headers();
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let expected_len = match headers.get(header::CONTENT_RANGE) {
        None => None,
        Some(v) => {
            let range = v.to_str().ok().and_then(parse_content_range);
            let Some((first, last)) = range else {
                return Err(range_error(
                    name,
                    id,
                    before.offset,
                    "malformed Content-Range",
                ));
            };
            if first != before.offset {
                return Err(range_error(
                    name,
                    id,
                    before.offset,
                    &format!(
                        "chunk starts at {first}, the upload has {} bytes",
                        before.offset
                    ),
                ));
            }
            let len = last - first + 1;
            if declared_len.is_some_and(|l| l != len) {
                return Err(range_error(
                    name,
                    id,
                    before.offset,
                    "Content-Range and Content-Length disagree",
                ));
            }
            Some(len)
        }
    };
    let data = registry.storage.upload_data(id);
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&data)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => upload_unknown(id),
            _ => ApiError::internal("opening upload data", e),
        })?;
    let mut state = before.clone();
    let mut result = append_body(req.into_body(), &mut file, &mut state).await;
    if result.is_ok() {
        let received = state.offset - before.offset;
        if let Some(expected) = expected_len.filter(|&e| e != received) {
            result = Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::BlobUploadInvalid,
                format!("chunk has {received} bytes, Content-Range announced {expected}"),
            ));
        }
    }
    if let Err(e) = result {
        truncate(&data, before.offset).await?;
        return Err(e);
    }
    *slot = Some(state.clone());
    Ok(state)
}

async fn truncate(path: &Path, len: u64) -> Result<(), ApiError> {
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .await
        .map_err(|e| ApiError::internal("rolling back upload data", e))?;
    file.set_len(len)
        .await
        .map_err(|e| ApiError::internal("rolling back upload data", e))
}

fn range_error(name: &str, id: &str, offset: u64, why: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        Code::BlobUploadInvalid,
        why.to_string(),
    );
    e.detail = Some(serde_json::json!({
        "location": upload_location(name, id),
        "range": range_header(offset),
    }));
    e
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`
pub async fn patch(
    registry: &Arc<Registry>,
    name: &str,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let entry = open_session(registry, name, id).await?;
    let mut slot = entry.lock().await;
    let state = receive_chunk(registry, name, id, &mut slot, req).await?;
    Ok(session_response(
        StatusCode::ACCEPTED,
        name,
        id,
        state.offset,
    ))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=…`, with an optional last chunk.
pub async fn finish(
    registry: &Arc<Registry>,
    name: &str,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let wanted = query_param(req.uri().query(), "digest")
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::DigestInvalid,
                "closing an upload needs the digest query parameter",
            )
        })
        .and_then(|d| parse_digest(&d))?;
    let entry = open_session(registry, name, id).await?;
    let mut slot = entry.lock().await;
    let state = receive_chunk(registry, name, id, &mut slot, req).await?;
    let r = registry.clone();
    let id_owned = id.to_string();
    if let Err(e) = verify_digest(&state, &wanted) {
        // A wrong digest ends the session: the client starts over.
        let _ = blocking("removing upload", move || {
            r.storage.remove_upload(&id_owned)
        })
        .await;
        registry.uploads.forget(id);
        *slot = None;
        return Err(e);
    }
    let (repo, d) = (name.to_string(), wanted.clone());
    blocking("storing blob", move || {
        r.storage
            .commit_blob(&r.storage.upload_data(&id_owned), &d)?;
        r.storage.link_blob(&repo, &d)?;
        r.storage.remove_upload(&id_owned)
    })
    .await?;
    registry.uploads.forget(id);
    *slot = None;
    Ok(blob_created(name, &wanted))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: how much the registry has.
pub async fn status(
    registry: &Arc<Registry>,
    name: &str,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let entry = open_session(registry, name, id).await?;
    let slot = entry.lock().await;
    let offset = match slot.as_ref() {
        Some(state) => state.offset,
        None => tokio::fs::metadata(registry.storage.upload_data(id))
            .await
            .map_err(|_| upload_unknown(id))?
            .len(),
    };
    Ok(session_response(StatusCode::NO_CONTENT, name, id, offset))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`
pub async fn cancel(
    registry: &Arc<Registry>,
    name: &str,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let entry = open_session(registry, name, id).await?;
    let mut slot = entry.lock().await;
    let r = registry.clone();
    let id_owned = id.to_string();
    blocking("removing upload", move || {
        r.storage.remove_upload(&id_owned)
    })
    .await?;
    registry.uploads.forget(id);
    *slot = None;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes=100-199"), Some((100, 199)));
        assert_eq!(parse_content_range("bytes 100-199/*"), Some((100, 199)));
        assert_eq!(parse_content_range("5-4"), None);
        assert_eq!(parse_content_range("x-4"), None);
    }
}
