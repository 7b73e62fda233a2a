//! `quai registry serve`: an OCI distribution spec v1.1 registry.
//!
//! Pull (manifests by tag or digest, blobs with ranges), push (monolithic,
//! chunked and cross-repository mount), tag listing with pagination, deletes,
//! the referrers API and a catalog. Storage is in [`storage`]; uploads survive
//! restarts and expire after a period without data.

mod auth;
mod errors;
pub mod gc;
mod http_util;
mod storage;
mod uploads;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub use auth::{Htpasswd, HtpasswdError};
pub use errors::{ApiError, Code};
pub use storage::Storage;

use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest, ManifestKind, MAX_MANIFEST_SIZE};
use crate::names::{is_valid_repository, is_valid_tag};
use http_util::{
    empty, full, json_response, paginate, query_param, read_limited, serve_file, Body,
    BodyReadError,
};

/// How `quai registry serve` was asked to run.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub root: PathBuf,
    pub htpasswd: Option<PathBuf>,
    /// PEM certificate chain and private key.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub read_only: bool,
    /// Upload sessions without data for this long are removed.
    pub upload_expiry: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open registry storage at {path}: {source}")]
    Storage { path: String, source: io::Error },
    #[error(transparent)]
    Htpasswd(#[from] HtpasswdError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
}

pub struct Registry {
    storage: Storage,
    auth: Option<Htpasswd>,
    read_only: bool,
    uploads: uploads::Sessions,
}

/// A bound, not yet serving, registry; [`Server::local_addr`] tells the port
/// when the configuration asked for port 0.
pub struct Server {
    listener: TcpListener,
    registry: Arc<Registry>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    upload_expiry: Duration,
}

impl Server {
    pub async fn bind(config: &ServerConfig) -> Result<Server, ServerError> {
        let storage = Storage::open(&config.root).map_err(|source| ServerError::Storage {
            path: config.root.display().to_string(),
            source,
        })?;
        let auth = config.htpasswd.as_deref().map(Htpasswd::load).transpose()?;
        let tls = match &config.tls {
            Some((cert, key)) => {
                Some(http_util::tls_acceptor(cert, key).map_err(ServerError::Tls)?)
            }
            None => None,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Listen {
                    addr: config.listen,
                    source,
                })?;
        Ok(Server {
            listener,
            registry: Arc::new(Registry {
                storage,
                auth,
                read_only: config.read_only,
                uploads: uploads::Sessions::new(config.upload_expiry),
            }),
            tls,
            upload_expiry: config.upload_expiry,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the process ends.
    pub async fn run(self) -> io::Result<()> {
        let registry = self.registry.clone();
        let sweep_every =
            (self.upload_expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        tokio::spawn(async move {
            loop {
                let r = registry.clone();
                let swept = tokio::task::spawn_blocking(move || r.uploads.expire(&r.storage)).await;
                match swept {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!("removed {n} expired upload session(s)"),
                    Ok(Err(e)) => tracing::warn!("expiring upload sessions: {e}"),
                    Err(e) => tracing::warn!("expiring upload sessions: {e}"),
                }
                tokio::time::sleep(sweep_every).await;
            }
        });
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let registry = self.registry.clone();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(stream) => serve_connection(registry, stream).await,
                        Err(e) => tracing::debug!("TLS handshake with {peer}: {e}"),
                    },
                    None => serve_connection(registry, stream).await,
                }
            });
        }
    }
}

async fn serve_connection<S>(registry: Arc<Registry>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let registry = registry.clone();
        async move { Ok::<_, Infallible>(handle(registry, req).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!("connection: {e}");
    }
}

async fn handle(registry: Arc<Registry>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut response = match route(&registry, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("{method} {path}: {} {}", e.code.as_str(), e.message);
            let authenticate = e.code == Code::Unauthorized;
            let mut r = full(e.status, e.body());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            if authenticate {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"quai registry\""),
                );
            }
            r
        }
    };
    response.headers_mut().insert(
        "Docker-Distribution-API-Version",
        header::HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// What the path names, after `/v2/`.
enum Route<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn parse_route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::UploadStart(name));
    }
    // The last segment never contains '/', so split at the last marker.
    let split = |marker: &str| {
        rest.rsplit_once(marker)
            .filter(|(_, tail)| !tail.is_empty() && !tail.contains('/'))
    };
    if let Some((name, id)) = split("/blobs/uploads/") {
        return Some(Route::Upload(name, id));
    }
    if let Some((name, digest)) = split("/blobs/") {
        return Some(Route::Blob(name, digest));
    }
    if let Some((name, reference)) = split("/manifests/") {
        return Some(Route::Manifest(name, reference));
    }
    if let Some((name, digest)) = split("/referrers/") {
        return Some(Route::Referrers(name, digest));
    }
    None
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, Code::Unsupported, "no such endpoint")
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::Unsupported,
        format!("method {method} is not allowed here"),
    )
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if is_valid_repository(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::NameInvalid,
            format!("invalid repository name {name:?}"),
        ))
    }
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse().map_err(|e: crate::digest::DigestError| {
        ApiError::new(StatusCode::BAD_REQUEST, Code::DigestInvalid, e.to_string())
    })
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::internal(what, e)),
        Err(e) => Err(ApiError::internal(what, e)),
    }
}

async fn route(
    registry: &Arc<Registry>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if let Some(auth) = &registry.auth {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !auth.check_header(header) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::Unauthorized,
                "authentication required",
            ));
        }
    }
    let method = req.method().clone();
    let writes = !matches!(method, Method::GET | Method::HEAD);
    if writes && registry.read_only {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unsupported,
            "the registry is read-only",
        ));
    }
    let path = req.uri().path().to_string();
    let route = parse_route(&path).ok_or_else(not_found)?;
    match route {
        Route::Base => match method {
            Method::GET | Method::HEAD => Ok(json_response(StatusCode::OK, b"{}".to_vec())),
            _ => Err(method_not_allowed(&method)),
        },
        Route::Catalog => match method {
            Method::GET => catalog(registry, &req).await,
            _ => Err(method_not_allowed(&method)),
        },
        Route::Tags(name) => {
            check_name(name)?;
            match method {
                Method::GET => tags(registry, name, &req).await,
                _ => Err(method_not_allowed(&method)),
            }
        }
        Route::Manifest(name, reference) => {
            check_name(name)?;
            match method {
                Method::GET | Method::HEAD => {
                    get_manifest(registry, name, reference, method == Method::HEAD).await
                }
                Method::PUT => put_manifest(registry, name, reference, req).await,
                Method::DELETE => delete_manifest(registry, name, reference).await,
                _ => Err(method_not_allowed(&method)),
            }
        }
        Route::Blob(name, digest) => {
            check_name(name)?;
            let digest = parse_digest(digest)?;
            match method {
                Method::GET | Method::HEAD => get_blob(registry, name, &digest, &req).await,
                Method::DELETE => delete_blob(registry, name, &digest).await,
                _ => Err(method_not_allowed(&method)),
            }
        }
        Route::UploadStart(name) => {
            check_name(name)?;
            match method {
                Method::POST => uploads::start(registry, name, req).await,
                _ => Err(method_not_allowed(&method)),
            }
        }
        Route::Upload(name, id) => {
            check_name(name)?;
            let id = id.to_string();
            match method {
                Method::GET => uploads::status(registry, name, &id).await,
                Method::PATCH => uploads::patch(registry, name, &id, req).await,
                Method::PUT => uploads::finish(registry, name, &id, req).await,
                Method::DELETE => uploads::cancel(registry, name, &id).await,
                _ => Err(method_not_allowed(&method)),
            }
        }
        Route::Referrers(name, digest) => {
            check_name(name)?;
            let digest = parse_digest(digest)?;
            match method {
                Method::GET => referrers(registry, name, &digest, &req).await,
                _ => Err(method_not_allowed(&method)),
            }
        }
    }
}

async fn catalog(
    registry: &Arc<Registry>,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let r = registry.clone();
    let names = blocking("listing repositories", move || r.storage.repositories()).await?;
    let (page, next) = paginate(names, req.uri().query())?;
    let mut response = json_response(
        StatusCode::OK,
        serde_json::to_vec(&serde_json::json!({ "repositories": page })).expect("serializable"),
    );
    if let Some((n, last)) = next {
        http_util::set_link(&mut response, &format!("/v2/_catalog?n={n}&last={last}"));
    }
    Ok(response)
}

async fn tags(
    registry: &Arc<Registry>,
    name: &str,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let r = registry.clone();
    let repo = name.to_string();
    let tags = blocking("listing tags", move || r.storage.tags(&repo))
        .await?
        .ok_or_else(|| name_unknown(name))?;
    let (page, next) = paginate(tags, req.uri().query())?;
    let mut response = json_response(
        StatusCode::OK,
        serde_json::to_vec(&serde_json::json!({ "name": name, "tags": page }))
            .expect("serializable"),
    );
    if let Some((n, last)) = next {
        http_util::set_link(
            &mut response,
            &format!("/v2/{name}/tags/list?n={n}&last={last}"),
        );
    }
    Ok(response)
}

fn name_unknown(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::NameUnknown,
        format!("repository {name} is not known to the registry"),
    )
}

fn manifest_unknown(name: &str, reference: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::ManifestUnknown,
        format!("manifest {name}:{reference} is not known to the registry"),
    )
    .with_detail(serde_json::json!({ "name": name, "reference": reference }))
}

/// A tag or digest from the URL → the manifest digest, `None` when unknown.
fn resolve_reference(
    registry: &Registry,
    name: &str,
    reference: &str,
) -> Result<Option<Digest>, ApiError> {
    if reference.contains(':') {
        return parse_digest(reference).map(Some);
    }
    if !is_valid_tag(reference) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::ManifestInvalid,
            format!("invalid tag {reference:?}"),
        ));
    }
    registry
        .storage
        .resolve_tag(name, reference)
        .map_err(|e| ApiError::internal("reading tag", e))
}

async fn get_manifest(
    registry: &Arc<Registry>,
    name: &str,
    reference: &str,
    head: bool,
) -> Result<Response<Body>, ApiError> {
    if !registry.storage.repo_exists(name) {
        return Err(name_unknown(name));
    }
    let Some(digest) = resolve_reference(registry, name, reference)? else {
        return Err(manifest_unknown(name, reference));
    };
    let stored = registry
        .storage
        .manifest(name, &digest)
        .map_err(|e| ApiError::internal("reading manifest", e))?
        .ok_or_else(|| manifest_unknown(name, reference))?;
    let body = if head {
        Vec::new()
    } else {
        tokio::fs::read(&stored.path)
            .await
            .map_err(|e| ApiError::internal("reading manifest", e))?
    };
    let mut response = full(StatusCode::OK, body);
    let headers = response.headers_mut();
    http_util::set(headers, header::CONTENT_TYPE, &stored.media_type);
    http_util::set(headers, header::CONTENT_LENGTH, &stored.size.to_string());
    http_util::set(headers, "Docker-Content-Digest", &digest.to_string());
    http_util::set(headers, header::ETAG, &format!("\"{digest}\""));
    Ok(response)
}

async fn put_manifest(
    registry: &Arc<Registry>,
    name: &str,
    reference: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = read_limited(req.into_body(), MAX_MANIFEST_SIZE)
        .await
        .map_err(|e| match e {
            BodyReadError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::SizeInvalid,
                format!("manifest is larger than {MAX_MANIFEST_SIZE} bytes"),
            ),
            BodyReadError::Body(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::ManifestInvalid,
                format!("reading manifest body: {e}"),
            ),
        })?;
    let (manifest, media_type) = Manifest::parse(&bytes, declared.as_deref()).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::ManifestInvalid,
            e.to_string(),
        )
    })?;
    let digest = Digest::of(&bytes);
    let tag = if reference.contains(':') {
        let wanted = parse_digest(reference)?;
        if wanted != digest {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::DigestInvalid,
                format!("manifest digest is {digest}, not {wanted} as the URL says"),
            ));
        }
        None
    } else if is_valid_tag(reference) {
        Some(reference.to_string())
    } else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::ManifestInvalid,
            format!("invalid tag {reference:?}"),
        ));
    };
    check_manifest_references(registry, name, &manifest, &media_type)?;

    let r = registry.clone();
    let repo = name.to_string();
    let (d, t) = (digest.clone(), media_type.clone());
    let subject = manifest.subject.clone();
    let referrer = Descriptor {
        media_type: media_type.clone(),
        digest: digest.clone(),
        size: bytes.len() as u64,
        artifact_type: manifest.effective_artifact_type(),
        annotations: manifest.annotations.clone(),
        platform: None,
        urls: None,
    };
    blocking("storing manifest", move || {
        r.storage
            .put_manifest(&repo, &bytes, &d, &t, tag.as_deref())?;
        if let Some(subject) = subject {
            r.storage.add_referrer(&repo, &subject.digest, &referrer)?;
        }
        Ok(())
    })
    .await?;

    let mut response = empty(StatusCode::CREATED);
    let headers = response.headers_mut();
    http_util::set(
        headers,
        header::LOCATION,
        &format!("/v2/{name}/manifests/{digest}"),
    );
    http_util::set(headers, "Docker-Content-Digest", &digest.to_string());
    if let Some(subject) = &manifest.subject {
        http_util::set(headers, "OCI-Subject", &subject.digest.to_string());
    }
    Ok(response)
}

/// A registry must not hold a manifest whose blobs it cannot serve.
fn check_manifest_references(
    registry: &Registry,
    name: &str,
    manifest: &Manifest,
    media_type: &str,
) -> Result<(), ApiError> {
    let missing = |d: &Descriptor, what: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::ManifestBlobUnknown,
            format!("{what} {} is not in repository {name}", d.digest),
        )
        .with_detail(serde_json::json!({ "digest": d.digest.to_string() }))
    };
    match crate::manifest::manifest_kind(media_type) {
        Some(ManifestKind::Image) => {
            for d in manifest
                .config
                .iter()
                .chain(manifest.layers.iter().flatten())
            {
                // Foreign layers (Windows base layers) live elsewhere.
                if d.urls.as_ref().is_some_and(|u| !u.is_empty()) {
                    continue;
                }
                match registry.storage.repo_blob_size(name, &d.digest) {
                    None => return Err(missing(d, "blob")),
                    Some(size) if size != d.size => {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            Code::ManifestInvalid,
                            format!(
                                "descriptor of blob {} says {} bytes, the blob has {size}",
                                d.digest, d.size
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        Some(ManifestKind::Index) => {
            for d in manifest.manifests.iter().flatten() {
                if !registry.storage.has_manifest(name, &d.digest) {
                    return Err(missing(d, "manifest"));
                }
            }
        }
        None => unreachable!("Manifest::parse accepts only known kinds"),
    }
    Ok(())
}

async fn delete_manifest(
    registry: &Arc<Registry>,
    name: &str,
    reference: &str,
) -> Result<Response<Body>, ApiError> {
    let r = registry.clone();
    let repo = name.to_string();
    let deleted = if reference.contains(':') {
        let digest = parse_digest(reference)?;
        blocking("deleting manifest", move || {
            r.storage.delete_manifest(&repo, &digest)
        })
        .await?
    } else if is_valid_tag(reference) {
        let tag = reference.to_string();
        blocking("deleting tag", move || r.storage.delete_tag(&repo, &tag)).await?
    } else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::ManifestInvalid,
            format!("invalid tag {reference:?}"),
        ));
    };
    if !deleted {
        return Err(manifest_unknown(name, reference));
    }
    Ok(empty(StatusCode::ACCEPTED))
}

fn blob_unknown(name: &str, digest: &Digest) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::BlobUnknown,
        format!("blob {digest} is not in repository {name}"),
    )
    .with_detail(serde_json::json!({ "digest": digest.to_string() }))
}

async fn get_blob(
    registry: &Arc<Registry>,
    name: &str,
    digest: &Digest,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let size = registry
        .storage
        .repo_blob_size(name, digest)
        .ok_or_else(|| blob_unknown(name, digest))?;
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let head = req.method() == Method::HEAD;
    serve_file(
        &registry.storage.blob_path(digest),
        size,
        range,
        head,
        digest,
    )
    .await
    .map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => blob_unknown(name, digest),
        _ => ApiError::internal("reading blob", e),
    })
}

async fn delete_blob(
    registry: &Arc<Registry>,
    name: &str,
    digest: &Digest,
) -> Result<Response<Body>, ApiError> {
    let r = registry.clone();
    let (repo, d) = (name.to_string(), digest.clone());
    if !blocking("deleting blob", move || r.storage.unlink_blob(&repo, &d)).await? {
        return Err(blob_unknown(name, digest));
    }
    Ok(empty(StatusCode::ACCEPTED))
}

async fn referrers(
    registry: &Arc<Registry>,
    name: &str,
    subject: &Digest,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let r = registry.clone();
    let (repo, s) = (name.to_string(), subject.clone());
    let mut list = blocking("listing referrers", move || r.storage.referrers(&repo, &s)).await?;
    let filter = query_param(req.uri().query(), "artifactType");
    if let Some(wanted) = &filter {
        list.retain(|d| d.artifact_type.as_deref() == Some(wanted.as_str()));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::manifest::OCI_INDEX,
        "manifests": list,
    });
    let mut response = full(
        StatusCode::OK,
        serde_json::to_vec(&index).expect("serializable"),
    );
    http_util::set(
        response.headers_mut(),
        header::CONTENT_TYPE,
        crate::manifest::OCI_INDEX,
    );
    if filter.is_some() {
        http_util::set(
            response.headers_mut(),
            "OCI-Filters-Applied",
            "artifactType",
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_at_the_last_marker() {
        assert!(matches!(parse_route("/v2/"), Some(Route::Base)));
        assert!(matches!(parse_route("/v2"), Some(Route::Base)));
        assert!(matches!(
            parse_route("/v2/a/b/tags/list"),
            Some(Route::Tags("a/b"))
        ));
        assert!(matches!(
            parse_route("/v2/x/manifests/y/manifests/latest"),
            Some(Route::Manifest("x/manifests/y", "latest"))
        ));
        assert!(matches!(
            parse_route("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart("a"))
        ));
        assert!(matches!(
            parse_route("/v2/a/blobs/uploads/abc"),
            Some(Route::Upload("a", "abc"))
        ));
        assert!(matches!(
            parse_route("/v2/x/blobs/uploads/blobs/sha256:ab"),
            Some(Route::Blob("x/blobs/uploads", "sha256:ab"))
        ));
        assert!(matches!(
            parse_route("/v2/a/referrers/sha256:ab"),
            Some(Route::Referrers("a", "sha256:ab"))
        ));
        assert!(parse_route("/v1/a").is_none());
        assert!(parse_route("/v2/a/manifests/").is_none());
    }
}
