//! `inspect`: a container in the Engine API's `ContainerInspectResponse`
//! shape, and the summary `ps` lists (`ContainerSummary`).

use serde_json::{json, Value};

use crate::engine::Engine;
use crate::error::Result;
use crate::record::{Container, Status};
use crate::units::rfc3339_nanos;

/// docker's `State` object.
pub fn state_json(c: &Container) -> Value {
    let s = &c.state;
    let mut v = json!({
        "Status": s.status.as_str(),
        "Running": matches!(s.status, Status::Running | Status::Paused),
        "Paused": s.status == Status::Paused,
        "Restarting": s.status == Status::Restarting,
        "OOMKilled": s.oom_killed,
        "Dead": s.status == Status::Dead,
        "Pid": s.pid,
        "ExitCode": s.exit_code,
        "Error": s.error,
        "StartedAt": rfc3339_nanos(s.started_at),
        "FinishedAt": rfc3339_nanos(s.finished_at),
    });
    if let Some(h) = &s.health {
        v["Health"] = serde_json::to_value(h).unwrap_or(Value::Null);
    }
    v
}

impl Engine {
    /// docker's inspect document of a container.
    pub fn inspect(&mut self, c: &Container) -> Result<Value> {
        let network_settings = self.network_settings(c)?;
        // `--network container:X` binds X's hosts and resolv.conf (docker
        // shows X's paths too).
        let etc_owner = match c.def.host_config.network_mode.strip_prefix("container:") {
            Some(other) => self.container(other).map(|x| x.id).unwrap_or(c.id.clone()),
            None => c.id.clone(),
        };
        let p = &self.paths;
        let image = quai_image::digest::Digest::parse(&c.image_id).ok();
        let lowers: Vec<String> = match &image {
            Some(d) => self
                .store
                .layer_dirs(d)
                .unwrap_or_default()
                .iter()
                .rev()
                .map(|l| l.to_string_lossy().into_owned())
                .collect(),
            None => Vec::new(),
        };
        let dir = p.container_dir(&c.id);
        let mut config = serde_json::to_value(&c.def.config).unwrap_or(Value::Null);
        if config["Volumes"].is_null() {
            config["Volumes"] = Value::Null;
        }
        Ok(json!({
            "Id": c.id,
            "Created": rfc3339_nanos(c.created),
            "Path": c.def.path,
            "Args": c.def.args,
            "State": state_json(c),
            "Image": c.image_id,
            "ResolvConfPath": p.resolv_conf_path(&etc_owner),
            "HostnamePath": p.hostname_path(&c.id),
            "HostsPath": p.hosts_path(&etc_owner),
            "LogPath": p.log_path(&c.id),
            "Name": format!("/{}", c.name),
            "RestartCount": c.state.restart_count,
            "Driver": "overlay",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": Value::Null,
            "HostConfig": c.def.host_config,
            "GraphDriver": {
                "Data": {
                    "LowerDir": lowers.join(":"),
                    "MergedDir": dir.join("rootfs"),
                    "UpperDir": dir.join("upper"),
                    "WorkDir": dir.join("work"),
                },
                "Name": "overlay",
            },
            "Mounts": c.def.mounts,
            "Config": config,
            "NetworkSettings": network_settings,
        }))
    }
}
