//! Fixtures of the bridge tests: the generic namespaces come from
//! quai-testutil; here are networks and containers made with quai-net.

#![allow(dead_code)]

use std::os::fd::AsFd;

use quai_net::network::{HostFacts, Network, NetworkRequest, PoolRequest};
use quai_net::{BridgeDriver, Endpoint, EndpointRequest};
pub use quai_testutil::netns::*;
use quai_testutil::unique_name;

/// A driver with its own nftables table (inside the test's host namespace
/// anyway, but unique so that a leak would be attributable).
pub fn driver() -> BridgeDriver {
    BridgeDriver::new(&unique_name("qt")).expect("driver")
}

/// A user network on `subnet` (or an automatic one), created in the kernel.
pub fn network(
    driver: &BridgeDriver,
    name: &str,
    subnet: Option<&str>,
    internal: bool,
    existing: &[Network],
) -> Network {
    let request = NetworkRequest {
        id: random_id(),
        name: name.into(),
        pools: subnet
            .map(|s| {
                vec![PoolRequest {
                    subnet: s.parse().unwrap(),
                    gateway: None,
                    ip_range: None,
                }]
            })
            .unwrap_or_default(),
        internal,
        ..Default::default()
    };
    let facts: HostFacts = driver.host_facts().expect("host facts");
    let network = Network::create(&request, existing, &facts).expect("create network");
    driver.ensure_network(&network).expect("ensure network");
    network
}

/// A container: its own namespace, attached to `network` with an address
/// picked after `used`.
pub struct Container {
    pub ns: Netns,
    pub id: String,
    pub endpoint: Endpoint,
}

impl Container {
    pub fn attach(
        driver: &BridgeDriver,
        network: &Network,
        used: &[std::net::IpAddr],
    ) -> Container {
        let ns = Netns::new("qc");
        let id = random_id();
        let (ipv4, ipv6) =
            quai_net::allocate_addresses(network, used, None, None).expect("allocate");
        let request = EndpointRequest {
            container_id: id.clone(),
            ifname: "eth0".into(),
            ipv4,
            ipv6,
            mac: None,
        };
        let endpoint = driver
            .attach(network, &request, ns.file().as_fd())
            .expect("attach");
        Container { ns, id, endpoint }
    }

    pub fn ip(&self) -> String {
        self.endpoint
            .ipv4
            .expect("container has IPv4")
            .addr()
            .to_string()
    }

    pub fn ip_addr(&self) -> std::net::IpAddr {
        self.endpoint.ipv4.expect("container has IPv4").addr()
    }
}
