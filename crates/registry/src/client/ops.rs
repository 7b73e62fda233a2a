//! The distribution API operations on one endpoint: manifests, blobs
//! (verified streaming reads that resume with `Range`), uploads (HEAD check,
//! mount, monolithic or chunked) and tag listing.

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE,
};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use super::{status_error, transport_error, BytesSent, ClientError, Endpoint, RequestBody, Scope};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest, ACCEPTED_MANIFEST_TYPES, MAX_MANIFEST_SIZE};

/// How a blob reached the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobPushed {
    /// The repository had it.
    Exists,
    /// Mounted from this other repository of the same registry.
    Mounted(String),
    Uploaded,
}

impl BlobPushed {
    /// Docker's status line for the layer.
    pub fn status(&self) -> String {
        match self {
            BlobPushed::Exists => "Layer already exists".into(),
            BlobPushed::Mounted(from) => format!("Mounted from {from}"),
            BlobPushed::Uploaded => "Pushed".into(),
        }
    }
}

/// A manifest as the registry served it, verified.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
    pub manifest: Manifest,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Endpoint {
    /// `GET /v2/<repo>/manifests/<reference>`: size-capped, digest-checked
    /// (against the digest asked for, or the one the registry announces).
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        image: &str,
    ) -> Result<FetchedManifest, ClientError> {
        let step = format!("fetching manifest of {image}");
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_str(&ACCEPTED_MANIFEST_TYPES.join(", ")).expect("static media types"),
        );
        let path = format!("/v2/{repository}/manifests/{reference}");
        let mut resp = self
            .send(
                Method::GET,
                &path,
                headers,
                RequestBody::Empty,
                &Scope::pull(repository),
                &step,
            )
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(step, resp).await);
        }
        let too_large = || ClientError::ManifestTooLarge {
            step: step.clone(),
            limit: MAX_MANIFEST_SIZE,
        };
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_MANIFEST_SIZE as u64)
        {
            return Err(too_large());
        }
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).map(str::to_string);
        let announced = header_str(resp.headers(), "Docker-Content-Digest").map(str::to_string);
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport_error(&step, e, &self.options))?
        {
            if body.len() + chunk.len() > MAX_MANIFEST_SIZE {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let digest = Digest::of(&body);
        let expected = if reference.contains(':') {
            Some(reference.to_string())
        } else {
            announced.filter(|a| a.parse::<Digest>().is_ok())
        };
        if let Some(expected) = expected {
            if expected != digest.to_string() {
                return Err(ClientError::DigestMismatch {
                    step,
                    expected,
                    actual: digest.to_string(),
                });
            }
        }
        let (manifest, media_type) =
            Manifest::parse(&body, content_type.as_deref()).map_err(|source| {
                ClientError::Manifest {
                    step: step.clone(),
                    source,
                }
            })?;
        Ok(FetchedManifest {
            bytes: Bytes::from(body),
            media_type,
            digest,
            manifest,
        })
    }

    /// `HEAD /v2/<repo>/manifests/<reference>` → its digest, `None` when absent.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
        scope: &Scope,
    ) -> Result<Option<Digest>, ClientError> {
        let step = format!("checking manifest {repository}:{reference}");
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_str(&ACCEPTED_MANIFEST_TYPES.join(", ")).expect("static media types"),
        );
        let path = format!("/v2/{repository}/manifests/{reference}");
        let resp = self
            .send(
                Method::HEAD,
                &path,
                headers,
                RequestBody::Empty,
                scope,
                &step,
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(
                header_str(resp.headers(), "Docker-Content-Digest").and_then(|d| d.parse().ok())
            ),
            _ => Err(status_error(step, resp).await),
        }
    }

    /// `HEAD /v2/<repo>/blobs/<digest>` → the size when the blob is there.
    pub async fn blob_size(
        &self,
        repository: &str,
        digest: &Digest,
        scope: &Scope,
    ) -> Result<Option<u64>, ClientError> {
        let step = format!("checking blob {digest} in {repository}");
        let path = format!("/v2/{repository}/blobs/{digest}");
        let resp = self
            .send(
                Method::HEAD,
                &path,
                HeaderMap::new(),
                RequestBody::Empty,
                scope,
                &step,
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            // The header, not `content_length()`: reqwest reports the
            // (empty) body of a HEAD response there.
            s if s.is_success() => Ok(Some(
                header_str(resp.headers(), CONTENT_LENGTH.as_str())
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            _ => Err(status_error(step, resp).await),
        }
    }

    /// Starts a verified download of a blob.
    pub async fn open_blob(
        &self,
        repository: &str,
        descriptor: &Descriptor,
        step: String,
    ) -> Result<BlobReader<'_>, ClientError> {
        self.open_blob_with(repository, descriptor, step, Some(Sha256::new()))
            .await
    }

    /// Starts a download whose size is checked here but whose digest the
    /// caller checks: the content store hashes the bytes as it writes
    /// them, and a second SHA-256 pass over every layer is time a pull
    /// need not spend.
    pub async fn open_blob_digest_checked_by_caller(
        &self,
        repository: &str,
        descriptor: &Descriptor,
        step: String,
    ) -> Result<BlobReader<'_>, ClientError> {
        self.open_blob_with(repository, descriptor, step, None)
            .await
    }

    async fn open_blob_with(
        &self,
        repository: &str,
        descriptor: &Descriptor,
        step: String,
        hasher: Option<Sha256>,
    ) -> Result<BlobReader<'_>, ClientError> {
        let mut reader = BlobReader {
            endpoint: self,
            repository: repository.to_string(),
            descriptor: descriptor.clone(),
            step,
            response: None,
            hasher,
            received: 0,
            resumes: 0,
            interrupted: None,
        };
        reader.request().await?;
        Ok(reader)
    }

    /// Uploads a blob unless the repository has it: HEAD, then a mount from
    /// `mount_from` when given, then monolithic or chunked upload.
    pub async fn push_blob(
        &self,
        repository: &str,
        descriptor: &Descriptor,
        source: &std::path::Path,
        mount_from: Option<&str>,
        sent: Option<BytesSent>,
    ) -> Result<BlobPushed, ClientError> {
        let mut scope = Scope::push(repository);
        if let Some(from) = mount_from.filter(|f| *f != repository) {
            scope = scope.and_pull(from);
        }
        if self
            .blob_size(repository, &descriptor.digest, &scope)
            .await?
            == Some(descriptor.size)
        {
            return Ok(BlobPushed::Exists);
        }
        let step = format!("uploading blob {} to {repository}", descriptor.digest);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .upload_once(
                    repository,
                    descriptor,
                    &UploadSource {
                        path: source,
                        sent: sent.clone(),
                    },
                    mount_from,
                    &scope,
                    &step,
                )
                .await
            {
                Ok(sent) => return Ok(sent),
                Err(e) if e.is_transient() && attempt < self.options.max_attempts => {
                    tracing::debug!("{step}: {e}; starting the upload again");
                    tokio::time::sleep(self.options.backoff * attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn upload_once(
        &self,
        repository: &str,
        descriptor: &Descriptor,
        source: &UploadSource<'_>,
        mount_from: Option<&str>,
        scope: &Scope,
        step: &str,
    ) -> Result<BlobPushed, ClientError> {
        let mut path = format!("/v2/{repository}/blobs/uploads/");
        if let Some(from) = mount_from.filter(|f| *f != repository) {
            path = format!("{path}?mount={}&from={from}", descriptor.digest);
        }
        let resp = self
            .send(
                Method::POST,
                &path,
                HeaderMap::new(),
                RequestBody::Empty,
                scope,
                step,
            )
            .await?;
        if resp.status() == StatusCode::CREATED {
            let from = mount_from.unwrap_or_default().to_string();
            return Ok(BlobPushed::Mounted(from));
        }
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(step.to_string(), resp).await);
        }
        let mut location = self.location(&resp, step)?;
        let size = descriptor.size;
        let octet = || {
            let mut h = HeaderMap::new();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h
        };
        if size > self.options.monolithic_limit {
            let mut offset = 0;
            while offset < size {
                let len = self.options.chunk_size.min(size - offset);
                let mut headers = octet();
                let range = format!("{offset}-{}", offset + len - 1);
                headers.insert(
                    "Content-Range",
                    HeaderValue::from_str(&range).expect("digits and a dash"),
                );
                let body = RequestBody::File {
                    path: source.path.to_path_buf(),
                    offset,
                    len,
                    sent: source.sent.clone(),
                };
                let resp = self
                    .send(Method::PATCH, location.as_str(), headers, body, scope, step)
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(status_error(step.to_string(), resp).await);
                }
                location = self.location(&resp, step)?;
                offset += len;
            }
            location
                .query_pairs_mut()
                .append_pair("digest", &descriptor.digest.to_string());
            let resp = self
                .send(
                    Method::PUT,
                    location.as_str(),
                    octet(),
                    RequestBody::Empty,
                    scope,
                    step,
                )
                .await?;
            return self
                .check_created(resp, &descriptor.digest, step)
                .await
                .map(|()| BlobPushed::Uploaded);
        }
        location
            .query_pairs_mut()
            .append_pair("digest", &descriptor.digest.to_string());
        let body = RequestBody::File {
            path: source.path.to_path_buf(),
            offset: 0,
            len: size,
            sent: source.sent.clone(),
        };
        let resp = self
            .send(Method::PUT, location.as_str(), octet(), body, scope, step)
            .await?;
        self.check_created(resp, &descriptor.digest, step)
            .await
            .map(|()| BlobPushed::Uploaded)
    }

    fn location(&self, resp: &reqwest::Response, step: &str) -> Result<reqwest::Url, ClientError> {
        let loc =
            header_str(resp.headers(), LOCATION.as_str()).ok_or_else(|| ClientError::Protocol {
                step: step.to_string(),
                why: "upload response has no Location header".into(),
            })?;
        resp.url().join(loc).map_err(|e| ClientError::Protocol {
            step: step.to_string(),
            why: format!("bad upload location {loc:?}: {e}"),
        })
    }

    async fn check_created(
        &self,
        resp: reqwest::Response,
        digest: &Digest,
        step: &str,
    ) -> Result<(), ClientError> {
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(step.to_string(), resp).await);
        }
        if let Some(got) = header_str(resp.headers(), "Docker-Content-Digest") {
            if got != digest.to_string() {
                return Err(ClientError::DigestMismatch {
                    step: step.to_string(),
                    expected: digest.to_string(),
                    actual: got.to_string(),
                });
            }
        }
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>`; returns the digest.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Digest, ClientError> {
        let step = format!("pushing manifest {repository}:{reference}");
        let digest = Digest::of(&bytes);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| ClientError::Protocol {
                step: step.clone(),
                why: format!("media type {media_type:?} cannot be sent"),
            })?,
        );
        let path = format!("/v2/{repository}/manifests/{reference}");
        let resp = self
            .send(
                Method::PUT,
                &path,
                headers,
                RequestBody::Bytes(bytes),
                &Scope::push(repository),
                &step,
            )
            .await?;
        self.check_created(resp, &digest, &step).await?;
        Ok(digest)
    }

    /// Every tag of the repository, following `Link` pagination.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, ClientError> {
        let step = format!("listing tags of {repository}");
        let mut next = Some(format!("/v2/{repository}/tags/list"));
        let mut tags = Vec::new();
        while let Some(path) = next.take() {
            let resp = self
                .send(
                    Method::GET,
                    &path,
                    HeaderMap::new(),
                    RequestBody::Empty,
                    &Scope::pull(repository),
                    &step,
                )
                .await?;
            if !resp.status().is_success() {
                return Err(status_error(step, resp).await);
            }
            next = header_str(resp.headers(), "Link")
                .and_then(|l| l.split(';').next())
                .map(|l| {
                    l.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                });
            let body = resp
                .bytes()
                .await
                .map_err(|e| transport_error(&step, e, &self.options))?;
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
                    step: step.clone(),
                    why: format!("invalid tag list: {e}"),
                })?;
            tags.extend(
                v["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_string)),
            );
        }
        Ok(tags)
    }
}

/// The file a blob is uploaded from, and who follows the bytes sent.
struct UploadSource<'a> {
    path: &'a std::path::Path,
    sent: Option<BytesSent>,
}

/// A blob download that hashes as it goes, resumes after a dropped
/// connection with a `Range` request, and fails at the end unless size and
/// digest (unless the caller checks that) match the descriptor. Its bytes are trustworthy only once
/// [`BlobReader::chunk`] returned `Ok(None)`.
pub struct BlobReader<'a> {
    endpoint: &'a Endpoint,
    repository: String,
    descriptor: Descriptor,
    step: String,
    response: Option<reqwest::Response>,
    /// `None` when the caller verifies the digest.
    hasher: Option<Sha256>,
    received: u64,
    resumes: u32,
    /// Why the last connection ended early, for the error if resuming fails.
    interrupted: Option<String>,
}

impl BlobReader<'_> {
    async fn request(&mut self) -> Result<(), ClientError> {
        let mut headers = HeaderMap::new();
        if self.received > 0 {
            headers.insert(
                RANGE,
                HeaderValue::from_str(&format!("bytes={}-", self.received)).expect("digits"),
            );
        }
        let path = format!("/v2/{}/blobs/{}", self.repository, self.descriptor.digest);
        let resp = self
            .endpoint
            .send(
                Method::GET,
                &path,
                headers,
                RequestBody::Empty,
                &Scope::pull(&self.repository),
                &self.step,
            )
            .await?;
        let resumed = self.received > 0;
        match resp.status() {
            StatusCode::OK if !resumed => {}
            StatusCode::PARTIAL_CONTENT if resumed => {}
            StatusCode::OK => {
                return Err(ClientError::Protocol {
                    step: self.step.clone(),
                    why: format!(
                        "{} after {} bytes, and the server cannot resume (no range support)",
                        self.interrupted.as_deref().unwrap_or("connection dropped"),
                        self.received
                    ),
                })
            }
            _ => return Err(status_error(self.step.clone(), resp).await),
        }
        if let Some(len) = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        {
            if self.received + len != self.descriptor.size {
                return Err(ClientError::SizeMismatch {
                    step: self.step.clone(),
                    expected: self.descriptor.size,
                    actual: self.received + len,
                });
            }
        }
        self.response = Some(resp);
        Ok(())
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The next bytes, or `None` at the verified end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            let Some(resp) = self.response.as_mut() else {
                return Ok(None);
            };
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    self.received += bytes.len() as u64;
                    if self.received > self.descriptor.size {
                        return Err(ClientError::SizeMismatch {
                            step: self.step.clone(),
                            expected: self.descriptor.size,
                            actual: self.received,
                        });
                    }
                    if let Some(hasher) = &mut self.hasher {
                        hasher.update(&bytes);
                    }
                    return Ok(Some(bytes));
                }
                Ok(None) => {
                    self.response = None;
                    if self.received != self.descriptor.size {
                        // A body that ends early without an error: a truncated blob.
                        return Err(ClientError::SizeMismatch {
                            step: self.step.clone(),
                            expected: self.descriptor.size,
                            actual: self.received,
                        });
                    }
                    if let Some(hasher) = self.hasher.take() {
                        let actual = Digest::from_hasher(hasher);
                        if actual != self.descriptor.digest {
                            return Err(ClientError::DigestMismatch {
                                step: self.step.clone(),
                                expected: self.descriptor.digest.to_string(),
                                actual: actual.to_string(),
                            });
                        }
                    }
                    return Ok(None);
                }
                Err(e) => {
                    let err = transport_error(&self.step, e, &self.endpoint.options);
                    self.resumes += 1;
                    if self.resumes >= self.endpoint.options.max_attempts {
                        return Err(err);
                    }
                    tracing::debug!("{}: {err}; resuming at byte {}", self.step, self.received);
                    self.interrupted = Some(match &err {
                        ClientError::Stalled { secs, .. } => {
                            format!("transfer stalled (no data for {secs} s)")
                        }
                        other => format!("connection failed ({other})"),
                    });
                    tokio::time::sleep(self.endpoint.options.backoff * self.resumes).await;
                    self.request().await?;
                }
            }
        }
    }
}
