//! The flags `run` and `create` share, turned into docker's Config and
//! HostConfig the way the docker CLI does.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use quai_engine::create::CreateRequest;
use quai_engine::types::{
    BindOptions, Config, DeviceMapping, EndpointIpamConfig, EndpointSettings, HealthConfig,
    HostConfig, LogConfig, Mount, NetworkingConfig, PortBinding, RestartPolicy, ThrottleDevice,
    TmpfsOptions, Ulimit, VolumeOptions, WeightDevice,
};
use quai_engine::units::{parse_duration, parse_signal, parse_size};

#[derive(Args, Debug, Clone, Default)]
pub struct CreateFlags {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Automatically remove the container and its anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from this environment)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image ("" clears it)
    #[arg(long, value_name = "COMMAND")]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Set meta data on a container (KEY=VALUE)
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file", value_name = "FILE")]
    pub label_file: Vec<String>,
    /// Bind mount a volume (HOST-DIR:CONTAINER-DIR[:OPTIONS], NAME:DIR, or DIR)
    #[arg(short, long = "volume", value_name = "VOLUME")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container (type=bind|volume|tmpfs,source=,target=,...)
    #[arg(long, value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory (DIR[:OPTIONS])
    #[arg(long, value_name = "DIR")]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Memory limit
    #[arg(short, long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long, value_name = "DECIMAL")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "INT")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "INT", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(
        long = "memory-swappiness",
        value_name = "INT",
        allow_hyphen_values = true
    )]
    pub memory_swappiness: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "INT")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "INT", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit CPU real-time period in microseconds (cgroup v1)
    #[arg(long = "cpu-rt-period", value_name = "INT", allow_hyphen_values = true)]
    pub cpu_rt_period: Option<i64>,
    /// Limit CPU real-time runtime in microseconds (cgroup v1)
    #[arg(
        long = "cpu-rt-runtime",
        value_name = "INT",
        allow_hyphen_values = true
    )]
    pub cpu_rt_runtime: Option<i64>,
    /// Kernel memory limit (deprecated, ignored with a warning as by docker)
    #[arg(long = "kernel-memory", value_name = "BYTES")]
    pub kernel_memory: Option<String>,
    /// docker's flags quai does not implement yet: taken with their values
    /// so that they are refused by name ([`refuse_unsupported`]), not as
    /// an unknown argument.
    #[command(flatten)]
    pub unsupported: UnsupportedFlags,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "MEMS")]
    pub cpuset_mems: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight", value_name = "UINT16")]
    pub blkio_weight: Option<u16>,
    /// Block IO weight (relative device weight, DEVICE:WEIGHT)
    #[arg(long = "blkio-weight-device", value_name = "DEVICE:WEIGHT")]
    pub blkio_weight_device: Vec<String>,
    /// Limit read rate (bytes per second) from a device (DEVICE:RATE, e.g. /dev/sda:1mb)
    #[arg(long = "device-read-bps", value_name = "DEVICE:RATE")]
    pub device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device
    #[arg(long = "device-write-bps", value_name = "DEVICE:RATE")]
    pub device_write_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device
    #[arg(long = "device-read-iops", value_name = "DEVICE:RATE")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device
    #[arg(long = "device-write-iops", value_name = "DEVICE:RATE")]
    pub device_write_iops: Vec<String>,
    /// Add a rule to the cgroup allowed devices list ('c 1:3 rwm')
    #[arg(long = "device-cgroup-rule", value_name = "RULE")]
    pub device_cgroup_rule: Vec<String>,
    /// Optional parent cgroup for the container (default /quai)
    #[arg(long = "cgroup-parent", value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// Ulimit options (NAME=SOFT[:HARD])
    #[arg(long, value_name = "ULIMIT")]
    pub ulimit: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Security Options
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Add a host device to the container (HOST[:CONTAINER[:PERMISSIONS]])
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Restart policy to apply when a container exits (no, always, unless-stopped, on-failure[:N])
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(
        long = "stop-timeout",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    pub stop_timeout: Option<i64>,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval", value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "INT")]
    pub health_retries: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout", value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before counting retries (ms|s|m|h)
    #[arg(long = "health-start-period", value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h)
    #[arg(long = "health-start-interval", value_name = "DURATION")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Logging driver for the container (json-file)
    #[arg(long = "log-driver", value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// Log driver options (max-size=10m, max-file=3)
    #[arg(long = "log-opt", value_name = "OPT")]
    pub log_opt: Vec<String>,
    /// Connect a container to a network (bridge, none, host, container:NAME, or a network's name)
    #[arg(long, alias = "net", value_name = "NETWORK")]
    pub network: Option<String>,
    /// Publish a container's port(s) to the host ([IP:][HOST-PORT:]CONTAINER-PORT[/PROTO])
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random host ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports (for -P)
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// IPv4 address on the network (user-defined networks only)
    #[arg(long, value_name = "ADDRESS")]
    pub ip: Option<String>,
    /// IPv6 address on the network (user-defined networks only)
    #[arg(long, value_name = "ADDRESS")]
    pub ip6: Option<String>,
    /// Container MAC address (e.g. 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address", value_name = "MAC")]
    pub mac_address: Option<String>,
    /// Add a network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip, or host:host-gateway)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains ("." for none)
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Set DNS options (e.g. ndots:2)
    #[arg(long = "dns-option", alias = "dns-opt", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Container NIS domain name
    #[arg(long, value_name = "NAME")]
    pub domainname: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing", value_name = "POLICY")]
    pub pull: String,
    /// Set platform if server is multi-platform capable (os/arch[/variant]);
    /// a local image of another platform is not used
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Suppress the pull output
    #[arg(short, long)]
    pub quiet: bool,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
}

/// docker's `run`/`create` flags quai does not implement (yet).
#[derive(Args, Debug, Clone, Default)]
pub struct UnsupportedFlags {
    #[arg(long, hide = true, value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    #[arg(long = "group-add", hide = true, value_name = "GROUP")]
    pub group_add: Vec<String>,
    #[arg(long = "oom-score-adj", hide = true, allow_hyphen_values = true)]
    pub oom_score_adj: Option<String>,
    #[arg(long, hide = true)]
    pub pid: Option<String>,
    #[arg(long, hide = true)]
    pub ipc: Option<String>,
    #[arg(long, hide = true)]
    pub uts: Option<String>,
    #[arg(long, hide = true)]
    pub userns: Option<String>,
    #[arg(long, hide = true)]
    pub cgroupns: Option<String>,
    #[arg(long, hide = true)]
    pub cidfile: Option<String>,
    #[arg(long = "volumes-from", hide = true)]
    pub volumes_from: Vec<String>,
    #[arg(long, hide = true)]
    pub link: Vec<String>,
    #[arg(long = "link-local-ip", hide = true)]
    pub link_local_ip: Vec<String>,
    #[arg(long, hide = true)]
    pub runtime: Option<String>,
    #[arg(long = "storage-opt", hide = true)]
    pub storage_opt: Vec<String>,
    #[arg(long, hide = true)]
    pub gpus: Option<String>,
    #[arg(long, hide = true)]
    pub annotation: Vec<String>,
    #[arg(short = 'a', long, hide = true)]
    pub attach: Vec<String>,
    #[arg(long, hide = true)]
    pub isolation: Option<String>,
    #[arg(long = "volume-driver", hide = true)]
    pub volume_driver: Option<String>,
}

/// Refuses, by name, docker flags quai takes but does not implement.
pub fn refuse_unsupported(u: &UnsupportedFlags) -> Result<()> {
    let given = [
        ("--sysctl", !u.sysctl.is_empty()),
        ("--group-add", !u.group_add.is_empty()),
        ("--oom-score-adj", u.oom_score_adj.is_some()),
        ("--pid", u.pid.is_some()),
        ("--ipc", u.ipc.is_some()),
        ("--uts", u.uts.is_some()),
        ("--userns", u.userns.is_some()),
        ("--cgroupns", u.cgroupns.is_some()),
        ("--cidfile", u.cidfile.is_some()),
        ("--volumes-from", !u.volumes_from.is_empty()),
        ("--link", !u.link.is_empty()),
        ("--link-local-ip", !u.link_local_ip.is_empty()),
        ("--runtime", u.runtime.is_some()),
        ("--storage-opt", !u.storage_opt.is_empty()),
        ("--gpus", u.gpus.is_some()),
        ("--annotation", !u.annotation.is_empty()),
        ("--attach", !u.attach.is_empty()),
        ("--isolation", u.isolation.is_some()),
        ("--volume-driver", u.volume_driver.is_some()),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => bail!(
            "{flag} is not supported by quai yet: the container would not get what docker gives it with this flag"
        ),
        None => Ok(()),
    }
}

/// docker ignores `--kernel-memory` since API 1.42 (kernels since 5.16
/// ignore `memory.kmem.limit_in_bytes`, cgroup v2 has no such limit): it is
/// accepted, checked, and ignored with this warning.
pub fn kernel_memory_warning(flags: &CreateFlags) -> Option<&'static str> {
    flags.kernel_memory.as_ref().map(|_| {
        "Specifying a kernel memory limit is deprecated and no longer supported: --kernel-memory is ignored."
    })
}

fn env_line(s: &str) -> Option<String> {
    if s.contains('=') {
        Some(s.to_string())
    } else {
        // KEY alone: docker copies it from the CLI's environment, or
        // leaves it out when unset there.
        std::env::var(s).ok().map(|v| format!("{s}={v}"))
    }
}

fn read_lines(path: &str, what: &str) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("open {what} {path}"))?;
    Ok(text
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.to_string())
        .collect())
}

pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    let maximum_retry_count = match count {
        Some(c) => c.parse::<i64>().map_err(|_| {
            anyhow!("invalid restart policy format: maximum retry count must be an integer")
        })?,
        None => 0,
    };
    if count.is_some() && name != "on-failure" {
        bail!(
            "invalid restart policy format: maximum retry count can only be used with 'on-failure'"
        );
    }
    Ok(RestartPolicy {
        name: name.to_string(),
        maximum_retry_count,
    })
}

fn parse_ulimit(s: &str) -> Result<Ulimit> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("invalid ulimit argument: {s}"))?;
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (a, b),
        None => (values, values),
    };
    let num = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| anyhow!("invalid ulimit argument: {s}: {v:?} is not a number"))
    };
    Ok(Ulimit {
        name: name.to_string(),
        soft: num(soft)?,
        hard: num(hard)?,
    })
}

/// A memory size flag (`512m`, `1g`, `-1` for unlimited); 0 when unset.
pub fn parse_memory(value: Option<&str>, what: &str) -> Result<i64> {
    match value {
        Some("-1") => Ok(-1),
        Some(s) => parse_size(s).with_context(|| format!("invalid argument {s:?} for --{what}")),
        None => Ok(0),
    }
}

/// `--cpus 1.5` in nano CPUs.
pub fn parse_cpus(c: &str) -> Result<i64> {
    let v: f64 = c.parse().map_err(|_| {
        anyhow!("invalid argument \"{c}\" for \"--cpus\" flag: failed to parse {c} as a rational number")
    })?;
    if v.is_nan() || v < 0.0 || !v.is_finite() {
        bail!("invalid argument \"{c}\" for \"--cpus\" flag: range of CPUs is from 0.01 to the number of CPUs");
    }
    Ok((v * 1e9).round() as i64)
}

fn device_and_value(s: &str) -> Result<(&str, &str)> {
    let (path, value) = s
        .split_once(':')
        .ok_or_else(|| anyhow!("bad format: {s}"))?;
    if !path.starts_with("/dev/") {
        bail!("bad format for device path: {s}");
    }
    Ok((path, value))
}

/// `--blkio-weight-device /dev/sda:300`.
fn parse_weight_device(s: &str) -> Result<WeightDevice> {
    let (path, weight) = device_and_value(s)?;
    let weight: u16 = weight
        .parse()
        .map_err(|_| anyhow!("invalid weight for device: {s}"))?;
    if weight > 0 && !(10..=1000).contains(&weight) {
        bail!("invalid weight for device: {s}");
    }
    Ok(WeightDevice {
        path: path.to_string(),
        weight,
    })
}

/// `--device-read-bps /dev/sda:1mb`, `--device-read-iops /dev/sda:100`.
fn parse_throttle(s: &str, iops: bool) -> Result<ThrottleDevice> {
    let (path, rate) = device_and_value(s)?;
    let rate = if iops {
        rate.parse::<u64>().map_err(|_| {
            anyhow!("invalid rate for device: {s}. The correct format is <device-path>:<number>. Number must be a positive integer")
        })?
    } else {
        parse_size(rate).map(|r| r as u64).map_err(|_| {
            anyhow!("invalid rate for device: {s}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb")
        })?
    };
    Ok(ThrottleDevice {
        path: path.to_string(),
        rate,
    })
}

fn parse_device(s: &str) -> Result<DeviceMapping> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if p.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) && !p.starts_with('/') => {
            (*h, *h, *p)
        }
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => bail!("invalid device specification: {s}"),
    };
    Ok(DeviceMapping {
        path_on_host: host.to_string(),
        path_in_container: container.to_string(),
        cgroup_permissions: perms.to_string(),
    })
}

/// `--mount type=bind,source=/a,target=/b,readonly`.
fn parse_mount(s: &str) -> Result<Mount> {
    let mut m = Mount {
        typ: "volume".into(),
        ..Default::default()
    };
    let mut bind = BindOptions::default();
    let mut volume = VolumeOptions::default();
    let mut tmpfs = TmpfsOptions::default();
    let (mut has_bind, mut has_volume, mut has_tmpfs) = (false, false, false);
    for field in s.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let truthy = |v: Option<&str>| -> Result<bool> {
            match v {
                None | Some("1") | Some("true") => Ok(true),
                Some("0") | Some("false") => Ok(false),
                Some(other) => bail!("invalid value for {key}: {other}"),
            }
        };
        let need = |v: Option<&str>| -> Result<String> {
            v.map(String::from)
                .ok_or_else(|| anyhow!("invalid field '{field}' must be a key=value pair"))
        };
        match key.as_str() {
            "type" => m.typ = need(value)?,
            "source" | "src" => m.source = need(value)?,
            "target" | "destination" | "dst" => m.target = need(value)?,
            "readonly" | "ro" => m.read_only = truthy(value)?,
            "bind-propagation" => {
                bind.propagation = need(value)?;
                has_bind = true;
            }
            "bind-create-mountpoint" => {
                bind.create_mountpoint = truthy(value)?;
                has_bind = true;
            }
            "volume-nocopy" => {
                volume.no_copy = truthy(value)?;
                has_volume = true;
            }
            "volume-label" => {
                let v = need(value)?;
                let (k, val) = v.split_once('=').unwrap_or((&v, ""));
                volume.labels.insert(k.to_string(), val.to_string());
                has_volume = true;
            }
            "volume-subpath" => {
                volume.subpath = need(value)?;
                has_volume = true;
            }
            "tmpfs-size" => {
                tmpfs.size_bytes = parse_size(&need(value)?)?;
                has_tmpfs = true;
            }
            "tmpfs-mode" => {
                let v = need(value)?;
                tmpfs.mode = u32::from_str_radix(&v, 8)
                    .map_err(|_| anyhow!("invalid value for tmpfs-mode: {v}"))?;
                has_tmpfs = true;
            }
            other => bail!("invalid field '{other}' in mount: unexpected key '{other}'"),
        }
    }
    if !volume.subpath.is_empty() {
        bail!("volume-subpath is not supported by quai");
    }
    if has_bind {
        m.bind_options = Some(bind);
    }
    if has_volume {
        m.volume_options = Some(volume);
    }
    if has_tmpfs {
        m.tmpfs_options = Some(tmpfs);
    }
    Ok(m)
}

/// docker's CLI sends a seccomp profile's content, not its path.
fn security_opt(opt: &str) -> Result<String> {
    let Some(path) = opt
        .strip_prefix("seccomp=")
        .or_else(|| opt.strip_prefix("seccomp:"))
        .filter(|p| *p != "unconfined")
    else {
        return Ok(opt.to_string());
    };
    let content = fs::read_to_string(path)
        .map_err(|e| anyhow!("opening seccomp profile ({path}) failed: {e}"))?;
    Ok(format!("seccomp={content}"))
}

fn health(flags: &CreateFlags) -> Result<Option<HealthConfig>> {
    let any = flags.health_cmd.is_some()
        || flags.health_interval.is_some()
        || flags.health_retries.is_some()
        || flags.health_timeout.is_some()
        || flags.health_start_period.is_some()
        || flags.health_start_interval.is_some();
    if flags.no_healthcheck {
        if any {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(Some(HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        }));
    }
    if !any {
        return Ok(None);
    }
    let dur = |v: &Option<String>, what: &str| -> Result<i64> {
        match v {
            Some(s) => {
                let d = parse_duration(s)?;
                if d < 0 {
                    bail!("--{what} cannot be negative");
                }
                Ok(d)
            }
            None => Ok(0),
        }
    };
    let retries = flags.health_retries.unwrap_or(0);
    if retries < 0 {
        bail!("--health-retries cannot be negative");
    }
    Ok(Some(HealthConfig {
        test: match &flags.health_cmd {
            Some(c) => vec!["CMD-SHELL".into(), c.clone()],
            None => vec![],
        },
        interval: dur(&flags.health_interval, "health-interval")?,
        timeout: dur(&flags.health_timeout, "health-timeout")?,
        retries,
        start_period: dur(&flags.health_start_period, "health-start-period")?,
        start_interval: dur(&flags.health_start_interval, "health-start-interval")?,
    }))
}

/// docker's `Config` + `HostConfig` from the flags, the image and the
/// command after it.
pub fn build_request(
    flags: &CreateFlags,
    image: &str,
    command: &[String],
    attach_stdout: bool,
) -> Result<CreateRequest> {
    // Before the generic refusal: --link has a way forward to point to.
    if let Some(link) = flags.unsupported.link.first() {
        bail!(
            "--link {link}: legacy container links are not supported by quai (docker deprecates them); \
             put both containers on a user-defined network (quai network create NET; \
             quai run --network NET ...) where they reach each other by name or --network-alias"
        );
    }
    refuse_unsupported(&flags.unsupported)?;
    let mut env = Vec::new();
    for f in &flags.env_file {
        env.extend(
            read_lines(f, "env file")?
                .iter()
                .filter_map(|l| env_line(l)),
        );
    }
    env.extend(flags.env.iter().filter_map(|e| env_line(e)));
    for e in &env {
        if e.starts_with('=') {
            bail!("invalid environment variable: {e}");
        }
    }
    let mut labels = BTreeMap::new();
    for f in &flags.label_file {
        for l in read_lines(f, "label file")? {
            let (k, v) = l.split_once('=').unwrap_or((&l, ""));
            labels.insert(k.to_string(), v.to_string());
        }
    }
    for l in &flags.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("invalid label '{l}': empty name");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    if let Some(s) = &flags.stop_signal {
        parse_signal(s)?;
    }
    let entrypoint = flags.entrypoint.as_ref().map(|e| {
        if e.is_empty() {
            vec![]
        } else {
            vec![e.clone()]
        }
    });
    let (exposed_ports, port_bindings) = publish_flags(flags)?;
    let config = Config {
        hostname: flags.hostname.clone().unwrap_or_default(),
        domainname: flags.domainname.clone().unwrap_or_default(),
        exposed_ports,
        user: flags.user.clone().unwrap_or_default(),
        attach_stdin: flags.interactive && attach_stdout,
        attach_stdout,
        attach_stderr: attach_stdout,
        tty: flags.tty,
        open_stdin: flags.interactive,
        stdin_once: flags.interactive && attach_stdout,
        env,
        cmd: (!command.is_empty()).then(|| command.to_vec()),
        healthcheck: health(flags)?,
        image: image.to_string(),
        working_dir: flags.workdir.clone().unwrap_or_default(),
        entrypoint,
        labels,
        stop_signal: flags.stop_signal.clone(),
        stop_timeout: flags.stop_timeout,
        ..Default::default()
    };
    let mut tmpfs = BTreeMap::new();
    for t in &flags.tmpfs {
        let (dest, opts) = t.split_once(':').unwrap_or((t, ""));
        tmpfs.insert(dest.to_string(), opts.to_string());
    }
    let mut log_config = LogConfig {
        typ: flags
            .log_driver
            .clone()
            .unwrap_or_else(|| "json-file".into()),
        config: BTreeMap::new(),
    };
    for o in &flags.log_opt {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid key value pair format in log-opt: {o}"))?;
        log_config.config.insert(k.to_string(), v.to_string());
    }
    let size = |v: &Option<String>, what: &str| parse_memory(v.as_deref(), what);
    // Checked like docker's CLI does, then ignored (see kernel_memory_warning).
    size(&flags.kernel_memory, "kernel-memory")?;
    let nano_cpus = flags
        .cpus
        .as_deref()
        .map(parse_cpus)
        .transpose()?
        .unwrap_or(0);
    let throttle = |values: &[String], iops: bool| -> Result<Option<Vec<ThrottleDevice>>> {
        if values.is_empty() {
            return Ok(None);
        }
        values
            .iter()
            .map(|v| parse_throttle(v, iops))
            .collect::<Result<_>>()
            .map(Some)
    };
    let host_config = HostConfig {
        binds: (!flags.volume.is_empty()).then(|| flags.volume.clone()),
        log_config,
        network_mode: flags.network.clone().unwrap_or_default(),
        port_bindings,
        publish_all_ports: flags.publish_all,
        dns: (!flags.dns.is_empty()).then(|| flags.dns.clone()),
        dns_search: (!flags.dns_search.is_empty()).then(|| flags.dns_search.clone()),
        dns_options: (!flags.dns_option.is_empty()).then(|| flags.dns_option.clone()),
        extra_hosts: (!flags.add_host.is_empty()).then(|| flags.add_host.clone()),
        restart_policy: match &flags.restart {
            Some(r) => parse_restart(r)?,
            None => RestartPolicy {
                name: "no".into(),
                maximum_retry_count: 0,
            },
        },
        auto_remove: flags.rm,
        mounts: if flags.mount.is_empty() {
            None
        } else {
            Some(
                flags
                    .mount
                    .iter()
                    .map(|m| parse_mount(m))
                    .collect::<Result<_>>()?,
            )
        },
        cap_add: (!flags.cap_add.is_empty()).then(|| flags.cap_add.clone()),
        cap_drop: (!flags.cap_drop.is_empty()).then(|| flags.cap_drop.clone()),
        privileged: flags.privileged,
        readonly_rootfs: flags.read_only,
        security_opt: if flags.security_opt.is_empty() {
            None
        } else {
            Some(
                flags
                    .security_opt
                    .iter()
                    .map(|o| security_opt(o))
                    .collect::<Result<_>>()?,
            )
        },
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        shm_size: size(&flags.shm_size, "shm-size")?,
        init: flags.init.then_some(true),
        memory: size(&flags.memory, "memory")?,
        memory_swap: size(&flags.memory_swap, "memory-swap")?,
        nano_cpus,
        cpu_shares: flags.cpu_shares.unwrap_or(0),
        cpuset_cpus: flags.cpuset_cpus.clone().unwrap_or_default(),
        pids_limit: flags.pids_limit,
        memory_reservation: size(&flags.memory_reservation, "memory-reservation")?,
        memory_swappiness: flags.memory_swappiness,
        oom_kill_disable: flags.oom_kill_disable.then_some(true),
        cpu_period: flags.cpu_period.unwrap_or(0),
        cpu_quota: flags.cpu_quota.unwrap_or(0),
        cpu_realtime_period: flags.cpu_rt_period.unwrap_or(0),
        cpu_realtime_runtime: flags.cpu_rt_runtime.unwrap_or(0),
        cpuset_mems: flags.cpuset_mems.clone().unwrap_or_default(),
        blkio_weight: flags.blkio_weight.unwrap_or(0),
        blkio_weight_device: if flags.blkio_weight_device.is_empty() {
            None
        } else {
            Some(
                flags
                    .blkio_weight_device
                    .iter()
                    .map(|w| parse_weight_device(w))
                    .collect::<Result<_>>()?,
            )
        },
        blkio_device_read_bps: throttle(&flags.device_read_bps, false)?,
        blkio_device_write_bps: throttle(&flags.device_write_bps, false)?,
        blkio_device_read_iops: throttle(&flags.device_read_iops, true)?,
        blkio_device_write_iops: throttle(&flags.device_write_iops, true)?,
        device_cgroup_rules: (!flags.device_cgroup_rule.is_empty())
            .then(|| flags.device_cgroup_rule.clone()),
        cgroup_parent: flags.cgroup_parent.clone().unwrap_or_default(),
        devices: if flags.device.is_empty() {
            None
        } else {
            Some(
                flags
                    .device
                    .iter()
                    .map(|d| parse_device(d))
                    .collect::<Result<_>>()?,
            )
        },
        console_size: if flags.tty {
            super::attach::terminal_size().map(|(rows, cols)| [rows, cols])
        } else {
            None
        },
        ulimits: if flags.ulimit.is_empty() {
            None
        } else {
            Some(
                flags
                    .ulimit
                    .iter()
                    .map(|u| parse_ulimit(u))
                    .collect::<Result<_>>()?,
            )
        },
    };
    let mut networking_config = NetworkingConfig::default();
    let endpoint = EndpointSettings {
        ipam_config: (flags.ip.is_some() || flags.ip6.is_some()).then(|| EndpointIpamConfig {
            ipv4_address: flags.ip.clone().unwrap_or_default(),
            ipv6_address: flags.ip6.clone().unwrap_or_default(),
        }),
        aliases: (!flags.network_alias.is_empty()).then(|| flags.network_alias.clone()),
        mac_address: flags.mac_address.clone().unwrap_or_default(),
    };
    if endpoint != EndpointSettings::default() {
        let network = match flags.network.as_deref() {
            None | Some("") | Some("default") => "bridge",
            Some(n) => n,
        };
        networking_config
            .endpoints_config
            .insert(network.to_string(), endpoint);
    }
    Ok(CreateRequest {
        name: flags.name.clone(),
        config,
        host_config,
        networking_config,
        platform: None,
    })
}

/// docker's CLI turns `-p` and `--expose` into `ExposedPorts` and
/// `PortBindings` (port specs checked here, with docker's messages).
type PublishFlags = (
    Option<BTreeMap<String, serde_json::Value>>,
    Option<BTreeMap<String, Vec<PortBinding>>>,
);

fn publish_flags(flags: &CreateFlags) -> Result<PublishFlags> {
    let mut exposed = BTreeMap::new();
    let mut bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for raw in &flags.expose {
        for spec in quai_net::ports::parse_exposed(raw)? {
            exposed.insert(
                format!("{}/{}", spec.container_port, spec.protocol),
                serde_json::json!({}),
            );
        }
    }
    for raw in &flags.publish {
        for spec in quai_net::ports::parse_port_spec(raw)? {
            let key = format!("{}/{}", spec.container_port, spec.protocol);
            exposed.insert(key.clone(), serde_json::json!({}));
            bindings.entry(key).or_default().push(PortBinding {
                host_ip: spec.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                host_port: match spec.host_ports {
                    None => String::new(),
                    Some((a, b)) if a == b => a.to_string(),
                    Some((a, b)) => format!("{a}-{b}"),
                },
            });
        }
    }
    Ok((
        (!exposed.is_empty()).then_some(exposed),
        (!bindings.is_empty()).then_some(bindings),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!(parse_restart("always").unwrap().name, "always");
        let p = parse_restart("on-failure:3").unwrap();
        assert_eq!((p.name.as_str(), p.maximum_retry_count), ("on-failure", 3));
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("on-failure:x").is_err());
    }

    #[test]
    fn ulimits_devices_mounts() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (1024, 2048));
        assert_eq!(parse_ulimit("nproc=50").unwrap().hard, 50);
        assert!(parse_ulimit("nofile").is_err());
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!(d.path_in_container, "/dev/fuse");
        let d = parse_device("/dev/sda:/dev/xvda:r").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/xvda", "r")
        );
        let m =
            parse_mount("type=bind,source=/a,target=/b,readonly,bind-propagation=rshared").unwrap();
        assert_eq!(m.typ, "bind");
        assert!(m.read_only);
        assert_eq!(m.bind_options.unwrap().propagation, "rshared");
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(m.tmpfs_options.unwrap().mode, 0o1770);
        assert!(parse_mount("type=bind,bogus=1").is_err());
    }

    #[test]
    fn flags_become_a_request() {
        let flags = CreateFlags {
            env: vec!["A=1".into()],
            label: vec!["a=b".into(), "flag".into()],
            tmpfs: vec!["/run:size=1m".into()],
            health_cmd: Some("true".into()),
            health_interval: Some("5s".into()),
            ..Default::default()
        };
        let r = build_request(&flags, "busybox", &["sh".into()], true).unwrap();
        assert_eq!(r.config.env, vec!["A=1"]);
        assert_eq!(r.config.labels.get("flag").map(String::as_str), Some(""));
        assert_eq!(r.config.cmd, Some(vec!["sh".to_string()]));
        let h = r.config.healthcheck.unwrap();
        assert_eq!(h.test, vec!["CMD-SHELL", "true"]);
        assert_eq!(h.interval, 5_000_000_000);
        assert_eq!(
            r.host_config.tmpfs.unwrap().get("/run").map(String::as_str),
            Some("size=1m")
        );
    }
}
