//! `quai login`, `quai logout` and `quai manifest inspect`: the registry
//! commands that need no image store.

use std::io::{IsTerminal, Read};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use quai_registry::client::credentials::{Credentials, DockerConfig};
use quai_registry::client::reference::{ImageRef, DOCKER_HUB};
use quai_registry::client::{Client, ClientOptions};

#[derive(Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    /// Password (prefer --password-stdin: a command line is visible to other users)
    #[arg(short, long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long, conflicts_with = "password")]
    password_stdin: bool,
    /// Registry to log in to (default: Docker Hub)
    server: Option<String>,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry to log out from (default: Docker Hub)
    server: Option<String>,
}

#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Display an image manifest or manifest list, as the registry serves it
    Inspect {
        /// Image reference, e.g. busybox:latest or localhost:5000/app@sha256:…
        reference: String,
    },
}

/// `https://host:port/v1/` → `host:port`; Docker Hub's aliases → `docker.io`.
fn normalize_server(server: Option<&str>) -> String {
    let Some(s) = server else {
        return DOCKER_HUB.to_string();
    };
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn login(args: LoginArgs) -> Result<()> {
    let server = normalize_server(args.server.as_deref());
    let Some(username) = args.username.filter(|u| !u.is_empty()) else {
        bail!("login to {server} needs a username: quai login -u USER [--password-stdin] {server}");
    };
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from stdin")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else if std::io::stdin().is_terminal() {
        bail!("interactive password prompts are not supported; use --password-stdin");
    } else {
        bail!("Cannot perform an interactive login from a non TTY device");
    };
    if password.is_empty() {
        bail!("password is empty");
    }
    let mut client = Client::new(ClientOptions::default())?;
    client.set_credentials(
        &server,
        Credentials::Basic {
            username: username.clone(),
            password: password.clone(),
        },
    );
    runtime()?
        .block_on(async { client.endpoint(&server).await?.verify_login().await })
        .with_context(|| format!("login to {server} as {username} failed"))?;
    let mut config = DockerConfig::load_default()?;
    config.store(&server, &username, &password)?;
    if config.helper_for(&server).is_none() {
        eprintln!(
            "WARNING! Your password will be stored unencrypted in {}.",
            config.path().display()
        );
    }
    println!("Login Succeeded");
    Ok(())
}

pub fn logout(args: LogoutArgs) -> Result<()> {
    let server = normalize_server(args.server.as_deref());
    let mut config = DockerConfig::load_default()?;
    if config.erase(&server)? {
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(())
}

pub fn manifest(command: ManifestCommand) -> Result<()> {
    match command {
        ManifestCommand::Inspect { reference } => {
            let image = ImageRef::parse(&reference)?;
            let client = Client::new(ClientOptions::default())?;
            let fetched = runtime()?.block_on(async {
                let endpoint = client.endpoint(&image.registry).await?;
                endpoint
                    .get_manifest(&image.repository, &image.reference(), &image.to_string())
                    .await
            })?;
            let value: serde_json::Value =
                serde_json::from_slice(&fetched.bytes).context("manifest is not JSON")?;
            println!("{}", pretty_tabs(&value));
            Ok(())
        }
    }
}

/// JSON indented with tabs, as `docker manifest inspect` prints it.
fn pretty_tabs(value: &serde_json::Value) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser).expect("JSON values serialize");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_normalize_like_docker() {
        assert_eq!(normalize_server(None), "docker.io");
        assert_eq!(
            normalize_server(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(
            normalize_server(Some("http://127.0.0.1:5000")),
            "127.0.0.1:5000"
        );
        assert_eq!(
            normalize_server(Some("reg.example.com/")),
            "reg.example.com"
        );
    }
}
