//! `create`: docker's Config and HostConfig checked, merged with the
//! image's defaults, and recorded as one database transaction (the
//! container's row, its volumes, the `create` event). Nothing else is
//! made: directories appear when the container first starts.

use std::collections::BTreeMap;

use quai_image::spec::{ImageConfig, Platform};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::ids;
use crate::logs::LogOptions;
use crate::mounts;
use crate::record::{self, Container, Definition, State};
use crate::spec;
use crate::types::{Config, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig};
use crate::units::{now_nanos, parse_signal};
use crate::volumes;

/// docker's `POST /containers/create` body (and its `platform` query
/// parameter).
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: Option<String>,
    pub config: Config,
    pub host_config: HostConfig,
    pub networking_config: NetworkingConfig,
    /// The platform asked for (`--platform`): an image of another one is
    /// refused. Without it, an image not of the host's gets a warning.
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub id: String,
    pub name: String,
    pub warnings: Vec<String>,
}

/// Container defaults from an image config (`Env`, `Cmd`, ...).
pub fn image_defaults(image: &ImageConfig) -> Config {
    // Docker writes absent fields as null ("Volumes": null, "Entrypoint":
    // null...): drop them, or one null would make the whole config unread.
    image
        .config
        .as_ref()
        .and_then(|v| {
            let mut v = v.clone();
            if let serde_json::Value::Object(fields) = &mut v {
                fields.retain(|_, field| !field.is_null());
            }
            serde_json::from_value(v).ok()
        })
        .unwrap_or_default()
}

fn env_key(e: &str) -> &str {
    e.split('=').next().unwrap_or(e)
}

/// The image's environment with the user's on top (same key: the user's).
pub fn merge_env(image: &[String], user: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(image.len() + user.len());
    for e in image.iter().chain(user) {
        match out.iter_mut().find(|o| env_key(o) == env_key(e)) {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

/// Merges the user's config over the image's, as docker's daemon does.
pub fn merge_config(user: &Config, image: &Config) -> Config {
    let mut c = user.clone();
    c.env = merge_env(&image.env, &user.env);
    // An entrypoint given by the user drops the image's command.
    if c.entrypoint.is_none() {
        c.entrypoint = image.entrypoint.clone();
        if c.cmd.is_none() {
            c.cmd = image.cmd.clone();
        }
    }
    if c.working_dir.is_empty() {
        c.working_dir = image.working_dir.clone();
    }
    if c.user.is_empty() {
        c.user = image.user.clone();
    }
    let mut labels = image.labels.clone();
    labels.extend(user.labels.clone());
    c.labels = labels;
    if c.stop_signal.is_none() {
        c.stop_signal = image.stop_signal.clone();
    }
    c.healthcheck = merge_health(user.healthcheck.as_ref(), image.healthcheck.as_ref());
    let mut exposed = image.exposed_ports.clone().unwrap_or_default();
    exposed.extend(user.exposed_ports.clone().unwrap_or_default());
    c.exposed_ports = (!exposed.is_empty()).then_some(exposed);
    let mut vols = image.volumes.clone().unwrap_or_default();
    vols.extend(user.volumes.clone().unwrap_or_default());
    c.volumes = (!vols.is_empty()).then_some(vols);
    c
}

fn merge_health(user: Option<&HealthConfig>, image: Option<&HealthConfig>) -> Option<HealthConfig> {
    match (user, image) {
        (None, i) => i.cloned(),
        (Some(u), None) => Some(u.clone()),
        (Some(u), Some(i)) => {
            let mut h = u.clone();
            if h.test.is_empty() {
                h.test = i.test.clone();
            }
            if h.interval == 0 {
                h.interval = i.interval;
            }
            if h.timeout == 0 {
                h.timeout = i.timeout;
            }
            if h.retries == 0 {
                h.retries = i.retries;
            }
            if h.start_period == 0 {
                h.start_period = i.start_period;
            }
            if h.start_interval == 0 {
                h.start_interval = i.start_interval;
            }
            Some(h)
        }
    }
}

/// The network options of a host config, checked on their own (docker's
/// messages); the network mode defaults to the `bridge` network.
fn check_network_options(hc: &mut HostConfig) -> Result<()> {
    if matches!(hc.network_mode.as_str(), "" | "default") {
        hc.network_mode = quai_net::network::DEFAULT_NETWORK.into();
    }
    let mode = hc.network_mode.clone();
    if let Some(other) = mode.strip_prefix("container:") {
        if other.is_empty() {
            return Err(EngineError::invalid(
                "invalid container format container:<name|id>",
            ));
        }
    }
    crate::netsetup::dns_overrides(hc)?;
    crate::netsetup::extra_hosts(hc, Some(std::net::Ipv4Addr::UNSPECIFIED.into()))?;
    crate::netsetup::port_specs(hc, None)?;
    let shares_namespace = mode.starts_with("container:");
    if shares_namespace {
        let publishes =
            hc.publish_all_ports || hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty());
        if publishes {
            return Err(EngineError::invalid(
                "conflicting options: port publishing and the container type network mode",
            ));
        }
        if hc.dns.iter().flatten().next().is_some()
            || hc.dns_search.iter().flatten().next().is_some()
            || hc.dns_options.iter().flatten().next().is_some()
        {
            return Err(EngineError::invalid(
                "conflicting options: dns and the network mode",
            ));
        }
        if hc.extra_hosts.iter().flatten().next().is_some() {
            return Err(EngineError::invalid(
                "conflicting options: custom host-to-IP mapping and the network mode",
            ));
        }
    }
    Ok(())
}

/// The endpoint settings of a container on its network, checked against
/// the network mode (docker's messages).
pub(crate) fn check_endpoint(
    mode: &str,
    user_defined: bool,
    config: &Config,
    settings: &EndpointSettings,
) -> Result<()> {
    let shares_namespace = mode == "host" || mode == "none" || mode.starts_with("container:");
    if shares_namespace && mode.starts_with("container:") && !config.hostname.is_empty() {
        return Err(EngineError::invalid(
            "conflicting options: hostname and the network mode",
        ));
    }
    if shares_namespace && !settings.mac_address.is_empty() {
        return Err(EngineError::invalid(
            "conflicting options: mac-address and the network mode",
        ));
    }
    if !settings.mac_address.is_empty() {
        quai_net::ipam::parse_mac(&settings.mac_address)?;
    }
    let ipam = settings.ipam_config.clone().unwrap_or_default();
    for (flag, text, v4) in [
        ("--ip", &ipam.ipv4_address, true),
        ("--ip6", &ipam.ipv6_address, false),
    ] {
        if text.is_empty() {
            continue;
        }
        let ip: std::net::IpAddr = text
            .parse()
            .map_err(|_| EngineError::invalid(format!("invalid IP address for {flag}: {text}")))?;
        if ip.is_ipv4() != v4 {
            return Err(EngineError::invalid(format!(
                "invalid {} address for {flag}: {text}",
                if v4 { "IPv4" } else { "IPv6" }
            )));
        }
        if !user_defined {
            return Err(EngineError::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
    }
    if settings.aliases.iter().flatten().next().is_some() && !user_defined {
        return Err(EngineError::invalid(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    Ok(())
}

/// Checks a host config; fills in defaults (network mode, log driver,
/// swap). Returns docker's warnings.
pub fn check_host_config(hc: &mut HostConfig) -> Result<Vec<String>> {
    check_network_options(hc)?;
    let policy = &mut hc.restart_policy;
    match policy.name.as_str() {
        "" | "no" => {
            if policy.maximum_retry_count != 0 {
                return Err(EngineError::invalid(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                ));
            }
        }
        "always" | "unless-stopped" => {
            if policy.maximum_retry_count != 0 {
                return Err(EngineError::invalid(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                ));
            }
        }
        "on-failure" => {
            if policy.maximum_retry_count < 0 {
                return Err(EngineError::invalid(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
        }
        other => {
            return Err(EngineError::invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )))
        }
    }
    if hc.auto_remove && !matches!(policy.name.as_str(), "" | "no") {
        return Err(EngineError::invalid(
            "Conflicting options: --restart and --rm".to_string(),
        ));
    }
    if hc.log_config.typ.is_empty() {
        hc.log_config.typ = "json-file".into();
    }
    LogOptions::parse(&hc.log_config.typ, &hc.log_config.config)?;
    let security = spec::parse_security_options(hc.security_opt.as_deref().unwrap_or_default())?;
    if let Some(profile) = &security.seccomp_profile {
        let target = quai_runtime::seccomp::DockerProfileTarget::host(&[]);
        quai_runtime::seccomp::from_docker_profile(profile.as_bytes(), &target).map_err(|e| {
            EngineError::invalid(format!("--security-opt seccomp: invalid profile: {e}"))
        })?;
    }
    spec::capabilities(
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
        false,
    )?;
    check_ulimits(hc)?;
    crate::devices::check(hc.devices.as_deref().unwrap_or_default())?;
    let warnings = crate::resources::check(hc, crate::resources::host_layout().ok())?;
    // What this host's cgroups cannot do is refused now, before anything
    // exists (the id only names the last directory).
    let devices = crate::devices::resolve(hc.devices.as_deref().unwrap_or_default())?;
    crate::resources::check_host(hc, "0", &devices)?;
    if hc.shm_size < 0 {
        return Err(EngineError::invalid("SHM size can not be less than 0"));
    }
    if hc.init == Some(true) && crate::init::PROGRAM.is_empty() {
        return Err(EngineError::Unsupported(
            "--init: this build of quai has no init program".into(),
        ));
    }
    Ok(warnings)
}

const RLIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

fn check_ulimits(hc: &HostConfig) -> Result<()> {
    let can_raise = crate::devices::has_capability(24);
    for u in hc.ulimits.iter().flatten() {
        if !RLIMITS.contains(&u.name.as_str()) {
            return Err(EngineError::invalid(format!(
                "invalid ulimit type: {}",
                u.name
            )));
        }
        if u.soft > u.hard {
            return Err(EngineError::invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            )));
        }
        if u.soft < 0 {
            return Err(EngineError::invalid(format!(
                "invalid ulimit value for {}: negative",
                u.name
            )));
        }
        if !can_raise {
            if let Some(limit) = host_hard_limit(&u.name) {
                if u.hard as u64 > limit {
                    return Err(EngineError::invalid(format!(
                        "--ulimit {}={}:{}: the hard limit is above this host's ({limit}) and quai lacks CAP_SYS_RESOURCE to raise it",
                        u.name, u.soft, u.hard
                    )));
                }
            }
        }
    }
    Ok(())
}

fn host_hard_limit(name: &str) -> Option<u64> {
    use rustix::process::Resource;
    let resource = match name {
        "nofile" => Resource::Nofile,
        "nproc" => Resource::Nproc,
        "core" => Resource::Core,
        "cpu" => Resource::Cpu,
        "data" => Resource::Data,
        "fsize" => Resource::Fsize,
        "locks" => Resource::Locks,
        "memlock" => Resource::Memlock,
        "msgqueue" => Resource::Msgqueue,
        "nice" => Resource::Nice,
        "rss" => Resource::Rss,
        "rtprio" => Resource::Rtprio,
        "rttime" => Resource::Rttime,
        "sigpending" => Resource::Sigpending,
        "stack" => Resource::Stack,
        "as" => Resource::As,
        _ => return None,
    };
    rustix::process::getrlimit(resource).maximum
}

fn check_config(c: &Config) -> Result<()> {
    if let Some(s) = &c.stop_signal {
        parse_signal(s)?;
    }
    if let Some(t) = c.stop_timeout {
        if t < -1 {
            return Err(EngineError::invalid(format!("invalid stop timeout: {t}")));
        }
    }
    if let Some(h) = &c.healthcheck {
        for (what, v) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
            ("StartInterval", h.start_interval),
        ] {
            if v != 0 && v < 1_000_000 {
                return Err(EngineError::invalid(format!(
                    "{what} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        if h.retries < 0 {
            return Err(EngineError::invalid(
                "Retries in Healthcheck cannot be negative",
            ));
        }
        if let Some(kind) = h.test.first() {
            if !matches!(kind.as_str(), "NONE" | "CMD" | "CMD-SHELL") {
                return Err(EngineError::invalid(format!(
                    "unknown healthcheck type {kind:?}: use NONE, CMD or CMD-SHELL"
                )));
            }
        }
    }
    if !c.working_dir.is_empty() && !c.working_dir.starts_with('/') {
        return Err(EngineError::invalid(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            c.working_dir
        )));
    }
    for e in &c.env {
        if e.is_empty() || e.starts_with('=') {
            return Err(EngineError::invalid(format!(
                "invalid environment variable: {e:?}"
            )));
        }
    }
    Ok(())
}

/// docker refuses an image of another platform than `--platform` asked
/// for, and warns (returned) about one that is not the host's when none was.
fn check_platform(
    image: &str,
    config: &ImageConfig,
    wanted: Option<&Platform>,
) -> Result<Option<String>> {
    let have = config.platform();
    match wanted {
        Some(wanted) if !have.matches(wanted) => Err(EngineError::invalid(format!(
            "image with reference {image} was found but does not match the specified platform: wanted {wanted}, actual: {have}"
        ))),
        None if !have.matches(&Platform::host()) => Ok(Some(format!(
            "The requested image's platform ({have}) does not match the detected host platform ({}) and no specific platform was requested",
            Platform::host()
        ))),
        _ => Ok(None),
    }
}

impl Engine {
    /// Creates a container (docker create).
    pub fn create(&mut self, req: CreateRequest) -> Result<Created> {
        let name = req.name.as_deref().map(ids::validate_name).transpose()?;
        let image = self.store.resolve(&req.config.image)?;
        let image_config = self.store.config(&image.id)?;
        let platform_warning =
            check_platform(&req.config.image, &image_config, req.platform.as_ref())?;
        let defaults = image_defaults(&image_config);
        let mut config = merge_config(&req.config, &defaults);
        let mut host_config = req.host_config.clone();
        let mut warnings = check_host_config(&mut host_config)?;
        warnings.extend(platform_warning);
        check_config(&config)?;
        let mut program: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        program.extend(config.cmd.clone().unwrap_or_default());
        if program.is_empty() {
            return Err(EngineError::invalid("No command specified"));
        }
        let image_volumes: Vec<String> = config
            .volumes
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        let mut planned = mounts::plan_all(&host_config, &image_volumes)?;
        if config.tty {
            config.stdin_once = config.stdin_once && config.open_stdin;
        }

        let mode = host_config.network_mode.clone();
        let settings = req
            .networking_config
            .endpoints_config
            .get(&mode)
            .cloned()
            .unwrap_or_default();
        let network = match mode.as_str() {
            "host" | "none" => None,
            m if m.starts_with("container:") => {
                self.container(&m["container:".len()..])?;
                None
            }
            m => Some(self.network_get(m)?),
        };
        let user_defined = network.as_ref().is_some_and(|n| !n.net.is_default);
        check_endpoint(&mode, user_defined, &req.config, &settings)?;
        let publishes = host_config.publish_all_ports
            || host_config
                .port_bindings
                .as_ref()
                .is_some_and(|p| !p.is_empty());
        if mode == "host" && publishes {
            warnings.push("Published ports are discarded when using host network mode".into());
        }

        let id = ids::new_id()?;
        if config.hostname.is_empty() {
            config.hostname = if host_config.network_mode == "host" {
                rustix::system::uname()
                    .nodename()
                    .to_string_lossy()
                    .into_owned()
            } else {
                id[..12].to_string()
            };
        }
        for p in &mut planned {
            if let Some(v) = &mut p.volume {
                if v.anonymous {
                    v.name = ids::new_id()?;
                    p.point.name = v.name.clone();
                }
            }
            if let Some(v) = &p.volume {
                p.point.source = self
                    .paths
                    .volume_data(&v.name)
                    .to_string_lossy()
                    .into_owned();
            }
        }
        let def = Definition {
            path: program[0].clone(),
            args: program[1..].to_vec(),
            mounts: planned.iter().map(|p| p.point.clone()).collect(),
            image_ref: req.config.image.clone(),
            config,
            host_config,
        };
        let mut container = Container {
            id: id.clone(),
            name: String::new(),
            image_id: image.id.to_string(),
            created: now_nanos(),
            def,
            state: State::default(),
        };
        let tx = self.store.db().write()?;
        container.name = match name {
            Some(n) => n,
            None => unique_name(&tx)?,
        };
        record::insert(&tx, &container)?;
        if let Some(network) = &network {
            crate::netsetup::add_attachment(&tx, &id, &network.net, &settings)?;
        }
        for p in &planned {
            if let Some(v) = &p.volume {
                volumes::ensure(
                    &tx,
                    &v.name,
                    "local",
                    &BTreeMap::new(),
                    &BTreeMap::new(),
                    v.anonymous,
                )?;
                tx.execute(
                    "INSERT INTO container_volumes (container_id, volume, destination) VALUES (?1, ?2, ?3)",
                    (&id, &v.name, &p.point.destination),
                )?;
            }
        }
        record::container_event(&tx, &container, "create")?;
        tx.commit()?;
        crate::failpoint::crash_at("cli:created");
        Ok(Created {
            id,
            name: container.name,
            warnings,
        })
    }
}

fn unique_name(conn: &quai_db::rusqlite::Connection) -> Result<String> {
    for attempt in 0..10 {
        let name = ids::generate_name(attempt)?;
        let taken: bool = conn
            .prepare_cached("SELECT 1 FROM containers WHERE name = ?1")?
            .exists([&name])?;
        if !taken {
            return Ok(name);
        }
    }
    Err(EngineError::conflict(
        "could not generate a free container name",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_merges_like_docker() {
        let image = Config {
            env: vec!["PATH=/usr/bin".into(), "A=image".into()],
            cmd: Some(vec!["sh".into()]),
            entrypoint: Some(vec!["/entry".into()]),
            working_dir: "/app".into(),
            labels: [("l".to_string(), "image".to_string())].into(),
            ..Default::default()
        };
        let user = Config {
            env: vec!["A=user".into(), "B=1".into()],
            cmd: Some(vec!["run".into()]),
            ..Default::default()
        };
        let c = merge_config(&user, &image);
        assert_eq!(c.env, vec!["PATH=/usr/bin", "A=user", "B=1"]);
        assert_eq!(c.entrypoint, Some(vec!["/entry".into()]));
        assert_eq!(c.cmd, Some(vec!["run".into()]));
        assert_eq!(c.working_dir, "/app");
        // A user entrypoint drops the image's cmd.
        let user = Config {
            entrypoint: Some(vec!["/other".into()]),
            ..Default::default()
        };
        let c = merge_config(&user, &image);
        assert_eq!(c.cmd, None);
        assert_eq!(c.entrypoint, Some(vec!["/other".into()]));
    }

    #[test]
    fn host_config_checks() {
        let mut hc = HostConfig::default();
        check_host_config(&mut hc).unwrap();
        assert_eq!(hc.network_mode, "bridge");
        assert_eq!(hc.log_config.typ, "json-file");
        let mut hc = HostConfig {
            auto_remove: true,
            ..Default::default()
        };
        hc.restart_policy.name = "always".into();
        assert_eq!(
            check_host_config(&mut hc).unwrap_err().to_string(),
            "Conflicting options: --restart and --rm"
        );
        let mut hc = HostConfig::default();
        hc.restart_policy.name = "sometimes".into();
        assert!(check_host_config(&mut hc)
            .unwrap_err()
            .to_string()
            .contains("unknown policy 'sometimes'"));
        let mut hc = HostConfig {
            memory: 1 << 20,
            ..Default::default()
        };
        let e = check_host_config(&mut hc).unwrap_err().to_string();
        assert_eq!(e, "Minimum memory limit allowed is 6MB");
        let mut hc = HostConfig {
            network_mode: "container:x".into(),
            publish_all_ports: true,
            ..Default::default()
        };
        assert_eq!(
            check_host_config(&mut hc).unwrap_err().to_string(),
            "conflicting options: port publishing and the container type network mode"
        );
    }
}
