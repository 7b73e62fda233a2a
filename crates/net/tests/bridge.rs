//! The bridge driver against the real kernel, as root, inside network
//! namespaces the tests create: one plays the host, others containers and
//! an outside host. Nothing touches the real host's interfaces, routes,
//! sysctls or ruleset.

mod common;

use std::collections::HashSet;
use std::os::fd::AsFd;

use common::*;
use quai_net::ports::{parse_port_spec, reserve};
use quai_net::{EndpointRequest, NetError};

#[test]
fn containers_on_one_bridge_ping_and_talk_tcp() {
    let _host = HostNs::enter();
    let driver = driver();
    let net = network(&driver, "front", Some("10.200.1.0/24"), false, &[]);
    let a = Container::attach(&driver, &net, &[]);
    let b = Container::attach(&driver, &net, &[a.ip_addr()]);
    assert_eq!(a.ip(), "10.200.1.2");
    assert_eq!(b.ip(), "10.200.1.3");
    assert_eq!(a.endpoint.mac, "02:42:0a:c8:01:02");

    assert!(a.ns.ping(&b.ip()), "a cannot ping b");
    assert!(b.ns.ping(&a.ip()), "b cannot ping a");
    assert!(a.ns.ping("10.200.1.1"), "a cannot ping its gateway");

    let _server = EchoServer::tcp(&b.ns, "0.0.0.0:7000");
    let answer =
        a.ns.run(|| tcp_request(&format!("{}:7000", b.ip()), "hello"))
            .expect("tcp echo");
    assert_eq!(answer, format!("{}|hello", a.ip()));

    // Inside: eth0 with the MAC, MTU and default route; lo up.
    let links = a.ns.exec_ok(&["ip", "-o", "link", "show"]);
    assert!(links.contains("eth0"), "{links}");
    assert!(links.contains("02:42:0a:c8:01:02"), "{links}");
    let routes = a.ns.exec_ok(&["ip", "route", "show"]);
    assert!(
        routes.contains("default via 10.200.1.1 dev eth0"),
        "{routes}"
    );

    driver.detach(&net, &a.id).expect("detach");
    assert!(!host_links().contains(&a.endpoint.host_veth));
    assert!(a
        .ns
        .exec_ok(&["ip", "-o", "link", "show"])
        .find("eth0")
        .is_none());
    // Detaching again is fine.
    driver.detach(&net, &a.id).expect("detach twice");
    driver.detach(&net, &b.id).expect("detach");
    driver.remove_network(&net).expect("remove network");
    assert!(!host_links().contains(&net.bridge));
}

#[test]
fn different_networks_are_isolated() {
    let _host = HostNs::enter();
    let driver = driver();
    let red = network(&driver, "red", None, false, &[]);
    let blue = network(&driver, "blue", None, false, std::slice::from_ref(&red));
    assert_ne!(
        red.ipv4.as_ref().unwrap().subnet,
        blue.ipv4.as_ref().unwrap().subnet
    );
    let r = Container::attach(&driver, &red, &[]);
    let b = Container::attach(&driver, &blue, &[]);
    // Routed through the host, but dropped by quai's forward chain.
    assert!(!r.ns.ping(&b.ip()), "red reached blue");
    assert!(!b.ns.ping(&r.ip()), "blue reached red");
    let _server = EchoServer::tcp(&b.ns, "0.0.0.0:7001");
    assert!(r
        .ns
        .run(|| tcp_request(&format!("{}:7001", b.ip()), "x"))
        .is_err());
    // Each still reaches its own gateway.
    assert!(r.ns.ping(&red.ipv4.as_ref().unwrap().gateway.to_string()));
}

#[test]
fn outbound_traffic_is_masqueraded_and_internal_networks_have_none() {
    let _host = HostNs::enter();
    let outside = Outside::link();
    let driver = driver();
    let open = network(&driver, "open", Some("10.200.2.0/24"), false, &[]);
    let closed = network(
        &driver,
        "closed",
        Some("10.200.3.0/24"),
        true,
        std::slice::from_ref(&open),
    );
    let c = Container::attach(&driver, &open, &[]);
    let i = Container::attach(&driver, &closed, &[]);
    let j = Container::attach(&driver, &closed, &[i.ip_addr()]);

    let _server = EchoServer::tcp(&outside.ns, "0.0.0.0:7002");
    let target = format!("{OUTSIDE_ADDRESS}:7002");
    let answer = c.ns.run(|| tcp_request(&target, "out")).expect("outbound");
    assert_eq!(
        answer,
        format!("{HOST_EXTERNAL}|out"),
        "source not masqueraded"
    );
    assert!(c.ns.ping(OUTSIDE_ADDRESS));

    assert!(
        !i.ns.ping(OUTSIDE_ADDRESS),
        "internal network reached outside"
    );
    assert!(i.ns.run(|| tcp_request(&target, "x")).is_err());
    let routes = i.ns.exec_ok(&["ip", "route", "show"]);
    assert!(
        !routes.contains("default"),
        "internal container has a default route: {routes}"
    );
    // Containers of the internal network still talk to each other.
    assert!(i.ns.ping(&j.ip()));
    // And the outside cannot reach containers' addresses directly.
    outside
        .ns
        .exec_ok(&["ip", "route", "add", "10.200.0.0/16", "via", HOST_EXTERNAL]);
    assert!(
        !outside.ns.ping(&c.ip()),
        "outside reached a container directly"
    );
}

#[test]
fn published_tcp_port_is_reachable_from_localhost_bridge_outside_and_hairpin() {
    let _host = HostNs::enter();
    let outside = Outside::link();
    let driver = driver();
    let net = network(&driver, "web", Some("10.200.4.0/24"), false, &[]);
    let web = Container::attach(&driver, &net, &[]);
    let client = Container::attach(&driver, &net, &[web.ip_addr()]);
    let _server = EchoServer::tcp(&web.ns, "0.0.0.0:80");

    let reservation = reserve(&parse_port_spec("8080:80").unwrap(), &[]).expect("reserve");
    driver
        .publish(&net, &web.endpoint, &reservation.bindings)
        .expect("publish");

    let from_localhost = tcp_request("127.0.0.1:8080", "lo").expect("via 127.0.0.1");
    assert!(from_localhost.ends_with("|lo"), "{from_localhost}");
    let gateway = net.ipv4.as_ref().unwrap().gateway;
    let from_bridge = tcp_request(&format!("{gateway}:8080"), "br").expect("via bridge address");
    assert!(from_bridge.ends_with("|br"));
    let external = format!("{HOST_EXTERNAL}:8080");
    let from_outside = outside
        .ns
        .run(|| tcp_request(&external, "ext"))
        .expect("from outside");
    // The outside client's own address is kept (no masquerade inbound).
    assert_eq!(from_outside, format!("{OUTSIDE_ADDRESS}|ext"));
    // Hairpin: another container of the network reaches the server
    // through the host's published port, on the host's external address
    // and on the bridge address.
    let hairpin = client
        .ns
        .run(|| tcp_request(&external, "hp"))
        .expect("hairpin from peer");
    assert!(hairpin.ends_with("|hp"));
    let via_gateway = format!("{gateway}:8080");
    let hairpin = client
        .ns
        .run(|| tcp_request(&via_gateway, "gw"))
        .expect("hairpin via gateway");
    assert!(hairpin.ends_with("|gw"));

    driver.unpublish(&web.id).expect("unpublish");
    assert!(tcp_request("127.0.0.1:8080", "gone").is_err());
    assert!(driver.nftables().ports().unwrap().is_empty());
}

#[test]
fn published_udp_port_and_random_host_port() {
    let _host = HostNs::enter();
    let outside = Outside::link();
    let driver = driver();
    let net = network(&driver, "dns", Some("10.200.5.0/24"), false, &[]);
    let c = Container::attach(&driver, &net, &[]);
    let _server = EchoServer::udp(&c.ns, "0.0.0.0:5353");

    let reservation = reserve(&parse_port_spec("5353/udp").unwrap(), &[]).expect("reserve");
    let binding = reservation.bindings[0];
    let (low, high) = quai_net::ports::ephemeral_range();
    assert!(
        (low..=high).contains(&binding.host_port),
        "random port {} outside {low}-{high}",
        binding.host_port
    );
    driver
        .publish(&net, &c.endpoint, &reservation.bindings)
        .expect("publish");
    let target = format!("{HOST_EXTERNAL}:{}", binding.host_port);
    let answer = outside
        .ns
        .run(|| udp_request(&target, "ping"))
        .expect("udp from outside");
    assert_eq!(answer, format!("{OUTSIDE_ADDRESS}|ping"));
    let local =
        udp_request(&format!("127.0.0.1:{}", binding.host_port), "lo").expect("udp via localhost");
    assert!(local.ends_with("|lo"));
}

#[test]
fn host_port_in_use_or_allocated_is_refused_before_any_rule() {
    let _host = HostNs::enter();
    let driver = driver();
    let net = network(&driver, "busy", Some("10.200.6.0/24"), false, &[]);
    let c = Container::attach(&driver, &net, &[]);

    // Some program of the host holds the port.
    let holder = std::net::TcpListener::bind("0.0.0.0:8181").expect("bind holder");
    let err = reserve(&parse_port_spec("8181:80").unwrap(), &[]).unwrap_err();
    assert!(matches!(err, NetError::PortInUse { .. }), "{err}");
    assert!(err.to_string().contains("0.0.0.0:8181:80/tcp"), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(holder);

    // Another container of quai holds it.
    let first = reserve(&parse_port_spec("8181:80").unwrap(), &[]).expect("reserve");
    driver
        .publish(&net, &c.endpoint, &first.bindings)
        .expect("publish");
    let err = reserve(
        &parse_port_spec("127.0.0.1:8181:81").unwrap(),
        &first.bindings,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Bind for 127.0.0.1:8181 failed: port is already allocated"
    );
    // While the reservation is held, the port is not bindable by others.
    assert!(std::net::TcpListener::bind("0.0.0.0:8181").is_err());
    assert_eq!(driver.nftables().ports().unwrap().len(), 1);
    // A failed multi-port reservation leaves nothing bound.
    let _blocker = std::net::UdpSocket::bind("0.0.0.0:8183").expect("bind udp blocker");
    let err = reserve(&parse_port_spec("8182-8183:80-81/udp").unwrap(), &[]).unwrap_err();
    assert!(matches!(err, NetError::PortInUse { .. }), "{err}");
    std::net::UdpSocket::bind("0.0.0.0:8182").expect("8182 was released");
}

#[test]
fn failed_attach_and_failed_network_leave_nothing() {
    let _host = HostNs::enter();
    let driver = driver();
    let net = network(&driver, "fail", Some("10.200.7.0/24"), false, &[]);
    let ns = Netns::new("qc");
    // The container already has an eth0: the veth cannot be created.
    ns.exec_ok(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    let before = host_links();
    let request = EndpointRequest {
        container_id: random_id(),
        ifname: "eth0".into(),
        ipv4: Some("10.200.7.9".parse().unwrap()),
        ipv6: None,
        mac: None,
    };
    assert!(driver.attach(&net, &request, ns.file().as_fd()).is_err());
    assert_eq!(host_links(), before);

    // A name that is not a valid interface: refused before anything.
    let bad = EndpointRequest {
        ifname: "a/b".into(),
        ..request.clone()
    };
    assert!(driver.attach(&net, &bad, ns.file().as_fd()).is_err());
    assert_eq!(host_links(), before);

    // A network whose bridge name is taken by a non-bridge interface.
    std::process::Command::new("ip")
        .args([
            "link",
            "add",
            "notabridge",
            "type",
            "veth",
            "peer",
            "name",
            "notabridge1",
        ])
        .status()
        .unwrap();
    let mut clash = net.clone();
    clash.bridge = "notabridge".into();
    clash.id = random_id();
    let err = driver.ensure_network(&clash).unwrap_err();
    assert!(err.to_string().contains("not a bridge"), "{err}");
}

#[test]
fn reclaim_removes_what_dead_containers_left_and_keeps_the_living() {
    let _host = HostNs::enter();
    let driver = driver();
    let net = network(&driver, "rc", Some("10.200.8.0/24"), false, &[]);
    let alive = Container::attach(&driver, &net, &[]);
    let dead = Container::attach(&driver, &net, &[alive.ip_addr()]);
    for (c, port) in [(&alive, "8201:80"), (&dead, "8202:80")] {
        let r = reserve(&parse_port_spec(port).unwrap(), &[]).unwrap();
        driver.publish(&net, &c.endpoint, &r.bindings).unwrap();
    }
    // A veth created by an attach killed before it could label it.
    let unlabelled = quai_net::bridge::veth_name(&random_id(), &net.id);
    std::process::Command::new("ip")
        .args([
            "link",
            "add",
            &unlabelled,
            "master",
            &net.bridge,
            "type",
            "veth",
            "peer",
            "name",
            "qpeer0",
        ])
        .status()
        .unwrap();

    let living: HashSet<String> = [alive.id.clone()].into();
    let reclaimed = driver
        .reclaim(std::slice::from_ref(&net), &living)
        .expect("reclaim");
    let mut veths = reclaimed.veths.clone();
    veths.sort();
    let mut expected = vec![dead.endpoint.host_veth.clone(), unlabelled.clone()];
    expected.sort();
    assert_eq!(veths, expected);
    assert_eq!(reclaimed.ports.len(), 1);
    assert_eq!(reclaimed.ports[0].host_port, 8202);
    let links = host_links();
    assert!(links.contains(&alive.endpoint.host_veth));
    assert!(!links.contains(&dead.endpoint.host_veth));
    let ports = driver.nftables().ports().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].owner.as_deref(), Some(alive.id.as_str()));
    assert!(alive.ns.ping("10.200.8.1"));
}

#[test]
fn reset_removes_every_trace() {
    let _host = HostNs::enter();
    let driver = driver();
    let a = network(&driver, "a", Some("10.200.9.0/24"), false, &[]);
    let b = network(
        &driver,
        "b",
        Some("10.200.10.0/24"),
        true,
        std::slice::from_ref(&a),
    );
    let c = Container::attach(&driver, &a, &[]);
    let _d = Container::attach(&driver, &b, &[]);
    let r = reserve(&parse_port_spec("8301:80").unwrap(), &[]).unwrap();
    driver.publish(&a, &c.endpoint, &r.bindings).unwrap();
    assert!(ruleset().contains(driver.nftables().table()));

    let both = [a.clone(), b.clone()];
    let removed = driver.reset(&both).expect("reset");
    assert_eq!(removed.len(), 4, "{removed:?}");
    let links = host_links();
    assert!(
        !links
            .iter()
            .any(|l| l.starts_with("quai-") || l.starts_with("qv")),
        "{links:?}"
    );
    assert!(!ruleset().contains(driver.nftables().table()));
    // Reset twice is fine.
    driver.reset(&both).expect("reset again");
}

#[test]
fn reset_and_reclaim_leave_another_tables_networks_alone() {
    let _host = HostNs::enter();
    let mine = driver();
    let theirs = driver();
    let a = network(&mine, "mine", Some("10.200.12.0/24"), false, &[]);
    let b = network(&theirs, "theirs", Some("10.200.13.0/24"), false, &[]);
    let ca = Container::attach(&mine, &a, &[]);
    let cb = Container::attach(&theirs, &b, &[]);
    let r = reserve(&parse_port_spec("8311:80").unwrap(), &[]).unwrap();
    theirs.publish(&b, &cb.endpoint, &r.bindings).unwrap();
    // Reclaim by the first knows none of the second's containers: it must
    // not take them for dead.
    let reclaimed = mine
        .reclaim(std::slice::from_ref(&a), &[ca.id.clone()].into())
        .expect("reclaim");
    assert!(reclaimed.veths.is_empty(), "{reclaimed:?}");
    mine.reset(std::slice::from_ref(&a)).expect("reset");
    let links = host_links();
    assert!(!links.contains(&a.bridge), "{links:?}");
    assert!(!links.contains(&ca.endpoint.host_veth), "{links:?}");
    assert!(links.contains(&b.bridge), "{links:?}");
    assert!(links.contains(&cb.endpoint.host_veth), "{links:?}");
    assert!(ruleset().contains(theirs.nftables().table()));
    assert!(!ruleset().contains(mine.nftables().table()));
    assert!(cb.ns.ping("10.200.13.1"), "the other network broke");
    assert_eq!(theirs.nftables().ports().unwrap().len(), 1);
    theirs.reset(std::slice::from_ref(&b)).expect("reset");
}

#[test]
fn unpublishing_known_bindings_takes_them_all_and_tolerates_a_missing_table() {
    let _host = HostNs::enter();
    let driver = driver();
    let net = network(&driver, "unpub", Some("10.200.14.0/24"), false, &[]);
    let c = Container::attach(&driver, &net, &[]);
    let specs: Vec<_> = ["8321:80", "8322:53/udp"]
        .iter()
        .flat_map(|s| parse_port_spec(s).unwrap())
        .collect();
    let r = reserve(&specs, &[]).unwrap();
    driver.publish(&net, &c.endpoint, &r.bindings).unwrap();
    assert_eq!(driver.nftables().ports().unwrap().len(), 2);
    driver
        .unpublish_bindings(&c.endpoint, &r.bindings)
        .expect("unpublish");
    assert!(driver.nftables().ports().unwrap().is_empty());
    // Again (nothing left), and with the table gone: both fine.
    driver
        .unpublish_bindings(&c.endpoint, &r.bindings)
        .expect("unpublish twice");
    driver.reset(std::slice::from_ref(&net)).expect("reset");
    driver
        .unpublish_bindings(&c.endpoint, &r.bindings)
        .expect("unpublish without a table");
}

#[test]
fn ipv6_network_between_containers() {
    let _host = HostNs::enter();
    let driver = driver();
    let request = quai_net::NetworkRequest {
        id: random_id(),
        name: "six".into(),
        ipv6: true,
        ..Default::default()
    };
    let net = quai_net::Network::create(&request, &[], &driver.host_facts().unwrap()).unwrap();
    driver.ensure_network(&net).unwrap();
    let a = Container::attach(&driver, &net, &[]);
    let b = Container::attach(
        &driver,
        &net,
        &[a.ip_addr(), a.endpoint.ipv6.unwrap().addr()],
    );
    let b6 = b.endpoint.ipv6.expect("IPv6 address").addr().to_string();
    assert!(a
        .ns
        .exec(&["busybox", "ping", "-6", "-c", "1", "-W", "2", &b6])
        .status
        .success());
}

/// Environment of the helper process of `kill_9_mid_setup_is_reclaimed`.
const HELPER_ENV: &str = "QUAI_NET_TEST_HELPER";

/// Not a test: the process `kill_9_mid_setup_is_reclaimed` starts and
/// kills. It sets a container up through the library as the engine will,
/// says how far it got, and waits to be killed.
#[test]
#[ignore = "helper process of kill_9_mid_setup_is_reclaimed"]
fn helper_setup_then_wait() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let spec: serde_json::Value = serde_json::from_str(&spec).expect("helper spec");
    let network: quai_net::Network = serde_json::from_value(spec["network"].clone()).unwrap();
    let driver = quai_net::BridgeDriver::new(spec["table"].as_str().unwrap()).unwrap();
    let netns = std::fs::File::open(spec["netns"].as_str().unwrap()).unwrap();
    let request = EndpointRequest {
        container_id: spec["container"].as_str().unwrap().into(),
        ifname: "eth0".into(),
        ipv4: Some(spec["ip"].as_str().unwrap().parse().unwrap()),
        ipv6: None,
        mac: None,
    };
    let endpoint = driver.attach(&network, &request, netns.as_fd()).unwrap();
    println!("STEP attached");
    if spec["publish"].as_bool().unwrap_or(false) {
        let reservation = reserve(&parse_port_spec("8401:80").unwrap(), &[]).unwrap();
        driver
            .publish(&network, &endpoint, &reservation.bindings)
            .unwrap();
        println!("STEP published");
        // Keep the reservation until killed, like a container's monitor.
        std::mem::forget(reservation);
    }
    println!("READY");
    loop {
        std::thread::park();
    }
}

/// Kills (SIGKILL) and reaps the helper even when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_mid_setup_is_reclaimed() {
    use std::io::BufRead;
    let _host = HostNs::enter();
    let driver = driver();
    let net = network(&driver, "k9", Some("10.200.11.0/24"), false, &[]);
    for publish in [false, true] {
        let ns = Netns::new("qc");
        let container = random_id();
        let spec = serde_json::json!({
            "network": net, "table": driver.nftables().table(), "netns": ns.path,
            "container": container, "ip": "10.200.11.5", "publish": publish,
        });
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "helper_setup_then_wait",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, spec.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start helper");
        let mut child = KillOnDrop(child);
        let stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
        let mut steps = Vec::new();
        for line in stdout.lines() {
            // libtest prints "test NAME ... " before the test's own output.
            let line = line.unwrap();
            if let Some(at) = line.find("STEP ") {
                steps.push(line[at + 5..].to_owned());
            }
            if line.contains("READY") {
                break;
            }
        }
        let expected = if publish {
            vec!["attached", "published"]
        } else {
            vec!["attached"]
        };
        assert_eq!(steps, expected, "helper did not get through its steps");
        child.0.kill().expect("kill -9 the helper");
        child.0.wait().unwrap();

        let veth = quai_net::bridge::veth_name(&container, &net.id);
        assert!(host_links().contains(&veth));
        assert_eq!(
            driver.nftables().ports().unwrap().len(),
            usize::from(publish)
        );
        // The port is free again: the reservation died with the process.
        assert!(std::net::TcpListener::bind("0.0.0.0:8401").is_ok());

        // A retried setup of the same container replaces the leftovers.
        let retry = EndpointRequest {
            container_id: container.clone(),
            ifname: "eth1".into(),
            ipv4: Some("10.200.11.6".parse().unwrap()),
            ipv6: None,
            mac: None,
        };
        let endpoint = driver
            .attach(&net, &retry, ns.file().as_fd())
            .expect("retry attach");
        assert_eq!(endpoint.host_veth, veth);
        assert!(ns.ping("10.200.11.1"));

        // The container is gone for good: reclaim removes everything.
        let reclaimed = driver
            .reclaim(std::slice::from_ref(&net), &HashSet::new())
            .unwrap();
        assert_eq!(reclaimed.veths, std::slice::from_ref(&veth));
        assert_eq!(reclaimed.ports.len(), usize::from(publish));
        assert!(!host_links().contains(&veth));
        assert!(driver.nftables().ports().unwrap().is_empty());
    }
}
