//! Image references as the registry client needs them: which registry, which
//! repository, which tag or digest. Parsing is the image crate's (Docker's
//! rules and messages): `busybox` = `docker.io/library/busybox:latest`.

use std::fmt;

use crate::digest::Digest;
pub use quai_image::reference::{Reference, ReferenceError, DEFAULT_DOMAIN as DOCKER_HUB};

/// Where Docker Hub's registry API actually lives.
pub const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// `docker.io`, `localhost:5000`, `ghcr.io`...
    pub registry: String,
    /// `library/busybox`, `a/b`...
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl From<&Reference> for ImageRef {
    fn from(r: &Reference) -> ImageRef {
        ImageRef {
            registry: r.domain().to_string(),
            repository: r.path().to_string(),
            tag: r.tag().map(str::to_string),
            digest: r.digest().cloned(),
        }
    }
}

impl ImageRef {
    /// Parses like docker; with neither tag nor digest, the tag is `latest`.
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        Ok(ImageRef::from(&Reference::parse_tagged(s)?))
    }

    /// The image crate's form of this reference (for the image store).
    pub fn to_reference(&self) -> Reference {
        Reference::parse(&self.to_string()).expect("an ImageRef is always a valid reference")
    }

    /// What to ask the registry for: the digest when known, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The host to connect to for a registry name.
pub fn endpoint_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_ENDPOINT
    } else {
        registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalisation() {
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = ImageRef::parse("user/app:1.0").unwrap();
        assert_eq!(r.to_string(), "docker.io/user/app:1.0");
        let r = ImageRef::parse("localhost:5000/a/b").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "a/b")
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = ImageRef::parse(&format!("127.0.0.1:5000/x@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.reference(), d);
        assert_eq!(endpoint_host("docker.io"), "registry-1.docker.io");
        for bad in ["", "UPPER", "a:b:c", "x@sha256:12", "a/:tag", "a//b"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
