//! The image store: a state root's blobs, unpacked layers and the image
//! tables of `quai.db`.
//!
//! ```text
//! <root>/quai.db                  images, tags, repo digests, layers
//! <root>/blobs/sha256/<hex>       configs, manifests, layer blobs
//! <root>/layers/<chain id hex>/   one unpacked layer (an overlay lower dir)
//! <root>/images.lock             shared by writers, exclusive for GC
//! ```
//!
//! Files are put in place first (atomically), then the database records
//! them in one transaction: a crash leaves at most unreferenced files, which
//! garbage collection removes. Writers (load, import, pull) hold the lock
//! shared from their first blob to their commit; GC takes it exclusively, so
//! it never removes what a concurrent load has written but not yet recorded.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use quai_db::rusqlite::{params, OptionalExtension};
use quai_db::Db;

use crate::apply::{apply_layer, ApplyOptions};
use crate::compression::decompress;
use crate::content::{sync_dir, ContentStore};
use crate::digest::{is_sha256_hex, Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::reference::{familiar_repo_digest, Reference};
use crate::spec::{chain_ids, ImageConfig, MAX_JSON_SIZE};

const STAGING_PREFIX: &str = ".staging-";

#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub apply: ApplyOptions,
    /// Do not seed the embedded hello-world image into a new store.
    pub no_seed: bool,
}

pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
    layers_dir: PathBuf,
    db: Db,
    opts: StoreOptions,
}

/// A layer of an image as recorded.
#[derive(Debug, Clone)]
pub struct LayerRecord {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub blob: Digest,
    pub media_type: String,
    pub size: u64,
}

/// An image as recorded.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    /// Docker's image ID: the config's digest.
    pub id: Digest,
    pub manifest_digest: Option<Digest>,
    pub created: Option<String>,
    pub size: u64,
    pub parent: Option<String>,
    pub added_at: i64,
    pub tags: Vec<Reference>,
    /// (repository name, manifest digest)
    pub repo_digests: Vec<(String, Digest)>,
    pub layers: Vec<LayerRecord>,
}

/// An image to record whose blobs are already in the content store.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub config: Digest,
    /// The manifest blob, when the image came with one.
    pub manifest: Option<Digest>,
    /// Layer blobs, bottom first, with their media types.
    pub layers: Vec<(Digest, String)>,
    pub tags: Vec<Reference>,
    /// Repositories whose manifest digest names this image.
    pub repo_digests: Vec<String>,
    pub parent: Option<String>,
}

/// What a pull adds to [`ImageStore::commit_image_with`].
#[derive(Debug, Clone, Default)]
pub struct CommitExtras {
    /// Layers streamed through [`crate::layer_ingest::LayerSink`].
    pub verified_layers: Vec<VerifiedLayer>,
    /// The digest `repo_digests` record, when not the manifest's.
    pub repo_digest: Option<Digest>,
}

/// Proof that a layer blob was read in full, matched its digest, and
/// decompresses to `diff_id`. Only this crate makes them.
#[derive(Debug, Clone)]
pub struct VerifiedLayer {
    pub(crate) blob: Digest,
    pub(crate) diff_id: Digest,
    /// Size of the unpacked content, when this pass unpacked it.
    pub(crate) size: Option<u64>,
}

impl VerifiedLayer {
    pub fn blob(&self) -> &Digest {
        &self.blob
    }
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }
}

/// What `remove` did, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(Digest),
}

/// Held while writing into the store; see the module docs.
pub struct WriteGuard {
    _lock: File,
}

impl ImageStore {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &Path, opts: StoreOptions) -> Result<ImageStore> {
        fs::create_dir_all(root).at("create state root", root)?;
        let content = ContentStore::open(&root.join("blobs"))?;
        let layers_dir = root.join("layers");
        fs::create_dir_all(&layers_dir).at("create layer directory", &layers_dir)?;
        mark_top_directory(&layers_dir);
        let db = Db::open(&root.join("quai.db"))?;
        let mut store = ImageStore {
            root: root.to_path_buf(),
            content,
            layers_dir,
            db,
            opts,
        };
        if !store.opts.no_seed && store.meta("hello_world_seeded")?.is_none() {
            crate::hello::seed(&mut store)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn db(&mut self) -> &mut Db {
        &mut self.db
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT value FROM image_meta WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub(crate) fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.db.conn().execute(
            "INSERT OR REPLACE INTO image_meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    fn lock(&self, exclusive: bool) -> Result<File> {
        let path = self.root.join("images.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at("open lock", &path)?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(&f, op).map_err(|e| Error::path("lock", &path, e.into()))?;
        Ok(f)
    }

    /// Takes the writers' lock; hold it from the first blob written until
    /// [`ImageStore::commit_image`] returns.
    pub fn write_guard(&self) -> Result<WriteGuard> {
        Ok(WriteGuard {
            _lock: self.lock(false)?,
        })
    }

    /// Directory of an unpacked layer.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layers_dir.join(chain_id.hex())
    }

    /// Unpacks the image's missing layers (in parallel), verifies their diff
    /// ids against the config, and records the image and its tags in one
    /// transaction. Returns the image ID.
    pub fn commit_image(&mut self, img: &NewImage, guard: &WriteGuard) -> Result<Digest> {
        self.commit_image_with(img, guard, &CommitExtras::default())
    }

    /// [`ImageStore::commit_image`] for a pull: layers the caller already
    /// streamed and verified are not hashed again, and the repository
    /// digest may differ from the manifest's (an image pulled through an
    /// index is known by the index's digest, as in docker).
    pub fn commit_image_with(
        &mut self,
        img: &NewImage,
        _guard: &WriteGuard,
        extras: &CommitExtras,
    ) -> Result<Digest> {
        let id = img.config.clone();
        let what = format!("image {}", id);
        let config_bytes = self.content.read(&img.config, MAX_JSON_SIZE)?;
        let config = ImageConfig::parse(&format!("config of {what}"), &config_bytes)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != img.layers.len() {
            return Err(Error::invalid(
                what,
                format!(
                    "config lists {} layers (diff ids) but the manifest has {}",
                    diff_ids.len(),
                    img.layers.len()
                ),
            ));
        }
        let chains = chain_ids(diff_ids);
        let sizes = self.ensure_layers(&img.layers, diff_ids, &chains, &extras.verified_layers)?;
        let size: u64 = sizes.iter().sum();
        let (now, _) = crate::time::now();
        let tx = self.db.write()?;
        for (i, chain) in chains.iter().enumerate() {
            tx.execute(
                "INSERT OR IGNORE INTO layers (chain_id, diff_id, parent, size) VALUES (?1, ?2, ?3, ?4)",
                params![
                    chain.to_string(),
                    diff_ids[i].to_string(),
                    i.checked_sub(1).map(|p| chains[p].to_string()),
                    sizes[i] as i64
                ],
            )?;
        }
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM images WHERE id = ?1",
                [id.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            tx.execute(
                "INSERT INTO images (id, manifest_digest, created, size, parent, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id.to_string(),
                    img.manifest.as_ref().map(|d| d.to_string()),
                    config.created,
                    size as i64,
                    img.parent,
                    now
                ],
            )?;
            for (i, (blob, media_type)) in img.layers.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_layers (image_id, position, chain_id, blob, media_type) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id.to_string(), i as i64, chains[i].to_string(), blob.to_string(), media_type],
                )?;
            }
        } else if let Some(m) = &img.manifest {
            tx.execute(
                "UPDATE images SET manifest_digest = ?2 WHERE id = ?1 AND manifest_digest IS NULL",
                params![id.to_string(), m.to_string()],
            )?;
        }
        for tag in &img.tags {
            tx.execute(
                "INSERT OR REPLACE INTO image_tags (reference, image_id, tagged_at) VALUES (?1, ?2, ?3)",
                params![tag.to_string(), id.to_string(), now],
            )?;
        }
        if let Some(m) = extras.repo_digest.as_ref().or(img.manifest.as_ref()) {
            for repo in &img.repo_digests {
                tx.execute(
                    "INSERT OR REPLACE INTO image_digests (repository, digest, image_id) VALUES (?1, ?2, ?3)",
                    params![repo, m.to_string(), id.to_string()],
                )?;
            }
        }
        tx.commit()?;
        Ok(id)
    }

    /// Makes sure every layer is unpacked; returns their sizes.
    fn ensure_layers(
        &self,
        blobs: &[(Digest, String)],
        diff_ids: &[Digest],
        chains: &[Digest],
        verified: &[VerifiedLayer],
    ) -> Result<Vec<u64>> {
        let mut sizes = vec![0u64; chains.len()];
        let mut todo = Vec::new();
        let mut seen = HashSet::new();
        for (i, chain) in chains.iter().enumerate() {
            let dir = self.layer_dir(chain);
            let streamed = verified
                .iter()
                .find(|v| v.blob == blobs[i].0 && v.diff_id == diff_ids[i]);
            if dir.is_dir() {
                sizes[i] = match (
                    self.recorded_layer_size(chain)?,
                    streamed.and_then(|v| v.size),
                ) {
                    (Some(s), _) | (None, Some(s)) => s,
                    (None, None) => dir_size(&dir)?,
                };
                if streamed.is_none() {
                    self.verify_blob_matches(&blobs[i].0, &diff_ids[i])?;
                }
            } else if seen.insert(chain.clone()) {
                todo.push(i);
            }
        }
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Result<u64>)>> = Mutex::new(Vec::new());
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(todo.len());
        let (content, layers_dir, opts) =
            (&self.content, self.layers_dir.as_path(), &self.opts.apply);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = todo.get(k) else { break };
                    let r = unpack_layer(
                        content,
                        layers_dir,
                        opts,
                        &blobs[i].0,
                        &diff_ids[i],
                        &chains[i],
                    );
                    let failed = r.is_err();
                    results.lock().expect("results lock").push((i, r));
                    if failed {
                        // Let the other workers stop early.
                        next.store(todo.len(), Ordering::Relaxed);
                    }
                });
            }
        });
        let mut results = results.into_inner().expect("results lock");
        results.sort_by_key(|(i, _)| *i);
        for (i, r) in results {
            sizes[i] = r?;
        }
        // Layers that appear twice in one image (same chain id) share a size.
        for (i, chain) in chains.iter().enumerate() {
            if sizes[i] == 0 {
                if let Some(j) = chains.iter().position(|c| c == chain) {
                    sizes[i] = sizes[j];
                }
            }
        }
        Ok(sizes)
    }

    fn recorded_layer_size(&self, chain: &Digest) -> Result<Option<u64>> {
        Ok(self
            .db
            .conn()
            .query_row(
                "SELECT size FROM layers WHERE chain_id = ?1",
                [chain.to_string()],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|s| s as u64))
    }

    /// A layer already unpacked from another blob: check that this blob
    /// really holds that layer before recording it (it will be what `save`
    /// exports).
    fn verify_blob_matches(&self, blob: &Digest, diff_id: &Digest) -> Result<()> {
        if blob == diff_id {
            return Ok(());
        }
        let known: Option<i64> = self
            .db
            .conn()
            .query_row(
                "SELECT 1 FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id WHERE il.blob = ?1 AND l.diff_id = ?2 LIMIT 1",
                params![blob.to_string(), diff_id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_some() {
            return Ok(());
        }
        let f = self.content.open_blob(blob)?;
        let what = format!("layer {blob}");
        let (_, plain) = decompress(f).ctx(|| format!("read {what}"))?;
        let (actual, _) = HashingReader::new(plain)
            .finish()
            .ctx(|| format!("read {what}"))?;
        if &actual != diff_id {
            return Err(Error::DigestMismatch {
                what: format!("{what}: uncompressed content (diff id)"),
                expected: diff_id.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Finds an image by ID (full, `sha256:`-prefixed or a unique prefix),
    /// by tag, or by repository@digest, as docker does.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        let id = self.resolve_id(name)?;
        self.get(&id)
    }

    pub fn resolve_id(&self, name: &str) -> Result<Digest> {
        if let Some(hex) = name.strip_prefix("sha256:") {
            if is_sha256_hex(hex) {
                let d = Digest::from_hex(hex)?;
                if self.exists(&d)? {
                    return Ok(d);
                }
                return Err(Error::NoSuchImage(name.to_string()));
            }
            return self.by_prefix(hex, name);
        }
        if is_sha256_hex(name) {
            let d = Digest::from_hex(name)?;
            if self.exists(&d)? {
                return Ok(d);
            }
            return Err(Error::NoSuchImage(name.to_string()));
        }
        let reference = match Reference::parse(name) {
            Ok(r) => r,
            Err(e) => {
                if looks_like_short_id(name) {
                    return self.by_prefix(name, name);
                }
                return Err(e.into());
            }
        };
        let reference = reference.with_default_tag();
        let found: Option<String> = if let Some(d) = reference.digest() {
            self.db
                .conn()
                .query_row(
                    "SELECT image_id FROM image_digests WHERE repository = ?1 AND digest = ?2",
                    params![reference.name(), d.to_string()],
                    |r| r.get(0),
                )
                .optional()?
        } else {
            self.db
                .conn()
                .query_row(
                    "SELECT image_id FROM image_tags WHERE reference = ?1",
                    [reference.to_string()],
                    |r| r.get(0),
                )
                .optional()?
        };
        if let Some(id) = found {
            return Digest::parse(&id).map_err(|e| Error::invalid("image database", e.to_string()));
        }
        // A bare hex prefix that is also a valid name ("abc123"): docker
        // tries it as an ID after the name fails.
        if reference.tag() == Some("latest") && !name.contains(':') && looks_like_short_id(name) {
            if let Ok(id) = self.by_prefix(name, name) {
                return Ok(id);
            }
        }
        Err(Error::NoSuchImage(reference.familiar()))
    }

    fn by_prefix(&self, prefix: &str, typed: &str) -> Result<Digest> {
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::NoSuchImage(typed.to_string()));
        }
        let mut stmt = self
            .db
            .conn()
            .prepare("SELECT id FROM images WHERE id >= ?1 AND id < ?2 LIMIT 2")?;
        let lo = format!("sha256:{prefix}");
        let hi = format!("sha256:{prefix}\u{7f}");
        let ids: Vec<String> = stmt
            .query_map(params![lo, hi], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [one] => {
                Digest::parse(one).map_err(|e| Error::invalid("image database", e.to_string()))
            }
            [] => Err(Error::NoSuchImage(typed.to_string())),
            _ => Err(Error::Conflict(format!(
                "multiple IDs found with provided prefix: {prefix}"
            ))),
        }
    }

    fn exists(&self, id: &Digest) -> Result<bool> {
        Ok(self
            .db
            .conn()
            .query_row(
                "SELECT 1 FROM images WHERE id = ?1",
                [id.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The record of image `id`.
    pub fn get(&self, id: &Digest) -> Result<ImageRecord> {
        let conn = self.db.conn();
        let row = conn
            .query_row(
                "SELECT manifest_digest, created, size, parent, added_at FROM images WHERE id = ?1",
                [id.to_string()],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                },
            )
            .optional()?
            .ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
        let bad = |e: crate::digest::DigestError| Error::invalid("image database", e.to_string());
        let mut tags: Vec<Reference> = conn
            .prepare("SELECT reference FROM image_tags WHERE image_id = ?1 ORDER BY tagged_at, reference")?
            .query_map([id.to_string()], |r| r.get::<_, String>(0))?
            .filter_map(|r| r.ok())
            .filter_map(|s| Reference::parse(&s).ok())
            .collect();
        tags.dedup();
        let mut repo_digests = Vec::new();
        for row in conn
            .prepare("SELECT repository, digest FROM image_digests WHERE image_id = ?1 ORDER BY repository")?
            .query_map([id.to_string()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        {
            let (repo, d) = row?;
            repo_digests.push((repo, Digest::parse(&d).map_err(bad)?));
        }
        let mut layers = Vec::new();
        for row in conn
            .prepare(
                "SELECT il.chain_id, l.diff_id, il.blob, il.media_type, l.size FROM image_layers il \
                 JOIN layers l ON l.chain_id = il.chain_id WHERE il.image_id = ?1 ORDER BY il.position",
            )?
            .query_map([id.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?
        {
            let (chain, diff, blob, media_type, size) = row?;
            layers.push(LayerRecord {
                chain_id: Digest::parse(&chain).map_err(bad)?,
                diff_id: Digest::parse(&diff).map_err(bad)?,
                blob: Digest::parse(&blob).map_err(bad)?,
                media_type,
                size: size as u64,
            });
        }
        Ok(ImageRecord {
            id: id.clone(),
            manifest_digest: row.0.map(|d| Digest::parse(&d)).transpose().map_err(bad)?,
            created: row.1,
            size: row.2 as u64,
            parent: row.3,
            added_at: row.4,
            tags,
            repo_digests,
            layers,
        })
    }

    /// Every image, newest first (by creation time, then by load time).
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let ids: Vec<String> = self
            .db
            .conn()
            .prepare("SELECT id FROM images")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let id =
                Digest::parse(&id).map_err(|e| Error::invalid("image database", e.to_string()))?;
            out.push(self.get(&id)?);
        }
        out.sort_by_key(|r| {
            let created = r
                .created
                .as_deref()
                .and_then(crate::time::parse_rfc3339)
                .unwrap_or((0, 0));
            std::cmp::Reverse((created, r.added_at, r.id.clone()))
        });
        Ok(out)
    }

    /// The parsed config of an image.
    pub fn config(&self, id: &Digest) -> Result<ImageConfig> {
        let bytes = self.content.read(id, MAX_JSON_SIZE)?;
        ImageConfig::parse(&format!("config of image {id}"), &bytes)
    }

    /// The config blob as stored (its digest is the image ID).
    pub fn config_bytes(&self, id: &Digest) -> Result<Vec<u8>> {
        self.content.read(id, MAX_JSON_SIZE)
    }

    /// Points `target` at the image `source` names (docker tag).
    /// Records that `repository` (e.g. `127.0.0.1:5000/app`) serves image
    /// `id` under manifest `digest`: what a push learns.
    pub fn add_repo_digest(
        &mut self,
        id: &Digest,
        repository: &str,
        digest: &Digest,
    ) -> Result<()> {
        self.db.conn().execute(
            "INSERT OR REPLACE INTO image_digests (repository, digest, image_id) VALUES (?1, ?2, ?3)",
            params![repository, digest.to_string(), id.to_string()],
        )?;
        Ok(())
    }

    /// The sink that streams layer blobs into this store (see
    /// [`crate::layer_ingest`]).
    pub fn layer_sink(&self) -> crate::layer_ingest::LayerSink {
        crate::layer_ingest::LayerSink::new(
            self.content.clone(),
            self.layers_dir.clone(),
            self.opts.apply.clone(),
        )
    }

    pub fn tag(&mut self, source: &str, target: &str) -> Result<()> {
        let id = self.resolve_id(source)?;
        let target = Reference::parse(target)?;
        if target.digest().is_some() {
            return Err(Error::invalid(
                format!("tag {}", target.familiar()),
                "refusing to create a tag with a digest reference",
            ));
        }
        let target = target.with_default_tag();
        let (now, _) = crate::time::now();
        self.db.conn().execute(
            "INSERT OR REPLACE INTO image_tags (reference, image_id, tagged_at) VALUES (?1, ?2, ?3)",
            params![target.to_string(), id.to_string(), now],
        )?;
        Ok(())
    }

    /// The first container (id, status) that uses image `id`, if any: such
    /// an image keeps its layers (the container's overlay stands on them).
    /// The containers table belongs to the engine; it shares this database.
    pub fn container_using(&self, id: &Digest) -> Result<Option<(String, String)>> {
        Ok(self
            .db
            .conn()
            .query_row(
                "SELECT id, status FROM containers WHERE image_id = ?1 \
                 ORDER BY status = 'running' DESC LIMIT 1",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Removes a tag or an image, as `docker rmi` does: a reference that is
    /// one of several tags is untagged; the last reference, or the ID,
    /// deletes the image (an ID with several tags needs `force`).
    pub fn remove(&mut self, name: &str, force: bool) -> Result<Vec<Removed>> {
        let id = self.resolve_id(name)?;
        let record = self.get(&id)?;
        let by_reference = Reference::parse(name)
            .ok()
            .filter(|_| !looks_like_id_of(name, &id))
            .map(Reference::with_default_tag);
        let user = self.container_using(&id)?;
        if let Some((container, status)) = &user {
            let container = container.get(..12).unwrap_or(container);
            match (&by_reference, force) {
                (Some(r), false) => {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to remove repository reference \"{}\" (must force) - container {container} is using its referenced image {}",
                        r.familiar(),
                        id.short()
                    )))
                }
                (None, _) if status == "running" => {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {} (cannot be forced) - image is being used by running container {container}",
                        id.short()
                    )))
                }
                (None, false) => {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is being used by stopped container {container}",
                        id.short()
                    )))
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        let tx = self.db.write()?;
        if user.is_some() {
            // Forced while a container uses it: the names go, the image
            // (and its layers) stay until the container is removed.
            match &by_reference {
                Some(r) => {
                    tx.execute(
                        "DELETE FROM image_tags WHERE reference = ?1",
                        [r.to_string()],
                    )?;
                    out.push(Removed::Untagged(r.familiar()));
                }
                None => {
                    tx.execute(
                        "DELETE FROM image_tags WHERE image_id = ?1",
                        [id.to_string()],
                    )?;
                    tx.execute(
                        "DELETE FROM image_digests WHERE image_id = ?1",
                        [id.to_string()],
                    )?;
                    out.extend(record.tags.iter().map(|t| Removed::Untagged(t.familiar())));
                }
            }
            tx.commit()?;
            return Ok(out);
        }
        if let Some(r) = &by_reference {
            if let Some(d) = r.digest() {
                tx.execute(
                    "DELETE FROM image_digests WHERE repository = ?1 AND digest = ?2",
                    params![r.name(), d.to_string()],
                )?;
            } else {
                tx.execute(
                    "DELETE FROM image_tags WHERE reference = ?1",
                    [r.to_string()],
                )?;
            }
            out.push(Removed::Untagged(r.familiar()));
            let left: i64 = tx.query_row(
                "SELECT (SELECT count(*) FROM image_tags WHERE image_id = ?1) + (SELECT count(*) FROM image_digests WHERE image_id = ?1)",
                [id.to_string()],
                |r| r.get(0),
            )?;
            // The repo digests of a repository whose last tag went go too,
            // as in docker.
            if left > 0 {
                let tags_left: i64 = tx.query_row(
                    "SELECT count(*) FROM image_tags WHERE image_id = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )?;
                if tags_left > 0 || r.digest().is_some() {
                    tx.commit()?;
                    return Ok(out);
                }
                for (repo, d) in &record.repo_digests {
                    out.push(Removed::Untagged(familiar_repo_digest(repo, d)));
                }
            }
        } else {
            let distinct_repos: BTreeSet<String> = record.tags.iter().map(|t| t.name()).collect();
            if distinct_repos.len() > 1 && !force {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    id.short()
                )));
            }
            for t in &record.tags {
                out.push(Removed::Untagged(t.familiar()));
            }
            for (repo, d) in &record.repo_digests {
                out.push(Removed::Untagged(familiar_repo_digest(repo, d)));
            }
        }
        tx.execute("DELETE FROM images WHERE id = ?1", [id.to_string()])?;
        tx.commit()?;
        out.push(Removed::Deleted(id));
        out.extend(self.gc()?.layers.into_iter().map(Removed::Deleted));
        Ok(out)
    }

    /// Removes layers and blobs no image references, temporary files of
    /// crashed writers, and staging directories. Waits for running writers.
    pub fn gc(&mut self) -> Result<GcReport> {
        let _lock = self.lock(true)?;
        let mut report = GcReport::default();
        let conn = self.db.conn();
        let referenced_layers: HashSet<String> = conn
            .prepare("SELECT DISTINCT chain_id FROM image_layers")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        // Keep the parents of referenced chains too (a chain's parent is a
        // layer of the same image, so this is only belt and braces).
        let mut keep_blobs: HashSet<String> = HashSet::new();
        for sql in [
            "SELECT id FROM images",
            "SELECT manifest_digest FROM images WHERE manifest_digest IS NOT NULL",
            "SELECT blob FROM image_layers",
        ] {
            for d in conn
                .prepare(sql)?
                .query_map([], |r| r.get::<_, String>(0))?
            {
                keep_blobs.insert(d?);
            }
        }
        let unreferenced: Vec<String> = conn
            .prepare("SELECT chain_id FROM layers")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|c| !referenced_layers.contains(c))
            .collect();
        for entry in fs::read_dir(&self.layers_dir).at("list layers in", &self.layers_dir)? {
            let entry = entry.at("list layers in", &self.layers_dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let chain = format!("sha256:{name}");
            if name.starts_with(STAGING_PREFIX)
                || (is_sha256_hex(&name) && !referenced_layers.contains(&chain))
            {
                let size = if name.starts_with(STAGING_PREFIX) {
                    0
                } else {
                    dir_size(&path).unwrap_or(0)
                };
                fs::remove_dir_all(&path).at("remove layer", &path)?;
                if is_sha256_hex(&name) {
                    report.reclaimed += size;
                    report.layers.push(Digest::from_hex(&name)?);
                }
            }
        }
        sync_dir(&self.layers_dir)?;
        // Short names of removed layers (see snapshot.rs).
        if let Ok(links) = fs::read_dir(self.root.join("l")) {
            for link in links.flatten() {
                if !link.path().exists() {
                    let _ = fs::remove_file(link.path());
                }
            }
        }
        // Children before their parents: a layer's row names its parent
        // (a foreign key), and an image's layers go together.
        let parents: HashMap<String, Option<String>> = conn
            .prepare("SELECT chain_id, parent FROM layers")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let depth = |chain: &String| {
            let mut depth = 0usize;
            let mut at = parents.get(chain).cloned().flatten();
            while let Some(p) = at {
                depth += 1;
                if depth > parents.len() {
                    break;
                }
                at = parents.get(&p).cloned().flatten();
            }
            depth
        };
        let mut unreferenced = unreferenced;
        unreferenced.sort_by_cached_key(|c| std::cmp::Reverse(depth(c)));
        for c in &unreferenced {
            conn.execute("DELETE FROM layers WHERE chain_id = ?1", [c])?;
        }
        for d in self.content.list()? {
            if !keep_blobs.contains(&d.to_string()) {
                report.reclaimed += self.content.size(&d).unwrap_or(0);
                self.content.remove(&d)?;
                report.blobs += 1;
            }
        }
        report.reclaimed += self.content.remove_stale_ingests()?;
        Ok(report)
    }

    /// Removes dangling images (no tag), or with `all` every image, except
    /// those containers use, then collects garbage.
    pub fn prune(&mut self, all: bool) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        let mut images = self.list()?;
        let mut unused = Vec::with_capacity(images.len());
        for img in images.drain(..) {
            if self.container_using(&img.id)?.is_none() {
                unused.push(img);
            }
        }
        let tx = self.db.write()?;
        for img in &unused {
            if !all && !img.tags.is_empty() {
                continue;
            }
            for t in &img.tags {
                report.removed.push(Removed::Untagged(t.familiar()));
            }
            for (repo, d) in &img.repo_digests {
                report
                    .removed
                    .push(Removed::Untagged(format!("{repo}@{d}")));
            }
            tx.execute("DELETE FROM images WHERE id = ?1", [img.id.to_string()])?;
            report.removed.push(Removed::Deleted(img.id.clone()));
        }
        tx.commit()?;
        let gc = self.gc()?;
        report
            .removed
            .extend(gc.layers.into_iter().map(Removed::Deleted));
        report.reclaimed = gc.reclaimed;
        Ok(report)
    }

    /// Layer directories of an image, bottom first (for overlay lowerdirs).
    pub fn layer_dirs(&self, id: &Digest) -> Result<Vec<PathBuf>> {
        let record = self.get(id)?;
        record
            .layers
            .iter()
            .map(|l| {
                let dir = self.layer_dir(&l.chain_id);
                if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(Error::invalid(
                        format!("image {}", id),
                        format!(
                            "layer {} is missing from {}",
                            l.chain_id,
                            self.layers_dir.display()
                        ),
                    ))
                }
            })
            .collect()
    }

    /// Sizes of the store's parts, for `system df`.
    pub fn usage(&self) -> Result<HashMap<Digest, u64>> {
        let mut out = HashMap::new();
        for row in self
            .db
            .conn()
            .prepare("SELECT chain_id, size FROM layers")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        {
            let (c, s) = row?;
            if let Ok(d) = Digest::parse(&c) {
                out.insert(d, s as u64);
            }
        }
        Ok(out)
    }
}

/// Unpacks one layer into a staging directory and renames it into place.
fn unpack_layer(
    content: &ContentStore,
    layers_dir: &Path,
    opts: &ApplyOptions,
    blob: &Digest,
    diff_id: &Digest,
    chain: &Digest,
) -> Result<u64> {
    let staging = StagedLayer::create(layers_dir, chain)?;
    let f = content.open_blob(blob)?;
    let name = blob.to_string();
    let applied = apply_layer(f, staging.path(), &name, opts)?;
    check_diff_id(blob, diff_id, &applied.diff_id)?;
    staging.publish()?;
    Ok(applied.size)
}

pub(crate) fn check_diff_id(blob: &Digest, expected: &Digest, actual: &Digest) -> Result<()> {
    if actual != expected {
        return Err(Error::DigestMismatch {
            what: format!("layer {blob}: uncompressed content (diff id)"),
            expected: expected.clone(),
            actual: actual.clone(),
        });
    }
    Ok(())
}

/// A layer being unpacked in `layers/.staging-*`: removed on drop unless
/// [`StagedLayer::publish`] moved it under its chain id.
pub(crate) struct StagedLayer {
    guard: RemoveOnDrop,
    layers_dir: PathBuf,
    chain: Digest,
}

impl StagedLayer {
    pub(crate) fn create(layers_dir: &Path, chain: &Digest) -> Result<StagedLayer> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let staging = layers_dir.join(format!(
            "{STAGING_PREFIX}{}-{}-{}",
            chain.short(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&staging).at("create layer staging directory", &staging)?;
        Ok(StagedLayer {
            guard: RemoveOnDrop(Some(staging)),
            layers_dir: layers_dir.to_path_buf(),
            chain: chain.clone(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.guard
            .0
            .as_deref()
            .expect("staging path until published")
    }

    /// Makes the layer durable and moves it under its chain id.
    pub(crate) fn publish(self) -> Result<()> {
        let staging = self.path().to_path_buf();
        // One syncfs instead of an fsync per file: the layer is on disk
        // before it appears under its name.
        sync_filesystem(&staging)?;
        let layers_dir = self.layers_dir.clone();
        if self.move_into_place()? {
            sync_dir(&layers_dir)?;
        }
        Ok(())
    }

    /// Moves the layer under its chain id; only once its content is
    /// durable. Returns whether it moved (false: a concurrent load put the
    /// same layer there first). The caller syncs the layers directory.
    pub(crate) fn move_into_place(self) -> Result<bool> {
        let target = self.layers_dir.join(self.chain.hex());
        match fs::rename(self.path(), &target) {
            Ok(()) => {
                self.guard.disarm();
                Ok(true)
            }
            Err(e) if target.is_dir() && matches!(e.raw_os_error(), Some(39) | Some(17)) => {
                Ok(false)
            }
            Err(e) => Err(Error::path("move layer into place", &target, e)),
        }
    }
}

/// syncfs(2) of the filesystem holding `path`: everything written there
/// (any number of files) reaches the disk in one call.
pub(crate) fn sync_filesystem(path: &Path) -> Result<()> {
    let fd = File::open(path).at("open", path)?;
    rustix::fs::syncfs(&fd).map_err(|e| Error::path("sync filesystem of", path, e.into()))
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub layers: Vec<Digest>,
    pub blobs: u64,
    pub reclaimed: u64,
}

#[derive(Debug, Default)]
pub struct PruneReport {
    pub removed: Vec<Removed>,
    pub reclaimed: u64,
}

fn looks_like_short_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn looks_like_id_of(name: &str, id: &Digest) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    looks_like_short_id(hex) && id.hex().starts_with(hex)
}

/// Bytes of content under `dir`, counting each inode once.
pub fn dir_size(dir: &Path) -> Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).at("read directory", &d)? {
            let entry = entry.at("read directory", &d)?;
            let meta = entry.metadata().at("stat", &entry.path())?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Marks `dir` as the top of directory hierarchies (`chattr +T`): ext4's
/// Orlov allocator then spreads its subdirectories (one per layer) over
/// block groups instead of packing them next to each other. Creating tens
/// of thousands of files in a block group full of recently freed inodes is
/// slow (ext4 scans past inodes freed in the last seconds); spread layers
/// avoid that and let parallel unpacks work in different groups. Best
/// effort: other file systems may not have the flag.
fn mark_top_directory(dir: &Path) {
    let Ok(f) = File::open(dir) else { return };
    match rustix::fs::ioctl_getflags(&f) {
        Ok(flags) if !flags.contains(rustix::fs::IFlags::TOPDIR) => {
            if let Err(e) = rustix::fs::ioctl_setflags(&f, flags | rustix::fs::IFlags::TOPDIR) {
                tracing::debug!("chattr +T {}: {e}", dir.display());
            }
        }
        _ => {}
    }
}

struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_has_hello_world_and_rmi_sticks() {
        quai_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let mut store = ImageStore::open(dir.path(), StoreOptions::default()).unwrap();
        let img = store.resolve("hello-world").unwrap();
        assert_eq!(img.tags[0].familiar(), "hello-world:latest");
        assert_eq!(img.layers.len(), 1);
        let layer = store.layer_dir(&img.layers[0].chain_id).join("hello");
        assert_eq!(fs::read(&layer).unwrap(), crate::hello::PROGRAM);
        // Lookups by ID, short ID and docker.io name all find it.
        assert_eq!(store.resolve_id(&img.id.to_string()).unwrap(), img.id);
        assert_eq!(store.resolve_id(img.id.short()).unwrap(), img.id);
        assert_eq!(
            store
                .resolve_id("docker.io/library/hello-world:latest")
                .unwrap(),
            img.id
        );
        assert!(
            matches!(store.resolve_id("nothere"), Err(Error::NoSuchImage(n)) if n == "nothere:latest")
        );

        store.tag("hello-world", "mine/hello:v1").unwrap();
        assert_eq!(
            store.remove("mine/hello:v1", false).unwrap(),
            vec![Removed::Untagged("mine/hello:v1".into())]
        );
        let removed = store.remove("hello-world", false).unwrap();
        assert_eq!(removed[0], Removed::Untagged("hello-world:latest".into()));
        assert_eq!(removed[1], Removed::Deleted(img.id.clone()));
        assert!(!store.layer_dir(&img.layers[0].chain_id).exists());
        assert!(store.content().list().unwrap().is_empty());
        drop(store);
        // Not seeded again.
        let store = ImageStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn gc_waits_for_a_concurrent_writer_and_keeps_what_it_commits() {
        quai_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let no_seed = || StoreOptions {
            no_seed: true,
            ..Default::default()
        };
        let mut writer = ImageStore::open(dir.path(), no_seed()).unwrap();
        let (config, _, layer) = crate::hello::blobs().unwrap();
        let guard = writer.write_guard().unwrap();
        // Blobs written, image not yet recorded: unreferenced for now.
        let layer_d = writer.content().write_bytes(&layer).unwrap();
        let config_d = writer.content().write_bytes(&config).unwrap();
        let root = dir.path().to_path_buf();
        let gc = std::thread::spawn(move || {
            let mut other = ImageStore::open(
                &root,
                StoreOptions {
                    no_seed: true,
                    ..Default::default()
                },
            )
            .unwrap();
            other.gc().unwrap()
        });
        let img = NewImage {
            config: config_d.clone(),
            manifest: None,
            layers: vec![(layer_d.clone(), crate::spec::media::OCI_LAYER.into())],
            tags: vec![],
            repo_digests: vec![],
            parent: None,
        };
        writer.commit_image(&img, &guard).unwrap();
        drop(guard);
        let report = gc.join().unwrap();
        assert!(report.layers.is_empty(), "{report:?}");
        assert!(writer.content().contains(&layer_d));
        assert!(writer.content().contains(&config_d));
        assert_eq!(writer.layer_dirs(&config_d).unwrap().len(), 1);
    }

    #[test]
    fn removing_a_many_layer_image_collects_its_layer_chain() {
        quai_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let mut store = ImageStore::open(
            dir.path(),
            StoreOptions {
                no_seed: true,
                ..Default::default()
            },
        )
        .unwrap();
        let guard = store.write_guard().unwrap();
        // Six layers: their chain ids sort in some order that is not the
        // chain's, and each layer row names its parent.
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for i in 0..6 {
            let tar = crate::apply::tests::TarMaker::new()
                .file(&format!("f{i}"), b"x", 0o644)
                .finish();
            diff_ids.push(Digest::of(&tar));
            let blob = store.content().write_bytes(&tar).unwrap();
            layers.push((blob, crate::spec::media::OCI_LAYER.to_string()));
        }
        let config = ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            rootfs: crate::spec::RootFs {
                kind: "layers".into(),
                diff_ids,
            },
            ..Default::default()
        };
        let config = store
            .content()
            .write_bytes(&serde_json::to_vec(&config).unwrap())
            .unwrap();
        let img = NewImage {
            config: config.clone(),
            manifest: None,
            layers,
            tags: vec![Reference::parse("chain:v1").unwrap()],
            repo_digests: vec![],
            parent: None,
        };
        store.commit_image(&img, &guard).unwrap();
        drop(guard);
        let chains: Vec<Digest> = store
            .get(&config)
            .unwrap()
            .layers
            .iter()
            .map(|l| l.chain_id.clone())
            .collect();
        assert_eq!(chains.len(), 6);
        let removed = store.remove("chain:v1", false).unwrap();
        assert_eq!(removed.len(), 2 + 6, "{removed:?}");
        for chain in &chains {
            assert!(!store.layer_dir(chain).exists());
        }
        assert!(store.content().list().unwrap().is_empty());
    }

    #[test]
    fn the_hello_world_image_is_reproducible() {
        let (c1, m1, l1) = crate::hello::blobs().unwrap();
        let (c2, m2, l2) = crate::hello::blobs().unwrap();
        assert_eq!((c1, m1, l1), (c2, m2, l2));
    }
}
