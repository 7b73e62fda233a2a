//! Hostile and broken archives: a clear error naming what failed and why,
//! exit 125, and a store left as it was. Also: kill -9 in the middle of a
//! load, then load again.

mod images_support;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use images_support::*;
use serde_json::json;

/// The store holds hello-world only, and no temporary files.
fn assert_pristine(q: &Quai) {
    assert_eq!(
        q.ok(&["images", "--format", "{{.Repository}}"]),
        "hello-world\n"
    );
    assert_eq!(
        q.names_in("layers").len(),
        1,
        "layers: {:?}",
        q.names_in("layers")
    );
    assert_eq!(
        q.names_in("blobs/sha256").len(),
        3,
        "blobs: {:?}",
        q.names_in("blobs/sha256")
    );
    q.assert_no_leftovers();
}

fn load_file(q: &Quai, bytes: &[u8]) -> (i32, String) {
    let p = q.tmp.path().join("in.tar");
    fs::write(&p, bytes).unwrap();
    q.fails(&["load", "-i", p.to_str().unwrap()])
}

fn small_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(5);
    b.append_data(&mut h, "file", &b"hello"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn malformed_manifest_json_is_refused() {
    let q = Quai::new("bad-json");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(7);
    h.set_mode(0o644);
    b.append_data(&mut h, "manifest.json", &b"[{\"Conf"[..])
        .unwrap();
    let (code, err) = load_file(&q, &b.into_inner().unwrap());
    assert_eq!(code, 125);
    assert_eq!(err.trim(), "Error: archive manifest.json: malformed JSON: EOF while parsing a string at line 1 column 7");
    assert_pristine(&q);
    let (_, err) = load_file(
        &q,
        b"this is not a tar archive at all, just text that is long enough to not be one. "
            .repeat(20)
            .as_slice(),
    );
    assert!(err.starts_with("Error: "), "{err}");
    assert_pristine(&q);
}

#[test]
fn a_diff_id_mismatch_names_the_layer_and_stores_nothing() {
    let q = Quai::new("bad-diffid");
    let layer = small_layer();
    let mut archive = Vec::new();
    // Same archive, but the config claims another diff id.
    let good = format!("sha256:{}", sha256(&layer));
    let wrong = format!("sha256:{}", sha256(b"other"));
    let config_json = |id: &str| {
        serde_json::to_vec(&json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[id]}})).unwrap()
    };
    let cfg = config_json(&wrong);
    let mut b = tar::Builder::new(Vec::new());
    for (p, d) in [
        (format!("{}/layer.tar", sha256(&layer)), layer.clone()),
        (format!("{}.json", sha256(&cfg)), cfg.clone()),
        ("manifest.json".to_string(), serde_json::to_vec(&json!([{"Config": format!("{}.json", sha256(&cfg)), "RepoTags": ["x:1"], "Layers": [format!("{}/layer.tar", sha256(&layer))]}])).unwrap()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, &p, &d[..]).unwrap();
    }
    archive.extend(b.into_inner().unwrap());
    let (code, err) = load_file(&q, &archive);
    assert_eq!(code, 125);
    assert!(err.contains(&format!("layer {good}")), "{err}");
    assert!(
        err.contains("digest mismatch") && err.contains(&wrong),
        "{err}"
    );
    assert_pristine(&q);
}

#[test]
fn a_truncated_archive_is_refused() {
    let q = Quai::new("bad-trunc");
    let archive = docker_archive(&[vec![7u8; 300_000]], &["x:1"], &["/x"], json!({}));
    let (code, err) = load_file(&q, &archive[..archive.len() / 2]);
    assert_eq!(code, 125);
    assert!(
        err.contains("truncated") || err.contains("not a valid tar"),
        "{err}"
    );
    assert_pristine(&q);
}

fn oci_layout(dir: &Path, blobs: &[(&[u8], Option<&str>)], index: serde_json::Value) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for (data, name) in blobs {
        let name = name.map(str::to_string).unwrap_or_else(|| sha256(data));
        fs::write(dir.join("blobs/sha256").join(name), data).unwrap();
    }
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn oci_layouts_with_missing_or_corrupt_blobs_are_refused() {
    let q = Quai::new("bad-oci");
    let layer = small_layer();
    let config = serde_json::to_vec(&json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[format!("sha256:{}", sha256(&layer))]}})).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", sha256(&config)), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{}", sha256(&layer)), "size": layer.len()}],
    })).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", sha256(&manifest)), "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "oci/img:1"}}]});

    // The good layout loads (and names the image from its annotation).
    let good = q.tmp.path().join("good");
    oci_layout(
        &good,
        &[(&layer, None), (&config, None), (&manifest, None)],
        index.clone(),
    );
    let q_ok = Quai::new("bad-oci-ok");
    assert_eq!(
        q_ok.ok(&["load", "-i", good.to_str().unwrap()]),
        "Loaded image: oci/img:1\n"
    );

    // A missing layer blob.
    let missing = q.tmp.path().join("missing");
    oci_layout(
        &missing,
        &[(&config, None), (&manifest, None)],
        index.clone(),
    );
    let (code, err) = q.fails(&["load", "-i", missing.to_str().unwrap()]);
    assert_eq!(code, 125);
    assert!(
        err.contains(&format!("blob sha256:{} is missing", sha256(&layer))),
        "{err}"
    );
    assert_pristine(&q);

    // A blob whose content does not match its name.
    let corrupt = q.tmp.path().join("corrupt");
    let name = sha256(&layer);
    oci_layout(
        &corrupt,
        &[
            (b"tampered", Some(&name)),
            (&config, None),
            (&manifest, None),
        ],
        index.clone(),
    );
    let (_, err) = q.fails(&["load", "-i", corrupt.to_str().unwrap()]);
    assert!(
        err.contains("digest mismatch") && err.contains(&name),
        "{err}"
    );
    assert_pristine(&q);

    // Malformed index.json.
    let broken = q.tmp.path().join("broken");
    oci_layout(
        &broken,
        &[(&layer, None)],
        json!({"schemaVersion": 2, "manifests": "nope"}),
    );
    let (_, err) = q.fails(&["load", "-i", broken.to_str().unwrap()]);
    assert!(
        err.contains("index.json") && err.contains("malformed"),
        "{err}"
    );
    assert_pristine(&q);

    // A platform that the layout does not have.
    let (_, err) = q.fails(&[
        "load",
        "--platform",
        "linux/s390x",
        "-i",
        good.to_str().unwrap(),
    ]);
    assert!(err.contains("no image for platform linux/s390x"), "{err}");
    assert_pristine(&q);
}

#[test]
fn a_hostile_layer_in_an_archive_is_refused() {
    let q = Quai::new("bad-hostile");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.as_old_mut().name[..13].copy_from_slice(b"../../escaped");
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let archive = docker_archive(
        std::slice::from_ref(&layer),
        &["evil:1"],
        &["/x"],
        json!({}),
    );
    let (code, err) = load_file(&q, &archive);
    assert_eq!(code, 125);
    assert!(
        err.contains(&format!("layer sha256:{}", sha256(&layer))) && err.contains("\"..\""),
        "{err}"
    );
    assert!(!q.tmp.path().join("escaped").exists());
    assert_pristine(&q);
}

#[test]
fn a_decompression_bomb_is_stopped_by_the_configured_limit() {
    let q = Quai::new("bad-bomb");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(64 << 20);
    b.append_data(&mut h, "zeros", std::io::repeat(0).take_exact(64 << 20))
        .unwrap();
    let plain = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 200_000);
    let archive = docker_archive(&[bomb], &["bomb:1"], &["/x"], json!({}));
    // docker_archive computed diff ids from the compressed bytes; the limit
    // trips before the diff id is ever compared.
    let p = q.tmp.path().join("bomb.tar");
    fs::write(&p, &archive).unwrap();
    let out = q
        .command()
        .args(["load", "-i", p.to_str().unwrap()])
        .env("QUAI_MAX_LAYER_SIZE", "1000000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeds the limit of 1000000 bytes"), "{err}");
    assert_pristine(&q);
    let out = q
        .command()
        .args(["images"])
        .env("QUAI_MAX_LAYER_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("QUAI_MAX_LAYER_SIZE"));
}

trait TakeExact: std::io::Read + Sized {
    fn take_exact(self, n: u64) -> std::io::Take<Self> {
        self.take(n)
    }
}
impl<R: std::io::Read> TakeExact for R {}

/// Fast deterministic filler that gzip cannot shrink much.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A layer with many files and a big one: slow enough to kill mid-way.
fn big_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..3000 {
        let data = noise(2000, i);
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, format!("many/{i}"), &data[..])
            .unwrap();
    }
    let data = noise(150 << 20, 99);
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "big", &data[..]).unwrap();
    b.into_inner().unwrap()
}

/// Starts `quai load`, waits until `stage` shows up in the store, kills
/// it with SIGKILL. Returns false when the load finished before the kill.
fn kill_during(q: &Quai, archive: &Path, stage: &dyn Fn(&Quai) -> bool) -> bool {
    let mut child = q
        .command()
        .args(["load", "-q", "-i", archive.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if stage(q) {
            child.kill().unwrap();
            let status = child.wait().unwrap();
            return status.signal() == Some(9);
        }
        if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn kill_9_mid_load_then_load_again() {
    let q = Quai::new("bad-kill");
    q.ok(&["images"]); // the store exists before the load starts
    let layer = big_layer();
    let archive = docker_archive(
        std::slice::from_ref(&layer),
        &["big:1"],
        &["/big"],
        json!({}),
    );
    let path = q.tmp.path().join("big.tar");
    fs::write(&path, &archive).unwrap();
    drop(archive);
    let id = {
        let a = fs::read(&path).unwrap();
        archive_image_id(&a)
    };

    let ingesting = |q: &Quai| {
        q.names_in("blobs/sha256")
            .iter()
            .any(|n| n.starts_with(".ingest-"))
    };
    let unpacking = |q: &Quai| {
        q.names_in("layers")
            .iter()
            .any(|n| n.starts_with(".staging-"))
    };
    let mut killed_ingest = false;
    let mut killed_unpack = false;
    for _ in 0..5 {
        if !killed_ingest {
            killed_ingest = kill_during(&q, &path, &ingesting);
        }
        if !killed_unpack {
            killed_unpack = kill_during(&q, &path, &unpacking);
        }
        // Whatever the killed loads left, the store answers and still
        // holds only complete images.
        let listed = q.ok(&["images", "--format", "{{.Repository}}"]);
        assert!(
            listed == "hello-world\n" || listed.contains("big"),
            "{listed}"
        );
        if killed_ingest && killed_unpack {
            break;
        }
        // A load that won the race completed: start over.
        if listed.contains("big") {
            q.ok(&["rmi", "big:1"]);
        }
    }
    assert!(
        killed_ingest && killed_unpack,
        "could not kill the load mid-way"
    );

    assert_eq!(
        q.ok(&["load", "-q", "-i", path.to_str().unwrap()]),
        "Loaded image: big:1\n"
    );
    assert_eq!(
        q.ok(&["image", "inspect", "-f", "{{.Id}}", "big:1"]).trim(),
        id
    );
    let layer_dir = q.root().join("layers").join(sha256(&layer));
    assert_eq!(
        fs::metadata(layer_dir.join("big")).unwrap().len(),
        150 << 20
    );
    assert_eq!(fs::read_dir(layer_dir.join("many")).unwrap().count(), 3000);
    // GC removes what the killed loads left.
    q.ok(&["image", "prune", "-f"]);
    q.assert_no_leftovers();
    assert_eq!(q.names_in("layers").len(), 2);
}
