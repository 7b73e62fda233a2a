//! The monitor's event loop: container output to the log and to attached
//! clients, client requests, the container's exit, restarts and timers.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use quai_runtime::cgroups::{Cgroup, OomEvents, OomNotifier};
use rustix::event::epoll::{self, Event, EventData, EventFlags};
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};

use crate::engine::Engine;
use crate::error::{EngineError, IoContext, Result};
use crate::logs::{LogOptions, LogWriter, Stream};
use crate::proto::{self, ExitReply, Ready, Reply, Request};
use crate::record::{self, Container, Status};
use crate::types::RestartPolicy;
use crate::units::now_nanos;

use super::health::Health;
use super::start::{self, Run};

const T_LISTENER: u64 = 1;
const T_PIDFD: u64 = 2;
const T_STDOUT: u64 = 3;
const T_STDERR: u64 = 4;
const T_STDIN: u64 = 5;
const T_STOP_TIMER: u64 = 6;
const T_RESTART_TIMER: u64 = 7;
pub(super) const T_HEALTH_TIMER: u64 = 8;
pub(super) const T_HEALTH_PIDFD: u64 = 9;
pub(super) const T_HEALTH_OUT: u64 = 10;
const T_OOM: u64 = 11;
const T_TRIM_TIMER: u64 = 12;
const T_OOM_RECHECK: u64 = 13;
const T_CLIENTS: u64 = 100;

/// Pause reading the container's output while a client has this much
/// unsent (back-pressure instead of unbounded buffering).
const CLIENT_BACKLOG: usize = 1 << 20;
/// Most bytes of stdin kept for a container that is not reading it.
const STDIN_BACKLOG: usize = 1 << 20;
/// WAL size (bytes, ~128 pages) above which an exiting monitor checkpoints
/// the database: about five `run --rm` worth of writes.
const WAL_CHECKPOINT_BYTES: u64 = 512 * 1024;
/// How long a container runs before its monitor gives back the memory its
/// start-up paged in. Trimming reads /proc/self/smaps and drops mapped
/// pages that exit handling would fault back in: a container that ends
/// sooner (a `run --rm` job) is not kept waiting for either.
const TRIM_DELAY: Duration = Duration::from_secs(1);
/// A cgroup v1 OOM notification comes as the kernel enters the OOM path,
/// before the kill is counted: the counter is read again this much later.
const OOM_RECHECK_DELAY: Duration = Duration::from_millis(100);
/// How long that checkpoint waits for other commands' transactions.
const WAL_CHECKPOINT_PATIENCE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    /// Has not sent its request line yet.
    Pending,
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Gets one reply line when the container exits (wait, stop).
    Waiter,
}

struct Client {
    sock: UnixStream,
    kind: ClientKind,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// Close once `outbuf` is sent.
    closing: bool,
}

pub struct Monitor {
    engine: Engine,
    container: Container,
    epoll: OwnedFd,
    listener: UnixListener,
    clients: BTreeMap<u64, Client>,
    next_token: u64,
    run: Option<Run>,
    stdin_buf: Vec<u8>,
    log: LogWriter,
    mounted: bool,
    stop_timer: OwnedFd,
    restart_timer: OwnedFd,
    trim_timer: OwnedFd,
    oom_recheck_timer: OwnedFd,
    pub(super) health: Option<Health>,
    /// A stop was asked: no restart; SIGKILL when the stop timer fires.
    stopping: bool,
    /// The policy's next delay (docker: 100 ms, doubling, at most 1 min).
    backoff: Duration,
    output_paused: bool,
    /// Close the container's stdin once `stdin_buf` is written.
    stdin_close_pending: bool,
    /// A removed container's files, deleted just before exiting.
    trash: Option<std::path::PathBuf>,
    /// The running container's cgroup and its OOM notifications.
    oom: Option<(Cgroup, OomNotifier)>,
    /// The cgroup's OOM kill counter as far as `oom` events were sent.
    oom_kills_told: u64,
    done: bool,
}

/// docker's restart decision after an exit.
pub fn should_restart(
    policy: &RestartPolicy,
    exit_code: i32,
    manually_stopped: bool,
    restart_count: i64,
) -> bool {
    if manually_stopped {
        return false;
    }
    match policy.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            exit_code != 0
                && (policy.maximum_retry_count == 0 || restart_count < policy.maximum_retry_count)
        }
        _ => false,
    }
}

fn timerfd() -> Result<OwnedFd> {
    rustix::time::timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
    )
    .ctx(|| "create a timer".into())
}

pub(super) fn arm(timer: &OwnedFd, after: Option<Duration>) {
    let value = match after {
        Some(d) => Timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: (d.subsec_nanos().max(if d.is_zero() { 1 } else { 0 })) as _,
        },
        None => Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
    };
    let spec = Itimerspec {
        it_interval: Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: value,
    };
    let _ = rustix::time::timerfd_settime(timer, TimerfdTimerFlags::empty(), &spec);
}

pub(super) fn drain_timer(timer: &OwnedFd) {
    let mut buf = [0u8; 8];
    let _ = rustix::io::read(timer, &mut buf);
}

fn set_nonblocking(fd: BorrowedFd) {
    if let Ok(flags) = rustix::fs::fcntl_getfl(fd) {
        let _ = rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK);
    }
}

impl Monitor {
    pub fn new(mut engine: Engine, id: &str, first_client: Option<OwnedFd>) -> Result<Monitor> {
        let container = record::get(engine.conn(), id)?
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?;
        let paths = engine.paths.clone();
        let run_dir = paths.run_dir(id);
        std::fs::create_dir_all(&run_dir).at("create run directory", &run_dir)?;
        let dir_fd = rustix::fs::open(
            &run_dir,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .at("open", &run_dir)?;
        // Through the directory's descriptor: socket paths are limited to
        // 108 bytes, state roots are not.
        let short = format!(
            "/proc/self/fd/{}/attach.sock",
            std::os::fd::AsRawFd::as_raw_fd(&dir_fd)
        );
        let _ = std::fs::remove_file(&short);
        let listener = UnixListener::bind(&short).at("listen on", &paths.socket(id))?;
        drop(dir_fd);
        listener
            .set_nonblocking(true)
            .at("listen on", &paths.socket(id))?;
        let container_dir = paths.container_dir(id);
        std::fs::create_dir_all(&container_dir).at("create container directory", &container_dir)?;
        let log_opts = LogOptions::parse(
            &container.def.host_config.log_config.typ,
            &container.def.host_config.log_config.config,
        )?;
        let log = LogWriter::open(&paths.log_path(id), log_opts)?;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).ctx(|| "create epoll".into())?;
        let mut m = Monitor {
            engine,
            container,
            epoll,
            listener,
            clients: BTreeMap::new(),
            next_token: T_CLIENTS,
            run: None,
            stdin_buf: Vec::new(),
            log,
            mounted: false,
            stop_timer: timerfd()?,
            restart_timer: timerfd()?,
            trim_timer: timerfd()?,
            oom_recheck_timer: timerfd()?,
            health: None,
            stopping: false,
            backoff: Duration::from_millis(100),
            output_paused: false,
            stdin_close_pending: false,
            trash: None,
            oom: None,
            oom_kills_told: 0,
            done: false,
        };
        m.watch(m.listener.as_fd(), T_LISTENER, EventFlags::IN)?;
        m.watch(m.stop_timer.as_fd(), T_STOP_TIMER, EventFlags::IN)?;
        m.watch(m.restart_timer.as_fd(), T_RESTART_TIMER, EventFlags::IN)?;
        m.watch(m.trim_timer.as_fd(), T_TRIM_TIMER, EventFlags::IN)?;
        m.watch(m.oom_recheck_timer.as_fd(), T_OOM_RECHECK, EventFlags::IN)?;
        if let Some(fd) = first_client {
            let sock = UnixStream::from(fd);
            // The starter wrote its request before spawning us: read it
            // now, so the client is attached before the container starts.
            let request = proto::read_line(&mut &sock, 4096)
                .ok()
                .flatten()
                .and_then(|l| serde_json::from_str::<Request>(&l).ok());
            let token = m.add_client(sock)?;
            if let Some(req) = request {
                m.handle_request(token, req);
            }
        }
        Ok(m)
    }

    fn watch(&self, fd: BorrowedFd, token: u64, flags: EventFlags) -> Result<()> {
        epoll::add(&self.epoll, fd, EventData::new_u64(token), flags)
            .ctx(|| "watch a descriptor".into())
    }

    fn unwatch(&self, fd: BorrowedFd) {
        let _ = epoll::delete(&self.epoll, fd);
    }

    fn add_client(&mut self, sock: UnixStream) -> Result<u64> {
        sock.set_nonblocking(true)
            .ctx(|| "make a client socket non-blocking".into())?;
        let token = self.next_token;
        self.next_token += 1;
        self.watch(sock.as_fd(), token, EventFlags::IN | EventFlags::RDHUP)?;
        self.clients.insert(
            token,
            Client {
                sock,
                kind: ClientKind::Pending,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                closing: false,
            },
        );
        Ok(token)
    }

    /// Starts the container for the first time and tells the starter.
    pub fn first_start(&mut self, ready: &mut Option<OwnedFd>) -> Result<()> {
        match self.start_run() {
            Ok(()) => {
                crate::failpoint::crash_at("shim:recorded");
                crate::timeline::mark("shim:recorded");
                if let Some(fd) = ready.take() {
                    super::report(fd, &Ready::default());
                }
                Ok(())
            }
            Err(e) => {
                let status = e.exit_status();
                let message = e.to_string();
                self.record_start_failure(&message, status);
                let reply = ExitReply {
                    status_code: status,
                    error: Some(message.clone()),
                };
                if self.container.def.host_config.auto_remove {
                    self.auto_remove();
                }
                if let Some(fd) = ready.take() {
                    super::report(
                        fd,
                        &Ready {
                            error: Some(message),
                            status,
                        },
                    );
                }
                self.notify_exit(&reply);
                self.flush_clients();
                self.finish();
                self.done = true;
                Ok(())
            }
        }
    }

    fn record_start_failure(&mut self, message: &str, status: i32) {
        let conn = self.engine.conn();
        if let Ok(Some(c)) = record::get(conn, &self.container.id) {
            self.container = c;
        }
        let mut state = self.container.state.clone();
        state.exit_code = status;
        state.error = message.to_string();
        state.pid = 0;
        if state.status.is_active() {
            state.status = Status::Exited;
            state.finished_at = now_nanos();
        }
        let _ = record::save_state(self.engine.conn(), &self.container.id, &state);
        self.container.state = state;
    }

    fn start_run(&mut self) -> Result<()> {
        let container = self.container.clone();
        let run = start::start(&mut self.engine, &container, &mut self.mounted)?;
        let me = quai_runtime::procfs::ProcessIdentity::of(std::process::id() as i32)
            .ctx(|| "read the monitor's own process identity".into())?;
        self.watch(run.pidfd.as_fd(), T_PIDFD, EventFlags::IN)?;
        for (fd, token) in [(&run.stdout, T_STDOUT), (&run.stderr, T_STDERR)] {
            if let Some(fd) = fd {
                set_nonblocking(fd.as_fd());
                self.watch(fd.as_fd(), token, EventFlags::IN)?;
            }
        }
        if let Some(fd) = &run.stdin {
            if !run.pty {
                set_nonblocking(fd.as_fd());
            }
        }
        let health = Health::new(
            &container,
            &self.epoll,
            self.engine.paths.runtime_root(),
            run.started,
        )?;
        let tx = self.engine.store.db().write()?;
        let fresh = record::get(&tx, &container.id)?
            .ok_or_else(|| EngineError::NoSuchContainer(container.id.clone()))?;
        let mut state = fresh.state.clone();
        state.status = Status::Running;
        state.pid = run.pid;
        state.monitor = Some(me);
        state.exit_code = 0;
        state.error.clear();
        state.started_at = run.started;
        state.oom_killed = false;
        state.manually_stopped = false;
        state.health = health.as_ref().map(|h| h.state());
        record::save_state(&tx, &container.id, &state)?;
        record::container_event(&tx, &fresh, "start")?;
        tx.commit()?;
        self.container = fresh;
        self.container.state = state;
        self.run = Some(run);
        self.output_paused = false;
        self.health = health;
        self.watch_oom();
        Ok(())
    }

    /// Watches the container's cgroup for OOM kills (docker's `oom`
    /// event, `State.OOMKilled`). A host without a memory controller has
    /// nothing to watch.
    fn watch_oom(&mut self) {
        let runtime = quai_runtime::Runtime::new(&self.engine.paths.runtime_root());
        let cgroup = runtime
            .ok()
            .and_then(|rt| rt.state(&self.container.id).ok())
            .and_then(|s| s.record.cgroup);
        let Some(cgroup) = cgroup else { return };
        self.oom_kills_told = cgroup.oom_kill_count().unwrap_or(0);
        match cgroup.oom_notifier() {
            Ok(notifier) => {
                if self.watch(notifier.as_fd(), T_OOM, EventFlags::IN).is_ok() {
                    self.oom = Some((cgroup, notifier));
                }
            }
            Err(e) => tracing::debug!("no OOM notifications for {}: {e}", self.container.id),
        }
    }

    fn on_oom_event(&mut self) {
        let Some((cgroup, notifier)) = &mut self.oom else {
            return;
        };
        match notifier.read_events() {
            Ok(OomEvents::Oom(_)) if cgroup.oom_kill_count().is_err() => {
                // Kernels without a kill counter (< 4.13): one event per
                // notification read.
                self.record_oom(1);
            }
            Ok(OomEvents::Oom(_)) => {
                // One burst of memory pressure notifies several times
                // (v1 signals every failed charge); docker sends one `oom`
                // event per process the kernel killed: the kill counter
                // tells how many, now and once more a little later.
                self.record_untold_oom_kills();
                arm(&self.oom_recheck_timer, Some(OOM_RECHECK_DELAY));
            }
            Ok(OomEvents::None) => {}
            Ok(OomEvents::CgroupRemoved) | Err(_) => {
                self.record_untold_oom_kills();
                self.stop_watching_oom();
            }
        }
    }

    /// Sends the `oom` events of kills the counter has that were not
    /// told yet.
    fn record_untold_oom_kills(&mut self) {
        let Some((cgroup, _)) = &self.oom else { return };
        let count = cgroup.oom_kill_count().unwrap_or(0);
        let untold = count.saturating_sub(self.oom_kills_told);
        self.oom_kills_told = self.oom_kills_told.max(count);
        self.record_oom(untold);
    }

    fn stop_watching_oom(&mut self) {
        arm(&self.oom_recheck_timer, None);
        if let Some((_, notifier)) = self.oom.take() {
            self.unwatch(notifier.as_fd());
        }
    }

    /// The kernel killed `kills` processes of the container for lack of
    /// memory: one `oom` event each, and the run is recorded as
    /// OOM-killed (docker's `State.OOMKilled`).
    fn record_oom(&mut self, kills: u64) {
        if kills == 0 {
            return;
        }
        self.container.state.oom_killed = true;
        let c = self.container.clone();
        let saved = (|| -> Result<()> {
            let tx = self.engine.store.db().write()?;
            tx.execute(
                "UPDATE containers SET oom_killed = 1 WHERE id = ?1",
                [&c.id],
            )?;
            for _ in 0..kills {
                record::container_event(&tx, &c, "oom")?;
            }
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = saved {
            tracing::warn!("record the OOM kill of {}: {e}", c.id);
        }
    }

    /// A paused container that is asked to stop (its stop signal or
    /// SIGKILL) is thawed so that the signal is delivered, as docker does.
    fn thaw_if_paused(&mut self) {
        if !self.recorded_paused() {
            return;
        }
        if let Ok(rt) = quai_runtime::Runtime::new(&self.engine.paths.runtime_root()) {
            if rt.resume(&self.container.id).is_ok() {
                let _ = self.engine.conn().execute(
                    "UPDATE containers SET status = 'running' WHERE id = ?1 AND status = 'paused'",
                    [&self.container.id],
                );
            }
        }
    }

    /// Whether the container is paused (`pause`, or frozen by `commit`):
    /// other commands record that in its row.
    fn recorded_paused(&mut self) -> bool {
        let status: Option<String> = self
            .engine
            .conn()
            .query_row(
                "SELECT status FROM containers WHERE id = ?1",
                [&self.container.id],
                |r| r.get(0),
            )
            .ok();
        status.as_deref() == Some(Status::Paused.as_str())
    }

    /// The loop; returns when the container has exited for good.
    pub fn run(&mut self) {
        // Start-up is over: what it paged in is not needed while waiting
        // (if the container runs for long).
        arm(&self.trim_timer, Some(TRIM_DELAY));
        let mut events: Vec<Event> = Vec::with_capacity(32);
        while !self.done {
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                None,
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break,
            }
            for ev in events.iter() {
                let token = ev.data.u64();
                let flags = ev.flags;
                self.dispatch(token, flags);
                if self.done {
                    break;
                }
            }
        }
        self.finish();
    }

    fn dispatch(&mut self, token: u64, flags: EventFlags) {
        match token {
            T_LISTENER => self.accept(),
            T_PIDFD => self.on_exit(),
            T_STDOUT => self.read_output(Stream::Stdout),
            T_STDERR => self.read_output(Stream::Stderr),
            T_STDIN => self.flush_stdin(),
            T_STOP_TIMER => {
                drain_timer(&self.stop_timer);
                self.signal(9);
            }
            T_TRIM_TIMER => {
                drain_timer(&self.trim_timer);
                if self.run.is_some() {
                    crate::sys::trim_memory();
                }
            }
            T_RESTART_TIMER => {
                drain_timer(&self.restart_timer);
                self.restart();
            }
            T_HEALTH_TIMER | T_HEALTH_PIDFD | T_HEALTH_OUT => self.health_event(token),
            T_OOM => self.on_oom_event(),
            T_OOM_RECHECK => {
                drain_timer(&self.oom_recheck_timer);
                self.record_untold_oom_kills();
            }
            t if t >= T_CLIENTS => self.client_event(t, flags),
            _ => {}
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    let _ = self.add_client(sock);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    fn read_output(&mut self, stream: Stream) {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let fd = match (&self.run, stream) {
                (Some(r), Stream::Stdout) => r.stdout.as_ref(),
                (Some(r), Stream::Stderr) => r.stderr.as_ref(),
                _ => None,
            };
            let Some(fd) = fd else { return };
            match rustix::io::read(fd, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => {
                    self.close_output(stream);
                    return;
                }
                Ok(n) => {
                    self.output(stream, &buf[..n]);
                    if self.output_paused {
                        return;
                    }
                }
                Err(rustix::io::Errno::AGAIN) => return,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    self.close_output(stream);
                    return;
                }
            }
        }
    }

    fn close_output(&mut self, stream: Stream) {
        if let Some(run) = &mut self.run {
            let slot = match stream {
                Stream::Stdout => &mut run.stdout,
                Stream::Stderr => &mut run.stderr,
            };
            if let Some(fd) = slot.take() {
                let _ = epoll::delete(&self.epoll, &fd);
            }
        }
    }

    fn output(&mut self, stream: Stream, data: &[u8]) {
        let _ = self.log.write(stream, data, now_nanos());
        let kind = match stream {
            Stream::Stdout => proto::STDOUT,
            Stream::Stderr => proto::STDERR,
        };
        let tokens: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| match c.kind {
                ClientKind::Attach { stdout, stderr, .. } => match stream {
                    Stream::Stdout => stdout,
                    Stream::Stderr => stderr,
                },
                _ => false,
            })
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            if let Some(c) = self.clients.get_mut(&t) {
                c.outbuf.extend_from_slice(&proto::header(kind, data.len()));
                c.outbuf.extend_from_slice(data);
            }
            self.flush_client(t);
        }
        self.update_backpressure();
    }

    fn update_backpressure(&mut self) {
        let backlog = self
            .clients
            .values()
            .map(|c| c.outbuf.len())
            .max()
            .unwrap_or(0);
        let pause = backlog > CLIENT_BACKLOG;
        if pause == self.output_paused {
            return;
        }
        self.output_paused = pause;
        let flags = if pause {
            EventFlags::empty()
        } else {
            EventFlags::IN
        };
        if let Some(run) = &self.run {
            for (fd, token) in [(&run.stdout, T_STDOUT), (&run.stderr, T_STDERR)] {
                if let Some(fd) = fd {
                    let _ = epoll::modify(&self.epoll, fd, EventData::new_u64(token), flags);
                }
            }
        }
        if !pause {
            self.read_output(Stream::Stdout);
            self.read_output(Stream::Stderr);
        }
    }

    fn client_event(&mut self, token: u64, flags: EventFlags) {
        if flags.contains(EventFlags::OUT) {
            self.flush_client(token);
        }
        if flags.intersects(EventFlags::IN | EventFlags::HUP | EventFlags::RDHUP | EventFlags::ERR)
        {
            self.read_client(token);
        }
    }

    fn read_client(&mut self, token: u64) {
        let mut buf = [0u8; 16 * 1024];
        let mut closed = false;
        loop {
            let Some(c) = self.clients.get_mut(&token) else {
                return;
            };
            match (&c.sock).read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            if c.inbuf.len() > proto::MAX_FRAME * 2 {
                closed = true;
                break;
            }
        }
        self.process_client_input(token);
        if closed {
            self.drop_client(token);
        }
    }

    fn process_client_input(&mut self, token: u64) {
        loop {
            let Some(c) = self.clients.get_mut(&token) else {
                return;
            };
            match c.kind {
                ClientKind::Pending => {
                    let Some(pos) = c.inbuf.iter().position(|b| *b == b'\n') else {
                        if c.inbuf.len() > 4096 {
                            self.drop_client(token);
                        }
                        return;
                    };
                    let line: Vec<u8> = c.inbuf.drain(..=pos).collect();
                    match serde_json::from_slice::<Request>(&line) {
                        Ok(req) => self.handle_request(token, req),
                        Err(e) => {
                            self.reply(
                                token,
                                Reply {
                                    error: Some(format!("bad request: {e}")),
                                    exit: None,
                                },
                            );
                            return;
                        }
                    }
                }
                ClientKind::Attach { stdin, .. } => {
                    let frame = match proto::take_frame(&mut c.inbuf) {
                        Ok(Some(f)) => f,
                        Ok(None) => return,
                        Err(_) => {
                            self.drop_client(token);
                            return;
                        }
                    };
                    match frame {
                        (proto::STDIN, data) if stdin => self.write_stdin(&data),
                        (proto::CLOSE_STDIN, _)
                            if stdin && self.container.def.config.stdin_once =>
                        {
                            self.close_stdin()
                        }
                        (proto::RESIZE, data) if data.len() == 4 => {
                            let rows = u16::from_be_bytes([data[0], data[1]]);
                            let cols = u16::from_be_bytes([data[2], data[3]]);
                            self.resize(rows, cols);
                        }
                        _ => {}
                    }
                }
                ClientKind::Waiter => {
                    c.inbuf.clear();
                    return;
                }
            }
        }
    }

    fn handle_request(&mut self, token: u64, req: Request) {
        match req {
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                if let Some(c) = self.clients.get_mut(&token) {
                    c.kind = ClientKind::Attach {
                        stdin,
                        stdout,
                        stderr,
                    };
                }
            }
            Request::Wait => {
                if let Some(c) = self.clients.get_mut(&token) {
                    c.kind = ClientKind::Waiter;
                }
            }
            Request::Stop { signal, timeout } => {
                if let Some(c) = self.clients.get_mut(&token) {
                    c.kind = ClientKind::Waiter;
                }
                self.stop(signal, timeout);
            }
            Request::Kill { signal } => {
                let reply = if self.run.is_some() {
                    self.set_manually_stopped();
                    self.signal(signal);
                    Reply::default()
                } else {
                    Reply {
                        error: Some(format!(
                            "cannot kill container: {}: container {} is not running",
                            self.container.name, self.container.id
                        )),
                        exit: None,
                    }
                };
                self.reply(token, reply);
            }
            Request::Resize { height, width } => {
                self.resize(height, width);
                self.reply(token, Reply::default());
            }
        }
    }

    fn set_manually_stopped(&mut self) {
        self.stopping = true;
        self.container.state.manually_stopped = true;
        let _ = self.engine.conn().execute(
            "UPDATE containers SET manually_stopped = 1 WHERE id = ?1",
            [&self.container.id],
        );
    }

    fn stop(&mut self, signal: i32, timeout: i64) {
        self.set_manually_stopped();
        if self.run.is_none() {
            // Waiting to restart: stop waiting; it is exited now.
            arm(&self.restart_timer, None);
            self.container.state.status = Status::Exited;
            let _ = self.engine.conn().execute(
                "UPDATE containers SET status = 'exited' WHERE id = ?1",
                [&self.container.id],
            );
            self.finish_for_good(ExitReply {
                status_code: self.container.state.exit_code,
                error: None,
            });
            return;
        }
        self.signal(signal);
        if timeout >= 0 {
            arm(&self.stop_timer, Some(Duration::from_secs(timeout as u64)));
        }
    }

    fn signal(&mut self, signal: i32) {
        let Some(run) = &self.run else { return };
        let Some(sig) = crate::sys::signal(signal) else {
            return;
        };
        let _ = rustix::process::pidfd_send_signal(&run.pidfd, sig);
        if signal == 9 || signal == crate::lifecycle::stop_signal(&self.container) {
            self.thaw_if_paused();
        }
    }

    fn resize(&mut self, rows: u16, cols: u16) {
        if let Some(run) = &self.run {
            if run.pty {
                if let Some(fd) = &run.stdout {
                    let ws = rustix::termios::Winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(fd, ws);
                }
            }
        }
    }

    fn write_stdin(&mut self, data: &[u8]) {
        if self.run.as_ref().and_then(|r| r.stdin.as_ref()).is_none() {
            return;
        }
        if self.stdin_buf.len() + data.len() > STDIN_BACKLOG {
            return;
        }
        let was_empty = self.stdin_buf.is_empty();
        self.stdin_buf.extend_from_slice(data);
        if was_empty {
            self.flush_stdin();
        }
    }

    fn flush_stdin(&mut self) {
        let Some(fd) = self.run.as_ref().and_then(|r| r.stdin.as_ref()) else {
            self.stdin_buf.clear();
            return;
        };
        while !self.stdin_buf.is_empty() {
            match rustix::io::write(fd, &self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(rustix::io::Errno::AGAIN) => {
                    let _ = epoll::add(
                        &self.epoll,
                        fd,
                        EventData::new_u64(T_STDIN),
                        EventFlags::OUT,
                    );
                    return;
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    self.stdin_buf.clear();
                    break;
                }
            }
        }
        let _ = epoll::delete(&self.epoll, fd);
        if self.stdin_close_pending {
            self.stdin_close_pending = false;
            self.close_stdin();
        }
    }

    fn close_stdin(&mut self) {
        if !self.stdin_buf.is_empty() {
            self.stdin_close_pending = true;
            return;
        }
        let Some(run) = &mut self.run else { return };
        if run.pty {
            // A terminal has no separate input to close: send EOF (^D).
            if let Some(fd) = &run.stdin {
                let _ = rustix::io::write(fd, &[4]);
            }
            return;
        }
        if let Some(fd) = run.stdin.take() {
            let _ = epoll::delete(&self.epoll, &fd);
        }
    }

    fn flush_client(&mut self, token: u64) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        while !c.outbuf.is_empty() {
            match (&c.sock).write(&c.outbuf) {
                Ok(0) => break,
                Ok(n) => {
                    c.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let _ = epoll::modify(
                        &self.epoll,
                        &c.sock,
                        EventData::new_u64(token),
                        EventFlags::IN | EventFlags::RDHUP | EventFlags::OUT,
                    );
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.drop_client(token);
                    return;
                }
            }
        }
        let closing = c.closing;
        let _ = epoll::modify(
            &self.epoll,
            &c.sock,
            EventData::new_u64(token),
            EventFlags::IN | EventFlags::RDHUP,
        );
        if closing {
            self.drop_client(token);
        }
        if self.output_paused {
            self.update_backpressure();
        }
    }

    /// A client left (detached, or its command ended): the container's
    /// stdin stays open; only an explicit end of input closes it.
    fn drop_client(&mut self, token: u64) {
        if let Some(c) = self.clients.remove(&token) {
            self.unwatch(c.sock.as_fd());
        }
    }

    fn reply(&mut self, token: u64, reply: Reply) {
        if let Some(c) = self.clients.get_mut(&token) {
            let mut line = serde_json::to_vec(&reply).unwrap_or_default();
            line.push(b'\n');
            c.outbuf.extend_from_slice(&line);
            c.closing = true;
        }
        self.flush_client(token);
    }

    /// Tells attached clients (EXIT frame) and waiters (reply line) how
    /// the container ended; they are closed once that is sent.
    fn notify_exit(&mut self, exit: &ExitReply) {
        let payload = serde_json::to_vec(exit).unwrap_or_default();
        let tokens: Vec<u64> = self.clients.keys().copied().collect();
        for t in tokens {
            let Some(c) = self.clients.get_mut(&t) else {
                continue;
            };
            match c.kind {
                ClientKind::Attach { .. } => {
                    c.outbuf
                        .extend_from_slice(&proto::header(proto::EXIT, payload.len()));
                    c.outbuf.extend_from_slice(&payload);
                    c.closing = true;
                    self.flush_client(t);
                }
                ClientKind::Waiter => self.reply(
                    t,
                    Reply {
                        error: None,
                        exit: Some(exit.clone()),
                    },
                ),
                ClientKind::Pending => {}
            }
        }
    }

    /// Sends what is queued to clients, blocking briefly: the monitor is
    /// about to exit.
    fn flush_clients(&mut self) {
        let tokens: Vec<u64> = self.clients.keys().copied().collect();
        for t in tokens {
            if let Some(c) = self.clients.get_mut(&t) {
                let _ = c.sock.set_nonblocking(false);
                let _ = c.sock.set_write_timeout(Some(Duration::from_secs(5)));
                let _ = (&c.sock).write_all(&c.outbuf);
                c.outbuf.clear();
            }
        }
        self.clients.clear();
    }

    fn on_exit(&mut self) {
        let Some(run) = self.run.take() else { return };
        crate::timeline::mark("shim:container-exited");
        self.unwatch(run.pidfd.as_fd());
        let status = rustix::process::waitpid(
            rustix::process::Pid::from_raw(run.pid),
            rustix::process::WaitOptions::empty(),
        );
        let exit_code = match status {
            Ok(Some((_, s))) => s
                .exit_status()
                .or_else(|| s.terminating_signal().map(|sig| 128 + sig))
                .unwrap_or(255),
            _ => 255,
        };
        // Collect what the container wrote before it went.
        self.run = Some(run);
        self.output_paused = false;
        self.read_output(Stream::Stdout);
        self.read_output(Stream::Stderr);
        let run = self.run.take().expect("put back above");
        for fd in [&run.stdout, &run.stderr].into_iter().flatten() {
            self.unwatch(fd.as_fd());
        }
        let mut run = run;
        let network = run.network.take();
        drop(run);
        self.stdin_buf.clear();
        let _ = self.log.flush_partial(now_nanos());
        arm(&self.stop_timer, None);
        if let Some(h) = self.health.take() {
            h.stop(&self.epoll);
        }
        // OOM kills the notifications have not told yet are in the counter.
        self.record_untold_oom_kills();
        self.stop_watching_oom();
        let _ = crate::remove::reap_runtime(&self.engine.paths, &self.container.id);
        // Rules and leases go before the host ports are let go.
        let _ = crate::netsetup::teardown_exited(&mut self.engine, &self.container);
        drop(network);
        crate::failpoint::crash_at("shim:exited");
        crate::timeline::mark("shim:runtime-reaped");

        let fresh = record::get(self.engine.conn(), &self.container.id)
            .ok()
            .flatten();
        if let Some(f) = fresh {
            self.container.name = f.name;
            self.container.state.manually_stopped |= f.state.manually_stopped;
            self.container.state.restart_count = f.state.restart_count;
            self.container.state.oom_killed |= f.state.oom_killed;
            self.container.state.health = f.state.health;
        }
        let ran_for =
            Duration::from_nanos((now_nanos() - run_started(&self.container)).max(0) as u64);
        let restart = !self.stopping
            && should_restart(
                &self.container.def.host_config.restart_policy,
                exit_code,
                self.container.state.manually_stopped,
                self.container.state.restart_count,
            );
        let mut state = self.container.state.clone();
        state.pid = 0;
        state.exit_code = exit_code;
        state.finished_at = now_nanos();
        state.status = if restart {
            Status::Restarting
        } else {
            Status::Exited
        };
        let c = self.container.clone();
        let saved = (|| -> Result<()> {
            let tx = self.engine.store.db().write()?;
            record::save_state(&tx, &c.id, &state)?;
            let mut attrs = record::container_attributes(&c);
            attrs.insert("exitCode".into(), exit_code.to_string());
            record::event(&tx, "container", "die", &c.id, &attrs)?;
            tx.commit()?;
            Ok(())
        })();
        let _ = saved;
        crate::timeline::mark("shim:exit-recorded");
        self.container.state = state;
        let reply = ExitReply {
            status_code: exit_code,
            error: None,
        };
        if restart {
            // Attached clients see this run end; waiters too (docker's
            // `wait` returns at each exit).
            self.notify_exit(&reply);
            if ran_for >= Duration::from_secs(10) {
                self.backoff = Duration::from_millis(100);
            }
            arm(&self.restart_timer, Some(self.backoff));
            self.backoff = (self.backoff * 2).min(Duration::from_secs(60));
            return;
        }
        self.finish_for_good(reply);
    }

    fn finish_for_good(&mut self, reply: ExitReply) {
        if self.container.def.host_config.auto_remove {
            self.auto_remove();
        }
        crate::timeline::mark("shim:removed");
        self.notify_exit(&reply);
        self.flush_clients();
        crate::timeline::mark("shim:exit-told");
        self.done = true;
    }

    fn restart(&mut self) {
        if self.stopping || self.run.is_some() {
            return;
        }
        let count = self.container.state.restart_count + 1;
        let _ = self.engine.conn().execute(
            "UPDATE containers SET restart_count = ?2 WHERE id = ?1",
            (&self.container.id, count),
        );
        self.container.state.restart_count = count;
        let started = self.start_run();
        arm(&self.trim_timer, Some(TRIM_DELAY));
        if let Err(e) = started {
            let message = e.to_string();
            let status = e.exit_status();
            self.record_start_failure(&message, status);
            self.finish_for_good(ExitReply {
                status_code: status,
                error: Some(message),
            });
        }
    }

    /// `--rm`: the container's files and row go once it has exited.
    fn auto_remove(&mut self) {
        let paths = self.engine.paths.clone();
        let id = self.container.id.clone();
        let _ = crate::remove::reap_runtime(&paths, &id);
        let marked = self.engine.conn().execute(
            "UPDATE containers SET status = 'removing' WHERE id = ?1",
            [&id],
        );
        if marked.is_err() {
            return;
        }
        crate::failpoint::crash_at("shim:removing");
        // The files move out of the way in one rename and are deleted
        // once the clients have been told (in `finish`): unmounting the
        // overlay syncs the upper file system, milliseconds on a busy disk
        // that `run --rm` need not wait for. Should this monitor die
        // first, the next `rm` or `system restore` deletes them.
        let me = quai_runtime::procfs::ProcessIdentity::of(std::process::id() as i32).ok();
        let moved = me.and_then(|me| {
            let trash = paths.trash_dir(&id, me.pid, me.start_time);
            std::fs::rename(paths.container_dir(&id), &trash)
                .ok()
                .map(|()| trash)
        });
        let removed = match moved {
            Some(trash) => {
                self.trash = Some(trash);
                Ok(())
            }
            None => {
                if self.mounted {
                    let _ = quai_image::snapshot::unmount(&paths.rootfs(&id));
                    self.mounted = false;
                }
                crate::logs::remove_all(&paths.log_path(&id));
                crate::remove::remove_files(&paths, &id)
            }
        };
        if removed.is_ok() {
            let c = self.container.clone();
            let _ = crate::remove::delete_record(self.engine.conn(), &paths, &c, true);
        }
    }

    /// Last steps before the monitor exits: the socket and bundle go.
    fn finish(&mut self) {
        let paths = self.engine.paths.clone();
        let _ = std::fs::remove_file(paths.socket(&self.container.id));
        let _ = std::fs::remove_file(paths.bundle(&self.container.id).join("config.json"));
        let _ = std::fs::remove_dir(paths.run_dir(&self.container.id));
        if let Some(trash) = self.trash.take() {
            self.mounted = false;
            let _ = crate::remove::remove_tree(&trash);
        }
        crate::timeline::mark("shim:files-removed");
        // Nobody waits for this (`run --rm` has its exit status already).
        self.keep_wal_short();
    }

    /// Checkpoints the database when its WAL has grown, so that the next
    /// quai command opens it without reading megabytes back. Called when
    /// no client waits on this monitor.
    pub fn keep_wal_short(&mut self) {
        let _ = self
            .engine
            .store
            .db()
            .checkpoint_if_wal_over(WAL_CHECKPOINT_BYTES, WAL_CHECKPOINT_PATIENCE);
    }

    fn health_event(&mut self, token: u64) {
        let Some(mut h) = self.health.take() else {
            return;
        };
        let running = self.run.is_some();
        // docker runs no health check while the container is paused: a
        // probe in a frozen container could only time out.
        if running && token == T_HEALTH_TIMER && self.recorded_paused() {
            h.skip_round();
        } else if running {
            let engine = &mut self.engine;
            if let Some(status) = h.event(token, engine, &self.container, &self.epoll) {
                self.container.state.health = Some(status);
                // A probe ran (through the runtime's exec): give back what
                // it paged in.
                crate::sys::trim_memory();
            }
        }
        self.health = Some(h);
    }
}

fn run_started(c: &Container) -> i64 {
    c.state.started_at
}
