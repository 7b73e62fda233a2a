//! The one `quai` binary. It answers as `quai` (docker's command line) and,
//! when invoked through a link named `quai-runtime`, as an OCI runtime with
//! runc's command line.

mod cli;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod dns_server;
mod runtime_cli;

/// Exit status docker uses when the engine itself fails (bad flag, missing
/// image, ...), as opposed to the container's own exit status.
const EXIT_ENGINE_ERROR: u8 = 125;

#[derive(Parser)]
#[command(
    name = "quai",
    version,
    about = "Build, ship and run Linux containers (docker-compatible)",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show quai's version
    Version,
    /// Run or maintain an image registry
    #[command(subcommand)]
    Registry(cli::registry::RegistryCommand),
    /// Log in to a registry
    Login(cli::login::LoginArgs),
    /// Log out from a registry
    Logout(cli::login::LogoutArgs),
    /// Inspect image manifests in registries
    #[command(subcommand)]
    Manifest(cli::login::ManifestCommand),
    /// Helpers quai starts itself; not for direct use
    #[command(subcommand, hide = true)]
    Internal(InternalCommand),
    /// OCI runtime with runc's command line (also installed as `quai-runtime`)
    #[command(disable_help_flag = true)]
    Runtime {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Subcommand)]
enum InternalCommand {
    /// Serve DNS for one user-defined network
    DnsServer(dns_server::DnsServerArgs),
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // runc's command line: single-threaded (no async runtime may start
    // first, it forks without exec) and with runc's own log format.
    if invoked_as == "quai-runtime" {
        return runtime_cli::main(args);
    }
    if args.get(1).is_some_and(|a| a == "runtime") {
        return runtime_cli::main(runtime_argv(args.into_iter().skip(2)));
    }
    init_logging();
    run_quai(args)
}

fn run_quai(args: Vec<OsString>) -> ExitCode {
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let informational = matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            );
            let _ = e.print();
            return if informational {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_ENGINE_ERROR)
            };
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_ENGINE_ERROR);
        }
    };
    match cli.command {
        Command::Version => {
            println!("quai version {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Registry(command) => report(cli::registry::run(command)),
        Command::Login(args) => report(cli::login::login(args)),
        Command::Logout(args) => report(cli::login::logout(args)),
        Command::Manifest(command) => report(cli::login::manifest(command)),
        Command::Internal(InternalCommand::DnsServer(args)) => report(dns_server::run(args)),
        Command::Runtime { args } => runtime_cli::main(runtime_argv(args.into_iter())),
    }
}

/// argv for runc's command line reached as `quai runtime ARGS`.
fn runtime_argv(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    std::iter::once(OsString::from("quai runtime"))
        .chain(args)
        .collect()
}

/// Prints a command's error with its chain of causes, docker-style, and maps
/// it to the engine-error exit status.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(EXIT_ENGINE_ERROR)
        }
    }
}

/// Logs go to stderr; `QUAI_LOG` (e.g. `debug`, `quai_registry=trace`) sets the level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("QUAI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
