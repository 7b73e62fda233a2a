//! Response building, query strings, ranges, request bodies and TLS setup
//! for the registry server.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::errors::{ApiError, Code};
use crate::digest::Digest;

pub type Body = BoxBody<Bytes, io::Error>;

pub fn full(status: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    let len = bytes.len();
    let mut r = Response::new(
        Full::new(Bytes::from(bytes))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    set(r.headers_mut(), header::CONTENT_LENGTH, &len.to_string());
    r
}

pub fn empty(status: StatusCode) -> Response<Body> {
    full(status, Vec::new())
}

pub fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    let mut r = full(status, bytes);
    set(r.headers_mut(), header::CONTENT_TYPE, "application/json");
    r
}

/// Sets a header whose value quai built itself (always valid).
pub fn set<K: TryInto<HeaderName>>(headers: &mut HeaderMap, name: K, value: &str) {
    if let (Ok(name), Ok(value)) = (name.try_into(), HeaderValue::from_str(value)) {
        headers.insert(name, value);
    }
}

pub fn set_link(response: &mut Response<Body>, next: &str) {
    set(
        response.headers_mut(),
        header::LINK,
        &format!("<{next}>; rel=\"next\""),
    );
}

pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// `(n, last)` of the next page's link.
pub type NextPage = (usize, String);

/// Applies `n` and `last` to a sorted list; returns the page and, when more
/// entries follow, the `(n, last)` of the next page's link.
pub fn paginate(
    sorted: Vec<String>,
    query: Option<&str>,
) -> Result<(Vec<String>, Option<NextPage>), ApiError> {
    let last = query_param(query, "last");
    let n = match query_param(query, "n") {
        None => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::Unsupported,
                format!("query parameter n={n:?} is not a count"),
            )
        })?),
    };
    let mut rest: Vec<String> = match &last {
        Some(last) => sorted.into_iter().filter(|t| t > last).collect(),
        None => sorted,
    };
    let Some(n) = n else {
        return Ok((rest, None));
    };
    if rest.len() <= n {
        return Ok((rest, None));
    }
    rest.truncate(n);
    let next = rest.last().cloned().map(|last| {
        (
            n,
            form_urlencoded::byte_serialize(last.as_bytes()).collect(),
        )
    });
    Ok((rest, next))
}

#[derive(Debug)]
pub enum BodyReadError {
    TooLarge,
    Body(hyper::Error),
}

/// Reads a whole request body of at most `limit` bytes.
pub async fn read_limited(mut body: Incoming, limit: usize) -> Result<Vec<u8>, BodyReadError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyReadError::Body)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(BodyReadError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// A parsed `Range: bytes=…` header against a blob of `size` bytes: the
/// first and last byte, or `Err` when it cannot be satisfied.
pub fn parse_range(header: &str, size: u64) -> Result<(u64, u64), ()> {
    let spec = header.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        // Multipart ranges: no registry client uses them.
        return Err(());
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    let (first, last) = if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| ())?;
        if suffix == 0 {
            return Err(());
        }
        (size.saturating_sub(suffix), size.checked_sub(1).ok_or(())?)
    } else {
        let first: u64 = start.parse().map_err(|_| ())?;
        let last = if end.is_empty() {
            size.checked_sub(1).ok_or(())?
        } else {
            end.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        (first, last)
    };
    if first >= size || first > last {
        return Err(());
    }
    Ok((first, last))
}

/// A blob response: whole, or the requested range (206), or 416.
pub async fn serve_file(
    path: &Path,
    size: u64,
    range: Option<&str>,
    head: bool,
    digest: &Digest,
) -> io::Result<Response<Body>> {
    let (status, first, len) = match range.map(|r| parse_range(r, size)) {
        None => (StatusCode::OK, 0, size),
        Some(Ok((first, last))) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        Some(Err(())) => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Code::BlobUnknown,
                format!(
                    "range {} cannot be served from a {size}-byte blob",
                    range.unwrap_or_default()
                ),
            );
            r.detail = None;
            let mut response = full(r.status, r.body());
            set(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return Ok(response);
        }
    };
    let mut response = if head {
        let mut r = empty(status);
        set(r.headers_mut(), header::CONTENT_LENGTH, &len.to_string());
        r
    } else {
        let mut file = tokio::fs::File::open(path).await?;
        if first > 0 {
            file.seek(io::SeekFrom::Start(first)).await?;
        }
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 << 10)
            .map_ok(Frame::data);
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        *r.status_mut() = status;
        set(r.headers_mut(), header::CONTENT_LENGTH, &len.to_string());
        r
    };
    let headers = response.headers_mut();
    set(headers, header::CONTENT_TYPE, "application/octet-stream");
    set(headers, header::ACCEPT_RANGES, "bytes");
    set(headers, "Docker-Content-Digest", &digest.to_string());
    set(headers, header::ETAG, &format!("\"{digest}\""));
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            headers,
            header::CONTENT_RANGE,
            &format!("bytes {first}-{}/{size}", first + len - 1),
        );
    }
    Ok(response)
}

pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("reading certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("reading private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not form a usable pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Ok((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-4", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Err(()));
        assert_eq!(parse_range("items=0-1", 100), Err(()));
        assert_eq!(parse_range("bytes=0-0", 0), Err(()));
    }

    #[test]
    fn pagination_uses_n_and_last() {
        let tags: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let (page, next) = paginate(tags.clone(), Some("n=2")).unwrap();
        assert_eq!(page, ["a", "b"]);
        assert_eq!(next, Some((2, "b".to_string())));
        let (page, next) = paginate(tags.clone(), Some("n=2&last=b")).unwrap();
        assert_eq!(page, ["c", "d"]);
        assert_eq!(next, None);
        let (page, _) = paginate(tags.clone(), Some("last=c")).unwrap();
        assert_eq!(page, ["d"]);
        assert!(paginate(tags, Some("n=x")).is_err());
    }
}
