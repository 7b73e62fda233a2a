//! The server loop: blocking sockets and a few threads. A network's DNS
//! traffic is tiny, so threads beat an async runtime on start-up time,
//! memory and compile time.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{DnsConfig, DnsRecord};
use crate::error::{NetError, Result};

/// Answers about containers may change at any time: keep caches short.
const TTL: u32 = 600;
/// Each upstream gets this long before the next one is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the server checks whether its configuration is gone.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// Forwarded queries in flight at once; more get SERVFAIL.
const MAX_IN_FLIGHT: usize = 256;
/// Largest UDP answer without EDNS (RFC 1035).
const CLASSIC_UDP_LIMIT: usize = 512;
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Identity of the configuration file: a rename puts a new inode there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    modified: i64,
    modified_nanos: i64,
    size: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        inode: meta.ino(),
        modified: meta.mtime(),
        modified_nanos: meta.mtime_nsec(),
        size: meta.size(),
    })
}

/// What the server answers from, rebuilt on each configuration change.
struct Zone {
    network: String,
    by_name: HashMap<String, usize>,
    by_address: HashMap<IpAddr, usize>,
    records: Vec<DnsRecord>,
    upstreams: Vec<SocketAddr>,
}

impl Zone {
    fn new(config: DnsConfig) -> Zone {
        let network = config.network.to_ascii_lowercase();
        let mut by_name = HashMap::new();
        let mut by_address = HashMap::new();
        for (index, record) in config.records.iter().enumerate() {
            for name in &record.names {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                by_name.insert(format!("{name}.{network}"), index);
                by_name.insert(name, index);
            }
            if let Some(v4) = record.ipv4 {
                by_address.insert(IpAddr::V4(v4), index);
            }
            if let Some(v6) = record.ipv6 {
                by_address.insert(IpAddr::V6(v6), index);
            }
        }
        Zone {
            network,
            by_name,
            by_address,
            records: config.records,
            upstreams: config.upstreams,
        }
    }

    /// The container id of the member at `client`, if known.
    fn container_at(&self, client: IpAddr) -> Option<&str> {
        let record = &self.records[*self.by_address.get(&client)?];
        (!record.container.is_empty()).then_some(record.container.as_str())
    }

    fn has_member(&self, container: &str) -> bool {
        self.records.iter().any(|r| r.container == container)
    }

    /// Upstreams for a query from `client`: its own `--dns`, else the
    /// network's.
    fn upstreams_for(&self, client: IpAddr) -> Vec<SocketAddr> {
        self.by_address
            .get(&client)
            .map(|&i| &self.records[i].upstreams)
            .filter(|u| !u.is_empty())
            .unwrap_or(&self.upstreams)
            .clone()
    }
}

struct Shared {
    path: PathBuf,
    state: RwLock<(Option<FileStamp>, Arc<Zone>)>,
    in_flight: AtomicUsize,
    /// The other networks' configurations (same directory), by path.
    siblings: Mutex<HashMap<PathBuf, (FileStamp, Arc<Zone>)>>,
}

impl Shared {
    /// The zone, reloaded first if the file changed since the last query.
    fn zone(&self) -> Arc<Zone> {
        let current = stamp(&self.path);
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if state.0 == current || current.is_none() {
                return state.1.clone();
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match DnsConfig::load(&self.path) {
            Ok(config) => *state = (current, Arc::new(Zone::new(config))),
            // Keep answering from the last good file.
            Err(e) => tracing::warn!(error = %e, "cannot reload DNS configuration"),
        }
        state.1.clone()
    }
}

impl Shared {
    /// Zones of the other user networks, reloaded when their files change:
    /// only read for a name this network does not know.
    fn sibling_zones(&self) -> Vec<Arc<Zone>> {
        let Some(dir) = self.path.parent() else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut cache = self.siblings.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path == self.path || path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Some(current) = stamp(&path) else {
                continue;
            };
            let fresh = cache.get(&path).is_some_and(|(s, _)| *s == current);
            if !fresh {
                match DnsConfig::load(&path) {
                    Ok(config) => {
                        cache.insert(path.clone(), (current, Arc::new(Zone::new(config))));
                    }
                    // Half-written files never exist (atomic renames); a
                    // foreign file is simply not a zone.
                    Err(_) => continue,
                }
            }
            seen.push(path);
        }
        cache.retain(|path, _| seen.contains(path));
        cache.values().map(|(_, zone)| zone.clone()).collect()
    }
}

/// What to do with a query.
enum Answer {
    Reply(Vec<u8>),
    Forward(Vec<SocketAddr>),
    Ignore,
}

/// Runs the server of the configuration at `config_path` until the file is
/// removed. `ready` is called once every socket listens.
pub fn serve(config_path: &Path, ready: impl FnOnce()) -> Result<()> {
    let config = DnsConfig::load(config_path)?;
    let port = config.port;
    let listen = config.listen.clone();
    if listen.is_empty() {
        return Err(NetError::InvalidConfig(format!(
            "DNS configuration {} has no address to listen on",
            config_path.display()
        )));
    }
    let shared = Arc::new(Shared {
        path: config_path.to_owned(),
        state: RwLock::new((stamp(config_path), Arc::new(Zone::new(config)))),
        in_flight: AtomicUsize::new(0),
        siblings: Mutex::new(HashMap::new()),
    });

    // Bind everything before serving anything: a server that cannot listen
    // everywhere fails at start, where the engine sees it.
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    for address in &listen {
        let socket_address = SocketAddr::new(*address, port);
        udp.push(
            UdpSocket::bind(socket_address)
                .map_err(|e| NetError::io(format!("listen on udp {socket_address}"), e))?,
        );
        tcp.push(
            TcpListener::bind(socket_address)
                .map_err(|e| NetError::io(format!("listen on tcp {socket_address}"), e))?,
        );
    }
    for socket in udp {
        let shared = shared.clone();
        std::thread::spawn(move || serve_udp(Arc::new(socket), shared));
    }
    for listener in tcp {
        let shared = shared.clone();
        std::thread::spawn(move || serve_tcp(listener, shared));
    }
    let pid_path = super::process::pid_file(config_path);
    super::write_atomically(
        &pid_path,
        format!("{}\n", std::process::id()).as_bytes(),
        "write DNS server pid file",
    )?;
    ready();
    while config_path.exists() {
        std::thread::sleep(WATCH_INTERVAL);
    }
    let _ = std::fs::remove_file(&pid_path);
    tracing::info!(config = %config_path.display(), "DNS configuration removed: exiting");
    Ok(())
}

fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let (size, client) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(e) => {
                tracing::warn!(error = %e, "udp receive failed");
                continue;
            }
        };
        let query = buffer[..size].to_vec();
        let siblings = || shared.sibling_zones();
        match answer_in(&shared.zone(), &siblings, &query, client.ip(), true) {
            Answer::Reply(bytes) => {
                let _ = socket.send_to(&bytes, client);
            }
            Answer::Ignore => {}
            Answer::Forward(upstreams) => {
                let Some(guard) = InFlight::acquire(&shared) else {
                    if let Some(bytes) = failure(&query, ResponseCode::ServFail) {
                        let _ = socket.send_to(&bytes, client);
                    }
                    continue;
                };
                let socket = socket.clone();
                std::thread::spawn(move || {
                    let _guard = guard;
                    let reply = forward_udp(&query, &upstreams)
                        .or_else(|| failure(&query, ResponseCode::ServFail));
                    if let Some(bytes) = reply {
                        let _ = socket.send_to(&bytes, client);
                    }
                });
            }
        }
    }
}

fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let Some(guard) = InFlight::acquire(&shared) else {
            continue;
        };
        let shared = shared.clone();
        std::thread::spawn(move || {
            let _guard = guard;
            let _ = serve_tcp_connection(stream, &shared);
        });
    }
}

fn serve_tcp_connection(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(TCP_IDLE))?;
    let client = stream.peer_addr()?.ip();
    while let Some(query) = read_framed(&mut stream)? {
        let siblings = || shared.sibling_zones();
        let reply = match answer_in(&shared.zone(), &siblings, &query, client, false) {
            Answer::Reply(bytes) => Some(bytes),
            Answer::Ignore => None,
            Answer::Forward(upstreams) => {
                forward_tcp(&query, &upstreams).or_else(|| failure(&query, ResponseCode::ServFail))
            }
        };
        match reply {
            Some(bytes) => write_framed(&mut stream, &bytes)?,
            None => return Ok(()),
        }
    }
    Ok(())
}

/// Counts forwarded queries in flight, so a flood cannot spawn unbounded
/// threads.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn acquire(shared: &Arc<Shared>) -> Option<InFlight> {
        let before = shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= MAX_IN_FLIGHT {
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(shared.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Decides how to answer one query, from `zone` alone.
#[cfg(test)]
fn answer(zone: &Zone, query: &[u8], client: IpAddr, udp: bool) -> Answer {
    answer_in(zone, &Vec::new, query, client, udp)
}

/// Decides how to answer one query: from `zone`, then from the zones of
/// the other networks (`others`, asked only on a miss) that the client's
/// container is a member of.
fn answer_in(
    zone: &Zone,
    others: &dyn Fn() -> Vec<Arc<Zone>>,
    query: &[u8],
    client: IpAddr,
    udp: bool,
) -> Answer {
    let Ok(request) = Message::from_vec(query) else {
        return match failure(query, ResponseCode::FormErr) {
            Some(bytes) => Answer::Reply(bytes),
            None => Answer::Ignore,
        };
    };
    if request.metadata.message_type != MessageType::Query {
        return Answer::Ignore;
    }
    let Some(question) = request
        .queries
        .first()
        .filter(|_| request.queries.len() == 1)
    else {
        return reply_code(&request, ResponseCode::FormErr);
    };
    if request.metadata.op_code != OpCode::Query {
        return reply_code(&request, ResponseCode::NotImp);
    }
    // Only the network's own containers may ask: the server listens on a
    // host address that other networks' containers could otherwise reach.
    if !zone.by_address.contains_key(&client) {
        return reply_code(&request, ResponseCode::Refused);
    }
    let name = question
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let kind = question.query_type();

    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_query(question.clone());

    let mut found = zone.by_name.get(&name).map(|&i| &zone.records[i]);
    let other_zones;
    if found.is_none() {
        if let Some(container) = zone.container_at(client) {
            other_zones = others();
            found = other_zones
                .iter()
                .filter(|z| z.has_member(container))
                .find_map(|z| z.by_name.get(&name).map(|&i| &z.records[i]));
        }
    }
    if let Some(record) = found {
        response.metadata.authoritative = true;
        let owner = question.name().clone();
        if matches!(kind, RecordType::A | RecordType::ANY) {
            if let Some(v4) = record.ipv4 {
                response.add_answer(Record::from_rdata(owner.clone(), TTL, RData::A(A(v4))));
            }
        }
        if matches!(kind, RecordType::AAAA | RecordType::ANY) {
            if let Some(v6) = record.ipv6 {
                response.add_answer(Record::from_rdata(owner, TTL, RData::AAAA(AAAA(v6))));
            }
        }
        // A known name without the asked type: NOERROR with no answer,
        // never a forward that could leak the container's name.
        return encode(&response, &request, udp);
    }

    if kind == RecordType::PTR {
        if let Some(address) = reverse_address(&name) {
            if let Some(&index) = zone.by_address.get(&address) {
                let record = &zone.records[index];
                let Some(first) = record.names.first() else {
                    return encode(&response, &request, udp);
                };
                let target = format!("{}.{}.", first.trim_end_matches('.'), zone.network);
                if let Ok(target) = Name::from_ascii(&target) {
                    response.metadata.authoritative = true;
                    response.add_answer(Record::from_rdata(
                        question.name().clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    ));
                    return encode(&response, &request, udp);
                }
            }
        }
    }

    let upstreams = zone.upstreams_for(client);
    if upstreams.is_empty() {
        return reply_code(&request, ResponseCode::ServFail);
    }
    Answer::Forward(upstreams)
}

fn encode(response: &Message, request: &Message, udp: bool) -> Answer {
    let Ok(bytes) = response.to_vec() else {
        return reply_code(request, ResponseCode::ServFail);
    };
    let limit = request
        .edns
        .as_ref()
        .map(|e| usize::from(e.max_payload()).max(CLASSIC_UDP_LIMIT))
        .unwrap_or(CLASSIC_UDP_LIMIT);
    if udp && bytes.len() > limit {
        if let Ok(truncated) = response.truncate().to_vec() {
            return Answer::Reply(truncated);
        }
    }
    Answer::Reply(bytes)
}

fn reply_code(request: &Message, code: ResponseCode) -> Answer {
    let mut response = Message::error_msg(request.metadata.id, request.metadata.op_code, code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    for query in &request.queries {
        response.add_query(query.clone());
    }
    match response.to_vec() {
        Ok(bytes) => Answer::Reply(bytes),
        Err(_) => Answer::Ignore,
    }
}

/// An error answer built from the raw query's id (for queries that do not
/// parse, or whose forward failed).
fn failure(query: &[u8], code: ResponseCode) -> Option<Vec<u8>> {
    if let Ok(request) = Message::from_vec(query) {
        return match reply_code(&request, code) {
            Answer::Reply(bytes) => Some(bytes),
            _ => None,
        };
    }
    if query.len() < 2 {
        return None;
    }
    let id = u16::from_be_bytes([query[0], query[1]]);
    Message::error_msg(id, OpCode::Query, code).to_vec().ok()
}

/// `4.3.2.1.in-addr.arpa` → 1.2.3.4; nibbles of `ip6.arpa` → IPv6.
fn reverse_address(name: &str) -> Option<IpAddr> {
    if let Some(labels) = name.strip_suffix(".in-addr.arpa") {
        let octets: Vec<u8> = labels
            .split('.')
            .rev()
            .map(|l| l.parse().ok())
            .collect::<Option<_>>()?;
        let octets: [u8; 4] = octets.try_into().ok()?;
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    if let Some(labels) = name.strip_suffix(".ip6.arpa") {
        let nibbles: Vec<u8> = labels
            .split('.')
            .rev()
            .map(|l| u8::from_str_radix(l, 16).ok().filter(|_| l.len() == 1))
            .collect::<Option<_>>()?;
        if nibbles.len() != 32 {
            return None;
        }
        let value = nibbles
            .iter()
            .fold(0u128, |acc, n| (acc << 4) | u128::from(*n));
        return Some(IpAddr::V6(Ipv6Addr::from(value)));
    }
    None
}

fn forward_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let local: SocketAddr = if upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(socket) = UdpSocket::bind(local) else {
            continue;
        };
        if socket.connect(upstream).is_err()
            || socket.set_read_timeout(Some(UPSTREAM_TIMEOUT)).is_err()
            || socket.send(query).is_err()
        {
            continue;
        }
        let mut buffer = vec![0u8; 65535];
        // Only the answer to this query (same id) counts.
        while let Ok(size) = socket.recv(&mut buffer) {
            if size >= 2 && query.len() >= 2 && buffer[..2] == query[..2] {
                return Some(buffer[..size].to_vec());
            }
        }
    }
    None
}

fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let Ok(mut stream) = TcpStream::connect_timeout(upstream, UPSTREAM_TIMEOUT) else {
            continue;
        };
        if stream.set_read_timeout(Some(UPSTREAM_TIMEOUT)).is_err()
            || write_framed(&mut stream, query).is_err()
        {
            continue;
        }
        if let Ok(Some(reply)) = read_framed(&mut stream) {
            return Some(reply);
        }
    }
    None
}

/// DNS over TCP: each message preceded by its length (RFC 1035 4.2.2).
fn read_framed(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 2];
    match stream.read_exact(&mut length) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message)?;
    Ok(Some(message))
}

fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let length = u16::try_from(message.len())
        .map_err(|_| std::io::Error::other("DNS message longer than 65535 bytes"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn zone() -> Zone {
        Zone::new(DnsConfig {
            network: "Backend".into(),
            listen: vec![],
            port: 53,
            upstreams: vec!["10.0.0.53:53".parse().unwrap()],
            records: vec![
                DnsRecord {
                    names: vec!["web".into(), "www".into(), "0123456789ab".into()],
                    ipv4: Some("172.18.0.2".parse().unwrap()),
                    ipv6: Some("fd00::2".parse().unwrap()),
                    upstreams: vec![],
                    container: String::new(),
                },
                DnsRecord {
                    names: vec!["db".into()],
                    ipv4: Some("172.18.0.3".parse().unwrap()),
                    ipv6: None,
                    upstreams: vec!["192.0.2.53:53".parse().unwrap()],
                    container: String::new(),
                },
            ],
        })
    }

    fn ask(zone: &Zone, name: &str, kind: RecordType, client: &str) -> Answer {
        let mut message = Message::query();
        message.metadata.id = 4242;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        answer(
            zone,
            &message.to_vec().unwrap(),
            client.parse().unwrap(),
            true,
        )
    }

    fn reply(answer: Answer) -> Message {
        match answer {
            Answer::Reply(bytes) => Message::from_vec(&bytes).unwrap(),
            _ => panic!("expected a reply"),
        }
    }

    fn addresses(message: &Message) -> Vec<String> {
        message
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                RData::PTR(p) => p.0.to_ascii(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn names_aliases_short_ids_and_network_suffix() {
        let zone = zone();
        for name in ["web.", "WWW.", "0123456789ab.", "web.backend."] {
            let message = reply(ask(&zone, name, RecordType::A, "172.18.0.3"));
            assert_eq!(message.metadata.id, 4242);
            assert!(message.metadata.authoritative);
            assert_eq!(addresses(&message), ["172.18.0.2"], "{name}");
        }
        let six = reply(ask(&zone, "web.", RecordType::AAAA, "172.18.0.3"));
        assert_eq!(addresses(&six), ["fd00::2"]);
        // Known name, no address of that family: empty NOERROR.
        let none = reply(ask(&zone, "db.", RecordType::AAAA, "172.18.0.3"));
        assert_eq!(none.metadata.response_code, ResponseCode::NoError);
        assert!(none.answers.is_empty());
    }

    #[test]
    fn reverse_lookups() {
        let zone = zone();
        let message = reply(ask(
            &zone,
            "3.0.18.172.in-addr.arpa.",
            RecordType::PTR,
            "172.18.0.3",
        ));
        assert_eq!(addresses(&message), ["db.backend."]);
        assert_eq!(
            reverse_address(
                "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa"
            ),
            Some("fd00::2".parse().unwrap())
        );
        assert!(matches!(
            ask(
                &zone,
                "9.9.9.9.in-addr.arpa.",
                RecordType::PTR,
                "172.18.0.3"
            ),
            Answer::Forward(_)
        ));
    }

    #[test]
    fn other_names_go_upstream_per_container() {
        let zone = zone();
        match ask(&zone, "example.org.", RecordType::A, "172.18.0.2") {
            Answer::Forward(upstreams) => assert_eq!(upstreams, ["10.0.0.53:53".parse().unwrap()]),
            _ => panic!("expected a forward"),
        }
        match ask(&zone, "example.org.", RecordType::A, "172.18.0.3") {
            Answer::Forward(upstreams) => assert_eq!(upstreams, ["192.0.2.53:53".parse().unwrap()]),
            _ => panic!("expected a forward"),
        }
    }

    #[test]
    fn strangers_are_refused() {
        let zone = zone();
        for name in ["web.", "example.org."] {
            let message = reply(ask(&zone, name, RecordType::A, "172.19.0.2"));
            assert_eq!(message.metadata.response_code, ResponseCode::Refused);
            assert!(message.answers.is_empty());
        }
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        let zone = zone();
        match answer(
            &zone,
            &[0x12, 0x34, 0xff],
            "172.18.0.9".parse().unwrap(),
            true,
        ) {
            Answer::Reply(bytes) => {
                let message = Message::from_vec(&bytes).unwrap();
                assert_eq!(message.metadata.id, 0x1234);
                assert_eq!(message.metadata.response_code, ResponseCode::FormErr);
            }
            _ => panic!("expected FORMERR"),
        }
        assert!(matches!(
            answer(&zone, &[1], "172.18.0.9".parse().unwrap(), true),
            Answer::Ignore
        ));
    }

    #[test]
    fn members_of_several_networks_resolve_the_names_of_each() {
        let member = |names: &[&str], ip: &str, container: &str| DnsRecord {
            names: names.iter().map(|n| n.to_string()).collect(),
            ipv4: Some(ip.parse().unwrap()),
            ipv6: None,
            upstreams: vec![],
            container: container.into(),
        };
        let config = |network: &str, records| DnsConfig {
            network: network.into(),
            listen: vec![],
            port: 53,
            upstreams: vec!["10.0.0.53:53".parse().unwrap()],
            records,
        };
        let front = Zone::new(config(
            "front",
            vec![
                member(&["both"], "172.20.0.2", "c-both"),
                member(&["lonely"], "172.20.0.3", "c-lonely"),
            ],
        ));
        let back = Arc::new(Zone::new(config(
            "back",
            vec![
                member(&["both"], "172.21.0.2", "c-both"),
                member(&["db"], "172.21.0.3", "c-db"),
            ],
        )));
        let others = || vec![back.clone()];
        let ask_front = |name: &str, client: &str| {
            let mut message = Message::query();
            message.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
            answer_in(
                &front,
                &others,
                &message.to_vec().unwrap(),
                client.parse().unwrap(),
                true,
            )
        };
        // A member of both networks asks front's server about back's names.
        assert_eq!(
            addresses(&reply(ask_front("db.", "172.20.0.2"))),
            ["172.21.0.3"]
        );
        assert_eq!(
            addresses(&reply(ask_front("db.back.", "172.20.0.2"))),
            ["172.21.0.3"]
        );
        // Its own network's answer wins for a name both have.
        assert_eq!(
            addresses(&reply(ask_front("both.", "172.20.0.2"))),
            ["172.20.0.2"]
        );
        // A member of front only does not see back.
        assert!(matches!(ask_front("db.", "172.20.0.3"), Answer::Forward(_)));
    }
}
