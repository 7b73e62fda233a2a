//! cp (both ways, symlink-safe, docker's path rules), diff, export and
//! commit, on running and stopped containers.

mod engine_support;

use std::fs;
use std::process::Stdio;

use engine_support::Quai;

#[test]
fn cp_both_ways_on_running_and_stopped_containers() {
    let q = Quai::new("cp");
    let host = q.tmp.path().join("host");
    fs::create_dir_all(host.join("tree/sub")).unwrap();
    fs::write(host.join("tree/sub/f"), "file").unwrap();
    fs::write(host.join("one"), "one").unwrap();
    for (name, args) in [
        (
            "stopped",
            vec!["create", "--name", "stopped", "busybox", "true"],
        ),
        (
            "running",
            vec!["run", "-d", "--name", "running", "busybox", "sleep", "1000"],
        ),
    ] {
        q.ok(&args);
        // A file into an existing directory, a file under a new name.
        q.ok(&[
            "cp",
            host.join("one").to_str().unwrap(),
            &format!("{name}:/tmp"),
        ]);
        q.ok(&[
            "cp",
            host.join("one").to_str().unwrap(),
            &format!("{name}:/tmp/renamed"),
        ]);
        // A directory, and a directory's contents (`/.`).
        q.ok(&[
            "cp",
            host.join("tree").to_str().unwrap(),
            &format!("{name}:/tmp"),
        ]);
        q.ok(&[
            "cp",
            &format!("{}/.", host.join("tree").display()),
            &format!("{name}:/srv"),
        ]);
        // And back out.
        let out = q.tmp.path().join(format!("out-{name}"));
        fs::create_dir(&out).unwrap();
        q.ok(&["cp", &format!("{name}:/tmp/one"), out.to_str().unwrap()]);
        q.ok(&[
            "cp",
            &format!("{name}:/tmp/renamed"),
            out.join("again").to_str().unwrap(),
        ]);
        q.ok(&["cp", &format!("{name}:/tmp/tree"), out.to_str().unwrap()]);
        q.ok(&[
            "cp",
            &format!("{name}:/srv/sub"),
            out.join("newdir").to_str().unwrap(),
        ]);
        assert_eq!(fs::read_to_string(out.join("one")).unwrap(), "one");
        assert_eq!(fs::read_to_string(out.join("again")).unwrap(), "one");
        assert_eq!(fs::read_to_string(out.join("tree/sub/f")).unwrap(), "file");
        assert_eq!(fs::read_to_string(out.join("newdir/f")).unwrap(), "file");
        // A tar stream out.
        let tar = q.run(&["cp", &format!("{name}:/tmp/tree"), "-"]);
        assert!(tar.status.success());
        let listing = std::process::Command::new("tar")
            .arg("-t")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(&tar.stdout)?;
                c.wait_with_output()
            })
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(listing.contains("tree/sub/f"), "{listing}");
        let (code, err) = q.fails(&["cp", &format!("{name}:/no/such"), out.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert!(err.contains("Could not find the file /no/such"), "{err}");
    }
    // The stopped container sees what was copied in when it runs.
    let seen = q.ok(&["start", "-a", "stopped"]);
    assert_eq!(seen, "");
    let out = q.ok(&["exec", "running", "cat", "/srv/sub/f", "/tmp/renamed"]);
    assert_eq!(out, "fileone");
    // cp of a stopped container leaves no mount behind.
    q.ok(&["rm", "-f", "stopped", "running"]);
    q.assert_clean();
}

#[test]
fn cp_never_follows_the_containers_symlinks_out() {
    let q = Quai::new("cpsafe");
    let outside = q.tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "host secret").unwrap();
    // The container has its own directory at the host path its links name.
    let link = format!(
        "mkdir -p {o}; ln -s {o} /escape; ln -s {o}/secret /leak",
        o = outside.display()
    );
    q.ok(&["run", "--name", "evil", "busybox", "sh", "-c", &link]);
    // Writing through /escape lands inside the container, not on the host.
    let src = q.tmp.path().join("payload");
    fs::write(&src, "pwned").unwrap();
    q.ok(&["cp", src.to_str().unwrap(), "evil:/escape/payload"]);
    assert!(
        !outside.join("payload").exists(),
        "cp wrote through a container symlink"
    );
    let inside = format!("evil:{}/payload", outside.display());
    let back = q.tmp.path().join("back");
    q.ok(&["cp", &inside, back.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(&back).unwrap(), "pwned");
    // Reading /leak gives the link itself, or (with -L) what it points to
    // inside the container: never the host's file.
    let out = q.tmp.path().join("leak-out");
    q.ok(&["cp", "evil:/leak", out.to_str().unwrap()]);
    assert!(fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
    let out2 = q.tmp.path().join("leak-followed");
    let r = q.run(&["cp", "-L", "evil:/leak", out2.to_str().unwrap()]);
    if r.status.success() {
        assert_ne!(fs::read_to_string(&out2).unwrap_or_default(), "host secret");
    }
    q.ok(&["rm", "evil"]);
    q.assert_clean();
}

#[test]
fn diff_export_and_commit() {
    let q = Quai::new("diff");
    q.ok(&[
        "run",
        "--name",
        "changed",
        "busybox",
        "sh",
        "-c",
        "echo new > /etc/added; rm /bin/ls; mkdir -p /data && echo d > /data/x",
    ]);
    let diff = q.ok(&["diff", "changed"]);
    assert_eq!(
        diff,
        "C /bin\nD /bin/ls\nA /data\nA /data/x\nC /etc\nA /etc/added\n"
    );
    let export = q.run(&["export", "changed"]);
    assert!(export.status.success());
    let path = q.tmp.path().join("export.tar");
    q.ok(&["export", "-o", path.to_str().unwrap(), "changed"]);
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&path)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("etc/added"), "{listing}");
    assert!(listing.contains("bin/busybox"), "{listing}");
    assert!(
        !listing.contains("bin/ls\n"),
        "deleted files are not exported"
    );
    let id = q.ok(&[
        "commit",
        "-m",
        "snapshot",
        "-c",
        "ENV MARK=1",
        "-c",
        "CMD [\"cat\", \"/etc/added\"]",
        "changed",
        "snap:v1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(q.ok(&["run", "--rm", "snap:v1"]), "new\n");
    assert_eq!(
        q.ok(&[
            "run",
            "--rm",
            "snap:v1",
            "sh",
            "-c",
            "echo $MARK; ls /bin/ls 2>&1 || true"
        ]),
        "1\nls: /bin/ls: No such file or directory\n"
    );
    let hist = q.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Comment}}",
        "snap:v1",
    ]);
    assert!(hist.lines().next().unwrap().contains("snapshot"), "{hist}");
    // A running container: export works; commit pauses it meanwhile (and
    // thaws it after), or not with --pause=false.
    q.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo l > /live; sleep 1000",
    ]);
    q.wait_for("the file", || {
        q.run(&["exec", "live", "cat", "/live"]).status.success()
    });
    let out = q.run(&["export", "live"]);
    assert!(out.status.success());
    q.ok(&["commit", "live", "x:y"]);
    assert_eq!(q.ok(&["exec", "live", "cat", "/live"]), "l\n");
    assert_eq!(q.inspect("live", "{{.State.Status}}"), "running");
    q.ok(&["rmi", "x:y"]);
    q.ok(&["commit", "--pause=false", "live", "live:v1"]);
    assert_eq!(q.ok(&["run", "--rm", "live:v1", "cat", "/live"]), "l\n");
    // An image a container uses cannot be removed without force.
    q.ok(&["create", "--name", "user", "live:v1"]);
    let (code, err) = q.fails(&["rmi", "live:v1"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("container") && err.contains("is using its referenced image"),
        "{err}"
    );
}
