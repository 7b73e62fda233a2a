//! Picking a manifest from an index for a platform (`--platform
//! os/arch[/variant]`, the image crate's [`Platform`]).

pub use quai_image::spec::Platform;

use crate::manifest::{Descriptor, Manifest};

/// The entry of `index` for `want`: one naming the same variant first,
/// then any entry of the os/arch that [`Platform::matches`] accepts (an
/// entry without a variant, or a request without one).
pub fn select<'a>(index: &'a Manifest, want: &Platform) -> Option<&'a Descriptor> {
    let entries = index.manifests.as_deref().unwrap_or_default();
    let platform = |d: &'a Descriptor| d.platform.as_ref().filter(|p| p.matches(want));
    entries
        .iter()
        .find(|d| platform(d).is_some_and(|p| p.variant == want.variant))
        .or_else(|| entries.iter().find(|d| platform(d).is_some()))
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
            select(&idx, &Platform::parse(s).unwrap()).map(|d| d.digest.hex()[..1].to_string())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("1"));
        assert_eq!(pick("linux/x86_64").as_deref(), Some("1"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("3"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("2"));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("linux/arm64/v8").as_deref(), Some("4"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(
            available(&idx),
            "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64"
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/amd64/v1/x").is_err());
        assert!(Platform::parse("linux/amd 64").is_err());
    }
}
