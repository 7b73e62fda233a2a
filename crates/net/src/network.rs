//! Network definitions: what `network create` asks for, validated and
//! completed (subnet, gateway, bridge name, MTU) into a [`Network`] the
//! engine stores and hands back to every other call.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};
use crate::ipam;

/// Name and device of the network every container joins by default.
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_BRIDGE: &str = "quai0";
/// User-defined networks get `quai-` and the start of their id as device.
pub const BRIDGE_PREFIX: &str = "quai-";
/// Linux limits interface names to 15 bytes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;
/// MTU used when the host has no default route to copy it from.
pub const FALLBACK_MTU: u32 = 1500;

const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
const DOCKER_OPTION_PREFIX: &str = "com.docker.network.";

/// One address family of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet: IpNet,
    pub gateway: IpAddr,
    /// Containers get addresses from here (docker's `--ip-range`); the
    /// whole subnet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<IpNet>,
}

/// A bridge network, complete: every later call takes it as it was
/// returned by [`Network::create`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex digits, like docker's network ids.
    pub id: String,
    pub name: String,
    /// The Linux bridge device.
    pub bridge: String,
    pub ipv4: Option<Subnet>,
    pub ipv6: Option<Subnet>,
    /// No traffic to or from outside the network (`--internal`).
    pub internal: bool,
    /// Masquerade outbound traffic (docker's
    /// `com.docker.network.bridge.enable_ip_masquerade`, default true).
    pub masquerade: bool,
    pub mtu: u32,
    /// The default `bridge` network: no DNS server, no `--ip`, no aliases.
    pub is_default: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// An address pool as `network create --subnet --gateway --ip-range` gives
/// it, after [`pools_from_flags`] matched the flags together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolRequest {
    pub subnet: IpNet,
    pub gateway: Option<IpAddr>,
    pub ip_range: Option<IpNet>,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NetworkRequest {
    /// 64 hex digits, chosen by the caller.
    pub id: String,
    pub name: String,
    /// `--driver`; only `bridge` exists in quai.
    pub driver: Option<String>,
    pub pools: Vec<PoolRequest>,
    /// `--ipv6`: give the network an IPv6 subnet (a ULA /64 unless a pool
    /// of the request is IPv6).
    pub ipv6: bool,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Create the default `bridge` network (device `quai0`).
    pub is_default: bool,
}

/// What the host looks like, for the choices a network depends on.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Destinations of the host's routes: automatic subnets avoid them.
    pub routes: Vec<IpNet>,
    /// MTU of the interface of the host's default route.
    pub default_mtu: Option<u32>,
}

impl Network {
    /// Validates `request` against the `existing` networks and the host,
    /// and completes it: subnet (picked from docker's default pools when
    /// not given), gateway, bridge device, MTU.
    pub fn create(
        request: &NetworkRequest,
        existing: &[Network],
        host: &HostFacts,
    ) -> Result<Network> {
        match request.driver.as_deref() {
            None | Some("bridge") => {}
            Some(other) => {
                return Err(NetError::InvalidConfig(format!(
                    "plugin \"{other}\" not found: quai supports only the bridge network driver"
                )))
            }
        }
        if request.name.is_empty() {
            return Err(NetError::InvalidConfig(
                "network name must not be empty".into(),
            ));
        }
        if let Some(taken) = existing.iter().find(|n| n.name == request.name) {
            return Err(NetError::InvalidConfig(format!(
                "network with name {} already exists",
                taken.name
            )));
        }
        if !request.id.chars().all(|c| c.is_ascii_hexdigit()) || request.id.len() < 12 {
            return Err(NetError::InvalidConfig(format!(
                "network id {:?} must be at least 12 hex digits",
                request.id
            )));
        }
        let (mtu, bridge, masquerade) = parse_options(request, host)?;
        if let Some(other) = existing.iter().find(|n| n.bridge == bridge) {
            return Err(NetError::InvalidConfig(format!(
                "bridge device {bridge} is already used by network {}",
                other.name
            )));
        }

        let taken_by_networks: Vec<IpNet> = existing
            .iter()
            .flat_map(|n| n.ipv4.iter().chain(n.ipv6.iter()).map(|s| s.subnet))
            .collect();
        let mut v4_pools = request.pools.iter().filter(|p| p.subnet.addr().is_ipv4());
        let mut v6_pools = request.pools.iter().filter(|p| p.subnet.addr().is_ipv6());
        let (v4, v6) = (v4_pools.next(), v6_pools.next());
        if v4_pools.next().is_some() || v6_pools.next().is_some() {
            return Err(NetError::InvalidConfig(
                "quai supports one subnet per address family on a network".into(),
            ));
        }
        if v6.is_some() && !request.ipv6 {
            return Err(NetError::InvalidConfig(
                "IPv6 subnet configured on a network without --ipv6".into(),
            ));
        }

        let ipv4 = match v4 {
            Some(pool) => Some(subnet_from_pool(pool, &taken_by_networks)?),
            None => {
                let mut taken = taken_by_networks.clone();
                taken.extend(host.routes.iter().filter(|r| r.addr().is_ipv4()));
                let subnet = IpNet::V4(ipam::pick_ipv4_subnet(&taken)?);
                Some(Subnet {
                    gateway: ipam::default_gateway(&subnet),
                    subnet,
                    ip_range: None,
                })
            }
        };
        let ipv6 = match (request.ipv6, v6) {
            (false, _) => None,
            (true, Some(pool)) => Some(subnet_from_pool(pool, &taken_by_networks)?),
            (true, None) => {
                let mut taken = taken_by_networks.clone();
                taken.extend(host.routes.iter().filter(|r| r.addr().is_ipv6()));
                let subnet = IpNet::V6(ipam::pick_ipv6_subnet(&request.id, &taken)?);
                Some(Subnet {
                    gateway: ipam::default_gateway(&subnet),
                    subnet,
                    ip_range: None,
                })
            }
        };

        Ok(Network {
            id: request.id.clone(),
            name: request.name.clone(),
            bridge,
            ipv4,
            ipv6,
            internal: request.internal,
            masquerade,
            mtu,
            is_default: request.is_default,
            labels: request.labels.clone(),
            options: request.options.clone(),
        })
    }

    /// Subnets of both families.
    pub fn subnets(&self) -> impl Iterator<Item = &Subnet> {
        self.ipv4.iter().chain(self.ipv6.iter())
    }

    /// Whether the network needs the host to forward packets for it.
    pub fn needs_forwarding(&self) -> bool {
        !self.internal
    }

    /// Whether containers of this network resolve each other by name
    /// through quai's DNS server (docker: user-defined networks only).
    pub fn has_dns(&self) -> bool {
        !self.is_default
    }
}

fn subnet_from_pool(pool: &PoolRequest, taken: &[IpNet]) -> Result<Subnet> {
    let subnet = pool.subnet.trunc();
    if subnet != pool.subnet {
        // Docker accepts 10.1.2.3/16 and keeps the network address only.
        tracing::debug!(given = %pool.subnet, using = %subnet, "subnet had host bits set");
    }
    if taken.iter().any(|t| ipam::overlaps(t, &subnet)) {
        return Err(NetError::PoolOverlap);
    }
    let gateway = match pool.gateway {
        Some(gateway) => {
            if !subnet.contains(&gateway) {
                return Err(NetError::InvalidConfig(format!(
                    "failed to allocate gateway ({gateway}): Address out of range"
                )));
            }
            if gateway == subnet.network()
                || (subnet.addr().is_ipv4() && gateway == subnet.broadcast())
            {
                return Err(NetError::InvalidConfig(format!(
                    "failed to allocate gateway ({gateway}): Address out of range"
                )));
            }
            gateway
        }
        None => ipam::default_gateway(&subnet),
    };
    if let Some(range) = pool.ip_range {
        if !subnet.contains(&range.network()) || range.prefix_len() < subnet.prefix_len() {
            return Err(NetError::InvalidConfig(format!(
                "ip-range {range} is not within subnet {subnet}"
            )));
        }
    }
    Ok(Subnet {
        subnet,
        gateway,
        ip_range: pool.ip_range.map(|r| r.trunc()),
    })
}

fn parse_options(request: &NetworkRequest, host: &HostFacts) -> Result<(u32, String, bool)> {
    let mut mtu = host.default_mtu.unwrap_or(FALLBACK_MTU);
    let mut bridge = if request.is_default {
        DEFAULT_BRIDGE.to_owned()
    } else {
        format!(
            "{BRIDGE_PREFIX}{}",
            &request.id[..IFNAME_MAX - BRIDGE_PREFIX.len()]
        )
    };
    let mut masquerade = true;
    for (key, value) in &request.options {
        match key.as_str() {
            OPT_MTU => {
                mtu = value
                    .parse::<u32>()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| {
                        NetError::InvalidConfig(format!(
                            "invalid MTU {value:?}: must be a number between 68 and 65535"
                        ))
                    })?;
            }
            OPT_BRIDGE_NAME => {
                validate_ifname(value)?;
                bridge = value.clone();
            }
            OPT_MASQUERADE => {
                masquerade = value.parse::<bool>().map_err(|_| {
                    NetError::InvalidConfig(format!(
                        "invalid value {value:?} for {OPT_MASQUERADE}: must be true or false"
                    ))
                })?;
            }
            other if other.starts_with(DOCKER_OPTION_PREFIX) => {
                return Err(NetError::InvalidConfig(format!(
                    "driver option {other:?} is not supported by quai's bridge driver"
                )));
            }
            // Docker keeps options it does not know and ignores them.
            _ => {}
        }
    }
    Ok((mtu, bridge, masquerade))
}

/// Checks a Linux interface name: 1 to 15 bytes, no `/`, whitespace or `:`.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if bad {
        return Err(NetError::InvalidConfig(format!(
            "invalid interface name {name:?}: 1 to {IFNAME_MAX} bytes without '/', ':' or spaces"
        )));
    }
    Ok(())
}

/// Matches `--subnet`, `--gateway` and `--ip-range` flags together as
/// docker's CLI does: each gateway and range belongs to the subnet that
/// contains it.
pub fn pools_from_flags(
    subnets: &[String],
    gateways: &[String],
    ranges: &[String],
) -> Result<Vec<PoolRequest>> {
    let mut pools: Vec<PoolRequest> = Vec::new();
    for text in subnets {
        let subnet: IpNet = text
            .parse()
            .map_err(|_| NetError::InvalidConfig(format!("invalid CIDR address: {text}")))?;
        if pools.iter().any(|p| ipam::overlaps(&p.subnet, &subnet)) {
            return Err(NetError::InvalidConfig(
                "multiple overlapping subnet configuration is not supported".into(),
            ));
        }
        pools.push(PoolRequest {
            subnet,
            gateway: None,
            ip_range: None,
        });
    }
    for text in ranges {
        let range: IpNet = text
            .parse()
            .map_err(|_| NetError::InvalidConfig(format!("invalid CIDR address: {text}")))?;
        let pool = pools
            .iter_mut()
            .find(|p| p.subnet.contains(&range.network()))
            .ok_or_else(|| {
                NetError::InvalidConfig(format!("no matching subnet for range {text}"))
            })?;
        if let Some(previous) = pool.ip_range {
            return Err(NetError::InvalidConfig(format!(
                "cannot configure multiple ranges ({previous}, {range}) on the same subnet ({})",
                pool.subnet
            )));
        }
        pool.ip_range = Some(range);
    }
    for text in gateways {
        let gateway: IpAddr = text
            .parse()
            .map_err(|_| NetError::InvalidConfig(format!("invalid IP address: {text}")))?;
        let pool = pools
            .iter_mut()
            .find(|p| p.subnet.contains(&gateway))
            .ok_or_else(|| {
                NetError::InvalidConfig(format!("no matching subnet for gateway {text}"))
            })?;
        if let Some(previous) = pool.gateway {
            return Err(NetError::InvalidConfig(format!(
                "cannot configure multiple gateways ({previous}, {gateway}) for the same subnet ({})",
                pool.subnet
            )));
        }
        pool.gateway = Some(gateway);
    }
    Ok(pools)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn request(name: &str) -> NetworkRequest {
        NetworkRequest {
            id: ID.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn pool(subnet: &str, gateway: Option<&str>) -> PoolRequest {
        PoolRequest {
            subnet: subnet.parse().unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
            ip_range: None,
        }
    }

    #[test]
    fn user_network_gets_a_free_pool_a_short_bridge_and_host_mtu() {
        let host = HostFacts {
            routes: vec!["172.17.0.0/16".parse().unwrap()],
            default_mtu: Some(1450),
        };
        let net = Network::create(&request("web"), &[], &host).unwrap();
        assert_eq!(net.bridge, "quai-0123456789");
        assert!(net.bridge.len() <= IFNAME_MAX);
        assert_eq!(net.mtu, 1450);
        let v4 = net.ipv4.unwrap();
        assert_eq!(v4.subnet.to_string(), "172.18.0.0/16");
        assert_eq!(v4.gateway.to_string(), "172.18.0.1");
        assert!(net.ipv6.is_none());
    }

    #[test]
    fn default_bridge_is_quai0() {
        let mut req = request(DEFAULT_NETWORK);
        req.is_default = true;
        let net = Network::create(&req, &[], &HostFacts::default()).unwrap();
        assert_eq!(net.bridge, DEFAULT_BRIDGE);
        assert_eq!(net.mtu, FALLBACK_MTU);
        assert!(!net.has_dns());
    }

    #[test]
    fn mtu_option_and_bad_mtu() {
        let mut req = request("n");
        req.options.insert(OPT_MTU.into(), "1400".into());
        assert_eq!(
            Network::create(&req, &[], &HostFacts::default())
                .unwrap()
                .mtu,
            1400
        );
        req.options.insert(OPT_MTU.into(), "huge".into());
        let err = Network::create(&req, &[], &HostFacts::default()).unwrap_err();
        assert!(err.to_string().contains("invalid MTU"), "{err}");
    }

    #[test]
    fn overlapping_subnet_is_refused_with_dockers_message() {
        let mut first = request("a");
        first.pools = vec![pool("10.10.0.0/16", None)];
        let a = Network::create(&first, &[], &HostFacts::default()).unwrap();
        let mut second = request("b");
        second.id = "f".repeat(64);
        second.pools = vec![pool("10.10.5.0/24", None)];
        let err = Network::create(&second, &[a], &HostFacts::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Pool overlaps with other one on this address space"
        );
    }

    #[test]
    fn gateway_outside_subnet_is_refused() {
        let mut req = request("a");
        req.pools = vec![pool("10.10.0.0/24", Some("10.11.0.1"))];
        let err = Network::create(&req, &[], &HostFacts::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to allocate gateway (10.11.0.1): Address out of range"
        );
    }

    #[test]
    fn explicit_gateway_and_ipv6_ula() {
        let mut req = request("a");
        req.pools = vec![pool("10.10.0.0/24", Some("10.10.0.254"))];
        req.ipv6 = true;
        let net = Network::create(&req, &[], &HostFacts::default()).unwrap();
        assert_eq!(net.ipv4.unwrap().gateway.to_string(), "10.10.0.254");
        let v6 = net.ipv6.unwrap();
        assert_eq!(v6.subnet.prefix_len(), 64);
        assert!(v6.subnet.to_string().starts_with("fd"));
    }

    #[test]
    fn duplicate_name_unknown_driver_and_unknown_docker_option() {
        let a = Network::create(&request("a"), &[], &HostFacts::default()).unwrap();
        let mut dup = request("a");
        dup.id = "e".repeat(64);
        assert!(Network::create(&dup, &[a], &HostFacts::default())
            .unwrap_err()
            .to_string()
            .contains("already exists"));
        let mut driver = request("b");
        driver.driver = Some("overlay".into());
        assert!(Network::create(&driver, &[], &HostFacts::default())
            .unwrap_err()
            .to_string()
            .contains("plugin \"overlay\" not found"));
        let mut opt = request("c");
        opt.options.insert(
            "com.docker.network.bridge.enable_icc".into(),
            "false".into(),
        );
        assert!(Network::create(&opt, &[], &HostFacts::default()).is_err());
    }

    #[test]
    fn flags_are_matched_like_dockers_cli() {
        let pools = pools_from_flags(
            &["10.1.0.0/16".into(), "fd00:9::/64".into()],
            &["10.1.0.254".into()],
            &["10.1.4.0/24".into()],
        )
        .unwrap();
        assert_eq!(pools[0].gateway.unwrap().to_string(), "10.1.0.254");
        assert_eq!(pools[0].ip_range.unwrap().to_string(), "10.1.4.0/24");
        assert!(pools[1].gateway.is_none());
        let err = pools_from_flags(&["10.1.0.0/16".into()], &["10.2.0.1".into()], &[]).unwrap_err();
        assert_eq!(err.to_string(), "no matching subnet for gateway 10.2.0.1");
        let err =
            pools_from_flags(&["10.1.0.0/16".into(), "10.1.2.0/24".into()], &[], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "multiple overlapping subnet configuration is not supported"
        );
        let err = pools_from_flags(&["10.1.0.0/33".into()], &[], &[]).unwrap_err();
        assert_eq!(err.to_string(), "invalid CIDR address: 10.1.0.0/33");
    }

    #[test]
    fn interface_names() {
        assert!(validate_ifname("quai0").is_ok());
        assert!(validate_ifname("a-name-too-long-for-linux").is_err());
        assert!(validate_ifname("bad/name").is_err());
        assert!(validate_ifname("").is_err());
    }
}
