//! Loading and saving image archives: Docker's `docker save` format (the
//! legacy layout with `manifest.json` + `<id>/layer.tar`, and the OCI-layout
//! one Docker 25+ writes) and OCI image layouts (`index.json` + `blobs/`),
//! as a tar stream (plain, gzip or zstd) or a directory.
//!
//! Loading reads the stream once: every file of the archive goes into the
//! content store as it passes (hashed on the way, verified against its name
//! under `blobs/sha256/`), small metadata files stay in memory. Then the
//! manifests are read and the store unpacks and records each image.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::compression::{decompress, Compression};
use crate::digest::{is_sha256_hex, Digest};
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::spec::{
    self, media, Descriptor, Index, Manifest, ManifestOrIndex, Platform, MAX_JSON_SIZE,
};
use crate::store::{ImageRecord, ImageStore, NewImage};

const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Files of at most this size stay in memory while loading (metadata).
const SMALL_FILE: u64 = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Which image of a multi-platform index to load (default: the host's).
    pub platform: Option<Platform>,
}

/// One image an archive held.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub id: Digest,
    pub tags: Vec<Reference>,
}

/// Progress of a load, for a progress bar.
#[derive(Debug, Clone)]
pub enum LoadProgress {
    /// Bytes of the archive read so far.
    Read(u64),
    /// Starting to unpack an image with this many layers.
    Unpacking(usize),
}

/// `docker manifest.json` entry.
#[derive(Debug, Serialize, Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

enum FileRef {
    Stored(Digest),
    Memory(Vec<u8>),
    Alias(String),
}

/// What an archive holds, by path.
#[derive(Default)]
struct Collected {
    files: HashMap<String, FileRef>,
}

fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

impl Collected {
    fn lookup(&self, path: &str) -> Option<&FileRef> {
        let mut p = normalize(path);
        for _ in 0..16 {
            match self.files.get(&p)? {
                FileRef::Alias(target) => p = target.clone(),
                other => return Some(other),
            }
        }
        None
    }

    /// The bytes of a small file.
    fn read_small(&self, store: &ImageStore, path: &str) -> Result<Vec<u8>> {
        match self.lookup(path) {
            Some(FileRef::Memory(b)) => Ok(b.clone()),
            Some(FileRef::Stored(d)) => store.content().read(d, MAX_JSON_SIZE),
            _ => Err(Error::invalid("archive", format!("{path} is missing"))),
        }
    }

    /// The digest of a file, putting it in the content store if only in
    /// memory.
    fn store(&self, store: &ImageStore, path: &str) -> Result<Digest> {
        match self.lookup(path) {
            Some(FileRef::Stored(d)) => Ok(d.clone()),
            Some(FileRef::Memory(b)) => store.content().write_bytes(b),
            _ => Err(Error::invalid("archive", format!("{path} is missing"))),
        }
    }

    /// A blob of an OCI layout, by digest.
    fn blob(&self, store: &ImageStore, d: &Digest) -> Result<Digest> {
        let path = format!("blobs/sha256/{}", d.hex());
        if self.lookup(&path).is_none() {
            if store.content().contains(d) {
                return Ok(d.clone());
            }
            return Err(Error::invalid("archive", format!("blob {d} is missing")));
        }
        self.store(store, &path)
    }

    fn has(&self, path: &str) -> bool {
        self.lookup(path).is_some()
    }
}

/// Loads every image of an archive read from `input` (tar, possibly
/// compressed).
pub fn load(
    store: &mut ImageStore,
    input: impl Read,
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Vec<LoadedImage>> {
    let guard = store.write_guard()?;
    let (_, plain) = decompress(input).ctx(|| "read archive".into())?;
    let mut counting = CountingReader {
        inner: plain,
        count: 0,
        last_report: 0,
        progress,
    };
    let result = collect_tar(store, &mut counting)
        .and_then(|collected| register(store, &collected, opts, counting.progress, &guard));
    drop(guard);
    collect_garbage_on_error(store, result)
}

/// After a failed load, removes the blobs it stored: a failed load leaves
/// the store as it was. (GC waits for concurrent writers, so it cannot take
/// what another load is writing.)
fn collect_garbage_on_error<T>(store: &mut ImageStore, result: Result<T>) -> Result<T> {
    if result.is_err() {
        if let Err(e) = store.gc() {
            tracing::warn!("cleaning up after a failed load: {e}");
        }
    }
    result
}

/// Loads every image of an OCI layout (or extracted docker archive)
/// directory.
pub fn load_dir(
    store: &mut ImageStore,
    dir: &Path,
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Vec<LoadedImage>> {
    let guard = store.write_guard()?;
    let result = collect_dir(store, dir).and_then(|c| register(store, &c, opts, progress, &guard));
    drop(guard);
    collect_garbage_on_error(store, result)
}

fn collect_dir(store: &ImageStore, dir: &Path) -> Result<Collected> {
    let mut collected = Collected::default();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for entry in fs::read_dir(&d).at("read directory", &d)? {
            let entry = entry.at("read directory", &d)?;
            let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let meta = fs::metadata(entry.path()).at("stat", &entry.path())?;
            if meta.is_dir() {
                stack.push((entry.path(), format!("{rel}/")));
            } else if meta.is_file() {
                let mut f = File::open(entry.path()).at("open", &entry.path())?;
                let r = collect_file(store, &rel, meta.len(), &mut f)?;
                collected.files.insert(normalize(&rel), r);
            }
        }
    }
    Ok(collected)
}

struct CountingReader<'p, R> {
    inner: R,
    count: u64,
    last_report: u64,
    progress: &'p mut dyn FnMut(LoadProgress),
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count - self.last_report >= 4 << 20 {
            self.last_report = self.count;
            (self.progress)(LoadProgress::Read(self.count));
        }
        Ok(n)
    }
}

fn collect_file(store: &ImageStore, path: &str, size: u64, r: &mut dyn Read) -> Result<FileRef> {
    let norm = normalize(path);
    let expected = norm
        .strip_prefix("blobs/sha256/")
        .filter(|h| is_sha256_hex(h))
        .map(Digest::from_hex)
        .transpose()?;
    if expected.is_none() && size <= SMALL_FILE {
        let mut buf = Vec::with_capacity(size as usize);
        r.take(size)
            .read_to_end(&mut buf)
            .ctx(|| format!("read {path} from archive"))?;
        if buf.len() as u64 != size {
            return Err(Error::invalid("archive", format!("{path} is truncated")));
        }
        return Ok(FileRef::Memory(buf));
    }
    if let Some(d) = &expected {
        if store.content().contains(d) {
            io::copy(&mut r.take(size), &mut io::sink())
                .ctx(|| format!("read {path} from archive"))?;
            return Ok(FileRef::Stored(d.clone()));
        }
    }
    let mut w = store.content().ingest(expected.clone())?;
    w.expect_size(size);
    io::copy(&mut r.take(size), &mut w).ctx(|| format!("read {path} from archive"))?;
    let (d, _) = w.commit().map_err(|e| match e {
        Error::SizeMismatch { .. } => Error::invalid("archive", format!("{path} is truncated")),
        Error::DigestMismatch {
            expected, actual, ..
        } => Error::DigestMismatch {
            what: format!("archive entry {path}"),
            expected,
            actual,
        },
        e => e,
    })?;
    Ok(FileRef::Stored(d))
}

fn collect_tar(store: &ImageStore, input: &mut dyn Read) -> Result<Collected> {
    let mut collected = Collected::default();
    let mut archive = tar::Archive::new(input);
    let bad = |e: io::Error| Error::invalid("archive", format!("not a valid tar archive: {e}"));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let norm = normalize(&path);
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                let r = collect_file(store, &path, size, &mut entry)?;
                collected.files.insert(norm, r);
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let dir = norm.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let resolved = if target.starts_with('/') {
                    normalize(&target)
                } else {
                    normalize(&format!("{dir}/{target}"))
                };
                collected.files.insert(norm, FileRef::Alias(resolved));
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                collected
                    .files
                    .insert(norm, FileRef::Alias(normalize(&target)));
            }
            _ => {}
        }
    }
    Ok(collected)
}

/// An image found in an archive, before it is stored.
struct Found {
    new: NewImage,
    what: String,
}

fn register(
    store: &mut ImageStore,
    c: &Collected,
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
    guard: &crate::store::WriteGuard,
) -> Result<Vec<LoadedImage>> {
    let found = if c.has("manifest.json") {
        from_docker_manifest(store, c)?
    } else if c.has("index.json") {
        from_oci_index(store, c, opts)?
    } else {
        return Err(Error::invalid(
            "archive",
            "neither manifest.json (docker save) nor index.json (OCI image layout) found",
        ));
    };
    // An explicit --platform also holds for images that came without an
    // index saying which platform they are for: their config says it.
    let found = match &opts.platform {
        None => found,
        Some(wanted) => {
            let mut keep = Vec::new();
            for f in found {
                let bytes = store.content().read(&f.new.config, MAX_JSON_SIZE)?;
                let config = spec::ImageConfig::parse(&format!("config of {}", f.what), &bytes)?;
                if config.platform().matches(wanted) {
                    keep.push(f);
                }
            }
            if keep.is_empty() {
                return Err(Error::invalid(
                    "archive",
                    format!("no image for platform {wanted}"),
                ));
            }
            keep
        }
    };
    let mut out = Vec::new();
    for f in found {
        progress(LoadProgress::Unpacking(f.new.layers.len()));
        let id = store.commit_image(&f.new, guard).map_err(|e| match e {
            Error::Invalid { what, why } if what.starts_with("image") => Error::Invalid {
                what: format!("{} ({what})", f.what),
                why,
            },
            e => e,
        })?;
        out.push(LoadedImage {
            id,
            tags: f.new.tags.clone(),
        });
    }
    Ok(out)
}

/// The media type of a layer blob, from its content.
fn layer_media_type(store: &ImageStore, blob: &Digest) -> Result<String> {
    let mut head = [0u8; 4];
    let mut f = store.content().open_blob(blob)?;
    let n = f.read(&mut head).ctx(|| format!("read layer {blob}"))?;
    Ok(match Compression::detect(&head[..n]) {
        Compression::None => media::OCI_LAYER,
        Compression::Gzip => media::OCI_LAYER_GZIP,
        Compression::Zstd => media::OCI_LAYER_ZSTD,
    }
    .to_string())
}

fn from_docker_manifest(store: &ImageStore, c: &Collected) -> Result<Vec<Found>> {
    let bytes = c.read_small(store, "manifest.json")?;
    let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid("archive manifest.json", format!("malformed JSON: {e}")))?;
    if entries.is_empty() {
        return Err(Error::invalid("archive manifest.json", "lists no image"));
    }
    // Docker 25+ archives also carry an OCI index naming each manifest.
    let manifests_by_config = oci_manifests_by_config(store, c);
    let mut out = Vec::new();
    for e in entries {
        let what = format!("image {}", e.config);
        let config = c
            .store(store, &e.config)
            .map_err(|err| Error::invalid(&what, format!("config: {err}")))?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let d = c
                .store(store, l)
                .map_err(|err| Error::invalid(&what, format!("layer: {err}")))?;
            let mt = layer_media_type(store, &d)?;
            layers.push((d, mt));
        }
        let mut tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            tags.push(
                Reference::parse_tagged(&t)
                    .map_err(|err| Error::invalid(&what, format!("tag {t:?}: {err}")))?,
            );
        }
        out.push(Found {
            new: NewImage {
                manifest: manifests_by_config.get(&config).cloned(),
                config,
                layers,
                tags,
                repo_digests: Vec::new(),
                parent: None,
            },
            what,
        });
    }
    Ok(out)
}

fn oci_manifests_by_config(store: &ImageStore, c: &Collected) -> HashMap<Digest, Digest> {
    let mut out = HashMap::new();
    let Ok(bytes) = c.read_small(store, "index.json") else {
        return out;
    };
    let Ok(index) = serde_json::from_slice::<Index>(&bytes) else {
        return out;
    };
    for m in index.manifests {
        if !media::is_manifest(&m.media_type) {
            continue;
        }
        let Ok(d) = c.blob(store, &m.digest) else {
            continue;
        };
        if let Ok(bytes) = store.content().read(&d, MAX_JSON_SIZE) {
            if let Ok(ManifestOrIndex::Manifest(man)) =
                spec::parse_manifest_or_index("manifest", &bytes)
            {
                out.insert(man.config.digest, d);
            }
        }
    }
    out
}

fn from_oci_index(store: &ImageStore, c: &Collected, opts: &LoadOptions) -> Result<Vec<Found>> {
    let layout = c.read_small(store, "oci-layout").ok();
    if let Some(l) = layout {
        let v: serde_json::Value = serde_json::from_slice(&l)
            .map_err(|e| Error::invalid("archive oci-layout", format!("malformed JSON: {e}")))?;
        if v.get("imageLayoutVersion")
            .and_then(|v| v.as_str())
            .is_none()
        {
            return Err(Error::invalid(
                "archive oci-layout",
                "no imageLayoutVersion",
            ));
        }
    }
    let bytes = c.read_small(store, "index.json")?;
    let index = match spec::parse_manifest_or_index("archive index.json", &bytes)? {
        ManifestOrIndex::Index(i) => i,
        ManifestOrIndex::Manifest(_) => {
            return Err(Error::invalid(
                "archive index.json",
                "is a manifest, not an index",
            ))
        }
    };
    let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
    let mut out = Vec::new();
    for desc in &index.manifests {
        if let Some(p) = &desc.platform {
            if !p.matches(&wanted) {
                continue;
            }
        }
        let name = image_name(desc);
        let manifest_digest = select_manifest(store, c, desc, &wanted, 0)?;
        let bytes = store.content().read(&manifest_digest, MAX_JSON_SIZE)?;
        let what = format!("manifest {manifest_digest}");
        let manifest: Manifest = match spec::parse_manifest_or_index(&what, &bytes)? {
            ManifestOrIndex::Manifest(m) => m,
            ManifestOrIndex::Index(_) => {
                return Err(Error::invalid(
                    what,
                    "nested index where a manifest was expected",
                ))
            }
        };
        let new = image_from_manifest(store, c, &manifest, manifest_digest.clone(), name)?;
        out.push(Found {
            new,
            what: format!("image {}", manifest_digest),
        });
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "archive index.json",
            format!("no image for platform {wanted}"),
        ));
    }
    Ok(out)
}

/// The reference an index entry names, if it names a full one.
fn image_name(desc: &Descriptor) -> Option<Reference> {
    let ann = desc.annotations.as_ref()?;
    if let Some(n) = ann.get(ANNOTATION_IMAGE_NAME) {
        return Reference::parse_tagged(n).ok();
    }
    // skopeo/umoci write whatever followed "oci:DIR:"; a bare tag such as
    // "latest" names no repository.
    let n = ann.get(ANNOTATION_REF_NAME)?;
    if n.contains(':') || n.contains('/') {
        Reference::parse_tagged(n).ok()
    } else {
        None
    }
}

fn select_manifest(
    store: &ImageStore,
    c: &Collected,
    desc: &Descriptor,
    wanted: &Platform,
    depth: u32,
) -> Result<Digest> {
    let d = c.blob(store, &desc.digest)?;
    if !media::is_index(&desc.media_type) {
        return Ok(d);
    }
    if depth > 4 {
        return Err(Error::invalid(
            format!("index {d}"),
            "indexes nested too deeply",
        ));
    }
    let bytes = store.content().read(&d, MAX_JSON_SIZE)?;
    let index = match spec::parse_manifest_or_index(&format!("index {d}"), &bytes)? {
        ManifestOrIndex::Index(i) => i,
        ManifestOrIndex::Manifest(_) => return Ok(d),
    };
    let pick = index
        .manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p.matches(wanted)))
        .ok_or_else(|| {
            Error::invalid(
                format!("index {d}"),
                format!("no image for platform {wanted}"),
            )
        })?;
    select_manifest(store, c, pick, wanted, depth + 1)
}

fn image_from_manifest(
    store: &ImageStore,
    c: &Collected,
    manifest: &Manifest,
    manifest_digest: Digest,
    name: Option<Reference>,
) -> Result<NewImage> {
    let config = c.blob(store, &manifest.config.digest)?;
    let mut layers = Vec::new();
    for l in &manifest.layers {
        if !media::is_layer(&l.media_type) {
            return Err(Error::invalid(
                format!("manifest {manifest_digest}"),
                format!("unsupported layer media type {:?}", l.media_type),
            ));
        }
        let d = c.blob(store, &l.digest)?;
        let size = store.content().size(&d)?;
        if size != l.size {
            return Err(Error::SizeMismatch {
                what: format!("layer {d}"),
                expected: l.size,
                actual: size,
            });
        }
        layers.push((d, l.media_type.clone()));
    }
    let repo_digests = name.iter().map(|n| n.name()).collect();
    Ok(NewImage {
        config,
        manifest: Some(manifest_digest),
        layers,
        tags: name.into_iter().collect(),
        repo_digests,
        parent: None,
    })
}

/// Where `save` writes: a tar stream or a directory.
pub trait ArchiveSink {
    fn add_dir(&mut self, path: &str) -> Result<()>;
    fn add_file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> Result<()>;
}

/// Writes an archive as a tar stream with fixed metadata (reproducible).
pub struct TarSink<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarSink<W> {
    pub fn new(w: W) -> Self {
        TarSink {
            builder: tar::Builder::new(w),
        }
    }
    pub fn finish(self) -> Result<W> {
        self.builder.into_inner().ctx(|| "finish archive".into())
    }
}

impl<W: Write> ArchiveSink for TarSink<W> {
    fn add_dir(&mut self, path: &str) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_mtime(0);
        h.set_size(0);
        self.builder
            .append_data(&mut h, path, io::empty())
            .ctx(|| format!("write {path}"))
    }
    fn add_file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(size);
        self.builder
            .append_data(&mut h, path, data)
            .ctx(|| format!("write {path}"))
    }
}

/// Writes an archive as a directory (an OCI image layout).
pub struct DirSink {
    root: std::path::PathBuf,
}

impl DirSink {
    pub fn new(root: &Path) -> Result<DirSink> {
        fs::create_dir_all(root).at("create directory", root)?;
        Ok(DirSink {
            root: root.to_path_buf(),
        })
    }
}

impl ArchiveSink for DirSink {
    fn add_dir(&mut self, path: &str) -> Result<()> {
        let p = self.root.join(path);
        fs::create_dir_all(&p).at("create directory", &p)
    }
    fn add_file(&mut self, path: &str, _size: u64, data: &mut dyn Read) -> Result<()> {
        let p = self.root.join(path);
        let mut f = File::create(&p).at("create", &p)?;
        io::copy(data, &mut f).at("write", &p)?;
        f.sync_all().at("fsync", &p)
    }
}

/// Writes the images `names` resolve to as one archive that both `docker
/// load` (any version: `manifest.json`) and OCI tools (`index.json`) read.
pub fn save(store: &ImageStore, names: &[String], sink: &mut dyn ArchiveSink) -> Result<()> {
    // Resolve everything first: a bad name writes nothing.
    let mut images: Vec<(ImageRecord, Vec<Reference>)> = Vec::new();
    for name in names {
        let record = store.resolve(name)?;
        let named: Vec<Reference> = match Reference::parse(name) {
            Ok(r) if !is_id_like(name, &record.id) => match r.digest() {
                Some(_) => record.tags.clone(),
                None => vec![r.with_default_tag()],
            },
            _ => record.tags.clone(),
        };
        if let Some((_, tags)) = images.iter_mut().find(|(r, _)| r.id == record.id) {
            for t in named {
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
        } else {
            images.push((record, named));
        }
    }
    // Blob digest -> its bytes when not in the store (generated manifests).
    let mut blobs: BTreeMap<Digest, Option<Vec<u8>>> = BTreeMap::new();
    let mut docker_manifest = Vec::new();
    let mut index_entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (record, tags) in &images {
        let (manifest_digest, generated) = manifest_for(store, record)?;
        let manifest_size = match &generated {
            Some(b) => b.len() as u64,
            None => store.content().size(&manifest_digest)?,
        };
        blobs.insert(record.id.clone(), None);
        blobs.insert(manifest_digest.clone(), generated);
        for l in &record.layers {
            blobs.insert(l.blob.clone(), None);
        }
        let descriptor = |annotations| Descriptor {
            media_type: media::OCI_MANIFEST.to_string(),
            digest: manifest_digest.clone(),
            size: manifest_size,
            annotations,
            platform: None,
            artifact_type: None,
            urls: None,
        };
        if tags.is_empty() {
            index_entries.push(descriptor(None));
        }
        for t in tags {
            let mut ann = BTreeMap::new();
            ann.insert(ANNOTATION_IMAGE_NAME.to_string(), t.to_string());
            ann.insert(
                ANNOTATION_REF_NAME.to_string(),
                t.tag().unwrap_or("latest").to_string(),
            );
            index_entries.push(descriptor(Some(ann)));
            if let Some(top) = record.layers.last() {
                repositories.entry(t.familiar_name()).or_default().insert(
                    t.tag().unwrap_or("latest").to_string(),
                    top.blob.hex().to_string(),
                );
            }
        }
        docker_manifest.push(DockerManifestEntry {
            config: format!("blobs/sha256/{}", record.id.hex()),
            repo_tags: Some(tags.iter().map(Reference::familiar).collect()),
            layers: record
                .layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.blob.hex()))
                .collect(),
        });
    }
    sink.add_dir("blobs/")?;
    sink.add_dir("blobs/sha256/")?;
    for (d, bytes) in &blobs {
        let path = format!("blobs/sha256/{}", d.hex());
        match bytes {
            Some(b) => sink.add_file(&path, b.len() as u64, &mut &b[..])?,
            None => {
                let size = store.content().size(d)?;
                let mut f = store.content().open_blob(d)?;
                sink.add_file(&path, size, &mut f)?;
            }
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_string()),
        manifests: index_entries,
        annotations: None,
    };
    let json = |v: &dyn erased::Json| v.to_json();
    for (path, bytes) in [
        ("index.json", json(&index)),
        ("manifest.json", json(&docker_manifest)),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("repositories", json(&repositories)),
    ] {
        sink.add_file(path, bytes.len() as u64, &mut &bytes[..])?;
    }
    Ok(())
}

mod erased {
    /// Serializes anything serde can, for a list of differently typed files.
    pub trait Json {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

fn is_id_like(name: &str, id: &Digest) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    !hex.is_empty() && id.hex().starts_with(hex)
}

/// The stored manifest of an image, or the bytes of a new OCI manifest for
/// it (an image loaded from a legacy docker archive came without one).
fn manifest_for(store: &ImageStore, record: &ImageRecord) -> Result<(Digest, Option<Vec<u8>>)> {
    if let Some(d) = &record.manifest_digest {
        if store.content().contains(d) {
            return Ok((d.clone(), None));
        }
    }
    let config_size = store.content().size(&record.id)?;
    let bytes = store.config_bytes(&record.id)?;
    let config_media_type = if serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("container_config").map(|_| ()))
        .is_some()
    {
        media::DOCKER_CONFIG
    } else {
        media::OCI_CONFIG
    };
    let mut layers = Vec::new();
    for l in &record.layers {
        layers.push(Descriptor {
            media_type: l.media_type.clone(),
            digest: l.blob.clone(),
            size: store.content().size(&l.blob)?,
            annotations: None,
            platform: None,
            artifact_type: None,
            urls: None,
        });
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        config: Descriptor {
            media_type: config_media_type.to_string(),
            digest: record.id.clone(),
            size: config_size,
            annotations: None,
            platform: None,
            artifact_type: None,
            urls: None,
        },
        layers,
        annotations: None,
    };
    let bytes =
        serde_json::to_vec(&manifest).map_err(|e| Error::invalid("manifest", e.to_string()))?;
    Ok((Digest::of(&bytes), Some(bytes)))
}
