//! Container commands: `run`, `create`, `start`, `stop`, `restart`,
//! `kill`, `rm`, `wait`, `inspect`, and the hidden `internal shim`.

use std::io::{self, IsTerminal};

use anyhow::{anyhow, Result};
use clap::Args;
use serde_json::Value;

use quai_engine::error::EngineError;
use quai_engine::shim::ShimOptions;
use quai_engine::{Engine, Streams};
use quai_image::spec::Platform;
use quai_image::store::ImageStore;

use super::attach::{self, parse_detach_keys, Outcome, RelayOptions, DEFAULT_DETACH_KEYS};
use super::create_flags::{build_request, CreateFlags};
use super::format::{go_json_pretty, Template};
use super::pull::pull_for_run;
use super::{Exit, GlobalOptions};

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Print help (-h is --hostname, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value = "true", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// The image to run
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The command and its arguments
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Print help (-h is --hostname, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "timeout",
        alias = "time",
        allow_hyphen_values = true
    )]
    pub timeout: Option<i64>,
    /// Signal to send to the container
    #[arg(short, long)]
    pub signal: Option<String>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template ('json', or a Go template)
    #[arg(short, long)]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    /// Return JSON for specified type (container, image, volume)
    #[arg(long = "type")]
    pub typ: Option<String>,
    #[arg(value_name = "NAME|ID", required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ShimArgs {
    #[arg(long)]
    pub attach: bool,
    pub id: String,
}

/// Runs `quai internal shim`: the monitor of one container.
pub fn shim(a: ShimArgs, g: &GlobalOptions) -> Result<()> {
    run_shim(ShimOptions {
        root: g.root.clone(),
        runroot: g.runroot.clone(),
        id: a.id,
        attach: a.attach,
        await_id: false,
    })
}

/// Runs the monitor with options already parsed.
pub fn run_shim(opts: ShimOptions) -> Result<()> {
    let code = quai_engine::shim::main(opts);
    if code == 0 {
        Ok(())
    } else {
        Err(Exit::status(code))
    }
}

/// Maps an engine error to docker's exit status for `run`/`start`.
fn start_error(e: EngineError) -> anyhow::Error {
    let status = e.exit_status();
    Exit::with(status as u8, e.to_string())
}

/// `--pull`: docker's policies for the image of `run`/`create`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PullPolicy {
    Always,
    Missing,
    Never,
}

fn pull_policy(pull: &str) -> Result<PullPolicy> {
    match pull {
        "always" => Ok(PullPolicy::Always),
        "missing" => Ok(PullPolicy::Missing),
        "never" => Ok(PullPolicy::Never),
        other => Err(Exit::with(
            125,
            format!("invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""),
        )),
    }
}

fn create_error(e: EngineError) -> anyhow::Error {
    match e {
        EngineError::Image(quai_image::Error::NoSuchImage(name)) => {
            Exit::with(125, format!("No such image: {name}"))
        }
        other => Exit::with(125, other.to_string()),
    }
}

fn create_container(
    engine: &mut Engine,
    flags: &CreateFlags,
    image: &str,
    command: &[String],
    attach: bool,
) -> Result<quai_engine::Created> {
    let policy = pull_policy(&flags.pull)?;
    let platform = flags
        .platform
        .as_deref()
        .map(Platform::parse)
        .transpose()
        .map_err(|e| Exit::with(125, e.to_string()))?;
    let req = build_request(flags, image, command, attach)
        .map_err(|e| Exit::with(125, format!("{e:#}")))?;
    if let Some(w) = super::create_flags::kernel_memory_warning(flags) {
        eprintln!("WARNING: {w}");
    }
    let wanted = platform.clone().unwrap_or_else(Platform::host);
    // docker treats a local image of another platform than the one asked
    // for as missing. (create itself refuses an image of another platform,
    // and warns about a foreign one when none was asked for.)
    let other_platform = platform.as_ref().is_some_and(|p| {
        local_platform(engine.images(), image).is_some_and(|have| !have.matches(p))
    });
    if policy == PullPolicy::Always || (policy == PullPolicy::Missing && other_platform) {
        if other_platform {
            eprintln!("Unable to find image '{image}' locally");
        }
        pull_for_run(engine.images(), image, &wanted, flags.quiet)?;
    }
    let req = quai_engine::CreateRequest { platform, ..req };
    // The image is looked up by create itself: a present image costs
    // nothing extra, a missing one is pulled and the create tried again.
    let created = match engine.create(req.clone()) {
        Err(EngineError::Image(quai_image::Error::NoSuchImage(name)))
            if policy == PullPolicy::Missing =>
        {
            eprintln!("Unable to find image '{name}' locally");
            pull_for_run(engine.images(), image, &wanted, flags.quiet)?;
            engine.create(req).map_err(create_error)
        }
        other => other.map_err(create_error),
    }?;
    // docker's CLI prints the daemon's warnings (swap not accounted, ...).
    for w in &created.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(created)
}

/// The platform of the local image `image` names, if there is one.
fn local_platform(store: &mut ImageStore, image: &str) -> Option<Platform> {
    let record = store.resolve(image).ok()?;
    Some(store.config(&record.id).ok()?.platform())
}

pub fn run(a: RunArgs, g: &GlobalOptions) -> Result<()> {
    if a.detach && a.flags.rm && a.flags.restart.as_deref().is_some_and(|r| r != "no") {
        return Err(Exit::with(125, "Conflicting options: --restart and --rm"));
    }
    let detach_keys = parse_detach_keys(a.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS))
        .map_err(|e| Exit::with(125, e.to_string()))?;
    if a.flags.tty && a.flags.interactive && !a.detach && !io::stdin().is_terminal() {
        return Err(Exit::with(125, "the input device is not a TTY"));
    }
    quai_engine::timeline::mark("cli:parsed");
    // The container's monitor starts up (on another CPU) while the engine
    // opens and the container is created; if that fails, the monitor is
    // told nothing and exits (waited for when `engine` goes).
    let pending = quai_engine::client::ShimLauncher::default()
        .prespawn(&quai_engine::paths::Paths::new(&g.root, &g.runroot));
    let mut engine = g.engine().map_err(|e| Exit::with(125, format!("{e:#}")))?;
    quai_engine::timeline::mark("cli:opened");
    match pending {
        Ok(pending) => engine.set_pending_monitor(pending),
        Err(e) => tracing::debug!("monitor not started ahead: {e}"),
    }
    let created = create_container(&mut engine, &a.flags, &a.image, &a.command, !a.detach)?;
    quai_engine::timeline::mark("cli:created");
    if a.detach {
        engine.start(&created.id, None).map_err(start_error)?;
        println!("{}", created.id);
        return Ok(());
    }
    let streams = Streams {
        stdin: a.flags.interactive,
        stdout: true,
        stderr: true,
    };
    let sock = engine
        .start(&created.id, Some(streams))
        .map_err(start_error)?
        .ok_or_else(|| anyhow!("no attach stream"))?;
    let opts = RelayOptions {
        paths: engine.paths(),
        id: &created.id,
        stdin: a.flags.interactive,
        tty: a.flags.tty,
        sig_proxy: a.sig_proxy,
        detach_keys,
    };
    let outcome = attach::relay(sock, &opts)?;
    quai_engine::timeline::mark("cli:exit-told");
    match outcome {
        Outcome::Exited(exit) => {
            if let Some(e) = exit.error {
                return Err(Exit::with(exit.status_code.clamp(0, 255) as u8, e));
            }
            if exit.status_code == 0 {
                Ok(())
            } else {
                Err(Exit::status(exit.status_code))
            }
        }
        Outcome::Detached => Ok(()),
        Outcome::Lost => {
            let code = engine
                .wait(&created.id)
                .map(|w| w.status_code)
                .unwrap_or(125);
            if code == 0 {
                Ok(())
            } else {
                Err(Exit::status(code))
            }
        }
    }
}

pub fn create(a: CreateArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(125, format!("{e:#}")))?;
    // docker's `create` records the default attachments (stdout, stderr,
    // and stdin with StdinOnce under -i) for a later `start -a`/`attach`.
    let created = create_container(&mut engine, &a.flags, &a.image, &a.command, true)?;
    println!("{}", created.id);
    Ok(())
}

/// Runs `op` on each name; prints each name that succeeded (docker's
/// `stop`, `rm`, ... output) and fails with status 1 if any failed.
fn each(names: &[String], mut op: impl FnMut(&str) -> Result<(), EngineError>) -> Result<()> {
    let mut failed = false;
    for n in names {
        match op(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(Exit::status(1))
    } else {
        Ok(())
    }
}

fn open(g: &GlobalOptions) -> Result<Engine> {
    g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))
}

pub fn start(a: StartArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = open(g)?;
    if !(a.attach || a.interactive) {
        return each(&a.containers, |n| engine.start(n, None).map(|_| ()));
    }
    if a.containers.len() > 1 {
        return Err(Exit::with(
            1,
            "you cannot start and attach multiple containers at once",
        ));
    }
    let name = &a.containers[0];
    let detach_keys = parse_detach_keys(a.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS))
        .map_err(|e| Exit::with(1, e.to_string()))?;
    let c = engine
        .container(name)
        .map_err(|e| Exit::with(1, e.to_string()))?;
    let stdin = a.interactive && c.def.config.open_stdin;
    let sock = engine
        .start(
            &c.id,
            Some(Streams {
                stdin,
                stdout: true,
                stderr: true,
            }),
        )
        .map_err(start_error)?
        .ok_or_else(|| anyhow!("no attach stream"))?;
    let opts = RelayOptions {
        paths: engine.paths(),
        id: &c.id,
        stdin,
        tty: c.def.config.tty,
        sig_proxy: true,
        detach_keys,
    };
    match attach::relay(sock, &opts)? {
        Outcome::Exited(exit) if exit.status_code != 0 => Err(Exit::status(exit.status_code)),
        _ => Ok(()),
    }
}

pub fn stop(a: StopArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = open(g)?;
    each(&a.containers, |n| {
        engine.stop(n, a.timeout, a.signal.as_deref())
    })
}

pub fn restart(a: StopArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = open(g)?;
    each(&a.containers, |n| {
        engine.restart(n, a.timeout, a.signal.as_deref())
    })
}

pub fn kill(a: KillArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = open(g)?;
    quai_engine::units::parse_signal(&a.signal).map_err(|e| Exit::with(1, e.to_string()))?;
    each(&a.containers, |n| engine.kill(n, Some(&a.signal)))
}

pub fn rm(a: RmArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = open(g)?;
    each(&a.containers, |n| {
        engine.remove(n, a.force, a.volumes).map(|_| ())
    })
}

pub fn wait(a: WaitArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = open(g)?;
    let mut failed = false;
    for n in &a.containers {
        match engine.wait(n) {
            Ok(exit) => println!("{}", exit.status_code),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(Exit::status(1))
    } else {
        Ok(())
    }
}

/// `inspect` (any object) and `container inspect` (`only_containers`).
pub fn inspect(a: InspectArgs, g: &GlobalOptions, only_containers: bool) -> Result<()> {
    let mut engine = open(g)?;
    let typ = a
        .typ
        .as_deref()
        .unwrap_or(if only_containers { "container" } else { "" });
    if !matches!(typ, "" | "container" | "image" | "volume") {
        return Err(Exit::with(
            1,
            format!("\"{typ}\" is not a valid value for --type"),
        ));
    }
    let template = match a.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(f) => Some(Template::parse(f).map_err(|e| Exit::with(1, format!("{e:#}")))?),
    };
    let mut docs: Vec<Value> = Vec::new();
    let mut failed = false;
    for n in &a.names {
        let found = match typ {
            "container" => engine.container(n).ok(),
            "" => engine.container(n).ok(),
            _ => None,
        };
        let doc = match found {
            Some(c) => {
                let mut v = engine.inspect(&c)?;
                if a.size {
                    let rw = quai_image::store::dir_size(&engine.paths().upper(&c.id)).unwrap_or(0);
                    v["SizeRw"] = rw.into();
                    let image = quai_image::digest::Digest::parse(&c.image_id).ok();
                    let base = image
                        .and_then(|d| engine.images().get(&d).ok())
                        .map(|r| r.size)
                        .unwrap_or(0);
                    v["SizeRootFs"] = (rw + base).into();
                }
                Some(v)
            }
            None if typ == "container" => None,
            None => other_object(&mut engine, n, typ),
        };
        match doc {
            Some(v) => docs.push(v),
            None => {
                let what = if typ == "container" {
                    "container"
                } else {
                    "object"
                };
                eprintln!("Error: No such {what}: {n}");
                failed = true;
            }
        }
    }
    match template {
        None => println!("{}", go_json_pretty(&Value::Array(docs))),
        Some(t) => {
            for d in &docs {
                println!("{}", t.render(d)?);
            }
        }
    }
    if failed {
        Err(Exit::status(1))
    } else {
        Ok(())
    }
}

/// An image or volume for the generic `inspect`.
fn other_object(engine: &mut Engine, name: &str, typ: &str) -> Option<Value> {
    if typ.is_empty() || typ == "image" {
        if let Ok(r) = engine.images().resolve(name) {
            if let Ok(v) = super::image::inspect_value(engine.images(), &r) {
                return Some(v);
            }
        }
    }
    if typ.is_empty() || typ == "volume" {
        if let Ok(Some(v)) = engine.volume(name) {
            return serde_json::to_value(v.view(engine.paths())).ok();
        }
    }
    None
}
