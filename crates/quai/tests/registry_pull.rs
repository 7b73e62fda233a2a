//! `quai pull`, `quai push` and `run --pull` through the binary, against
//! Debian's docker-registry (htpasswd), `quai registry serve`, dockerd, and
//! a registry that stalls so that the pull can be killed half-way.

mod registry_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quai_testutil::dockerd::Dockerd;
use quai_testutil::{require_root, unique_name, TempRoot};
use registry_common::fake::{FakeResponse, FakeServer, Misbehave};
use registry_common::*;

/// quai with a private state root, Docker config and empty quai config.
struct Quai {
    tmp: TempRoot,
}

impl Quai {
    fn new() -> Quai {
        require_root();
        let tmp = TempRoot::new("regpull");
        fs::write(tmp.path().join("config.toml"), "").unwrap();
        Quai { tmp }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn root(&self) -> PathBuf {
        self.path().join("root")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(QUAI);
        c.args(args)
            .env("QUAI_ROOT", self.root())
            .env("QUAI_RUNROOT", self.path().join("run"))
            .env("QUAI_CONFIG", self.path().join("config.toml"))
            .env("DOCKER_CONFIG", self.path().join("docker-config"))
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run quai")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "quai {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Exit code and stderr of a command that must fail.
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "quai {args:?} succeeded");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Names in the blob and layer directories that are not finished
    /// content: temporary blobs and half-unpacked layers.
    fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in ["blobs/sha256", "layers"] {
            if let Ok(entries) = fs::read_dir(self.root().join(dir)) {
                for e in entries {
                    let name = e.unwrap().file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        found.push(format!("{dir}/{name}"));
                    }
                }
            }
        }
        found
    }
}

fn docker_registry(dir: &Path, htpasswd: Option<&Path>) -> (Daemon, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let auth = htpasswd
        .map(|h| {
            format!(
                "auth:\n  htpasswd:\n    realm: quai-test\n    path: {}\n",
                h.display()
            )
        })
        .unwrap_or_default();
    let config = dir.join("docker-registry.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{auth}",
            dir.join("docker-registry").display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry (Debian package docker-registry)");
    let daemon = Daemon::from_child(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "docker-registry did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (daemon, addr)
}

fn skopeo_push(layout: &Path, dest: &str, creds: &[&str]) {
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .args(creds)
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{dest}")),
    );
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or_default()
}

#[test]
fn pull_run_and_push_with_docker_registry_and_basic_auth() {
    let q = Quai::new();
    let htpasswd = q.path().join("htpasswd");
    fs::write(
        &htpasswd,
        format!("alice:{}\n", bcrypt::hash("wonderland", 5).unwrap()),
    )
    .unwrap();
    let (_registry, addr) = docker_registry(q.path(), Some(&htpasswd));
    let layout = build_busybox_image(
        q.path(),
        "latest",
        Some(("greeting", "hello from the registry\n")),
    );
    let remote = format!("{addr}/interop/busybox:v1");
    skopeo_push(&layout, &remote, &["--dest-creds", "alice:wonderland"]);
    let creds = ["--creds", "alice:wonderland"];
    let digest = skopeo_digest(&format!("docker://{remote}"), &creds);

    // Without credentials: docker-registry says who it wants; nothing stored.
    let (code, err) = q.fails(&["pull", &remote]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&remote) && err.contains("authentication required"),
        "{err}"
    );
    assert!(q.leftovers().is_empty(), "{:?}", q.leftovers());

    let mut login = q.command(&["login", "-u", "alice", "--password-stdin", &addr]);
    let mut child = login
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"wonderland\n")
        .unwrap();
    assert!(child.wait().unwrap().success());

    let out = q.ok(&["pull", &remote]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "v1: Pulling from interop/busybox", "{out}");
    assert!(
        out.contains(": Pulling fs layer\n") && out.contains(": Pull complete\n"),
        "{out}"
    );
    assert!(out.contains(&format!("Digest: {digest}\n")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {remote}\n")),
        "{out}"
    );
    assert_eq!(last_line(&out), remote);
    assert!(
        !out.contains("Downloading"),
        "byte counts only in a terminal: {out}"
    );

    let repo_digests = q.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &remote,
    ]);
    assert_eq!(
        repo_digests.trim(),
        format!(r#"["{addr}/interop/busybox@{digest}"]"#)
    );
    let ran = q.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &remote,
        "cat",
        "/greeting",
    ]);
    assert_eq!(ran, "hello from the registry\n");

    let again = q.ok(&["pull", &remote]);
    assert!(again.contains(": Already exists\n"), "{again}");
    assert!(
        again.contains(&format!("Status: Image is up to date for {remote}")),
        "{again}"
    );
    assert_eq!(q.ok(&["pull", "-q", &remote]), format!("{remote}\n"));
    // By digest: no tag recorded, the repo digest names it.
    let by_digest = format!("{addr}/interop/busybox@{digest}");
    assert_eq!(last_line(&q.ok(&["pull", &by_digest])), by_digest);

    // Push under another name: blobs mounted, same digest, skopeo reads it back.
    let copy = format!("{addr}/interop/copy:v2");
    q.ok(&["tag", &remote, &copy]);
    let out = q.ok(&["push", &copy]);
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{addr}/interop/copy]\n"
        )),
        "{out}"
    );
    assert!(out.contains(": Mounted from interop/busybox\n"), "{out}");
    assert_eq!(
        last_line(&out),
        format!(
            "v2: digest: {digest} size: {}",
            skopeo_raw_len(&format!("docker://{copy}"), &creds)
        )
    );
    assert_eq!(skopeo_digest(&format!("docker://{copy}"), &creds), digest);
    let back = q.path().join("back");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .args(["--src-creds", "alice:wonderland"])
            .arg(format!("docker://{copy}"))
            .arg(format!("oci:{}:x", back.display())),
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());

    // An image without a registry manifest (the embedded hello-world): quai
    // writes one, and the registry serves exactly it.
    let hello = format!("{addr}/interop/hello:latest");
    q.ok(&["tag", "hello-world", &hello]);
    let out = q.ok(&["push", &hello]);
    assert!(out.contains(": Pushed\n"), "{out}");
    let pushed = last_line(&out)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    assert_eq!(skopeo_digest(&format!("docker://{hello}"), &creds), pushed);
    let again = q.ok(&["push", &hello]);
    assert!(again.contains(": Layer already exists\n"), "{again}");
    assert_eq!(q.ok(&["push", "-q", &hello]).trim(), pushed);

    let (code, err) = q.fails(&["push", &format!("{addr}/interop/none:v1")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("An image does not exist locally with the tag"),
        "{err}"
    );
}

fn skopeo_raw_len(reference: &str, extra: &[&str]) -> usize {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .args(extra)
        .arg(reference)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout.len()
}

#[test]
fn run_and_create_pull_by_policy() {
    let q = Quai::new();
    let server = QuaiRegistry::start(&q.path().join("registry"), &[]);
    let layout = build_busybox_image(q.path(), "latest", Some(("greeting", "pulled by run\n")));
    let image = format!("{}/policy/busybox:latest", server.addr);
    skopeo_push(&layout, &image, &[]);

    let (code, err) = q.fails(&["run", "--rm", "--pull", "never", &image, "true"]);
    assert_eq!(code, 125);
    assert!(err.contains(&format!("No such image: {image}")), "{err}");
    let (code, err) = q.fails(&["run", "--rm", "--pull", "sometimes", &image, "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("invalid pull option: 'sometimes'"), "{err}");

    let out = q.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "cat",
        "/greeting",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pulled by run\n");
    assert!(
        stderr.starts_with(&format!("Unable to find image '{image}' locally\n")),
        "{stderr}"
    );
    assert!(
        stderr.contains("Status: Downloaded newer image for"),
        "{stderr}"
    );

    // Present now: missing does not pull; always does, and -q quiets it.
    let out = q.run(&["run", "--rm", "--network", "none", &image, "true"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = q.run(&["create", "--pull", "always", "--network", "none", &image]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Status: Image is up to date for"),
        "{stderr}"
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    q.ok(&["rm", &id]);
    let name = unique_name("quiet");
    let out = q.run(&["create", "-q", "--pull", "always", "--name", &name, &image]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    q.ok(&["rm", &name]);

    // A pull that fails inside run: docker's engine-error status, nothing created.
    let (code, err) = q.fails(&["run", "--rm", &format!("{}/policy/absent:1", server.addr)]);
    assert_eq!(code, 125);
    assert!(
        err.contains("policy/absent") && err.contains("not found"),
        "{err}"
    );
    assert_eq!(q.ok(&["ps", "-aq"]), "");
}

/// Serves the OCI layout's `latest` image; the biggest blob through `fault`.
fn serve_layout(
    layout: &Path,
    fault: impl Fn(Vec<u8>) -> FakeResponse + Send + Sync + 'static,
) -> (FakeServer, String) {
    let blobs = layout.join("blobs/sha256");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let biggest = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap())
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let server = FakeServer::start(move |req| {
        if req.path == "/v2/" {
            return FakeResponse::new(200, "{}");
        }
        if req.path.ends_with("/manifests/v1") {
            let hex = manifest_digest.trim_start_matches("sha256:");
            return FakeResponse::new(200, fs::read(blobs.join(hex)).unwrap())
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .header("Docker-Content-Digest", &manifest_digest);
        }
        if let Some(hex) = req.path.split("/blobs/sha256:").nth(1) {
            if let Ok(bytes) = fs::read(blobs.join(hex)) {
                return if hex == biggest {
                    fault(bytes)
                } else {
                    FakeResponse::new(200, bytes)
                };
            }
        }
        FakeResponse::new(404, "")
    });
    let image = format!("{}/slow/busybox:v1", server.addr);
    (server, image)
}

#[test]
fn a_pull_killed_half_way_leaves_nothing_half_stored() {
    let q = Quai::new();
    let layout = build_busybox_image(q.path(), "latest", Some(("greeting", "second try\n")));
    // Half the biggest layer, then silence: the pull hangs mid-layer.
    let (stalling, image) = serve_layout(&layout, |bytes| {
        let half = bytes.len() / 2;
        FakeResponse::new(200, bytes).misbehave(Misbehave::Stall(half))
    });
    let mut child = q
        .command(&["pull", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let left = q.leftovers();
        let ingesting = left.iter().any(|n| n.contains("/.ingest-"));
        let unpacking = left.iter().any(|n| n.starts_with("layers/.staging-"));
        if ingesting && unpacking {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the pull never got mid-layer: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(stalling);

    let images = q.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!images.contains("slow/busybox"), "{images}");
    for entry in fs::read_dir(q.root().join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            assert_eq!(sha256_hex(&fs::read(entry.path()).unwrap()), name);
        }
    }

    // Pull again from an honest registry: the image is complete and runs.
    let (_honest, image) = serve_layout(&layout, |bytes| FakeResponse::new(200, bytes));
    let out = q.ok(&["pull", &image]);
    assert_eq!(last_line(&out), image);
    let ran = q.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "cat",
        "/greeting",
    ]);
    assert_eq!(ran, "second try\n");
    // What the killed pull left is garbage that GC collects.
    assert!(!q.leftovers().is_empty());
    q.ok(&["image", "prune", "-f"]);
    assert!(q.leftovers().is_empty(), "{:?}", q.leftovers());
}

#[test]
fn docker_pushes_to_and_pulls_from_quai_registry_serve() {
    let q = Quai::new();
    let server = QuaiRegistry::start(&q.path().join("registry"), &[]);
    let d = Dockerd::start(&q.path().join("dockerd"));
    // docker builds an image, pushes it to quai's server (127.0.0.0/8 is
    // an insecure registry to docker by default).
    let ctx = q.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"echo\", \"built by docker\"]\n",
    )
    .unwrap();
    let image = format!("{}/docker/built:v1", server.addr);
    run_ok(d.docker().args(["build", "-q", "-t", &image]).arg(&ctx));
    let pushed = run_ok(d.docker().args(["push", &image]));
    let digest = pushed
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .expect("docker push prints the digest")
        .to_string();
    // quai pulls and runs what docker pushed.
    let out = q.ok(&["pull", &image]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    let config = q.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}}",
        &image,
    ]);
    assert!(config.contains("built by docker"), "{config}");
    assert_eq!(
        q.ok(&["run", "--rm", "--network", "none", &image]),
        "built by docker\n"
    );
    // docker pulls what quai pushed (under a new name), with quai's digest, and runs it.
    let copy = format!("{}/quai/pushed:v2", server.addr);
    q.ok(&["tag", &image, &copy]);
    let out = q.ok(&["push", &copy]);
    assert!(out.contains(&format!("v2: digest: {digest}")), "{out}");
    run_ok(d.docker().args(["rmi", "-f", &image]));
    let pulled = run_ok(d.docker().args(["pull", &copy]));
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    let ran = run_ok(d.docker().args(["run", "--rm", "--network", "none", &copy]));
    assert_eq!(ran, "built by docker\n");
    let _ = Arc::new(());
}

/// Turns the layout's `latest` image into an index of two platforms: the
/// image as built (the host's platform) and a copy whose config says
/// `other` (same layers). Tagged `multi` in the layout.
fn add_two_platform_index(layout: &Path, host: &str, other: &str) {
    let blobs = layout.join("blobs/sha256");
    let write_blob = |bytes: &[u8]| -> (String, usize) {
        let hex = sha256_hex(bytes);
        fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let read_json = |digest: &str| -> serde_json::Value {
        let hex = digest.trim_start_matches("sha256:");
        serde_json::from_slice(&fs::read(blobs.join(hex)).unwrap()).unwrap()
    };
    let mut layout_index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let host_desc = layout_index["manifests"][0].clone();
    let manifest_digest = host_desc["digest"].as_str().unwrap().to_string();
    let mut manifest = read_json(&manifest_digest);
    let mut config = read_json(manifest["config"]["digest"].as_str().unwrap());
    let platform = |p: &str| {
        let parts: Vec<&str> = p.split('/').collect();
        serde_json::json!({"os": parts[0], "architecture": parts[1]})
    };
    config["architecture"] = platform(other)["architecture"].clone();
    let (config_digest, config_size) = write_blob(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_size.into();
    let (other_digest, other_size) = write_blob(&serde_json::to_vec(&manifest).unwrap());
    let media = "application/vnd.oci.image.manifest.v1+json";
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": media, "digest": manifest_digest, "size": host_desc["size"], "platform": platform(host)},
            {"mediaType": media, "digest": other_digest, "size": other_size, "platform": platform(other)},
        ]
    });
    let (index_digest, index_size) = write_blob(&serde_json::to_vec(&index).unwrap());
    layout_index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": index_size,
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }));
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&layout_index).unwrap(),
    )
    .unwrap();
}

#[test]
fn run_and_create_take_the_platform_asked_for() {
    let q = Quai::new();
    let server = QuaiRegistry::start(&q.path().join("registry"), &[]);
    let layout = build_busybox_image(q.path(), "latest", Some(("greeting", "host build\n")));
    let host = quai_image::spec::Platform::host().to_string();
    let host = host.split('/').take(2).collect::<Vec<_>>().join("/");
    let other = if host == "linux/amd64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    add_two_platform_index(&layout, &host, other);
    let image = format!("{}/multi/busybox:latest", server.addr);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:multi", layout.display()))
            .arg(format!("docker://{image}")),
    );
    let arch = |q: &Quai| {
        q.ok(&["image", "inspect", "--format", "{{.Architecture}}", &image])
            .trim()
            .to_string()
    };
    let other_arch = other.split('/').nth(1).unwrap();
    let host_arch = host.split('/').nth(1).unwrap();

    // create --platform pulls that platform's manifest when the image is
    // missing; a platform the index lacks fails naming what it has.
    let out = q.run(&["create", "-q", "--platform", other, &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(arch(&q), other_arch);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    q.ok(&["rm", &id]);
    q.ok(&["rmi", &image]);
    let (code, err) = q.fails(&["create", "--platform", "linux/s390x", &image]);
    assert_eq!(code, 125);
    assert!(err.contains("linux/s390x"), "{err}");
    let (code, err) = q.fails(&["create", "--platform", "linux", &image]);
    assert_eq!(code, 125);
    assert!(err.contains("invalid platform \"linux\""), "{err}");
    assert_eq!(q.ok(&["ps", "-aq"]), "");

    // The other platform's image, pulled on purpose, is not what a run for
    // the host's platform uses: refused without a pull...
    q.ok(&["pull", "-q", "--platform", other, &image]);
    assert_eq!(arch(&q), other_arch);
    let (code, err) = q.fails(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--platform",
        &host,
        &image,
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(
        err.contains(&format!(
            "image with reference {image} was found but does not match the specified platform: wanted {host}, actual: {other}"
        )),
        "{err}"
    );
    assert_eq!(q.ok(&["ps", "-aq"]), "");
    // ...and replaced by the asked platform's with the default policy.
    let out = q.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        &host,
        &image,
        "cat",
        "/greeting",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "host build\n");
    assert!(stderr.contains("Unable to find image"), "{stderr}");
    assert_eq!(arch(&q), host_arch);
}

#[test]
fn pull_all_tags_fetches_shared_blobs_once() {
    let q = Quai::new();
    let layout = build_busybox_image(q.path(), "latest", Some(("greeting", "two layers\n")));
    // v1: busybox + greeting; v2: busybox alone (its base layer shared).
    let blobs = layout.join("blobs/sha256");
    let read_json = |digest: &str| -> serde_json::Value {
        let hex = digest.trim_start_matches("sha256:");
        serde_json::from_slice(&fs::read(blobs.join(hex)).unwrap()).unwrap()
    };
    let write_blob = |bytes: Vec<u8>| -> (String, usize) {
        let hex = sha256_hex(&bytes);
        let len = bytes.len();
        fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), len)
    };
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let v1_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let v1 = read_json(&v1_digest);
    let mut config = read_json(v1["config"]["digest"].as_str().unwrap());
    let base_diff_id = config["rootfs"]["diff_ids"][0].clone();
    config["rootfs"]["diff_ids"] = serde_json::json!([base_diff_id]);
    config.as_object_mut().unwrap().remove("history");
    let (config_digest, config_size) = write_blob(serde_json::to_vec(&config).unwrap());
    let mut v2 = v1.clone();
    v2["config"]["digest"] = config_digest.into();
    v2["config"]["size"] = config_size.into();
    v2["layers"] = serde_json::json!([v1["layers"][0].clone()]);
    let (v2_digest, _) = write_blob(serde_json::to_vec(&v2).unwrap());
    let base_layer = v1["layers"][0]["digest"].as_str().unwrap().to_string();

    let fetched: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = fetched.clone();
    let manifests = [("v1", v1_digest), ("v2", v2_digest)];
    let server = FakeServer::start(move |req| {
        if req.path == "/v2/" {
            return FakeResponse::new(200, "{}");
        }
        if req.path == "/v2/all/busybox/tags/list" {
            return FakeResponse::new(200, r#"{"name":"all/busybox","tags":["v1","v2"]}"#)
                .header("Content-Type", "application/json");
        }
        for (tag, digest) in &manifests {
            if req.path.ends_with(&format!("/manifests/{tag}")) {
                seen.lock().unwrap().push(tag.to_string());
                let hex = digest.trim_start_matches("sha256:");
                return FakeResponse::new(200, fs::read(blobs.join(hex)).unwrap())
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .header("Docker-Content-Digest", digest);
            }
        }
        if let Some(hex) = req.path.split("/blobs/sha256:").nth(1) {
            if let Ok(bytes) = fs::read(blobs.join(hex)) {
                seen.lock().unwrap().push(format!("sha256:{hex}"));
                return FakeResponse::new(200, bytes);
            }
        }
        FakeResponse::new(404, "")
    });
    let repo = format!("{}/all/busybox", server.addr);

    let (code, err) = q.fails(&["pull", "-a", &format!("{repo}:v1")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("tag can't be used with --all-tags/-a"),
        "{err}"
    );
    let out = q.ok(&["pull", "-a", &repo]);
    assert_eq!(last_line(&out), repo);
    assert!(
        out.contains("Already exists") || out.contains("Pull complete"),
        "{out}"
    );
    let listed = q.ok(&["images", "--format", "{{.Repository}} {{.Tag}}"]);
    let mut tags: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{repo} ")))
        .collect();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
    let fetched = fetched.lock().unwrap().clone();
    // One transfer, not one pull after the other: both tags are resolved
    // before any layer downloads.
    let first_layer = fetched.iter().position(|d| *d == base_layer).unwrap();
    for tag in ["v1", "v2"] {
        let at = fetched.iter().position(|d| d == tag).unwrap();
        assert!(at < first_layer, "{fetched:?}");
    }
    assert_eq!(
        fetched.iter().filter(|d| **d == base_layer).count(),
        1,
        "the shared layer once: {fetched:?}"
    );
    let ran = q.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &format!("{repo}:v1"),
        "cat",
        "/greeting",
    ]);
    assert_eq!(ran, "two layers\n");
}
