//! docker's command line, one module per family of commands.

pub mod attach;
pub mod container;
pub mod create_flags;
pub mod exec;
pub mod files;
pub mod format;
pub mod image;
pub mod login;
pub mod logs;
pub mod manage;
pub mod network;
pub mod ps;
pub mod pull;
pub mod registry;
pub mod stats;
pub mod system;
pub mod volume;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use quai_image::apply::{ApplyOptions, DEFAULT_MAX_LAYER_SIZE};
use quai_image::store::{ImageStore, StoreOptions};

/// Options every command takes: where quai keeps its state. Tests and
/// rootless users point them at their own directories.
#[derive(Args, Clone, Debug)]
pub struct GlobalOptions {
    /// Directory of quai's persistent state (images, containers, volumes)
    #[arg(
        long,
        global = true,
        env = "QUAI_ROOT",
        default_value = "/var/lib/quai",
        value_name = "DIR",
        value_parser = absolute_dir
    )]
    pub root: PathBuf,
    /// Directory of quai's runtime state (sockets, locks, running containers)
    #[arg(
        long,
        global = true,
        env = "QUAI_RUNROOT",
        default_value = "/run/quai",
        value_name = "DIR",
        alias = "run-root",
        value_parser = absolute_dir
    )]
    pub runroot: PathBuf,
}

/// State directories are made absolute: the monitor and the runtime work
/// from other directories, where a relative path would name another place.
fn absolute_dir(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("the directory must not be empty".into());
    }
    std::path::absolute(value).map_err(|e| format!("cannot make {value:?} absolute: {e}"))
}

/// Environment variable bounding a layer's uncompressed size, in bytes.
pub const MAX_LAYER_SIZE_ENV: &str = "QUAI_MAX_LAYER_SIZE";

impl GlobalOptions {
    /// Opens the image store under `--root`.
    pub fn image_store(&self) -> Result<ImageStore> {
        let max_size = match std::env::var(MAX_LAYER_SIZE_ENV) {
            Ok(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| {
                    format!("{MAX_LAYER_SIZE_ENV}={v:?} is not a positive number of bytes")
                })?,
            Err(_) => DEFAULT_MAX_LAYER_SIZE,
        };
        let opts = StoreOptions {
            apply: ApplyOptions { max_size },
            no_seed: false,
        };
        // No context: the error already names the file, and docker-style
        // messages (e.g. "No such image") must reach the user unchanged.
        Ok(ImageStore::open(&self.root, opts)?)
    }
}

impl GlobalOptions {
    /// Opens the engine (the image store plus containers) under `--root`
    /// and `--runroot`.
    pub fn engine(&self) -> Result<quai_engine::Engine> {
        Ok(quai_engine::Engine::with_store(
            self.image_store()?,
            &self.runroot,
        ))
    }
}

/// A command's outcome as a process exit status, carried as an error so
/// that it travels up through `?`: docker exits 1 for most failed
/// commands, 125 for `run`/`create` errors, and `run` with the container's
/// own status. `message: None` prints nothing.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: Option<String>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

impl std::error::Error for Exit {}

impl Exit {
    pub fn status(code: i32) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code: code.clamp(0, 255) as u8,
            message: None,
        })
    }

    pub fn with(code: u8, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code,
            message: Some(message.into()),
        })
    }
}

/// `quai container …`: the container commands under docker's management
/// command.
#[derive(clap::Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(Box<container::RunArgs>),
    /// Create a new container
    Create(Box<container::CreateArgs>),
    /// Start one or more stopped containers
    Start(container::StartArgs),
    /// Stop one or more running containers
    Stop(container::StopArgs),
    /// Restart one or more containers
    Restart(container::StopArgs),
    /// Kill one or more running containers
    Kill(container::KillArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(container::RmArgs),
    /// List containers
    #[command(visible_alias = "list")]
    Ls(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(container::WaitArgs),
    /// Display detailed information on one or more containers
    Inspect(container::InspectArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(exec::AttachArgs),
    /// Rename a container
    Rename(manage::RenameArgs),
    /// Display the running processes of a container
    Top(manage::TopArgs),
    /// Update configuration of one or more containers
    Update(manage::UpdateArgs),
    /// Pause all processes within one or more containers
    Pause(manage::PauseArgs),
    /// Unpause all processes within one or more containers
    Unpause(manage::PauseArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(manage::StatsArgs),
    /// Remove all stopped containers
    Prune(manage::PruneArgs),
    /// List port mappings or a specific mapping for the container
    Port(network::PortArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(files::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(files::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(files::DiffArgs),
    /// Create a new image from a container's changes
    Commit(files::CommitArgs),
}

pub fn run_container(cmd: ContainerCommand, g: &GlobalOptions) -> Result<()> {
    match cmd {
        ContainerCommand::Run(a) => container::run(*a, g),
        ContainerCommand::Create(a) => container::create(*a, g),
        ContainerCommand::Start(a) => container::start(a, g),
        ContainerCommand::Stop(a) => container::stop(a, g),
        ContainerCommand::Restart(a) => container::restart(a, g),
        ContainerCommand::Kill(a) => container::kill(a, g),
        ContainerCommand::Rm(a) => container::rm(a, g),
        ContainerCommand::Ls(a) => ps::ps(a, g),
        ContainerCommand::Logs(a) => logs::logs(a, g),
        ContainerCommand::Wait(a) => container::wait(a, g),
        ContainerCommand::Inspect(a) => container::inspect(a, g, true),
        ContainerCommand::Exec(a) => exec::exec(a, g),
        ContainerCommand::Attach(a) => exec::attach(a, g),
        ContainerCommand::Rename(a) => manage::rename(a, g),
        ContainerCommand::Top(a) => manage::top(a, g),
        ContainerCommand::Update(a) => manage::update(a, g),
        ContainerCommand::Pause(a) => manage::pause(a, g),
        ContainerCommand::Unpause(a) => manage::unpause(a, g),
        ContainerCommand::Stats(a) => manage::stats(a, g),
        ContainerCommand::Prune(a) => manage::prune(a, g),
        ContainerCommand::Port(a) => network::port(a, g),
        ContainerCommand::Cp(a) => files::cp(a, g),
        ContainerCommand::Export(a) => files::export(a, g),
        ContainerCommand::Diff(a) => files::diff(a, g),
        ContainerCommand::Commit(a) => files::commit(a, g),
    }
}

/// docker stops reading options at the first operand of `run`, `create`,
/// `exec` and `top`: `quai run busybox ls -l` passes `-l` to `ls`. clap
/// would take `-l` as `--label`, so a `--` is put after that operand.
/// Which options take a value comes from the command's own definition.
pub fn end_options_after_operand(
    root: &clap::Command,
    args: Vec<std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    const STOPPING: &[&str] = &["run", "create", "exec", "top"];
    let takes_value = |cmd: &clap::Command, arg: &str| -> Option<bool> {
        let found = if let Some(long) = arg.strip_prefix("--") {
            let long = long.split('=').next().unwrap_or(long);
            cmd.get_arguments().find(|a| {
                a.get_long() == Some(long)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&long))
            })
        } else {
            let c = arg.chars().nth(1)?;
            cmd.get_arguments().find(|a| a.get_short() == Some(c))
        }?;
        Some(found.get_action().takes_values())
    };
    let mut cmd = root;
    let mut i = 1;
    // Walk global options and subcommand names down to the command.
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        if a == "--" {
            return args;
        }
        if a.starts_with('-') {
            if !a.contains('=') && takes_value(cmd, &a) == Some(true) {
                i += 1;
            }
            i += 1;
            continue;
        }
        match cmd.find_subcommand(&a) {
            Some(sub) => {
                cmd = sub;
                i += 1;
                if STOPPING.contains(&cmd.get_name()) {
                    break;
                }
            }
            None => return args,
        }
    }
    if !STOPPING.contains(&cmd.get_name()) {
        return args;
    }
    // Options of the command, up to its first operand.
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        if a == "--" {
            return args;
        }
        if a.starts_with("--") {
            if !a.contains('=') && takes_value(cmd, &a) == Some(true) {
                i += 1;
            }
            i += 1;
            continue;
        }
        if a.starts_with('-') && a.len() > 1 {
            // A cluster of short options: the first that takes a value
            // takes the rest of the cluster, or the next argument.
            let mut next_is_value = false;
            for (pos, c) in a.char_indices().skip(1) {
                if takes_value(cmd, &format!("-{c}")) == Some(true) {
                    next_is_value = pos + c.len_utf8() == a.len();
                    break;
                }
            }
            i += if next_is_value { 2 } else { 1 };
            continue;
        }
        // The operand (IMAGE or CONTAINER): everything after it is its.
        let mut out = args;
        out.insert(i + 1, "--".into());
        return out;
    }
    args
}

#[cfg(test)]
mod state_dir_tests {
    use super::absolute_dir;

    #[test]
    fn relative_state_dirs_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute_dir("state").unwrap(), cwd.join("state"));
        assert_eq!(
            absolute_dir("/var/lib/quai").unwrap(),
            std::path::PathBuf::from("/var/lib/quai")
        );
        assert!(absolute_dir("").is_err());
    }
}
