//! `cp`, `export`, `diff`, `commit`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use quai_engine::archive::{self, ContainerSink, HostSink, Rebase, TarSink};
use quai_engine::fsops::CommitOptions;
use quai_engine::Engine;

use super::{Exit, GlobalOptions};

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short, long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, or a host path, or - (a tar stream on stdin)
    #[arg(value_name = "SRC")]
    pub src: String,
    /// CONTAINER:DEST_PATH, or a host path, or - (a tar stream to stdout)
    #[arg(value_name = "DEST")]
    pub dest: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "CHANGE")]
    pub changes: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value = "true", action = clap::ArgAction::Set, value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `CONTAINER:PATH` → (container, path); a host path → None. docker's
/// rule: a colon before any slash names a container.
fn split(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    if c.is_empty() || c.contains('/') {
        return None;
    }
    Some((c, p))
}

fn fail(e: impl std::fmt::Display) -> anyhow::Error {
    Exit::with(1, e.to_string())
}

fn base_name(p: &str) -> PathBuf {
    let trimmed = p.trim_end_matches('/');
    Path::new(trimmed)
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The path `p` ends with `/.`: copy a directory's contents.
fn contents_only(p: &str) -> bool {
    p.ends_with("/.") || p == "."
}

pub fn cp(a: CpArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    match (split(&a.src), split(&a.dest)) {
        (Some(_), Some(_)) => Err(fail("copying between containers is not supported")),
        (None, None) => Err(fail("must specify at least one container source")),
        (Some((c, p)), None) => copy_out(&mut engine, c, p, &a.dest, a.follow_link),
        (None, Some((c, p))) => copy_in(&mut engine, &a.src, c, p, a.follow_link, a.archive),
    }
}

fn copy_out(
    engine: &mut Engine,
    container: &str,
    src: &str,
    dest: &str,
    follow: bool,
) -> Result<()> {
    let c = engine.container(container).map_err(fail)?;
    let view = engine.view(&c, true).map_err(fail)?;
    let src = if src.is_empty() { "/" } else { src };
    let stat = engine
        .stat_path(&view, src, follow)
        .map_err(fail)?
        .ok_or_else(|| {
            fail(format!(
                "Could not find the file {src} in container {container}"
            ))
        })?;
    if dest == "-" {
        let stdout = io::stdout();
        let mut sink = TarSink::new(stdout.lock());
        engine
            .read_path(&view, src, follow, &base_name(src), &mut sink)
            .map_err(fail)?;
        sink.finish().map_err(fail)?.flush()?;
        return Ok(());
    }
    let dest_path = Path::new(dest);
    let dest_meta = fs::metadata(dest_path).ok();
    let (base, name): (PathBuf, PathBuf) = match &dest_meta {
        Some(m) if m.is_dir() => {
            if stat.is_dir && contents_only(src) {
                (dest_path.to_path_buf(), PathBuf::new())
            } else {
                (dest_path.to_path_buf(), base_name(src))
            }
        }
        Some(_) if stat.is_dir => {
            return Err(fail(format!(
                "cannot copy directory to existing file {dest}"
            )))
        }
        Some(_) => (
            dest_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            base_name(dest),
        ),
        None => {
            if dest.ends_with('/') && !stat.is_dir {
                return Err(fail(format!("destination directory {dest} does not exist")));
            }
            let parent = dest_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(fail(format!("no such directory: {}", parent.display())));
            }
            (parent.to_path_buf(), base_name(dest))
        }
    };
    let mut host = HostSink { base: base.clone() };
    if name.as_os_str().is_empty() {
        engine
            .read_path(&view, src, follow, Path::new(""), &mut host)
            .map_err(fail)?;
    } else {
        engine
            .read_path(&view, src, follow, &name, &mut host)
            .map_err(fail)?;
    }
    Ok(())
}

fn copy_in(
    engine: &mut Engine,
    src: &str,
    container: &str,
    dest: &str,
    follow: bool,
    keep_owner: bool,
) -> Result<()> {
    let c = engine.container(container).map_err(fail)?;
    let view = engine.view(&c, true).map_err(fail)?;
    let dest = if dest.is_empty() { "/" } else { dest };
    let dest_stat = engine.stat_path(&view, dest, true).map_err(fail)?;
    let root = std::os::fd::AsFd::as_fd(&view.root);
    if src == "-" {
        match &dest_stat {
            Some(s) if s.is_dir => {}
            _ => {
                return Err(fail(format!(
                    "destination \"{container}:{dest}\" must be a directory"
                )))
            }
        }
        let mut sink = ContainerSink {
            root,
            base: PathBuf::from(dest),
            keep_owner: true,
        };
        return archive::read_tar(io::stdin().lock(), &mut sink).map_err(fail);
    }
    let src_path = Path::new(src);
    let src_meta = if follow {
        fs::metadata(src_path)
    } else {
        fs::symlink_metadata(src_path)
    }
    .map_err(|e| fail(format!("could not stat {src}: {e}")))?;
    let (base, name): (PathBuf, PathBuf) = match &dest_stat {
        Some(s) if s.is_dir => {
            if src_meta.is_dir() && contents_only(src) {
                (PathBuf::from(dest), PathBuf::new())
            } else {
                (PathBuf::from(dest), base_name(src))
            }
        }
        Some(_) if src_meta.is_dir() => {
            return Err(fail(format!(
                "cannot copy directory to existing file {container}:{dest}"
            )))
        }
        Some(_) => (
            Path::new(dest)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| "/".into()),
            base_name(dest),
        ),
        None => {
            if dest.ends_with('/') && !src_meta.is_dir() {
                return Err(fail(format!(
                    "destination directory {container}:{dest} does not exist"
                )));
            }
            let parent = Path::new(dest).parent().unwrap_or(Path::new("/"));
            match engine
                .stat_path(&view, &parent.to_string_lossy(), true)
                .map_err(fail)?
            {
                Some(s) if s.is_dir => {}
                _ => {
                    return Err(fail(format!(
                        "no such directory: {container}:{}",
                        parent.display()
                    )))
                }
            }
            (parent.to_path_buf(), base_name(dest))
        }
    };
    let mut sink = ContainerSink {
        root,
        base,
        keep_owner,
    };
    if name.as_os_str().is_empty() {
        for child in fs::read_dir(src_path).map_err(fail)? {
            let child = child.map_err(fail)?;
            archive::walk_host(
                &child.path(),
                Path::new(&child.file_name()),
                false,
                &mut sink,
            )
            .map_err(fail)?;
        }
        Ok(())
    } else {
        let top = base_name(src);
        let mut rebased = Rebase {
            inner: &mut sink,
            from: top.clone(),
            to: name,
        };
        archive::walk_host(src_path, &top, follow, &mut rebased).map_err(fail)
    }
}

pub fn export(a: ExportArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    match &a.output {
        Some(path) => {
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            let mut f = fs::File::create(&tmp)
                .map_err(|e| fail(format!("create {}: {e}", tmp.display())))?;
            let r = engine.export(&a.container, &mut f);
            if let Err(e) = r {
                let _ = fs::remove_file(&tmp);
                return Err(fail(e));
            }
            f.sync_all()?;
            fs::rename(&tmp, path).map_err(|e| fail(format!("write {}: {e}", path.display())))?;
            Ok(())
        }
        None => {
            if io::IsTerminal::is_terminal(&io::stdout()) {
                return Err(fail(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                ));
            }
            let stdout = io::stdout();
            let mut out = stdout.lock();
            engine.export(&a.container, &mut out).map_err(fail)?;
            out.flush()?;
            Ok(())
        }
    }
}

pub fn diff(a: DiffArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    for (kind, path) in engine.diff(&a.container).map_err(fail)? {
        println!("{kind} {path}");
    }
    Ok(())
}

pub fn commit(a: CommitArgs, g: &GlobalOptions) -> Result<()> {
    let mut engine = g.engine().map_err(|e| Exit::with(1, format!("{e:#}")))?;
    let id = engine
        .commit(
            &a.container,
            &CommitOptions {
                reference: a.reference.clone(),
                author: a.author.clone(),
                message: a.message.clone(),
                changes: a.changes.clone(),
                pause: a.pause,
            },
        )
        .map_err(fail)?;
    println!("{id}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_told_from_host_paths() {
        assert_eq!(split("web:/etc/hosts"), Some(("web", "/etc/hosts")));
        assert_eq!(split("/tmp/a:b"), None);
        assert_eq!(split("./a:b"), None);
        assert_eq!(split("dir/a:b"), None);
        assert_eq!(split("plain"), None);
        assert!(contents_only("/etc/."));
        assert_eq!(base_name("/etc/"), PathBuf::from("etc"));
    }
}
