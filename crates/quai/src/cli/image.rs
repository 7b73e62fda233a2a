//! Image commands: `images`, `load`, `save`, `import`, `tag`, `rmi`,
//! `history`, `image inspect|prune|…`, `system df`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use quai_image::archive::{self, LoadOptions, LoadProgress};
use quai_image::import::{import, ImportOptions};
use quai_image::reference::{familiar_repo_digest, Reference};
use quai_image::spec::Platform;
use quai_image::store::{ImageRecord, ImageStore, Removed};
use quai_image::time::{now, parse_rfc3339};

use super::format::{go_json_pretty, go_time, human_duration, human_size, Format, Template};
use super::GlobalOptions;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Show the history of an image
    History(HistoryArgs),
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show quai disk usage
    Df(DfArgs),
    /// Get real time events from quai
    Events(super::system::EventsArgs),
    /// Display system-wide information
    Info(super::system::InfoArgs),
    /// After a reboot: record dead containers as exited, restart those whose policy says so
    Restore(super::system::RestoreArgs),
    /// Remove every container, network, image and volume, and quai's state directories
    Reset(super::system::ResetArgs),
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided (dangling, reference, label, before, since)
    #[arg(short, long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Only list images of this repository[:tag]
    #[arg(value_name = "REPOSITORY[:TAG]")]
    repository: Option<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file (or an OCI layout directory), instead of STDIN
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
    /// Load only the image of this platform from a multi-platform archive (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "CHANGE")]
    changes: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// File to import, or - for STDIN
    #[arg(value_name = "file|-")]
    source: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    target: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template ('json', or a Go-style template)
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long)]
    format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    #[arg(value_name = "IMAGE")]
    image: String,
}

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short, long)]
    verbose: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long)]
    format: Option<String>,
}

pub fn run_image(cmd: ImageCommand, g: &GlobalOptions) -> Result<()> {
    match cmd {
        ImageCommand::Ls(a) => images(a, g),
        ImageCommand::Rm(a) => rmi(a, g),
        ImageCommand::Inspect(a) => inspect(a, g),
        ImageCommand::Prune(a) => prune(a, g),
        ImageCommand::Load(a) => load(a, g),
        ImageCommand::Save(a) => save(a, g),
        ImageCommand::Import(a) => import_cmd(a, g),
        ImageCommand::Tag(a) => tag(a, g),
        ImageCommand::History(a) => history(a, g),
    }
}

pub fn run_system(cmd: SystemCommand, g: &GlobalOptions) -> Result<()> {
    match cmd {
        SystemCommand::Df(a) => df(a, g),
        SystemCommand::Events(a) => super::system::events(a, g),
        SystemCommand::Info(a) => super::system::info(a, g),
        SystemCommand::Restore(a) => super::system::restore(a, g),
        SystemCommand::Reset(a) => super::system::reset(a, g),
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn emit(s: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("write to stdout"),
    }
}

fn created_secs(r: &ImageRecord) -> Option<i64> {
    r.created.as_deref().and_then(parse_rfc3339).map(|(s, _)| s)
}

fn since(secs: Option<i64>) -> String {
    match secs {
        Some(s) => format!("{} ago", human_duration(now().0 - s)),
        None => "N/A".into(),
    }
}

fn short_id(id: &quai_image::digest::Digest, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.short().to_string()
    }
}

/// Docker's filters: `key=value`, validated against the keys a command knows.
fn parse_filters(filters: &[String], known: &[&str]) -> Result<Vec<(String, String)>> {
    filters
        .iter()
        .map(|f| {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
            let k = k.trim().to_lowercase();
            if !known.contains(&k.as_str()) {
                bail!("invalid filter '{k}'");
            }
            Ok((k, v.to_string()))
        })
        .collect()
}

/// path.Match-style globbing (`*`, `?`, `[…]`); `*` does not cross `/`.
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != '/')
                .any(|i| m(&p[1..], &s[i..])),
            Some('?') => !s.is_empty() && s[0] != '/' && m(&p[1..], &s[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|&c| c == ']') else {
                    return false;
                };
                let Some(&c) = s.first() else { return false };
                let class = &p[1..end];
                let (neg, class) = match class.first() {
                    Some('^') | Some('!') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != neg && m(&p[end + 1..], &s[1..])
            }
            Some(&c) => s.first() == Some(&c) && m(&p[1..], &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    m(&p, &s)
}

fn images(a: ImagesArgs, g: &GlobalOptions) -> Result<()> {
    let _ = a.all; // quai keeps no intermediate images: -a lists the same set
    let mut filters = parse_filters(
        &a.filters,
        &["dangling", "reference", "label", "before", "since"],
    )?;
    if let Some(r) = &a.repository {
        filters.push(("reference".into(), r.clone()));
    }
    let format = Format::parse(
        a.format.as_deref(),
        if a.digests {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
        } else {
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
        },
    )?;
    let store = g.image_store()?;
    let all = store.list()?;
    let mut bounds: Vec<(bool, i64)> = Vec::new(); // (is_before, created)
    for (k, v) in &filters {
        if k == "before" || k == "since" {
            let r = store.resolve(v)?;
            bounds.push((k == "before", created_secs(&r).unwrap_or(0)));
        }
        if k == "dangling" && !matches!(v.to_lowercase().as_str(), "true" | "false" | "1" | "0") {
            bail!("Invalid filter 'dangling={v}'");
        }
    }
    let mut rows = Vec::new();
    let mut seen_ids = BTreeSet::new();
    for img in &all {
        let created = created_secs(img);
        let labels = store
            .config(&img.id)
            .map(|c| c.labels())
            .unwrap_or_default();
        let mut keep = true;
        for (k, v) in &filters {
            keep &= match k.as_str() {
                "dangling" => {
                    matches!(v.to_lowercase().as_str(), "true" | "1") == img.tags.is_empty()
                }
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => labels.get(lk).is_some_and(|x| x == lv),
                    None => labels.contains_key(v.as_str()),
                },
                _ => true,
            };
        }
        for (before, t) in &bounds {
            let c = created.unwrap_or(0);
            keep &= if *before { c < *t } else { c > *t };
        }
        if !keep {
            continue;
        }
        // One row per tag; an untagged image shows as <none>.
        let mut entries: Vec<(String, String, String)> = Vec::new();
        for t in &img.tags {
            let digest = img
                .repo_digests
                .iter()
                .find(|(repo, _)| *repo == t.name())
                .map(|(_, d)| d.to_string())
                .unwrap_or_else(|| "<none>".into());
            entries.push((
                t.familiar_name(),
                t.tag().unwrap_or("<none>").to_string(),
                digest,
            ));
        }
        if entries.is_empty() {
            for (repo, d) in &img.repo_digests {
                let name = Reference::parse(repo)
                    .map(|r| r.familiar_name())
                    .unwrap_or(repo.clone());
                entries.push((name, "<none>".into(), d.to_string()));
            }
        }
        if entries.is_empty() {
            entries.push(("<none>".into(), "<none>".into(), "<none>".into()));
        }
        let reference_patterns: Vec<&String> = filters
            .iter()
            .filter(|(k, _)| k == "reference")
            .map(|(_, v)| v)
            .collect();
        for (repo, tag, digest) in entries {
            if !reference_patterns.is_empty() {
                let full = format!("{repo}:{tag}");
                let matched = reference_patterns.iter().any(|p| {
                    if p.contains(':') || p.contains('@') {
                        glob(p, &full)
                    } else {
                        glob(p, &repo)
                    }
                });
                if !matched || repo == "<none>" {
                    continue;
                }
            }
            if a.quiet {
                if seen_ids.insert(img.id.clone()) {
                    rows.push(json!({"ID": short_id(&img.id, a.no_trunc)}));
                }
                continue;
            }
            rows.push(json!({
                "Containers": "N/A",
                "CreatedAt": created.map(go_time).unwrap_or_else(|| "N/A".into()),
                "CreatedSince": since(created),
                "Digest": digest,
                "ID": short_id(&img.id, a.no_trunc),
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": human_size(img.size),
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": human_size(img.size),
            }));
        }
    }
    if a.quiet {
        let out: String = rows
            .iter()
            .map(|r| format!("{}\n", r["ID"].as_str().unwrap_or_default()))
            .collect();
        return emit(&out);
    }
    emit(&format.render(
        &rows,
        &[
            ("Repository", "REPOSITORY"),
            ("Tag", "TAG"),
            ("Digest", "DIGEST"),
            ("ID", "IMAGE ID"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("Size", "SIZE"),
            ("Containers", "CONTAINERS"),
            ("SharedSize", "SHARED SIZE"),
            ("UniqueSize", "UNIQUE SIZE"),
            ("VirtualSize", "VIRTUAL SIZE"),
        ],
    )?)
}

fn platform_arg(p: &Option<String>) -> Result<Option<Platform>> {
    p.as_deref()
        .map(Platform::parse)
        .transpose()
        .map_err(Into::into)
}

fn load(a: LoadArgs, g: &GlobalOptions) -> Result<()> {
    let opts = LoadOptions {
        platform: platform_arg(&a.platform)?,
    };
    let mut store = g.image_store()?;
    let show_progress = !a.quiet && io::stderr().is_terminal();
    let bar = if show_progress {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} {bytes} ({binary_bytes_per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.set_message("Loading");
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    let mut progress = |p: LoadProgress| {
        if let Some(b) = &bar {
            match p {
                LoadProgress::Read(n) => b.set_position(n),
                LoadProgress::Unpacking(n) => b.set_message(format!("Unpacking {n} layer(s)")),
            }
        }
    };
    let loaded = match &a.input {
        Some(p) if p.is_dir() => archive::load_dir(&mut store, p, &opts, &mut progress),
        Some(p) => {
            let f = fs::File::open(p).with_context(|| format!("open {}", p.display()))?;
            archive::load(
                &mut store,
                io::BufReader::with_capacity(1 << 20, f),
                &opts,
                &mut progress,
            )
        }
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            archive::load(&mut store, stdin.lock(), &opts, &mut progress)
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let loaded = loaded?;
    let mut out = String::new();
    for img in loaded {
        if img.tags.is_empty() {
            out.push_str(&format!("Loaded image ID: {}\n", img.id));
        }
        for t in img.tags {
            out.push_str(&format!("Loaded image: {}\n", t.familiar()));
        }
    }
    emit(&out)
}

fn save(a: SaveArgs, g: &GlobalOptions) -> Result<()> {
    let store = g.image_store()?;
    // Resolve every name before writing anything.
    for name in &a.images {
        store.resolve_id(name)?;
    }
    match &a.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| {
                format!(
                    "failed to save image: create a temporary file in {}",
                    dir.display()
                )
            })?;
            let mut sink = archive::TarSink::new(io::BufWriter::with_capacity(1 << 20, tmp));
            archive::save(&store, &a.images, &mut sink)?;
            let tmp = sink
                .finish()?
                .into_inner()
                .map_err(|e| anyhow!("failed to save image: {}", e.error()))?;
            tmp.as_file()
                .sync_all()
                .context("failed to save image: fsync")?;
            tmp.persist(path).map_err(|e| {
                anyhow!(
                    "failed to save image: write {}: {}",
                    path.display(),
                    e.error
                )
            })?;
        }
        None => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut sink =
                archive::TarSink::new(io::BufWriter::with_capacity(1 << 20, stdout.lock()));
            archive::save(&store, &a.images, &mut sink)?;
            sink.finish()?.flush().context("write to stdout")?;
        }
    }
    Ok(())
}

fn import_cmd(a: ImportArgs, g: &GlobalOptions) -> Result<()> {
    let reference = a
        .reference
        .as_deref()
        .map(Reference::parse_tagged)
        .transpose()?;
    if reference.as_ref().is_some_and(|r| r.digest().is_some()) {
        bail!("invalid reference format: import takes REPOSITORY[:TAG], not a digest");
    }
    let opts = ImportOptions {
        reference,
        changes: a.changes,
        message: a.message,
        platform: platform_arg(&a.platform)?,
    };
    // Check the changes before reading a possibly large input.
    quai_image::changes::apply_changes(&mut serde_json::Map::new(), &opts.changes)?;
    let mut store = g.image_store()?;
    let input: Box<dyn Read> = if a.source == "-" {
        Box::new(io::stdin().lock())
    } else if a.source.contains("://") {
        bail!("importing from a URL is not supported: quai reaches no network here; download the file and import it");
    } else {
        let f = fs::File::open(&a.source).with_context(|| format!("open {}", a.source))?;
        Box::new(io::BufReader::with_capacity(1 << 20, f))
    };
    let id = import(&mut store, input, &opts)?;
    emit(&format!("{id}\n"))
}

fn tag(a: TagArgs, g: &GlobalOptions) -> Result<()> {
    let mut store = g.image_store()?;
    store.tag(&a.source, &a.target)?;
    Ok(())
}

fn print_removed(removed: &[Removed], out: &mut String, lower: bool) {
    for r in removed {
        let (word, what) = match r {
            Removed::Untagged(t) => ("Untagged", t.clone()),
            Removed::Deleted(d) => ("Deleted", d.to_string()),
        };
        let word = if lower {
            word.to_lowercase()
        } else {
            word.to_string()
        };
        out.push_str(&format!("{word}: {what}\n"));
    }
}

fn rmi(a: RmiArgs, g: &GlobalOptions) -> Result<()> {
    let mut store = g.image_store()?;
    let mut failures = Vec::new();
    for name in &a.images {
        match store.remove(name, a.force) {
            Ok(removed) => {
                let mut out = String::new();
                print_removed(&removed, &mut out, false);
                emit(&out)?;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    match failures.len() {
        0 => Ok(()),
        _ => {
            let last = failures.pop().unwrap_or_default();
            for f in failures {
                eprintln!("Error: {f}");
            }
            Err(anyhow!(last))
        }
    }
}

/// Docker's `ImageInspect` for one image.
pub(crate) fn inspect_value(store: &ImageStore, r: &ImageRecord) -> Result<Value> {
    let config = store.config(&r.id)?;
    let layer_dirs: Vec<String> = r
        .layers
        .iter()
        .rev()
        .map(|l| store.layer_dir(&l.chain_id).display().to_string())
        .collect();
    let mut driver_data = serde_json::Map::new();
    if let Some((top, lower)) = layer_dirs.split_first() {
        if !lower.is_empty() {
            driver_data.insert("LowerDir".into(), json!(lower.join(":")));
        }
        driver_data.insert("UpperDir".into(), json!(top));
    }
    let mut v = json!({
        "Id": r.id.to_string(),
        "RepoTags": r.tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
        "RepoDigests": r
            .repo_digests
            .iter()
            .map(|(repo, d)| familiar_repo_digest(repo, d))
            .collect::<Vec<_>>(),
        "Parent": r.parent.clone().unwrap_or_default(),
        "Comment": config.comment.clone().unwrap_or_default(),
        "Created": config.created.clone().unwrap_or_default(),
        "DockerVersion": config.docker_version.clone().unwrap_or_default(),
        "Author": config.author.clone().unwrap_or_default(),
        "Config": config.config.clone().unwrap_or(Value::Null),
        "Architecture": config.architecture,
        "Os": config.os,
        "Size": r.size,
        "GraphDriver": {"Data": driver_data, "Name": "overlay"},
        "RootFS": {
            "Type": "layers",
            "Layers": config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    });
    if let (Some(variant), Some(obj)) = (config.variant, v.as_object_mut()) {
        obj.insert("Variant".into(), json!(variant));
    }
    if let Some(d) = &r.manifest_digest {
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "Descriptor".into(),
                json!({
                    "mediaType": quai_image::spec::media::OCI_MANIFEST,
                    "digest": d.to_string(),
                    "size": store.content().size(d).unwrap_or(0),
                }),
            );
        }
    }
    Ok(v)
}

fn inspect(a: InspectArgs, g: &GlobalOptions) -> Result<()> {
    let store = g.image_store()?;
    let template = match a.format.as_deref() {
        None | Some("") | Some("json") => None,
        Some(f) => Some(Template::parse(
            &f.replace("\\t", "\t").replace("\\n", "\n"),
        )?),
    };
    let mut values = Vec::new();
    let mut missing = Vec::new();
    for name in &a.images {
        match store.resolve(name) {
            Ok(r) => values.push(inspect_value(&store, &r)?),
            Err(e) => missing.push(e.to_string()),
        }
    }
    let mut out = String::new();
    match template {
        None => {
            out = go_json_pretty(&Value::Array(values));
            out.push('\n');
        }
        Some(t) => {
            for v in &values {
                out.push_str(&t.render(v)?);
                out.push('\n');
            }
        }
    }
    emit(&out)?;
    match missing.pop() {
        None => Ok(()),
        Some(last) => {
            for m in missing {
                eprintln!("Error: {m}");
            }
            Err(anyhow!(last))
        }
    }
}

fn confirm(prompt: &str) -> Result<bool> {
    eprint!("{prompt}\nAre you sure you want to continue? [y/N] ");
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .context("read confirmation")?;
    Ok(matches!(line.trim().to_lowercase().as_str(), "y" | "yes"))
}

fn prune(a: PruneArgs, g: &GlobalOptions) -> Result<()> {
    if !a.force {
        let prompt = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        if !confirm(prompt)? {
            return Ok(());
        }
    }
    let mut store = g.image_store()?;
    let report = store.prune(a.all)?;
    let mut out = String::new();
    if !report.removed.is_empty() {
        out.push_str("Deleted Images:\n");
        print_removed(&report.removed, &mut out, true);
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(report.reclaimed)
    ));
    emit(&out)
}

fn history(a: HistoryArgs, g: &GlobalOptions) -> Result<()> {
    let store = g.image_store()?;
    let r = store.resolve(&a.image)?;
    let config = store.config(&r.id)?;
    let mut layer_sizes = r.layers.iter().map(|l| l.size);
    let mut entries: Vec<(Option<i64>, String, u64, String)> = Vec::new();
    if config.history.is_empty() {
        for l in &r.layers {
            entries.push((None, String::new(), l.size, String::new()));
        }
    }
    for h in &config.history {
        let size = if h.empty_layer {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        let created = h.created.as_deref().and_then(parse_rfc3339).map(|(s, _)| s);
        entries.push((
            created,
            h.created_by.clone().unwrap_or_default().replace('\t', " "),
            size,
            h.comment.clone().unwrap_or_default(),
        ));
    }
    entries.reverse();
    let format = Format::parse(
        a.format.as_deref(),
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    )?;
    let mut ids = String::new();
    let mut rows = Vec::new();
    for (i, (created, by, size, comment)) in entries.into_iter().enumerate() {
        let id = if i == 0 {
            short_id(&r.id, a.no_trunc)
        } else {
            "<missing>".to_string()
        };
        if a.quiet {
            ids.push_str(&id);
            ids.push('\n');
            continue;
        }
        let by = if a.no_trunc || by.chars().count() <= 45 {
            by
        } else {
            format!("{}…", by.chars().take(44).collect::<String>())
        };
        let created_at = created
            .map(|s| quai_image::time::format_rfc3339(s, 0))
            .unwrap_or_else(|| "N/A".into());
        let (created_since, size_s) = if a.human {
            (since(created), human_size(size))
        } else {
            (created_at.clone(), size.to_string())
        };
        rows.push(json!({
            "ID": id,
            "CreatedSince": created_since,
            "CreatedAt": created_at,
            "CreatedBy": by,
            "Size": size_s,
            "Comment": comment,
        }));
    }
    if a.quiet {
        return emit(&ids);
    }
    emit(&format.render(
        &rows,
        &[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ],
    )?)
}

fn df(a: DfArgs, g: &GlobalOptions) -> Result<()> {
    let store = g.image_store()?;
    let images = store.list()?;
    let layer_sizes = store.usage()?;
    // Shared layers count once in the total; an image's unique size is what
    // only it uses.
    let mut users: std::collections::HashMap<&quai_image::digest::Digest, usize> =
        Default::default();
    for img in &images {
        let distinct: BTreeSet<_> = img.layers.iter().map(|l| &l.chain_id).collect();
        for c in distinct {
            *users.entry(c).or_default() += 1;
        }
    }
    let total: u64 = users
        .keys()
        .map(|c| layer_sizes.get(*c).copied().unwrap_or(0))
        .sum();
    // No container uses an image yet: every image is reclaimable.
    let active = 0;
    let reclaimable = total;
    let pct = |part: u64, whole: u64| (part * 100).checked_div(whole).unwrap_or(0);
    let rows = vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": active.to_string(), "Size": human_size(total), "Reclaimable": format!("{} ({}%)", human_size(reclaimable), pct(reclaimable, total))}),
        json!({"Type": "Containers", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
        json!({"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
        json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
    ];
    if !a.verbose {
        let format = Format::parse(
            a.format.as_deref(),
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        )?;
        return emit(&format.render(
            &rows,
            &[
                ("Type", "TYPE"),
                ("TotalCount", "TOTAL"),
                ("Active", "ACTIVE"),
                ("Size", "SIZE"),
                ("Reclaimable", "RECLAIMABLE"),
            ],
        )?);
    }
    if a.format.is_some() {
        bail!("--format cannot be combined with --verbose");
    }
    let mut image_rows = Vec::new();
    for img in &images {
        let distinct: BTreeSet<_> = img.layers.iter().map(|l| &l.chain_id).collect();
        let (mut shared, mut unique) = (0u64, 0u64);
        for c in distinct {
            let s = layer_sizes.get(c).copied().unwrap_or(0);
            if users.get(c).copied().unwrap_or(0) > 1 {
                shared += s;
            } else {
                unique += s;
            }
        }
        let (repo, tag) = match img.tags.first() {
            Some(t) => (t.familiar_name(), t.tag().unwrap_or("<none>").to_string()),
            None => ("<none>".into(), "<none>".into()),
        };
        image_rows.push(json!({
            "Repository": repo, "Tag": tag, "ID": img.id.short(), "CreatedSince": since(created_secs(img)),
            "Size": human_size(img.size), "SharedSize": human_size(shared), "UniqueSize": human_size(unique), "Containers": "0",
        }));
    }
    let images_table = Format::parse(
        Some("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}"),
        "",
    )?
    .render(
        &image_rows,
        &[("Repository", "REPOSITORY"), ("Tag", "TAG"), ("ID", "IMAGE ID"), ("CreatedSince", "CREATED"), ("Size", "SIZE"), ("SharedSize", "SHARED SIZE"), ("UniqueSize", "UNIQUE SIZE"), ("Containers", "CONTAINERS")],
    )?;
    let mut out = format!("Images space usage:\n\n{images_table}\n");
    out.push_str("Containers space usage:\n\nCONTAINER ID   IMAGE     COMMAND   LOCAL VOLUMES   SIZE      CREATED   STATUS    NAMES\n\n");
    out.push_str("Local Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\n\n");
    out.push_str("Build cache usage: 0B\n\nCACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n");
    emit(&out)
}
