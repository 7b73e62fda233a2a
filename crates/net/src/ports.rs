//! Port publishing specs (`-p`, `-P`) and host port reservation.
//!
//! Parsing follows docker's `nat.ParsePortSpec` and keeps its messages.
//! Reservation binds every published host port before any rule exists, so
//! that a port another process holds is refused up front, and keeps the
//! bound sockets: while the caller (the container's monitor) holds them, no
//! other program can take the port and silently lose its traffic to DNAT.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{ipproto, AddressFamily, SocketFlags, SocketType};
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// Used when /proc/sys/net/ipv4/ip_local_port_range cannot be read (docker's
/// fallback range).
const FALLBACK_EPHEMERAL: (u16, u16) = (49153, 60999);
/// Random host ports tried before giving up: each try is one bind.
const RANDOM_PORT_TRIES: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    fn parse(text: &str) -> Result<Protocol> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(NetError::InvalidPortSpec(format!("Invalid proto: {text}"))),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container port of a `-p` spec, before host ports are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// `None`: every address of the host.
    pub host_ip: Option<IpAddr>,
    /// Inclusive range to pick the host port from; `None` for a random
    /// port of the ephemeral range.
    pub host_ports: Option<(u16, u16)>,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// A published port as it is installed (and as `quai port` shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortBinding {
    /// `None`: every address of the host.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortBinding {
    /// `0.0.0.0:8080` (or `[::1]:8080`), docker's way of naming the host side.
    pub fn host_address(&self) -> String {
        match self.host_ip {
            None => format!("0.0.0.0:{}", self.host_port),
            Some(ip) => SocketAddr::new(ip, self.host_port).to_string(),
        }
    }

    /// Whether both bindings want the same host port.
    pub fn conflicts_with(&self, other: &PortBinding) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for PortBinding {
    /// docker's `quai port` line: `80/tcp -> 0.0.0.0:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}",
            self.container_port,
            self.protocol,
            self.host_address()
        )
    }
}

/// Parses one `-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]` value into one
/// [`PortSpec`] per container port.
pub fn parse_port_spec(raw: &str) -> Result<Vec<PortSpec>> {
    let invalid = |message: String| NetError::InvalidPortSpec(message);
    let (ip_text, host_text, container_text) = split_parts(raw);
    let (container_text, protocol_text) = match container_text.split_once('/') {
        Some((port, proto)) => (port, if proto.is_empty() { "tcp" } else { proto }),
        None => (container_text, "tcp"),
    };
    if container_text.is_empty() {
        return Err(invalid(format!("No port specified: {raw}<empty>")));
    }
    let protocol = Protocol::parse(protocol_text)?;

    let host_ip = if ip_text.is_empty() {
        None
    } else {
        let bare = ip_text
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(ip_text);
        Some(
            bare.parse::<IpAddr>()
                .map_err(|_| invalid(format!("Invalid ip address: {ip_text}")))?,
        )
    };

    let (start, end) = parse_range(container_text)
        .filter(|(start, _)| *start > 0)
        .ok_or_else(|| invalid(format!("Invalid containerPort: {container_text}")))?;

    let host_range = if host_text.is_empty() {
        None
    } else {
        let (host_start, host_end) = parse_range(host_text)
            .ok_or_else(|| invalid(format!("Invalid hostPort: {host_text}")))?;
        if host_end - host_start != end - start && end != start {
            return Err(invalid(format!(
                "Invalid ranges specified for container and host Ports: {container_text} and {host_text}"
            )));
        }
        Some((host_start, host_end))
    };

    let count = u32::from(end - start) + 1;
    Ok((0..count)
        .map(|offset| {
            let offset = offset as u16;
            let host_ports = host_range.and_then(|(host_start, host_end)| {
                if host_start == 0 {
                    // Host port 0 asks for a random port, as with docker.
                    None
                } else if count == 1 {
                    Some((host_start, host_end))
                } else {
                    Some((host_start + offset, host_start + offset))
                }
            });
            PortSpec {
                host_ip,
                host_ports,
                container_port: start + offset,
                protocol,
            }
        })
        .collect())
}

/// Parses an exposed port (`EXPOSE 80`, `--expose 8000-8010/udp`) into the
/// specs `-P` publishes: every exposed port on a random host port.
pub fn parse_exposed(raw: &str) -> Result<Vec<PortSpec>> {
    if raw.contains(':') {
        return Err(NetError::InvalidPortSpec(format!(
            "invalid port format for --expose: {raw}"
        )));
    }
    let (port_text, protocol_text) = raw.split_once('/').unwrap_or((raw, "tcp"));
    let protocol = Protocol::parse(protocol_text)?;
    let (start, end) = parse_range(port_text)
        .filter(|(start, _)| *start > 0)
        .ok_or_else(|| {
            NetError::InvalidPortSpec(format!("invalid range format for --expose: {raw}"))
        })?;
    Ok((start..=end)
        .map(|port| PortSpec {
            host_ip: None,
            host_ports: None,
            container_port: port,
            protocol,
        })
        .collect())
}

fn split_parts(raw: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.len() {
        1 => ("", "", parts[0]),
        2 => ("", parts[0], parts[1]),
        3 => (parts[0], parts[1], parts[2]),
        n => {
            // An IPv6 host address: everything before the last two parts.
            let ip_len: usize = parts[..n - 2].iter().map(|p| p.len() + 1).sum::<usize>() - 1;
            (&raw[..ip_len], parts[n - 2], parts[n - 1])
        }
    }
}

fn parse_range(text: &str) -> Option<(u16, u16)> {
    let parse = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse::<u16>().ok()
        }
    };
    match text.split_once('-') {
        None => parse(text).map(|p| (p, p)),
        Some((start, end)) => {
            let (start, end) = (parse(start)?, parse(end)?);
            (start <= end).then_some((start, end))
        }
    }
}

/// Host ports held for a container: the bindings to install, and the bound
/// sockets that keep other programs off those ports. Dropping it releases
/// the ports (not the rules).
#[derive(Debug, Default)]
pub struct PortReservation {
    pub bindings: Vec<PortBinding>,
    sockets: Vec<OwnedFd>,
}

impl PortReservation {
    /// The sockets holding the ports, for a caller that passes them to
    /// another process (they are close-on-exec).
    pub fn into_sockets(self) -> (Vec<PortBinding>, Vec<OwnedFd>) {
        (self.bindings, self.sockets)
    }

    /// The sockets that connections to `[::1]` reach (TCP or UDP, bound to
    /// `[::]` or `[::1]`), each with the binding it holds: what the
    /// loopback relay (`crate::relay`) serves.
    pub fn loopback6_sockets(&self) -> Vec<(BorrowedFd<'_>, &PortBinding)> {
        self.sockets
            .iter()
            .filter_map(|s| {
                let protocol = loopback6_protocol(s.as_fd())?;
                let port = local_address(s.as_fd())?.port();
                let binding = self
                    .bindings
                    .iter()
                    .find(|b| b.host_port == port && b.protocol == protocol)?;
                Some((s.as_fd(), binding))
            })
            .collect()
    }
}

fn local_address(fd: BorrowedFd<'_>) -> Option<SocketAddr> {
    rustix::net::getsockname(fd)
        .ok()
        .and_then(|a| SocketAddr::try_from(a).ok())
}

/// TCP or UDP, for a socket bound to `[::]` or `[::1]`; `None` otherwise.
fn loopback6_protocol(fd: BorrowedFd<'_>) -> Option<Protocol> {
    let loopback6 = matches!(local_address(fd),
        Some(SocketAddr::V6(a)) if a.ip().is_unspecified() || a.ip().is_loopback());
    if !loopback6 {
        return None;
    }
    match rustix::net::sockopt::socket_protocol(fd).ok().flatten()? {
        p if p == ipproto::TCP => Some(Protocol::Tcp),
        p if p == ipproto::UDP => Some(Protocol::Udp),
        _ => None,
    }
}

/// Chooses the host port of every spec and binds it. `allocated` holds the
/// bindings of every other container (from the engine's database): a port
/// one of them holds is refused with docker's "port is already allocated",
/// a port another program holds with the bind error. Nothing stays bound
/// when an error is returned.
pub fn reserve(specs: &[PortSpec], allocated: &[PortBinding]) -> Result<PortReservation> {
    let mut reservation = PortReservation::default();
    for spec in specs {
        let taken: Vec<PortBinding> = allocated
            .iter()
            .chain(reservation.bindings.iter())
            .copied()
            .collect();
        let (binding, sockets) = match spec.host_ports {
            Some((start, end)) if start == end => reserve_exact(spec, start, &taken)?,
            Some((start, end)) => reserve_in_range(spec, start, end, &taken)?,
            None => reserve_random(spec, &taken)?,
        };
        reservation.bindings.push(binding);
        reservation.sockets.extend(sockets);
    }
    Ok(reservation)
}

fn binding_for(spec: &PortSpec, host_port: u16) -> PortBinding {
    PortBinding {
        host_ip: spec.host_ip,
        host_port,
        container_port: spec.container_port,
        protocol: spec.protocol,
    }
}

fn reserve_exact(
    spec: &PortSpec,
    port: u16,
    taken: &[PortBinding],
) -> Result<(PortBinding, Vec<OwnedFd>)> {
    let binding = binding_for(spec, port);
    if taken.iter().any(|t| t.conflicts_with(&binding)) {
        return Err(NetError::PortAllocated {
            addr: binding.host_address(),
        });
    }
    let sockets = bind_host_port(&binding).map_err(|source| NetError::PortInUse {
        binding: format!(
            "{}:{}/{}",
            binding.host_address(),
            binding.container_port,
            binding.protocol
        ),
        source,
    })?;
    Ok((binding, sockets))
}

fn reserve_in_range(
    spec: &PortSpec,
    start: u16,
    end: u16,
    taken: &[PortBinding],
) -> Result<(PortBinding, Vec<OwnedFd>)> {
    for port in start..=end {
        let binding = binding_for(spec, port);
        if taken.iter().any(|t| t.conflicts_with(&binding)) {
            continue;
        }
        if let Ok(sockets) = bind_host_port(&binding) {
            return Ok((binding, sockets));
        }
    }
    Err(NetError::PortAllocated {
        addr: match spec.host_ip {
            None => format!("0.0.0.0:{start}-{end}"),
            Some(ip) => format!("{}:{start}-{end}", SocketAddr::new(ip, 0).ip()),
        },
    })
}

fn reserve_random(spec: &PortSpec, taken: &[PortBinding]) -> Result<(PortBinding, Vec<OwnedFd>)> {
    // The kernel picks a free port of ip_local_port_range when binding port
    // 0; only ports quai itself has allocated to stopped containers (which
    // hold no socket) need skipping.
    for _ in 0..RANDOM_PORT_TRIES {
        let probe = binding_for(spec, 0);
        let sockets =
            bind_host_port(&probe).map_err(|e| NetError::io("bind a random host port", e))?;
        let Some(first) = sockets.first() else {
            break;
        };
        let port = match rustix::net::getsockname(first)
            .ok()
            .and_then(|a| SocketAddr::try_from(a).ok())
        {
            Some(address) => address.port(),
            None => break,
        };
        let binding = binding_for(spec, port);
        if taken.iter().any(|t| t.conflicts_with(&binding)) {
            continue;
        }
        if spec.host_ip.is_none() {
            // The kernel chose the port for IPv4; make sure IPv6 has it free
            // too by binding the exact port on both.
            drop(sockets);
            match bind_host_port(&binding) {
                Ok(sockets) => return Ok((binding, sockets)),
                Err(_) => continue,
            }
        }
        return Ok((binding, sockets));
    }
    let (start, end) = ephemeral_range();
    Err(NetError::NoFreePort {
        start,
        end,
        proto: spec.protocol.as_str(),
    })
}

/// The host's ephemeral port range (random host ports come from there).
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut numbers = text.split_whitespace().map(|n| n.parse::<u16>());
            match (numbers.next(), numbers.next()) {
                (Some(Ok(start)), Some(Ok(end))) if start <= end => Some((start, end)),
                _ => None,
            }
        })
        .unwrap_or(FALLBACK_EPHEMERAL)
}

/// Binds the host side of a binding: the given address, or both wildcard
/// addresses when none is given (IPv6 only where the host has IPv6).
fn bind_host_port(binding: &PortBinding) -> io::Result<Vec<OwnedFd>> {
    let mut sockets = Vec::new();
    match binding.host_ip {
        Some(ip) => {
            if let Some(socket) =
                bind_one(SocketAddr::new(ip, binding.host_port), binding.protocol)?
            {
                sockets.push(socket);
            }
        }
        None => {
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), binding.host_port);
            if let Some(socket) = bind_one(v4, binding.protocol)? {
                sockets.push(socket);
            }
            if binding.host_port != 0 {
                let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), binding.host_port);
                match bind_one(v6, binding.protocol) {
                    Ok(Some(socket)) => sockets.push(socket),
                    Ok(None) => {}
                    // A host without IPv6 cannot have the port taken there.
                    Err(e) if is_family_unavailable(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(sockets)
}

fn is_family_unavailable(error: &io::Error) -> bool {
    use rustix::io::Errno;
    let code = error.raw_os_error();
    code == Some(Errno::AFNOSUPPORT.raw_os_error())
        || code == Some(Errno::ADDRNOTAVAIL.raw_os_error())
}

/// Binds one socket without listening: enough to own the port. `None` when
/// the protocol does not exist on this kernel (no SCTP module: then nothing
/// else can hold the port either).
fn bind_one(address: SocketAddr, protocol: Protocol) -> io::Result<Option<OwnedFd>> {
    let family = if address.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let (kind, proto) = match protocol {
        Protocol::Tcp => (SocketType::STREAM, ipproto::TCP),
        Protocol::Udp => (SocketType::DGRAM, ipproto::UDP),
        Protocol::Sctp => (SocketType::STREAM, ipproto::SCTP),
    };
    let socket = match rustix::net::socket_with(family, kind, SocketFlags::CLOEXEC, Some(proto)) {
        Ok(socket) => socket,
        Err(e) if protocol == Protocol::Sctp => {
            tracing::debug!(error = %e, "no SCTP on this kernel; not reserving the port");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    // No SO_REUSEADDR: a socket bound with it does not stop another
    // SO_REUSEADDR socket (every server sets it) from binding the same port
    // as long as neither listens, and the reservation must stop them.
    if address.is_ipv6() {
        rustix::net::sockopt::set_ipv6_v6only(&socket, true)?;
    }
    rustix::net::bind(&socket, &address)?;
    Ok(Some(socket))
}

/// Specs of `-P`: each exposed port not already published by `-p`.
pub fn publish_all(exposed: &[PortSpec], explicit: &[PortSpec]) -> Vec<PortSpec> {
    let already: HashSet<(u16, Protocol)> = explicit
        .iter()
        .map(|s| (s.container_port, s.protocol))
        .collect();
    exposed
        .iter()
        .filter(|s| !already.contains(&(s.container_port, s.protocol)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(raw: &str) -> PortSpec {
        let mut specs = parse_port_spec(raw).unwrap();
        assert_eq!(specs.len(), 1, "{raw}");
        specs.remove(0)
    }

    fn err(raw: &str) -> String {
        parse_port_spec(raw).unwrap_err().to_string()
    }

    #[test]
    fn forms_of_a_spec() {
        assert_eq!(
            one("80"),
            PortSpec {
                host_ip: None,
                host_ports: None,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        assert_eq!(one("8080:80").host_ports, Some((8080, 8080)));
        let s = one("127.0.0.1:8080:80/udp");
        assert_eq!(s.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(s.protocol, Protocol::Udp);
        assert_eq!(one("127.0.0.1::80").host_ports, None);
        assert_eq!(one("[::1]:8080:80").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(one("::1:8080:80").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(one("80/SCTP").protocol, Protocol::Sctp);
        assert_eq!(one("0:80").host_ports, None);
    }

    #[test]
    fn ranges() {
        let specs = parse_port_spec("8000-8002:80-82").unwrap();
        let pairs: Vec<_> = specs
            .iter()
            .map(|s| (s.host_ports.unwrap().0, s.container_port))
            .collect();
        assert_eq!(pairs, [(8000, 80), (8001, 81), (8002, 82)]);
        // A host range for one container port is a range to pick from.
        assert_eq!(one("8000-8010:80").host_ports, Some((8000, 8010)));
        assert_eq!(parse_port_spec("80-81").unwrap().len(), 2);
    }

    #[test]
    fn dockers_messages() {
        assert_eq!(err("abc"), "Invalid containerPort: abc");
        assert_eq!(err("abc:80"), "Invalid hostPort: abc");
        assert_eq!(err("70000:80"), "Invalid hostPort: 70000");
        assert_eq!(err("80:70000"), "Invalid containerPort: 70000");
        assert_eq!(err("1.2.3:80:80"), "Invalid ip address: 1.2.3");
        assert_eq!(err("80/foo"), "Invalid proto: foo");
        assert_eq!(err("8080:"), "No port specified: 8080:<empty>");
        assert_eq!(
            err("8000-8001:80-90"),
            "Invalid ranges specified for container and host Ports: 80-90 and 8000-8001"
        );
        assert_eq!(err("90-80"), "Invalid containerPort: 90-80");
        assert_eq!(err("0"), "Invalid containerPort: 0");
        assert_eq!(err("-1"), "Invalid containerPort: -1");
    }

    #[test]
    fn exposed_ports() {
        assert_eq!(parse_exposed("8000-8001/udp").unwrap().len(), 2);
        assert_eq!(
            parse_exposed("80:80").unwrap_err().to_string(),
            "invalid port format for --expose: 80:80"
        );
        let exposed = parse_exposed("80").unwrap();
        let explicit = parse_port_spec("9000:80").unwrap();
        assert!(publish_all(&exposed, &explicit).is_empty());
        assert_eq!(
            publish_all(&parse_exposed("81").unwrap(), &explicit).len(),
            1
        );
    }

    #[test]
    fn conflicts() {
        let any = PortBinding {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let local = PortBinding {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            ..any
        };
        let other = PortBinding {
            host_ip: Some("127.0.0.2".parse().unwrap()),
            ..any
        };
        let udp = PortBinding {
            protocol: Protocol::Udp,
            ..any
        };
        assert!(any.conflicts_with(&local));
        assert!(!local.conflicts_with(&other));
        assert!(!any.conflicts_with(&udp));
        assert_eq!(any.to_string(), "80/tcp -> 0.0.0.0:8080");
        assert_eq!(local.host_address(), "127.0.0.1:8080");
    }

    #[test]
    fn allocated_port_is_refused_with_dockers_message() {
        let taken = PortBinding {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let err = reserve(&parse_port_spec("8080:81").unwrap(), &[taken]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bind for 0.0.0.0:8080 failed: port is already allocated"
        );
    }

    #[test]
    fn ephemeral_range_is_sane() {
        let (start, end) = ephemeral_range();
        assert!(start > 0 && start <= end);
    }
}
