//! `quai registry serve` against the distribution spec, driven over HTTP and
//! by skopeo (Debian's), each test with its own storage root and port.

mod registry_common;

use std::process::Command;

use quai_testutil::{require_root, TempRoot};
use registry_common::*;
use reqwest::{Method, StatusCode};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = client().request(method, url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

async fn error_code(resp: reqwest::Response) -> String {
    let v: serde_json::Value = resp.json().await.expect("error body is JSON");
    v["errors"][0]["code"]
        .as_str()
        .expect("errors[0].code")
        .to_string()
}

/// Uploads a blob monolithically; returns its digest.
async fn push_blob(reg: &QuaiRegistry, repo: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(data));
    let resp = send(
        Method::POST,
        &reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")),
        &[],
        data.to_vec(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    digest
}

fn image_manifest(
    config: &str,
    config_len: usize,
    layers: &[(&str, usize)],
    extra: &str,
) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{n}}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_len}}},"layers":[{}]{extra}}}"#,
        layers.join(",")
    )
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn skopeo_pushes_and_pulls_with_identical_digests() {
    require_root();
    let tmp = TempRoot::new("regsrv");
    let reg = QuaiRegistry::start(&tmp.path().join("root"), &[]);
    let layout = build_busybox_image(tmp.path(), "latest", Some(("hello.txt", "hi\n")));
    let dest = format!("docker://{}/test/busybox:v1", reg.addr);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(&dest),
    );
    let pushed = skopeo_digest(&dest, &[]);
    // Pull back into a fresh OCI layout: the manifest digest is unchanged.
    let back = tmp.path().join("back");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(&dest)
            .arg(format!("oci:{}:x", back.display())),
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"].as_str().unwrap(), pushed);
    // A copy to another repository of the same registry mounts the blobs.
    let other = format!("docker://{}/other/bb:v2", reg.addr);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg(&dest)
            .arg(&other),
    );
    assert_eq!(skopeo_digest(&other, &[]), pushed);
    let rt = runtime();
    rt.block_on(async {
        let cat: serde_json::Value = client()
            .get(reg.url("/v2/_catalog"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            cat["repositories"],
            serde_json::json!(["other/bb", "test/busybox"])
        );
    });
}

#[test]
fn pull_endpoints_serve_manifests_blobs_and_ranges() {
    require_root();
    let tmp = TempRoot::new("regsrv");
    let reg = QuaiRegistry::start(&tmp.path().join("root"), &[]);
    runtime().block_on(async {
        let v2 = send(Method::GET, &reg.url("/v2/"), &[], vec![]).await;
        assert_eq!(v2.status(), StatusCode::OK);
        assert_eq!(
            v2.headers()["docker-distribution-api-version"],
            "registry/2.0"
        );

        let layer: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let layer_digest = push_blob(&reg, "a/b", &layer).await;
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = push_blob(&reg, "a/b", config).await;
        let manifest = image_manifest(
            &config_digest,
            config.len(),
            &[(&layer_digest, layer.len())],
            "",
        );
        let put = send(
            Method::PUT,
            &reg.url("/v2/a/b/manifests/v1"),
            &[("Content-Type", OCI_MANIFEST)],
            manifest.clone().into_bytes(),
        )
        .await;
        assert_eq!(put.status(), StatusCode::CREATED);
        let manifest_digest = format!("sha256:{}", sha256_hex(manifest.as_bytes()));
        assert_eq!(
            put.headers()["docker-content-digest"],
            manifest_digest.as_str()
        );

        for reference in ["v1", manifest_digest.as_str()] {
            let get = send(
                Method::GET,
                &reg.url(&format!("/v2/a/b/manifests/{reference}")),
                &[],
                vec![],
            )
            .await;
            assert_eq!(get.status(), StatusCode::OK);
            assert_eq!(get.headers()["content-type"], OCI_MANIFEST);
            assert_eq!(
                get.headers()["docker-content-digest"],
                manifest_digest.as_str()
            );
            assert_eq!(get.bytes().await.unwrap(), manifest.as_bytes());
        }
        let head = send(Method::HEAD, &reg.url("/v2/a/b/manifests/v1"), &[], vec![]).await;
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(
            head.headers()["content-length"],
            manifest.len().to_string().as_str()
        );

        let blob = send(
            Method::GET,
            &reg.url(&format!("/v2/a/b/blobs/{layer_digest}")),
            &[],
            vec![],
        )
        .await;
        assert_eq!(
            blob.headers()["docker-content-digest"],
            layer_digest.as_str()
        );
        assert_eq!(blob.bytes().await.unwrap(), layer);
        let part = send(
            Method::GET,
            &reg.url(&format!("/v2/a/b/blobs/{layer_digest}")),
            &[("Range", "bytes=1000-1999")],
            vec![],
        )
        .await;
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.headers()["content-range"], "bytes 1000-1999/100000");
        assert_eq!(part.bytes().await.unwrap(), layer[1000..2000]);
        let bad = send(
            Method::GET,
            &reg.url(&format!("/v2/a/b/blobs/{layer_digest}")),
            &[("Range", "bytes=200000-")],
            vec![],
        )
        .await;
        assert_eq!(bad.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(bad.headers()["content-range"], "bytes */100000");

        // Unknown things have the spec's codes; a blob of another repository is not served here.
        let missing = send(Method::GET, &reg.url("/v2/a/b/manifests/nope"), &[], vec![]).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(error_code(missing).await, "MANIFEST_UNKNOWN");
        let unknown_repo = send(Method::GET, &reg.url("/v2/x/y/manifests/v1"), &[], vec![]).await;
        assert_eq!(error_code(unknown_repo).await, "NAME_UNKNOWN");
        let other_repo = send(
            Method::GET,
            &reg.url(&format!("/v2/c/blobs/{layer_digest}")),
            &[],
            vec![],
        )
        .await;
        assert_eq!(other_repo.status(), StatusCode::NOT_FOUND);
        assert_eq!(error_code(other_repo).await, "BLOB_UNKNOWN");
        let bad_digest = send(
            Method::GET,
            &reg.url("/v2/a/b/blobs/sha256:1234"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(error_code(bad_digest).await, "DIGEST_INVALID");
        let bad_name = send(Method::GET, &reg.url("/v2/A/manifests/v1"), &[], vec![]).await;
        assert_eq!(error_code(bad_name).await, "NAME_INVALID");
    });
}

#[test]
fn chunked_uploads_follow_the_range_rules_and_verify_digests() {
    require_root();
    let tmp = TempRoot::new("regsrv");
    let root = tmp.path().join("root");
    let reg = QuaiRegistry::start(&root, &[]);
    runtime().block_on(async {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let digest = format!("sha256:{}", sha256_hex(&data));
        let start = send(
            Method::POST,
            &reg.url("/v2/chunky/blobs/uploads/"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(start.status(), StatusCode::ACCEPTED);
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let url = reg.url(&location);

        let first = send(
            Method::PATCH,
            &url,
            &[("Content-Range", "0-99999")],
            data[..100_000].to_vec(),
        )
        .await;
        assert_eq!(first.status(), StatusCode::ACCEPTED);
        assert_eq!(first.headers()["range"], "0-99999");
        // Out of order: 416, and the upload keeps what it had.
        let gap = send(
            Method::PATCH,
            &url,
            &[("Content-Range", "150000-199999")],
            data[150_000..200_000].to_vec(),
        )
        .await;
        assert_eq!(gap.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        let status = send(Method::GET, &url, &[], vec![]).await;
        assert_eq!(status.status(), StatusCode::NO_CONTENT);
        assert_eq!(status.headers()["range"], "0-99999");
        // A chunk without Content-Range (docker's streaming mode) appends.
        let second = send(Method::PATCH, &url, &[], data[100_000..200_000].to_vec()).await;
        assert_eq!(second.headers()["range"], "0-199999");
        // The last chunk comes with the closing PUT.
        let done = send(
            Method::PUT,
            &format!("{url}?digest={digest}"),
            &[("Content-Range", "200000-299999")],
            data[200_000..].to_vec(),
        )
        .await;
        assert_eq!(done.status(), StatusCode::CREATED);
        assert_eq!(done.headers()["docker-content-digest"], digest.as_str());
        let blob = send(
            Method::GET,
            &reg.url(&format!("/v2/chunky/blobs/{digest}")),
            &[],
            vec![],
        )
        .await;
        assert_eq!(blob.bytes().await.unwrap(), data);
        let gone = send(Method::GET, &url, &[], vec![]).await;
        assert_eq!(error_code(gone).await, "BLOB_UPLOAD_UNKNOWN");

        // A wrong digest is refused and nothing is stored.
        let wrong = format!("sha256:{}", sha256_hex(b"something else"));
        let mono = send(
            Method::POST,
            &reg.url(&format!("/v2/chunky/blobs/uploads/?digest={wrong}")),
            &[],
            b"payload".to_vec(),
        )
        .await;
        assert_eq!(mono.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(mono).await, "DIGEST_INVALID");
        let start = send(
            Method::POST,
            &reg.url("/v2/chunky/blobs/uploads/"),
            &[],
            vec![],
        )
        .await;
        let url = reg.url(start.headers()["location"].to_str().unwrap());
        send(Method::PATCH, &url, &[], b"payload".to_vec()).await;
        let close = send(Method::PUT, &format!("{url}?digest={wrong}"), &[], vec![]).await;
        assert_eq!(error_code(close).await, "DIGEST_INVALID");
        assert!(!root
            .join("blobs/sha256")
            .join(sha256_hex(b"payload"))
            .exists());
        assert!(!root.join("blobs/sha256").join(&wrong[7..]).exists());
        assert_eq!(
            std::fs::read_dir(root.join("uploads")).unwrap().count(),
            0,
            "failed session removed"
        );
        assert_eq!(
            std::fs::read_dir(root.join("tmp")).unwrap().count(),
            0,
            "no temporary file left"
        );
    });
}

#[test]
fn uploads_survive_a_restart_and_expire() {
    require_root();
    let tmp = TempRoot::new("regsrv");
    let root = tmp.path().join("root");
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
    let digest = format!("sha256:{}", sha256_hex(&data));
    let rt = runtime();
    let reg = QuaiRegistry::start(&root, &[]);
    let location = rt.block_on(async {
        let start = send(Method::POST, &reg.url("/v2/r/blobs/uploads/"), &[], vec![]).await;
        let location = start.headers()["location"].to_str().unwrap().to_string();
        send(
            Method::PATCH,
            &reg.url(&location),
            &[],
            data[..20_000].to_vec(),
        )
        .await;
        location
    });
    reg.daemon.kill();
    let reg = QuaiRegistry::start(&root, &[]);
    rt.block_on(async {
        let url = reg.url(&location);
        let status = send(Method::GET, &url, &[], vec![]).await;
        assert_eq!(status.headers()["range"], "0-19999");
        let rest = send(
            Method::PATCH,
            &url,
            &[("Content-Range", "20000-49999")],
            data[20_000..].to_vec(),
        )
        .await;
        assert_eq!(rest.status(), StatusCode::ACCEPTED);
        let done = send(Method::PUT, &format!("{url}?digest={digest}"), &[], vec![]).await;
        assert_eq!(
            done.status(),
            StatusCode::CREATED,
            "hash state rebuilt from disk after restart"
        );
    });
    drop(reg);

    // With a one-second expiry an idle session is removed.
    let reg = QuaiRegistry::start(&root, &["--upload-expiry", "1s"]);
    rt.block_on(async {
        let start = send(Method::POST, &reg.url("/v2/r/blobs/uploads/"), &[], vec![]).await;
        let url = reg.url(start.headers()["location"].to_str().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let late = send(Method::PATCH, &url, &[], b"late".to_vec()).await;
        assert_eq!(late.status(), StatusCode::NOT_FOUND);
        assert_eq!(error_code(late).await, "BLOB_UPLOAD_UNKNOWN");
    });
    assert_eq!(std::fs::read_dir(root.join("uploads")).unwrap().count(), 0);
}

#[test]
fn manifests_are_validated_tags_paginated_and_deletes_work() {
    require_root();
    let tmp = TempRoot::new("regsrv");
    let reg = QuaiRegistry::start(&tmp.path().join("root"), &[]);
    runtime().block_on(async {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = push_blob(&reg, "m", config).await;
        let absent = format!("sha256:{}", sha256_hex(b"never pushed"));
        let url = |p: &str| reg.url(&format!("/v2/m/manifests/{p}"));

        let dangling = image_manifest(&config_digest, config.len(), &[(&absent, 12)], "");
        let r = send(
            Method::PUT,
            &url("t"),
            &[("Content-Type", OCI_MANIFEST)],
            dangling.into_bytes(),
        )
        .await;
        assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
        let r = send(
            Method::PUT,
            &url("t"),
            &[("Content-Type", OCI_MANIFEST)],
            b"{not json".to_vec(),
        )
        .await;
        assert_eq!(error_code(r).await, "MANIFEST_INVALID");
        let odd = image_manifest(&config_digest, config.len(), &[], "")
            .replace(OCI_MANIFEST, "application/x-unknown");
        let r = send(Method::PUT, &url("t"), &[], odd.into_bytes()).await;
        assert_eq!(error_code(r).await, "MANIFEST_INVALID");
        let huge = vec![b' '; 5 << 20];
        let r = send(
            Method::PUT,
            &url("t"),
            &[("Content-Type", OCI_MANIFEST)],
            huge,
        )
        .await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

        let good = image_manifest(&config_digest, config.len(), &[], "");
        let good_digest = format!("sha256:{}", sha256_hex(good.as_bytes()));
        let r = send(
            Method::PUT,
            &url(&absent),
            &[("Content-Type", OCI_MANIFEST)],
            good.clone().into_bytes(),
        )
        .await;
        assert_eq!(
            error_code(r).await,
            "DIGEST_INVALID",
            "digest in the URL must match"
        );
        for tag in ["t1", "t2", "t3", "t4", "t5"] {
            let r = send(
                Method::PUT,
                &url(tag),
                &[("Content-Type", OCI_MANIFEST)],
                good.clone().into_bytes(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::CREATED);
        }
        let page = send(Method::GET, &reg.url("/v2/m/tags/list?n=2"), &[], vec![]).await;
        assert_eq!(
            page.headers()["link"],
            "</v2/m/tags/list?n=2&last=t2>; rel=\"next\""
        );
        let body: serde_json::Value = page.json().await.unwrap();
        assert_eq!(body["tags"], serde_json::json!(["t1", "t2"]));
        let page = send(
            Method::GET,
            &reg.url("/v2/m/tags/list?n=2&last=t4"),
            &[],
            vec![],
        )
        .await;
        assert!(page.headers().get("link").is_none());
        let body: serde_json::Value = page.json().await.unwrap();
        assert_eq!(body["tags"], serde_json::json!(["t5"]));

        // Deleting a tag leaves the manifest; deleting the manifest removes its tags.
        assert_eq!(
            send(Method::DELETE, &url("t5"), &[], vec![]).await.status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            send(Method::GET, &url("t5"), &[], vec![]).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            send(Method::DELETE, &url(&good_digest), &[], vec![])
                .await
                .status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            send(Method::GET, &url("t1"), &[], vec![]).await.status(),
            StatusCode::NOT_FOUND
        );
        let tags: serde_json::Value = send(Method::GET, &reg.url("/v2/m/tags/list"), &[], vec![])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(tags["tags"], serde_json::json!([]));
        let blob_url = reg.url(&format!("/v2/m/blobs/{config_digest}"));
        assert_eq!(
            send(Method::DELETE, &blob_url, &[], vec![]).await.status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            send(Method::HEAD, &blob_url, &[], vec![]).await.status(),
            StatusCode::NOT_FOUND
        );
    });
}

#[test]
fn referrers_api_lists_and_filters_artifacts() {
    require_root();
    let tmp = TempRoot::new("regsrv");
    let reg = QuaiRegistry::start(&tmp.path().join("root"), &[]);
    runtime().block_on(async {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = push_blob(&reg, "ref", config).await;
        let image = image_manifest(&config_digest, config.len(), &[], "");
        let image_digest = format!("sha256:{}", sha256_hex(image.as_bytes()));
        send(Method::PUT, &reg.url("/v2/ref/manifests/v1"), &[("Content-Type", OCI_MANIFEST)], image.clone().into_bytes()).await;
        let empty = push_blob(&reg, "ref", b"{}").await;
        let subject = format!(
            r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{image_digest}","size":{}}}"#,
            image.len()
        );
        let mut digests = Vec::new();
        for artifact in ["application/vnd.example.sbom", "application/vnd.example.sig"] {
            let body = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{artifact}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[]{subject}}}"#
            );
            let digest = format!("sha256:{}", sha256_hex(body.as_bytes()));
            let r = send(Method::PUT, &reg.url(&format!("/v2/ref/manifests/{digest}")), &[("Content-Type", OCI_MANIFEST)], body.into_bytes()).await;
            assert_eq!(r.status(), StatusCode::CREATED);
            assert_eq!(r.headers()["oci-subject"], image_digest.as_str());
            digests.push(digest);
        }
        let all: serde_json::Value = send(Method::GET, &reg.url(&format!("/v2/ref/referrers/{image_digest}")), &[], vec![]).await.json().await.unwrap();
        assert_eq!(all["mediaType"], "application/vnd.oci.image.index.v1+json");
        assert_eq!(all["manifests"].as_array().unwrap().len(), 2);
        let filtered = send(Method::GET, &reg.url(&format!("/v2/ref/referrers/{image_digest}?artifactType=application/vnd.example.sig")), &[], vec![]).await;
        assert_eq!(filtered.headers()["oci-filters-applied"], "artifactType");
        let filtered: serde_json::Value = filtered.json().await.unwrap();
        assert_eq!(filtered["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(filtered["manifests"][0]["digest"], digests[1].as_str());
        assert_eq!(filtered["manifests"][0]["artifactType"], "application/vnd.example.sig");
        // Deleting a referrer takes it out of the list.
        send(Method::DELETE, &reg.url(&format!("/v2/ref/manifests/{}", digests[0])), &[], vec![]).await;
        let after: serde_json::Value = send(Method::GET, &reg.url(&format!("/v2/ref/referrers/{image_digest}")), &[], vec![]).await.json().await.unwrap();
        assert_eq!(after["manifests"].as_array().unwrap().len(), 1);
    });
}

#[test]
fn htpasswd_auth_and_read_only_mode() {
    require_root();
    let tmp = TempRoot::new("regsrv");
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("alice:{}\n", bcrypt::hash("wonderland", 4).unwrap()),
    )
    .unwrap();
    let root = tmp.path().join("root");
    let reg = QuaiRegistry::start(&root, &["--htpasswd", htpasswd.to_str().unwrap()]);
    let layout = build_busybox_image(tmp.path(), "latest", None);
    let dest = format!("docker://{}/auth/bb:v1", reg.addr);
    let src = format!("oci:{}:latest", layout.display());
    let denied = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(&src)
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        !denied.status.success(),
        "push without credentials must fail"
    );
    run_ok(
        Command::new("skopeo")
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "alice:wonderland",
            ])
            .arg(&src)
            .arg(&dest),
    );
    runtime().block_on(async {
        let r = send(Method::GET, &reg.url("/v2/"), &[], vec![]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm="));
        assert_eq!(error_code(r).await, "UNAUTHORIZED");
    });
    drop(reg);

    // A file with a non-bcrypt entry is refused at start, with the reason.
    std::fs::write(&htpasswd, "bob:{SHA}fEqNCco3Yq9h5ZUglD3CZJT4lBs=\n").unwrap();
    let out = Command::new(QUAI)
        .args(["registry", "serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(&root)
        .arg("--htpasswd")
        .arg(&htpasswd)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("htpasswd -B"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let reg = QuaiRegistry::start(&root, &["--read-only"]);
    assert_eq!(
        skopeo_digest(&format!("docker://{}/auth/bb:v1", reg.addr), &[]).len(),
        71
    );
    let push = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(&src)
        .arg(format!("docker://{}/auth/bb:v2", reg.addr))
        .output()
        .unwrap();
    assert!(!push.status.success(), "read-only registry accepted a push");
}

#[test]
fn tls_with_a_private_ca() {
    require_root();
    let tmp = TempRoot::new("regsrv");
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    run_ok(Command::new("openssl").current_dir(&certs).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.crt",
    ]));
    let reg = QuaiRegistry::start(
        &tmp.path().join("root"),
        &[
            "--tls-cert",
            certs.join("server.crt").to_str().unwrap(),
            "--tls-key",
            certs.join("server.key").to_str().unwrap(),
        ],
    );
    // skopeo trusts the server through a Docker-style cert dir holding the CA.
    let cert_dir = tmp.path().join("trust");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(certs.join("server.crt"), cert_dir.join("ca.crt")).unwrap();
    let layout = build_busybox_image(tmp.path(), "latest", None);
    let dest = format!("docker://{}/tls/bb:v1", reg.addr);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--dest-cert-dir"])
            .arg(&cert_dir)
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(&dest),
    );
    let digest = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--format", "{{.Digest}}", "--cert-dir"])
            .arg(&cert_dir)
            .arg(&dest),
    );
    assert!(digest.trim().starts_with("sha256:"));
    // Without the CA the certificate is not trusted.
    let untrusted = Command::new("skopeo")
        .args(["inspect"])
        .arg(&dest)
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
}

#[test]
fn gc_removes_unreferenced_blobs_only() {
    require_root();
    let tmp = TempRoot::new("regsrv");
    let root = tmp.path().join("root");
    let reg = QuaiRegistry::start(&root, &[]);
    let (kept, orphan) = runtime().block_on(async {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = push_blob(&reg, "gc", config).await;
        let manifest = image_manifest(&config_digest, config.len(), &[], "");
        send(
            Method::PUT,
            &reg.url("/v2/gc/manifests/v1"),
            &[("Content-Type", OCI_MANIFEST)],
            manifest.into_bytes(),
        )
        .await;
        let orphan = push_blob(&reg, "gc", b"nobody references me").await;
        (config_digest, orphan)
    });
    drop(reg);
    let blob = |d: &str| root.join("blobs/sha256").join(&d[7..]);
    // Fresh blobs are inside the default grace period.
    run_ok(
        Command::new(QUAI)
            .args(["registry", "gc", "--root"])
            .arg(&root),
    );
    assert!(blob(&orphan).exists());
    let dry = run_ok(
        Command::new(QUAI)
            .args(["registry", "gc", "--dry-run", "--grace", "0s", "--root"])
            .arg(&root),
    );
    assert!(
        dry.contains(&format!("would delete blob {orphan}")),
        "{dry}"
    );
    assert!(blob(&orphan).exists());
    run_ok(
        Command::new(QUAI)
            .args(["registry", "gc", "--grace", "0s", "--root"])
            .arg(&root),
    );
    assert!(!blob(&orphan).exists());
    assert!(blob(&kept).exists());
    assert!(!root
        .join("repositories/gc/_layers/sha256")
        .join(&orphan[7..])
        .exists());
    let err = Command::new(QUAI)
        .args(["registry", "gc", "--root"])
        .arg(tmp.path().join("nothing"))
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(125));
}
