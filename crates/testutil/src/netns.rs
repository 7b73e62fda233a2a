//! Network namespaces for tests: one plays "the host" (the test thread
//! enters it, so everything under test happens there, never in the real
//! host's namespace), others play containers and outside hosts. Every
//! namespace is deleted by a Drop guard, even when the test fails.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::unique_name;

/// How long a client waits for an answer that should come.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn run_ok(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn enter(file: &File) {
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .expect("setns into a test network namespace");
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
    pub path: PathBuf,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique_name(prefix);
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns {
            path: PathBuf::from(format!("/run/netns/{name}")),
            name,
        };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn file(&self) -> File {
        File::open(&self.path).expect("open netns file")
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .args(args)
            .output()
            .expect("run nsenter")
    }

    pub fn exec_ok(&self, args: &[&str]) -> String {
        let output = self.exec(args);
        assert!(
            output.status.success(),
            "{args:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Whether one ping from inside reaches `address`.
    pub fn ping(&self, address: &str) -> bool {
        self.exec(&["busybox", "ping", "-c", "1", "-W", "2", address])
            .status
            .success()
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = self.file();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    enter(&file);
                    f()
                })
                .join()
                .expect("thread in netns panicked")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A namespace the test thread lives in while the guard lives: "the host".
pub struct HostNs {
    pub ns: Netns,
    original: File,
}

impl HostNs {
    pub fn enter() -> HostNs {
        crate::require_root();
        let original = File::open("/proc/thread-self/ns/net").expect("open own netns");
        let ns = Netns::new("qh");
        enter(&ns.file());
        HostNs { ns, original }
    }
}

impl Drop for HostNs {
    fn drop(&mut self) {
        enter(&self.original);
    }
}

/// An outside host: a namespace linked to the test host by a veth pair,
/// 192.0.2.1 on the host side and 192.0.2.2 outside (TEST-NET-1: these
/// addresses exist only inside the tests' namespaces).
pub struct Outside {
    pub ns: Netns,
}

pub const HOST_EXTERNAL: &str = "192.0.2.1";
pub const OUTSIDE_ADDRESS: &str = "192.0.2.2";
/// The same link's IPv6 addresses (documentation prefix).
pub const HOST_EXTERNAL6: &str = "2001:db8:5::1";
pub const OUTSIDE_ADDRESS6: &str = "2001:db8:5::2";

impl Outside {
    /// Call with the test thread inside the host namespace.
    pub fn link() -> Outside {
        let ns = Netns::new("qo");
        let host_end = unique_name("qx");
        run_ok(
            "ip",
            &[
                "link", "add", &host_end, "type", "veth", "peer", "name", "ext0", "netns", &ns.name,
            ],
        );
        run_ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("{HOST_EXTERNAL}/24"),
                "dev",
                &host_end,
            ],
        );
        run_ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("{HOST_EXTERNAL6}/64"),
                "dev",
                &host_end,
                "nodad",
            ],
        );
        run_ok("ip", &["link", "set", &host_end, "up"]);
        ns.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{OUTSIDE_ADDRESS}/24"),
            "dev",
            "ext0",
        ]);
        ns.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{OUTSIDE_ADDRESS6}/64"),
            "dev",
            "ext0",
            "nodad",
        ]);
        ns.exec_ok(&["ip", "link", "set", "ext0", "up"]);
        Outside { ns }
    }
}

/// 64 random hex digits, like a container or network id.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A server thread answering each TCP connection (or UDP datagram) with
/// `PEER|LINE`, where PEER is the address it saw the client come from.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn tcp(ns: &Netns, address: &str) -> EchoServer {
        Self::start(ns, address.parse().expect("server address"), true)
    }

    pub fn udp(ns: &Netns, address: &str) -> EchoServer {
        Self::start(ns, address.parse().expect("server address"), false)
    }

    /// A UDP echo server in the network namespace `file` (e.g. a
    /// container's `/proc/PID/ns/net`).
    pub fn udp_in(file: File, address: &str) -> EchoServer {
        Self::start_in(file, address.parse().expect("server address"), false)
    }

    fn start(ns: &Netns, address: SocketAddr, tcp: bool) -> EchoServer {
        Self::start_in(ns.file(), address, tcp)
    }

    fn start_in(file: File, address: SocketAddr, tcp: bool) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            enter(&file);
            if tcp {
                let listener = TcpListener::bind(address).expect("bind echo server");
                listener.set_nonblocking(true).expect("nonblocking");
                ready_tx.send(()).expect("signal ready");
                while !stopping.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, peer)) => {
                            stream.set_nonblocking(false).expect("blocking");
                            stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                            let mut line = String::new();
                            let mut reader = BufReader::new(&stream);
                            if reader.read_line(&mut line).is_ok() {
                                let _ =
                                    (&stream).write_all(format!("{}|{line}", peer.ip()).as_bytes());
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            } else {
                let socket = UdpSocket::bind(address).expect("bind udp echo server");
                socket
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .expect("timeout");
                ready_tx.send(()).expect("signal ready");
                let mut buffer = [0u8; 1500];
                while !stopping.load(Ordering::Relaxed) {
                    if let Ok((n, peer)) = socket.recv_from(&mut buffer) {
                        let reply =
                            format!("{}|{}", peer.ip(), String::from_utf8_lossy(&buffer[..n]));
                        let _ = socket.send_to(reply.as_bytes(), peer);
                    }
                }
            }
        });
        ready_rx.recv().expect("echo server started");
        EchoServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends one line over TCP from the calling thread's namespace; returns
/// the answer (`PEER|LINE`).
pub fn tcp_request(address: &str, line: &str) -> std::io::Result<String> {
    let address: SocketAddr = address.parse().expect("address");
    let mut stream = TcpStream::connect_timeout(&address, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.trim_end().to_owned())
}

/// Sends one UDP datagram and waits for the answer.
pub fn udp_request(address: &str, payload: &str) -> std::io::Result<String> {
    let address: SocketAddr = address.parse().expect("address");
    let socket = UdpSocket::bind(if address.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })?;
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    socket.send_to(payload.as_bytes(), address)?;
    let mut buffer = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer[..n]).into_owned())
}

/// Names of the interfaces of the calling thread's namespace.
pub fn host_links() -> Vec<String> {
    let output = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// The nftables ruleset of the calling thread's namespace.
pub fn ruleset() -> String {
    let output = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
