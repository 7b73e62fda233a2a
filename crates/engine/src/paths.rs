//! Where the engine keeps things. Persistent state under the root (default
//! `/var/lib/quai`), runtime state under the run root (default `/run/quai`,
//! emptied by a reboot):
//!
//! ```text
//! <root>/quai.db                         containers, volumes, events (and images)
//! <root>/containers/<id>/                upper/ work/ rootfs/ (overlay), hostname,
//!                                        hosts, resolv.conf, <id>-json.log[.N]
//! <root>/volumes/<name>/_data            named volumes
//! <root>/init/quai-init                  the --init program, read-only
//! <run>/containers/<id>/                 config.json (bundle), attach.sock
//! <run>/runtime/                         the OCI runtime's state
//! <run>/locks/<id>.lock                  per-container lock (flock)
//! ```

use std::path::{Path, PathBuf};

/// Name prefix of removed containers' directories awaiting deletion.
pub const TRASH_PREFIX: &str = ".trash-";

#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub runroot: PathBuf,
}

impl Paths {
    pub fn new(root: &Path, runroot: &Path) -> Paths {
        Paths {
            root: root.to_path_buf(),
            runroot: runroot.to_path_buf(),
        }
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Where a removed container's files wait for their deletion by its
    /// monitor (`pid`, `start` identify it: when it is gone, anyone may
    /// delete them, see remove::collect_trash).
    pub fn trash_dir(&self, id: &str, pid: i32, start: u64) -> PathBuf {
        self.root
            .join("containers")
            .join(format!("{TRASH_PREFIX}{id}-{pid}-{start}"))
    }

    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("rootfs")
    }

    pub fn upper(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("upper")
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    pub fn hostname_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("hostname")
    }

    pub fn hosts_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("hosts")
    }

    pub fn resolv_conf_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("resolv.conf")
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.runroot.join("containers").join(id)
    }

    /// The bundle directory handed to the runtime (holds config.json).
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.run_dir(id)
    }

    pub fn socket(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("attach.sock")
    }

    /// The DNS server configuration of a user network (runtime state: the
    /// server does not survive a reboot either); its pid file is beside it.
    pub fn dns_config(&self, network_id: &str) -> PathBuf {
        self.runroot
            .join("networks")
            .join(format!("{network_id}.json"))
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.runroot.join("runtime")
    }

    pub fn lock_path(&self, id: &str) -> PathBuf {
        self.runroot.join("locks").join(format!("{id}.lock"))
    }

    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.volumes_dir().join(name)
    }

    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    pub fn init_binary(&self) -> PathBuf {
        self.root.join("init").join("quai-init")
    }

    /// Where the init layers of images live (one per image, shared by its
    /// containers).
    pub fn init_layers(&self) -> PathBuf {
        self.root.join("init-layers")
    }
}
