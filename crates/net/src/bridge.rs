//! The bridge driver: puts networks and containers' endpoints into the
//! kernel (bridges, veth pairs, addresses, routes, nftables elements,
//! sysctls) and takes them out again.
//!
//! Every operation either completes or undoes what it did before returning
//! an error. Operations are idempotent, so a caller that was killed can
//! repeat them, and [`BridgeDriver::reclaim`] removes what a killed caller
//! left behind.

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};
use crate::ipam;
use crate::netlink::{Link, Rtnl, VethRequest};
use crate::network::{HostFacts, Network};
use crate::nft::{self, Nftables, PortElement};
use crate::ports::PortBinding;
use crate::sysctl;

/// Interface aliases mark what quai created, so that `reclaim` and `reset`
/// find it again with no state of their own.
const BRIDGE_ALIAS: &str = "quai network ";
const ENDPOINT_ALIAS: &str = "quai endpoint ";
/// Host ends of veth pairs are `qv` and 13 hex digits (15 bytes).
const VETH_PREFIX: &str = "qv";
const EEXIST: i32 = 17;

/// What the caller asks for when connecting a container to a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRequest {
    pub container_id: String,
    /// The interface inside the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// Addresses from [`allocate_addresses`].
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    /// `--mac-address`; else derived from the IPv4 address like docker.
    pub mac: Option<[u8; 6]>,
}

/// A container's connection to a network, as installed: the engine stores
/// it and gives it back to `publish`/`detach`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container_id: String,
    pub network_id: String,
    /// The host end of the veth pair.
    pub host_veth: String,
    pub ifname: String,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub gateway4: Option<IpAddr>,
    pub gateway6: Option<IpAddr>,
    pub mac: String,
}

/// What [`BridgeDriver::reclaim`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    pub veths: Vec<String>,
    pub ports: Vec<PortElement>,
}

/// Picks the addresses of a container on `network`: `requested` ones
/// (`--ip`, `--ip6`) if free, else the lowest free ones. `used` holds the
/// addresses of the network's other containers.
pub fn allocate_addresses(
    network: &Network,
    used: &[IpAddr],
    requested_v4: Option<IpAddr>,
    requested_v6: Option<IpAddr>,
) -> Result<(Option<IpAddr>, Option<IpAddr>)> {
    if network.is_default && (requested_v4.is_some() || requested_v6.is_some()) {
        return Err(NetError::InvalidConfig(
            "user specified IP address is supported on user defined networks only".into(),
        ));
    }
    let pick = |subnet: &Option<crate::network::Subnet>, requested: Option<IpAddr>, version: u8| {
        match subnet {
            None => match requested {
                Some(address) => Err(NetError::AddressOutOfRange(address)),
                None => Ok(None),
            },
            Some(s) => ipam::allocate(&s.subnet, s.ip_range.as_ref(), s.gateway, used, requested)?
                .map(Some)
                .ok_or_else(|| NetError::PoolExhausted {
                    version,
                    network: network.name.clone(),
                    id: network.id.clone(),
                }),
        }
    };
    if let Some(address) = requested_v4.filter(|a| a.is_ipv6()) {
        return Err(NetError::InvalidConfig(format!(
            "{address} is not an IPv4 address"
        )));
    }
    if let Some(address) = requested_v6.filter(|a| a.is_ipv4()) {
        return Err(NetError::InvalidConfig(format!(
            "{address} is not an IPv6 address"
        )));
    }
    let v4 = pick(&network.ipv4, requested_v4, 4)?;
    let v6 = pick(&network.ipv6, requested_v6, 6)?;
    Ok((v4, v6))
}

/// Name of the host end of a container's veth pair on a network: stable, so
/// that a repeated or interrupted attach finds what an earlier one made.
pub fn veth_name(container_id: &str, network_id: &str) -> String {
    let hash = ipam::fnv1a64(format!("{container_id}/{network_id}").as_bytes());
    format!("{VETH_PREFIX}{:013x}", hash & 0x000f_ffff_ffff_ffff)
}

fn endpoint_alias(container_id: &str, network_id: &str) -> String {
    format!("{ENDPOINT_ALIAS}{container_id} {network_id}")
}

/// A bridge's label: its network, and the version of the nftables rules
/// that were in place when it was labelled, so that a bridge labelled by
/// an older quai is not taken as complete (the fast path of
/// `ensure_network`) and its table's chains get rewritten once.
fn bridge_label(network: &Network) -> String {
    format!("{BRIDGE_ALIAS}{} rules={}", network.id, nft::RULES_VERSION)
}

/// Container id and network id of an endpoint alias.
fn alias_endpoint(alias: &str) -> Option<(&str, &str)> {
    alias.strip_prefix(ENDPOINT_ALIAS)?.split_once(' ')
}

fn netlink_error(what: String) -> impl FnOnce(std::io::Error) -> NetError {
    move |source| NetError::netlink(what, source)
}

/// quai's bridge driver, bound to one nftables table.
#[derive(Debug, Clone)]
pub struct BridgeDriver {
    nft: Nftables,
}

impl BridgeDriver {
    /// A driver using the nftables table `table` (normally
    /// [`nft::DEFAULT_TABLE`]).
    pub fn new(table: &str) -> Result<BridgeDriver> {
        Ok(BridgeDriver {
            nft: Nftables::new(table)?,
        })
    }

    pub fn nftables(&self) -> &Nftables {
        &self.nft
    }

    /// What a new network depends on: the host's routes (automatic subnets
    /// avoid them) and the MTU of its default route's interface.
    pub fn host_facts(&self) -> Result<HostFacts> {
        let mut rtnl = Rtnl::new().map_err(netlink_error("open a netlink socket".into()))?;
        let routes = rtnl
            .routes()
            .map_err(netlink_error("list the host's routes".into()))?;
        let links = rtnl
            .links()
            .map_err(netlink_error("list the host's links".into()))?;
        let default_mtu = routes
            .iter()
            .filter(|r| r.destination.prefix_len() == 0 && r.destination.addr().is_ipv4())
            .filter_map(|r| r.output_index)
            .find_map(|index| links.iter().find(|l| l.index == index)?.mtu);
        Ok(HostFacts {
            routes: routes.into_iter().map(|r| r.destination).collect(),
            default_mtu,
        })
    }

    /// Makes sure `network` exists in the kernel: bridge with its gateway
    /// addresses, up; nftables table and elements; forwarding. Cheap when
    /// everything is already there; a bridge this call created is removed
    /// again if a later step fails.
    pub fn ensure_network(&self, network: &Network) -> Result<()> {
        let mut rtnl = Rtnl::new().map_err(netlink_error("open a netlink socket".into()))?;
        let existing = rtnl
            .link_by_name(&network.bridge)
            .map_err(netlink_error(format!("look up bridge {}", network.bridge)))?;
        let mut created = existing.is_none();
        // Fast path: the alias is set last (below), so a labelled bridge
        // with its gateway addresses is one a completed call made.
        if let Some(link) = &existing {
            let label = bridge_label(network);
            if link.kind.as_deref() == Some("bridge") && link.alias.as_deref() == Some(&label) {
                let present = rtnl.addresses(link.index).map_err(netlink_error(format!(
                    "list addresses of {}",
                    network.bridge
                )))?;
                let complete = network.subnets().all(|s| {
                    IpNet::new(s.gateway, s.subnet.prefix_len())
                        .is_ok_and(|wanted| present.contains(&wanted))
                });
                if complete {
                    return Ok(());
                }
            }
        }
        let bridge = match existing {
            Some(link) => {
                if link.kind.as_deref() != Some("bridge") {
                    return Err(NetError::InvalidConfig(format!(
                        "interface {} exists and is not a bridge",
                        network.bridge
                    )));
                }
                link
            }
            None => {
                match rtnl.create_bridge(&network.bridge, network.mtu) {
                    // A concurrent call (another container's start) made it
                    // first: configure it all the same, never delete it.
                    Err(e) if e.raw_os_error() == Some(EEXIST) => created = false,
                    other => {
                        other.map_err(netlink_error(format!("create bridge {}", network.bridge)))?
                    }
                }
                rtnl.link_by_name(&network.bridge)
                    .map_err(netlink_error(format!("look up bridge {}", network.bridge)))?
                    .ok_or_else(|| {
                        NetError::netlink(
                            format!("create bridge {}", network.bridge),
                            std::io::Error::other("bridge vanished right after creation"),
                        )
                    })?
            }
        };
        let configured = self.configure_bridge(&mut rtnl, network, &bridge);
        if configured.is_err() && created {
            let _ = rtnl.delete_link(bridge.index);
        }
        configured
    }

    fn configure_bridge(&self, rtnl: &mut Rtnl, network: &Network, bridge: &Link) -> Result<()> {
        let name = &network.bridge;
        let present = rtnl
            .addresses(bridge.index)
            .map_err(netlink_error(format!("list addresses of {name}")))?;
        for subnet in network.subnets() {
            let wanted = IpNet::new(subnet.gateway, subnet.subnet.prefix_len())
                .map_err(|e| NetError::InvalidConfig(e.to_string()))?;
            if !present.contains(&wanted) {
                rtnl.add_address(bridge.index, subnet.gateway, subnet.subnet.prefix_len())
                    .map_err(netlink_error(format!("add {wanted} to {name}")))?;
            }
        }
        rtnl.set_up(bridge.index)
            .map_err(netlink_error(format!("bring {name} up")))?;
        if network.ipv4.is_some() {
            sysctl::enable_route_localnet(name)?;
        }
        self.nft.ensure_table()?;
        self.nft.add_network(network)?;
        if network.needs_forwarding() {
            if network.ipv4.is_some() {
                sysctl::enable_ipv4_forwarding()?;
            }
            if network.ipv6.is_some() {
                sysctl::enable_ipv6_forwarding()?;
            }
        }
        // Last: the label says that everything above is in place.
        rtnl.set_alias(bridge.index, &bridge_label(network))
            .map_err(netlink_error(format!("label bridge {name}")))
    }

    /// Removes `network` from the kernel: its nftables elements, then its
    /// bridge. The caller detaches the containers first (docker refuses to
    /// remove a network with active endpoints). Missing pieces are fine.
    pub fn remove_network(&self, network: &Network) -> Result<()> {
        self.nft.remove_network(network)?;
        let mut rtnl = Rtnl::new().map_err(netlink_error("open a netlink socket".into()))?;
        if let Some(link) = rtnl
            .link_by_name(&network.bridge)
            .map_err(netlink_error(format!("look up bridge {}", network.bridge)))?
        {
            rtnl.delete_link(link.index)
                .map_err(netlink_error(format!("delete bridge {}", network.bridge)))?;
        }
        Ok(())
    }

    /// Connects a container, whose network namespace is `netns`, to
    /// `network`: a veth pair whose container end is `request.ifname` with
    /// the MAC, addresses, MTU and default route, and `lo` up. On error
    /// nothing is left.
    pub fn attach(
        &self,
        network: &Network,
        request: &EndpointRequest,
        netns: BorrowedFd<'_>,
    ) -> Result<Endpoint> {
        crate::network::validate_ifname(&request.ifname)?;
        let mut host = Rtnl::new().map_err(netlink_error("open a netlink socket".into()))?;
        let bridge = host
            .link_by_name(&network.bridge)
            .map_err(netlink_error(format!("look up bridge {}", network.bridge)))?
            .ok_or_else(|| {
                NetError::InvalidConfig(format!(
                    "bridge {} of network {} does not exist",
                    network.bridge, network.name
                ))
            })?;
        let host_veth = veth_name(&request.container_id, &network.id);
        let mac = request
            .mac
            .or_else(|| request.ipv4.or(request.ipv6).map(ipam::mac_from_ip))
            .ok_or_else(|| {
                NetError::InvalidConfig(format!(
                    "container {} has no address on network {}",
                    request.container_id, network.name
                ))
            })?;
        let veth = VethRequest {
            host_name: &host_veth,
            master: bridge.index,
            mtu: network.mtu,
            peer_name: &request.ifname,
            peer_mac: mac,
            peer_netns: netns,
        };
        match host.create_veth(&veth) {
            Err(e) if e.raw_os_error() == Some(EEXIST) => {
                // Left by an attach that was killed: start again.
                if let Some(stale) = host
                    .link_by_name(&host_veth)
                    .map_err(netlink_error(format!("look up {host_veth}")))?
                {
                    host.delete_link(stale.index)
                        .map_err(netlink_error(format!("delete stale {host_veth}")))?;
                }
                host.create_veth(&veth)
            }
            other => other,
        }
        .map_err(netlink_error(format!(
            "create veth pair {host_veth} / {} for container {}",
            request.ifname, request.container_id
        )))?;

        let result = self.configure_endpoint(&mut host, network, request, netns, &host_veth, mac);
        if result.is_err() {
            if let Ok(Some(link)) = host.link_by_name(&host_veth) {
                let _ = host.delete_link(link.index);
            }
        }
        result
    }

    fn configure_endpoint(
        &self,
        host: &mut Rtnl,
        network: &Network,
        request: &EndpointRequest,
        netns: BorrowedFd<'_>,
        host_veth: &str,
        mac: [u8; 6],
    ) -> Result<Endpoint> {
        let link = host
            .link_by_name(host_veth)
            .map_err(netlink_error(format!("look up {host_veth}")))?
            .ok_or_else(|| {
                NetError::netlink(
                    format!("create {host_veth}"),
                    std::io::Error::other("veth vanished right after creation"),
                )
            })?;
        host.set_alias(
            link.index,
            &endpoint_alias(&request.container_id, &network.id),
        )
        .map_err(netlink_error(format!("label {host_veth}")))?;
        // Where br_netfilter is loaded (every docker host), a container
        // reaching its own published port is DNATed back to itself at the
        // bridge: the frame must be allowed out of the port it came in by.
        host.set_hairpin(link.index).map_err(netlink_error(format!(
            "turn hairpin mode on for {host_veth}"
        )))?;
        host.set_up(link.index)
            .map_err(netlink_error(format!("bring {host_veth} up")))?;

        let mut inside = Rtnl::in_netns(netns).map_err(netlink_error(
            "open a netlink socket in the container's namespace".into(),
        ))?;
        let ifname = &request.ifname;
        let eth = inside
            .link_by_name(ifname)
            .map_err(netlink_error(format!("look up {ifname} in the container")))?
            .ok_or_else(|| {
                NetError::netlink(
                    format!("move {ifname} into the container"),
                    std::io::Error::other("interface missing in the container's namespace"),
                )
            })?;
        let mut endpoint = Endpoint {
            container_id: request.container_id.clone(),
            network_id: network.id.clone(),
            host_veth: host_veth.to_owned(),
            ifname: ifname.clone(),
            ipv4: None,
            ipv6: None,
            gateway4: None,
            gateway6: None,
            mac: ipam::format_mac(&mac),
        };
        for (address, subnet) in [(request.ipv4, &network.ipv4), (request.ipv6, &network.ipv6)] {
            let (Some(address), Some(subnet)) = (address, subnet) else {
                continue;
            };
            let prefix = subnet.subnet.prefix_len();
            inside
                .add_address(eth.index, address, prefix)
                .map_err(netlink_error(format!("add {address}/{prefix} to {ifname}")))?;
            let net =
                IpNet::new(address, prefix).map_err(|e| NetError::InvalidConfig(e.to_string()))?;
            if address.is_ipv4() {
                endpoint.ipv4 = Some(net);
                endpoint.gateway4 = Some(subnet.gateway);
            } else {
                endpoint.ipv6 = Some(net);
                endpoint.gateway6 = Some(subnet.gateway);
            }
        }
        inside
            .set_up(eth.index)
            .map_err(netlink_error(format!("bring {ifname} up")))?;
        if let Some(lo) = inside
            .link_by_name("lo")
            .map_err(netlink_error("look up lo in the container".into()))?
        {
            inside
                .set_up(lo.index)
                .map_err(netlink_error("bring lo up in the container".into()))?;
        }
        // An internal network has no way out: no default route through it.
        if !network.internal {
            for gateway in [endpoint.gateway4, endpoint.gateway6].into_iter().flatten() {
                inside
                    .add_default_route(eth.index, gateway)
                    .map_err(netlink_error(format!("add default route via {gateway}")))?;
            }
        }
        Ok(endpoint)
    }

    /// Disconnects a container from a network: deleting the host end of the
    /// veth pair deletes both ends. Missing is fine.
    pub fn detach(&self, network: &Network, container_id: &str) -> Result<()> {
        let name = veth_name(container_id, &network.id);
        let mut rtnl = Rtnl::new().map_err(netlink_error("open a netlink socket".into()))?;
        if let Some(link) = rtnl
            .link_by_name(&name)
            .map_err(netlink_error(format!("look up {name}")))?
        {
            match rtnl.delete_link(link.index) {
                // Gone meanwhile (the container's namespace died with it).
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) => {}
                other => other.map_err(netlink_error(format!("delete {name}")))?,
            }
        }
        Ok(())
    }

    /// Installs port bindings (reserved with [`crate::ports::reserve`]) to
    /// an endpoint, in one transaction. On an `--internal` network nothing
    /// is published, as with docker.
    pub fn publish(
        &self,
        network: &Network,
        endpoint: &Endpoint,
        bindings: &[PortBinding],
    ) -> Result<()> {
        if network.internal || bindings.is_empty() {
            return Ok(());
        }
        let elements = nft::port_elements(
            bindings,
            endpoint.ipv4.map(|n| n.addr()),
            endpoint.ipv6.map(|n| n.addr()),
            &endpoint.container_id,
        )?;
        self.nft.add_ports(&elements)
    }

    /// Removes the ports [`Self::publish`] installed for `endpoint` with
    /// `bindings`, in one nft run (elements already gone are fine). Falls
    /// back to [`Self::unpublish`] (which lists the maps) if that fails,
    /// e.g. when the table itself is gone.
    pub fn unpublish_bindings(&self, endpoint: &Endpoint, bindings: &[PortBinding]) -> Result<()> {
        let elements = nft::port_elements(
            bindings,
            endpoint.ipv4.map(|n| n.addr()),
            endpoint.ipv6.map(|n| n.addr()),
            &endpoint.container_id,
        );
        match elements.map(|e| self.nft.remove_ports(&e)) {
            Ok(Ok(())) => Ok(()),
            _ => self.unpublish(&endpoint.container_id),
        }
    }

    /// Removes every published port of a container.
    pub fn unpublish(&self, container_id: &str) -> Result<()> {
        let owned: Vec<PortElement> = self
            .nft
            .ports()?
            .into_iter()
            .filter(|e| e.owner.as_deref() == Some(container_id))
            .collect();
        self.nft.remove_ports(&owned)
    }

    /// Removes what containers that no longer exist left behind: veth pairs
    /// and published ports. `alive` holds every container the engine knows
    /// (whatever its state), `networks` every network. Leases are the
    /// engine's: it drops those of containers that are not alive. Veths of
    /// other networks (another state root's) are not looked at.
    pub fn reclaim(&self, networks: &[Network], alive: &HashSet<String>) -> Result<Reclaimed> {
        let mut reclaimed = Reclaimed::default();
        let mut rtnl = Rtnl::new().map_err(netlink_error("open a netlink socket".into()))?;
        let links = rtnl.links().map_err(netlink_error("list links".into()))?;
        let ours = Ownership::new(networks, &links);
        // A veth killed between creation and labelling has no alias yet (it
        // is a port of its bridge from its creation on): it is stale unless
        // it is the veth of a live container.
        let expected: HashSet<String> = alive
            .iter()
            .flat_map(|c| networks.iter().map(move |n| veth_name(c, &n.id)))
            .collect();
        for link in links {
            let stale = match link.alias.as_deref().and_then(alias_endpoint) {
                Some((container, network)) => {
                    ours.network_ids.contains(network) && !alive.contains(container)
                }
                None => ours.unlabelled_veth(&link) && !expected.contains(&link.name),
            };
            if stale {
                match rtnl.delete_link(link.index) {
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) => {
                    }
                    other => other.map_err(netlink_error(format!("delete stale {}", link.name)))?,
                }
                reclaimed.veths.push(link.name);
            }
        }
        let stale_ports: Vec<PortElement> = self
            .nft
            .ports()?
            .into_iter()
            .filter(|e| e.owner.as_ref().is_none_or(|o| !alive.contains(o)))
            .collect();
        self.nft.remove_ports(&stale_ports)?;
        reclaimed.ports = stale_ports;
        Ok(reclaimed)
    }

    /// Removes every trace of `networks` (all those of one state root) from
    /// the kernel: their bridges, the veths on them or labelled for them,
    /// and the driver's nftables table. Sysctls stay as they are (other
    /// software may rely on forwarding); so do the bridges and veths of
    /// other networks, which another state root with a table of its own
    /// may be using.
    pub fn reset(&self, networks: &[Network]) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let mut rtnl = Rtnl::new().map_err(netlink_error("open a netlink socket".into()))?;
        let links = rtnl.links().map_err(netlink_error("list links".into()))?;
        let ours = Ownership::new(networks, &links);
        // Veths first: deleting a bridge leaves its ports behind.
        let mut doomed: Vec<&Link> = links
            .iter()
            .filter(|l| {
                ours.bridge_indexes.contains(&l.index)
                    || ours.unlabelled_veth(l)
                    || l.alias
                        .as_deref()
                        .and_then(alias_endpoint)
                        .is_some_and(|(_, network)| ours.network_ids.contains(network))
            })
            .collect();
        doomed.sort_by_key(|l| l.kind.as_deref() == Some("bridge"));
        for link in doomed {
            match rtnl.delete_link(link.index) {
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) => {}
                other => other.map_err(netlink_error(format!("delete {}", link.name)))?,
            }
            removed.push(link.name.clone());
        }
        self.nft.delete_table()?;
        Ok(removed)
    }
}

/// Which links belong to a set of networks: their bridges (by name or by
/// label) and, through them, the veths that are ports of those bridges.
struct Ownership<'a> {
    network_ids: HashSet<&'a str>,
    bridge_indexes: HashSet<u32>,
}

impl<'a> Ownership<'a> {
    fn new(networks: &'a [Network], links: &[Link]) -> Ownership<'a> {
        let network_ids: HashSet<&str> = networks.iter().map(|n| n.id.as_str()).collect();
        let bridge_indexes = links
            .iter()
            .filter(|l| l.kind.as_deref() == Some("bridge"))
            .filter(|l| {
                networks.iter().any(|n| n.bridge == l.name)
                    || l.alias
                        .as_deref()
                        .and_then(|a| a.strip_prefix(BRIDGE_ALIAS)?.split(' ').next())
                        .is_some_and(|id| network_ids.contains(id))
            })
            .map(|l| l.index)
            .collect();
        Ownership {
            network_ids,
            bridge_indexes,
        }
    }

    /// A quai veth without label, port of one of the bridges.
    fn unlabelled_veth(&self, link: &Link) -> bool {
        link.alias.is_none()
            && link.kind.as_deref() == Some("veth")
            && is_quai_veth_name(&link.name)
            && link
                .master
                .is_some_and(|m| self.bridge_indexes.contains(&m))
    }
}

fn is_quai_veth_name(name: &str) -> bool {
    name.len() == VETH_PREFIX.len() + 13
        && name.starts_with(VETH_PREFIX)
        && name[VETH_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{HostFacts, NetworkRequest};

    fn network(default: bool) -> Network {
        Network::create(
            &NetworkRequest {
                id: "a".repeat(64),
                name: if default { "bridge".into() } else { "n".into() },
                is_default: default,
                pools: vec![crate::network::PoolRequest {
                    subnet: "10.5.0.0/29".parse().unwrap(),
                    gateway: None,
                    ip_range: None,
                }],
                ..Default::default()
            },
            &[],
            &HostFacts::default(),
        )
        .unwrap()
    }

    #[test]
    fn veth_names_are_stable_short_and_recognisable() {
        let a = veth_name("c1", "n1");
        assert_eq!(a, veth_name("c1", "n1"));
        assert_ne!(a, veth_name("c1", "n2"));
        assert_eq!(a.len(), 15);
        assert!(is_quai_veth_name(&a));
        assert!(!is_quai_veth_name("qvshort"));
        assert!(!is_quai_veth_name("eth0"));
    }

    #[test]
    fn aliases_name_the_container() {
        let alias = endpoint_alias("abc", "net");
        assert_eq!(alias_endpoint(&alias), Some(("abc", "net")));
        assert_eq!(alias_endpoint("something else"), None);
    }

    #[test]
    fn addresses_on_user_and_default_networks() {
        let user = network(false);
        let (v4, v6) = allocate_addresses(&user, &[], None, None).unwrap();
        assert_eq!(v4.unwrap().to_string(), "10.5.0.2");
        assert!(v6.is_none());
        let requested: IpAddr = "10.5.0.5".parse().unwrap();
        let (v4, _) = allocate_addresses(&user, &[], Some(requested), None).unwrap();
        assert_eq!(v4, Some(requested));
        let default = network(true);
        assert_eq!(
            allocate_addresses(&default, &[], Some(requested), None)
                .unwrap_err()
                .to_string(),
            "user specified IP address is supported on user defined networks only"
        );
        let full: Vec<IpAddr> = (2..=6)
            .map(|i| format!("10.5.0.{i}").parse().unwrap())
            .collect();
        let err = allocate_addresses(&user, &full, None, None).unwrap_err();
        assert!(
            err.to_string().starts_with("no available IPv4 addresses"),
            "{err}"
        );
        let v6_only: IpAddr = "fd00::5".parse().unwrap();
        assert!(allocate_addresses(&user, &[], None, Some(v6_only)).is_err());
    }
}
