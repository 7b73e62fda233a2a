//! `--platform os/arch[/variant]` and picking a manifest from an index.

use std::fmt;

use crate::manifest::{Descriptor, Manifest};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7")]
pub struct PlatformError(pub String);

impl PlatformSpec {
    /// The machine quai runs on, in OCI's names.
    pub fn host() -> PlatformSpec {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        PlatformSpec {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_string),
        }
    }

    pub fn parse(s: &str) -> Result<PlatformSpec, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(PlatformError(s.to_string()));
        }
        let mut architecture = parts[1].to_ascii_lowercase();
        // Docker's aliases.
        if architecture == "x86_64" || architecture == "x86-64" {
            architecture = "amd64".into();
        } else if architecture == "aarch64" {
            architecture = "arm64".into();
        }
        Ok(PlatformSpec {
            os: parts[0].to_ascii_lowercase(),
            architecture,
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    fn matches(&self, d: &Descriptor) -> bool {
        let Some(p) = &d.platform else {
            return false;
        };
        if p.os != self.os || p.architecture != self.architecture {
            return false;
        }
        match (&self.variant, &p.variant) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            // arm64 images usually omit their (only) variant v8.
            (Some(want), None) => self.architecture == "arm64" && want == "v8",
        }
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The entry of `index` for `want`: an exact variant match first, then any
/// entry of the os/arch when the host's default variant was asked for.
pub fn select<'a>(index: &'a Manifest, want: &PlatformSpec) -> Option<&'a Descriptor> {
    let entries = index.manifests.as_deref().unwrap_or_default();
    entries.iter().find(|d| want.matches(d)).or_else(|| {
        let loose = PlatformSpec {
            variant: None,
            ..want.clone()
        };
        (want == &PlatformSpec::host())
            .then(|| entries.iter().find(|d| loose.matches(d)))
            .flatten()
    })
}

/// `linux/amd64, linux/arm64/v8` — for error messages.
pub fn available(index: &Manifest) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .flatten()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Manifest {
        let d = |arch: &str, variant: Option<&str>, n: u8| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":1,"platform":{{"os":"linux","architecture":"{arch}"{}}}}}"#,
                format!("{n:x}").repeat(64),
                variant
                    .map(|v| format!(r#","variant":"{v}""#))
                    .unwrap_or_default()
            )
        };
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{},{},{},{}]}}"#,
            d("amd64", None, 1),
            d("arm", Some("v6"), 2),
            d("arm", Some("v7"), 3),
            d("arm64", None, 4)
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn selects_by_os_arch_and_variant() {
        let idx = index();
        let pick = |s: &str| {
            select(&idx, &PlatformSpec::parse(s).unwrap()).map(|d| d.digest.hex()[..1].to_string())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("1"));
        assert_eq!(pick("linux/x86_64").as_deref(), Some("1"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("3"));
        assert_eq!(pick("linux/arm64/v8").as_deref(), Some("4"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(
            available(&idx),
            "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64"
        );
        assert!(PlatformSpec::parse("linux").is_err());
        assert!(PlatformSpec::parse("linux/amd64/v1/x").is_err());
    }
}
