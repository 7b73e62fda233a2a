//! Interoperability with the real tools from Debian, all local: dockerd
//! (docker.io, a private instance per test), podman, skopeo and umoci.

mod images_support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use images_support::*;
use quai_testutil::TempRoot;
use serde_json::json;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout)
        .unwrap()
        .trim()
        .to_string()
}

/// A private dockerd whose state lives in a temporary root of the test.
struct Dockerd {
    inner: quai_testutil::dockerd::Dockerd,
    _tmp: TempRoot,
}

impl Dockerd {
    fn start() -> Dockerd {
        let tmp = TempRoot::new("dockerd");
        let inner = quai_testutil::dockerd::Dockerd::start(tmp.path());
        Dockerd { inner, _tmp: tmp }
    }

    fn docker(&self) -> Command {
        self.inner.docker()
    }
}

/// FROM scratch + COPY busybox, built by dockerd; returns its image ID.
fn docker_build_busybox(d: &Dockerd, dir: &Path, tag: &str) -> String {
    fs::create_dir_all(dir).unwrap();
    fs::copy(quai_testutil::BUSYBOX, dir.join("busybox")).unwrap();
    fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY busybox /bin/busybox\nLABEL built.by=dockerd\nCMD [\"/bin/busybox\", \"echo\", \"hello from busybox\"]\n").unwrap();
    stdout(d.docker().args(["build", "-q", "-t", tag]).arg(dir))
}

#[test]
fn docker_and_quai_exchange_images_with_the_same_id() {
    let q = Quai::new("interop-docker");
    let d = Dockerd::start();
    let id = docker_build_busybox(&d, &q.tmp.path().join("ctx"), "bb-docker:1");
    let saved = q.tmp.path().join("docker-saved.tar");
    run(d
        .docker()
        .args(["save", "-o"])
        .arg(&saved)
        .arg("bb-docker:1"));

    // docker → quai
    assert_eq!(
        q.ok(&["load", "-i", saved.to_str().unwrap()]),
        "Loaded image: bb-docker:1\n"
    );
    assert_eq!(
        q.ok(&["image", "inspect", "-f", "{{.Id}}", "bb-docker:1"])
            .trim(),
        id
    );
    assert_eq!(
        q.ok(&[
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"built.by\"}}",
            "bb-docker:1"
        ])
        .trim(),
        "dockerd"
    );
    let layer = q.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.GraphDriver.Data.UpperDir}}",
        "bb-docker:1",
    ]);
    let busybox = Path::new(layer.trim()).join("bin/busybox");
    assert_eq!(
        fs::read(&busybox).unwrap(),
        fs::read(quai_testutil::BUSYBOX).unwrap()
    );
    let echo = Command::new(&busybox)
        .args(["echo", "runs"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&echo.stdout), "runs\n");

    // quai → docker: an image docker never saw, and the one it built.
    let own = busybox_layer(q.tmp.path());
    let archive = docker_archive(
        &[own],
        &["bb-quai:2"],
        &["/bin/busybox", "echo", "from quai"],
        json!({}),
    );
    let own_id = archive_image_id(&archive);
    let p = q.tmp.path().join("own.tar");
    fs::write(&p, archive).unwrap();
    q.ok(&["load", "-i", p.to_str().unwrap()]);
    run(d.docker().args(["rmi", "bb-docker:1"]));
    let out = q.tmp.path().join("quai-saved.tar");
    q.ok(&[
        "save",
        "-o",
        out.to_str().unwrap(),
        "bb-quai:2",
        "bb-docker:1",
    ]);
    let loaded = stdout(d.docker().args(["load", "-i"]).arg(&out));
    assert!(
        loaded.contains("Loaded image: bb-quai:2") && loaded.contains("Loaded image: bb-docker:1"),
        "{loaded}"
    );
    assert_eq!(
        stdout(
            d.docker()
                .args(["image", "inspect", "-f", "{{.Id}}", "bb-quai:2"])
        ),
        own_id
    );
    assert_eq!(
        stdout(
            d.docker()
                .args(["image", "inspect", "-f", "{{.Id}}", "bb-docker:1"])
        ),
        id
    );
    assert_eq!(
        stdout(
            d.docker()
                .args(["run", "--rm", "--network", "none", "bb-quai:2"])
        ),
        "from quai"
    );
    assert_eq!(
        stdout(
            d.docker()
                .args(["run", "--rm", "--network", "none", "bb-docker:1"])
        ),
        "hello from busybox"
    );
    // The embedded hello-world runs under docker too.
    q.ok(&["save", "-o", out.to_str().unwrap(), "hello-world"]);
    run(d.docker().args(["load", "-i"]).arg(&out));
    let hello = stdout(
        d.docker()
            .args(["run", "--rm", "--network", "none", "hello-world"]),
    );
    assert!(hello.contains("Hello from quai!"), "{hello}");
}

#[test]
fn podman_loads_and_runs_what_quai_saves() {
    let q = Quai::new("interop-podman");
    let layer = busybox_layer(q.tmp.path());
    let archive = docker_archive(
        &[layer],
        &["bb-podman:1"],
        &["/bin/busybox", "echo", "podman ran it"],
        json!({}),
    );
    let id = archive_image_id(&archive);
    let p = q.tmp.path().join("in.tar");
    fs::write(&p, archive).unwrap();
    q.ok(&["load", "-i", p.to_str().unwrap()]);
    let out = q.tmp.path().join("saved.tar");
    q.ok(&["save", "-o", out.to_str().unwrap(), "bb-podman:1"]);

    let storage = q.tmp.path().join("podman");
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("run"))
            // crun 1.8 refuses this machine's hybrid cgroups; runc runs.
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                "runc",
            ])
            .env("TMPDIR", storage.join("tmp"));
        c
    };
    fs::create_dir_all(storage.join("tmp")).unwrap();
    run(podman().args(["load", "-i"]).arg(&out));
    assert_eq!(
        format!(
            "sha256:{}",
            stdout(podman().args(["image", "inspect", "--format", "{{.Id}}", "bb-podman:1"]))
        ),
        id
    );
    let ran = stdout(podman().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "bb-podman:1",
    ]));
    assert_eq!(ran, "podman ran it");
    // podman keeps state outside its --root too: leave nothing running.
    let _ = podman().args(["rm", "-a", "-f"]).output();
}

#[test]
fn layouts_written_by_skopeo_and_umoci_load() {
    let q = Quai::new("interop-oci");
    let layer = busybox_layer(q.tmp.path());
    let archive = docker_archive(&[layer], &["bb-skopeo:1"], &["/bin/sh"], json!({}));
    let id = archive_image_id(&archive);
    let p = q.tmp.path().join("in.tar");
    fs::write(&p, archive).unwrap();

    // skopeo: docker-archive → OCI layout directory and OCI archive.
    let dir = q.tmp.path().join("oci-dir");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("docker-archive:{}", p.display()))
        .arg(format!("oci:{}:bb-skopeo:1", dir.display())));
    assert_eq!(
        q.ok(&["load", "-i", dir.to_str().unwrap()]),
        "Loaded image: bb-skopeo:1\n"
    );
    // skopeo rewrites the config when it converts to OCI: the ID is the
    // digest of the config it wrote.
    let manifest: serde_json::Value = serde_json::from_str(&stdout(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:bb-skopeo:1", dir.display())),
    ))
    .unwrap();
    let skopeo_id = manifest["config"]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        q.ok(&["image", "inspect", "-f", "{{.Id}}", "bb-skopeo:1"])
            .trim(),
        skopeo_id
    );
    assert_ne!(skopeo_id, id);
    let oci_tar = q.tmp.path().join("oci.tar");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("docker-archive:{}", p.display()))
        .arg(format!("oci-archive:{}:other/name:2", oci_tar.display())));
    assert_eq!(
        q.ok(&["load", "-i", oci_tar.to_str().unwrap()]),
        "Loaded image: other/name:2\n"
    );
    assert_eq!(
        q.ok(&["image", "inspect", "-f", "{{.Id}}", "other/name:2"])
            .trim(),
        skopeo_id
    );
    // skopeo reads what quai saves, with the same config digest.
    let saved = q.tmp.path().join("saved.tar");
    q.ok(&["save", "-o", saved.to_str().unwrap(), "bb-skopeo:1"]);
    let inspect = stdout(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}", saved.display())),
    );
    assert!(inspect.contains(&skopeo_id), "{inspect}");

    // umoci: a layout built by umoci itself (gzip layers).
    let layout = q.tmp.path().join("umoci");
    let image = format!("{}:latest", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci").args([
        "insert",
        "--image",
        &image,
        quai_testutil::BUSYBOX,
        "/bin/busybox",
    ]));
    run(Command::new("umoci").args(["config", "--image", &image, "--config.cmd", "/bin/busybox"]));
    let out = q.ok(&["load", "-i", layout.to_str().unwrap()]);
    // umoci names the image by a bare tag, which names no repository.
    assert!(out.starts_with("Loaded image ID: sha256:"), "{out}");
    let umoci_id = out
        .trim()
        .trim_start_matches("Loaded image ID: ")
        .to_string();
    let upper = q.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.GraphDriver.Data.UpperDir}}",
        &umoci_id,
    ]);
    assert_eq!(
        fs::read(Path::new(upper.trim()).join("bin/busybox")).unwrap(),
        fs::read(quai_testutil::BUSYBOX).unwrap()
    );
    assert_eq!(
        q.ok(&["image", "inspect", "-f", "{{.Config.Cmd}}", &umoci_id])
            .trim(),
        "[/bin/busybox]"
    );
}
