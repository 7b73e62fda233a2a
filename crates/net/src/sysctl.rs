//! The few kernel settings networking needs, written only when they differ,
//! so that a host already set up is left untouched.

use std::path::{Path, PathBuf};

use crate::error::{NetError, Result};

fn set(path: &Path, value: &str) -> Result<()> {
    let current = std::fs::read_to_string(path).map_err(|source| NetError::File {
        what: "read kernel setting",
        path: path.to_owned(),
        source,
    })?;
    if current.trim() == value {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|source| NetError::File {
        what: "write kernel setting",
        path: path.to_owned(),
        source,
    })
}

/// Lets the host route packets between its interfaces (IPv4).
pub fn enable_ipv4_forwarding() -> Result<()> {
    set(Path::new("/proc/sys/net/ipv4/ip_forward"), "1")
}

/// Lets the host route IPv6 packets between its interfaces.
pub fn enable_ipv6_forwarding() -> Result<()> {
    set(Path::new("/proc/sys/net/ipv6/conf/all/forwarding"), "1")
}

/// Lets packets from 127.0.0.1 (the host reaching a published port on
/// localhost) leave through `interface` after DNAT.
pub fn enable_route_localnet(interface: &str) -> Result<()> {
    let path: PathBuf = ["/proc/sys/net/ipv4/conf", interface, "route_localnet"]
        .iter()
        .collect();
    set(&path, "1")
}
