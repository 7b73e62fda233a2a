//! `quai pull`, `quai push`, and the pull that `run`/`create` do for a
//! missing image; progress shown as docker shows it.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use quai_image::store::ImageStore;
use quai_registry::client::platform::Platform;
use quai_registry::client::progress::{self, Progress, ProgressSink};
use quai_registry::client::pull::{list_tags, pull_image, pull_images, Pulled};
use quai_registry::client::push::push_image;
use quai_registry::client::reference::{ImageRef, Reference};
use quai_registry::client::{Client, ClientOptions};

use super::format::human_size;
use super::{Exit, GlobalOptions};

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Suppress verbose output (print only the image reference)
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tags of the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG]
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
}

/// Where progress goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Console {
    Stdout,
    Stderr,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn parse_platform(platform: Option<&str>) -> Result<Platform> {
    match platform {
        None => Ok(Platform::host()),
        Some(p) => Platform::parse(p).map_err(|e| Exit::with(1, e.to_string())),
    }
}

fn parse_ref(image: &str, code: u8) -> Result<ImageRef> {
    ImageRef::parse(image).map_err(|e| Exit::with(code, e.to_string()))
}

pub fn pull(a: PullArgs, g: &GlobalOptions) -> Result<()> {
    let platform = parse_platform(a.platform.as_deref())?;
    let typed = Reference::parse(&a.image).map_err(|e| Exit::with(1, e.to_string()))?;
    if a.all_tags && (typed.tag().is_some() || typed.digest().is_some()) {
        return Err(Exit::with(1, "tag can't be used with --all-tags/-a"));
    }
    let mut store = g
        .image_store()
        .map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let client = Client::new(ClientOptions::default()).map_err(|e| Exit::with(1, e.to_string()))?;
    let rt = runtime()?;
    let images: Vec<ImageRef> = if a.all_tags {
        let repo = ImageRef::from(&typed);
        let tags = rt
            .block_on(list_tags(&client, &repo))
            .map_err(|e| Exit::with(1, e.to_string()))?;
        tags.iter()
            .map(|t| parse_ref(&format!("{}:{t}", typed.name()), 1))
            .collect::<Result<_>>()?
    } else {
        if typed.tag().is_none() && typed.digest().is_none() && !a.quiet {
            println!("Using default tag: latest");
        }
        vec![ImageRef::from(&typed.clone().with_default_tag())]
    };
    let sink = if a.quiet {
        progress::discard()
    } else {
        renderer(Console::Stdout)
    };
    // All tags as one transfer: shared blobs are fetched once.
    rt.block_on(pull_images(&client, &mut store, &images, &platform, &sink))
        .map_err(|e| Exit::with(1, e.to_string()))?;
    drop(sink);
    let shown = if a.all_tags {
        typed.name()
    } else {
        images[0].to_reference().to_string()
    };
    println!("{shown}");
    Ok(())
}

/// The pull `run`/`create` do (`--pull missing` for a missing image,
/// `--pull always`): progress on stderr, as docker's.
pub fn pull_for_run(
    store: &mut ImageStore,
    image: &str,
    platform: &Platform,
    quiet: bool,
) -> Result<Pulled> {
    let image = parse_ref(image, 125)?;
    let client =
        Client::new(ClientOptions::default()).map_err(|e| Exit::with(125, e.to_string()))?;
    let sink = if quiet {
        progress::discard()
    } else {
        renderer(Console::Stderr)
    };
    runtime()?
        .block_on(pull_image(&client, store, &image, platform, &sink))
        .map_err(|e| Exit::with(125, e.to_string()))
}

pub fn push(a: PushArgs, g: &GlobalOptions) -> Result<()> {
    let typed = Reference::parse(&a.image).map_err(|e| Exit::with(1, e.to_string()))?;
    if typed.digest().is_some() {
        return Err(Exit::with(1, "cannot push a digest reference"));
    }
    if a.all_tags && typed.tag().is_some() {
        return Err(Exit::with(1, "tag can't be used with --all-tags/-a"));
    }
    let mut store = g
        .image_store()
        .map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let images: Vec<ImageRef> = if a.all_tags {
        let mut tags: Vec<Reference> = store
            .list()
            .map_err(|e| Exit::with(1, e.to_string()))?
            .into_iter()
            .flat_map(|i| i.tags)
            .filter(|t| t.name() == typed.name())
            .collect();
        tags.sort_by(|a, b| a.tag().cmp(&b.tag()));
        if tags.is_empty() {
            return Err(Exit::with(
                1,
                format!(
                    "An image does not exist locally with the tag: {}",
                    typed.familiar_name()
                ),
            ));
        }
        tags.iter().map(ImageRef::from).collect()
    } else {
        if typed.tag().is_none() && !a.quiet {
            println!("Using default tag: latest");
        }
        vec![ImageRef::from(&typed.clone().with_default_tag())]
    };
    let client = Client::new(ClientOptions::default()).map_err(|e| Exit::with(1, e.to_string()))?;
    let rt = runtime()?;
    if !a.quiet {
        println!("The push refers to repository [{}]", typed.name());
    }
    let sink = if a.quiet {
        progress::discard()
    } else {
        renderer(Console::Stdout)
    };
    for image in &images {
        let pushed = rt
            .block_on(push_image(&client, &mut store, image, &sink))
            .map_err(|e| Exit::with(1, e.to_string()))?;
        if a.quiet {
            println!("{}", pushed.digest);
        }
    }
    Ok(())
}

/// Bars in a terminal, plain lines otherwise.
pub fn renderer(console: Console) -> ProgressSink {
    let terminal = match console {
        Console::Stdout => std::io::stdout().is_terminal(),
        Console::Stderr => std::io::stderr().is_terminal(),
    };
    if terminal {
        bars(console)
    } else {
        lines(console)
    }
}

/// docker's output without a terminal: one line per status, byte counts
/// left out.
fn lines(console: Console) -> ProgressSink {
    Arc::new(move |p: Progress| {
        if p.detail.is_some() {
            return;
        }
        let line = match &p.id {
            Some(id) => format!("{id}: {}\n", p.status),
            None => format!("{}\n", p.status),
        };
        let _ = match console {
            Console::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
            Console::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
        };
    })
}

/// One line per layer, redrawn in place, with docker's `[====>   ]` bars.
fn bars(console: Console) -> ProgressSink {
    let target = match console {
        Console::Stdout => ProgressDrawTarget::stdout(),
        Console::Stderr => ProgressDrawTarget::stderr(),
    };
    let multi = MultiProgress::with_draw_target(target);
    let style = ProgressStyle::with_template("{prefix}: {msg}").expect("static template");
    let layers: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    Arc::new(move |p: Progress| {
        let Some(id) = &p.id else {
            let _ = multi.println(&p.status);
            return;
        };
        let mut layers = layers.lock().unwrap_or_else(|e| e.into_inner());
        let bar = layers.entry(id.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
            bar.set_prefix(id.clone());
            bar
        });
        let msg = match &p.detail {
            Some(d) => format!("{} {}", p.status, progress_bar(d.current, d.total)),
            None => p.status.clone(),
        };
        bar.set_message(msg);
        if p.status == "Pull complete" || p.status == "Already exists" || p.status == "Pushed" {
            bar.tick();
        }
    })
}

/// `[=========>           ]  12.3MB/45.6MB`, docker's rendering.
fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0) as usize;
    let mut bar = "=".repeat(filled);
    if filled < WIDTH as usize {
        bar.push('>');
    }
    format!(
        "[{bar:<width$}]  {}/{}",
        human_size(current),
        human_size(total),
        width = WIDTH as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_look_like_dockers() {
        assert_eq!(
            progress_bar(50, 100),
            format!("[{}>{}]  50B/100B", "=".repeat(25), " ".repeat(24))
        );
        assert!(progress_bar(100, 100).starts_with(&format!("[{}]", "=".repeat(50))));
        assert!(progress_bar(0, 0).starts_with("[>"));
    }
}
