//! The image commands against a private state root: docker's flags, output,
//! messages and exit codes.

mod images_support;

use std::fs;

use images_support::*;
use serde_json::{json, Value};

#[test]
fn a_fresh_root_has_hello_world() {
    let q = Quai::new("img-fresh");
    let out = q.ok(&["images"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    assert!(lines[1].starts_with("hello-world   latest"), "{out}");
    assert_eq!(lines.len(), 2);
    let id = q.ok(&["images", "-q"]);
    assert_eq!(id.trim().len(), 12);
    // The same on every machine: the image is reproducible.
    let q2 = Quai::new("img-fresh2");
    assert_eq!(
        q2.ok(&["images", "-q", "--no-trunc"]),
        q.ok(&["images", "-q", "--no-trunc"])
    );
    let row: Value =
        serde_json::from_str(q.ok(&["image", "ls", "--format", "json"]).trim()).unwrap();
    assert_eq!(row["Repository"], "hello-world");
    assert_eq!(row["Tag"], "latest");
    assert_eq!(row["Digest"], "<none>");
    assert_eq!(
        q.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "hello-world:latest\n"
    );
    let inspect: Value = serde_json::from_str(&q.ok(&["image", "inspect", "hello-world"])).unwrap();
    assert_eq!(inspect[0]["Config"]["Cmd"], json!(["/hello"]));
    assert_eq!(inspect[0]["RepoTags"], json!(["hello-world:latest"]));
    // The program in its layer is the embedded one, and it runs.
    let layer = inspect[0]["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .to_string();
    let hello = std::process::Command::new(format!("{layer}/hello"))
        .output()
        .unwrap();
    assert!(hello.status.success());
    assert!(String::from_utf8_lossy(&hello.stdout).contains("Hello from quai!"));
}

#[test]
fn load_save_round_trip_keeps_the_image_id() {
    let q = Quai::new("img-rt");
    let layer = busybox_layer(q.tmp.path());
    let archive = docker_archive(
        &[layer],
        &["bb:1", "example.com:5000/team/bb:v2"],
        &["/bin/sh"],
        json!({"org.test": "yes"}),
    );
    let id = archive_image_id(&archive);
    let path = q.tmp.path().join("bb.tar");
    fs::write(&path, &archive).unwrap();
    let out = q.ok(&["load", "-i", path.to_str().unwrap()]);
    assert_eq!(
        out,
        "Loaded image: bb:1\nLoaded image: example.com:5000/team/bb:v2\n"
    );
    assert_eq!(
        q.ok(&["image", "inspect", "-f", "{{.Id}}", "bb:1"]).trim(),
        id
    );
    // From stdin, and gzip-compressed: same image, nothing new stored.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &archive).unwrap();
    let out = q.run_with_stdin(&["load", "-q"], &gz.finish().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        q.names_in("layers").len(),
        2,
        "busybox and hello-world layers"
    );
    // The unpacked layer is the busybox root file system.
    let layers = q.names_in("layers");
    assert!(layers.iter().any(|l| q
        .root()
        .join("layers")
        .join(l)
        .join("bin/busybox")
        .is_file()));

    let saved = q.tmp.path().join("saved.tar");
    q.ok(&["save", "-o", saved.to_str().unwrap(), "bb:1"]);
    let q2 = Quai::new("img-rt2");
    assert_eq!(
        q2.ok(&["load", "-i", saved.to_str().unwrap()]),
        "Loaded image: bb:1\n"
    );
    assert_eq!(
        q2.ok(&["image", "inspect", "-f", "{{.Id}}", "bb:1"]).trim(),
        id
    );
    // The saved archive is also an OCI layout that loads by index.json.
    let oci = q.tmp.path().join("oci");
    fs::create_dir(&oci).unwrap();
    let st = std::process::Command::new("tar")
        .args(["-xf", saved.to_str().unwrap(), "-C", oci.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    fs::remove_file(oci.join("manifest.json")).unwrap();
    let q3 = Quai::new("img-rt3");
    assert_eq!(
        q3.ok(&["load", "-i", oci.to_str().unwrap()]),
        "Loaded image: bb:1\n"
    );
    assert_eq!(
        q3.ok(&["image", "inspect", "-f", "{{.Id}}", "bb:1"]).trim(),
        id
    );
    // Saving to stdout writes the same bytes.
    let out = q.run(&["save", "bb:1"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, fs::read(&saved).unwrap());
    q.assert_no_leftovers();
}

#[test]
fn save_refuses_unknown_images_and_writes_nothing() {
    let q = Quai::new("img-save-bad");
    let target = q.tmp.path().join("out.tar");
    let (code, err) = q.fails(&[
        "save",
        "-o",
        target.to_str().unwrap(),
        "hello-world",
        "nothere",
    ]);
    assert_eq!(code, 125);
    assert_eq!(err.trim(), "Error: No such image: nothere:latest");
    assert!(!target.exists());
    assert_eq!(
        fs::read_dir(q.tmp.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("tmp"))
            .count(),
        0
    );
}

#[test]
fn tag_and_rmi_follow_docker() {
    let q = Quai::new("img-tag");
    q.ok(&["tag", "hello-world", "one:v1"]);
    q.ok(&["tag", "hello-world:latest", "two"]);
    let out = q.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = out.lines().collect();
    names.sort();
    assert_eq!(names, ["hello-world:latest", "one:v1", "two:latest"]);
    assert_eq!(q.ok(&["rmi", "one:v1"]), "Untagged: one:v1\n");
    let id = q.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    let (code, err) = q.fails(&["rmi", &id[7..19]]);
    assert_eq!(code, 125);
    assert!(
        err.contains("unable to delete")
            && err.contains("must be forced")
            && err.contains("referenced in multiple repositories"),
        "{err}"
    );
    let out = q.ok(&["image", "rm", "-f", &id[7..19]]);
    assert!(
        out.starts_with(&format!(
            "Untagged: hello-world:latest\nUntagged: two:latest\nDeleted: {id}\n"
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .skip(3)
            .all(|l| l.starts_with("Deleted: sha256:")),
        "{out}"
    );
    assert_eq!(q.ok(&["images", "-q"]), "");
    assert!(q.names_in("layers").is_empty());
    assert!(q.names_in("blobs/sha256").is_empty());
}

#[test]
fn bad_names_get_dockers_messages_and_exit_125() {
    let q = Quai::new("img-bad");
    let (code, err) = q.fails(&["rmi", "nothere"]);
    assert_eq!(
        (code, err.trim()),
        (125, "Error: No such image: nothere:latest")
    );
    let (code, err) = q.fails(&["tag", "hello-world", "Busybox"]);
    assert_eq!(
        (code, err.trim()),
        (
            125,
            "Error: invalid reference format: repository name (library/Busybox) must be lowercase"
        )
    );
    let (_, err) = q.fails(&["tag", "hello-world", "bad:-tag"]);
    assert_eq!(err.trim(), "Error: invalid reference format");
    let (_, err) = q.fails(&["image", "inspect", "hello-world", "ghost:1"]);
    assert_eq!(err.trim(), "Error: No such image: ghost:1");
    let (_, err) = q.fails(&["history", "ghost"]);
    assert_eq!(err.trim(), "Error: No such image: ghost:latest");
    let (_, err) = q.fails(&["images", "--filter", "color=red"]);
    assert_eq!(err.trim(), "Error: invalid filter 'color'");
    let (_, err) = q.fails(&["images", "--format", "{{.Nope"]);
    assert!(err.contains("template parsing error"), "{err}");
    let (code, _) = q.fails(&["images", "--no-such-flag"]);
    assert_eq!(code, 125);
}

#[test]
fn import_applies_changes_and_message() {
    let q = Quai::new("img-import");
    let layer = busybox_layer(q.tmp.path());
    let out = q.run_with_stdin(
        &[
            "import",
            "-c",
            "CMD [\"/bin/sh\"]",
            "--change",
            "ENV A=1",
            "-c",
            "LABEL team=core",
            "-c",
            "EXPOSE 8080",
            "-m",
            "first import",
            "-",
            "imported:v1",
        ],
        &layer,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let v: Value = serde_json::from_str(&q.ok(&["image", "inspect", "imported:v1"])).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["Config"]["Cmd"], json!(["/bin/sh"]));
    assert_eq!(v[0]["Config"]["Env"], json!(["A=1"]));
    assert_eq!(v[0]["Config"]["Labels"], json!({"team": "core"}));
    assert_eq!(v[0]["Config"]["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(v[0]["Comment"], "first import");
    let hist = q.ok(&["history", "--format", "{{.Comment}}", "imported:v1"]);
    assert_eq!(hist, "first import\n");
    // A file argument works too, and a refused change imports nothing.
    let path = q.tmp.path().join("rootfs.tar");
    fs::write(&path, &layer).unwrap();
    let (code, err) = q.fails(&["import", "-c", "FROM scratch", path.to_str().unwrap(), "x"]);
    assert_eq!(code, 125);
    assert!(err.contains("FROM is not a valid change command"), "{err}");
    let (_, err) = q.fails(&["import", path.to_str().unwrap(), "Bad"]);
    assert!(err.contains("must be lowercase"), "{err}");
    assert_eq!(q.ok(&["images", "-q"]).lines().count(), 2);
    q.ok(&["import", path.to_str().unwrap()]);
    assert_eq!(
        q.ok(&[
            "images",
            "--filter",
            "dangling=true",
            "--format",
            "{{.Repository}}:{{.Tag}}"
        ]),
        "<none>:<none>\n"
    );
}

#[test]
fn filters_select_like_docker() {
    let q = Quai::new("img-filter");
    let layer = busybox_layer(q.tmp.path());
    let a = docker_archive(
        std::slice::from_ref(&layer),
        &["app/web:1"],
        &["/bin/sh"],
        json!({"tier": "front"}),
    );
    let p = q.tmp.path().join("a.tar");
    fs::write(&p, a).unwrap();
    q.ok(&["load", "-i", p.to_str().unwrap()]);
    let f = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        full.extend_from_slice(args);
        let mut v: Vec<String> = q.ok(&full).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(f(&["--filter", "label=tier"]), ["app/web:1"]);
    assert_eq!(f(&["--filter", "label=tier=back"]), Vec::<String>::new());
    assert_eq!(f(&["--filter", "reference=app/*"]), ["app/web:1"]);
    assert_eq!(
        f(&["--filter", "reference=hello*:latest"]),
        ["hello-world:latest"]
    );
    assert_eq!(f(&["app/web"]), ["app/web:1"]);
    assert_eq!(
        f(&["--filter", "dangling=false"]),
        ["app/web:1", "hello-world:latest"]
    );
    // hello-world is from 2026, app/web from 2024.
    assert_eq!(f(&["--filter", "before=hello-world"]), ["app/web:1"]);
    assert_eq!(f(&["--filter", "since=app/web:1"]), ["hello-world:latest"]);
    let (_, err) = q.fails(&["images", "--filter", "dangling=maybe"]);
    assert!(err.contains("Invalid filter 'dangling=maybe'"), "{err}");
    let digests = q.ok(&["images", "--digests"]);
    assert!(
        digests.lines().next().unwrap().contains("DIGEST"),
        "{digests}"
    );
}

#[test]
fn prune_and_system_df() {
    let q = Quai::new("img-prune");
    let layer = busybox_layer(q.tmp.path());
    let p = q.tmp.path().join("a.tar");
    fs::write(
        &p,
        docker_archive(&[layer], &["keep:1"], &["/bin/sh"], json!({})),
    )
    .unwrap();
    q.ok(&["load", "-i", p.to_str().unwrap()]);
    let df = q.ok(&["system", "df"]);
    assert!(
        df.lines()
            .nth(1)
            .unwrap()
            .starts_with("Images          2         0"),
        "{df}"
    );
    assert!(q.ok(&["system", "df", "-v"]).contains("keep"));
    q.ok(&["rmi", "hello-world"]);
    // Untagging the last tag of keep:1 via an import over the tag makes keep:1 dangling.
    let layer2 = layer_of(q.tmp.path().join("bb-rootfs").join("etc").as_path());
    let out = q.run_with_stdin(&["import", "-", "keep:1"], &layer2);
    assert!(out.status.success());
    assert_eq!(
        q.ok(&["images", "-q", "--filter", "dangling=true"])
            .lines()
            .count(),
        1
    );
    let out = q.ok(&["image", "prune", "-f"]);
    assert!(
        out.starts_with("Deleted Images:\ndeleted: sha256:"),
        "{out}"
    );
    assert!(
        out.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("Total reclaimed space: "),
        "{out}"
    );
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    assert_eq!(
        q.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "keep:1\n"
    );
    // Without -f the prompt guards; "n" keeps everything.
    let out = q.run_with_stdin(&["image", "prune", "-a"], b"n\n");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Are you sure you want to continue? [y/N]")
    );
    assert_eq!(q.ok(&["images", "-q"]).lines().count(), 1);
    let out = q.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: keep:1"), "{out}");
    assert_eq!(q.ok(&["images", "-q"]), "");
    assert!(q.names_in("layers").is_empty());
    assert!(q.names_in("blobs/sha256").is_empty());
}

#[test]
fn history_and_inspect_templates() {
    let q = Quai::new("img-hist");
    let out = q.ok(&["history", "--no-trunc", "-q", "hello-world"]);
    let ids: Vec<&str> = out.lines().collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0].starts_with("sha256:"));
    assert_eq!(ids[1], "<missing>");
    assert_eq!(
        q.ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Cmd}} {{.Os}}/{{.Architecture}} {{len .RootFS.Layers}}",
            "hello-world"
        ])
        .trim(),
        "[\"/hello\"] linux/amd64 1"
    );
    assert_eq!(
        q.ok(&[
            "image",
            "inspect",
            "-f",
            "{{range .RepoTags}}{{.}};{{end}}",
            "hello-world"
        ])
        .trim(),
        "hello-world:latest;"
    );
}

#[test]
fn concurrent_loads_of_one_archive_all_succeed() {
    let q = Quai::new("img-concurrent");
    q.ok(&["images"]);
    let layer = busybox_layer(q.tmp.path());
    let archive = docker_archive(&[layer], &["same:1"], &["/bin/sh"], json!({}));
    let p = q.tmp.path().join("same.tar");
    fs::write(&p, archive).unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            q.command()
                .args(["load", "-q", "-i", p.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Loaded image: same:1\n"
        );
    }
    assert_eq!(q.ok(&["images", "-q"]).lines().count(), 2);
    assert_eq!(q.names_in("layers").len(), 2);
    q.assert_no_leftovers();
}
