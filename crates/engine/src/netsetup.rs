//! A container's networking over its lifetime, driven by its monitor:
//!
//! 1. [`prepare`] (before the runtime creates the container): the
//!    container's networks exist in the kernel, its addresses are leased
//!    (rows of `container_networks`, unique per network), its host ports are
//!    bound and recorded (`container_ports`), the DNS servers of its user
//!    networks know it, and its `/etc/hosts` and `/etc/resolv.conf` are
//!    computed;
//! 2. [`Session::attach`] (the container process exists, not yet started):
//!    veth pairs into its network namespace, published ports in nftables;
//! 3. [`teardown`] (it exited, or its monitor died): rules, veths, leases
//!    and DNS records go. Idempotent, and cheap when nothing is held.
//!
//! Everything a start holds is in the database from the moment it is held,
//! so a killed monitor's leftovers are found and released by the next
//! command that repairs the container ([`Engine::reclaim_container_network`]).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use quai_db::rusqlite::{params, Connection};
use quai_net::dns::{DnsConfig, DnsRecord, DNS_PORT};
use quai_net::hosts::{self, ExtraHost};
use quai_net::ports::{self, PortReservation};
use quai_net::resolvconf::{self, DnsOverrides};
use quai_net::{Endpoint, EndpointRequest, Network, PortBinding, PortSpec, Protocol};
use rustix::fs::{Mode, OFlags};

use crate::engine::Engine;
use crate::error::{EngineError, IoContext, Result};
use crate::lock::ContainerLock;
use crate::networks::{self, driver};
use crate::paths::Paths;
use crate::record::{self, Container};
use crate::types::{EndpointSettings, HostConfig};

/// One network a container is attached to, as stored.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub network: Network,
    pub position: i64,
    pub settings: EndpointSettings,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub endpoint: Option<Endpoint>,
}

/// The networks of container `id`, in interface order.
pub fn attachments(conn: &Connection, id: &str) -> Result<Vec<Attachment>> {
    let mut stmt = conn.prepare_cached(
        "SELECT n.definition, cn.position, cn.config, cn.ipv4, cn.ipv6, cn.endpoint \
         FROM container_networks cn JOIN networks n ON n.id = cn.network_id \
         WHERE cn.container_id = ?1 ORDER BY cn.position",
    )?;
    type Row = (
        String,
        i64,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = stmt
        .query_map([id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let corrupt = |what: &str, e: String| EngineError::Corrupt {
        id: id.to_string(),
        reason: format!("{what}: {e}"),
    };
    rows.into_iter()
        .map(|(def, position, config, v4, v6, ep)| {
            Ok(Attachment {
                network: serde_json::from_str(&def)
                    .map_err(|e| corrupt("network definition", e.to_string()))?,
                position,
                settings: serde_json::from_str(&config)
                    .map_err(|e| corrupt("endpoint settings", e.to_string()))?,
                ipv4: v4.and_then(|a| a.parse().ok()),
                ipv6: v6.and_then(|a| a.parse().ok()),
                endpoint: ep.and_then(|e| serde_json::from_str(&e).ok()),
            })
        })
        .collect()
}

/// Records that container `id` joins `network` (create, `network connect`).
pub fn add_attachment(
    conn: &Connection,
    id: &str,
    network: &Network,
    settings: &EndpointSettings,
) -> Result<()> {
    let position: i64 = conn.query_row(
        "SELECT COALESCE(MAX(position) + 1, 0) FROM container_networks WHERE container_id = ?1",
        [id],
        |r| r.get(0),
    )?;
    let config = serde_json::to_string(settings)
        .map_err(|e| EngineError::invalid(format!("encode endpoint settings: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO container_networks (container_id, network_id, position, config) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, network.id, position, config])?;
    Ok(())
}

/// The published ports of container `id` while it runs.
pub fn published(conn: &Connection, id: &str) -> Result<Vec<PortBinding>> {
    let mut stmt = conn.prepare_cached(
        "SELECT host_ip, host_port, container_port, protocol FROM container_ports \
         WHERE container_id = ?1 ORDER BY container_port, protocol, host_ip",
    )?;
    let rows: Vec<(String, u16, u16, String)> = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(ip, host_port, container_port, proto)| {
            Some(PortBinding {
                host_ip: if ip.is_empty() {
                    None
                } else {
                    Some(ip.parse().ok()?)
                },
                host_port,
                container_port,
                protocol: parse_protocol(&proto).ok()?,
            })
        })
        .collect())
}

fn parse_protocol(text: &str) -> Result<Protocol> {
    match text {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        other => Err(EngineError::invalid(format!("Invalid proto: {other}"))),
    }
}

/// The port specs of a host config: `-p` bindings and, with `-P`, every
/// exposed port not bound explicitly. Checks them all (docker's messages).
pub fn port_specs(
    hc: &HostConfig,
    exposed: Option<&std::collections::BTreeMap<String, serde_json::Value>>,
) -> Result<Vec<PortSpec>> {
    let mut specs = Vec::new();
    for (port, bindings) in hc.port_bindings.iter().flatten() {
        let container = ports::parse_exposed(port)?;
        let [container] = container.as_slice() else {
            return Err(EngineError::invalid(format!(
                "Invalid containerPort: {port} (one port per binding)"
            )));
        };
        let empty = [crate::types::PortBinding::default()];
        let bindings = if bindings.is_empty() {
            &empty[..]
        } else {
            &bindings[..]
        };
        for b in bindings {
            let host_ip = match b.host_ip.trim_matches(|c| c == '[' || c == ']') {
                "" => None,
                ip => Some(ip.parse::<IpAddr>().map_err(|_| {
                    EngineError::invalid(format!("Invalid ip address: {}", b.host_ip))
                })?),
            };
            let bad_port = || EngineError::invalid(format!("Invalid hostPort: {}", b.host_port));
            let port_number = |s: &str| s.parse::<u16>().map_err(|_| bad_port());
            let host_ports = match b.host_port.as_str() {
                "" | "0" => None,
                text => match text.split_once('-') {
                    Some((a, z)) => {
                        let (a, z) = (port_number(a)?, port_number(z)?);
                        if a > z || a == 0 {
                            return Err(bad_port());
                        }
                        Some((a, z))
                    }
                    None => {
                        let p = port_number(text)?;
                        Some((p, p))
                    }
                },
            };
            specs.push(PortSpec {
                host_ip,
                host_ports,
                container_port: container.container_port,
                protocol: container.protocol,
            });
        }
    }
    if hc.publish_all_ports {
        let mut all_exposed = Vec::new();
        for port in exposed.into_iter().flat_map(|m| m.keys()) {
            all_exposed.extend(ports::parse_exposed(port)?);
        }
        let extra = ports::publish_all(&all_exposed, &specs);
        specs.extend(extra);
    }
    Ok(specs)
}

/// The `--add-host` entries, `host-gateway` being `gateway`.
pub fn extra_hosts(hc: &HostConfig, gateway: Option<IpAddr>) -> Result<Vec<ExtraHost>> {
    let mut out = Vec::new();
    for raw in hc.extra_hosts.iter().flatten() {
        out.push(hosts::parse_add_host(raw, gateway)?);
    }
    Ok(out)
}

/// `--dns`, `--dns-search`, `--dns-option` of a host config.
pub fn dns_overrides(hc: &HostConfig) -> Result<DnsOverrides> {
    let mut servers = Vec::new();
    for s in hc.dns.iter().flatten() {
        servers.push(
            s.parse::<IpAddr>()
                .map_err(|_| EngineError::invalid(format!("{s} is not an ip address")))?,
        );
    }
    Ok(DnsOverrides {
        servers,
        search: hc.dns_search.clone().unwrap_or_default(),
        options: hc.dns_options.clone().unwrap_or_default(),
    })
}

/// The mount namespace of the host, kept by the monitor before it moves to
/// a private one: DNS servers it starts must not pin the monitor's mounts
/// (the container's overlay) by living in its namespace.
static HOST_MOUNT_NS: OnceLock<OwnedFd> = OnceLock::new();

/// Remembers the calling process's current mount namespace as the host's.
pub fn remember_host_mount_namespace() -> Result<()> {
    let fd = rustix::fs::open(
        "/proc/self/ns/mnt",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at("open", Path::new("/proc/self/ns/mnt"))?;
    let _ = HOST_MOUNT_NS.set(fd);
    Ok(())
}

/// Runs `f` in the host's mount namespace when one was remembered (the
/// caller must be single-threaded, as the monitor is).
fn in_host_mount_namespace<T>(f: impl FnOnce() -> T) -> Result<T> {
    let Some(host) = HOST_MOUNT_NS.get() else {
        return Ok(f());
    };
    use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
    let own = rustix::fs::open(
        "/proc/self/ns/mnt",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at("open", Path::new("/proc/self/ns/mnt"))?;
    let cwd = std::env::current_dir().ok();
    move_into_link_name_space(host.as_fd(), Some(LinkNameSpaceType::Mount))
        .ctx(|| "enter the host's mount namespace".into())?;
    let out = f();
    move_into_link_name_space(own.as_fd(), Some(LinkNameSpaceType::Mount))
        .ctx(|| "return to the monitor's mount namespace".into())?;
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    Ok(out)
}

/// Rewrites the DNS records of a user network from the database and makes
/// sure its server runs (or stops it when nobody is left).
pub fn refresh_dns(conn: &Connection, paths: &Paths, network: &Network) -> Result<()> {
    if !network.has_dns() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.name, c.config, cn.config, cn.ipv4, cn.ipv6 FROM container_networks cn \
         JOIN containers c ON c.id = cn.container_id \
         WHERE cn.network_id = ?1 AND (cn.ipv4 IS NOT NULL OR cn.ipv6 IS NOT NULL)",
    )?;
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = stmt
        .query_map([&network.id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let path = paths.dns_config(&network.id);
    if rows.is_empty() {
        // Nobody to answer for: the server goes until the next member.
        quai_net::dns::stop_server(&path)?;
        return Ok(());
    }
    let mut records = Vec::new();
    for (id, name, def, settings, v4, v6) in rows {
        let settings: EndpointSettings = serde_json::from_str(&settings).unwrap_or_default();
        let def: record::Definition = serde_json::from_str(&def).unwrap_or_default();
        let mut names = vec![name];
        names.extend(settings.aliases.unwrap_or_default());
        names.push(id[..12].to_string());
        let upstreams = dns_overrides(&def.host_config)
            .map(|o| o.servers)
            .unwrap_or_default()
            .into_iter()
            .map(|ip| SocketAddr::new(ip, DNS_PORT))
            .collect();
        records.push(DnsRecord {
            container: id.clone(),
            names,
            ipv4: v4.and_then(|a| a.parse().ok()),
            ipv6: v6.and_then(|a| a.parse().ok()),
            upstreams,
        });
    }
    let (_, host_text) = resolvconf::read_host(true)?;
    let upstreams = resolvconf::ResolvConf::parse(&host_text)
        .nameservers
        .into_iter()
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .collect();
    let config = DnsConfig {
        network: network.name.clone(),
        listen: network.subnets().map(|s| s.gateway).collect(),
        port: DNS_PORT,
        upstreams,
        records,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at("create directory", dir)?;
    }
    config.save(&path)?;
    if quai_net::dns::server_pid(&path).is_none() {
        let quai = quai_exe()?;
        in_host_mount_namespace(|| quai_net::dns::spawn_server(&quai, &path))??;
    }
    Ok(())
}

fn quai_exe() -> Result<PathBuf> {
    std::env::current_exe().ctx(|| "find quai's own executable".into())
}

/// What one start of a container set up; the monitor holds it while the
/// container runs (the reservation's sockets keep the host ports).
#[derive(Debug, Default)]
pub struct Session {
    container_id: String,
    attachments: Vec<Attachment>,
    bindings: Vec<PortBinding>,
    reservation: Option<PortReservation>,
    /// `--network container:X`: the namespace to join.
    pub netns_path: Option<String>,
    /// Contents of `/etc/hosts` and `/etc/resolv.conf`; `None` with the
    /// host's network (the host's files are used) and with another
    /// container's (`shared_etc`).
    pub hosts: Option<String>,
    pub resolv_conf: Option<String>,
    /// `--network container:X`: X's files, to bind instead of our own.
    pub shared_etc: Option<SharedEtc>,
    /// Serves the published ports on `[::1]`; stops when dropped.
    relay: Option<quai_net::relay::Relay>,
}

/// Host paths of another container's `/etc/hosts` and `/etc/resolv.conf`.
#[derive(Debug, Clone)]
pub struct SharedEtc {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
}

/// Step 1: see the module comment. On error nothing is held.
pub fn prepare(engine: &mut Engine, c: &Container) -> Result<Session> {
    let hc = &c.def.host_config;
    let mut session = Session {
        container_id: c.id.clone(),
        ..Default::default()
    };
    let mode = hc.network_mode.as_str();
    let domain = Some(c.def.config.domainname.as_str());
    let hostname = c.def.config.hostname.as_str();
    match mode {
        "host" => return Ok(session),
        "none" => {
            let extra = extra_hosts(hc, None)?;
            session.hosts = Some(hosts::render(hostname, domain, &[], &extra));
            session.resolv_conf = Some(resolv_conf_for(hc, None, false)?);
            return Ok(session);
        }
        _ => {}
    }
    if let Some(other) = mode.strip_prefix("container:") {
        let other = engine.container(other)?;
        if other.state.status != record::Status::Running || other.state.pid <= 0 {
            return Err(EngineError::conflict(format!(
                "cannot join network namespace of a non running container: {}",
                other.name
            )));
        }
        session.netns_path = Some(format!("/proc/{}/ns/net", other.state.pid));
        // docker's way: X's own files, bind-mounted, so that what changes
        // them later (network connect/disconnect) is seen here too.
        let hosts = engine.paths.hosts_path(&other.id);
        let resolv_conf = engine.paths.resolv_conf_path(&other.id);
        for file in [&hosts, &resolv_conf] {
            std::fs::metadata(file).at("find the network files of the joined container", file)?;
        }
        session.shared_etc = Some(SharedEtc { hosts, resolv_conf });
        return Ok(session);
    }
    // Leftovers of an earlier run of this container (a monitor killed
    // before it released them) go first.
    teardown(engine.store.db().conn(), &engine.paths, &c.id)?;
    let result = prepare_bridged(engine, c, &mut session);
    if result.is_err() {
        let _ = teardown(engine.store.db().conn(), &engine.paths, &c.id);
    }
    result.map(|()| session)
}

fn resolv_conf_for(hc: &HostConfig, dns_server: Option<IpAddr>, ipv6: bool) -> Result<String> {
    let (path, text) = resolvconf::read_host(dns_server.is_some())?;
    let overrides = dns_overrides(hc)?;
    Ok(resolvconf::for_container(&text, &path, &overrides, dns_server, ipv6).content)
}

fn prepare_bridged(engine: &mut Engine, c: &Container, session: &mut Session) -> Result<()> {
    let hc = &c.def.host_config;
    let attachments = attachments(engine.conn(), &c.id)?;
    if attachments.is_empty() {
        return Err(EngineError::NoSuchNetwork(hc.network_mode.clone()));
    }
    let driver = driver(&engine.paths)?;
    for a in &attachments {
        driver.ensure_network(&a.network)?;
    }
    // Leases, in one transaction: the unique indexes settle races.
    let tx = engine.store.db().write()?;
    let mut leased = Vec::new();
    for a in &attachments {
        let used = used_addresses(&tx, &a.network.id, &c.id)?;
        let ipam = a.settings.ipam_config.clone().unwrap_or_default();
        let want = |s: &str| -> Result<Option<IpAddr>> {
            match s {
                "" => Ok(None),
                s => s
                    .parse()
                    .map(Some)
                    .map_err(|_| EngineError::invalid(format!("invalid IP address: {s}"))),
            }
        };
        let (v4, v6) = quai_net::allocate_addresses(
            &a.network,
            &used,
            want(&ipam.ipv4_address)?,
            want(&ipam.ipv6_address)?,
        )?;
        tx.execute(
            "UPDATE container_networks SET ipv4 = ?3, ipv6 = ?4 WHERE container_id = ?1 AND network_id = ?2",
            params![c.id, a.network.id, v4.map(|a| a.to_string()), v6.map(|a| a.to_string())],
        )?;
        let mut a = a.clone();
        a.ipv4 = v4;
        a.ipv6 = v6;
        leased.push(a);
    }
    tx.commit()?;
    session.attachments = leased;

    // Host ports: bound here, recorded, installed once the endpoint exists.
    let primary = &session.attachments[0];
    let specs = port_specs(hc, c.def.config.exposed_ports.as_ref())?;
    if !specs.is_empty() && !primary.network.internal {
        let tx = engine.store.db().write()?;
        let taken = other_bindings(&tx, &c.id)?;
        let reservation = ports::reserve(&specs, &taken)?;
        for b in &reservation.bindings {
            tx.execute(
                "INSERT INTO container_ports (container_id, host_ip, host_port, container_port, protocol) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    c.id,
                    b.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    b.host_port,
                    b.container_port,
                    b.protocol.as_str()
                ],
            )
            .map_err(|e| match e {
                quai_db::rusqlite::Error::SqliteFailure(f, _)
                    if f.code == quai_db::rusqlite::ErrorCode::ConstraintViolation =>
                {
                    EngineError::from(quai_net::NetError::PortAllocated {
                        addr: b.host_address(),
                    })
                }
                other => other.into(),
            })?;
        }
        tx.commit()?;
        session.bindings = reservation.bindings.clone();
        session.reservation = Some(reservation);
    }

    for a in &session.attachments {
        refresh_dns(engine.store.db().conn(), &engine.paths, &a.network)?;
    }

    let own: Vec<IpAddr> = session
        .attachments
        .iter()
        .flat_map(|a| a.ipv4.into_iter().chain(a.ipv6))
        .collect();
    let gateway = primary.network.ipv4.as_ref().map(|s| s.gateway);
    let extra = extra_hosts(hc, gateway)?;
    session.hosts = Some(hosts::render(
        &c.def.config.hostname,
        Some(&c.def.config.domainname),
        &own,
        &extra,
    ));
    session.resolv_conf = Some(resolv_conf_of_attachments(hc, &session.attachments)?);
    Ok(())
}

/// `/etc/resolv.conf` of a container holding leases on `leased`: the DNS
/// server of its first user network, else the host's resolvers.
fn resolv_conf_of_attachments(hc: &HostConfig, leased: &[Attachment]) -> Result<String> {
    let dns_server = leased
        .iter()
        .find(|a| a.network.has_dns())
        .and_then(|a| a.network.subnets().next().map(|s| s.gateway));
    let ipv6 = leased.iter().any(|a| a.ipv6.is_some());
    resolv_conf_for(hc, dns_server, ipv6)
}

fn used_addresses(conn: &Connection, network_id: &str, except: &str) -> Result<Vec<IpAddr>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ipv4, ipv6 FROM container_networks WHERE network_id = ?1 AND container_id != ?2 \
         AND (ipv4 IS NOT NULL OR ipv6 IS NOT NULL)",
    )?;
    let rows: Vec<(Option<String>, Option<String>)> = stmt
        .query_map([network_id, except], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .flat_map(|(a, b)| [a, b])
        .flatten()
        .filter_map(|a| a.parse().ok())
        .collect())
}

fn other_bindings(conn: &Connection, except: &str) -> Result<Vec<PortBinding>> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT container_id FROM container_ports WHERE container_id != ?1",
        )?
        .query_map([except], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for id in ids {
        out.extend(published(conn, &id)?);
    }
    Ok(out)
}

impl Session {
    /// Step 2: the container process `pid` exists (created, not started).
    pub fn attach(&mut self, engine: &mut Engine, pid: i32) -> Result<()> {
        if self.attachments.is_empty() {
            return Ok(());
        }
        let ns_path = format!("/proc/{pid}/ns/net");
        let netns = rustix::fs::open(
            ns_path.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .at("open", Path::new(&ns_path))?;
        let driver = driver(&engine.paths)?;
        for a in &mut self.attachments {
            let mac = match a.settings.mac_address.as_str() {
                "" => None,
                m => Some(quai_net::ipam::parse_mac(m)?),
            };
            let endpoint = driver.attach(
                &a.network,
                &EndpointRequest {
                    container_id: self.container_id.clone(),
                    ifname: format!("eth{}", a.position),
                    ipv4: a.ipv4,
                    ipv6: a.ipv6,
                    mac,
                },
                netns.as_fd(),
            )?;
            let json = serde_json::to_string(&endpoint)
                .map_err(|e| EngineError::invalid(format!("encode endpoint: {e}")))?;
            engine.conn().execute(
                "UPDATE container_networks SET endpoint = ?3 WHERE container_id = ?1 AND network_id = ?2",
                params![self.container_id, a.network.id, json],
            )?;
            a.endpoint = Some(endpoint);
        }
        let primary = &self.attachments[0];
        if let Some(endpoint) = &primary.endpoint {
            driver.publish(&primary.network, endpoint, &self.bindings)?;
        }
        self.relay = self.start_loopback6_relay()?;
        Ok(())
    }

    /// docker-proxy's part that the kernel cannot do: `[::1]:PORT`, relayed
    /// to the container's IPv6 address (its IPv4 one on an IPv4 network).
    fn start_loopback6_relay(&self) -> Result<Option<quai_net::relay::Relay>> {
        let (Some(reservation), Some(primary)) = (&self.reservation, self.attachments.first())
        else {
            return Ok(None);
        };
        let Some(endpoint) = &primary.endpoint else {
            return Ok(None);
        };
        let Some(target) = endpoint.ipv6.or(endpoint.ipv4).map(|net| net.addr()) else {
            return Ok(None);
        };
        let routes: Vec<_> = reservation
            .loopback6_sockets()
            .into_iter()
            .map(|(socket, binding)| (socket, SocketAddr::new(target, binding.container_port)))
            .collect();
        if routes.is_empty() || primary.network.internal {
            return Ok(None);
        }
        let quai = quai_exe()?;
        let relay = in_host_mount_namespace(|| quai_net::relay::Relay::spawn(&quai, &routes))??;
        Ok(Some(relay))
    }
}

/// Step 3: releases everything container `id` holds on its networks:
/// published ports, veth pairs, leases, DNS records. Nothing to do (and no
/// system call made) when it holds nothing.
pub fn teardown(conn: &Connection, paths: &Paths, id: &str) -> Result<()> {
    release(conn, paths, id, true)
}

/// `teardown` for a container whose processes are all gone (its monitor
/// saw it exit and reaped it): its network namespace dies with them unless
/// another running container joined it, and the kernel then deletes the
/// veths itself, off the critical path. Deleting one here costs ~20 ms
/// (RCU grace periods in `unregister_netdevice`) that `run --rm` and
/// `stop` would wait for. With a joiner left, they are deleted here, as
/// docker does: the lease is given back, so nobody may keep the address.
pub fn teardown_exited(engine: &mut Engine, c: &Container) -> Result<()> {
    let delete_veths = has_running_joiners(engine.conn(), c)?;
    release(engine.store.db().conn(), &engine.paths, &c.id, delete_veths)
}

/// Whether a running container shares `c`'s network namespace
/// (`--network container:<c>`).
fn has_running_joiners(conn: &Connection, c: &Container) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT config FROM containers WHERE id != ?1 \
         AND status IN ('running', 'paused', 'restarting') AND config LIKE '%container:%'",
    )?;
    let configs: Vec<String> = stmt
        .query_map([&c.id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(configs.iter().any(|config| {
        serde_json::from_str::<record::Definition>(config)
            .ok()
            .and_then(|def| {
                def.host_config
                    .network_mode
                    .strip_prefix("container:")
                    .map(|target| target == c.name || c.id.starts_with(target))
            })
            .unwrap_or(false)
    }))
}

fn release(conn: &Connection, paths: &Paths, id: &str, delete_veths: bool) -> Result<()> {
    let all = attachments(conn, id)?;
    // Ports are published on the first network only.
    let primary_endpoint = all.first().and_then(|a| a.endpoint.clone());
    let held: Vec<Attachment> = all
        .into_iter()
        .filter(|a| a.ipv4.is_some() || a.ipv6.is_some() || a.endpoint.is_some())
        .collect();
    let has_ports = conn
        .prepare_cached("SELECT 1 FROM container_ports WHERE container_id = ?1")?
        .exists([id])?;
    if held.is_empty() && !has_ports {
        return Ok(());
    }
    let driver = driver(paths)?;
    if has_ports {
        match &primary_endpoint {
            // What was published is known: one nft run instead of three.
            Some(endpoint) => driver.unpublish_bindings(endpoint, &published(conn, id)?)?,
            None => driver.unpublish(id)?,
        }
    }
    // By name, endpoint recorded or not: a monitor killed inside attach
    // leaves a veth with no row saying so.
    if delete_veths {
        for a in &held {
            driver.detach(&a.network, id)?;
        }
    }
    let tx = conn.unchecked_transaction()?;
    tx.execute("DELETE FROM container_ports WHERE container_id = ?1", [id])?;
    tx.execute(
        "UPDATE container_networks SET ipv4 = NULL, ipv6 = NULL, endpoint = NULL WHERE container_id = ?1",
        [id],
    )?;
    tx.commit()?;
    for a in &held {
        refresh_dns(conn, paths, &a.network)?;
    }
    Ok(())
}

impl Engine {
    /// Releases the networking of container `id` if it holds some without
    /// running (its monitor was killed): repairs it first, under its lock
    /// when nobody else holds it.
    pub fn reclaim_container_network(&mut self, id: &str) -> Result<()> {
        let c = match self.container(id) {
            Ok(c) => c,
            Err(EngineError::NoSuchContainer(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if c.state.status.is_active() {
            return Ok(());
        }
        if let Some(_lock) = ContainerLock::try_acquire(&self.paths, &c.id)? {
            teardown(self.store.db().conn(), &self.paths, &c.id)?;
        }
        Ok(())
    }

    /// Kernel leftovers of containers the database no longer has (a CLI or
    /// monitor killed mid-way): veths and published ports.
    pub fn reclaim_networking(&mut self) -> Result<quai_net::Reclaimed> {
        let nets: Vec<Network> = networks::all(self.conn())?
            .into_iter()
            .map(|r| r.net)
            .collect();
        if nets.is_empty() {
            return Ok(Default::default());
        }
        let alive: HashSet<String> = self
            .conn()
            .prepare("SELECT id FROM containers")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(driver(&self.paths)?.reclaim(&nets, &alive)?)
    }
}

impl Engine {
    /// Host ports published by a container while it runs (`quai port`).
    pub fn published_ports(&mut self, name_or_id: &str) -> Result<Vec<PortBinding>> {
        let c = self.container(name_or_id)?;
        published(self.conn(), &c.id)
    }

    /// `network connect`: the container joins `network`, at once when it
    /// runs (a new interface `ethN`), else at its next start.
    pub fn network_connect(
        &mut self,
        network: &str,
        container: &str,
        settings: &EndpointSettings,
    ) -> Result<()> {
        let rec = self.network_get(network)?;
        let (_lock, c) = self.locked(container)?;
        let mode = c.def.host_config.network_mode.as_str();
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            return Err(EngineError::conflict(format!(
                "container {} uses network mode {mode}: it cannot be connected to other networks",
                c.name
            )));
        }
        crate::create::check_endpoint(mode, !rec.net.is_default, &c.def.config, settings)?;
        if attachments(self.conn(), &c.id)?
            .iter()
            .any(|a| a.network.id == rec.net.id)
        {
            return Err(EngineError::conflict(format!(
                "endpoint with name {} already exists in network {}",
                c.name, rec.net.name
            )));
        }
        add_attachment(self.conn(), &c.id, &rec.net, settings)?;
        if c.state.status != record::Status::Running || c.state.pid <= 0 {
            return Ok(());
        }
        let result = self.attach_running(&c, &rec.net);
        if result.is_err() {
            let _ = self.drop_attachment(&c, &rec.net);
        }
        result
    }

    fn attach_running(&mut self, c: &Container, network: &Network) -> Result<()> {
        driver(&self.paths)?.ensure_network(network)?;
        let a = attachments(self.conn(), &c.id)?
            .into_iter()
            .find(|a| a.network.id == network.id)
            .ok_or_else(|| EngineError::NoSuchNetwork(network.name.clone()))?;
        let tx = self.store.db().write()?;
        let used = used_addresses(&tx, &network.id, &c.id)?;
        let ipam = a.settings.ipam_config.clone().unwrap_or_default();
        let parse = |s: &str| (!s.is_empty()).then(|| s.parse::<IpAddr>().ok()).flatten();
        let (v4, v6) = quai_net::allocate_addresses(
            network,
            &used,
            parse(&ipam.ipv4_address),
            parse(&ipam.ipv6_address),
        )?;
        tx.execute(
            "UPDATE container_networks SET ipv4 = ?3, ipv6 = ?4 WHERE container_id = ?1 AND network_id = ?2",
            params![c.id, network.id, v4.map(|a| a.to_string()), v6.map(|a| a.to_string())],
        )?;
        tx.commit()?;
        let mut session = Session {
            container_id: c.id.clone(),
            attachments: vec![Attachment {
                ipv4: v4,
                ipv6: v6,
                ..a
            }],
            ..Default::default()
        };
        session.attach(self, c.state.pid)?;
        let own: Vec<IpAddr> = v4.into_iter().chain(v6).collect();
        edit_in_place(&self.paths.hosts_path(&c.id), |text| {
            let mut text = text.to_string();
            for ip in &own {
                text.push_str(&format!("{ip}\t{}\n", c.def.config.hostname));
            }
            text
        })?;
        self.refresh_resolv_conf(c)?;
        refresh_dns(self.store.db().conn(), &self.paths, network)
    }

    /// Rewrites a running container's `/etc/resolv.conf` (in place: it is
    /// bind-mounted) for the networks it holds leases on now, as docker
    /// does on `network connect`/`disconnect`.
    fn refresh_resolv_conf(&mut self, c: &Container) -> Result<()> {
        let leased: Vec<Attachment> = attachments(self.conn(), &c.id)?
            .into_iter()
            .filter(|a| a.ipv4.is_some() || a.ipv6.is_some())
            .collect();
        let text = resolv_conf_of_attachments(&c.def.host_config, &leased)?;
        edit_in_place(&self.paths.resolv_conf_path(&c.id), |_| text)
    }

    /// Removes the container's attachment to `network`, releasing what it
    /// holds there.
    fn drop_attachment(&mut self, c: &Container, network: &Network) -> Result<()> {
        let id = c.id.as_str();
        let held = attachments(self.conn(), id)?
            .into_iter()
            .find(|a| a.network.id == network.id);
        let was_live = held.as_ref().is_some_and(|a| a.endpoint.is_some());
        if let Some(a) = &held {
            if a.endpoint.is_some() {
                driver(&self.paths)?.detach(network, id)?;
                let gone: Vec<String> = a
                    .ipv4
                    .into_iter()
                    .chain(a.ipv6)
                    .map(|ip| format!("{ip}\t"))
                    .collect();
                edit_in_place(&self.paths.hosts_path(id), |text| {
                    text.lines()
                        .filter(|l| !gone.iter().any(|g| l.starts_with(g.as_str())))
                        .map(|l| format!("{l}\n"))
                        .collect()
                })?;
            }
        }
        self.conn().execute(
            "DELETE FROM container_networks WHERE container_id = ?1 AND network_id = ?2",
            [id, &network.id],
        )?;
        if was_live {
            self.refresh_resolv_conf(c)?;
        }
        refresh_dns(self.store.db().conn(), &self.paths, network)
    }

    /// `network disconnect`.
    pub fn network_disconnect(
        &mut self,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<()> {
        let rec = self.network_get(network)?;
        let (_lock, c) = match self.locked(container) {
            Ok(found) => found,
            // docker's --force: the endpoint goes even without a container.
            Err(EngineError::NoSuchContainer(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        if !attachments(self.conn(), &c.id)?
            .iter()
            .any(|a| a.network.id == rec.net.id)
        {
            return Err(EngineError::conflict(format!(
                "container {} is not connected to network {}",
                c.id, rec.net.name
            )));
        }
        self.drop_attachment(&c, &rec.net)
    }
}

/// Rewrites a running container's `/etc/hosts` or `/etc/resolv.conf` in
/// place: they are bind-mounted, so a new file (rename) would not be seen
/// inside. The file is overwritten, then cut to length (not truncated
/// first): a reader inside never sees it empty. A crash mid-way leaves a
/// file the next start regenerates.
fn edit_in_place(path: &Path, edit: impl FnOnce(&str) -> String) -> Result<()> {
    use std::io::Write;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at("read", path),
    };
    let new = edit(&text);
    if new == text {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .at("open", path)?;
    file.write_all(new.as_bytes()).at("write", path)?;
    file.set_len(new.len() as u64).at("write", path)
}

/// `ps`'s PORTS column: published ports as `0.0.0.0:8080->80/tcp`, then
/// exposed ports that are not published as `80/tcp`, docker's way.
pub fn ports_column(bindings: &[PortBinding], c: &Container) -> String {
    let mut parts: Vec<String> = Vec::new();
    for b in bindings {
        let host = match b.host_ip {
            None => format!("0.0.0.0:{}", b.host_port),
            Some(ip) => SocketAddr::new(ip, b.host_port).to_string(),
        };
        parts.push(format!("{host}->{}/{}", b.container_port, b.protocol));
        if b.host_ip.is_none() {
            parts.push(format!(
                "[::]:{}->{}/{}",
                b.host_port, b.container_port, b.protocol
            ));
        }
    }
    for port in c.def.config.exposed_ports.iter().flat_map(|m| m.keys()) {
        let published = bindings
            .iter()
            .any(|b| format!("{}/{}", b.container_port, b.protocol) == *port);
        if !published {
            parts.push(port.clone());
        }
    }
    parts.join(", ")
}

impl Engine {
    /// docker's `NetworkSettings` of a container.
    pub fn network_settings(&mut self, c: &Container) -> Result<serde_json::Value> {
        use serde_json::{json, Map, Value};
        let bindings = published(self.conn(), &c.id)?;
        let mut ports = Map::new();
        for port in c.def.config.exposed_ports.iter().flat_map(|m| m.keys()) {
            ports.insert(port.clone(), Value::Null);
        }
        for b in &bindings {
            let key = format!("{}/{}", b.container_port, b.protocol);
            let hosts: Vec<(String, u16)> = match b.host_ip {
                None => vec![("0.0.0.0".into(), b.host_port), ("::".into(), b.host_port)],
                Some(ip) => vec![(ip.to_string(), b.host_port)],
            };
            let entry = ports.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if entry.is_null() {
                *entry = Value::Array(Vec::new());
            }
            if let Value::Array(list) = entry {
                for (ip, port) in hosts {
                    list.push(json!({"HostIp": ip, "HostPort": port.to_string()}));
                }
            }
        }
        let mut networks = Map::new();
        let mut top = json!({
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": if c.state.pid > 0 { format!("/proc/{}/ns/net", c.state.pid) } else { String::new() },
            "Ports": ports,
        });
        let mode = c.def.host_config.network_mode.as_str();
        let empty_endpoint = |network_id: String| {
            json!({
                "IPAMConfig": Value::Null, "Links": Value::Null, "Aliases": Value::Null,
                "MacAddress": "", "NetworkID": network_id, "EndpointID": "", "Gateway": "",
                "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "DNSNames": Value::Null,
            })
        };
        if mode == "host" || mode == "none" {
            networks.insert(mode.to_string(), empty_endpoint(String::new()));
        }
        for a in attachments(self.conn(), &c.id)? {
            let mut v = empty_endpoint(a.network.id.clone());
            v["IPAMConfig"] = serde_json::to_value(&a.settings.ipam_config).unwrap_or(Value::Null);
            if let Some(aliases) = &a.settings.aliases {
                v["Aliases"] = json!(aliases);
            }
            if let Some(ep) = &a.endpoint {
                v["MacAddress"] = json!(ep.mac);
                v["EndpointID"] = json!(networks::endpoint_id(ep));
                if let Some(n) = ep.ipv4 {
                    v["IPAddress"] = json!(n.addr().to_string());
                    v["IPPrefixLen"] = json!(n.prefix_len());
                }
                if let Some(g) = ep.gateway4 {
                    v["Gateway"] = json!(g.to_string());
                }
                if let Some(n) = ep.ipv6 {
                    v["GlobalIPv6Address"] = json!(n.addr().to_string());
                    v["GlobalIPv6PrefixLen"] = json!(n.prefix_len());
                }
                if let Some(g) = ep.gateway6 {
                    v["IPv6Gateway"] = json!(g.to_string());
                }
                if a.network.has_dns() {
                    let mut names = vec![c.name.clone()];
                    names.extend(a.settings.aliases.clone().unwrap_or_default());
                    names.push(c.short_id().to_string());
                    v["DNSNames"] = json!(names);
                }
            }
            if a.network.is_default {
                // docker's deprecated top-level fields, still read by scripts.
                for key in [
                    "EndpointID",
                    "Gateway",
                    "GlobalIPv6Address",
                    "GlobalIPv6PrefixLen",
                    "IPAddress",
                    "IPPrefixLen",
                    "IPv6Gateway",
                    "MacAddress",
                ] {
                    top[key] = v[key].clone();
                }
            }
            networks.insert(a.network.name.clone(), v);
        }
        top["Networks"] = Value::Object(networks);
        Ok(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PortBinding as Requested;

    fn hc_with(bindings: &[(&str, &str, &str)]) -> HostConfig {
        let mut map = std::collections::BTreeMap::new();
        for (port, ip, host_port) in bindings {
            map.entry(port.to_string())
                .or_insert_with(Vec::new)
                .push(Requested {
                    host_ip: ip.to_string(),
                    host_port: host_port.to_string(),
                });
        }
        HostConfig {
            port_bindings: Some(map),
            ..Default::default()
        }
    }

    #[test]
    fn port_bindings_become_specs() {
        let hc = hc_with(&[
            ("80/tcp", "", "8080"),
            ("53/udp", "127.0.0.1", ""),
            ("81/tcp", "", "9000-9010"),
        ]);
        let specs = port_specs(&hc, None).unwrap();
        assert_eq!(specs.len(), 3);
        let by_port = |p: u16| specs.iter().find(|s| s.container_port == p).unwrap();
        assert_eq!(by_port(80).host_ports, Some((8080, 8080)));
        assert_eq!(by_port(53).protocol, Protocol::Udp);
        assert_eq!(by_port(53).host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(by_port(53).host_ports, None);
        assert_eq!(by_port(81).host_ports, Some((9000, 9010)));
        for (bad, message) in [
            (("80/tcp", "", "x"), "Invalid hostPort: x"),
            (("80/tcp", "nope", "1"), "Invalid ip address: nope"),
            (("80/tcp", "", "20-10"), "Invalid hostPort: 20-10"),
        ] {
            let err = port_specs(&hc_with(&[bad]), None).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
    }

    #[test]
    fn publish_all_adds_exposed_ports_not_bound() {
        let mut hc = hc_with(&[("80/tcp", "", "8080")]);
        hc.publish_all_ports = true;
        let exposed: std::collections::BTreeMap<String, serde_json::Value> = [
            ("80/tcp".to_string(), serde_json::json!({})),
            ("443/tcp".to_string(), serde_json::json!({})),
        ]
        .into();
        let specs = port_specs(&hc, Some(&exposed)).unwrap();
        assert_eq!(specs.len(), 2);
        let random = specs.iter().find(|s| s.container_port == 443).unwrap();
        assert_eq!(random.host_ports, None);
    }

    #[test]
    fn dns_flags_are_checked() {
        let hc = HostConfig {
            dns: Some(vec!["not-an-ip".into()]),
            ..Default::default()
        };
        assert_eq!(
            dns_overrides(&hc).unwrap_err().to_string(),
            "not-an-ip is not an ip address"
        );
        let hc = HostConfig {
            extra_hosts: Some(vec!["nocolon".into()]),
            ..Default::default()
        };
        assert!(extra_hosts(&hc, None).is_err());
    }
}
