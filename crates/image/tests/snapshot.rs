//! Overlay snapshots of images, against the real kernel (root).

use std::fs;
use std::io::Read;
use std::path::Path;

use quai_image::digest::Digest;
use quai_image::spec::media;
use quai_image::store::{ImageStore, NewImage, StoreOptions};
use quai_image::{diff, snapshot};
use quai_testutil::{require_root, TempRoot};
use serde_json::json;

fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Stores an image made of `layers` and returns its ID.
fn make_image(store: &mut ImageStore, layers: &[Vec<u8>]) -> Digest {
    let guard = store.write_guard().unwrap();
    let mut blobs = Vec::new();
    for l in layers {
        blobs.push((
            store.content().write_bytes(l).unwrap(),
            media::OCI_LAYER.to_string(),
        ));
    }
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": blobs.iter().map(|(d, _)| d.to_string()).collect::<Vec<_>>()},
    });
    let config = store
        .content()
        .write_bytes(&serde_json::to_vec(&config).unwrap())
        .unwrap();
    let img = NewImage {
        config,
        manifest: None,
        layers: blobs,
        tags: vec![],
        repo_digests: vec![],
        parent: None,
    };
    store.commit_image(&img, &guard).unwrap()
}

fn open_store(tmp: &TempRoot) -> ImageStore {
    ImageStore::open(
        &tmp.path().join("root"),
        StoreOptions {
            no_seed: true,
            ..Default::default()
        },
    )
    .unwrap()
}

fn read(p: &Path) -> String {
    let mut s = String::new();
    fs::File::open(p).unwrap().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn an_image_of_128_layers_mounts_and_diffs() {
    require_root();
    let tmp = TempRoot::new("snap128");
    let mut store = open_store(&tmp);
    let mut layers = Vec::new();
    for i in 0..128 {
        let name = format!("layer-{i:03}");
        let shared = format!("written by layer {i}");
        let mut files: Vec<(&str, &[u8])> =
            vec![(&name, name.as_bytes()), ("shared", shared.as_bytes())];
        // Layer 100 removes layer 5's file.
        if i == 100 {
            files.push((".wh.layer-005", b""));
        }
        layers.push(layer(&files));
    }
    let id = make_image(&mut store, &layers);
    let container = tmp.path().join("container");
    let snap = snapshot::prepare_rootfs(&store, &id, &container).unwrap();
    let guard = Unmount(snap.rootfs.clone());
    assert_eq!(read(&snap.rootfs.join("layer-000")), "layer-000");
    assert_eq!(read(&snap.rootfs.join("layer-127")), "layer-127");
    assert_eq!(read(&snap.rootfs.join("shared")), "written by layer 127");
    assert!(
        !snap.rootfs.join("layer-005").exists(),
        "whiteout of layer 100 hides layer 5's file"
    );
    assert!(snap.rootfs.join("layer-006").exists());

    // Changes land in the container's upper dir and diff into a layer.
    fs::write(snap.rootfs.join("new-file"), b"new").unwrap();
    fs::remove_file(snap.rootfs.join("layer-042")).unwrap();
    assert!(snap.upper.join("new-file").is_file());
    let mut tar_bytes = Vec::new();
    diff::diff_dir(&snap.upper, &mut tar_bytes).unwrap();
    let names: Vec<String> = tar::Archive::new(&tar_bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [".wh.layer-042", "new-file"]);

    drop(guard);
    assert!(!snap.rootfs.join("layer-000").exists(), "unmounted");
    // The layers are shared: a second container of the same image.
    let snap2 = snapshot::prepare_rootfs(&store, &id, &tmp.path().join("c2")).unwrap();
    let _g2 = Unmount(snap2.rootfs.clone());
    assert!(!snap2.rootfs.join("new-file").exists());
    assert_eq!(store.layer_dirs(&id).unwrap().len(), 128);

    // Kernels without lowerdir+ get the option string with short names.
    let snap3 = snapshot::prepare_rootfs_with(
        &store,
        &id,
        &tmp.path().join("c3"),
        snapshot::MountMethod::Classic,
    )
    .unwrap();
    let _g3 = Unmount(snap3.rootfs.clone());
    assert_eq!(read(&snap3.rootfs.join("shared")), "written by layer 127");
    assert!(!snap3.rootfs.join("layer-005").exists());
    assert_eq!(read(&snap3.rootfs.join("layer-000")), "layer-000");
}

#[test]
fn the_classic_mount_option_string_works_for_small_images() {
    require_root();
    let tmp = TempRoot::new("snapclassic");
    let mut store = open_store(&tmp);
    let id = make_image(
        &mut store,
        &[
            layer(&[("a", b"1")]),
            layer(&[("b", b"2")]),
            layer(&[("a", b"3")]),
        ],
    );
    let snap = snapshot::prepare_rootfs_with(
        &store,
        &id,
        &tmp.path().join("c"),
        snapshot::MountMethod::Classic,
    )
    .unwrap();
    let _g = Unmount(snap.rootfs.clone());
    assert_eq!(read(&snap.rootfs.join("a")), "3");
    assert_eq!(read(&snap.rootfs.join("b")), "2");
}

#[test]
fn a_missing_image_or_layer_is_a_clear_error() {
    require_root();
    let tmp = TempRoot::new("snapmissing");
    let mut store = open_store(&tmp);
    let id = make_image(&mut store, &[layer(&[("a", b"1")])]);
    let layer_dir = store.layer_dirs(&id).unwrap().remove(0);
    fs::remove_dir_all(&layer_dir).unwrap();
    let err = snapshot::prepare_rootfs(&store, &id, &tmp.path().join("c")).unwrap_err();
    assert!(err.to_string().contains("is missing"), "{err}");
    let err = snapshot::prepare_rootfs(&store, &Digest::of(b"nothing"), &tmp.path().join("c"))
        .unwrap_err();
    assert!(err.to_string().contains("No such image"), "{err}");
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        snapshot::unmount(&self.0).unwrap();
    }
}
