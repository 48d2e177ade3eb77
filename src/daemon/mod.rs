//! `teamsync daemon`: a pass at start, then one every `sync.interval`, never
//! two at once; retries with backoff; SIGTERM/SIGINT stop it, SIGHUP reloads
//! the config; readiness, status and watchdog through sd_notify.
//!
//! Shutdown and time come from outside the pass: a pass that is still
//! talking to the directory when SIGTERM arrives is dropped (it has written
//! nothing yet); the store write itself has no await point inside it, so it
//! is never cut in half.

mod notify;
pub mod schedule;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::directory::DirectoryError;
use crate::exit::PassLocked;
use crate::metrics::{self, Metrics};
use crate::store::{PassState, Store};
use crate::sync::{self, PassOptions, PassReport};

/// Runs until SIGTERM or SIGINT; returns the exit code.
pub async fn run(config_path: PathBuf, config: Config) -> anyhow::Result<u8> {
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;

    let mut daemon = Daemon::start(config).await?;
    notify::ready("started; first pass running");

    loop {
        let started = Instant::now();
        let pass = sync::run_recorded(
            &daemon.config,
            PassOptions::default(),
            daemon.config.sync.lock_wait,
        );
        let result = tokio::select! {
            result = pass => result,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        };
        let delay = daemon.after_pass(result, started.elapsed());

        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                _ = &mut wake => break,
                _ = terminate.recv() => return Ok(daemon.stop()),
                _ = interrupt.recv() => return Ok(daemon.stop()),
                _ = hangup.recv() => daemon.reload(&config_path),
            }
        }
    }
    Ok(daemon.stop())
}

struct Daemon {
    config: Config,
    metrics: Arc<Metrics>,
    last_success: Option<SystemTime>,
    failures: u32,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    /// Opens (and if needed creates) the store and starts the metrics
    /// endpoint and watchdog: what must work before READY=1.
    async fn start(config: Config) -> anyhow::Result<Daemon> {
        let store = Store::open(&config.store.path, config.store.busy_timeout)
            .with_context(|| format!("opening the store {}", config.store.path.display()))?;
        let last_success = store
            .last_applied_run()?
            .and_then(|run| humantime::parse_rfc3339(&run.finished_at).ok());
        let metrics = Arc::new(Metrics::new());
        metrics.set_counts(&store.counts()?);
        if let Some(at) = last_success {
            metrics.set_last_success(at);
        }
        drop(store);

        let mut background = Vec::new();
        if let Some(address) = config.metrics.listen {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("listening for metrics on {address} (metrics.listen)"))?;
            tracing::info!(%address, "serving metrics at /metrics");
            background.push(tokio::spawn(metrics::serve(listener, metrics.clone())));
        }
        if let Some(period) = notify::watchdog_period() {
            background.push(tokio::spawn(notify::watchdog(period)));
        }
        tracing::info!(
            interval = %humantime::format_duration(config.sync.interval),
            store = %config.store.path.display(),
            "daemon started"
        );
        Ok(Daemon {
            config,
            metrics,
            last_success,
            failures: 0,
            background,
        })
    }

    /// Records what a pass did and says how long to wait for the next one.
    fn after_pass(&mut self, result: anyhow::Result<PassReport>, took: Duration) -> Duration {
        let status = match result {
            Ok(report) => {
                self.failures = 0;
                self.metrics.record_report(&report, took);
                if report.applied {
                    self.last_success = Some(SystemTime::now());
                }
                if let Some(removals) = report.refused_removals {
                    tracing::error!(
                        removals,
                        limit = self.config.sync.max_removals,
                        "removal guard refused the pass; nothing was applied; run --sync-now --allow-removals after checking the directory"
                    );
                }
                format!(
                    "last pass {}: +{} -{}, {} failed logins",
                    report.outcome(),
                    report.added,
                    report.removed,
                    report.failed_logins.len()
                )
            }
            Err(err) if err.is::<PassLocked>() => {
                tracing::warn!("{}; this pass is skipped", crate::exit::describe(&err));
                "last pass skipped: another pass held the lock".to_owned()
            }
            Err(err) => {
                self.failures += 1;
                let kind = failure_kind(&err);
                self.metrics.record_failure(kind, took);
                tracing::error!(
                    kind,
                    failures = self.failures,
                    "pass failed, nothing applied: {}",
                    crate::exit::describe(&err)
                );
                format!("last pass failed ({kind}); memberships unchanged")
            }
        };
        self.check_stale();
        if let Ok(store) = Store::open(&self.config.store.path, self.config.store.busy_timeout)
            && let Ok(counts) = store.counts()
        {
            self.metrics.set_counts(&counts);
        }

        let sync = &self.config.sync;
        let delay = schedule::next_delay(
            sync.interval,
            sync.jitter,
            random_fraction(),
            sync.retry_initial,
            self.failures,
        );
        let next_at = SystemTime::now() + delay;
        record_next_pass(&self.config.store.path, next_at);
        let next = humantime::format_rfc3339_seconds(next_at);
        notify::status(&format!("{status}; next pass {next}"));
        tracing::debug!(%next, "next pass scheduled");
        delay
    }

    /// Logs an error every pass while no pass has succeeded for `stale_after`.
    fn check_stale(&self) {
        let stale_after = self.config.sync.stale_after;
        let age = self
            .last_success
            .map(|at| SystemTime::now().duration_since(at).unwrap_or_default());
        // Refused and failed passes alike leave last_success where it was.
        let stale = age.is_none_or(|age| age > stale_after);
        self.metrics.set_stale(stale);
        if stale {
            tracing::error!(
                since = %self.last_success.map_or("never".to_owned(), |at| humantime::format_rfc3339_seconds(at).to_string()),
                stale_after = %humantime::format_duration(stale_after),
                "no pass has succeeded for longer than sync.stale_after; memberships are kept as they were"
            );
        }
    }

    fn reload(&mut self, config_path: &Path) {
        notify::reloading();
        match Config::load(config_path) {
            Ok(config) => {
                if config.metrics.listen != self.config.metrics.listen
                    || config.store.path != self.config.store.path
                {
                    tracing::warn!(
                        "store.path and metrics.listen take effect at the next restart, not on reload"
                    );
                }
                let store = self.config.store.path.clone();
                let listen = self.config.metrics.listen;
                self.config = config;
                self.config.store.path = store;
                self.config.metrics.listen = listen;
                tracing::info!(config = %config_path.display(), "configuration reloaded");
            }
            Err(err) => {
                tracing::error!(
                    "configuration not reloaded, keeping the previous one: {}",
                    crate::exit::describe(&anyhow::Error::new(err))
                );
            }
        }
        notify::ready("configuration reloaded");
    }

    fn stop(self) -> u8 {
        notify::stopping();
        tracing::info!("daemon stopping");
        for task in self.background {
            task.abort();
        }
        crate::exit::SUCCESS
    }
}

fn failure_kind(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if let Some(directory) = cause.downcast_ref::<DirectoryError>() {
            return directory.kind();
        }
        if cause.is::<crate::store::StoreError>() {
            return "store";
        }
    }
    "other"
}

fn record_next_pass(store_path: &Path, at: SystemTime) {
    let mut state = PassState::load(store_path).unwrap_or_default();
    state.next_pass_at = Some(humantime::format_rfc3339_seconds(at).to_string());
    if let Err(err) = state.save(store_path) {
        tracing::warn!(error = %err, "could not record the next pass time");
    }
}

/// A number in [0, 1) from the OS random source, for jitter.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        // Jitter is a courtesy to the DCs: without randomness, none.
        Err(_) => 0.0,
    }
}
