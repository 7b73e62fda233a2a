//! quai's registry client against Debian's docker-registry (htpasswd),
//! quai's own server, a token server written here, and registries that
//! misbehave on purpose.

mod registry_common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quai_image::store::{ImageStore, StoreOptions};
use quai_registry::client::config::{ClientSettings, RegistrySettings};
use quai_registry::client::credentials::Credentials;
use quai_registry::client::platform::Platform;
use quai_registry::client::progress;
use quai_registry::client::pull::pull_image;
use quai_registry::client::push::push_image;
use quai_registry::client::reference::ImageRef;
use quai_registry::client::{Client, ClientOptions};
use quai_testutil::{require_root, TempRoot};
use registry_common::fake::{FakeRequest, FakeResponse, FakeServer, Misbehave};
use registry_common::*;

fn settings() -> ClientSettings {
    ClientSettings {
        registry: RegistrySettings::default(),
        certs_dir: "/nonexistent-quai-certs.d".into(),
    }
}

fn quick_options() -> ClientOptions {
    ClientOptions {
        stall_timeout: Duration::from_secs(2),
        backoff: Duration::from_millis(20),
        max_attempts: 3,
        ..ClientOptions::default()
    }
}

/// Debian's docker-registry with htpasswd auth on a free loopback port.
fn start_docker_registry(dir: &Path, htpasswd: &Path) -> (Daemon, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: quai-test\n    path: {}\n",
            dir.join("data").display(),
            htpasswd.display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start docker-registry (Debian package docker-registry)");
    let daemon = Daemon::from_child(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return (daemon, addr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("docker-registry did not listen on {addr}");
}

#[test]
fn docker_registry_interop_login_inspect_pull_push() {
    require_root();
    let tmp = TempRoot::new("regcli");
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("alice:{}\n", bcrypt::hash("wonderland", 5).unwrap()),
    )
    .unwrap();
    let (_registry, addr) = start_docker_registry(tmp.path(), &htpasswd);
    let layout = build_busybox_image(
        tmp.path(),
        "latest",
        Some(("greeting", "hello from the test\n")),
    );
    let remote = format!("{addr}/interop/busybox:v1");
    run_ok(
        Command::new("skopeo")
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "alice:wonderland",
            ])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{remote}")),
    );
    let pushed = skopeo_digest(
        &format!("docker://{remote}"),
        &["--creds", "alice:wonderland"],
    );

    // quai login: a wrong password is refused and stores nothing.
    let docker_config = tmp.path().join("docker-config");
    let quai = |args: &[&str], stdin: &str| {
        let mut child = Command::new(QUAI)
            .args(args)
            .env("DOCKER_CONFIG", &docker_config)
            .env("QUAI_CONFIG", tmp.path().join("no-config.toml"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    std::fs::write(tmp.path().join("no-config.toml"), "").unwrap();
    let bad = quai(
        &["login", "-u", "alice", "--password-stdin", &addr],
        "wrong\n",
    );
    assert_eq!(bad.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("login to") && stderr.contains("authentication required"),
        "{stderr}"
    );
    assert!(!docker_config.join("config.json").exists());
    let good = quai(
        &["login", "-u", "alice", "--password-stdin", &addr],
        "wonderland\n",
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&good.stdout).trim(),
        "Login Succeeded"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(docker_config.join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // manifest inspect uses the stored credentials; the bytes hash to skopeo's digest.
    let inspect = quai(&["manifest", "inspect", &remote], "");
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(printed["schemaVersion"], 2);
    assert_eq!(printed["layers"].as_array().unwrap().len(), 2);

    let rt = runtime();
    let mut client = Client::with_settings(settings(), quick_options());
    client.set_docker_config(docker_config.join("config.json"));
    let mut store = open_store(&tmp.path().join("store"));
    let image = ImageRef::parse(&remote).unwrap();
    let pulled = rt
        .block_on(pull_image(
            &client,
            &mut store,
            &image,
            &Platform::host(),
            &progress::discard(),
        ))
        .expect("pull from docker-registry");
    assert_eq!(pulled.digest.to_string(), pushed);

    // Push back under another name (mounting blobs), and to quai's own server.
    let copy = ImageRef::parse(&format!("{addr}/interop/copy:v2")).unwrap();
    store.tag(&remote, &copy.to_string()).unwrap();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let sink: progress::ProgressSink = {
        let messages = messages.clone();
        Arc::new(move |p| messages.lock().unwrap().push(p.status))
    };
    let pushed_again = rt
        .block_on(push_image(&client, &mut store, &copy, &sink))
        .expect("push to docker-registry");
    assert_eq!(pushed_again.digest.to_string(), pushed);
    assert!(
        messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m == "Mounted from interop/busybox"),
        "{messages:?}"
    );
    assert_eq!(
        skopeo_digest(
            &format!("docker://{copy}"),
            &["--creds", "alice:wonderland"]
        ),
        pushed
    );
    let quai_server = QuaiRegistry::start(&tmp.path().join("quai-root"), &[]);
    let to_quai =
        ImageRef::parse(&format!("{}/from/docker-registry:v1", quai_server.addr)).unwrap();
    store.tag(&remote, &to_quai.to_string()).unwrap();
    // Chunked uploads, followed byte by byte on the JSON-lines stream.
    let chunked = Client::with_settings(
        settings(),
        ClientOptions {
            monolithic_limit: 64 << 10,
            chunk_size: 100 << 10,
            ..quick_options()
        },
    );
    let stream = JsonLines::default();
    let d = rt
        .block_on(push_image(
            &chunked,
            &mut store,
            &to_quai,
            &progress::json_lines(stream.clone()),
        ))
        .expect("push to quai registry serve");
    assert_eq!(d.digest.to_string(), pushed);
    let record = store.resolve(&to_quai.to_string()).unwrap();
    for layer in &record.layers {
        let size = store.content().size(&layer.blob).unwrap();
        let counts: Vec<(u64, u64)> = stream
            .messages()
            .iter()
            .filter(|m| m["id"] == layer.blob.short() && m["status"] == "Pushing")
            .filter_map(|m| {
                let d = m.get("progressDetail")?;
                Some((d["current"].as_u64()?, d["total"].as_u64()?))
            })
            .collect();
        assert!(!counts.is_empty(), "{layer:?}: {:?}", stream.messages());
        // Throttled to a message per 256 KiB at least, and one at the end.
        if size > 512 << 10 {
            assert!(counts.len() > 1, "{layer:?}: {counts:?}");
        }
        assert!(counts.windows(2).all(|w| w[0].0 <= w[1].0), "{counts:?}");
        assert!(counts.iter().all(|&(_, total)| total == size), "{counts:?}");
        assert_eq!(counts.last().unwrap().0, size, "{counts:?}");
    }
    assert_eq!(skopeo_digest(&format!("docker://{to_quai}"), &[]), pushed);

    let out = quai(&["logout", &addr], "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("Removing login credentials for {addr}")
    );
    let denied = quai(&["manifest", "inspect", &remote], "");
    assert_eq!(denied.status.code(), Some(125));
}

/// A small image served by the fake registries below: one uncompressed
/// layer (a tar of one 200 kB file), a config naming its diff id.
struct TestImage {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

impl TestImage {
    fn new() -> TestImage {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 97) as u8).collect();
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, "data", &data[..]).unwrap();
        let layer = tar.into_inner().unwrap();
        TestImage::with(layer, "application/vnd.oci.image.layer.v1.tar", None)
    }

    /// An image with this layer blob and media type; the config names
    /// `diff_id` (default: the digest of the layer, right for a plain tar).
    fn with(layer: Vec<u8>, layer_type: &str, diff_id: Option<String>) -> TestImage {
        let diff_id = diff_id.unwrap_or_else(|| format!("sha256:{}", sha256_hex(&layer)));
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        )
        .into_bytes();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[{{"mediaType":"{layer_type}","digest":"sha256:{}","size":{}}}]}}"#,
            sha256_hex(&config),
            config.len(),
            sha256_hex(&layer),
            layer.len()
        )
        .into_bytes();
        TestImage {
            config,
            layer,
            manifest,
        }
    }

    /// The honest answer for `path`, or None.
    fn serve(&self, path: &str) -> Option<FakeResponse> {
        let manifest_digest = format!("sha256:{}", sha256_hex(&self.manifest));
        if path == "/v2/" {
            return Some(FakeResponse::new(200, "{}"));
        }
        if path.ends_with("/manifests/v1")
            || path.ends_with(&format!("/manifests/{manifest_digest}"))
        {
            return Some(
                FakeResponse::new(200, self.manifest.clone())
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .header("Docker-Content-Digest", &manifest_digest),
            );
        }
        for blob in [&self.config, &self.layer] {
            if path.ends_with(&format!("/blobs/sha256:{}", sha256_hex(blob))) {
                return Some(FakeResponse::new(200, blob.clone()));
            }
        }
        None
    }
}

fn open_store(dir: &Path) -> ImageStore {
    ImageStore::open(
        dir,
        StoreOptions {
            no_seed: true,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

fn pull_fake(addr: &str, options: ClientOptions, store_dir: &Path) -> Result<String, String> {
    let client = Client::with_settings(settings(), options);
    let mut store = open_store(store_dir);
    let image = ImageRef::parse(&format!("{addr}/test/img:v1")).unwrap();
    runtime()
        .block_on(pull_image(
            &client,
            &mut store,
            &image,
            &Platform::host(),
            &progress::discard(),
        ))
        .map(|p| p.digest.to_string())
        .map_err(|e| e.to_string())
}

/// After a failed pull: no image recorded, no partial or unverified blob,
/// no temporary file or half-unpacked layer. Blobs that finished and
/// verified before the failure may stay (the next pull skips them), so
/// every blob left must hash to its name.
fn assert_nothing_stored(store_dir: &Path) {
    let store = open_store(store_dir);
    assert!(
        store.list().unwrap().is_empty(),
        "a failed pull recorded an image"
    );
    for entry in std::fs::read_dir(store_dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let content = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            sha256_hex(&content),
            name,
            "a failed pull left a partial or unverified file"
        );
    }
    for entry in std::fs::read_dir(store_dir.join("layers")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.'),
            "a failed pull left {name} in layers/"
        );
    }
}

#[test]
fn token_auth_with_scopes_and_refresh() {
    require_root();
    let tmp = TempRoot::new("regcli");
    let image = Arc::new(TestImage::new());
    let issued = Arc::new(AtomicUsize::new(0));
    let scopes = Arc::new(Mutex::new(Vec::<String>::new()));
    let rejected_first = Arc::new(AtomicUsize::new(0));
    let addr_cell = Arc::new(Mutex::new(String::new()));
    let server = {
        let (image, issued, scopes, rejected_first, addr_cell) = (
            image.clone(),
            issued.clone(),
            scopes.clone(),
            rejected_first.clone(),
            addr_cell.clone(),
        );
        FakeServer::start(move |req: &FakeRequest| {
            let addr = addr_cell.lock().unwrap().clone();
            let challenge =
                format!(r#"Bearer realm="http://{addr}/token",service="fake-registry""#);
            if req.path.starts_with("/token") {
                let basic = format!("Basic {}", base64_encode("alice:pw"));
                if req.header("authorization") != Some(basic.as_str()) {
                    return FakeResponse::new(
                        401,
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
                    );
                }
                scopes.lock().unwrap().push(req.path.clone());
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                return FakeResponse::new(
                    200,
                    format!(r#"{{"token":"tok-{n}","expires_in":300}}"#),
                );
            }
            let auth = req.header("authorization").unwrap_or("");
            let valid = auth.starts_with("Bearer tok-");
            // The first token "expires" after one use: the client must fetch another.
            if auth == "Bearer tok-1" && rejected_first.fetch_add(1, Ordering::SeqCst) >= 1 {
                return FakeResponse::new(401, "").header("WWW-Authenticate", &challenge);
            }
            if !valid {
                return FakeResponse::new(
                    401,
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}"#,
                )
                .header("WWW-Authenticate", &challenge);
            }
            image
                .serve(&req.path)
                .unwrap_or_else(|| FakeResponse::new(404, ""))
        })
    };
    *addr_cell.lock().unwrap() = server.addr.clone();

    // Without credentials the token server refuses: a clear error.
    let err = pull_fake(&server.addr, quick_options(), &tmp.path().join("anon")).unwrap_err();
    assert!(
        err.contains("getting a token") && err.contains("bad credentials"),
        "{err}"
    );
    assert_nothing_stored(&tmp.path().join("anon"));

    let mut client = Client::with_settings(settings(), quick_options());
    client.set_credentials(
        &server.addr,
        Credentials::Basic {
            username: "alice".into(),
            password: "pw".into(),
        },
    );
    let mut store = open_store(&tmp.path().join("ok"));
    let image_ref = ImageRef::parse(&format!("{}/test/img:v1", server.addr)).unwrap();
    let pulled = runtime()
        .block_on(pull_image(
            &client,
            &mut store,
            &image_ref,
            &Platform::host(),
            &progress::discard(),
        ))
        .expect("pull with token auth");
    assert_eq!(
        pulled.digest.to_string(),
        format!("sha256:{}", sha256_hex(&image.manifest))
    );
    assert!(
        issued.load(Ordering::SeqCst) >= 2,
        "the rejected token was refreshed"
    );
    let scopes = scopes.lock().unwrap();
    assert!(
        scopes.iter().all(|s| s.contains("service=fake-registry")),
        "{scopes:?}"
    );
    assert!(
        scopes
            .iter()
            .any(|s| s.contains("scope=repository%3Atest%2Fimg%3Apull")),
        "{scopes:?}"
    );
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn hostile_registries_give_clear_errors_and_leave_nothing() {
    require_root();
    let tmp = TempRoot::new("regcli");
    let image = Arc::new(TestImage::new());
    let layer_path = format!("/blobs/sha256:{}", sha256_hex(&image.layer));
    type Fault = Box<dyn Fn(&FakeRequest, &TestImage) -> Option<FakeResponse> + Send + Sync>;
    let cases: Vec<(&str, Fault, &[&str])> = vec![
        (
            "wrong-blob-digest",
            Box::new({
                let lp = layer_path.clone();
                move |r, img| {
                    r.path.ends_with(&lp).then(|| {
                        let mut bad = img.layer.clone();
                        bad[10] ^= 0xff;
                        FakeResponse::new(200, bad)
                    })
                }
            }),
            &["layer sha256:", "digest"],
        ),
        (
            "truncated-blob",
            Box::new({
                let lp = layer_path.clone();
                move |r, img| {
                    r.path.ends_with(&lp).then(|| {
                        FakeResponse::new(200, img.layer.clone())
                            .misbehave(Misbehave::Truncate(1000))
                    })
                }
            }),
            &["layer sha256:", "after 1000 bytes"],
        ),
        (
            "malformed-manifest",
            Box::new(|r, _| {
                r.path.contains("/manifests/").then(|| {
                    FakeResponse::new(200, "{\"schemaVersion\":2,")
                        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                })
            }),
            &["malformed manifest", "test/img:v1"],
        ),
        (
            "unknown-media-type",
            Box::new(|r, img| {
                r.path.contains("/manifests/").then(|| {
                    let body = String::from_utf8(img.manifest.clone()).unwrap().replace(
                        "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.example.thing+json",
                    );
                    FakeResponse::new(200, body)
                        .header("Content-Type", "application/vnd.example.thing+json")
                })
            }),
            &["unsupported manifest media type"],
        ),
        (
            "unknown-layer-media-type",
            Box::new(|r, img| {
                r.path.contains("/manifests/").then(|| {
                    let body = String::from_utf8(img.manifest.clone()).unwrap().replace(
                        "application/vnd.oci.image.layer.v1.tar",
                        "application/vnd.example.blob",
                    );
                    FakeResponse::new(200, body)
                        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                })
            }),
            &["reading its manifest", "unsupported media type"],
        ),
        (
            "wrong-diff-id",
            Box::new(|r, img| {
                let wrong = TestImage::with(
                    img.layer.clone(),
                    "application/vnd.oci.image.layer.v1.tar",
                    Some(format!("sha256:{}", "1".repeat(64))),
                );
                if r.path.contains("/manifests/") {
                    return Some(
                        FakeResponse::new(200, wrong.manifest.clone())
                            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                    );
                }
                wrong.serve(&r.path)
            }),
            &["diff id", "digest mismatch"],
        ),
        (
            "manifest-digest-mismatch",
            Box::new(|r, img| {
                r.path.contains("/manifests/").then(|| {
                    FakeResponse::new(200, img.manifest.clone())
                        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                        .header(
                            "Docker-Content-Digest",
                            &format!("sha256:{}", "0".repeat(64)),
                        )
                })
            }),
            &["fetching manifest", "expected sha256:0000"],
        ),
        (
            "not-found",
            Box::new(|r, _| {
                r.path.contains("/manifests/").then(|| {
                    FakeResponse::new(
                        404,
                        r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                    )
                })
            }),
            &["not found", "MANIFEST_UNKNOWN"],
        ),
        (
            "forbidden",
            Box::new(|r, _| {
                r.path.contains("/manifests/").then(|| {
                    FakeResponse::new(
                        403,
                        r#"{"errors":[{"code":"DENIED","message":"no pulls for you"}]}"#,
                    )
                })
            }),
            &["access denied", "no pulls for you"],
        ),
        (
            "unauthorized",
            Box::new(|r, _| {
                (r.path != "/v2/").then(|| {
                    FakeResponse::new(
                        401,
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"who are you"}]}"#,
                    )
                })
            }),
            &["authentication required", "who are you"],
        ),
        (
            "server-error",
            Box::new(|r, _| {
                r.path
                    .contains("/manifests/")
                    .then(|| FakeResponse::new(500, "boom"))
            }),
            &["500"],
        ),
        (
            "stalled",
            Box::new({
                let lp = layer_path.clone();
                move |r, img| {
                    r.path.ends_with(&lp).then(|| {
                        FakeResponse::new(200, img.layer.clone()).misbehave(Misbehave::Stall(5000))
                    })
                }
            }),
            &["stalled"],
        ),
        (
            "redirect-loop",
            Box::new(|r, _| {
                r.path
                    .contains("/blobs/")
                    .then(|| FakeResponse::new(307, "").header("Location", &r.path))
            }),
            &["redirects"],
        ),
        (
            "huge-manifest",
            Box::new(|r, _| {
                r.path.contains("/manifests/").then(|| {
                    FakeResponse::new(200, vec![b' '; 5 << 20])
                        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                })
            }),
            &["larger than"],
        ),
    ];
    for (name, fault, expected) in cases {
        let hits = Arc::new(AtomicUsize::new(0));
        let server = {
            let (image, hits) = (image.clone(), hits.clone());
            FakeServer::start(move |req| {
                hits.fetch_add(1, Ordering::SeqCst);
                fault(req, &image)
                    .or_else(|| image.serve(&req.path))
                    .unwrap_or_else(|| FakeResponse::new(404, ""))
            })
        };
        let dir = tmp.path().join(name);
        let err = pull_fake(&server.addr, quick_options(), &dir).expect_err(name);
        for word in expected {
            assert!(
                err.contains(word),
                "{name}: {err:?} should mention {word:?}"
            );
        }
        assert!(
            err.contains("test/img"),
            "{name}: {err:?} should name the image"
        );
        assert_nothing_stored(&dir);
        if name == "server-error" {
            // /v2/ once, then the manifest max_attempts times.
            assert_eq!(hits.load(Ordering::SeqCst), 1 + 3, "{name}: retried");
        }
    }
}

#[test]
fn retries_429_and_follows_redirects_without_credentials() {
    require_root();
    let tmp = TempRoot::new("regcli");
    let image = Arc::new(TestImage::new());
    let storage_auth = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    // "Blob storage" on another port: records whether credentials reached it.
    let storage = {
        let (image, seen) = (image.clone(), storage_auth.clone());
        FakeServer::start(move |req| {
            seen.lock()
                .unwrap()
                .push(req.header("authorization").map(str::to_string));
            image
                .serve(&req.path.replace("/storage", "/v2/test/img"))
                .unwrap_or_else(|| FakeResponse::new(404, ""))
        })
    };
    let throttled = Arc::new(AtomicUsize::new(0));
    let storage_addr = storage.addr.clone();
    let registry = {
        let (image, throttled) = (image.clone(), throttled.clone());
        FakeServer::start(move |req| {
            if req.header("authorization") != Some(&format!("Basic {}", base64_encode("bob:pw")))
                && req.path != "/v2/"
            {
                return FakeResponse::new(401, "").header("WWW-Authenticate", "Basic realm=\"x\"");
            }
            if req.path == "/v2/" && req.header("authorization").is_none() {
                return FakeResponse::new(401, "").header("WWW-Authenticate", "Basic realm=\"x\"");
            }
            if req.path.contains("/manifests/") && throttled.fetch_add(1, Ordering::SeqCst) < 2 {
                return FakeResponse::new(
                    429,
                    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
                )
                .header("Retry-After", "0");
            }
            if let Some(blob) = req.path.split("/blobs/").nth(1) {
                return FakeResponse::new(307, "").header(
                    "Location",
                    &format!("http://{storage_addr}/storage/blobs/{blob}"),
                );
            }
            image
                .serve(&req.path)
                .unwrap_or_else(|| FakeResponse::new(404, ""))
        })
    };
    let mut client = Client::with_settings(settings(), quick_options());
    client.set_credentials(
        &registry.addr,
        Credentials::Basic {
            username: "bob".into(),
            password: "pw".into(),
        },
    );
    let mut store = open_store(&tmp.path().join("ok"));
    let image_ref = ImageRef::parse(&format!("{}/test/img:v1", registry.addr)).unwrap();
    runtime()
        .block_on(pull_image(
            &client,
            &mut store,
            &image_ref,
            &Platform::host(),
            &progress::discard(),
        ))
        .expect("pull through 429s and a redirect");
    assert_eq!(throttled.load(Ordering::SeqCst), 3, "two 429s then success");
    let seen = storage_auth.lock().unwrap();
    assert_eq!(seen.len(), 2, "config and layer came from storage");
    assert!(
        seen.iter().all(Option::is_none),
        "credentials leaked to another host: {seen:?}"
    );
    assert!(store
        .content()
        .contains(&quai_registry::Digest::of(&image.layer)));
}

#[test]
fn plain_http_only_for_loopback_or_insecure_registries() {
    require_root();
    // A registry name that is not loopback, resolved to a loopback listener
    // by the client's override: no DNS query, no packet off loopback. The
    // listener answers plain HTTP and drops TLS handshakes, so HTTPS fails
    // and only the policy stands between the client and plain HTTP.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tls, plain) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (tls_seen, plain_seen) = (tls.clone(), plain.clone());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut first = [0u8; 1];
            if stream.read_exact(&mut first).is_err() {
                continue;
            }
            if first[0] == 0x16 {
                tls_seen.fetch_add(1, Ordering::SeqCst);
            } else {
                plain_seen.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        }
    });
    let host = "registry.quai-test";
    let registry = format!("{host}:{}", addr.port());
    let options = ClientOptions {
        resolve_overrides: vec![(host.to_string(), addr)],
        ..quick_options()
    };
    let client = Client::with_settings(settings(), options.clone());
    let err = runtime()
        .block_on(client.endpoint(&registry))
        .err()
        .expect("no endpoint");
    assert!(
        err.to_string().contains("plain HTTP is allowed only"),
        "{err}"
    );
    assert!(tls.load(Ordering::SeqCst) >= 1, "HTTPS was tried first");
    assert_eq!(plain.load(Ordering::SeqCst), 0, "no plain HTTP request");

    // Listed as insecure, the same registry is reached over plain HTTP.
    let mut insecure = settings();
    insecure.registry.insecure = vec![registry.clone()];
    let client = Client::with_settings(insecure, options);
    runtime()
        .block_on(client.endpoint(&registry))
        .expect("insecure registry over plain HTTP");
    assert!(plain.load(Ordering::SeqCst) >= 1);
}

/// A shared buffer for a JSON-lines progress stream.
#[derive(Clone, Default)]
struct JsonLines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for JsonLines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl JsonLines {
    fn messages(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
