//! Container networking through the `quai` binary: the default bridge,
//! published ports (TCP and UDP, from 127.0.0.1, the host's addresses, an
//! outside host and other containers), user-defined networks with DNS and
//! isolation, `--internal`, bad input, kill -9 cleanup and `system reset`.
//!
//! Every test runs quai in a network namespace of its own (the engine test
//! helper's), which plays the host: bridges, nftables tables and veths
//! never reach the real host, names never collide between tests, and all
//! traffic stays between the test's own namespaces.

mod engine_support;

use std::fs::File;

use engine_support::{processes_under, Quai};
use quai_testutil::netns::{
    udp_request, EchoServer, Outside, HOST_EXTERNAL, HOST_EXTERNAL6, OUTSIDE_ADDRESS,
};

/// Runs a command in the test's host namespace; its stdout if it succeeds.
fn host(q: &Quai, args: &[&str]) -> Option<String> {
    let out = q.netns.exec(args);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wget(q: &Quai, url: &str) -> Option<String> {
    // (busybox's own -T timeout crashes its wget; timeout(1) bounds it.)
    host(
        q,
        &[
            "busybox", "timeout", "20", "busybox", "wget", "-q", "-O", "-", url,
        ],
    )
    .map(|s| s.trim().to_string())
}

/// A detached web server container serving its own /etc (`/hostname`
/// answers with its host name, i.e. its short id).
fn web(q: &Quai, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let id = q.ok(&args).trim().to_string();
    id[..12].to_string()
}

fn ip_of(q: &Quai, name: &str, network: &str) -> String {
    let networks: serde_json::Value =
        serde_json::from_str(&q.inspect(name, "{{json .NetworkSettings.Networks}}"))
            .expect("Networks as JSON");
    networks[network]["IPAddress"]
        .as_str()
        .expect("an IPAddress")
        .to_string()
}

fn links(q: &Quai) -> String {
    host(q, &["ip", "-o", "link", "show"]).unwrap_or_default()
}

/// The state root's own nftables table and default bridge (test roots do
/// not get `quai`/`quai0`, which belong to /var/lib/quai).
fn kernel_names(q: &Quai) -> quai_engine::networks::KernelNames {
    quai_engine::networks::kernel_names(&q.root())
}

fn port_rules(q: &Quai) -> String {
    let table = kernel_names(q).table;
    host(q, &["nft", "list", "map", "inet", &table, "ports4"]).unwrap_or_default()
}

#[test]
fn default_bridge_connects_containers() {
    let q = Quai::new("netdef");
    let short = web(&q, "srv", &[]);
    let ip = ip_of(&q, "srv", "bridge");
    assert!(ip.starts_with("172.") || ip.starts_with("10."), "{ip}");
    assert_eq!(q.inspect("srv", "{{.NetworkSettings.IPAddress}}"), ip);
    // Ping and a TCP request/answer from another container.
    let out = q.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("ping -c 1 -W 5 {ip} >/dev/null && wget -q -O - http://{ip}/hostname"),
    ]);
    assert_eq!(out.trim(), short);
    // The container's own files: its address and name, no loopback resolver.
    let hosts = q.ok(&["exec", "srv", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{ip}\t{short}")), "{hosts}");
    let resolv = q.ok(&["exec", "srv", "cat", "/etc/resolv.conf"]);
    assert!(!resolv.contains("nameserver 127."), "{resolv}");
    // --add-host, --dns, --dns-search, --dns-option, --hostname.
    let out = q.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db:192.0.2.9",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:3",
        "-h",
        "myhost",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf; hostname",
    ]);
    assert!(out.contains("192.0.2.9\tdb"), "{out}");
    assert!(out.contains("\tgw\n"), "{out}");
    assert!(out.contains("nameserver 192.0.2.53"), "{out}");
    assert!(out.contains("search example.test"), "{out}");
    assert!(out.contains("ndots:3"), "{out}");
    assert!(
        out.contains("\tmyhost\n") && out.trim_end().ends_with("myhost"),
        "{out}"
    );
    // --mac-address.
    let out = q.ok(&[
        "run",
        "--rm",
        "--mac-address",
        "92:d0:c6:0a:29:33",
        "busybox",
        "cat",
        "/sys/class/net/eth0/address",
    ]);
    assert_eq!(out.trim(), "92:d0:c6:0a:29:33");
    // --ip is for user-defined networks only (docker's message).
    let (code, err) = q.fails(&["run", "--rm", "--ip", "172.17.0.50", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("user specified IP address is supported on user defined networks only"),
        "{err}"
    );
    // --network container:srv shares srv's namespace.
    let out = q.ok(&[
        "run",
        "--rm",
        "--network",
        "container:srv",
        "busybox",
        "timeout",
        "20",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1/hostname",
    ]);
    assert_eq!(out.trim(), short);
    // Removing the container removes its veth (the kernel does, with the
    // container's namespace, moments later) and lease.
    assert!(links(&q).contains("qv"), "{}", links(&q));
    q.ok(&["rm", "-f", "srv"]);
    q.wait_for("the veth to go", || !links(&q).contains("qv"));
    let members = q.ok(&["network", "inspect", "-f", "{{len .Containers}}", "bridge"]);
    assert_eq!(members.trim(), "0");
    // The bridge stays (docker's docker0 does too).
    assert!(links(&q).contains(&kernel_names(&q).default_bridge));
    q.assert_clean();
}

#[test]
fn published_ports_reach_the_container_from_everywhere() {
    let q = Quai::new("netpub");
    let _outside = q.netns.run(Outside::link);
    let short = web(&q, "pub", &["-p", "8080:80", "-p", "127.0.0.1::80"]);
    let ipam: serde_json::Value = serde_json::from_str(&q.ok(&[
        "network",
        "inspect",
        "-f",
        "{{json .IPAM.Config}}",
        "bridge",
    ]))
    .expect("IPAM as JSON");
    let gateway = ipam[0]["Gateway"].as_str().expect("a gateway");
    for address in ["127.0.0.1", HOST_EXTERNAL, gateway] {
        assert_eq!(
            wget(&q, &format!("http://{address}:8080/hostname")).as_deref(),
            Some(short.as_str()),
            "published port from {address}"
        );
    }
    // From an outside host, through the host's address.
    let outside = _outside.ns.exec(&[
        "busybox",
        "timeout",
        "20",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{HOST_EXTERNAL}:8080/hostname"),
    ]);
    assert_eq!(String::from_utf8_lossy(&outside.stdout).trim(), short);
    // Hairpin: another container through the host's address.
    let out = q.ok(&[
        "run",
        "--rm",
        "busybox",
        "timeout",
        "20",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{HOST_EXTERNAL}:8080/hostname"),
    ]);
    assert_eq!(out.trim(), short);
    // Self-hairpin: the container reaches its own published port, with the
    // bridge's netfilter hooks on (br_netfilter, as on docker hosts) and off.
    for bridge_nf in ["1", "0"] {
        let _ = q.netns.exec(&[
            "sysctl",
            "-qw",
            &format!("net.bridge.bridge-nf-call-iptables={bridge_nf}"),
        ]);
        let out = q.ok(&[
            "exec",
            "pub",
            "timeout",
            "20",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{HOST_EXTERNAL}:8080/hostname"),
        ]);
        assert_eq!(
            out.trim(),
            short,
            "self-hairpin, bridge-nf-call-iptables={bridge_nf}"
        );
    }
    // quai port, ps's PORTS column, inspect's Ports.
    let ports = q.ok(&["port", "pub"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:8080"), "{ports}");
    let random = ports
        .lines()
        .find_map(|l| l.strip_prefix("80/tcp -> 127.0.0.1:"))
        .expect("random port on 127.0.0.1");
    assert_eq!(
        wget(&q, &format!("http://127.0.0.1:{random}/hostname")).as_deref(),
        Some(short.as_str())
    );
    let ps = q.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    let inspected = q.inspect("pub", "{{json .NetworkSettings.Ports}}");
    assert!(inspected.contains("\"HostPort\":\"8080\""), "{inspected}");

    // A port another container holds: docker's message, nothing installed.
    let (code, err) = q.fails(&[
        "run", "-d", "--name", "dup", "-p", "8080:80", "busybox", "sleep", "60",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("port is already allocated"), "{err}");
    assert!(!port_rules(&q).contains(&q.inspect("dup", "{{.Id}}")));
    q.ok(&["rm", "-f", "dup"]);
    // A port some other program holds.
    let holder = q
        .netns
        .run(|| std::net::TcpListener::bind("0.0.0.0:8081").expect("bind 8081"));
    let (code, err) = q.fails(&["run", "--rm", "-p", "8081:80", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("Address already in use"), "{err}");
    drop(holder);
    // Invalid specs never create anything.
    for (spec, message) in [
        ("80:abc", "Invalid containerPort: abc"),
        ("99999:80", "Invalid hostPort: 99999"),
        ("80/bogus", "Invalid proto: bogus"),
    ] {
        let (code, err) = q.fails(&["run", "--rm", "-p", spec, "busybox", "true"]);
        assert_eq!(code, 125, "{spec}");
        assert!(err.contains(message), "{spec}: {err}");
    }

    // UDP, and -P with --expose.
    q.ok(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        "5353:5353/udp",
        "--expose",
        "9000",
        "-P",
        "busybox",
        "sleep",
        "600",
    ]);
    let pid = q.inspect("udp", "{{.State.Pid}}");
    let ns = File::open(format!("/proc/{pid}/ns/net")).expect("container netns");
    let _echo = EchoServer::udp_in(ns, "0.0.0.0:5353");
    let answer = q
        .netns
        .run(|| udp_request("127.0.0.1:5353", "ping"))
        .expect("UDP through the published port");
    assert!(answer.ends_with("|ping"), "{answer}");
    // [::1] through the relay (the container has IPv4 only, as with
    // docker-proxy).
    let answer = q
        .netns
        .run(|| udp_request("[::1]:5353", "six"))
        .expect("UDP through the published port on [::1]");
    assert!(answer.ends_with("|six"), "{answer}");
    let answer = _outside
        .ns
        .run(|| udp_request(&format!("{HOST_EXTERNAL}:5353"), "out"))
        .expect("UDP from outside");
    assert!(answer.ends_with("|out"), "{answer}");
    let exposed = q.ok(&["port", "udp", "9000"]);
    assert!(exposed.starts_with("0.0.0.0:"), "{exposed}");

    for name in ["pub", "udp"] {
        q.ok(&["rm", "-f", name]);
    }
    assert!(!port_rules(&q).contains("comment"), "{}", port_rules(&q));
    q.assert_clean();
}

#[test]
fn user_networks_resolve_names_and_stay_apart() {
    let q = Quai::new("netusr");
    q.ok(&["network", "create", "--subnet", "10.201.0.0/24", "alpha"]);
    q.ok(&["network", "create", "--subnet", "10.202.0.0/24", "beta"]);
    let short = web(
        &q,
        "xx",
        &[
            "--network",
            "alpha",
            "--network-alias",
            "xa",
            "--ip",
            "10.201.0.50",
        ],
    );
    assert_eq!(ip_of(&q, "xx", "alpha"), "10.201.0.50");
    for name in ["xx", "xa", short.as_str(), "xx.alpha"] {
        let out = q.ok(&[
            "run",
            "--rm",
            "--network",
            "alpha",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{name}/hostname"),
        ]);
        assert_eq!(out.trim(), short, "by {name}");
    }
    // Another network neither resolves nor reaches it.
    let out = q.run(&[
        "run",
        "--rm",
        "--network",
        "beta",
        "busybox",
        "nslookup",
        "xx",
    ]);
    assert!(!out.status.success(), "xx resolved from beta");
    let out = q.run(&[
        "run",
        "--rm",
        "--network",
        "beta",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "10.201.0.50",
    ]);
    assert!(!out.status.success(), "beta reached alpha");
    // A taken address, a missing network, overlapping subnets, a gateway
    // outside its subnet: docker's messages, nothing half-made.
    let (code, err) = q.fails(&[
        "run",
        "--rm",
        "--network",
        "alpha",
        "--ip",
        "10.201.0.50",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("Address already in use"), "{err}");
    let (code, err) = q.fails(&["run", "--rm", "--network", "nope", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("network nope not found"), "{err}");
    let (_, err) = q.fails(&["network", "create", "--subnet", "10.201.0.128/25", "over"]);
    assert!(
        err.contains("Pool overlaps with other one on this address space"),
        "{err}"
    );
    let (_, err) = q.fails(&[
        "network",
        "create",
        "--subnet",
        "10.203.0.0/24",
        "--gateway",
        "10.9.9.1",
        "gw",
    ]);
    assert!(
        err.contains("no matching subnet for gateway 10.9.9.1"),
        "{err}"
    );
    let (_, err) = q.fails(&["network", "create", "alpha"]);
    assert!(err.contains("already exists"), "{err}");
    let names = q.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["alpha", "beta", "bridge", "host", "none"]
    );

    // connect and disconnect a running container.
    q.ok(&["network", "connect", "--alias", "xb", "beta", "xx"]);
    let out = q.ok(&[
        "run",
        "--rm",
        "--network",
        "beta",
        "busybox",
        "timeout",
        "20",
        "wget",
        "-q",
        "-O",
        "-",
        "http://xb/hostname",
    ]);
    assert_eq!(out.trim(), short);
    assert!(q
        .ok(&["exec", "xx", "ls", "/sys/class/net"])
        .contains("eth1"));
    // Its /etc/hosts follows (rewritten in place: it is bind-mounted).
    let beta_ip = ip_of(&q, "xx", "beta");
    let hosts = q.ok(&["exec", "xx", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{beta_ip}\t{short}")), "{hosts}");
    // xx asks alpha's server, which also answers with the names of beta,
    // where xx is a member too; a container of alpha alone does not see them.
    web(&q, "yy", &["--network", "beta"]);
    let found = q.ok(&["exec", "xx", "timeout", "20", "nslookup", "yy"]);
    assert!(found.contains("10.202.0."), "{found}");
    let out = q.run(&[
        "run",
        "--rm",
        "--network",
        "alpha",
        "busybox",
        "timeout",
        "20",
        "nslookup",
        "yy",
    ]);
    assert!(!out.status.success(), "yy resolved from alpha alone");
    q.ok(&["rm", "-f", "yy"]);
    q.ok(&["network", "disconnect", "beta", "xx"]);
    let hosts = q.ok(&["exec", "xx", "cat", "/etc/hosts"]);
    assert!(!hosts.contains(&beta_ip), "{hosts}");
    assert!(!q
        .ok(&["exec", "xx", "ls", "/sys/class/net"])
        .contains("eth1"));
    let (_, err) = q.fails(&["network", "disconnect", "beta", "xx"]);
    assert!(err.contains("is not connected to network beta"), "{err}");

    // A network with a running container cannot go; then it can.
    let (_, err) = q.fails(&["network", "rm", "alpha"]);
    assert!(err.contains("has active endpoints"), "{err}");
    let alpha_bridge = format!(
        "quai-{}",
        &q.ok(&["network", "inspect", "-f", "{{.Id}}", "alpha"])[..10]
    );
    assert!(links(&q).contains(&alpha_bridge));
    q.ok(&["rm", "-f", "xx"]);
    q.ok(&["network", "rm", "alpha"]);
    assert!(!links(&q).contains(&alpha_bridge));
    let pruned = q.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("beta"), "{pruned}");
    assert!(processes_under(&q.runroot().to_string_lossy()).is_empty());
    q.assert_clean();
}

#[test]
fn internal_networks_have_no_way_out() {
    let q = Quai::new("netint");
    let _outside = q.netns.run(Outside::link);
    let ping_out = |network: &str| {
        q.run(&[
            "run",
            "--rm",
            "--network",
            network,
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            OUTSIDE_ADDRESS,
        ])
        .status
        .success()
    };
    assert!(ping_out("bridge"), "the default bridge reaches outside");
    q.ok(&["network", "create", "--internal", "inner"]);
    assert!(!ping_out("inner"), "an internal network reached outside");
    // Members of an internal network still reach each other.
    // (By address: the static busybox's wget crashes resolving a name
    // without a default route; nslookup shows the name resolves.)
    let short = web(&q, "in1", &["--network", "inner"]);
    let ip = ip_of(&q, "in1", "inner");
    let out = q.ok(&[
        "run",
        "--rm",
        "--network",
        "inner",
        "busybox",
        "sh",
        "-c",
        &format!("nslookup in1 >/dev/null && wget -q -O - http://{ip}/hostname"),
    ]);
    assert_eq!(out.trim(), short);
    q.ok(&["rm", "-f", "in1"]);
    q.assert_clean();
}

#[test]
fn killed_monitor_leftovers_are_reclaimed() {
    let q = Quai::new("netkill");
    let id = q
        .ok(&[
            "run", "-d", "--name", "kk", "-p", "8090:80", "busybox", "httpd", "-f", "-p", "80",
        ])
        .trim()
        .to_string();
    assert!(port_rules(&q).contains(&id));
    assert!(links(&q).contains("qv"));
    let pid: i32 = q.inspect("kk", "{{.State.Pid}}").parse().unwrap();
    // kill -9 the monitor, then the container's process.
    let monitors: Vec<i32> = processes_under(&q.root().to_string_lossy())
        .into_iter()
        .filter(|p| *p != pid)
        .collect();
    assert!(!monitors.is_empty(), "no monitor found");
    for p in monitors.iter().chain([&pid]) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &p.to_string()])
            .status();
    }
    q.wait_for("the container to die", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    // The next command repairs the container and releases what it held.
    let status = q.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(status.starts_with("Exited (255)"), "{status}");
    assert!(!port_rules(&q).contains(&id), "{}", port_rules(&q));
    assert!(!links(&q).contains("qv"), "{}", links(&q));
    // Its port and address are free for the next container.
    let short = web(&q, "k2", &["-p", "8090:80"]);
    assert_eq!(
        wget(&q, "http://127.0.0.1:8090/hostname").as_deref(),
        Some(short.as_str())
    );
    // It cannot start again while another container holds its port; then
    // it can.
    let (_, err) = q.fails(&["start", "kk"]);
    assert!(err.contains("port is already allocated"), "{err}");
    q.ok(&["rm", "-f", "k2"]);
    q.ok(&["start", "kk"]);
    q.ok(&["rm", "-f", "kk"]);
    q.assert_clean();
}

#[test]
fn system_reset_removes_every_trace() {
    let q = Quai::new("netreset");
    q.ok(&["network", "create", "gone"]);
    web(&q, "rr", &["--network", "gone", "-p", "8095:80"]);
    web(&q, "rs", &[]);
    let table = kernel_names(&q).table;
    assert!(host(&q, &["nft", "list", "table", "inet", &table]).is_some());
    q.ok(&["system", "reset", "-f"]);
    let links = links(&q);
    assert!(!links.contains("quai"), "{links}");
    assert!(!links.contains("qv"), "{links}");
    assert!(host(&q, &["nft", "list", "table", "inet", &table]).is_none());
    assert!(!q.root().exists());
    assert!(processes_under(&q.tmp.path().to_string_lossy()).is_empty());
}

/// `nslookup NAME` from a throwaway container on `network`: did it resolve?
fn resolves(q: &Quai, network: &str, name: &str) -> bool {
    q.run(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "timeout",
        "20",
        "nslookup",
        name,
    ])
    .status
    .success()
}

#[test]
fn rename_connect_and_shared_namespaces_update_live() {
    let q = Quai::new("netlive");
    q.ok(&["network", "create", "--subnet", "10.204.0.0/24", "live"]);
    // rename: the new name resolves at once, the old one no more.
    web(&q, "before", &["--network", "live"]);
    assert!(resolves(&q, "live", "before"));
    q.ok(&["rename", "before", "after"]);
    assert!(
        resolves(&q, "live", "after"),
        "the new name does not resolve"
    );
    assert!(
        !resolves(&q, "live", "before"),
        "the old name still resolves"
    );

    // connect/disconnect of a running container on the default bridge: its
    // resolv.conf gains and loses the user network's DNS server, and a
    // container sharing its namespace sees the same files.
    q.ok(&["run", "-d", "--name", "mover", "busybox", "sleep", "600"]);
    q.ok(&[
        "run",
        "-d",
        "--name",
        "sharer",
        "--network",
        "container:mover",
        "busybox",
        "sleep",
        "600",
    ]);
    assert_eq!(
        q.inspect("sharer", "{{.HostsPath}} {{.ResolvConfPath}}"),
        q.inspect("mover", "{{.HostsPath}} {{.ResolvConfPath}}")
    );
    let resolv = |name: &str| q.ok(&["exec", name, "cat", "/etc/resolv.conf"]);
    let etc_hosts = |name: &str| q.ok(&["exec", name, "cat", "/etc/hosts"]);
    assert!(!resolv("mover").contains("10.204.0.1"));
    q.ok(&["network", "connect", "live", "mover"]);
    let ip = ip_of(&q, "mover", "live");
    for name in ["mover", "sharer"] {
        let text = resolv(name);
        assert!(text.contains("nameserver 10.204.0.1"), "{name}: {text}");
        assert!(etc_hosts(name).contains(&format!("{ip}\t")), "{name}");
    }
    let found = q.ok(&["exec", "mover", "timeout", "20", "nslookup", "after"]);
    assert!(found.contains("10.204.0."), "{found}");
    q.ok(&["network", "disconnect", "live", "mover"]);
    for name in ["mover", "sharer"] {
        let text = resolv(name);
        assert!(!text.contains("10.204.0.1"), "{name}: {text}");
        assert!(text.contains("nameserver"), "{name}: {text}");
        assert!(!etc_hosts(name).contains(&format!("{ip}\t")), "{name}");
    }

    // mover stops while sharer still lives in its namespace: the veth must
    // go at once (the kernel would not delete it: the namespace lives on),
    // since its address goes back to the pool.
    let mover_id = q.inspect("mover", "{{.Id}}");
    let bridge_id = q.ok(&["network", "inspect", "-f", "{{.Id}}", "bridge"]);
    let veth = quai_net::bridge::veth_name(&mover_id, bridge_id.trim());
    assert!(links(&q).contains(&veth), "{}", links(&q));
    q.ok(&["stop", "-t", "1", "mover"]);
    assert!(!links(&q).contains(&veth), "{}", links(&q));

    // --link is refused with a way forward, and nothing is created.
    let (code, err) = q.fails(&["run", "--rm", "--link", "after:db", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("user-defined network"), "{err}");
    assert_eq!(q.container_ids().len(), 3);
    for name in ["sharer", "mover", "after"] {
        q.ok(&["rm", "-f", name]);
    }
    q.ok(&["network", "rm", "live"]);
    q.assert_clean();
}

#[test]
fn two_state_roots_on_one_host_keep_apart() {
    let first = Quai::new("netroot1");
    let second = Quai::sharing_netns_of("netroot2", &first);
    let (n1, n2) = (kernel_names(&first), kernel_names(&second));
    assert_ne!(n1.table, n2.table);
    assert_ne!(n1.default_bridge, n2.default_bridge);
    let a = web(&first, "ra", &["-p", "8101:80"]);
    let b = web(&second, "rb", &["-p", "8102:80"]);
    let (ip_a, ip_b) = (
        ip_of(&first, "ra", "bridge"),
        ip_of(&second, "rb", "bridge"),
    );
    assert_ne!(ip_a, ip_b, "two roots handed out one address");
    let bridges = links(&first);
    assert!(bridges.contains(&n1.default_bridge), "{bridges}");
    assert!(bridges.contains(&n2.default_bridge), "{bridges}");
    for (port, short) in [("8101", &a), ("8102", &b)] {
        let url = format!("http://127.0.0.1:{port}/hostname");
        assert_eq!(wget(&first, &url).as_deref(), Some(short.as_str()));
    }
    // Reclaiming and resetting the first root leaves the second working.
    first.ok(&["network", "prune", "-f"]);
    first.ok(&["rm", "-f", "ra"]);
    first.ok(&["system", "reset", "-f"]);
    let left = links(&first);
    assert!(!left.contains(&n1.default_bridge), "{left}");
    assert!(left.contains(&n2.default_bridge), "{left}");
    assert!(host(&first, &["nft", "list", "table", "inet", &n2.table]).is_some());
    assert_eq!(
        wget(&first, "http://127.0.0.1:8102/hostname").as_deref(),
        Some(b.as_str())
    );
    let out = second.ok(&["exec", "rb", "ping", "-c", "1", "-W", "5", &ip_b]);
    assert!(out.contains("1 packets received"), "{out}");
    second.ok(&["rm", "-f", "rb"]);
    second.assert_clean();
}

#[test]
fn ipv6_published_ports_reach_the_container_from_loopback_and_outside() {
    let q = Quai::new("netpub6");
    let outside = q.netns.run(Outside::link);
    q.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.206.0.0/24",
        "six",
    ]);
    let short6 = web(&q, "six", &["--network", "six", "-p", "8086:80"]);
    let short4 = web(&q, "four", &["-p", "8087:80"]);
    let gateway6 = q.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
        "six",
    ]);
    let gateway6 = gateway6
        .split_whitespace()
        .find(|g| g.contains(':'))
        .expect("an IPv6 gateway")
        .to_string();
    let host6 = format!("[{HOST_EXTERNAL6}]");
    let gw6 = format!("[{gateway6}]");
    for address in ["[::1]", host6.as_str(), gw6.as_str(), "127.0.0.1"] {
        assert_eq!(
            wget(&q, &format!("http://{address}:8086/hostname")).as_deref(),
            Some(short6.as_str()),
            "IPv6 network's published port from {address}"
        );
    }
    // [::1] reaches a container of an IPv4-only network too (docker-proxy's
    // behaviour), through the relay.
    assert_eq!(
        wget(&q, "http://[::1]:8087/hostname").as_deref(),
        Some(short4.as_str())
    );
    let from_outside = outside.ns.exec(&[
        "busybox",
        "timeout",
        "20",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{host6}:8086/hostname"),
    ]);
    assert_eq!(String::from_utf8_lossy(&from_outside.stdout).trim(), short6);
    // The relays go with their containers.
    q.ok(&["rm", "-f", "six", "four"]);
    assert_eq!(wget(&q, "http://[::1]:8086/hostname"), None);
    q.ok(&["network", "rm", "six"]);
    q.assert_clean();
}
