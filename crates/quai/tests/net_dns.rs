//! `quai internal dns-server` against containers in test-made network
//! namespaces: names resolve within a network, not across networks, other
//! names go to an upstream resolver (a fake one on the test host's
//! loopback), and a rewritten records file is used at once.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use quai_net::dns::{spawn_server, stop_server, DnsConfig, DnsRecord};
use quai_net::network::{Network, NetworkRequest, PoolRequest};
use quai_net::{BridgeDriver, EndpointRequest};
use quai_testutil::netns::{random_id, HostNs, Netns, IO_TIMEOUT};
use quai_testutil::{unique_name, TempRoot};

const UPSTREAM_ANSWER: &str = "198.51.100.7";

struct Member {
    ns: Netns,
    ip: IpAddr,
}

fn user_network(driver: &BridgeDriver, name: &str, subnet: &str) -> Network {
    let request = NetworkRequest {
        id: random_id(),
        name: name.into(),
        pools: vec![PoolRequest {
            subnet: subnet.parse().unwrap(),
            gateway: None,
            ip_range: None,
        }],
        ..Default::default()
    };
    let network = Network::create(&request, &[], &driver.host_facts().unwrap()).unwrap();
    driver.ensure_network(&network).unwrap();
    network
}

fn member(driver: &BridgeDriver, network: &Network, ip: &str) -> Member {
    let ns = Netns::new("qc");
    let request = EndpointRequest {
        container_id: random_id(),
        ifname: "eth0".into(),
        ipv4: Some(ip.parse().unwrap()),
        ipv6: None,
        mac: None,
    };
    driver.attach(network, &request, ns.file().as_fd()).unwrap();
    Member {
        ns,
        ip: ip.parse().unwrap(),
    }
}

fn gateway(network: &Network) -> IpAddr {
    network.ipv4.as_ref().unwrap().gateway
}

fn record(names: &[&str], ip: IpAddr) -> DnsRecord {
    DnsRecord {
        names: names.iter().map(|n| n.to_string()).collect(),
        ipv4: match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        },
        ipv6: None,
        upstreams: vec![],
        container: String::new(),
    }
}

/// One UDP query from the calling thread's namespace.
fn query(server: IpAddr, name: &str, kind: RecordType) -> std::io::Result<Message> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut message = Message::query();
    message.metadata.id = 7;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    socket.send_to(&message.to_vec().unwrap(), SocketAddr::new(server, 53))?;
    let mut buffer = [0u8; 1500];
    let size = socket.recv(&mut buffer)?;
    Message::from_vec(&buffer[..size]).map_err(|e| std::io::Error::other(e.to_string()))
}

fn answers(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::PTR(p) => Some(p.0.to_ascii()),
            _ => None,
        })
        .collect()
}

/// A fake upstream resolver on the test host's loopback: `example.com`
/// is 198.51.100.7, every other name does not exist.
fn fake_upstream() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 1500];
        // Lives as long as the test process; answers only what the test asks.
        loop {
            let Ok((size, peer)) = socket.recv_from(&mut buffer) else {
                continue;
            };
            let Ok(request) = Message::from_vec(&buffer[..size]) else {
                continue;
            };
            let Some(question) = request.queries.first().cloned() else {
                continue;
            };
            let mut response = Message::response(request.metadata.id, request.metadata.op_code);
            if question.name().to_ascii() == "example.com." {
                response.add_answer(Record::from_rdata(
                    question.name().clone(),
                    60,
                    RData::A(A(UPSTREAM_ANSWER.parse().unwrap())),
                ));
            } else {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            response.add_query(question);
            let _ = socket.send_to(&response.to_vec().unwrap(), peer);
        }
    });
    address
}

/// A running server, stopped (and reaped) on drop.
struct Server {
    config: PathBuf,
    child: std::process::Child,
}

impl Server {
    fn start(config: &DnsConfig, path: &Path) -> Server {
        config.save(path).unwrap();
        let child =
            spawn_server(Path::new(env!("CARGO_BIN_EXE_quai")), path).expect("start dns server");
        Server {
            config: path.to_owned(),
            child,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = stop_server(&self.config);
        let _ = self.child.wait();
    }
}

#[test]
fn names_resolve_within_a_network_and_not_across() {
    let _host = HostNs::enter();
    let root = TempRoot::new("dns");
    let driver = BridgeDriver::new(&unique_name("qt")).unwrap();
    let front = user_network(&driver, "front", "10.201.1.0/24");
    let back = user_network(&driver, "back", "10.201.2.0/24");
    let web = member(&driver, &front, "10.201.1.2");
    let db = member(&driver, &front, "10.201.1.3");
    let other = member(&driver, &back, "10.201.2.2");
    let upstream = fake_upstream();

    let mut front_config = DnsConfig {
        network: "front".into(),
        listen: vec![gateway(&front)],
        port: 53,
        upstreams: vec![upstream],
        records: vec![
            record(&["web", "www", "0123456789ab"], web.ip),
            record(&["db"], db.ip),
        ],
    };
    let front_path = root.path().join("front.json");
    let _front_server = Server::start(&front_config, &front_path);
    let back_config = DnsConfig {
        network: "back".into(),
        listen: vec![gateway(&back)],
        port: 53,
        upstreams: vec![upstream],
        records: vec![record(&["other"], other.ip)],
    };
    let _back_server = Server::start(&back_config, &root.path().join("back.json"));

    let front_dns = gateway(&front);
    let from_web = |name: &str, kind: RecordType| {
        let name = name.to_owned();
        web.ns
            .run(move || query(front_dns, &name, kind))
            .expect("query from web")
    };
    assert_eq!(answers(&from_web("db.", RecordType::A)), ["10.201.1.3"]);
    assert_eq!(answers(&from_web("www.", RecordType::A)), ["10.201.1.2"]);
    assert_eq!(
        answers(&from_web("0123456789ab.", RecordType::A)),
        ["10.201.1.2"]
    );
    assert_eq!(
        answers(&from_web("db.front.", RecordType::A)),
        ["10.201.1.3"]
    );
    assert_eq!(
        answers(&from_web("3.1.201.10.in-addr.arpa.", RecordType::PTR)),
        ["db.front."]
    );
    // Other names go to the upstream resolver.
    assert_eq!(
        answers(&from_web("example.com.", RecordType::A)),
        [UPSTREAM_ANSWER]
    );
    // A container of another network is unknown here...
    let missing = from_web("other.", RecordType::A);
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    // ...and cannot use this network's server to look names up.
    let refused = other
        .ns
        .run(|| query(front_dns, "db.", RecordType::A))
        .expect("query from another network");
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    assert!(refused.answers.is_empty());
    // Its own network's server knows it, and not the others.
    let back_dns = gateway(&back);
    let own = other
        .ns
        .run(|| query(back_dns, "other.", RecordType::A))
        .unwrap();
    assert_eq!(answers(&own), ["10.201.2.2"]);
    let foreign = other
        .ns
        .run(|| query(back_dns, "db.", RecordType::A))
        .unwrap();
    assert_eq!(foreign.metadata.response_code, ResponseCode::NXDomain);

    // The engine rewrites the file: the next query sees it.
    front_config.records[1].names.push("cache".into());
    front_config.save(&front_path).unwrap();
    assert_eq!(answers(&from_web("cache.", RecordType::A)), ["10.201.1.3"]);

    // Through a container's own resolver (busybox nslookup).
    let lookup = db
        .ns
        .exec_ok(&["busybox", "nslookup", "web", &front_dns.to_string()]);
    assert!(lookup.contains("10.201.1.2"), "{lookup}");
}

#[test]
fn server_stops_when_its_configuration_is_removed() {
    let _host = HostNs::enter();
    let root = TempRoot::new("dns");
    let driver = BridgeDriver::new(&unique_name("qt")).unwrap();
    let net = user_network(&driver, "solo", "10.201.3.0/24");
    let web = member(&driver, &net, "10.201.3.2");
    let config = DnsConfig {
        network: "solo".into(),
        listen: vec![gateway(&net)],
        port: 53,
        upstreams: vec![],
        records: vec![record(&["web"], web.ip)],
    };
    let path = root.path().join("solo.json");
    config.save(&path).unwrap();
    let mut child = spawn_server(Path::new(env!("CARGO_BIN_EXE_quai")), &path).unwrap();
    assert_eq!(quai_net::dns::server_pid(&path), Some(child.id() as i32));
    // Without upstreams, other names fail cleanly.
    let dns = gateway(&net);
    let failed = web
        .ns
        .run(|| query(dns, "example.com.", RecordType::A))
        .unwrap();
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);

    stop_server(&path).unwrap();
    child.wait().unwrap();
    assert!(quai_net::dns::server_pid(&path).is_none());

    // A server that cannot listen says so and exits.
    let broken = DnsConfig {
        listen: vec!["192.0.2.99".parse().unwrap()],
        ..config
    };
    broken.save(&path).unwrap();
    let err = spawn_server(Path::new(env!("CARGO_BIN_EXE_quai")), &path).unwrap_err();
    let message = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(message.contains("did not start"), "{message}");
    assert!(message.contains("192.0.2.99"), "{message}");
}
