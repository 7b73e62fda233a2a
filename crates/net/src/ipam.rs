//! IP address management as pure functions: quai has no daemon to remember
//! allocations, so the caller (the engine, from its database) passes in what
//! is taken and stores what comes out.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::error::{NetError, Result};

/// Docker's default address pools for local networks, in docker's order:
/// 172.17-31.0.0/16, then 192.168.0.0/16 cut in /20s.
pub fn default_ipv4_pools() -> impl Iterator<Item = Ipv4Net> {
    let sixteens = (17u8..=31).map(|second| {
        Ipv4Net::new(Ipv4Addr::new(172, second, 0, 0), 16).expect("valid /16 prefix")
    });
    let twenties = Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16)
        .expect("valid /16 prefix")
        .subnets(20)
        .expect("/20 is longer than /16");
    sixteens.chain(twenties)
}

/// The first default pool that overlaps neither a network of quai nor a
/// route of the host (`taken`). The host's default routes (prefix length 0)
/// do not count: they overlap everything.
pub fn pick_ipv4_subnet(taken: &[IpNet]) -> Result<Ipv4Net> {
    default_ipv4_pools()
        .find(|candidate| {
            !taken
                .iter()
                .any(|t| t.prefix_len() > 0 && overlaps(&IpNet::V4(*candidate), t))
        })
        .ok_or(NetError::NoFreePool)
}

/// A unique local /64 for a network, derived from its id like a ULA global
/// id (RFC 4193 asks for 40 pseudo-random bits; the network id is random),
/// skipping any that overlaps `taken`.
pub fn pick_ipv6_subnet(network_id: &str, taken: &[IpNet]) -> Result<Ipv6Net> {
    let seed = fnv1a64(network_id.as_bytes());
    for attempt in 0u64..64 {
        let global = (seed ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) & 0xff_ffff_ffff;
        let bits: u128 = (0xfdu128 << 120) | ((global as u128) << 80);
        let candidate = Ipv6Net::new(Ipv6Addr::from(bits), 64).expect("valid /64 prefix");
        if !taken
            .iter()
            .any(|t| t.prefix_len() > 0 && overlaps(&IpNet::V6(candidate), t))
        {
            return Ok(candidate);
        }
    }
    Err(NetError::InvalidConfig(
        "could not find a free IPv6 unique local subnet for the network".into(),
    ))
}

/// Whether two prefixes share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The gateway docker picks when none is given: the first host address.
pub fn default_gateway(subnet: &IpNet) -> IpAddr {
    nth_address(subnet, 1)
}

/// Picks the address for a container on a subnet: `requested` if it is
/// free and inside `subnet`, else the lowest free address of `range` (or of
/// the subnet). The network and broadcast addresses and the gateway are
/// never handed out.
pub fn allocate(
    subnet: &IpNet,
    range: Option<&IpNet>,
    gateway: IpAddr,
    used: &[IpAddr],
    requested: Option<IpAddr>,
) -> Result<Option<IpAddr>> {
    let reserved = |address: IpAddr| {
        address == gateway
            || address == subnet.network()
            || (subnet.addr().is_ipv4()
                && address == subnet.broadcast()
                && subnet.prefix_len() < 31)
    };
    if let Some(address) = requested {
        if !subnet.contains(&address) {
            return Err(NetError::AddressOutOfRange(address));
        }
        if reserved(address) || used.contains(&address) {
            return Err(NetError::AddressInUse);
        }
        return Ok(Some(address));
    }
    let pool = range.unwrap_or(subnet);
    let used: HashSet<&IpAddr> = used.iter().collect();
    // Every skipped candidate is used or reserved, so the loop is bounded
    // by the number of allocations, not by the size of the subnet.
    let size = pool_size(pool);
    let mut index: u128 = 0;
    while index < size {
        let candidate = nth_address(pool, index);
        if subnet.contains(&candidate) && !reserved(candidate) && !used.contains(&candidate) {
            return Ok(Some(candidate));
        }
        index += 1;
    }
    Ok(None)
}

/// The MAC address docker derives from an IPv4 address (02:42 followed by
/// the four bytes of the address), so that a container keeps its MAC for
/// its IP and ARP caches stay valid across restarts.
pub fn mac_from_ip(address: IpAddr) -> [u8; 6] {
    let tail = match address {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x42, tail[0], tail[1], tail[2], tail[3]]
}

/// Parses `aa:bb:cc:dd:ee:ff` as `--mac-address` accepts it, refusing
/// multicast addresses, which no interface may use.
pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let invalid = || NetError::InvalidConfig(format!("{text} is not a valid mac address"));
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(invalid());
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return Err(invalid());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
    }
    if mac[0] & 1 == 1 {
        return Err(NetError::InvalidConfig(format!(
            "{text} is a multicast mac address and cannot be assigned to an interface"
        )));
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pool_size(net: &IpNet) -> u128 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if host_bits >= 128 {
        u128::MAX
    } else {
        1u128 << host_bits
    }
}

fn nth_address(net: &IpNet, n: u128) -> IpAddr {
    match net {
        IpNet::V4(v4) => IpAddr::V4(Ipv4Addr::from(
            u32::from(v4.network()).wrapping_add(n as u32),
        )),
        IpNet::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6.network()).wrapping_add(n))),
    }
}

/// 64-bit FNV-1a: a stable, dependency-free hash for deriving names and
/// prefixes from ids (not for security).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_pool_is_docker0s() {
        assert_eq!(pick_ipv4_subnet(&[]).unwrap().to_string(), "172.17.0.0/16");
    }

    #[test]
    fn picks_around_networks_and_host_routes_but_not_default_route() {
        let taken = [
            net("0.0.0.0/0"),
            net("172.17.0.0/16"),
            net("172.18.5.0/24"),
            net("172.16.0.0/12"),
        ];
        // 172.16/12 covers every 172.x pool: the next is in 192.168/16.
        assert_eq!(
            pick_ipv4_subnet(&taken).unwrap().to_string(),
            "192.168.0.0/20"
        );
        let taken = [net("172.17.0.0/16"), net("172.18.5.0/24")];
        assert_eq!(
            pick_ipv4_subnet(&taken).unwrap().to_string(),
            "172.19.0.0/16"
        );
    }

    #[test]
    fn exhausted_pools_are_reported() {
        let taken = [net("172.16.0.0/12"), net("192.168.0.0/16")];
        assert!(matches!(
            pick_ipv4_subnet(&taken),
            Err(NetError::NoFreePool)
        ));
    }

    #[test]
    fn ipv6_subnet_is_a_stable_ula_64() {
        let a = pick_ipv6_subnet("abc", &[]).unwrap();
        assert_eq!(a.prefix_len(), 64);
        assert_eq!(a.network().octets()[0], 0xfd);
        assert_eq!(a, pick_ipv6_subnet("abc", &[]).unwrap());
        let b = pick_ipv6_subnet("abc", &[IpNet::V6(a)]).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn allocates_lowest_free_skipping_gateway_and_used() {
        let subnet = net("10.1.0.0/24");
        let gw = ip("10.1.0.1");
        assert_eq!(
            allocate(&subnet, None, gw, &[], None).unwrap(),
            Some(ip("10.1.0.2"))
        );
        let used = [ip("10.1.0.2"), ip("10.1.0.3")];
        assert_eq!(
            allocate(&subnet, None, gw, &used, None).unwrap(),
            Some(ip("10.1.0.4"))
        );
    }

    #[test]
    fn allocates_inside_ip_range() {
        let subnet = net("10.1.0.0/16");
        let range = net("10.1.5.0/30");
        let gw = ip("10.1.0.1");
        let first = allocate(&subnet, Some(&range), gw, &[], None).unwrap();
        assert_eq!(first, Some(ip("10.1.5.0")));
        let used = [
            ip("10.1.5.0"),
            ip("10.1.5.1"),
            ip("10.1.5.2"),
            ip("10.1.5.3"),
        ];
        assert_eq!(
            allocate(&subnet, Some(&range), gw, &used, None).unwrap(),
            None
        );
    }

    #[test]
    fn small_subnet_runs_out_without_broadcast() {
        let subnet = net("10.2.0.0/30");
        let gw = ip("10.2.0.1");
        assert_eq!(
            allocate(&subnet, None, gw, &[], None).unwrap(),
            Some(ip("10.2.0.2"))
        );
        assert_eq!(
            allocate(&subnet, None, gw, &[ip("10.2.0.2")], None).unwrap(),
            None
        );
    }

    #[test]
    fn requested_address_is_honoured_or_refused_like_docker() {
        let subnet = net("10.1.0.0/24");
        let gw = ip("10.1.0.1");
        let used = [ip("10.1.0.7")];
        assert_eq!(
            allocate(&subnet, None, gw, &used, Some(ip("10.1.0.9"))).unwrap(),
            Some(ip("10.1.0.9"))
        );
        let taken = allocate(&subnet, None, gw, &used, Some(ip("10.1.0.7"))).unwrap_err();
        assert_eq!(taken.to_string(), "Address already in use");
        let gateway = allocate(&subnet, None, gw, &used, Some(gw)).unwrap_err();
        assert_eq!(gateway.to_string(), "Address already in use");
        let outside = allocate(&subnet, None, gw, &used, Some(ip("10.9.0.7"))).unwrap_err();
        assert_eq!(
            outside.to_string(),
            "no configured subnet or ip-range contain the IP address 10.9.0.7"
        );
    }

    #[test]
    fn ipv6_allocation() {
        let subnet = net("fd00:1::/64");
        let gw = ip("fd00:1::1");
        assert_eq!(
            allocate(&subnet, None, gw, &[], None).unwrap(),
            Some(ip("fd00:1::2"))
        );
    }

    #[test]
    fn mac_like_docker() {
        assert_eq!(
            format_mac(&mac_from_ip(ip("172.17.0.2"))),
            "02:42:ac:11:00:02"
        );
        assert_eq!(
            parse_mac("02:42:AC:11:00:09").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 9]
        );
        assert!(parse_mac("02:42:ac:11:00").is_err());
        assert!(parse_mac("zz:42:ac:11:00:01").is_err());
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .to_string()
            .contains("multicast"));
    }
}
