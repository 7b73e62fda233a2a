//! Networks as docker's `network create/ls/inspect/rm/prune` see them:
//! rows of `networks` holding the definition quai-net completed, put into
//! the kernel by quai-net's bridge driver. The default `bridge` network
//! (device `quai0`) is created on first use; `host` and `none` are
//! pseudo-networks with no row, listed as docker lists them.

use std::collections::BTreeMap;
use std::path::Path;

use quai_db::rusqlite::{params, Connection, OptionalExtension};
use quai_net::network::{pools_from_flags, DEFAULT_NETWORK};
use quai_net::{BridgeDriver, Network, NetworkRequest};
use serde_json::{json, Value};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::ids;
use crate::paths::Paths;
use crate::units::{now_nanos, rfc3339_nanos};

/// Names docker reserves: the default bridge and the two pseudo-networks.
pub const PREDEFINED: [&str; 3] = [DEFAULT_NETWORK, "host", "none"];

/// The state root whose kernel objects keep docker-like names.
pub const DEFAULT_ROOT: &str = "/var/lib/quai";

/// Names of what a state root puts into the host's kernel that other roots
/// must not share: its nftables table and its default bridge. The default
/// root has `quai` and `quai0`; any other root (tests, a second user) gets
/// names derived from its path, so that two roots on one host never hand
/// out addresses of one bridge independently, and `system reset` of one
/// leaves the other working. (User networks' bridges are named after
/// their random ids: they never collide.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelNames {
    pub table: String,
    pub default_bridge: String,
}

pub fn kernel_names(root: &Path) -> KernelNames {
    if root == Path::new(DEFAULT_ROOT) {
        return KernelNames {
            table: quai_net::nft::DEFAULT_TABLE.into(),
            default_bridge: quai_net::network::DEFAULT_BRIDGE.into(),
        };
    }
    use sha2::Digest;
    use std::os::unix::ffi::OsStrExt;
    let digest = sha2::Sha256::digest(root.as_os_str().as_bytes());
    let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    KernelNames {
        table: format!("{}-{tag}", quai_net::nft::DEFAULT_TABLE),
        default_bridge: format!("{}-{tag}", quai_net::network::DEFAULT_BRIDGE),
    }
}

/// quai's bridge driver over the state root's own nftables table.
pub fn driver(paths: &Paths) -> Result<BridgeDriver> {
    Ok(BridgeDriver::new(&kernel_names(&paths.root).table)?)
}

/// A network as stored.
#[derive(Debug, Clone)]
pub struct NetworkRecord {
    pub net: Network,
    pub created: i64,
}

/// `network create`'s flags.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: Option<String>,
    pub subnets: Vec<String>,
    pub gateways: Vec<String>,
    pub ip_ranges: Vec<String>,
    pub internal: bool,
    pub ipv6: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

fn decode(id: &str, created: i64, definition: &str) -> Result<NetworkRecord> {
    let net: Network = serde_json::from_str(definition).map_err(|e| EngineError::Corrupt {
        id: id.to_string(),
        reason: format!("network definition: {e}"),
    })?;
    Ok(NetworkRecord { net, created })
}

/// Every stored network, oldest first.
pub fn all(conn: &Connection) -> Result<Vec<NetworkRecord>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, created, definition FROM networks ORDER BY created")?;
    let rows: Vec<(String, i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    rows.iter().map(|(id, c, d)| decode(id, *c, d)).collect()
}

/// A network by name, full id or unique id prefix (docker's lookup order).
pub fn find(conn: &Connection, name_or_id: &str) -> Result<NetworkRecord> {
    let exact: Option<(String, i64, String)> = conn
        .prepare_cached(
            "SELECT id, created, definition FROM networks WHERE name = ?1 OR id = ?1 \
             ORDER BY name = ?1 DESC LIMIT 1",
        )?
        .query_row([name_or_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if let Some((id, c, d)) = exact {
        return decode(&id, c, &d);
    }
    let missing = || EngineError::NoSuchNetwork(name_or_id.to_string());
    if name_or_id.is_empty() || !name_or_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(missing());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT id, created, definition FROM networks WHERE substr(id, 1, length(?1)) = ?1 LIMIT 2",
    )?;
    let rows: Vec<(String, i64, String)> = stmt
        .query_map([name_or_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    match rows.as_slice() {
        [(id, c, d)] => decode(id, *c, d),
        [] => Err(missing()),
        _ => Err(EngineError::invalid(format!(
            "network {name_or_id} is ambiguous ({} matches found based on ID prefix)",
            rows.len()
        ))),
    }
}

fn insert(conn: &Connection, rec: &NetworkRecord) -> Result<()> {
    let definition = serde_json::to_string(&rec.net)
        .map_err(|e| EngineError::invalid(format!("encode network {}: {e}", rec.net.name)))?;
    conn.prepare_cached(
        "INSERT INTO networks (id, name, created, definition) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![rec.net.id, rec.net.name, rec.created, definition])?;
    Ok(())
}

fn network_event(conn: &Connection, net: &Network, action: &str) -> Result<()> {
    let attrs: BTreeMap<String, String> = [
        ("name".to_string(), net.name.clone()),
        ("type".to_string(), "bridge".to_string()),
    ]
    .into();
    crate::record::event(conn, "network", action, &net.id, &attrs)
}

/// Ids of containers attached to `network_id` that hold a lease (run).
pub fn active_containers(conn: &Connection, network_id: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT container_id FROM container_networks WHERE network_id = ?1 \
         AND (ipv4 IS NOT NULL OR ipv6 IS NOT NULL OR endpoint IS NOT NULL)",
    )?;
    let ids = stmt
        .query_map([network_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Stable made-up id of a pseudo-network (`host`, `none`): docker shows
/// one, and `network inspect host` must give the same each time.
fn pseudo_id(name: &str) -> String {
    quai_image::digest::Digest::of(format!("quai pseudo-network {name}").as_bytes())
        .hex()
        .to_string()
}

impl Engine {
    /// The default `bridge` network's record, created (in the database;
    /// the kernel side comes with its first container) when missing.
    pub fn default_network(&mut self) -> Result<NetworkRecord> {
        match find(self.conn(), DEFAULT_NETWORK) {
            Ok(rec) => return Ok(rec),
            Err(EngineError::NoSuchNetwork(_)) => {}
            Err(e) => return Err(e),
        }
        let facts = driver(&self.paths)?.host_facts()?;
        let tx = self.store.db().write()?;
        // Another command may have made it since we looked.
        if let Ok(rec) = find(&tx, DEFAULT_NETWORK) {
            return Ok(rec);
        }
        let existing: Vec<Network> = all(&tx)?.into_iter().map(|r| r.net).collect();
        let names = kernel_names(&self.paths.root);
        let mut options = BTreeMap::new();
        if names.default_bridge != quai_net::network::DEFAULT_BRIDGE {
            options.insert(
                quai_net::network::OPT_BRIDGE_NAME.to_string(),
                names.default_bridge,
            );
        }
        let net = Network::create(
            &NetworkRequest {
                id: ids::new_id()?,
                name: DEFAULT_NETWORK.into(),
                is_default: true,
                options,
                ..Default::default()
            },
            &existing,
            &facts,
        )?;
        let rec = NetworkRecord {
            net,
            created: now_nanos(),
        };
        // No event: docker's default network exists before anyone asks.
        insert(&tx, &rec)?;
        tx.commit()?;
        Ok(rec)
    }

    /// `network create`: validated against the other networks and the
    /// host's routes, recorded, and put into the kernel; nothing stays
    /// when a step fails.
    pub fn network_create(&mut self, req: &NetworkCreate) -> Result<NetworkRecord> {
        if PREDEFINED.contains(&req.name.as_str()) {
            return Err(EngineError::conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let mut chars = req.name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(EngineError::invalid(format!(
                "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                req.name
            )));
        }
        let pools = pools_from_flags(&req.subnets, &req.gateways, &req.ip_ranges)?;
        let facts = driver(&self.paths)?.host_facts()?;
        // The default network takes its subnet first, as with docker (whose
        // docker0 exists before any user network).
        self.default_network()?;
        let tx = self.store.db().write()?;
        let existing: Vec<Network> = all(&tx)?.into_iter().map(|r| r.net).collect();
        let net = Network::create(
            &NetworkRequest {
                id: ids::new_id()?,
                name: req.name.clone(),
                driver: req.driver.clone(),
                pools,
                ipv6: req.ipv6,
                internal: req.internal,
                labels: req.labels.clone(),
                options: req.options.clone(),
                is_default: false,
            },
            &existing,
            &facts,
        )
        .map_err(|e| match e {
            quai_net::NetError::InvalidConfig(m) if m.contains("already exists") => {
                EngineError::conflict(m)
            }
            other => other.into(),
        })?;
        let rec = NetworkRecord {
            net,
            created: now_nanos(),
        };
        insert(&tx, &rec)?;
        network_event(&tx, &rec.net, "create")?;
        tx.commit()?;
        let driver = driver(&self.paths)?;
        if let Err(e) = driver.ensure_network(&rec.net) {
            let _ = driver.remove_network(&rec.net);
            let _ = self
                .conn()
                .execute("DELETE FROM networks WHERE id = ?1", [&rec.net.id]);
            return Err(e.into());
        }
        Ok(rec)
    }

    /// Every network, docker's three predefined ones included (`bridge` is
    /// recorded on the way if missing).
    pub fn network_list(&mut self) -> Result<Vec<NetworkRecord>> {
        self.default_network()?;
        all(self.conn())
    }

    pub fn network_get(&mut self, name_or_id: &str) -> Result<NetworkRecord> {
        if name_or_id == DEFAULT_NETWORK {
            return self.default_network();
        }
        find(self.conn(), name_or_id)
    }

    /// docker's `network inspect` JSON of a network, or of `host`/`none`.
    pub fn network_inspect(&mut self, name_or_id: &str) -> Result<Value> {
        if let Some(pseudo) = ["host", "none"]
            .into_iter()
            .find(|p| *p == name_or_id || pseudo_id(p).starts_with(name_or_id))
            .filter(|_| !name_or_id.is_empty())
        {
            return Ok(pseudo_json(pseudo));
        }
        let rec = self.network_get(name_or_id)?;
        let containers = self.network_members(&rec.net.id)?;
        Ok(network_json(&rec, containers))
    }

    /// `Containers` of `network inspect`: the running members.
    fn network_members(&mut self, network_id: &str) -> Result<Value> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT c.id, c.name, cn.endpoint FROM container_networks cn \
             JOIN containers c ON c.id = cn.container_id \
             WHERE cn.network_id = ?1 AND cn.endpoint IS NOT NULL",
        )?;
        let rows: Vec<(String, String, String)> = stmt
            .query_map([network_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut out = serde_json::Map::new();
        for (id, name, endpoint) in rows {
            let Ok(ep) = serde_json::from_str::<quai_net::Endpoint>(&endpoint) else {
                continue;
            };
            out.insert(
                id.clone(),
                json!({
                    "Name": name,
                    "EndpointID": endpoint_id(&ep),
                    "MacAddress": ep.mac,
                    "IPv4Address": ep.ipv4.map(|n| n.to_string()).unwrap_or_default(),
                    "IPv6Address": ep.ipv6.map(|n| n.to_string()).unwrap_or_default(),
                }),
            );
        }
        Ok(Value::Object(out))
    }

    /// `network rm`: refused for predefined networks and networks with
    /// running containers; stopped containers lose their attachment (they
    /// fail to start until reconnected, as with docker).
    pub fn network_remove(&mut self, name_or_id: &str) -> Result<String> {
        if PREDEFINED.contains(&name_or_id) {
            return Err(EngineError::Conflict(format!(
                "{name_or_id} is a pre-defined network and cannot be removed"
            )));
        }
        let rec = find(self.conn(), name_or_id)?;
        if rec.net.is_default {
            return Err(EngineError::Conflict(format!(
                "{} is a pre-defined network and cannot be removed",
                rec.net.name
            )));
        }
        self.reclaim_network_leases(&rec.net.id)?;
        let tx = self.store.db().write()?;
        if !active_containers(&tx, &rec.net.id)?.is_empty() {
            return Err(EngineError::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                rec.net.name, rec.net.id
            )));
        }
        tx.execute(
            "DELETE FROM container_networks WHERE network_id = ?1",
            [&rec.net.id],
        )?;
        tx.execute("DELETE FROM networks WHERE id = ?1", [&rec.net.id])?;
        network_event(&tx, &rec.net, "destroy")?;
        tx.commit()?;
        // The row is gone first: a crash now leaves a bridge that `system
        // reset` (or a network re-created with the same name, which gets a
        // new device) does not trip over.
        let _ = quai_net::dns::stop_server(&self.paths.dns_config(&rec.net.id));
        driver(&self.paths)?.remove_network(&rec.net)?;
        Ok(rec.net.name)
    }

    /// Leases of `network_id` held by containers whose monitor is gone are
    /// released first, so that a killed container does not pin a network.
    fn reclaim_network_leases(&mut self, network_id: &str) -> Result<()> {
        for id in active_containers(self.conn(), network_id)? {
            self.reclaim_container_network(&id)?;
        }
        Ok(())
    }

    /// `network prune`: every user network without running containers.
    pub fn network_prune(&mut self) -> Result<Vec<String>> {
        self.reclaim_networking()?;
        let mut removed = Vec::new();
        for rec in all(self.conn())? {
            if rec.net.is_default {
                continue;
            }
            self.reclaim_network_leases(&rec.net.id)?;
            if !active_containers(self.conn(), &rec.net.id)?.is_empty() {
                continue;
            }
            match self.network_remove(&rec.net.id) {
                Ok(name) => removed.push(name),
                Err(EngineError::Conflict(_)) | Err(EngineError::NoSuchNetwork(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// `system reset`'s network part: every bridge, veth and nftables rule
    /// quai made, every DNS server, every network row.
    pub fn network_reset(&mut self) -> Result<Vec<String>> {
        let nets: Vec<Network> = all(self.conn())?.into_iter().map(|r| r.net).collect();
        for net in &nets {
            let _ = quai_net::dns::stop_server(&self.paths.dns_config(&net.id));
        }
        let removed = driver(&self.paths)?.reset(&nets)?;
        let tx = self.store.db().write()?;
        tx.execute("DELETE FROM container_ports", [])?;
        tx.execute("DELETE FROM container_networks", [])?;
        tx.execute("DELETE FROM networks", [])?;
        tx.commit()?;
        Ok(removed)
    }
}

/// docker's EndpointID: 64 hex digits naming one attachment.
pub fn endpoint_id(ep: &quai_net::Endpoint) -> String {
    quai_image::digest::Digest::of(format!("{} {}", ep.container_id, ep.network_id).as_bytes())
        .hex()
        .to_string()
}

fn pseudo_json(name: &str) -> Value {
    json!({
        "Name": name,
        "Id": pseudo_id(name),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": if name == "host" { "host" } else { "null" },
        "EnableIPv4": false,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": Value::Null, "Config": []},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": {},
        "Labels": {},
    })
}

/// docker's `network inspect` shape.
pub fn network_json(rec: &NetworkRecord, containers: Value) -> Value {
    let net = &rec.net;
    let config: Vec<Value> = net
        .subnets()
        .map(|s| {
            let mut v = json!({"Subnet": s.subnet.to_string(), "Gateway": s.gateway.to_string()});
            if let Some(r) = s.ip_range {
                v["IPRange"] = json!(r.to_string());
            }
            v
        })
        .collect();
    let mut options: BTreeMap<String, String> = net.options.clone();
    if net.is_default {
        options.insert(
            "com.docker.network.bridge.default_bridge".into(),
            "true".into(),
        );
        options.insert(
            "com.docker.network.bridge.enable_ip_masquerade".into(),
            net.masquerade.to_string(),
        );
        options.insert("com.docker.network.bridge.name".into(), net.bridge.clone());
        options.insert("com.docker.network.driver.mtu".into(), net.mtu.to_string());
    }
    json!({
        "Name": net.name,
        "Id": net.id,
        "Created": rfc3339_nanos(rec.created),
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv4": net.ipv4.is_some(),
        "EnableIPv6": net.ipv6.is_some(),
        "IPAM": {"Driver": "default", "Options": Value::Null, "Config": config},
        "Internal": net.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": net.labels,
    })
}

/// `network ls` rows of the pseudo-networks, after the stored ones.
pub fn pseudo_networks() -> Vec<(String, String, String)> {
    ["host", "none"]
        .into_iter()
        .map(|n| {
            (
                pseudo_id(n),
                n.to_string(),
                if n == "host" { "host" } else { "null" }.to_string(),
            )
        })
        .collect()
}
