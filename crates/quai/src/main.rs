//! The one `quai` binary. It answers as `quai` (docker's command line) and,
//! when invoked through a link named `quai-runtime`, as an OCI runtime with
//! runc's command line.

mod cli;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use cli::image::{
    HistoryArgs, ImageCommand, ImagesArgs, ImportArgs, LoadArgs, RmiArgs, SaveArgs, SystemCommand,
    TagArgs,
};
use cli::GlobalOptions;

mod dns_server;
mod port_relay;
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
    #[command(flatten)]
    global: GlobalOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the quai version information
    Version(cli::system::VersionArgs),
    /// Run or maintain an image registry
    #[command(subcommand)]
    Registry(cli::registry::RegistryCommand),
    /// Download an image from a registry
    Pull(cli::pull::PullArgs),
    /// Upload an image to a registry
    Push(cli::pull::PushArgs),
    /// Log in to a registry
    Login(cli::login::LoginArgs),
    /// Log out from a registry
    Logout(cli::login::LogoutArgs),
    /// Inspect image manifests in registries
    #[command(subcommand)]
    Manifest(cli::login::ManifestCommand),
    /// List images
    Images(ImagesArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage quai
    #[command(subcommand)]
    System(SystemCommand),
    /// Create and run a new container from an image
    Run(Box<cli::container::RunArgs>),
    /// Create a new container
    Create(Box<cli::container::CreateArgs>),
    /// Start one or more stopped containers
    Start(cli::container::StartArgs),
    /// Stop one or more running containers
    Stop(cli::container::StopArgs),
    /// Restart one or more containers
    Restart(cli::container::StopArgs),
    /// Kill one or more running containers
    Kill(cli::container::KillArgs),
    /// Remove one or more containers
    Rm(cli::container::RmArgs),
    /// List containers
    Ps(cli::ps::PsArgs),
    /// Fetch the logs of a container
    Logs(cli::logs::LogsArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(cli::container::WaitArgs),
    /// Return low-level information on containers, images or volumes
    Inspect(cli::container::InspectArgs),
    /// Execute a command in a running container
    Exec(cli::exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(cli::exec::AttachArgs),
    /// Rename a container
    Rename(cli::manage::RenameArgs),
    /// Display the running processes of a container
    Top(cli::manage::TopArgs),
    /// Update configuration of one or more containers
    Update(cli::manage::UpdateArgs),
    /// Pause all processes within one or more containers
    Pause(cli::manage::PauseArgs),
    /// Unpause all processes within one or more containers
    Unpause(cli::manage::PauseArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(cli::manage::StatsArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cli::files::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(cli::files::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(cli::files::DiffArgs),
    /// Create a new image from a container's changes
    Commit(cli::files::CommitArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(cli::volume::VolumeCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(cli::network::NetworkCommand),
    /// List port mappings or a specific mapping for the container
    Port(cli::network::PortArgs),
    /// Get real time events from quai
    Events(cli::system::EventsArgs),
    /// Display system-wide information
    Info(cli::system::InfoArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(cli::ContainerCommand),
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
    /// The per-container monitor (started by `start` and `run`)
    Shim(cli::container::ShimArgs),
    /// Serve DNS for one user-defined network
    DnsServer(dns_server::DnsServerArgs),
    /// Relay a container's published TCP ports on [::1] (sockets on stdin)
    PortRelay,
}

fn main() -> ExitCode {
    quai_engine::timeline::mark("main");
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
    // The monitor's command line is written by the engine itself: read it
    // without building the parser of every command (it starts with every
    // container).
    if let Some(opts) =
        quai_engine::shim::ShimOptions::from_launch_args(args.get(1..).unwrap_or_default())
    {
        let code = report(cli::container::run_shim(opts));
        quai_engine::timeline::mark("shim:end");
        return code;
    }
    // The port relay starts with every container that publishes ports.
    if args
        .get(1..3)
        .is_some_and(|a| a == ["internal", "port-relay"])
        && args.len() == 3
    {
        return report(port_relay::run());
    }
    run_quai(args)
}

fn run_quai(args: Vec<OsString>) -> ExitCode {
    if let Some(cli) = parse_run_only(&args) {
        return dispatch(cli);
    }
    let command = Cli::command();
    let args = cli::end_options_after_operand(&command, args);
    let matches = match command.try_get_matches_from(args) {
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
    dispatch(cli)
}

/// `run` starts containers, so its start-up counts: it is parsed against a
/// tree holding only it and the global options, not the tree of every
/// command (~1 ms and hundreds of page faults to build). Anything else,
/// and anything this parse refuses (help, a bad flag), goes to the full
/// parser, which answers exactly as before.
fn parse_run_only(args: &[OsString]) -> Option<Cli> {
    if !args.iter().skip(1).any(|a| a == "run") {
        return None;
    }
    let run = <cli::container::RunArgs as clap::Args>::augment_args(
        clap::Command::new("run").disable_help_flag(true),
    );
    let root = <GlobalOptions as clap::Args>::augment_args(
        clap::Command::new("quai").disable_help_subcommand(true),
    )
    .subcommand(run);
    let args = cli::end_options_after_operand(&root, args.to_vec());
    let matches = root.try_get_matches_from(args).ok()?;
    Cli::from_arg_matches(&matches).ok()
}

fn dispatch(cli: Cli) -> ExitCode {
    let g = &cli.global;
    let result = match cli.command {
        Command::Version(a) => cli::system::version(a),
        Command::Images(a) => cli::image::run_image(ImageCommand::Ls(a), g),
        Command::Load(a) => cli::image::run_image(ImageCommand::Load(a), g),
        Command::Save(a) => cli::image::run_image(ImageCommand::Save(a), g),
        Command::Import(a) => cli::image::run_image(ImageCommand::Import(a), g),
        Command::Tag(a) => cli::image::run_image(ImageCommand::Tag(a), g),
        Command::Rmi(a) => cli::image::run_image(ImageCommand::Rm(a), g),
        Command::History(a) => cli::image::run_image(ImageCommand::History(a), g),
        Command::Image(c) => cli::image::run_image(c, g),
        Command::System(c) => cli::image::run_system(c, g),
        Command::Registry(command) => cli::registry::run(command),
        Command::Pull(a) => cli::pull::pull(a, g),
        Command::Push(a) => cli::pull::push(a, g),
        Command::Login(args) => cli::login::login(args),
        Command::Logout(args) => cli::login::logout(args),
        Command::Manifest(command) => cli::login::manifest(command),
        Command::Run(a) => cli::container::run(*a, g),
        Command::Create(a) => cli::container::create(*a, g),
        Command::Start(a) => cli::container::start(a, g),
        Command::Stop(a) => cli::container::stop(a, g),
        Command::Restart(a) => cli::container::restart(a, g),
        Command::Kill(a) => cli::container::kill(a, g),
        Command::Rm(a) => cli::container::rm(a, g),
        Command::Ps(a) => cli::ps::ps(a, g),
        Command::Logs(a) => cli::logs::logs(a, g),
        Command::Wait(a) => cli::container::wait(a, g),
        Command::Inspect(a) => cli::container::inspect(a, g, false),
        Command::Exec(a) => cli::exec::exec(a, g),
        Command::Attach(a) => cli::exec::attach(a, g),
        Command::Rename(a) => cli::manage::rename(a, g),
        Command::Top(a) => cli::manage::top(a, g),
        Command::Update(a) => cli::manage::update(a, g),
        Command::Pause(a) => cli::manage::pause(a, g),
        Command::Unpause(a) => cli::manage::unpause(a, g),
        Command::Stats(a) => cli::manage::stats(a, g),
        Command::Cp(a) => cli::files::cp(a, g),
        Command::Export(a) => cli::files::export(a, g),
        Command::Diff(a) => cli::files::diff(a, g),
        Command::Commit(a) => cli::files::commit(a, g),
        Command::Volume(c) => cli::volume::run(c, g),
        Command::Network(c) => cli::network::run(c, g),
        Command::Port(a) => cli::network::port(a, g),
        Command::Events(a) => cli::system::events(a, g),
        Command::Info(a) => cli::system::info(a, g),
        Command::Container(c) => cli::run_container(c, g),
        Command::Internal(InternalCommand::Shim(a)) => cli::container::shim(a, g),
        Command::Internal(InternalCommand::DnsServer(args)) => dns_server::run(args),
        Command::Internal(InternalCommand::PortRelay) => port_relay::run(),
        Command::Runtime { args } => return runtime_cli::main(runtime_argv(args.into_iter())),
    };
    let code = report(result);
    quai_engine::timeline::mark("cli:end");
    code
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
            if let Some(exit) = e.downcast_ref::<cli::Exit>() {
                if let Some(m) = &exit.message {
                    eprintln!("Error: {m}");
                }
                return ExitCode::from(exit.code);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn run_args(cli: Cli) -> Option<String> {
        match cli.command {
            Command::Run(a) => Some(format!("{:?} {:?}", a, cli.global.root)),
            _ => None,
        }
    }

    #[test]
    fn run_is_parsed_as_the_full_parser_does() {
        let line = args(&[
            "quai", "--root", "/r", "run", "--rm", "-e", "A=1", "--name", "x", "-d", "img", "ls",
            "-l",
        ]);
        let fast = parse_run_only(&line).expect("parsed by the run-only tree");
        let command = Cli::command();
        let full_args = cli::end_options_after_operand(&command, line);
        let full =
            Cli::from_arg_matches(&command.try_get_matches_from(full_args).unwrap()).unwrap();
        let fast = run_args(fast).expect("run");
        assert_eq!(fast, run_args(full).expect("run"));
        assert!(fast.contains("\"ls\", \"-l\""), "{fast}");
    }

    #[test]
    fn other_commands_help_and_bad_flags_go_to_the_full_parser() {
        assert!(parse_run_only(&args(&["quai", "ps", "-a"])).is_none());
        assert!(parse_run_only(&args(&["quai", "run", "--help"])).is_none());
        assert!(parse_run_only(&args(&["quai", "run", "--bogus", "img"])).is_none());
        assert!(parse_run_only(&args(&["quai", "run"])).is_none());
        // `run` as an operand of another command is not `run`.
        assert!(parse_run_only(&args(&["quai", "start", "run"])).is_none());
    }
}
