//! A deliberately simple HTTP/1.1 server for the client's hostile-registry
//! tests: one thread per connection, `Connection: close`, and a handler that
//! decides status, headers and body — or misbehaves on purpose.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct FakeRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl FakeRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub enum Misbehave {
    None,
    /// Announce the whole length, send only this many bytes, close.
    Truncate(usize),
    /// Send headers and this many bytes, then nothing until the client gives up.
    Stall(usize),
}

pub struct FakeResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub misbehave: Misbehave,
}

impl FakeResponse {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> FakeResponse {
        FakeResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
            misbehave: Misbehave::None,
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> FakeResponse {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn misbehave(mut self, m: Misbehave) -> FakeResponse {
        self.misbehave = m;
        self
    }
}

pub struct FakeServer {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(&self.addr);
    }
}

impl FakeServer {
    pub fn start(
        handler: impl Fn(&FakeRequest) -> FakeResponse + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let stop_flag = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let stop = stop_flag.clone();
                std::thread::spawn(move || serve(stream, &*handler, &stop));
            }
        });
        FakeServer { addr, stop }
    }
}

fn serve(
    stream: TcpStream,
    handler: &(dyn Fn(&FakeRequest) -> FakeResponse + Send + Sync),
    stop: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut request = FakeRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = request
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        request.body = body;
    }
    let response = handler(&request);
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        response.status,
        response.body.len()
    );
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    if request.method == "HEAD" {
        return;
    }
    match response.misbehave {
        Misbehave::None => {
            let _ = out.write_all(&response.body);
        }
        Misbehave::Truncate(n) => {
            let _ = out.write_all(&response.body[..n.min(response.body.len())]);
        }
        Misbehave::Stall(n) => {
            let _ = out.write_all(&response.body[..n.min(response.body.len())]);
            let _ = out.flush();
            // Hold the connection open, silent, until the test ends.
            for _ in 0..600 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
