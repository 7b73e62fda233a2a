//! The one error type of the crate. Messages that users see through the CLI
//! copy docker's wording where docker has one, so scripts and people that
//! match on them keep working.

use std::io;
use std::path::PathBuf;

/// Result of every fallible operation of `quai-net`.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A `-p/--publish` spec that does not parse (docker's messages).
    #[error("{0}")]
    InvalidPortSpec(String),

    /// A host port that another container of quai already holds.
    #[error("Bind for {addr} failed: port is already allocated")]
    PortAllocated { addr: String },

    /// A host port that some other process on the host holds.
    #[error("failed to bind host port for {binding}: {source}")]
    PortInUse {
        binding: String,
        #[source]
        source: io::Error,
    },

    /// No free host port in the requested (or ephemeral) range.
    #[error("no free host port in range {start}-{end} for {proto}")]
    NoFreePort {
        start: u16,
        end: u16,
        proto: &'static str,
    },

    /// Invalid network definition (subnet, gateway, ip-range, option...).
    #[error("{0}")]
    InvalidConfig(String),

    /// A subnet that overlaps another network or a route of the host.
    #[error("Pool overlaps with other one on this address space")]
    PoolOverlap,

    /// Every default address pool is used.
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoFreePool,

    /// A requested `--ip` that another container holds.
    #[error("Address already in use")]
    AddressInUse,

    /// A requested `--ip` outside the network's subnet or ip-range.
    #[error("no configured subnet or ip-range contain the IP address {0}")]
    AddressOutOfRange(std::net::IpAddr),

    /// The network has no free address left.
    #[error(
        "no available IPv{version} addresses on this network's address pools: {network} ({id})"
    )]
    PoolExhausted {
        version: u8,
        network: String,
        id: String,
    },

    /// A netlink request failed.
    #[error("netlink: {what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: io::Error,
    },

    /// `nft` failed or could not be run.
    #[error("nftables: {what}: {detail}")]
    Nftables { what: String, detail: String },

    /// A file (sysctl, config, records...) could not be read or written.
    #[error("{what} {path}: {source}", path = path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file that exists but does not hold what it should.
    #[error("{what} {path}: {detail}", path = path.display())]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },

    /// Any other I/O failure, with what was being done.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl NetError {
    pub(crate) fn netlink(what: impl Into<String>, source: io::Error) -> NetError {
        NetError::Netlink {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> NetError {
        NetError::Io {
            what: what.into(),
            source,
        }
    }
}
