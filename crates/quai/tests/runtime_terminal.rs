//! A terminal through --console-socket: the pty master arrives over the
//! socket (SCM_RIGHTS), the slave is the process' stdio and /dev/console.

mod common;

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::process::Stdio;

use common::Fixture;
use serde_json::json;

/// Reads the pty master until `marker` shows up, then answers with a
/// newline so that the process (blocked in `read`) can exit. Waiting for
/// the process to exit first could lose its output: a pty hung up on the
/// slave side may report EIO before its last output is readable.
fn read_until(master: &mut std::fs::File, marker: &str) -> String {
    use std::io::Write;
    let mut output = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&output).contains(marker) {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => output.extend_from_slice(&buf[..n]),
        }
    }
    let _ = master.write_all(b"\n");
    String::from_utf8_lossy(&output).replace('\r', "")
}

#[test]
fn console_socket_receives_the_pty_master() {
    let f = Fixture::new("tty", &["true"]);
    f.edit(|s| {
        s["process"]["terminal"] = json!(true);
        s["process"]["consoleSize"] = json!({"height": 30, "width": 100});
        s["process"]["args"] = json!([
            "sh",
            "-c",
            "tty; stty size; ls -l /dev/console | cut -c1; echo done; read x"
        ]);
    });
    let socket_path = f.tmp.path().join("console.sock");
    let listener = UnixListener::bind(&socket_path).unwrap();
    let id = f.id("t");
    let mut create = f.cmd(&[
        "create",
        "--console-socket",
        socket_path.to_str().unwrap(),
        "--bundle",
        f.bundle.to_str().unwrap(),
        &id,
    ]);
    create.stdout(Stdio::null()).stderr(Stdio::piped());
    let create = create.spawn().unwrap();
    let (conn, _) = listener.accept().unwrap();
    let master = quai_runtime::process::setup::receive_fd(&conn).unwrap();
    let created = create.wait_with_output().unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    f.ok(&["start", &id]);
    let mut master = std::fs::File::from(master);
    let text = read_until(&mut master, "done");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{text}");
    assert_eq!(lines[1], "30 100");
    assert_eq!(lines[2], "c", "/dev/console is the pty: {text}");
}

#[test]
fn a_console_socket_without_terminal_is_refused() {
    let f = Fixture::new("notty", &["true"]);
    let socket_path = f.tmp.path().join("console.sock");
    let _listener = UnixListener::bind(&socket_path).unwrap();
    let out = f.rt(&[
        "create",
        "--console-socket",
        socket_path.to_str().unwrap(),
        "--bundle",
        f.bundle.to_str().unwrap(),
        &f.id("n"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::stderr(&out).contains("does not ask for a terminal"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn exec_with_a_terminal_sends_its_own_pty() {
    let f = Fixture::new("exectty", &["sleep", "1000"]);
    let id = f.id("x");
    f.ok(&["run", "-d", "--bundle", f.bundle.to_str().unwrap(), &id]);
    let socket_path = f.tmp.path().join("exec-console.sock");
    let listener = UnixListener::bind(&socket_path).unwrap();
    let mut exec = f.cmd(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        socket_path.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "tty; echo done; read x",
    ]);
    exec.stdout(Stdio::null()).stderr(Stdio::piped());
    let exec = exec.spawn().unwrap();
    let (conn, _) = listener.accept().unwrap();
    let master = quai_runtime::process::setup::receive_fd(&conn).unwrap();
    let done = exec.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let mut master = std::fs::File::from(master);
    let text = read_until(&mut master, "done");
    assert!(text.starts_with("/dev/pts/"), "{text}");
    assert!(text.contains("done"), "{text}");
}
