//! Starting, stopping, killing, waiting for and removing containers.
//! Commands that change a container hold its lock; each re-reads the row
//! after locking and repairs it first when its monitor died ([`repair`]).

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::client;
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::lock::ContainerLock;
use crate::proto::{ExitReply, Request};
use crate::record::{self, Container, Status};
use crate::remove;
use crate::units::{now_nanos, parse_signal};

/// Which streams an attach wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl Engine {
    /// Finds a container by id, name or id prefix. One recorded as running
    /// whose monitor died is repaired first (unless another command holds
    /// its lock: that one repairs it).
    pub fn container(&mut self, name_or_id: &str) -> Result<Container> {
        let mut c = record::find(self.conn(), name_or_id)?;
        if c.state.status.is_active() && !c.monitor_alive() {
            if let Some(_lock) = ContainerLock::try_acquire(&self.paths, &c.id)? {
                if let Some(fresh) = record::get(self.conn(), &c.id)? {
                    c = fresh;
                    self.repair(&mut c)?;
                }
            }
        }
        Ok(c)
    }

    /// Every container (newest first), with containers whose monitor died
    /// repaired on the way (when nobody else holds their lock).
    pub fn list(&mut self) -> Result<Vec<Container>> {
        let mut all = record::list(self.conn())?;
        for c in all.iter_mut() {
            if c.state.status.is_active() && !c.monitor_alive() {
                if let Some(_lock) = ContainerLock::try_acquire(&self.paths, &c.id)? {
                    if let Some(fresh) = record::get(self.conn(), &c.id)? {
                        *c = fresh;
                        self.repair(c)?;
                    }
                }
            }
        }
        Ok(all)
    }

    /// A container marked running whose monitor is gone (killed, or the
    /// machine rebooted): whatever is left of its processes is killed, its
    /// runtime state removed, and it is recorded as exited (255, docker's
    /// status for a container that died with its supervisor).
    pub(crate) fn repair(&mut self, c: &mut Container) -> Result<()> {
        if !c.state.status.is_active() || c.monitor_alive() {
            return Ok(());
        }
        remove::reap_runtime(&self.paths, &c.id)?;
        // Without the runtime's record (a reboot emptied the run root) the
        // cgroup still names every process the container left.
        crate::resources::remove_leftover_cgroup(&c.def.host_config, &c.id)?;
        // What the dead monitor held on its networks: rules, veths, leases.
        crate::netsetup::teardown(self.store.db().conn(), &self.paths, &c.id)?;
        let _ = std::fs::remove_dir_all(self.paths.run_dir(&c.id));
        let mut state = c.state.clone();
        state.status = Status::Exited;
        state.pid = 0;
        state.exit_code = 255;
        state.finished_at = now_nanos();
        if state.error.is_empty() {
            state.error = "the container's monitor exited unexpectedly".into();
        }
        let tx = self.store.db().write()?;
        record::save_state(&tx, &c.id, &state)?;
        let mut attrs = record::container_attributes(c);
        attrs.insert("exitCode".into(), "255".into());
        record::event(&tx, "container", "die", &c.id, &attrs)?;
        tx.commit()?;
        c.state = state;
        Ok(())
    }

    /// Locks a container and returns its fresh, repaired record.
    pub(crate) fn locked(&mut self, name_or_id: &str) -> Result<(ContainerLock, Container)> {
        let found = self.container(name_or_id)?;
        let lock = ContainerLock::acquire(&self.paths, &found.id)?;
        let mut c = record::get(self.conn(), &found.id)?
            .ok_or_else(|| EngineError::NoSuchContainer(name_or_id.to_string()))?;
        self.repair(&mut c)?;
        Ok((lock, c))
    }

    /// Starts a container (docker start). With `attach`, the returned
    /// stream is attached before the container starts, so no output is
    /// missed; the monitor sends an EXIT frame when it ends.
    pub fn start(
        &mut self,
        name_or_id: &str,
        attach: Option<Streams>,
    ) -> Result<Option<UnixStream>> {
        let (_lock, c) = self.locked(name_or_id)?;
        self.start_locked(&c, attach)
    }

    pub(crate) fn start_locked(
        &mut self,
        c: &Container,
        attach: Option<Streams>,
    ) -> Result<Option<UnixStream>> {
        match c.state.status {
            Status::Running | Status::Restarting | Status::Paused => {
                return match attach {
                    Some(streams) => self.attach_to(c, streams).map(Some),
                    None => Ok(None),
                };
            }
            Status::Removing | Status::Dead => {
                return Err(EngineError::conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    c.id
                )))
            }
            Status::Created | Status::Exited => {}
        }
        if c.monitor_alive() && c.state.status == Status::Created {
            // The monitor of a start that failed (its exit code recorded)
            // may still be on its way out; one that stays is another
            // start's, whose command died while it was starting.
            wait_for_monitor_exit(c, Duration::from_secs(2));
        }
        if c.monitor_alive() && c.state.status == Status::Created {
            return Err(EngineError::conflict(format!(
                "container {} is being started",
                c.id
            )));
        }
        // A monitor that recorded the exit may still be cleaning up.
        wait_for_monitor_exit(c, Duration::from_secs(10));
        let request = attach.map(|streams| Request::Attach {
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
        });
        let (ready, ours) = match (self.pending_monitor.take(), request) {
            (Some(pending), request) => {
                self.launcher.hand_over(pending, &c.id, request.as_ref())?
            }
            (None, Some(request)) => {
                let (a, b) = UnixStream::pair()
                    .map_err(|e| EngineError::io("create the attach socket", e))?;
                client::send_request(&a, &request)?;
                (self.launcher.launch(&self.paths, &c.id, Some(b))?, Some(a))
            }
            (None, None) => (self.launcher.launch(&self.paths, &c.id, None)?, None),
        };
        if let Some(message) = ready.error {
            return Err(EngineError::StartFailed {
                message,
                status: if ready.status == 0 { 125 } else { ready.status },
            });
        }
        Ok(ours)
    }

    fn attach_to(&mut self, c: &Container, streams: Streams) -> Result<UnixStream> {
        let sock = client::connect(&self.paths, &c.id)?;
        client::send_request(
            &sock,
            &Request::Attach {
                stdin: streams.stdin,
                stdout: streams.stdout,
                stderr: streams.stderr,
            },
        )?;
        Ok(sock)
    }

    /// Attaches to a running container (docker attach).
    pub fn attach(&mut self, name_or_id: &str, streams: Streams) -> Result<UnixStream> {
        let mut c = self.container(name_or_id)?;
        self.repair_unlocked(&mut c)?;
        if !c.state.status.is_active() {
            return Err(EngineError::conflict(
                "You cannot attach to a stopped container, start it first",
            ));
        }
        if c.state.status == Status::Paused {
            return Err(EngineError::conflict(
                "You cannot attach to a paused container, unpause it first",
            ));
        }
        self.attach_to(&c, streams)
    }

    fn repair_unlocked(&mut self, c: &mut Container) -> Result<()> {
        if c.state.status.is_active() && !c.monitor_alive() {
            let (_lock, fresh) = self.locked(&c.id)?;
            *c = fresh;
        }
        Ok(())
    }

    /// Waits until the container is not running (docker wait) and returns
    /// how it ended.
    pub fn wait(&mut self, name_or_id: &str) -> Result<ExitReply> {
        let mut c = self.container(name_or_id)?;
        self.repair_unlocked(&mut c)?;
        if c.state.status.is_active() {
            if let Ok(reply) = client::request(&self.paths, &c.id, &Request::Wait, None) {
                if let Some(exit) = reply.exit {
                    return Ok(exit);
                }
            }
            // The monitor went away without replying: the row tells.
            wait_for_monitor_exit(&c, Duration::from_secs(10));
            match record::get(self.conn(), &c.id)? {
                Some(mut fresh) => {
                    self.repair_unlocked(&mut fresh)?;
                    c = fresh;
                }
                // Removed (--rm) meanwhile: docker reports the exit it saw.
                None => {
                    return Ok(ExitReply {
                        status_code: c.state.exit_code,
                        error: None,
                    })
                }
            }
        }
        Ok(ExitReply {
            status_code: c.state.exit_code,
            error: (!c.state.error.is_empty()).then(|| c.state.error.clone()),
        })
    }

    /// Stops a container (docker stop): its stop signal, then SIGKILL
    /// after `timeout` seconds (default: its StopTimeout, else 10).
    pub fn stop(
        &mut self,
        name_or_id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let (_lock, c) = self.locked(name_or_id)?;
        self.stop_locked(&c, timeout, signal)
    }

    pub(crate) fn stop_locked(
        &mut self,
        c: &Container,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        if !c.state.status.is_active() {
            return Ok(());
        }
        let signal = match signal {
            Some(s) => parse_signal(s)?,
            None => stop_signal(c),
        };
        let timeout = timeout.or(c.def.config.stop_timeout).unwrap_or(10);
        let req = Request::Stop { signal, timeout };
        let patience = if timeout < 0 {
            None
        } else {
            Some(Duration::from_secs(timeout as u64 + 30))
        };
        match client::request(&self.paths, &c.id, &req, patience) {
            Ok(reply) => {
                if let Some(e) = reply.error {
                    return Err(EngineError::conflict(e));
                }
            }
            Err(e) => {
                // An unresponsive monitor: take it down with the container.
                if c.monitor_alive() {
                    kill_monitor(c);
                } else {
                    return Err(e);
                }
            }
        }
        wait_for_monitor_exit(c, Duration::from_secs(10));
        let mut fresh = record::get(self.conn(), &c.id)?;
        if let Some(f) = &mut fresh {
            self.repair(f)?;
        }
        Ok(())
    }

    /// Sends a signal to a running container (docker kill).
    pub fn kill(&mut self, name_or_id: &str, signal: Option<&str>) -> Result<()> {
        let (_lock, c) = self.locked(name_or_id)?;
        let signal = parse_signal(signal.unwrap_or("KILL"))?;
        if c.state.status != Status::Running && c.state.status != Status::Paused {
            return Err(EngineError::conflict(format!(
                "cannot kill container: {}: container {} is not running",
                c.name, c.id
            )));
        }
        let reply = client::request(
            &self.paths,
            &c.id,
            &Request::Kill { signal },
            Some(Duration::from_secs(30)),
        )?;
        match reply.error {
            Some(e) => Err(EngineError::conflict(e)),
            None => Ok(()),
        }
    }

    /// docker restart: stop (if running), then start.
    pub fn restart(
        &mut self,
        name_or_id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let (_lock, c) = self.locked(name_or_id)?;
        self.stop_locked(&c, timeout, signal)?;
        let fresh = record::get(self.conn(), &c.id)?
            .ok_or_else(|| EngineError::NoSuchContainer(name_or_id.to_string()))?;
        self.start_locked(&fresh, None)?;
        record::container_event(self.conn(), &fresh, "restart")?;
        Ok(())
    }

    /// Resizes the container's terminal.
    pub fn resize(&mut self, name_or_id: &str, height: u16, width: u16) -> Result<()> {
        let c = self.container(name_or_id)?;
        client::request(
            &self.paths,
            &c.id,
            &Request::Resize { height, width },
            Some(Duration::from_secs(10)),
        )?;
        Ok(())
    }

    /// Removes a container (docker rm): a running one only with `force`
    /// (killed first); with `volumes`, its anonymous volumes too.
    pub fn remove(&mut self, name_or_id: &str, force: bool, volumes: bool) -> Result<String> {
        let (_lock, c) = self.locked(name_or_id)?;
        if c.state.status.is_active() {
            if !force {
                return Err(EngineError::conflict(format!(
                    "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
                    c.name,
                    c.state.status.as_str()
                )));
            }
            self.stop_locked(&c, Some(0), Some("KILL"))?;
        }
        // A monitor still alive (one starting the container for a command
        // that died) goes first, with whatever it started.
        if let Some(fresh) = record::get(self.conn(), &c.id)? {
            if fresh.monitor_alive() {
                kill_monitor(&fresh);
            }
        }
        let paths = self.paths.clone();
        self.conn().execute(
            "UPDATE containers SET status = 'removing' WHERE id = ?1",
            [&c.id],
        )?;
        remove::reap_runtime(&paths, &c.id)?;
        crate::resources::remove_leftover_cgroup(&c.def.host_config, &c.id)?;
        crate::logs::remove_all(&paths.log_path(&c.id));
        remove::remove_files(&paths, &c.id)?;
        remove::delete_record(self.conn(), &paths, &c, volumes)?;
        remove::collect_trash(&paths);
        Ok(c.id.clone())
    }
}

/// The container's stop signal (its StopSignal, else SIGTERM).
pub fn stop_signal(c: &Container) -> i32 {
    c.def
        .config
        .stop_signal
        .as_deref()
        .and_then(|s| parse_signal(s).ok())
        .unwrap_or(15)
}

/// Waits (at most `limit`) for the container's recorded monitor to exit.
pub fn wait_for_monitor_exit(c: &Container, limit: Duration) {
    let Some(monitor) = c.state.monitor else {
        return;
    };
    let deadline = Instant::now() + limit;
    let Some(pid) = rustix::process::Pid::from_raw(monitor.pid) else {
        return;
    };
    let Ok(pidfd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    while monitor.is_alive() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::time::Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let _ = rustix::event::poll(&mut fds, Some(&ts));
    }
}

/// SIGKILLs the container's monitor (it did not answer).
fn kill_monitor(c: &Container) {
    if let Some(m) = c.state.monitor {
        let _ = quai_runtime::runtime::signal_process(m, rustix::process::Signal::KILL);
        wait_for_monitor_exit(c, Duration::from_secs(10));
    }
}
