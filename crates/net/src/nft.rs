//! quai's nftables rules, all in one `inet` table of its own.
//!
//! The chains are fixed; everything that changes with networks and
//! containers is an element of a set or map. Adding a network, a container
//! or a published port is one atomic `nft -f -` batch of element additions,
//! and removing one deletes exactly those elements: no rule handles to
//! track, nothing to scan, and the kernel matches any number of networks
//! and ports with one set lookup per packet.
//!
//! Sets and maps:
//! - `bridges`: every bridge of quai; `self_pairs`: `bridge . bridge`, for
//!   traffic routed back out of the bridge it came from (hairpin);
//!   `internal`: bridges of `--internal` networks.
//! - `masq4`/`masq6`: subnets whose outbound traffic is masqueraded;
//!   `subnets4`/`subnets6`: every subnet of quai.
//! - `ports4`/`ports6`: published ports, `host address . protocol . port`
//!   (`0.0.0.0/0` for every address) to `container address . port`; each
//!   element's comment is the container id, so that stale ones can be
//!   found.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ipnet::IpNet;

use crate::error::{NetError, Result};
use crate::network::Network;
use crate::ports::PortBinding;

/// The table quai uses unless told otherwise (tests use their own).
pub const DEFAULT_TABLE: &str = "quai";
/// Version of the chains `ensure_table` writes: bumped whenever they change,
/// so that bridges labelled under older chains bring the new ones in.
pub const RULES_VERSION: u32 = 2;

/// One published port as installed in `ports4`/`ports6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortElement {
    /// `4` or `6`.
    pub family: u8,
    /// Host side: `0.0.0.0/0`, `::/0` or one address.
    pub host: String,
    pub protocol: String,
    pub host_port: u16,
    pub container_address: IpAddr,
    pub container_port: u16,
    /// The container id the element belongs to.
    pub owner: Option<String>,
}

/// The nftables side of quai: a table name, and `nft` to drive it.
#[derive(Debug, Clone)]
pub struct Nftables {
    table: String,
}

impl Nftables {
    pub fn new(table: &str) -> Result<Nftables> {
        if table.is_empty()
            || table.len() > 64
            || !table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(NetError::InvalidConfig(format!(
                "invalid nftables table name {table:?}: use letters, digits, '-' and '_'"
            )));
        }
        Ok(Nftables {
            table: table.to_owned(),
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table, its sets and maps if missing, and (re)writes its
    /// chains, in one transaction. Safe to repeat: sets keep their elements
    /// and the chains are flushed before their rules are added again.
    pub fn ensure_table(&self) -> Result<()> {
        run(&self.base_batch(), "create quai's table")
    }

    fn base_batch(&self) -> String {
        let t = format!("inet {}", self.table);
        let mut b = String::new();
        b.push_str(&format!("add table {t}\n"));
        for (name, kind) in [
            ("bridges", "type ifname;"),
            ("internal", "type ifname;"),
            ("self_pairs", "type ifname . ifname;"),
            ("masq4", "type ipv4_addr; flags interval;"),
            ("masq6", "type ipv6_addr; flags interval;"),
            ("subnets4", "type ipv4_addr; flags interval;"),
            ("subnets6", "type ipv6_addr; flags interval;"),
        ] {
            b.push_str(&format!("add set {t} {name} {{ {kind} }}\n"));
        }
        b.push_str(&format!(
            "add map {t} ports4 {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }}\n"
        ));
        b.push_str(&format!(
            "add map {t} ports6 {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }}\n"
        ));
        let chains: [(&str, &str, &[&str]); 4] = [
            (
                "prerouting",
                "type nat hook prerouting priority dstnat; policy accept;",
                &[
                    // Published ports, to any of the host's own addresses.
                    "fib daddr type local meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @ports4",
                    "fib daddr type local meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6",
                ],
            ),
            (
                "output",
                "type nat hook output priority -100; policy accept;",
                &[
                    // [::1] cannot be DNATed to a container (no route_localnet
                    // for IPv6): the loopback relay (relay.rs) serves it.
                    "ip6 daddr ::1 return",
                    // The host itself reaching a published port, 127.0.0.1 included.
                    "fib daddr type local meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @ports4",
                    "fib daddr type local meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6",
                ],
            ),
            (
                "postrouting",
                "type nat hook postrouting priority srcnat; policy accept;",
                &[
                    // Hairpin: a container reaching a published port of its
                    // own network must see the answer come back through the
                    // host, so the host must be the source.
                    "ct status dnat ip saddr @subnets4 oifname @bridges masquerade",
                    "ct status dnat ip6 saddr @subnets6 oifname @bridges masquerade",
                    // 127.0.0.1:port from the host (needs route_localnet on the bridge).
                    "ip saddr 127.0.0.0/8 oifname @bridges masquerade",
                    // Outbound traffic of non-internal networks.
                    "ip saddr @masq4 oifname != @bridges masquerade",
                    "ip6 saddr @masq6 oifname != @bridges masquerade",
                ],
            ),
            (
                "forward",
                "type filter hook forward priority filter; policy accept;",
                &[
                    "iifname . oifname @self_pairs accept",
                    // Internal networks: nothing in, nothing out.
                    "iifname @internal drop",
                    "oifname @internal drop",
                    // Published ports are reachable from anywhere.
                    "ct status dnat accept",
                    // Different networks are isolated from each other.
                    "iifname @bridges oifname @bridges drop",
                    // From outside, only answers to the containers' own
                    // connections reach them; the rest goes through
                    // published ports.
                    "oifname @bridges ct state established,related accept",
                    "oifname @bridges drop",
                ],
            ),
        ];
        for (name, base, rules) in chains {
            b.push_str(&format!("add chain {t} {name} {{ {base} }}\n"));
            b.push_str(&format!("flush chain {t} {name}\n"));
            for rule in rules {
                b.push_str(&format!("add rule {t} {name} {rule}\n"));
            }
        }
        b
    }

    /// Elements a network contributes: (set, element) pairs.
    fn network_elements(network: &Network) -> Vec<(&'static str, String)> {
        let bridge = format!("\"{}\"", network.bridge);
        let mut elements = vec![
            ("bridges", bridge.clone()),
            ("self_pairs", format!("{bridge} . {bridge}")),
        ];
        if network.internal {
            elements.push(("internal", bridge.clone()));
        }
        for subnet in network.subnets() {
            let (all, masq) = match subnet.subnet {
                IpNet::V4(_) => ("subnets4", "masq4"),
                IpNet::V6(_) => ("subnets6", "masq6"),
            };
            elements.push((all, subnet.subnet.to_string()));
            if !network.internal && network.masquerade {
                elements.push((masq, subnet.subnet.to_string()));
            }
        }
        elements
    }

    /// Adds the elements of `network` (idempotent).
    pub fn add_network(&self, network: &Network) -> Result<()> {
        let t = format!("inet {}", self.table);
        let batch: String = Self::network_elements(network)
            .iter()
            .map(|(set, element)| format!("add element {t} {set} {{ {element} }}\n"))
            .collect();
        run(&batch, &format!("add network {} to nftables", network.name))
    }

    /// Removes the elements of `network`; elements already gone are fine.
    pub fn remove_network(&self, network: &Network) -> Result<()> {
        let t = format!("inet {}", self.table);
        // Deleting a missing element fails the whole batch: adding it first
        // (a no-op when present) makes the pair succeed either way.
        let batch: String = Self::network_elements(network)
            .iter()
            .map(|(set, element)| {
                format!(
                    "add element {t} {set} {{ {element} }}\ndelete element {t} {set} {{ {element} }}\n"
                )
            })
            .collect();
        run(
            &batch,
            &format!("remove network {} from nftables", network.name),
        )
    }

    /// Installs port bindings of a container, in one transaction.
    pub fn add_ports(&self, elements: &[PortElement]) -> Result<()> {
        if elements.is_empty() {
            return Ok(());
        }
        let t = format!("inet {}", self.table);
        let batch: String = elements
            .iter()
            .map(|e| {
                let comment = e
                    .owner
                    .as_ref()
                    .map(|o| format!(" comment \"{o}\""))
                    .unwrap_or_default();
                format!(
                    "add element {t} ports{} {{ {}{comment} : {} . {} }}\n",
                    e.family,
                    port_key(e),
                    e.container_address,
                    e.container_port
                )
            })
            .collect();
        run(&batch, "publish ports")
    }

    /// Deletes installed port elements (as [`Self::ports`] listed them).
    pub fn remove_ports(&self, elements: &[PortElement]) -> Result<()> {
        if elements.is_empty() {
            return Ok(());
        }
        let t = format!("inet {}", self.table);
        // Re-adding the listed element first makes the delete succeed even
        // if a concurrent reclaim removed it meanwhile.
        let batch: String = elements
            .iter()
            .map(|e| {
                format!(
                    "add element {t} ports{family} {{ {key} : {address} . {port} }}\ndelete element {t} ports{family} {{ {key} }}\n",
                    family = e.family,
                    key = port_key(e),
                    address = e.container_address,
                    port = e.container_port
                )
            })
            .collect();
        run(&batch, "unpublish ports")
    }

    /// Every published port in the table (none if the table is missing).
    pub fn ports(&self) -> Result<Vec<PortElement>> {
        let mut found = Vec::new();
        for family in [4u8, 6] {
            let output = Command::new("nft")
                .args([
                    "-j",
                    "list",
                    "map",
                    "inet",
                    &self.table,
                    &format!("ports{family}"),
                ])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| NetError::Nftables {
                    what: "run nft".into(),
                    detail: e.to_string(),
                })?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                if stderr.contains("No such file or directory") {
                    continue;
                }
                return Err(NetError::Nftables {
                    what: "list published ports".into(),
                    detail: stderr.trim().to_owned(),
                });
            }
            let json: serde_json::Value =
                serde_json::from_slice(&output.stdout).map_err(|e| NetError::Nftables {
                    what: "parse nft's JSON listing".into(),
                    detail: e.to_string(),
                })?;
            found.extend(parse_port_listing(&json, family));
        }
        Ok(found)
    }

    /// Deletes the whole table (nothing if it does not exist).
    pub fn delete_table(&self) -> Result<()> {
        let t = format!("inet {}", self.table);
        run(
            &format!("add table {t}\ndelete table {t}\n"),
            "delete quai's table",
        )
    }
}

fn port_key(e: &PortElement) -> String {
    format!("{} . {} . {}", e.host, e.protocol, e.host_port)
}

/// Builds the elements that publish `bindings` to a container.
pub fn port_elements(
    bindings: &[PortBinding],
    container_v4: Option<IpAddr>,
    container_v6: Option<IpAddr>,
    owner: &str,
) -> Result<Vec<PortElement>> {
    let mut elements = Vec::new();
    for binding in bindings {
        let element = |family: u8, host: String, address: IpAddr| PortElement {
            family,
            host,
            protocol: binding.protocol.as_str().to_owned(),
            host_port: binding.host_port,
            container_address: address,
            container_port: binding.container_port,
            owner: Some(owner.to_owned()),
        };
        match binding.host_ip {
            None => {
                if let Some(v4) = container_v4 {
                    elements.push(element(4, "0.0.0.0/0".into(), v4));
                }
                if let Some(v6) = container_v6 {
                    elements.push(element(6, "::/0".into(), v6));
                }
            }
            Some(host) => {
                let (family, wildcard, container, version) = match host {
                    IpAddr::V4(_) => (4, "0.0.0.0/0", container_v4, "IPv4"),
                    IpAddr::V6(_) => (6, "::/0", container_v6, "IPv6"),
                };
                let address = container.ok_or_else(|| {
                    NetError::InvalidConfig(format!(
                        "cannot publish {} to a container without an {version} address",
                        binding.host_address()
                    ))
                })?;
                let host = if host.is_unspecified() {
                    wildcard.to_owned()
                } else {
                    host.to_string()
                };
                elements.push(element(family, host, address));
            }
        }
    }
    Ok(elements)
}

fn parse_port_listing(json: &serde_json::Value, family: u8) -> Vec<PortElement> {
    let mut found = Vec::new();
    let Some(items) = json.get("nftables").and_then(|v| v.as_array()) else {
        return found;
    };
    for item in items {
        let Some(elements) = item
            .get("map")
            .and_then(|m| m.get("elem"))
            .and_then(|e| e.as_array())
        else {
            continue;
        };
        for pair in elements {
            if let Some(element) = parse_port_element(pair, family) {
                found.push(element);
            }
        }
    }
    found
}

/// One `[key, value]` pair of a map listing; the key is wrapped in `elem`
/// when the element has a comment.
fn parse_port_element(pair: &serde_json::Value, family: u8) -> Option<PortElement> {
    let pair = pair.as_array()?;
    let (key, value) = (pair.first()?, pair.get(1)?);
    let (key, owner) = match key.get("elem") {
        Some(elem) => (
            elem.get("val")?,
            elem.get("comment")
                .and_then(|c| c.as_str())
                .map(str::to_owned),
        ),
        None => (key, None),
    };
    let key = key.get("concat")?.as_array()?;
    let host = match key.first()? {
        serde_json::Value::String(address) => address.clone(),
        other => {
            let prefix = other.get("prefix")?;
            format!(
                "{}/{}",
                prefix.get("addr")?.as_str()?,
                prefix.get("len")?.as_u64()?
            )
        }
    };
    let protocol = key.get(1)?.as_str()?.to_owned();
    let host_port = u16::try_from(key.get(2)?.as_u64()?).ok()?;
    let value = value.get("concat")?.as_array()?;
    let container_address = value.first()?.as_str()?.parse().ok()?;
    let container_port = u16::try_from(value.get(1)?.as_u64()?).ok()?;
    Some(PortElement {
        family,
        host,
        protocol,
        host_port,
        container_address,
        container_port,
        owner,
    })
}

/// Runs one batch through `nft -f -`: all of it applies, or none.
fn run(batch: &str, what: &str) -> Result<()> {
    let failed = |detail: String| NetError::Nftables {
        what: what.to_owned(),
        detail,
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            failed(format!(
                "cannot run nft (is the nftables package installed?): {e}"
            ))
        })?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(batch.as_bytes()))
        .unwrap_or(Ok(()));
    let output = child
        .wait_with_output()
        .map_err(|e| failed(format!("waiting for nft: {e}")))?;
    if !output.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    written.map_err(|e| failed(format!("writing to nft: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Protocol;

    #[test]
    fn table_names_are_checked() {
        assert!(Nftables::new("quai").is_ok());
        assert!(Nftables::new("quai-test_1").is_ok());
        assert!(Nftables::new("bad name").is_err());
        assert!(Nftables::new("").is_err());
    }

    #[test]
    fn elements_for_wildcard_and_specific_hosts() {
        let any = PortBinding {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let local = PortBinding {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            protocol: Protocol::Udp,
            ..any
        };
        let v4: IpAddr = "172.18.0.2".parse().unwrap();
        let v6: IpAddr = "fd00::2".parse().unwrap();
        let elements = port_elements(&[any, local], Some(v4), Some(v6), "c1").unwrap();
        let keys: Vec<String> = elements
            .iter()
            .map(|e| format!("{} {}", e.family, port_key(e)))
            .collect();
        assert_eq!(
            keys,
            [
                "4 0.0.0.0/0 . tcp . 8080",
                "6 ::/0 . tcp . 8080",
                "4 127.0.0.1 . udp . 8080"
            ]
        );
        let v6_host = PortBinding {
            host_ip: Some("::1".parse().unwrap()),
            ..any
        };
        assert!(port_elements(&[v6_host], Some(v4), None, "c1").is_err());
    }

    #[test]
    fn parses_nfts_json_listing() {
        let json: serde_json::Value = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"map": {"family": "inet", "name": "ports4", "table": "qt", "elem": [[{"elem": {"val": {"concat": [{"prefix": {"addr": "0.0.0.0", "len": 0}}, "tcp", 8080]}, "comment": "abc"}}, {"concat": ["172.18.0.2", 80]}], [{"concat": ["127.0.0.1", "udp", 53]}, {"concat": ["172.18.0.3", 53]}]]}}]}"#,
        )
        .unwrap();
        let elements = parse_port_listing(&json, 4);
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[0].host, "0.0.0.0/0");
        assert_eq!(elements[0].owner.as_deref(), Some("abc"));
        assert_eq!(elements[0].container_port, 80);
        assert_eq!(elements[1].host, "127.0.0.1");
        assert_eq!(elements[1].protocol, "udp");
        assert!(elements[1].owner.is_none());
    }

    #[test]
    fn base_batch_is_one_transaction_of_fixed_chains() {
        let nft = Nftables::new("t").unwrap();
        let batch = nft.base_batch();
        assert!(batch.starts_with("add table inet t\n"));
        assert_eq!(batch.matches("flush chain").count(), 4);
        assert!(batch.contains("dnat ip to ip daddr . meta l4proto . th dport map @ports4"));
    }
}
