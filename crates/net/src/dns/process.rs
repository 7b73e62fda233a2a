//! Starting and stopping a network's DNS server process. There is no
//! daemon to own it: the server finds its configuration in a file, writes
//! its pid beside it, and exits when the file goes away.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{NetError, Result};

/// The line the server prints once it listens.
pub(super) const READY: &str = "ready";

/// Where the server of `config` writes its pid.
pub fn pid_file(config: &Path) -> PathBuf {
    config.with_extension("pid")
}

/// Starts `quai internal dns-server --config CONFIG` in its own process
/// group and returns once it listens (or with its error). The caller owns
/// the child: reap it, or let it outlive the caller (it then belongs to
/// init, like every container monitor).
pub fn spawn_server(quai: &Path, config: &Path) -> Result<Child> {
    let mut child = Command::new(quai)
        .args(["internal", "dns-server", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| NetError::io(format!("start DNS server {}", quai.display()), e))?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    if line.trim() == READY {
        return Ok(child);
    }
    let output = child
        .wait_with_output()
        .map_err(|e| NetError::io("wait for the DNS server", e))?;
    Err(NetError::Io {
        what: format!(
            "DNS server for {} did not start ({})",
            config.display(),
            output.status
        ),
        source: std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
    })
}

/// The pid of the running server of `config`, if there is one.
pub fn server_pid(config: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(config))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // A recycled pid belongs to another program: check the command line.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let wanted = config.as_os_str().as_encoded_bytes();
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == wanted)
        .then_some(pid)
}

/// Stops the server of `config`: removes the configuration (the server
/// exits when it notices) and signals the server to exit now.
pub fn stop_server(config: &Path) -> Result<()> {
    let pid = server_pid(config);
    match std::fs::remove_file(config) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(NetError::File {
                what: "remove DNS configuration",
                path: config.to_owned(),
                source,
            })
        }
    }
    if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    Ok(())
}
