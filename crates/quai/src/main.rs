//! The one `quai` binary. It answers as `quai` (docker's command line) and,
//! when invoked through a link named `quai-runtime`, as an OCI runtime with
//! runc's command line.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// OCI runtime with runc's command line (also installed as `quai-runtime`)
    #[command(disable_help_flag = true)]
    Runtime {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if invoked_as == "quai-runtime" {
        return runtime_cli::main(args);
    }
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
        Command::Runtime { args } => {
            let argv = std::iter::once(OsString::from("quai runtime"))
                .chain(args)
                .collect();
            runtime_cli::main(argv)
        }
    }
}
