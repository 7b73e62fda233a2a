//! The registry client: endpoints, TLS, authentication, retries, redirects.
//! [`ops`] builds the distribution operations on top; [`transfer`] moves
//! whole images.

pub mod auth;
pub mod config;
pub mod credentials;
pub mod ops;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod transfer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, AUTHORIZATION, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use auth::{parse_challenge, Challenge, Token, TokenResponse};
use config::ClientSettings;
use credentials::{Credentials, CredentialsError, DockerConfig};
use reference::endpoint_host;

/// Tunables; the defaults suit real registries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// A transfer with no bytes for this long is abandoned (and retried).
    pub stall_timeout: Duration,
    pub connect_timeout: Duration,
    /// Tries per request on 429, 5xx and dropped connections.
    pub max_attempts: u32,
    /// First backoff; it doubles per retry, capped at 10 s.
    pub backoff: Duration,
    pub max_redirects: usize,
    /// Blobs up to this size go in one PUT; larger ones in PATCH chunks.
    pub monolithic_limit: u64,
    pub chunk_size: u64,
    /// Parallel layer transfers of one image.
    pub parallel_transfers: usize,
    /// Host names that resolve to these addresses instead of through DNS
    /// (curl's `--resolve`); the port still comes from the registry name.
    pub resolve_overrides: Vec<(String, std::net::SocketAddr)>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            stall_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            max_attempts: 5,
            backoff: Duration::from_millis(250),
            max_redirects: 10,
            monolithic_limit: 64 << 20,
            chunk_size: 32 << 20,
            parallel_transfers: 3,
            resolve_overrides: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{step}: {source}")]
    Connect {
        step: String,
        source: reqwest::Error,
    },
    #[error("{step}: no data for {secs} s, the transfer stalled")]
    Stalled { step: String, secs: u64 },
    #[error("{step}: {status}{}", registry_message(.code, .message))]
    Status {
        step: String,
        status: StatusCode,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("{step}: authentication required{}", registry_message(.code, .message))]
    Unauthorized {
        step: String,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("{step}: access denied{}", registry_message(.code, .message))]
    Denied {
        step: String,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("{step}: not found{}", registry_message(.code, .message))]
    NotFound {
        step: String,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("{step}: content has digest {actual}, expected {expected}")]
    DigestMismatch {
        step: String,
        expected: String,
        actual: String,
    },
    #[error("{step}: received {actual} bytes, expected {expected}")]
    SizeMismatch {
        step: String,
        expected: u64,
        actual: u64,
    },
    #[error("{step}: manifest is larger than the {limit}-byte limit")]
    ManifestTooLarge { step: String, limit: usize },
    #[error("{step}: malformed manifest: {source}")]
    Manifest {
        step: String,
        source: crate::manifest::ManifestError,
    },
    #[error("{step}: more than {limit} redirects (last to {url})")]
    TooManyRedirects {
        step: String,
        limit: usize,
        url: String,
    },
    #[error("{step}: {why}")]
    Protocol { step: String, why: String },
    #[error("registry {registry}: HTTPS failed ({why}) and plain HTTP is allowed only for loopback hosts and registries listed as insecure in the quai config")]
    HttpsRequired { registry: String, why: String },
    #[error("TLS setup for {registry}: {why}")]
    Tls { registry: String, why: String },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Reference(#[from] reference::ReferenceError),
    #[error("{step}: {source}")]
    Store {
        step: String,
        source: Box<quai_image::Error>,
    },
    #[error("{image}: no manifest for platform {wanted} (available: {available})")]
    NoPlatform {
        image: String,
        wanted: String,
        available: String,
    },
}

fn registry_message(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" ({c}: {m})"),
        (Some(c), None) => format!(" ({c})"),
        (None, Some(m)) => format!(" ({m})"),
        (None, None) => String::new(),
    }
}

impl ClientError {
    /// An image store failure at `step` of a pull or push.
    pub fn store(step: impl Into<String>, source: quai_image::Error) -> ClientError {
        ClientError::Store {
            step: step.into(),
            source: Box::new(source),
        }
    }

    /// Errors worth another try: the network or the server failed, not us.
    fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Stalled { .. } => true,
            ClientError::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            _ => false,
        }
    }
}

/// What a request sends: nothing, bytes in memory, or part of a file
/// (re-read on every try, so retries and redirects can replay it).
#[derive(Clone, Debug)]
pub enum RequestBody {
    Empty,
    Bytes(Bytes),
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        /// Told the file offset reached as the body is read.
        sent: Option<BytesSent>,
    },
}

/// A callback that follows an upload: called with the number of bytes of
/// the blob handed to the connection so far.
#[derive(Clone)]
pub struct BytesSent(pub Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for BytesSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BytesSent")
    }
}

impl RequestBody {
    async fn to_reqwest(&self) -> Result<(reqwest::Body, u64), std::io::Error> {
        Ok(match self {
            RequestBody::Empty => (reqwest::Body::from(Bytes::new()), 0),
            RequestBody::Bytes(b) => (reqwest::Body::from(b.clone()), b.len() as u64),
            RequestBody::File {
                path,
                offset,
                len,
                sent,
            } => {
                use futures_util::TryStreamExt;
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut file = tokio::fs::File::open(path).await?;
                file.seek(std::io::SeekFrom::Start(*offset)).await?;
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file.take(*len), 256 << 10);
                let mut at = *offset;
                let sent = sent.clone();
                let stream = stream.inspect_ok(move |chunk| {
                    at += chunk.len() as u64;
                    if let Some(BytesSent(report)) = &sent {
                        report(at);
                    }
                });
                (reqwest::Body::wrap_stream(stream), *len)
            }
        })
    }
}

/// Access a request needs, for bearer-token scopes.
#[derive(Clone, Debug, Default)]
pub struct Scope(pub Vec<String>);

impl Scope {
    pub fn pull(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull")])
    }

    pub fn push(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull,push")])
    }

    pub fn and_pull(mut self, repository: &str) -> Scope {
        self.0.push(format!("repository:{repository}:pull"));
        self
    }

    fn key(&self) -> String {
        self.0.join(" ")
    }
}

/// Entry point: one per process (or per operation); endpoints are cached.
pub struct Client {
    settings: ClientSettings,
    options: ClientOptions,
    credentials_override: HashMap<String, Credentials>,
    docker_config: Option<PathBuf>,
    endpoints: tokio::sync::Mutex<HashMap<String, Arc<Endpoint>>>,
}

impl Client {
    /// A client with settings from the quai config and credentials from Docker's.
    pub fn new(options: ClientOptions) -> Result<Client, ClientError> {
        Ok(Client::with_settings(ClientSettings::load()?, options))
    }

    pub fn with_settings(settings: ClientSettings, options: ClientOptions) -> Client {
        Client {
            settings,
            options,
            credentials_override: HashMap::new(),
            docker_config: None,
            endpoints: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Uses these credentials for `registry` instead of Docker's config (login).
    pub fn set_credentials(&mut self, registry: &str, credentials: Credentials) {
        self.credentials_override
            .insert(registry.to_string(), credentials);
    }

    /// Reads credentials from this `config.json` instead of Docker's default.
    pub fn set_docker_config(&mut self, path: PathBuf) {
        self.docker_config = Some(path);
    }

    /// The endpoint of `registry` (the name used in references).
    pub async fn endpoint(&self, registry: &str) -> Result<Arc<Endpoint>, ClientError> {
        let mut endpoints = self.endpoints.lock().await;
        if let Some(e) = endpoints.get(registry) {
            return Ok(e.clone());
        }
        let credentials = match self.credentials_override.get(registry) {
            Some(c) => Some(c.clone()),
            None => match &self.docker_config {
                Some(path) => DockerConfig::load(path)?.get(registry)?,
                None => DockerConfig::load_default()?.get(registry)?,
            },
        };
        let endpoint = Arc::new(
            Endpoint::connect(registry, None, credentials, &self.settings, &self.options).await?,
        );
        endpoints.insert(registry.to_string(), endpoint.clone());
        Ok(endpoint)
    }

    /// Endpoints to pull from, in order: the configured mirrors, then the registry.
    pub async fn pull_endpoints(&self, registry: &str) -> Vec<Result<Arc<Endpoint>, ClientError>> {
        let mut out = Vec::new();
        for mirror in self.settings.mirrors(registry) {
            let key = format!("mirror {mirror}");
            let mut endpoints = self.endpoints.lock().await;
            if let Some(e) = endpoints.get(&key) {
                out.push(Ok(e.clone()));
                continue;
            }
            let e = Endpoint::connect(registry, Some(mirror), None, &self.settings, &self.options)
                .await
                .map(Arc::new);
            if let Ok(e) = &e {
                endpoints.insert(key, e.clone());
            }
            out.push(e);
        }
        out.push(self.endpoint(registry).await);
        out
    }
}

struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, Token>,
}

/// One registry (or mirror) reached over one HTTP client.
pub struct Endpoint {
    /// The registry name references use (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    base: Url,
    http: reqwest::Client,
    credentials: Option<Credentials>,
    auth: tokio::sync::Mutex<AuthState>,
    options: ClientOptions,
}

impl Endpoint {
    async fn connect(
        registry: &str,
        mirror: Option<&str>,
        credentials: Option<Credentials>,
        settings: &ClientSettings,
        options: &ClientOptions,
    ) -> Result<Endpoint, ClientError> {
        let (host, candidates): (String, Vec<Url>) = match mirror {
            Some(m) => {
                let url = Url::parse(m).map_err(|e| ClientError::Protocol {
                    step: format!("mirror {m} of {registry}"),
                    why: e.to_string(),
                })?;
                let host = url_host(&url);
                (host, vec![url])
            }
            None => {
                let host = endpoint_host(registry).to_string();
                let mut c = vec![parse_base(&format!("https://{host}/"), registry)?];
                if settings.allows_http(&host) {
                    c.push(parse_base(&format!("http://{host}/"), registry)?);
                }
                (host, c)
            }
        };
        let http = build_http_client(&host, registry, settings, options)?;
        let mut endpoint = Endpoint {
            registry: registry.to_string(),
            base: candidates[0].clone(),
            http,
            credentials,
            auth: tokio::sync::Mutex::new(AuthState {
                challenge: None,
                tokens: HashMap::new(),
            }),
            options: options.clone(),
        };
        // Ping /v2/: learns the scheme that works and the auth challenge.
        let mut last_error = None;
        for base in &candidates {
            endpoint.base = base.clone();
            match endpoint.ping().await {
                Ok(()) => return Ok(endpoint),
                Err(e @ ClientError::Connect { .. }) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        let e = last_error.expect("at least one candidate");
        if candidates.len() == 1 && mirror.is_none() {
            return Err(ClientError::HttpsRequired {
                registry: registry.to_string(),
                why: e.to_string(),
            });
        }
        Err(e)
    }

    async fn ping(&self) -> Result<(), ClientError> {
        let step = format!("contacting registry {}", self.registry);
        let url = self.url("/v2/")?;
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|source| ClientError::Connect {
                step: step.clone(),
                source,
            })?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            self.auth.lock().await.challenge = challenge;
            return Ok(());
        }
        if resp.status().is_success() {
            return Ok(());
        }
        Err(status_error(step, resp).await)
    }

    /// Checks that the credentials are accepted (`login`): `/v2/` with
    /// basic auth, or a token for the registry's service.
    pub async fn verify_login(&self) -> Result<(), ClientError> {
        let resp = self
            .send(
                Method::GET,
                "/v2/",
                HeaderMap::new(),
                RequestBody::Empty,
                &Scope::default(),
                "logging in",
            )
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(status_error("logging in".into(), resp).await)
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base.join(path).map_err(|e| ClientError::Protocol {
            step: format!("building URL {path}"),
            why: e.to_string(),
        })
    }

    async fn authorization(
        &self,
        scope: &Scope,
        step: &str,
    ) -> Result<Option<String>, ClientError> {
        let mut auth = self.auth.lock().await;
        match auth.challenge.clone() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(match &self.credentials {
                Some(Credentials::Basic { username, password }) => {
                    Some(basic_header(username, password))
                }
                _ => None,
            }),
            Some(Challenge::Bearer { realm, service }) => {
                let key = scope.key();
                if let Some(t) = auth.tokens.get(&key).filter(|t| t.is_fresh()) {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let token = self
                    .fetch_token(&realm, service.as_deref(), scope, step)
                    .await?;
                let header = format!("Bearer {}", token.value);
                auth.tokens.insert(key, token);
                Ok(Some(header))
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
        step: &str,
    ) -> Result<Token, ClientError> {
        let step = format!("{step}: getting a token from {realm}");
        let mut url = Url::parse(realm).map_err(|e| ClientError::Protocol {
            step: step.clone(),
            why: format!("invalid realm: {e}"),
        })?;
        let request = match &self.credentials {
            Some(Credentials::IdentityToken { token, .. }) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", token.clone()),
                    ("client_id", "quai".to_string()),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_string()));
                }
                if !scope.0.is_empty() {
                    form.push(("scope", scope.0.join(" ")));
                }
                let body: String = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish();
                self.http
                    .post(url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            credentials => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in &scope.0 {
                        q.append_pair("scope", s);
                    }
                }
                let mut r = self.http.get(url);
                if let Some(Credentials::Basic { username, password }) = credentials {
                    r = r.header(AUTHORIZATION, basic_header(username, password));
                }
                r
            }
        };
        let resp = request
            .send()
            .await
            .map_err(|source| ClientError::Connect {
                step: step.clone(),
                source,
            })?;
        if !resp.status().is_success() {
            return Err(status_error(step, resp).await);
        }
        let body = resp.bytes().await.map_err(|source| ClientError::Connect {
            step: step.clone(),
            source,
        })?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
                step: step.clone(),
                why: format!("invalid token response: {e}"),
            })?;
        parsed.into_token().ok_or(ClientError::Protocol {
            step,
            why: "token response holds no token".into(),
        })
    }

    /// Sends a request with authentication, retries and redirects; returns
    /// the final response whatever its status (the caller judges it), or an
    /// error for what no caller can handle (401 after authenticating,
    /// transport failures after the last try).
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        headers: HeaderMap,
        body: RequestBody,
        scope: &Scope,
        step: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let start = self.url(path_or_url)?;
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let result = self
                .send_once(&method, &start, &headers, &body, scope, step)
                .await;
            let retry_after = match &result {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !reauthenticated => {
                    // A new challenge (other realm, expired token): learn it, drop tokens, retry once.
                    let challenge = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_challenge);
                    if challenge.is_some() {
                        let mut auth = self.auth.lock().await;
                        auth.challenge = challenge;
                        auth.tokens.clear();
                        reauthenticated = true;
                        attempt -= 1;
                        continue;
                    }
                    return result;
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    let resp = result?;
                    return Err(match status_error(step.to_string(), resp).await {
                        ClientError::Status {
                            step,
                            code,
                            message,
                            ..
                        } => ClientError::Unauthorized {
                            step,
                            code,
                            message,
                        },
                        e => e,
                    });
                }
                Ok(resp)
                    if resp.status() == StatusCode::TOO_MANY_REQUESTS
                        || resp.status().is_server_error() =>
                {
                    if attempt >= self.options.max_attempts {
                        return result;
                    }
                    resp.headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs)
                }
                Ok(_) => return result,
                Err(e) if e.is_transient() && attempt < self.options.max_attempts => None,
                Err(_) => return result,
            };
            let backoff = self.options.backoff * 2u32.saturating_pow(attempt - 1);
            let wait = retry_after.unwrap_or(backoff).min(Duration::from_secs(10));
            tracing::debug!("{step}: try {attempt} failed; retrying in {wait:?}");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        start: &Url,
        headers: &HeaderMap,
        body: &RequestBody,
        scope: &Scope,
        step: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let authorization = self.authorization(scope, step).await?;
        let mut url = start.clone();
        let mut redirects = 0;
        loop {
            // Credentials go only to the registry's own host: a redirect to
            // blob storage elsewhere must not receive them.
            let same_origin = url.origin() == self.base.origin();
            let (req_body, len) = body.to_reqwest().await.map_err(|source| ClientError::Io {
                what: format!("{step}: reading upload data"),
                source,
            })?;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if !matches!(body, RequestBody::Empty)
                || matches!(*method, Method::PUT | Method::POST | Method::PATCH)
            {
                req = req.header("Content-Length", len).body(req_body);
            }
            if let (true, Some(a)) = (same_origin, &authorization) {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req
                .send()
                .await
                .map_err(|source| transport_error(step, source, &self.options))?;
            let redirect = matches!(
                resp.status(),
                StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
            );
            if !redirect || !matches!(*method, Method::GET | Method::HEAD) {
                return Ok(resp);
            }
            let Some(location) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                return Ok(resp);
            };
            let next = url.join(location).map_err(|e| ClientError::Protocol {
                step: step.to_string(),
                why: format!("bad redirect location {location:?}: {e}"),
            })?;
            redirects += 1;
            if redirects > self.options.max_redirects {
                return Err(ClientError::TooManyRedirects {
                    step: step.to_string(),
                    limit: self.options.max_redirects,
                    url: next.to_string(),
                });
            }
            url = next;
        }
    }
}

fn parse_base(s: &str, registry: &str) -> Result<Url, ClientError> {
    Url::parse(s).map_err(|e| ClientError::Protocol {
        step: format!("registry {registry}"),
        why: format!("invalid host: {e}"),
    })
}

fn url_host(url: &Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    }
}

fn basic_header(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

pub(crate) fn transport_error(
    step: &str,
    source: reqwest::Error,
    options: &ClientOptions,
) -> ClientError {
    if source.is_timeout() {
        ClientError::Stalled {
            step: step.to_string(),
            secs: options.stall_timeout.as_secs(),
        }
    } else {
        ClientError::Connect {
            step: step.to_string(),
            source,
        }
    }
}

/// Turns an unwanted response into an error carrying the registry's own
/// `errors[0]` code and message.
pub async fn status_error(step: String, resp: reqwest::Response) -> ClientError {
    let status = resp.status();
    let mut body = Vec::new();
    let mut resp = resp;
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 << 10 {
            break;
        }
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let first = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.get(0));
    let code = first
        .and_then(|e| e.get("code"))
        .and_then(|c| c.as_str())
        .map(str::to_string);
    let message = first
        .and_then(|e| e.get("message"))
        .and_then(|c| c.as_str())
        .map(str::to_string);
    match status {
        StatusCode::UNAUTHORIZED => ClientError::Unauthorized {
            step,
            code,
            message,
        },
        StatusCode::FORBIDDEN => ClientError::Denied {
            step,
            code,
            message,
        },
        StatusCode::NOT_FOUND => ClientError::NotFound {
            step,
            code,
            message,
        },
        _ => ClientError::Status {
            step,
            status,
            code,
            message,
        },
    }
}

fn build_http_client(
    host: &str,
    registry: &str,
    settings: &ClientSettings,
    options: &ClientOptions,
) -> Result<reqwest::Client, ClientError> {
    let tls_err = |why: String| ClientError::Tls {
        registry: registry.to_string(),
        why,
    };
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("quai/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.stall_timeout)
        .use_rustls_tls()
        .no_proxy();
    for (name, addr) in &options.resolve_overrides {
        builder = builder.resolve(name, *addr);
    }
    if let Some(dir) = settings.cert_dir(host) {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| tls_err(format!("reading {}: {e}", dir.display())))?;
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for path in &names {
            if path.extension().is_some_and(|e| e == "crt") {
                let pem = std::fs::read(path)
                    .map_err(|e| tls_err(format!("reading {}: {e}", path.display())))?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| tls_err(format!("{}: {e}", path.display())))?
                {
                    builder = builder.add_root_certificate(cert);
                }
            }
        }
        // Docker's layout: client.cert + client.key authenticate quai to the registry.
        let cert = dir.join("client.cert");
        let key = dir.join("client.key");
        match (cert.exists(), key.exists()) {
            (true, true) => {
                let mut pem = std::fs::read(&cert)
                    .map_err(|e| tls_err(format!("reading {}: {e}", cert.display())))?;
                pem.extend(
                    std::fs::read(&key)
                        .map_err(|e| tls_err(format!("reading {}: {e}", key.display())))?,
                );
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    tls_err(format!("client certificate in {}: {e}", dir.display()))
                })?;
                builder = builder.identity(identity);
            }
            (true, false) | (false, true) => {
                return Err(tls_err(format!(
                    "{} needs both client.cert and client.key",
                    dir.display()
                )))
            }
            (false, false) => {}
        }
    }
    builder.build().map_err(|e| tls_err(e.to_string()))
}
