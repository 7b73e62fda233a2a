//! Basic authentication against an htpasswd file of bcrypt entries (what
//! `htpasswd -B` writes and what Docker's registry accepts).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("cannot read htpasswd file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("htpasswd file {path}, line {line}: expected USER:HASH")]
    Malformed { path: String, line: usize },
    #[error(
        "htpasswd file {path}, line {line}: user {user:?} has a non-bcrypt hash; \
         only bcrypt is accepted (create entries with `htpasswd -B`)"
    )]
    NotBcrypt {
        path: String,
        line: usize,
        user: String,
    },
    #[error("htpasswd file {path} has no users")]
    Empty { path: String },
}

pub struct Htpasswd {
    users: HashMap<String, String>,
    /// (user, sha256(password)) pairs already checked: bcrypt costs tens of
    /// milliseconds on purpose, and a push makes dozens of requests.
    verified: Mutex<HashSet<(String, [u8; 32])>>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
            path: shown.clone(),
            source,
        })?;
        Htpasswd::parse(&text, &shown)
    }

    pub fn parse(text: &str, path: &str) -> Result<Htpasswd, HtpasswdError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(HtpasswdError::Malformed {
                    path: path.to_string(),
                    line: i + 1,
                });
            };
            if user.is_empty() {
                return Err(HtpasswdError::Malformed {
                    path: path.to_string(),
                    line: i + 1,
                });
            }
            if !["$2y$", "$2a$", "$2b$", "$2x$"]
                .iter()
                .any(|p| hash.starts_with(p))
            {
                return Err(HtpasswdError::NotBcrypt {
                    path: path.to_string(),
                    line: i + 1,
                    user: user.to_string(),
                });
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err(HtpasswdError::Empty {
                path: path.to_string(),
            });
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Checks an `Authorization` header value; true when it names a user of
    /// the file with the right password.
    pub fn check_header(&self, header: Option<&str>) -> bool {
        let Some((user, password)) = header.and_then(parse_basic) else {
            return false;
        };
        self.check(&user, &password)
    }

    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let key = (user.to_string(), Sha256::digest(password.as_bytes()).into());
        if self
            .verified
            .lock()
            .is_ok_and(|verified| verified.contains(&key))
        {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            if let Ok(mut verified) = self.verified.lock() {
                verified.insert(key);
            }
        }
        ok
    }
}

/// `Basic base64(user:password)` → (user, password).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bcrypt_users_and_refuses_other_hashes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let file = Htpasswd::parse(&format!("alice:{hash}\n"), "f").unwrap();
        assert!(file.check("alice", "s3cret"));
        assert!(file.check("alice", "s3cret"), "second check hits the cache");
        assert!(!file.check("alice", "wrong"));
        assert!(!file.check("bob", "s3cret"));
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
        );
        assert!(file.check_header(Some(&header)));
        assert!(!file.check_header(None));

        let err = Htpasswd::parse("bob:$apr1$abc$def\n", "f").err().unwrap();
        assert!(err.to_string().contains("htpasswd -B"), "{err}");
        assert!(matches!(
            Htpasswd::parse("# only comments\n", "f"),
            Err(HtpasswdError::Empty { .. })
        ));
        assert!(matches!(
            Htpasswd::parse("nocolon\n", "f"),
            Err(HtpasswdError::Malformed { line: 1, .. })
        ));
    }
}
