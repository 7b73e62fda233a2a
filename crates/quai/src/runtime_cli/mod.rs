//! runc's command line, answered by the `quai` binary when it is invoked as
//! `quai-runtime` or as `quai runtime …`, so that containerd, CRI-O and
//! anything else that drives runc can drive quai. Exit status 1 on any
//! error, like runc; `run` and `exec` return the container process' status.

mod commands;
mod logging;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "quai-runtime",
    version,
    about = "quai's OCI runtime: runs containers from OCI bundles (runc's command line)",
    disable_help_subcommand = true
)]
pub struct RuntimeCli {
    /// Directory for the state of containers [default: /run/quai/runtime, or
    /// $XDG_RUNTIME_DIR/quai-runtime for unprivileged users]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write the runtime's log to FILE instead of stderr
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log line format
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages too
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported: refused)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args)]
pub struct CreateArgs {
    /// Bundle directory (holds config.json and the root file system)
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the container's init pid to FILE
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Pass N more descriptors (3..3+N-1) to the container
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Use MS_MOVE + chroot instead of pivot_root (for ramdisk roots)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of creating one
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Container id
    pub id: String,
}

#[derive(Subcommand)]
pub enum RuntimeCommand {
    /// Create a container (its process waits for `start`)
    Create(CreateArgs),
    /// Start a created container's process
    Start { id: String },
    /// Create and start a container, and wait for it unless -d
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once started instead of waiting for the container to exit
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits (no delete)
        #[arg(long)]
        keep: bool,
        /// Do not reap orphans of the container as a child subreaper
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
    },
    /// Print a container's state as JSON
    State { id: String },
    /// Send a signal (default TERM) to a container's init, or with --all to all of its processes
    Kill {
        /// Signal every process of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        /// Signal name (KILL, SIGKILL) or number
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a stopped container (or any, with --force)
    Delete {
        /// Kill the container first if it is running
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Run a new process inside a running container
    Exec(Box<ExecArgs>),
    /// List the processes of a container
    Ps {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        id: String,
        /// Options passed to ps(1) (default: -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers
    #[command(alias = "ls")]
    List {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json (runc's) into the bundle directory
    Spec {
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        bundle: PathBuf,
        /// A config for unprivileged users (user namespace, no cgroups)
        #[arg(long)]
        rootless: bool,
    },
    /// Suspend every process of a container (cgroup freezer)
    Pause { id: String },
    /// Resume a paused container
    Resume { id: String },
    /// Change a running container's resource limits
    Update(Box<UpdateArgs>),
    /// Print a container's resource usage and OOM events as JSON lines
    Events {
        /// Print the current stats once and exit
        #[arg(long)]
        stats: bool,
        /// Time between stats events (5s, 500ms, 1m)
        #[arg(long, value_name = "DURATION", default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Print the OCI features document of this runtime
    Features,
}

#[derive(Args)]
pub struct UpdateArgs {
    /// Resources as an OCI linux.resources JSON file ('-' for stdin); other
    /// flags are then ignored
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Block I/O weight, 10 to 1000
    #[arg(long = "blkio-weight", value_name = "WEIGHT")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds
    #[arg(long = "cpu-period", value_name = "USEC")]
    pub cpu_period: Option<String>,
    /// CPU CFS quota in microseconds per period (-1: unlimited)
    #[arg(long = "cpu-quota", value_name = "USEC", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// CPU CFS burst in microseconds
    #[arg(long = "cpu-burst", value_name = "USEC")]
    pub cpu_burst: Option<String>,
    /// CPU shares (relative weight)
    #[arg(
        long = "cpu-shares",
        visible_alias = "cpu-share",
        value_name = "SHARES"
    )]
    pub cpu_shares: Option<String>,
    /// CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period", value_name = "USEC")]
    pub cpu_rt_period: Option<String>,
    /// CPU real-time runtime in microseconds per period
    #[arg(
        long = "cpu-rt-runtime",
        value_name = "USEC",
        allow_hyphen_values = true
    )]
    pub cpu_rt_runtime: Option<String>,
    /// 1: SCHED_IDLE for the cgroup, 0: normal
    #[arg(long = "cpu-idle", value_name = "0|1")]
    pub cpu_idle: Option<String>,
    /// CPUs the container may use (0-3,5)
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use
    #[arg(long = "cpuset-mems", value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (512m, 1g; -1: unlimited)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory + swap limit (-1: unlimited swap)
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(
        long = "memory-reservation",
        value_name = "BYTES",
        allow_hyphen_values = true
    )]
    pub memory_reservation: Option<String>,
    /// Kernel memory limit (cgroup v1 kernels that still have it)
    #[arg(
        long = "kernel-memory",
        value_name = "BYTES",
        allow_hyphen_values = true
    )]
    pub kernel_memory: Option<String>,
    /// Kernel TCP buffer limit (cgroup v1 kernels that still have it)
    #[arg(
        long = "kernel-memory-tcp",
        value_name = "BYTES",
        allow_hyphen_values = true
    )]
    pub kernel_memory_tcp: Option<String>,
    /// Maximum number of processes (-1: unlimited)
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Container id
    pub id: String,
}

#[derive(Args)]
pub struct ExecArgs {
    /// Process as an OCI process JSON file (instead of ARGS)
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the process runs instead of waiting for it
    #[arg(short, long)]
    pub detach: bool,
    /// Give the process a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket that receives the pty master with --tty
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the process' pid to FILE
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (NAME=value), repeatable
    #[arg(short, long, value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// User to run as: uid[:gid]
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional group id, repeatable
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the process (CAP_NET_ADMIN), repeatable
    #[arg(short, long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// AppArmor profile for the process
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// SELinux label for the process
    #[arg(long = "process-label", value_name = "LABEL")]
    pub process_label: Option<String>,
    /// Pass N more descriptors (3..3+N-1) to the process
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id
    pub id: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The state root: --root, else runc's rule (a per-user runtime directory
/// for unprivileged users).
pub fn state_root(cli: &RuntimeCli) -> PathBuf {
    match &cli.root {
        Some(root) => root.clone(),
        None => default_state_root(),
    }
}

fn default_state_root() -> PathBuf {
    if !rustix::process::geteuid().is_root() {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("quai-runtime");
        }
    }
    PathBuf::from(quai_runtime::state::DEFAULT_ROOT)
}

/// The state root of `exec`, which starts a process the container can see,
/// read from `args` without the full parser; `None`
/// for every other command. Global options may come before or after the
/// command (up to the container id), so options that take a value are
/// known by name here.
fn protected_command_root(args: &[OsString]) -> Option<PathBuf> {
    const TAKE_VALUE: &[&str] = &[
        "--root",
        "--log",
        "--log-format",
        "--bundle",
        "-b",
        "--console-socket",
        "--pid-file",
        "--preserve-fds",
        "--process",
        "-p",
        "--cwd",
        "--env",
        "-e",
        "--user",
        "-u",
        "--additional-gids",
        "-g",
        "--cap",
        "-c",
        "--apparmor",
        "--process-label",
    ];
    let mut root = None;
    let mut command = None;
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let text = arg.to_str()?;
        if let Some(value) = text.strip_prefix("--root=") {
            root = Some(PathBuf::from(value));
        } else if TAKE_VALUE.contains(&text) {
            let value = rest.next()?;
            if text == "--root" {
                root = Some(PathBuf::from(value));
            }
        } else if text == "--" {
            break;
        } else if text.starts_with('-') {
        } else if command.is_none() {
            command = Some(text);
            if text != "exec" {
                return None;
            }
        } else {
            // The container id: what follows belongs to the container.
            break;
        }
    }
    command?;
    Some(root.unwrap_or_else(default_state_root))
}

/// Entry point for runc's command line; `args[0]` is the program name.
pub fn main(args: Vec<OsString>) -> ExitCode {
    quai_runtime::process::sys::ensure_stdio_open();
    // Re-execute before anything else when the command will need it: the
    // first image then does no more than it must (no command-line parser
    // built, less memory to tear down at exec).
    if let Some(root) = protected_command_root(&args) {
        let keep_in = root.join(quai_runtime::exe_guard::KEPT_DIR);
        if let Err(e) = quai_runtime::exe_guard::reexec_protected(Some(&keep_in)) {
            eprintln!("quai-runtime: {e}");
            return ExitCode::from(1);
        }
    }
    let cli = match RuntimeCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let informational = matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            );
            let _ = e.print();
            return if informational {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
    };
    if let Err(e) = logging::init(
        cli.log.as_deref(),
        matches!(cli.log_format, LogFormat::Json),
        cli.debug,
    ) {
        eprintln!("quai-runtime: {e:#}");
        return ExitCode::from(1);
    }
    let logs_to_file = cli.log.is_some();
    if matches!(cli.command, RuntimeCommand::Exec(_)) {
        // The process exec starts is visible to the container: it must not
        // expose a writable runtime binary (CVE-2019-5736). (`create` and
        // `run` re-execute only for the containers that need it.)
        let keep_in = state_root(&cli).join(quai_runtime::exe_guard::KEPT_DIR);
        if let Err(e) = quai_runtime::exe_guard::reexec_protected(Some(&keep_in)) {
            eprintln!("quai-runtime: {e}");
            return ExitCode::from(1);
        }
    }
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let message = format!("{e:#}");
            if logs_to_file {
                tracing::error!("{message}");
            }
            eprintln!("quai-runtime: {message}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_of(args: &[&str]) -> Option<PathBuf> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        protected_command_root(&args)
    }

    #[test]
    fn commands_that_start_processes_are_found_before_parsing() {
        assert_eq!(
            root_of(&["quai-runtime", "--root", "/s", "run", "x"]),
            Some(PathBuf::from("/s"))
        );
        assert_eq!(
            root_of(&[
                "quai-runtime",
                "--debug",
                "--log",
                "run",
                "--root=/t",
                "exec",
                "x"
            ]),
            Some(PathBuf::from("/t")),
            "--log takes a value: `run` there is the log file"
        );
        assert_eq!(
            root_of(&["quai-runtime", "run", "-b", "/b", "--root", "/u", "-d", "x"]),
            Some(PathBuf::from("/u")),
            "global options after the command count"
        );
        assert_eq!(
            root_of(&["quai-runtime", "exec", "x", "sh", "--root", "/v"]),
            Some(default_state_root()),
            "after the id, arguments belong to the container"
        );
        assert_eq!(
            root_of(&[
                "quai-runtime",
                "--root=/t",
                "--log-format",
                "json",
                "create",
                "x"
            ]),
            Some(PathBuf::from("/t"))
        );
        assert_eq!(
            root_of(&["quai-runtime", "--root", "/s", "state", "x"]),
            None
        );
        assert_eq!(root_of(&["quai-runtime", "list"]), None);
        assert_eq!(root_of(&["quai-runtime", "--root"]), None);
    }
}
