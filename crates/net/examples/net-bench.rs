//! Drives quai-net for bench/net.sh until the engine wires it into `quai
//! run`: sets a user network up in the current network namespace (the
//! bench runs it inside a namespace of its own), attaches the given
//! namespaces as containers, publishes a port, and reports how long each
//! step took.
//!
//! ```text
//! net-bench up TABLE SUBNET PUBLISH_HOST_PORT:CONTAINER_PORT NETNS_PATH...
//! net-bench down TABLE SUBNET
//! ```
//! `up` prints one `container NETNS IP` line per namespace (the first one
//! gets the published port) and `time STEP MICROSECONDS` lines.

use std::fs::File;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Instant;

use quai_net::network::{HostFacts, Network, NetworkRequest, PoolRequest};
use quai_net::ports::{parse_port_spec, reserve};
use quai_net::{allocate_addresses, BridgeDriver, EndpointRequest};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("up") if args.len() >= 5 => up(&args[1], &args[2], &args[3], &args[4..]),
        Some("down") if args.len() == 3 => down(&args[1], &args[2]),
        _ => Err(
            "usage: net-bench up TABLE SUBNET HOSTPORT:PORT NETNS... | net-bench down TABLE SUBNET"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("net-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn id_for(text: &str) -> String {
    // Ids only need to be unique hex within one bench run.
    let mut id = String::new();
    for (i, byte) in text.bytes().cycle().take(32).enumerate() {
        id.push_str(&format!("{:02x}", byte.wrapping_add(i as u8)));
    }
    id
}

fn up(
    table: &str,
    subnet: &str,
    publish: &str,
    namespaces: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    let driver = BridgeDriver::new(table)?;
    let started = Instant::now();
    let network = bench_network(table, subnet, &driver.host_facts()?)?;
    driver.ensure_network(&network)?;
    println!("time network {}", started.elapsed().as_micros());

    let mut used = Vec::new();
    for (index, path) in namespaces.iter().enumerate() {
        let netns = File::open(path)?;
        let started = Instant::now();
        let (ipv4, ipv6) = allocate_addresses(&network, &used, None, None)?;
        let request = EndpointRequest {
            container_id: id_for(path),
            ifname: "eth0".into(),
            ipv4,
            ipv6,
            mac: None,
        };
        let endpoint = driver.attach(&network, &request, netns.as_fd())?;
        println!("time attach {}", started.elapsed().as_micros());
        if index == 0 {
            let started = Instant::now();
            let reservation = reserve(&parse_port_spec(publish)?, &[])?;
            driver.publish(&network, &endpoint, &reservation.bindings)?;
            println!("time publish {}", started.elapsed().as_micros());
            // The reservation only guards against other programs taking
            // the port; the bench exits right away.
            drop(reservation);
        }
        let address = endpoint.ipv4.ok_or("no IPv4 address")?.addr();
        used.push(address);
        println!("container {path} {address}");
    }
    if let Some(gateway) = network.ipv4.as_ref().map(|s| s.gateway) {
        println!("gateway {gateway}");
    }
    Ok(())
}

/// The bench's network: the same definition for `up` and `down`.
fn bench_network(
    table: &str,
    subnet: &str,
    facts: &HostFacts,
) -> Result<Network, Box<dyn std::error::Error>> {
    let request = NetworkRequest {
        id: id_for(table),
        name: format!("bench-{table}"),
        pools: vec![PoolRequest {
            subnet: subnet.parse()?,
            gateway: None,
            ip_range: None,
        }],
        ..Default::default()
    };
    Ok(Network::create(&request, &[], facts)?)
}

fn down(table: &str, subnet: &str) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let network = bench_network(table, subnet, &HostFacts::default())?;
    let removed = BridgeDriver::new(table)?.reset(&[network])?;
    println!(
        "time reset {} ({} links)",
        started.elapsed().as_micros(),
        removed.len()
    );
    Ok(())
}
