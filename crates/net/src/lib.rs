//! quai's container networking, as a synchronous library (no async
//! runtime needed by the caller):
//!
//! - [`network`]: network definitions, validated and completed;
//! - [`ipam`]: address management as pure functions over what is taken;
//! - [`bridge`]: the kernel side — bridges, veth pairs, addresses, routes,
//!   nftables (masquerade, isolation, published ports), reclaim and reset;
//! - [`ports`]: `-p`/`-P` parsing and host port reservation;
//! - [`resolvconf`] and [`hosts`]: the container's `/etc/resolv.conf` and
//!   `/etc/hosts`;
//! - [`dns`]: the embedded DNS server of user-defined networks;
//! - [`relay`]: published TCP ports on `[::1]`, which the kernel cannot DNAT.
//!
//! See docs/architecture.md (section `net`) for how the engine uses it.

pub mod bridge;
pub mod dns;
pub mod error;
pub mod hosts;
pub mod ipam;
mod netlink;
pub mod network;
pub mod nft;
pub mod ports;
pub mod relay;
pub mod resolvconf;
mod sysctl;

pub use bridge::{allocate_addresses, BridgeDriver, Endpoint, EndpointRequest, Reclaimed};
pub use error::{NetError, Result};
pub use network::{HostFacts, Network, NetworkRequest, PoolRequest, Subnet};
pub use ports::{PortBinding, PortReservation, PortSpec, Protocol};
