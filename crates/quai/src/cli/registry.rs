//! `quai registry serve` and `quai registry gc`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use quai_registry::server::gc::{self, GcOptions};
use quai_registry::server::{Server, ServerConfig};

/// Where `quai registry` keeps its data unless told otherwise.
const DEFAULT_ROOT: &str = "/var/lib/quai/registry";

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Run an OCI distribution registry (docker push/pull talk to it)
    Serve(ServeArgs),
    /// Delete blobs that no manifest references (run with the server stopped or --read-only)
    Gc(GcArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one)
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Directory holding the registry's blobs, manifests and uploads
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    /// Require basic auth with the users of this htpasswd file (bcrypt entries: htpasswd -B)
    #[arg(long, value_name = "FILE")]
    htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert, PEM
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse pushes and deletes; serve pulls only
    #[arg(long)]
    read_only: bool,
    /// Remove upload sessions that received no data for this long (e.g. 30m, 24h)
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_duration)]
    upload_expiry: Duration,
}

#[derive(Args)]
pub struct GcArgs {
    /// Directory the registry serves from
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    /// Only print what would be deleted
    #[arg(long, short = 'd')]
    dry_run: bool,
    /// Also delete manifests that no tag reaches
    #[arg(long, short = 'm')]
    delete_untagged: bool,
    /// Keep blobs written more recently than this (protects pushes in flight)
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration)]
    grace: Duration,
}

/// `90`, `90s`, `30m`, `24h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected a number with s, m or h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("invalid duration {s:?}: unit must be s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

pub fn run(command: RegistryCommand) -> Result<()> {
    match command {
        RegistryCommand::Serve(args) => serve(args),
        RegistryCommand::Gc(args) => collect_garbage(args),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    let https = tls.is_some();
    let config = ServerConfig {
        listen: args.listen,
        root: args.root,
        htpasswd: args.htpasswd,
        tls,
        read_only: args.read_only,
        upload_expiry: args.upload_expiry,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(&config).await?;
        let addr = server
            .local_addr()
            .context("reading the listening address")?;
        let scheme = if https { "https" } else { "http" };
        // Scripts and tests read this line to learn the port.
        println!("quai registry listening on {scheme}://{addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tokio::select! {
            r = server.run() => r.context("serving")?,
            _ = shutdown_signal() => {}
        }
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

fn collect_garbage(args: GcArgs) -> Result<()> {
    if !args.root.join("blobs").is_dir() {
        bail!(
            "{} is not a registry root (no blobs directory)",
            args.root.display()
        );
    }
    let report = gc::collect(
        &args.root,
        &GcOptions {
            dry_run: args.dry_run,
            delete_untagged: args.delete_untagged,
            grace: args.grace,
        },
    )?;
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for (repo, digest) in &report.manifests_removed {
        println!("{verb} manifest {repo}@{digest}");
    }
    for digest in &report.blobs_removed {
        println!("{verb} blob {digest}");
    }
    println!(
        "{} {} blob(s), {} bytes; {} blob(s) kept",
        verb,
        report.blobs_removed.len(),
        report.bytes_freed,
        report.blobs_kept
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("h").is_err());
    }
}
