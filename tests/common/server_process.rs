//! The process of a directory server under test (a Samba DC or slapd): run
//! in the foreground by its script (`SCRIPT start DIR`), polled with
//! `SCRIPT probe DIR` until it answers LDAPS, stopped with SIGTERM.
//! [`super::samba::SambaDc`], [`super::slapd::Slapd`] and the benchmark's
//! servers own one each.
//!
//! The server dies with the test process, panics included: it runs under
//! `setpriv --pdeathsig KILL`, spawned by one thread that never exits
//! (PR_SET_PDEATHSIG fires when the spawning *thread* exits).

#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may ignore SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the readiness probe runs.
const POLL: Duration = Duration::from_millis(100);
/// Lines of the server's output that failure messages quote.
const LOG_TAIL_LINES: usize = 40;

/// A server's process, running or not. Dropping it stops the server.
pub struct ServerProcess {
    /// The server's name in messages: "samba" or "slapd".
    what: &'static str,
    /// `scripts/samba-dc.sh` or `scripts/slapd.sh`.
    script: PathBuf,
    /// The server's folder, as provisioned by the script.
    dir: PathBuf,
    /// Where it listens, for messages.
    ip: String,
    /// The server's stdout and stderr, relative to `dir`.
    log: &'static str,
    ready_timeout: Duration,
    child: Mutex<Option<Child>>,
}

impl ServerProcess {
    /// A handle on the server provisioned in `dir`; nothing runs until
    /// [`ServerProcess::spawn_and_wait`].
    pub fn new(
        what: &'static str,
        script: PathBuf,
        dir: &Path,
        ip: &str,
        log: &'static str,
        ready_timeout: Duration,
    ) -> ServerProcess {
        ServerProcess {
            what,
            script,
            dir: dir.to_owned(),
            ip: ip.to_owned(),
            log,
            ready_timeout,
            child: Mutex::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Spawns `SCRIPT start DIR` (output appended to the log) and polls
    /// `SCRIPT probe DIR` until it succeeds; returns how long that took.
    /// Panics with the log's tail if the server exits first or does not
    /// answer within the ready timeout.
    pub fn spawn_and_wait(&self) -> Duration {
        let started = Instant::now();
        let mut guard = self.lock_child();
        assert!(
            guard.is_none(),
            "{} already runs for {}",
            self.what,
            self.dir.display()
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(self.log))
            .unwrap_or_else(|err| {
                panic!(
                    "cannot open {}'s log in {}: {err}",
                    self.what,
                    self.dir.display()
                )
            });
        let log2 = log
            .try_clone()
            .unwrap_or_else(|err| panic!("cannot clone a file handle: {err}"));
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(&self.script)
            .arg("start")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = guard.insert(spawn_from_immortal_thread(cmd));

        loop {
            if let Ok(Some(status)) = child.try_wait() {
                *guard = None;
                panic!(
                    "{} for {} exited before answering LDAPS ({status}); its output:\n{}",
                    self.what,
                    self.dir.display(),
                    self.log_tail()
                );
            }
            if self.probe() {
                return started.elapsed();
            }
            if started.elapsed() > self.ready_timeout {
                panic!(
                    "{} on {} did not answer LDAPS within {:?}; its output:\n{}",
                    self.what,
                    self.ip,
                    self.ready_timeout,
                    self.log_tail()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Stops the server (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and waits
    /// until it has exited; nothing if it does not run.
    pub fn stop(&self) {
        let child = self.lock_child().take();
        if let Some(child) = child {
            self.terminate(child);
        }
    }

    /// Stops the server if it runs, starts it again and waits until it
    /// answers; returns how long the start took.
    pub fn restart(&self) -> Duration {
        self.stop();
        self.spawn_and_wait()
    }

    /// Whether the server's process is running.
    pub fn is_running(&self) -> bool {
        match self.lock_child().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last lines the server wrote to its stdout/stderr, for failure
    /// messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join(self.log)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Whether `SCRIPT probe DIR` succeeds: the server answers LDAPS.
    fn probe(&self) -> bool {
        Command::new(&self.script)
            .arg("probe")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|err| panic!("cannot run {} probe: {err}", self.script.display()))
            .success()
    }

    /// SIGTERM, then SIGKILL if the server has not exited after [`STOP_TIMEOUT`].
    fn terminate(&self, mut child: Child) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    eprintln!(
                        "{} for {} ignored SIGTERM; killing it",
                        self.what,
                        self.dir.display()
                    );
                    let _ = child.kill();
                    return child.wait().unwrap_or_else(|err| {
                        panic!(
                            "cannot reap {} for {}: {err}",
                            self.what,
                            self.dir.display()
                        )
                    });
                }
            }
        }
    }

    fn lock_child(&self) -> MutexGuard<'_, Option<Child>> {
        // A panic while holding the lock leaves the Option consistent.
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `cmd` from a thread that never exits, so that `--pdeathsig` fires
/// only when the whole test process goes away, not when the test thread
/// that started the server finishes.
fn spawn_from_immortal_thread(cmd: Command) -> Child {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name("server-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // The sender lives in a static, so this is never reached; if
                // it were, exiting would kill every server spawned here.
                loop {
                    thread::park();
                }
            })
            .unwrap_or_else(|err| panic!("cannot start the server spawner thread: {err}"));
        tx
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    let program = format!("{cmd:?}");
    spawner
        .send((cmd, reply_tx))
        .unwrap_or_else(|err| panic!("the server spawner thread is gone: {err}"));
    reply_rx
        .recv()
        .unwrap_or_else(|err| panic!("the server spawner thread did not answer: {err}"))
        .unwrap_or_else(|err| panic!("cannot spawn {program} (setpriv is in util-linux): {err}"))
}
