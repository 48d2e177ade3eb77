//! Prometheus metrics of the daemon, and the small HTTP endpoint that
//! serves them (`GET /metrics`, OpenMetrics text format).
//!
//! prometheus-client keeps and encodes the metrics; the endpoint answers one
//! fixed request, so a few lines on tokio's TcpListener serve it without an
//! HTTP framework.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::store::StoreCounts;
use crate::sync::PassReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

pub struct Metrics {
    registry: Registry,
    last_success: Gauge<i64>,
    pass_duration: Gauge<f64, AtomicU64>,
    passes: Family<OutcomeLabel, Counter>,
    changes: Family<ActionLabel, Counter>,
    failed_logins: Gauge<i64>,
    directory_errors: Family<KindLabel, Counter>,
    ldap_requests: Counter,
    linked_accounts: Gauge<i64>,
    linked_teams: Gauge<i64>,
    stale: Gauge<i64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("teamsync");
        let metrics = Metrics {
            last_success: Gauge::default(),
            pass_duration: Gauge::default(),
            passes: Family::default(),
            changes: Family::default(),
            failed_logins: Gauge::default(),
            directory_errors: Family::default(),
            ldap_requests: Counter::default(),
            linked_accounts: Gauge::default(),
            linked_teams: Gauge::default(),
            stale: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last pass that applied its plan",
            metrics.last_success.clone(),
        );
        registry.register(
            "pass_duration_seconds",
            "Duration of the last pass",
            metrics.pass_duration.clone(),
        );
        registry.register(
            "passes",
            "Passes by outcome (success, partial, refused, failed)",
            metrics.passes.clone(),
        );
        registry.register(
            "membership_changes",
            "Applied membership changes by action",
            metrics.changes.clone(),
        );
        registry.register(
            "failed_logins",
            "Logins that could not be read in the last pass",
            metrics.failed_logins.clone(),
        );
        registry.register(
            "directory_errors",
            "Passes that failed on the directory, by kind of failure",
            metrics.directory_errors.clone(),
        );
        registry.register(
            "ldap_requests",
            "LDAP requests sent",
            metrics.ldap_requests.clone(),
        );
        registry.register(
            "linked_accounts",
            "Service accounts with at least one external login",
            metrics.linked_accounts.clone(),
        );
        registry.register(
            "linked_teams",
            "Teams linked to at least one directory group",
            metrics.linked_teams.clone(),
        );
        registry.register(
            "stale",
            "1 when no pass has succeeded for sync.stale_after",
            metrics.stale.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    pub fn record_report(&self, report: &PassReport, duration: Duration) {
        self.passes
            .get_or_create(&OutcomeLabel {
                outcome: report.outcome().to_owned(),
            })
            .inc();
        self.pass_duration.set(duration.as_secs_f64());
        self.ldap_requests.inc_by(report.ldap_requests);
        self.failed_logins.set(report.failed_logins.len() as i64);
        if report.applied {
            self.last_success.set(unix_now());
            for (action, count) in [("add", report.added), ("remove", report.removed)] {
                self.changes
                    .get_or_create(&ActionLabel {
                        action: action.to_owned(),
                    })
                    .inc_by(count as u64);
            }
        }
    }

    pub fn record_failure(&self, kind: &str, duration: Duration) {
        self.passes
            .get_or_create(&OutcomeLabel {
                outcome: "failed".to_owned(),
            })
            .inc();
        self.pass_duration.set(duration.as_secs_f64());
        self.directory_errors
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn set_last_success(&self, at: SystemTime) {
        if let Ok(since) = at.duration_since(UNIX_EPOCH) {
            self.last_success.set(since.as_secs() as i64);
        }
    }

    pub fn set_counts(&self, counts: &StoreCounts) {
        self.linked_accounts.set(counts.linked_accounts);
        self.linked_teams.set(counts.linked_teams);
    }

    pub fn set_stale(&self, stale: bool) {
        self.stale.set(i64::from(stale));
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Serves `GET /metrics` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (mut socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let read =
                tokio::time::timeout(Duration::from_secs(5), socket.read(&mut request)).await;
            let Ok(Ok(len)) = read else {
                return;
            };
            let line = String::from_utf8_lossy(&request[..len]);
            let response = if line.starts_with("GET /metrics ") || line.starts_with("GET / ") {
                let body = metrics.encode();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                tracing::debug!(%peer, "metrics endpoint: not found");
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_counts_appear_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.record_failure("connect", Duration::from_millis(1500));
        metrics.set_stale(true);
        let text = metrics.encode();
        assert!(
            text.contains("teamsync_passes_total{outcome=\"failed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("teamsync_directory_errors_total{kind=\"connect\"} 1"),
            "{text}"
        );
        assert!(text.contains("teamsync_stale 1"), "{text}");
        assert!(
            text.contains("teamsync_pass_duration_seconds 1.5"),
            "{text}"
        );
    }
}
