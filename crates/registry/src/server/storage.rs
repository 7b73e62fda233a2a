//! The registry's files on disk. Everything here is synchronous; the HTTP
//! layer calls it from blocking tasks.
//!
//! ```text
//! ROOT/blobs/sha256/<hex>                                   content, immutable once renamed in
//! ROOT/repositories/<name>/_layers/sha256/<hex>             the blob belongs to the repository
//! ROOT/repositories/<name>/_manifests/revisions/sha256/<hex> manifest in the repository (holds its media type)
//! ROOT/repositories/<name>/_manifests/tags/<tag>            the digest the tag points at
//! ROOT/repositories/<name>/_referrers/<subject hex>/<hex>   descriptor of a manifest whose subject is <subject>
//! ROOT/uploads/<id>/{repository,data}                       upload sessions (survive restarts)
//! ROOT/tmp/                                                 temporary files of monolithic uploads
//! ```
//!
//! Names cannot collide with the `_` directories: repository name components
//! start with a letter or digit. Every file is written whole (temp + fsync +
//! rename), so a crash leaves either the old state or the new one.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::fsutil::{atomic_write, random_id, sync_dir};
use crate::manifest::Descriptor;
use crate::names::is_valid_repository;

pub struct Storage {
    root: PathBuf,
}

/// A stored manifest.
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub path: PathBuf,
    pub size: u64,
}

impl Storage {
    pub fn open(root: &Path) -> io::Result<Storage> {
        for dir in ["blobs/sha256", "repositories", "uploads", "tmp"] {
            fs::create_dir_all(root.join(dir))?;
        }
        let storage = Storage {
            root: root.to_path_buf(),
        };
        // Temporary files of requests cut short by a crash are garbage.
        storage.clear_tmp()?;
        Ok(storage)
    }

    fn clear_tmp(&self) -> io::Result<()> {
        for entry in fs::read_dir(self.root.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        debug_assert!(is_valid_repository(repo));
        self.root.join("repositories").join(repo)
    }

    pub fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp").join(random_id())
    }

    /// Size of the blob when it is stored (in any repository).
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }

    /// Size of the blob when `repo` may serve it.
    pub fn repo_blob_size(&self, repo: &str, digest: &Digest) -> Option<u64> {
        if !self.layer_link(repo, digest).exists() {
            return None;
        }
        self.blob_size(digest)
    }

    fn layer_link(&self, repo: &str, digest: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_layers/sha256")
            .join(digest.hex())
    }

    pub fn link_blob(&self, repo: &str, digest: &Digest) -> io::Result<()> {
        let link = self.layer_link(repo, digest);
        if link.exists() {
            return Ok(());
        }
        atomic_write(&link, b"", 0o644)
    }

    /// Removes the blob from the repository; the content goes at the next gc.
    pub fn unlink_blob(&self, repo: &str, digest: &Digest) -> io::Result<bool> {
        remove_if_exists(&self.layer_link(repo, digest))
    }

    pub fn repo_exists(&self, repo: &str) -> bool {
        self.repo_dir(repo).is_dir()
    }

    /// Moves a fully written, verified temporary file into the content store.
    /// When another writer stored the same content first, its file stays and
    /// ours is dropped: both are identical by construction.
    pub fn commit_blob(&self, tmp: &Path, digest: &Digest) -> io::Result<()> {
        File::open(tmp)?.sync_all()?;
        let target = self.blob_path(digest);
        if target.exists() {
            fs::remove_file(tmp)?;
            return Ok(());
        }
        fs::rename(tmp, &target)?;
        sync_dir(target.parent().expect("blob path has a parent"))
    }

    // ---- manifests and tags ----

    fn revision_path(&self, repo: &str, digest: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_manifests/revisions/sha256")
            .join(digest.hex())
    }

    fn tag_path(&self, repo: &str, tag: &str) -> PathBuf {
        self.repo_dir(repo).join("_manifests/tags").join(tag)
    }

    /// Stores manifest bytes whose digest and media type the caller checked.
    pub fn put_manifest(
        &self,
        repo: &str,
        bytes: &[u8],
        digest: &Digest,
        media_type: &str,
        tag: Option<&str>,
    ) -> io::Result<()> {
        let blob = self.blob_path(digest);
        if !blob.exists() {
            atomic_write(&blob, bytes, 0o644)?;
        }
        atomic_write(
            &self.revision_path(repo, digest),
            media_type.as_bytes(),
            0o644,
        )?;
        if let Some(tag) = tag {
            atomic_write(
                &self.tag_path(repo, tag),
                digest.to_string().as_bytes(),
                0o644,
            )?;
        }
        Ok(())
    }

    pub fn resolve_tag(&self, repo: &str, tag: &str) -> io::Result<Option<Digest>> {
        match fs::read_to_string(self.tag_path(repo, tag)) {
            Ok(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn manifest(&self, repo: &str, digest: &Digest) -> io::Result<Option<StoredManifest>> {
        let media_type = match fs::read_to_string(self.revision_path(repo, digest)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let path = self.blob_path(digest);
        let Some(size) = fs::metadata(&path).ok().map(|m| m.len()) else {
            return Ok(None);
        };
        Ok(Some(StoredManifest {
            digest: digest.clone(),
            media_type,
            path,
            size,
        }))
    }

    pub fn has_manifest(&self, repo: &str, digest: &Digest) -> bool {
        self.revision_path(repo, digest).exists()
    }

    /// Tags of `repo`, sorted, or `None` when the repository does not exist.
    pub fn tags(&self, repo: &str) -> io::Result<Option<Vec<String>>> {
        if !self.repo_exists(repo) {
            return Ok(None);
        }
        let mut tags = list_names(&self.repo_dir(repo).join("_manifests/tags"))?;
        tags.sort();
        Ok(Some(tags))
    }

    pub fn delete_tag(&self, repo: &str, tag: &str) -> io::Result<bool> {
        remove_if_exists(&self.tag_path(repo, tag))
    }

    /// Deletes a manifest from the repository with the tags that point at it
    /// and its referrer entry. Returns false when it was not there.
    pub fn delete_manifest(&self, repo: &str, digest: &Digest) -> io::Result<bool> {
        let Some(stored) = self.manifest(repo, digest)? else {
            return Ok(false);
        };
        let tags_dir = self.repo_dir(repo).join("_manifests/tags");
        for tag in list_names(&tags_dir)? {
            if self.resolve_tag(repo, &tag)?.as_ref() == Some(digest) {
                remove_if_exists(&tags_dir.join(&tag))?;
            }
        }
        if let Ok(bytes) = fs::read(&stored.path) {
            if let Ok(manifest) = serde_json::from_slice::<crate::manifest::Manifest>(&bytes) {
                if let Some(subject) = manifest.subject {
                    remove_if_exists(&self.referrer_path(repo, &subject.digest, digest))?;
                }
            }
        }
        remove_if_exists(&self.revision_path(repo, digest))
    }

    // ---- referrers ----

    fn referrer_path(&self, repo: &str, subject: &Digest, referrer: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_referrers")
            .join(subject.hex())
            .join(referrer.hex())
    }

    pub fn add_referrer(
        &self,
        repo: &str,
        subject: &Digest,
        descriptor: &Descriptor,
    ) -> io::Result<()> {
        let json = serde_json::to_vec(descriptor).map_err(io::Error::other)?;
        atomic_write(
            &self.referrer_path(repo, subject, &descriptor.digest),
            &json,
            0o644,
        )
    }

    pub fn referrers(&self, repo: &str, subject: &Digest) -> io::Result<Vec<Descriptor>> {
        let dir = self.repo_dir(repo).join("_referrers").join(subject.hex());
        let mut out = Vec::new();
        for name in list_names(&dir)? {
            let bytes = fs::read(dir.join(&name))?;
            let descriptor: Descriptor = serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            out.push(descriptor);
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    // ---- catalog ----

    /// Every repository name, sorted.
    pub fn repositories(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        collect_repositories(&self.root.join("repositories"), "", &mut out)?;
        out.sort();
        Ok(out)
    }

    // ---- upload sessions ----

    pub fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    pub fn create_upload(&self, repo: &str) -> io::Result<String> {
        let id = random_id();
        let dir = self.upload_dir(&id);
        fs::create_dir_all(&dir)?;
        File::create(dir.join("data"))?;
        atomic_write(&dir.join("repository"), repo.as_bytes(), 0o644)?;
        Ok(id)
    }

    /// The repository the session was opened for, `None` for an unknown id.
    pub fn upload_repository(&self, id: &str) -> Option<String> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        fs::read_to_string(self.upload_dir(id).join("repository")).ok()
    }

    pub fn upload_data(&self, id: &str) -> PathBuf {
        self.upload_dir(id).join("data")
    }

    /// Time since the session last received data.
    pub fn upload_idle(&self, id: &str) -> Option<Duration> {
        let modified = fs::metadata(self.upload_data(id)).ok()?.modified().ok()?;
        Some(
            SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default(),
        )
    }

    pub fn remove_upload(&self, id: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.upload_dir(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Ids of every upload session on disk.
    pub fn uploads(&self) -> io::Result<Vec<String>> {
        list_names(&self.root.join("uploads"))
    }

    /// Removes sessions idle for longer than `expiry`; returns how many.
    pub fn expire_uploads(&self, expiry: Duration) -> io::Result<usize> {
        let mut removed = 0;
        for id in self.uploads()? {
            // A directory without data is a session whose creation was cut short.
            let expired = self.upload_idle(&id).is_none_or(|idle| idle > expiry);
            if expired {
                self.remove_upload(&id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Hashes a file from the start, for sessions whose hash state a restart lost.
pub fn hash_file(path: &Path) -> io::Result<(Sha256, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((hasher, len));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// File names in `dir` (none when it does not exist), skipping temporaries.
fn list_names(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    Ok(names)
}

fn collect_repositories(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    for name in list_names(dir)? {
        if name.starts_with('_') {
            continue;
        }
        let path = dir.join(&name);
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if path.join("_manifests").is_dir() || path.join("_layers").is_dir() {
            out.push(full.clone());
        }
        if path.is_dir() {
            collect_repositories(&path, &full, out)?;
        }
    }
    Ok(())
}
