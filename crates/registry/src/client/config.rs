//! quai's registry settings (`/etc/quai/config.toml`, or the file named by
//! `QUAI_CONFIG`) and the per-registry certificate directory
//! (`/etc/quai/certs.d/HOST[:PORT]/`, Docker's layout; `QUAI_CERTS_DIR`).
//!
//! ```toml
//! [registry]
//! insecure = ["myregistry:5000"]          # plain HTTP allowed (always for loopback)
//! [registry.mirrors]
//! "docker.io" = ["https://mirror.example.com"]
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_CONFIG: &str = "/etc/quai/config.toml";
pub const DEFAULT_CERTS_DIR: &str = "/etc/quai/certs.d";

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    #[serde(default)]
    pub insecure: Vec<String>,
    #[serde(default)]
    pub mirrors: HashMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    registry: RegistrySettings,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration file {path}: {why}")]
pub struct ConfigError {
    pub path: String,
    pub why: String,
}

#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub registry: RegistrySettings,
    pub certs_dir: PathBuf,
}

impl ClientSettings {
    /// Reads the settings from `QUAI_CONFIG` or the default path; a missing
    /// default file means defaults, a missing explicit file is an error.
    pub fn load() -> Result<ClientSettings, ConfigError> {
        let explicit = std::env::var_os("QUAI_CONFIG").map(PathBuf::from);
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let registry = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                RegistrySettings::default()
            }
            Err(e) => {
                return Err(ConfigError {
                    path: path.display().to_string(),
                    why: e.to_string(),
                })
            }
        };
        let certs_dir = std::env::var_os("QUAI_CERTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CERTS_DIR));
        Ok(ClientSettings {
            registry,
            certs_dir,
        })
    }

    /// Plain HTTP may be used: loopback hosts, and hosts the config lists.
    pub fn allows_http(&self, host: &str) -> bool {
        is_loopback(host) || self.registry.insecure.iter().any(|h| h == host)
    }

    pub fn mirrors(&self, registry: &str) -> &[String] {
        self.registry
            .mirrors
            .get(registry)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// `certs.d/HOST[:PORT]/`, when it exists.
    pub fn cert_dir(&self, host: &str) -> Option<PathBuf> {
        let dir = self.certs_dir.join(host.replace(['/', '\\'], "_"));
        dir.is_dir().then_some(dir)
    }
}

fn parse(text: &str, path: &Path) -> Result<RegistrySettings, ConfigError> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    Ok(file.registry)
}

/// `localhost`, `127.x.y.z`, `::1`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => host,
        }
    };
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "[::2]:1",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn parses_insecure_and_mirrors_and_rejects_unknown_keys() {
        let s = parse(
            "[registry]\ninsecure = [\"reg:5000\"]\n[registry.mirrors]\n\"docker.io\" = [\"https://m\"]\n",
            Path::new("c"),
        )
        .unwrap();
        assert_eq!(s.insecure, ["reg:5000"]);
        assert_eq!(s.mirrors["docker.io"], ["https://m"]);
        let err = parse("[registry]\ninsecur = []\n", Path::new("c")).unwrap_err();
        assert!(err.to_string().contains("insecur"), "{err}");
    }
}
