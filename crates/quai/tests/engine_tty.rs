//! `-it` in a real terminal (a tmux pane): the prompt, the terminal size,
//! exit statuses, docker's detach keys, `attach` and `exec -it`.

mod engine_support;

use std::process::Command;
use std::time::{Duration, Instant};

use engine_support::{Quai, QUAI};

/// A tmux server of its own, with one pane running a shell.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(q: &Quai) -> Tmux {
        let socket = quai_testutil::unique_name("qtty");
        let t = Tmux { socket };
        t.tmux(&["new-session", "-d", "-x", "100", "-y", "30", "sh"]);
        // Typed, not passed on tmux's command line: no process outside the
        // containers may name the test root (assert_clean looks for them).
        t.line(&format!(
            "export QUAI_ROOT={} QUAI_RUNROOT={}; clear; PS1='QPROMPT> '",
            q.root().display(),
            q.runroot().display()
        ));
        t.wait_for("QPROMPT>");
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm")
            .output()
            .expect("run tmux (Debian package tmux)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn send(&self, keys: &str) {
        self.tmux(&["send-keys", "-l", keys]);
    }

    fn enter(&self) {
        self.tmux(&["send-keys", "Enter"]);
    }

    fn line(&self, text: &str) {
        self.send(text);
        self.enter();
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-200"])
    }

    /// Waits until the outer shell's prompt is the last line: quai
    /// has returned and typed text goes to the outer shell again.
    fn wait_prompt(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            let last = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            if last.trim_end().ends_with("QPROMPT>") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the prompt in:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {text:?} in:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

#[test]
fn run_it_behaves_like_docker_in_a_terminal() {
    let q = Quai::new("tty");
    let t = Tmux::new(&q);
    t.line(&format!(
        "{QUAI} run -it --rm --network none --name term busybox sh"
    ));
    t.wait_for("/ #");
    t.line("stty size; tty; echo TERM=$TERM");
    let s = t.wait_for("TERM=xterm");
    assert!(s.contains("30 100"), "{s}");
    assert!(s.contains("/dev/pts/0"), "{s}");
    // A ctrl-c goes to the container's shell (raw mode), not to quai.
    t.line("sleep 100");
    std::thread::sleep(Duration::from_millis(300));
    t.tmux(&["send-keys", "C-c"]);
    t.line("echo after-interrupt");
    t.wait_for("\nafter-interrupt");
    t.line("exit 5");
    t.wait_prompt();
    t.line("echo status=$?");
    t.wait_for("status=5");
    q.assert_clean();
}

#[test]
fn detach_keys_attach_and_exec_it() {
    let q = Quai::new("ttydetach");
    let t = Tmux::new(&q);
    t.line(&format!(
        "{QUAI} run -it --network none --name keep busybox sh"
    ));
    t.wait_for("/ #");
    t.line("echo first-session");
    t.wait_for("\nfirst-session");
    // ctrl-p ctrl-q: back to the outer shell, the container keeps running.
    t.tmux(&["send-keys", "C-p", "C-q"]);
    t.wait_prompt();
    t.line("echo detached=$?");
    t.wait_for("detached=0");
    assert_eq!(q.inspect("keep", "{{.State.Status}}"), "running");
    t.line(&format!(
        "{QUAI} exec -it keep sh -c 'echo in-exec; tty; exit 3'"
    ));
    t.wait_for("in-exec");
    t.wait_prompt();
    t.line("echo exec-status=$?");
    let s = t.wait_for("exec-status=3");
    assert!(s.contains("in-exec"), "{s}");
    t.line(&format!("{QUAI} attach keep"));
    std::thread::sleep(Duration::from_millis(300));
    t.line("echo reattached");
    t.wait_for("\nreattached");
    t.line("exit 7");
    t.wait_prompt();
    t.line("echo attach-status=$?");
    t.wait_for("attach-status=7");
    assert_eq!(q.inspect("keep", "{{.State.ExitCode}}"), "7");
    q.ok(&["rm", "keep"]);
    q.assert_clean();
}
