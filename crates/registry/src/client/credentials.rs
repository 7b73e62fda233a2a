//! Registry credentials in Docker's `config.json` (`$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`): `auths` entries with base64 `user:password`,
//! and `credsStore` / `credHelpers` that delegate to `docker-credential-NAME`
//! programs speaking JSON over stdin/stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::reference::DOCKER_HUB;
use crate::fsutil::atomic_write;

/// The key Docker files Docker Hub's credentials under.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token server.
    IdentityToken {
        username: String,
        token: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, not even in debug logs.
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken { username, .. } => {
                write!(f, "IdentityToken({username}, ***)")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("reading {path}: {why}")]
    Read { path: String, why: String },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("credential helper docker-credential-{helper} {action} failed: {why}")]
    Helper {
        helper: String,
        action: &'static str,
        why: String,
    },
    #[error("cannot locate Docker's config directory: set DOCKER_CONFIG or HOME")]
    NoHome,
}

/// Docker's config directory.
pub fn docker_config_dir() -> Result<PathBuf, CredentialsError> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Ok(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".docker"))
        .ok_or(CredentialsError::NoHome)
}

/// The key for `registry` in `auths` and for helpers.
pub fn auth_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// `https://host:port/path` or `host:port` → `host:port`.
fn normalize_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn key_matches(key: &str, registry: &str) -> bool {
    if registry == DOCKER_HUB {
        return matches!(
            normalize_key(key),
            "index.docker.io" | "docker.io" | "registry-1.docker.io"
        );
    }
    normalize_key(key) == registry
}

pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl DockerConfig {
    pub fn load_default() -> Result<DockerConfig, CredentialsError> {
        DockerConfig::load(&docker_config_dir()?.join("config.json"))
    }

    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<DockerConfig, CredentialsError> {
        let doc = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(CredentialsError::Read {
                        path: path.display().to_string(),
                        why: "not a JSON object".into(),
                    })
                }
                Err(e) => {
                    return Err(CredentialsError::Read {
                        path: path.display().to_string(),
                        why: e.to_string(),
                    })
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => {
                return Err(CredentialsError::Read {
                    path: path.display().to_string(),
                    why: e.to_string(),
                })
            }
        };
        Ok(DockerConfig {
            path: path.to_path_buf(),
            doc,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The helper for `registry`: `credHelpers[registry]`, else `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<String> {
        let key = auth_key(registry);
        self.doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| key_matches(k, registry) || *k == &key)
            })
            .and_then(|(_, v)| v.as_str())
            .or_else(|| self.doc.get("credsStore").and_then(Value::as_str))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    }

    /// Credentials for `registry`, from its helper or from `auths`.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        if let Some(helper) = self.helper_for(registry) {
            return helper_get(&helper, &auth_key(registry));
        }
        let Some(auths) = self.doc.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let Some((key, entry)) = auths.iter().find(|(k, _)| key_matches(k, registry)) else {
            return Ok(None);
        };
        let bad = |why: &str| CredentialsError::Read {
            path: self.path.display().to_string(),
            why: format!("auths[{key:?}]: {why}"),
        };
        let auth = entry.get("auth").and_then(Value::as_str).unwrap_or("");
        let (username, password) = if auth.is_empty() {
            (String::new(), String::new())
        } else {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("auth is not base64"))?;
            let text = String::from_utf8(decoded).map_err(|_| bad("auth is not UTF-8"))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| bad("auth is not user:password"))?;
            (u.to_string(), p.to_string())
        };
        if let Some(token) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(Credentials::IdentityToken {
                username,
                token: token.to_string(),
            }));
        }
        if username.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credentials::Basic { username, password }))
    }

    /// Stores credentials through the helper, or base64 in `auths` (file mode 0600).
    pub fn store(
        &mut self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<(), CredentialsError> {
        let key = auth_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            let input =
                serde_json::json!({ "ServerURL": key, "Username": username, "Secret": password });
            run_helper(&helper, "store", input.to_string().as_bytes())?;
            // Docker keeps an empty entry so that `docker info` lists the login.
            self.auths_mut().insert(key, Value::Object(Map::new()));
        } else {
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            self.auths_mut()
                .insert(key, serde_json::json!({ "auth": auth }));
        }
        self.save()
    }

    /// Removes the credentials; false when there were none.
    pub fn erase(&mut self, registry: &str) -> Result<bool, CredentialsError> {
        let key = auth_key(registry);
        let mut found = false;
        if let Some(helper) = self.helper_for(registry) {
            found = run_helper(&helper, "erase", key.as_bytes()).is_ok();
        }
        let matching: Vec<String> = self
            .doc
            .get("auths")
            .and_then(Value::as_object)
            .map(|a| {
                a.keys()
                    .filter(|k| key_matches(k, registry))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for k in matching {
            self.auths_mut().remove(&k);
            found = true;
        }
        if found {
            self.save()?;
        }
        Ok(found)
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let entry = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        entry.as_object_mut().expect("auths is an object")
    }

    fn save(&self) -> Result<(), CredentialsError> {
        let mut bytes = serde_json::to_vec_pretty(&Value::Object(self.doc.clone()))
            .expect("JSON values serialize");
        bytes.push(b'\n');
        atomic_write(&self.path, &bytes, 0o600).map_err(|source| CredentialsError::Write {
            path: self.path.display().to_string(),
            source,
        })
    }
}

fn run_helper(
    helper: &str,
    action: &'static str,
    input: &[u8],
) -> Result<Vec<u8>, CredentialsError> {
    let program = format!("docker-credential-{helper}");
    let err = |why: String| CredentialsError::Helper {
        helper: helper.to_string(),
        action,
        why,
    };
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| err(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .trim()
        .to_string();
        return Err(err(text));
    }
    Ok(out.stdout)
}

fn helper_get(helper: &str, key: &str) -> Result<Option<Credentials>, CredentialsError> {
    let out = match run_helper(helper, "get", key.as_bytes()) {
        Ok(out) => out,
        // Helpers report a missing entry as a failure with this text.
        Err(CredentialsError::Helper { why, .. }) if why.contains("credentials not found") => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let v: Value = serde_json::from_slice(&out).map_err(|e| CredentialsError::Helper {
        helper: helper.to_string(),
        action: "get",
        why: format!("invalid JSON answer: {e}"),
    })?;
    let username = v
        .get("Username")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let secret = v
        .get("Secret")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok(match username.as_str() {
        "" => None,
        "<token>" => Some(Credentials::IdentityToken {
            username,
            token: secret,
        }),
        _ => Some(Credentials::Basic {
            username,
            password: secret,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_get_erase_in_auths_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"psFormat":"table {{.ID}}"}"#).unwrap();
        let mut cfg = DockerConfig::load(&path).unwrap();
        cfg.store("127.0.0.1:5000", "alice", "pw:with:colons")
            .unwrap();
        cfg.store("docker.io", "bob", "x").unwrap();
        let cfg = DockerConfig::load(&path).unwrap();
        assert_eq!(
            cfg.get("127.0.0.1:5000").unwrap(),
            Some(Credentials::Basic {
                username: "alice".into(),
                password: "pw:with:colons".into()
            })
        );
        assert!(
            matches!(cfg.get("docker.io").unwrap(), Some(Credentials::Basic { username, .. }) if username == "bob")
        );
        assert_eq!(cfg.get("other:1").unwrap(), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("psFormat"), "other settings kept");
        assert!(text.contains(DOCKER_HUB_AUTH_KEY));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut cfg = DockerConfig::load(&path).unwrap();
        assert!(cfg.erase("127.0.0.1:5000").unwrap());
        assert!(!cfg.erase("127.0.0.1:5000").unwrap());
        assert_eq!(
            DockerConfig::load(&path)
                .unwrap()
                .get("127.0.0.1:5000")
                .unwrap(),
            None
        );
    }

    #[test]
    fn keys_match_with_scheme_and_path() {
        assert!(key_matches("https://index.docker.io/v1/", "docker.io"));
        assert!(key_matches("http://reg:5000", "reg:5000"));
        assert!(!key_matches("reg:5001", "reg:5000"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths":{"reg:1":{"auth":"!!"}}}"#).unwrap();
        let err = DockerConfig::load(&path).unwrap().get("reg:1").unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    }
}
