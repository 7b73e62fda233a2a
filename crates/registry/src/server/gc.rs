//! `quai registry gc`: mark every blob a stored manifest needs, sweep the rest.
//!
//! Run it with the server stopped or read-only, as with Docker's registry.
//! Even so, blobs younger than the grace period are kept: a push in flight
//! uploads its blobs before the manifest that references them.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::storage::Storage;
use crate::digest::Digest;
use crate::manifest::Manifest;

#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
    /// Also remove manifests that no tag reaches (directly, through an
    /// index, or as a referrer of a kept manifest).
    pub delete_untagged: bool,
    /// Blobs modified more recently than this are kept.
    pub grace: Duration,
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub manifests_removed: Vec<(String, Digest)>,
    pub blobs_removed: Vec<Digest>,
    pub bytes_freed: u64,
    pub blobs_kept: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("registry gc in {root}: {what}: {source}")]
pub struct GcError {
    root: String,
    what: String,
    source: io::Error,
}

pub fn collect(root: &Path, options: &GcOptions) -> Result<GcReport, GcError> {
    let err = |what: String| {
        let root = root.display().to_string();
        move |source| GcError { root, what, source }
    };
    let storage = Storage::open(root).map_err(err("opening storage".into()))?;
    let mut report = GcReport::default();
    let repos = storage
        .repositories()
        .map_err(err("listing repositories".into()))?;

    let mut marked: HashSet<Digest> = HashSet::new();
    for repo in &repos {
        let revisions =
            revisions(&storage, repo).map_err(err(format!("reading manifests of {repo}")))?;
        let keep = if options.delete_untagged {
            reachable_from_tags(&storage, repo, &revisions)
                .map_err(err(format!("reading tags of {repo}")))?
        } else {
            revisions.iter().cloned().collect()
        };
        for digest in &revisions {
            if !keep.contains(digest) {
                report
                    .manifests_removed
                    .push((repo.clone(), digest.clone()));
                if !options.dry_run {
                    storage
                        .delete_manifest(repo, digest)
                        .map_err(err(format!("deleting manifest {digest} of {repo}")))?;
                }
                continue;
            }
            marked.insert(digest.clone());
            if let Some(manifest) = read_manifest(&storage, digest) {
                marked.extend(manifest.references().map(|d| d.digest.clone()));
            }
        }
    }

    let blob_dir = root.join("blobs/sha256");
    let now = SystemTime::now();
    let entries = fs::read_dir(&blob_dir).map_err(err("listing blobs".into()))?;
    for entry in entries {
        let entry = entry.map_err(err("listing blobs".into()))?;
        let Ok(digest) =
            format!("sha256:{}", entry.file_name().to_string_lossy()).parse::<Digest>()
        else {
            continue;
        };
        if marked.contains(&digest) {
            report.blobs_kept += 1;
            continue;
        }
        let meta = entry
            .metadata()
            .map_err(err(format!("reading blob {digest}")))?;
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if age < options.grace {
            report.blobs_kept += 1;
            continue;
        }
        report.bytes_freed += meta.len();
        report.blobs_removed.push(digest.clone());
        if !options.dry_run {
            for repo in &repos {
                storage
                    .unlink_blob(repo, &digest)
                    .map_err(err(format!("unlinking blob {digest} from {repo}")))?;
            }
            fs::remove_file(entry.path()).map_err(err(format!("removing blob {digest}")))?;
        }
    }
    report.blobs_removed.sort();
    Ok(report)
}

fn revisions(storage: &Storage, repo: &str) -> io::Result<Vec<Digest>> {
    let dir = storage
        .root()
        .join("repositories")
        .join(repo)
        .join("_manifests/revisions/sha256");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        if let Ok(d) = format!("sha256:{}", entry?.file_name().to_string_lossy()).parse() {
            out.push(d);
        }
    }
    Ok(out)
}

fn read_manifest(storage: &Storage, digest: &Digest) -> Option<Manifest> {
    let bytes = fs::read(storage.blob_path(digest)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Manifests reachable from the tags of `repo`: tagged ones, the children of
/// tagged indexes, and referrers of anything kept.
fn reachable_from_tags(
    storage: &Storage,
    repo: &str,
    revisions: &[Digest],
) -> io::Result<BTreeSet<Digest>> {
    let mut keep = BTreeSet::new();
    let mut queue: Vec<Digest> = Vec::new();
    for tag in storage.tags(repo)?.unwrap_or_default() {
        if let Some(d) = storage.resolve_tag(repo, &tag)? {
            queue.push(d);
        }
    }
    let subjects: Vec<(Digest, Digest)> = revisions
        .iter()
        .filter_map(|d| Some((read_manifest(storage, d)?.subject?.digest, d.clone())))
        .collect();
    while let Some(d) = queue.pop() {
        if !keep.insert(d.clone()) {
            continue;
        }
        if let Some(m) = read_manifest(storage, &d) {
            queue.extend(m.manifests.iter().flatten().map(|c| c.digest.clone()));
        }
        queue.extend(
            subjects
                .iter()
                .filter(|(s, _)| s == &d)
                .map(|(_, r)| r.clone()),
        );
    }
    Ok(keep)
}
