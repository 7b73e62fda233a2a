//! The embedded DNS server of user-defined networks.
//!
//! One server process per network (`quai internal dns-server --config
//! FILE`, started by the engine on first need, like podman's aardvark-dns)
//! listens on the network's gateway addresses, port 53. It answers A, AAAA
//! and PTR queries for the names of the network's containers (name,
//! aliases, short id, and each of those followed by `.NETWORK`) from a
//! configuration file the engine rewrites atomically, and forwards every
//! other query to upstream resolvers (the host's, or a container's
//! `--dns`). The server notices a new file on the next query; it exits when
//! the file is removed.
//!
//! Containers on other networks cannot ask it: it listens only on this
//! network's gateway, which they cannot reach (networks are isolated).

mod process;
mod server;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

pub use process::{pid_file, server_pid, spawn_server, stop_server};

/// What the server prints on stdout once it listens.
pub const READY_LINE: &str = process::READY;
pub use server::serve;

/// DNS's port, where containers' resolvers ask.
pub const DNS_PORT: u16 = 53;

/// Everything the server of one network knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// The network's name: `NAME.NETWORK` resolves too.
    pub network: String,
    /// Addresses to listen on (the network's gateways).
    pub listen: Vec<IpAddr>,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Where other names are asked, in order.
    pub upstreams: Vec<SocketAddr>,
    pub records: Vec<DnsRecord>,
}

fn default_port() -> u16 {
    DNS_PORT
}

/// One container of the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Name, aliases and short id; the first is the one PTR answers give.
    pub names: Vec<String>,
    pub ipv4: Option<std::net::Ipv4Addr>,
    pub ipv6: Option<std::net::Ipv6Addr>,
    /// The container's `--dns` servers: its other queries go there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<SocketAddr>,
    /// The container's full id: a container on several networks asks the
    /// server of one of them, which also answers with the records of the
    /// others it is a member of (their configurations sit in the same
    /// directory).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
}

impl DnsConfig {
    pub fn load(path: &Path) -> Result<DnsConfig> {
        let text = std::fs::read(path).map_err(|source| NetError::File {
            what: "read DNS configuration",
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| NetError::Corrupt {
            what: "DNS configuration",
            path: path.to_owned(),
            detail: e.to_string(),
        })
    }

    /// Writes the file so that a reader (the server, or a crash) only ever
    /// sees the old or the new content: temporary file, fsync, rename.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| NetError::Corrupt {
            what: "DNS configuration",
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        write_atomically(path, &json, "write DNS configuration")
    }
}

/// Writes `content` to `path` so that readers (and a crash) see the old or
/// the new content, never a mix: temporary file, fsync, rename, fsync of
/// the directory.
pub(crate) fn write_atomically(path: &Path, content: &[u8], what: &'static str) -> Result<()> {
    let file_error = |source| NetError::File {
        what,
        path: path.to_owned(),
        source,
    };
    let directory = path.parent().unwrap_or(Path::new("."));
    let mut temporary = tempfile::NamedTempFile::new_in(directory).map_err(file_error)?;
    temporary.write_all(content).map_err(file_error)?;
    temporary.as_file().sync_all().map_err(file_error)?;
    temporary.persist(path).map_err(|e| file_error(e.error))?;
    if let Ok(dir) = std::fs::File::open(directory) {
        let _ = dir.sync_all();
    }
    Ok(())
}
