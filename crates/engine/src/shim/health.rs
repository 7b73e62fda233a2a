//! Health checks (`--health-cmd` …, the image's HEALTHCHECK): the monitor
//! runs the probe in the container through the runtime's exec every
//! interval, records the result (docker's `State.Health`, last 5 probes)
//! and emits `health_status` events when the status changes.

use std::os::fd::OwnedFd;
use std::time::Duration;

use oci_spec::runtime::Process;
use quai_runtime::{ExecOptions, Runtime, Stdio};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::fs::{Mode, OFlags};

use crate::engine::Engine;
use crate::error::{EngineError, IoContext, Result};
use crate::record::{self, Container};
use crate::types::{Health as HealthState, HealthLog};
use crate::units::{format_duration, now_nanos, rfc3339_nanos};

use super::monitor::{arm, drain_timer, T_HEALTH_OUT, T_HEALTH_PIDFD, T_HEALTH_TIMER};

const DEFAULT_INTERVAL: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
const DEFAULT_START_INTERVAL: i64 = 5_000_000_000;
const DEFAULT_RETRIES: i64 = 3;
/// docker keeps this much of a probe's output.
const MAX_OUTPUT: usize = 4096;
const MAX_LOG_ENTRIES: usize = 5;

struct Probe {
    pid: i32,
    pidfd: OwnedFd,
    out: Option<OwnedFd>,
    output: Vec<u8>,
    started: i64,
}

pub struct Health {
    test: Vec<String>,
    interval: i64,
    timeout: i64,
    retries: i64,
    start_period: i64,
    start_interval: i64,
    container_started: i64,
    timer: OwnedFd,
    probe: Option<Probe>,
    /// Start time and output of the probe that just ended.
    probe_started: i64,
    probe_output: Option<String>,
    state: HealthState,
    runtime_root: std::path::PathBuf,
}

fn or(v: i64, default: i64) -> i64 {
    if v > 0 {
        v
    } else {
        default
    }
}

impl Health {
    /// Health checking for a container that just started, or None when it
    /// has no check (or `--no-healthcheck`).
    pub fn new(
        c: &Container,
        epoll_fd: &OwnedFd,
        runtime_root: std::path::PathBuf,
        container_started: i64,
    ) -> Result<Option<Health>> {
        let Some(cfg) = &c.def.config.healthcheck else {
            return Ok(None);
        };
        let test = match cfg.test.first().map(String::as_str) {
            Some("CMD") => cfg.test[1..].to_vec(),
            Some("CMD-SHELL") => {
                let script = cfg.test[1..].join(" ");
                vec!["/bin/sh".into(), "-c".into(), script]
            }
            _ => return Ok(None),
        };
        if test.is_empty() {
            return Ok(None);
        }
        let timer = rustix::time::timerfd_create(
            rustix::time::TimerfdClockId::Monotonic,
            rustix::time::TimerfdFlags::CLOEXEC | rustix::time::TimerfdFlags::NONBLOCK,
        )
        .ctx(|| "create the health check timer".into())?;
        epoll::add(
            epoll_fd,
            &timer,
            EventData::new_u64(T_HEALTH_TIMER),
            EventFlags::IN,
        )
        .ctx(|| "watch the health check timer".into())?;
        let h = Health {
            test,
            interval: or(cfg.interval, DEFAULT_INTERVAL),
            timeout: or(cfg.timeout, DEFAULT_TIMEOUT),
            retries: or(cfg.retries, DEFAULT_RETRIES),
            start_period: cfg.start_period.max(0),
            start_interval: or(cfg.start_interval, DEFAULT_START_INTERVAL),
            container_started,
            timer,
            probe: None,
            probe_started: 0,
            probe_output: None,
            runtime_root,
            state: HealthState {
                status: "starting".into(),
                failing_streak: 0,
                log: Vec::new(),
            },
        };
        let first = h.next_delay(now_nanos());
        arm(&h.timer, Some(first));
        Ok(Some(h))
    }

    /// The state to record (docker's `State.Health`).
    pub fn state(&self) -> HealthState {
        self.state.clone()
    }

    fn in_start_period(&self, now: i64) -> bool {
        self.start_period > 0 && now < self.container_started + self.start_period
    }

    fn next_delay(&self, now: i64) -> Duration {
        let d = if self.in_start_period(now) && self.state.status == "starting" {
            self.start_interval.min(self.interval)
        } else {
            self.interval
        };
        Duration::from_nanos(d as u64)
    }

    /// Stops checking: kills a running probe.
    pub fn stop(mut self, epoll_fd: &OwnedFd) {
        let _ = epoll::delete(epoll_fd, &self.timer);
        if let Some(p) = self.probe.take() {
            let _ = rustix::process::pidfd_send_signal(&p.pidfd, rustix::process::Signal::KILL);
            let _ = epoll::delete(epoll_fd, &p.pidfd);
            if let Some(out) = &p.out {
                let _ = epoll::delete(epoll_fd, out);
            }
            let _ = rustix::process::waitpid(
                rustix::process::Pid::from_raw(p.pid),
                rustix::process::WaitOptions::empty(),
            );
        }
    }

    /// The check is due (or a probe overran) while the container is
    /// paused: no probe starts and nothing is recorded; the next one is
    /// due an interval later. A probe frozen with the container is given
    /// its timeout again (it cannot be reaped while frozen: a cgroup v1
    /// freezer holds even SIGKILL until the thaw).
    pub fn skip_round(&mut self) {
        drain_timer(&self.timer);
        let wait = if self.probe.is_some() {
            Duration::from_nanos(self.timeout as u64)
        } else {
            self.next_delay(now_nanos())
        };
        arm(&self.timer, Some(wait));
    }

    /// Handles a health event; returns the new state when it changed.
    pub fn event(
        &mut self,
        token: u64,
        engine: &mut Engine,
        c: &Container,
        epoll_fd: &OwnedFd,
    ) -> Option<HealthState> {
        match token {
            T_HEALTH_TIMER => {
                drain_timer(&self.timer);
                if self.probe.is_some() {
                    // The probe overran its timeout.
                    let timeout = format_duration(self.timeout);
                    self.end_probe(epoll_fd, true);
                    return self.record(
                        engine,
                        c,
                        -1,
                        format!("Health check exceeded timeout ({timeout})"),
                    );
                }
                if let Err(e) = self.start_probe(c, epoll_fd) {
                    let now = now_nanos();
                    arm(&self.timer, Some(self.next_delay(now)));
                    return self.record(engine, c, -1, e.to_string());
                }
                None
            }
            T_HEALTH_OUT => {
                self.read_output(epoll_fd);
                None
            }
            T_HEALTH_PIDFD => {
                self.read_output(epoll_fd);
                let status = self.end_probe(epoll_fd, false);
                let output = self.probe_output.take().unwrap_or_default();
                self.record(engine, c, status, output)
            }
            _ => None,
        }
    }

    fn start_probe(&mut self, c: &Container, epoll_fd: &OwnedFd) -> Result<()> {
        let runtime = Runtime::new(&self.runtime_root)?;
        let state = runtime.state(&c.id)?;
        let mut process: Process = state
            .record
            .spec
            .process()
            .clone()
            .ok_or_else(|| EngineError::invalid("the container has no process"))?;
        process.set_args(Some(self.test.clone()));
        process.set_terminal(Some(false));
        let null = rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .ctx(|| "open /dev/null".into())?;
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .ctx(|| "create the health check pipe".into())?;
        let w2 = w
            .try_clone()
            .ctx(|| "duplicate the health check pipe".into())?;
        let pid = runtime.exec(
            &c.id,
            &process,
            ExecOptions {
                stdio: Stdio::Fds([null, w, w2]),
                ..Default::default()
            },
        )?;
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid).ok_or_else(|| EngineError::invalid("pid 0"))?,
            rustix::process::PidfdFlags::empty(),
        )
        .ctx(|| "open a pidfd for the health check".into())?;
        if let Ok(flags) = rustix::fs::fcntl_getfl(&r) {
            let _ = rustix::fs::fcntl_setfl(&r, flags | OFlags::NONBLOCK);
        }
        let _ = epoll::add(
            epoll_fd,
            &pidfd,
            EventData::new_u64(T_HEALTH_PIDFD),
            EventFlags::IN,
        );
        let _ = epoll::add(
            epoll_fd,
            &r,
            EventData::new_u64(T_HEALTH_OUT),
            EventFlags::IN,
        );
        self.probe = Some(Probe {
            pid,
            pidfd,
            out: Some(r),
            output: Vec::new(),
            started: now_nanos(),
        });
        arm(&self.timer, Some(Duration::from_nanos(self.timeout as u64)));
        Ok(())
    }

    fn read_output(&mut self, epoll_fd: &OwnedFd) {
        let Some(p) = &mut self.probe else { return };
        let mut buf = [0u8; 4096];
        loop {
            let Some(fd) = &p.out else { return };
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => {
                    let _ = epoll::delete(epoll_fd, fd);
                    p.out = None;
                    return;
                }
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(p.output.len());
                    p.output.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
        }
    }

    /// Reaps the probe; returns its exit status.
    fn end_probe(&mut self, epoll_fd: &OwnedFd, kill: bool) -> i64 {
        let Some(p) = self.probe.take() else {
            return -1;
        };
        if kill {
            let _ = rustix::process::pidfd_send_signal(&p.pidfd, rustix::process::Signal::KILL);
        }
        let _ = epoll::delete(epoll_fd, &p.pidfd);
        if let Some(out) = &p.out {
            let _ = epoll::delete(epoll_fd, out);
        }
        let status = rustix::process::waitpid(
            rustix::process::Pid::from_raw(p.pid),
            rustix::process::WaitOptions::empty(),
        );
        self.probe_started = p.started;
        self.probe_output = Some(String::from_utf8_lossy(&p.output).into_owned());
        match status {
            Ok(Some((_, s))) => s.exit_status().map(|c| c as i64).unwrap_or(-1),
            _ => -1,
        }
    }

    fn record(
        &mut self,
        engine: &mut Engine,
        c: &Container,
        exit_code: i64,
        output: String,
    ) -> Option<HealthState> {
        let now = now_nanos();
        let start = if self.probe_started > 0 {
            self.probe_started
        } else {
            now
        };
        self.probe_started = 0;
        self.state.log.push(HealthLog {
            start: rfc3339_nanos(start),
            end: rfc3339_nanos(now),
            exit_code,
            output,
        });
        if self.state.log.len() > MAX_LOG_ENTRIES {
            let extra = self.state.log.len() - MAX_LOG_ENTRIES;
            self.state.log.drain(..extra);
        }
        let before = self.state.status.clone();
        if exit_code == 0 {
            self.state.failing_streak = 0;
            self.state.status = "healthy".into();
        } else if !self.in_start_period(now) || self.state.status != "starting" {
            self.state.failing_streak += 1;
            if self.state.failing_streak >= self.retries {
                self.state.status = "unhealthy".into();
            }
        }
        arm(&self.timer, Some(self.next_delay(now)));
        let json = serde_json::to_string(&self.state).ok();
        let conn = engine.conn();
        let _ = conn.execute(
            "UPDATE containers SET health = ?2 WHERE id = ?1",
            (&c.id, json),
        );
        if before != self.state.status {
            let _ =
                record::container_event(conn, c, &format!("health_status: {}", self.state.status));
        }
        Some(self.state.clone())
    }
}
