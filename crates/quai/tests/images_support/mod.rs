//! Helpers for the image integration tests: a private state root per test,
//! a runner for the `quai` binary, and image archives built without any
//! registry (a static busybox packed as a docker archive).
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use quai_testutil::{require_root, TempRoot};
use serde_json::json;

pub const QUAI: &str = env!("CARGO_BIN_EXE_quai");

/// A private quai state root and the commands to drive it.
pub struct Quai {
    pub tmp: TempRoot,
}

impl Quai {
    pub fn new(name: &str) -> Quai {
        require_root();
        Quai {
            tmp: TempRoot::new(name),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(QUAI);
        c.env("QUAI_ROOT", self.root())
            .env("QUAI_RUNROOT", self.tmp.path().join("run"))
            .env_remove("QUAI_MAX_LAYER_SIZE");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run quai")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quai");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait quai");
        writer.join().expect("stdin writer");
        out
    }

    /// Runs quai and returns stdout, failing the test on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "quai {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs quai expecting failure; returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "quai {args:?} succeeded unexpectedly:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Names in a directory of the state root, sorted.
    pub fn names_in(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root().join(sub))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The store holds exactly what the listed images need: no temporary
    /// blob, no staging layer.
    pub fn assert_no_leftovers(&self) {
        for b in self.names_in("blobs/sha256") {
            assert!(!b.starts_with('.'), "temporary blob left: {b}");
        }
        for l in self.names_in("layers") {
            assert!(!l.starts_with('.'), "staging layer left: {l}");
        }
    }
}

/// A layer tar of `dir` (deterministic).
pub fn layer_of(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    quai_image::diff::diff_dir(dir, &mut out).expect("diff dir");
    out
}

pub fn sha256(bytes: &[u8]) -> String {
    quai_image::digest::Digest::of(bytes).hex().to_string()
}

/// A docker-archive (legacy layout, as `docker save` before 25 writes it)
/// holding one image with the given layer tars and tags.
pub fn docker_archive(
    layers: &[Vec<u8>],
    tags: &[&str],
    cmd: &[&str],
    labels: serde_json::Value,
) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256(l)))
        .collect();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-03-01T10:00:00Z",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().map(|_| json!({"created": "2024-03-01T10:00:00Z", "created_by": "COPY . /"})).collect::<Vec<_>>(),
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_hex = sha256(&config);
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, path, data).unwrap();
    };
    let mut layer_paths = Vec::new();
    for l in layers {
        let p = format!("{}/layer.tar", sha256(l));
        add(&mut b, &p, l);
        layer_paths.push(p);
    }
    add(&mut b, &format!("{config_hex}.json"), &config);
    let manifest =
        json!([{"Config": format!("{config_hex}.json"), "RepoTags": tags, "Layers": layer_paths}]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    b.into_inner().unwrap()
}

/// A busybox root file system's layer tar.
pub fn busybox_layer(tmp: &Path) -> Vec<u8> {
    let rootfs = tmp.join("bb-rootfs");
    quai_testutil::busybox_rootfs(&rootfs).expect("busybox rootfs");
    layer_of(&rootfs)
}

/// The image ID a docker archive's config gives.
pub fn archive_image_id(archive: &[u8]) -> String {
    let mut a = tar::Archive::new(archive);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        if p.ends_with(".json") && p != "manifest.json" {
            return format!("sha256:{}", p.trim_end_matches(".json"));
        }
    }
    panic!("no config in archive");
}
