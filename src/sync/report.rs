//! Summing up a pass for people (text) and programs (`--json`).

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use super::plan::Plan;
use crate::model::{Action, Change};

/// How one change appears in `--json`.
#[derive(Serialize)]
struct ChangeLine<'a> {
    account: &'a str,
    team: &'a str,
    action: &'static str,
    reason: &'a str,
}

/// The plan's changes are moved into the report, not copied: a first full
/// pass can make tens of thousands.
fn serialize_changes<S: serde::Serializer>(
    changes: &[Change],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(changes.iter().map(|change| ChangeLine {
        account: change.account.as_str(),
        team: change.team.as_str(),
        action: change.action.as_str(),
        reason: &change.reason,
    }))
}

#[derive(Debug, Clone, Serialize)]
pub struct HeldTeam {
    pub team: String,
    pub reason: String,
    pub removals_waiting: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedLogin {
    pub account: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub dry_run: bool,
    /// Nothing changed in the directory or the store since the last full
    /// pass: no login was read.
    pub unchanged: bool,
    /// Whether the changes were written to the store.
    pub applied: bool,
    pub added: usize,
    pub removed: usize,
    #[serde(serialize_with = "serialize_changes")]
    pub changes: Vec<Change>,
    /// Logins that could not be read; their accounts were left as they were.
    pub failed_logins: Vec<FailedLogin>,
    /// Set when the removal guard refused the pass: the removals it refused.
    pub refused_removals: Option<usize>,
    /// Teams whose removals wait for a second pass (a linked group vanished).
    pub held_teams: Vec<HeldTeam>,
    pub ldap_requests: u64,
    pub duration_ms: u128,
}

impl PassReport {
    pub fn new(plan: &Plan, dry_run: bool, ldap_requests: u64) -> PassReport {
        PassReport {
            dry_run,
            unchanged: false,
            applied: false,
            added: plan.added(),
            removed: plan.removed(),
            // Moved in by the pass once it is done with them.
            changes: Vec::new(),
            failed_logins: plan
                .held
                .iter()
                .flat_map(|held| {
                    held.failures.iter().map(|error| FailedLogin {
                        account: held.account.to_string(),
                        error: error.clone(),
                    })
                })
                .collect(),
            refused_removals: plan.refused_removals,
            held_teams: plan
                .held_teams
                .iter()
                .map(|(team, reason, removals)| HeldTeam {
                    team: team.to_string(),
                    reason: reason.clone(),
                    removals_waiting: *removals,
                })
                .collect(),
            ldap_requests,
            duration_ms: 0,
        }
    }

    /// success, partial (some logins held), refused, or dry-run.
    pub fn outcome(&self) -> &'static str {
        if self.dry_run {
            "dry-run"
        } else if self.refused_removals.is_some() {
            "refused"
        } else if self.failed_logins.is_empty() {
            "success"
        } else {
            "partial"
        }
    }

    /// The report of a pass that found nothing changed.
    pub fn unchanged(dry_run: bool, ldap_requests: u64) -> PassReport {
        PassReport {
            dry_run,
            unchanged: true,
            applied: false,
            added: 0,
            removed: 0,
            changes: Vec::new(),
            failed_logins: Vec::new(),
            refused_removals: None,
            held_teams: Vec::new(),
            ldap_requests,
            duration_ms: 0,
        }
    }

    pub fn finish(&mut self, elapsed: Duration) {
        self.duration_ms = elapsed.as_millis();
    }

    /// The human summary: one headline, then one line per change.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let headline = if self.dry_run {
            format!(
                "dry run: would add {} and remove {} memberships; nothing was written",
                self.added, self.removed
            )
        } else if let Some(removals) = self.refused_removals {
            format!(
                "refused: {removals} removals exceed sync.max_removals; nothing was applied (--allow-removals applies them)"
            )
        } else if self.unchanged {
            "sync complete: nothing changed since the last full pass".to_owned()
        } else {
            format!(
                "sync complete: {} added, {} removed",
                self.added, self.removed
            )
        };
        let _ = writeln!(
            out,
            "{headline} ({} failed logins, {} LDAP requests, {} ms)",
            self.failed_logins.len(),
            self.ldap_requests,
            self.duration_ms
        );
        for change in &self.changes {
            let sign = if change.action == Action::Add {
                "+"
            } else {
                "-"
            };
            let refused = if self.refused_removals.is_some() && change.action == Action::Remove {
                " [refused]"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{sign} {} {} team {}: {}{refused}",
                change.account, change.action, change.team, change.reason
            );
        }
        for held in &self.held_teams {
            let _ = writeln!(
                out,
                "! team {}: {} removals held: {}",
                held.team, held.removals_waiting, held.reason
            );
        }
        for failed in &self.failed_logins {
            let _ = writeln!(
                out,
                "! {}: left as it was: {}",
                failed.account, failed.error
            );
        }
        out
    }
}
