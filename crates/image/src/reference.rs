//! Image references parsed and normalized like Docker's
//! (github.com/distribution/reference): `busybox` is
//! `docker.io/library/busybox:latest`, `host:5000/a/b:tag` keeps its
//! registry, `name@sha256:…` names a manifest by digest. Error messages are
//! Docker's, so scripts that match them keep working.

use std::fmt;

use crate::digest::{is_sha256_hex, Digest};

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("invalid reference format: {0}")]
    Digest(String),
}

/// A normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference as a user types it (docker's ParseNormalizedNamed).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if is_sha256_hex(s) {
            return Err(ReferenceError::HexName(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote_name = match remainder.find(':') {
            Some(i) => &remainder[..i],
            None => remainder.split('@').next().unwrap_or_default(),
        };
        if remote_name.to_lowercase() != remote_name {
            return Err(ReferenceError::Uppercase(remote_name.to_string()));
        }
        parse_canonical(&domain, &remainder)
    }

    /// Parses like [`Reference::parse`] and adds the `latest` tag when the
    /// reference names neither a tag nor a digest (what `docker pull`,
    /// `tag` and `run` do).
    pub fn parse_tagged(s: &str) -> Result<Reference, ReferenceError> {
        Ok(Reference::parse(s)?.with_default_tag())
    }

    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// The registry host (and port), e.g. `docker.io`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Returns this reference with `tag` instead of its own tag and digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidFormat);
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// Returns this repository with `digest` and no tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The full repository name, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as docker shows it: `busybox`, `user/app`,
    /// `host:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// The reference as docker shows it, e.g. `busybox:latest`.
    pub fn familiar(&self) -> String {
        self.render(&self.familiar_name())
    }

    fn render(&self, name: &str) -> String {
        let mut s = name.to_string();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form, e.g. `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&self.name()))
    }
}

/// `repository@digest` as docker shows a repo digest, from a stored full
/// repository name (`docker.io/library/busybox` → `busybox@sha256:…`).
pub fn familiar_repo_digest(repository: &str, digest: &Digest) -> String {
    let name = Reference::parse(repository)
        .map(|r| r.familiar_name())
        .unwrap_or_else(|_| repository.to_string());
    format!("{name}@{digest}")
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.find('/') {
        Some(i)
            if name[..i].contains(['.', ':'])
                || &name[..i] == "localhost"
                || name[..i].to_lowercase() != name[..i] =>
        {
            (name[..i].to_string(), name[i + 1..].to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// Parses `remainder` = `path[:tag][@digest]` under an already split domain.
fn parse_canonical(domain: &str, remainder: &str) -> Result<Reference, ReferenceError> {
    let (rest, digest) = match remainder.split_once('@') {
        Some((rest, d)) => {
            let (algo, hex) = d.split_once(':').ok_or(ReferenceError::InvalidFormat)?;
            if algo.is_empty() || hex.is_empty() {
                return Err(ReferenceError::InvalidFormat);
            }
            if algo != "sha256" {
                return Err(ReferenceError::Digest(format!(
                    "unsupported digest algorithm {algo}"
                )));
            }
            let digest = Digest::from_hex(hex)
                .map_err(|_| ReferenceError::Digest("invalid checksum digest length".into()))?;
            (rest, Some(digest))
        }
        None => (remainder, None),
    };
    // A ':' after the last '/' starts the tag.
    let (path, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if path.is_empty() {
        return Err(ReferenceError::NameEmpty);
    }
    if let Some(t) = tag {
        if !is_tag(t) {
            return Err(ReferenceError::InvalidFormat);
        }
    }
    if !is_domain(domain) || !path.split('/').all(is_path_component) {
        if path
            .split('/')
            .all(|c| is_path_component(&c.to_lowercase()))
            && is_domain(domain)
        {
            return Err(ReferenceError::Uppercase(path.to_string()));
        }
        return Err(ReferenceError::InvalidFormat);
    }
    if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    Ok(Reference {
        domain: domain.to_string(),
        path: path.to_string(),
        tag: tag.map(str::to_string),
        digest,
    })
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__', or a run of '-'; it must be followed
        // by an alphanumeric (the last byte is one, checked above).
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// `host[:port]` where host is a domain name, an IPv4 address or a
/// bracketed IPv6 address.
fn is_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match after {
                    "" => return true,
                    p => ("", p.strip_prefix(':').unwrap_or("x")),
                }
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (d, ""),
        }
    };
    let port_ok = d.rsplit_once(':').is_none() && port.is_empty()
        || !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if !port_ok {
        return false;
    }
    if host.is_empty() {
        return d.starts_with('[');
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    })
}

/// `[\w][\w.-]{0,127}`
fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse_tagged(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(full("index.docker.io/x"), "docker.io/library/x:latest");
        assert_eq!(full("host:5000/a/b:tag"), "host:5000/a/b:tag");
        assert_eq!(full("localhost/app"), "localhost/app:latest");
        assert_eq!(full("my.reg/app"), "my.reg/app:latest");
        assert_eq!(full("[::1]:5000/app:v1"), "[::1]:5000/app:v1");
        assert_eq!(
            full("a__b/c---d/e.f:T_a.g-1"),
            "docker.io/a__b/c---d/e.f:T_a.g-1"
        );
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse_tagged(&format!("busybox@sha256:{hex}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), format!("busybox@sha256:{hex}"));
        let r = Reference::parse("host:5000/a:v@sha256:".to_string().as_str());
        assert!(r.is_err());
    }

    #[test]
    fn familiar_names_drop_the_default_registry() {
        let r = Reference::parse_tagged("docker.io/library/busybox").unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");
        let r = Reference::parse_tagged("user/app:1").unwrap();
        assert_eq!(r.familiar(), "user/app:1");
        let r = Reference::parse_tagged("localhost:5000/app").unwrap();
        assert_eq!(r.familiar(), "localhost:5000/app:latest");
    }

    #[test]
    fn invalid_references_get_dockers_messages() {
        let msg = |s: &str| Reference::parse(s).unwrap_err().to_string();
        assert_eq!(
            msg("Busybox"),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(msg("busybox:-bad"), "invalid reference format");
        assert_eq!(msg("bad name"), "invalid reference format");
        assert_eq!(msg("a//b"), "invalid reference format");
        assert_eq!(msg("a/b_"), "invalid reference format");
        assert_eq!(msg(""), "invalid reference format");
        assert_eq!(
            msg("busybox@sha256:abc"),
            "invalid reference format: invalid checksum digest length"
        );
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            msg(hex),
            format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings")
        );
        assert_eq!(
            msg(&"a".repeat(300)),
            "repository name must not be more than 255 characters"
        );
        assert_eq!(
            msg(&format!("x:{}", "t".repeat(129))),
            "invalid reference format"
        );
    }

    #[test]
    fn with_tag_validates() {
        let r = Reference::parse_tagged("busybox").unwrap();
        assert_eq!(r.with_tag("v2").unwrap().familiar(), "busybox:v2");
        assert!(r.with_tag(".v2").is_err());
    }
}
