//! One reconcile pass: read the store, ask the directory, plan, then write
//! everything in one transaction, or nothing.
//!
//! The order is the safety argument: every directory read completes before
//! the first write, and any directory failure returns before the store is
//! touched, so "could not read" never becomes "remove".

pub mod explain;
pub mod lock;
pub mod plan;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Instant, SystemTime};

use anyhow::Context;

use crate::config::Config;
use crate::directory::{Directory, DirectoryError, GroupScope, LoginQuery, Watermark};
use crate::exit::RemovalsRefused;
use crate::model::{AccountInput, Change, LoginOutcome, ObjectId, ResolvedLogin, TeamName};
use crate::store::{
    Attempt, DirectoryMark, LinkMark, LoginPin, MarkUpdate, PassRecord, PassState, PassWrite,
    RunOutcome, Store, SyncSnapshot,
};
use plan::{Plan, RemovalPolicy};
pub use report::PassReport;

#[derive(Debug, Clone, Copy, Default)]
pub struct PassOptions {
    pub dry_run: bool,
    pub allow_removals: bool,
}

/// Runs one pass. `Ok` carries a report also when the removal guard
/// refused (the report says so); `Err` means nothing was applied.
pub async fn run_pass(
    config: &Config,
    store: &mut Store,
    options: PassOptions,
) -> anyhow::Result<PassReport> {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let snapshot = store.sync_snapshot().context("reading the store")?;

    let linked: Vec<ObjectId> = snapshot
        .links
        .iter()
        .map(|link| link.group.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Every directory request of the pass, under one deadline: a pass that
    // overruns applies nothing.
    let deadline = config.directory.pass_timeout;
    let read = tokio::time::timeout(deadline, read_directory(config, store, &snapshot, &linked))
        .await
        .map_err(|_| DirectoryError::Timeout {
            url: config.directory.url.clone(),
            during: "the pass (directory.timeouts.pass)".into(),
            after: deadline,
        })??;
    let (outcomes, present, watermark, ldap_requests) = match read {
        DirectoryRead::Unchanged { since, requests } => {
            let mut report = PassReport::unchanged(options.dry_run, requests);
            if !options.dry_run {
                store
                    .record_run(&PassRecord {
                        started_at,
                        outcome: RunOutcome::Success,
                        added: 0,
                        removed: 0,
                        failed_logins: 0,
                        detail: Some(format!(
                            "nothing changed in the directory or the store since the full pass at {since}"
                        )),
                    })
                    .context("recording the pass")?;
                report.applied = true;
            }
            report.finish(clock.elapsed());
            tracing::info!(ldap_requests = requests, since = %since, "nothing changed since the last full pass");
            return Ok(report);
        }
        DirectoryRead::Full {
            outcomes,
            present,
            watermark,
            requests,
        } => (outcomes, present, watermark, requests),
    };

    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "read the directory"
    );
    let (inputs, pins) = combine(&snapshot, outcomes);
    let (held_teams, link_marks) = vanished_groups(&snapshot, &linked, &present);
    let policy = RemovalPolicy {
        max_removals: config.sync.max_removals,
        allow_any: options.allow_removals,
    };
    let plan = plan::plan_holding(
        &inputs,
        &snapshot.links,
        &snapshot.current,
        policy,
        &held_teams,
    );
    // What the directory said is all in the plan now.
    drop(inputs);
    let mut report = PassReport::new(&plan, options.dry_run, ldap_requests);
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "planned the pass"
    );

    if options.dry_run {
        report.changes = plan.changes;
        report.finish(clock.elapsed());
        return Ok(report);
    }
    let record = PassRecord {
        started_at,
        outcome: outcome_of(&plan),
        added: plan.added(),
        removed: plan.removed(),
        failed_logins: report.failed_logins.len(),
        detail: refusal(&plan, config).map(|refused| refused.to_string()),
    };
    if plan.is_refused() {
        store
            .apply_pass(&PassWrite {
                record: &record,
                changes: &[],
                pins: &[],
                mark: MarkUpdate::Keep,
                link_marks: &link_marks,
            })
            .context("recording the refused pass")?;
    } else {
        store
            .apply_pass(&PassWrite {
                record: &record,
                changes: &plan.changes,
                pins: &pins,
                mark: mark_update(&plan, watermark),
                link_marks: &link_marks,
            })
            .context("writing the pass to the store")?;
        tracing::debug!(
            elapsed_ms = clock.elapsed().as_millis() as u64,
            "wrote the pass"
        );
        report.applied = true;
        log_changes(&plan.changes);
    }
    report.finish(clock.elapsed());
    tracing::info!(
        added = report.added,
        removed = report.removed,
        failed_logins = report.failed_logins.len(),
        refused = plan.is_refused(),
        ldap_requests,
        "pass finished"
    );
    report.changes = plan.changes;
    Ok(report)
}

/// Log lines of their own for at most this many changes of one pass.
const CHANGES_LOGGED: usize = 1000;

/// One line per change, up to [`CHANGES_LOGGED`], then one line for the
/// rest: a first full pass can make tens of thousands of changes, which
/// journald's rate limit (10,000 messages per 30 s by default) would drop
/// anyway, along with whatever came after them. Every change is in the
/// store's history (`sync_changes`) and in the `--json` report.
fn log_changes(changes: &[Change]) {
    for change in changes.iter().take(CHANGES_LOGGED) {
        tracing::info!(
            account = %change.account,
            team = %change.team,
            action = %change.action,
            reason = %change.reason,
            "membership changed"
        );
    }
    if let Some(more) = changes.len().checked_sub(CHANGES_LOGGED).filter(|n| *n > 0) {
        tracing::info!(
            more,
            "and {more} more membership changes, not logged one by one; the store's sync_changes table and the --json report list them all"
        );
    }
}

/// `Some(time of the last full pass)` when neither the directory (its
/// watermark) nor the store (its fingerprint) moved since that pass, and it
/// is younger than `sync.full_every`: then there is nothing to do.
fn unchanged_since(
    store: &Store,
    snapshot: &SyncSnapshot,
    watermark: Option<&Watermark>,
    config: &Config,
) -> anyhow::Result<Option<String>> {
    let (Some(watermark), Some(state)) = (watermark, store.directory_state()?) else {
        return Ok(None);
    };
    let same_directory =
        state.mark.source == watermark.source && state.mark.position == watermark.position;
    let same_store = state.store_fingerprint == snapshot.fingerprint();
    let fresh = humantime::parse_rfc3339(&state.full_pass_at)
        .ok()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_some_and(|age| age < config.sync.full_every);
    Ok((same_directory && same_store && fresh).then_some(state.full_pass_at))
}

/// Teams to hold because one of their linked groups vanished in this pass
/// for the first time, and the missing/present marks to record. A group
/// already found missing by the previous pass is confirmed gone: its
/// team's directory memberships go (within the removal guard).
fn vanished_groups(
    snapshot: &SyncSnapshot,
    linked: &[ObjectId],
    present: &BTreeSet<ObjectId>,
) -> (BTreeMap<TeamName, String>, Vec<LinkMark>) {
    let mut held = BTreeMap::new();
    let mut marks = Vec::new();
    for group in linked {
        let missing = !present.contains(group);
        let known_missing = snapshot.missing_groups.contains(group);
        if missing {
            marks.push(LinkMark::Missing(group.clone()));
            if known_missing {
                continue;
            }
            for link in snapshot.links.iter().filter(|l| &l.group == group) {
                tracing::warn!(team = %link.team, group = %link.label, "linked group not found in the directory; removals wait for the next pass to confirm");
                held.insert(
                    link.team.clone(),
                    format!(
                        "linked group {} was not found; its removals wait for the next pass to confirm",
                        link.label
                    ),
                );
            }
        } else if known_missing {
            marks.push(LinkMark::Present(group.clone()));
        }
    }
    (held, marks)
}

/// Only a full pass that read every login, and held no team, may vouch for
/// the next one.
fn mark_update(plan: &Plan, watermark: Option<Watermark>) -> MarkUpdate {
    match watermark {
        Some(mark) if plan.held.is_empty() && plan.held_teams.is_empty() => {
            MarkUpdate::Set(DirectoryMark {
                source: mark.source,
                position: mark.position,
            })
        }
        _ => MarkUpdate::Clear,
    }
}

/// What the directory said in one pass.
enum DirectoryRead {
    /// Neither the directory nor the store moved since the last full pass.
    Unchanged { since: String, requests: u64 },
    Full {
        outcomes: Vec<LoginOutcome>,
        present: BTreeSet<ObjectId>,
        watermark: Option<Watermark>,
        requests: u64,
    },
}

/// Everything a pass asks the directory; reads the store but writes nothing.
async fn read_directory(
    config: &Config,
    store: &Store,
    snapshot: &SyncSnapshot,
    linked: &[ObjectId],
) -> anyhow::Result<DirectoryRead> {
    let mut directory = Directory::connect(&config.directory).await?;
    let watermark = directory.watermark().await?;
    if let Some(since) = unchanged_since(store, snapshot, watermark.as_ref(), config)? {
        let requests = directory.requests();
        directory.close().await;
        return Ok(DirectoryRead::Unchanged { since, requests });
    }
    let queries: Vec<LoginQuery> = snapshot
        .accounts
        .iter()
        .flat_map(|(_, logins)| logins)
        .map(|login| LoginQuery {
            identity: login.identity.clone(),
            pinned: login.pinned.clone(),
        })
        .collect();
    // Only the linked groups matter to a pass.
    let outcomes = directory
        .resolve_logins(&queries, &GroupScope::only(linked))
        .await?;
    let present = directory.groups_present(linked).await?;
    let requests = directory.requests();
    directory.close().await;
    Ok(DirectoryRead::Full {
        outcomes,
        present,
        watermark,
        requests,
    })
}

fn outcome_of(plan: &Plan) -> RunOutcome {
    if plan.is_refused() {
        RunOutcome::Refused
    } else if plan.held.is_empty() {
        RunOutcome::Success
    } else {
        RunOutcome::Partial
    }
}

/// The guard's refusal as an error value, when it refused.
/// Runs one pass under the pass lock (waiting up to `lock_wait` for a
/// running one) and records its outcome in the state file beside the store.
/// A dry run records nothing.
pub async fn run_recorded(
    config: &Config,
    options: PassOptions,
    lock_wait: std::time::Duration,
) -> anyhow::Result<PassReport> {
    let _lock = lock::PassLock::acquire_within(&config.store.path, lock_wait).await?;
    let started = SystemTime::now();
    let clock = Instant::now();
    let result = async {
        let mut store = Store::open(&config.store.path, config.store.busy_timeout)
            .with_context(|| format!("opening the store {}", config.store.path.display()))?;
        run_pass(config, &mut store, options).await
    }
    .await;
    if options.dry_run {
        return result;
    }
    let mut state = PassState::load(&config.store.path).unwrap_or_default();
    let attempt = match &result {
        Ok(report) => {
            state.consecutive_failures = 0;
            Attempt {
                started_at: humantime::format_rfc3339_seconds(started).to_string(),
                duration_ms: clock.elapsed().as_millis() as u64,
                outcome: report.outcome().to_owned(),
                added: report.added,
                removed: report.removed,
                failed_logins: report.failed_logins.len(),
                error: report
                    .refused_removals
                    .map(|n| format!("{n} removals exceed sync.max_removals")),
            }
        }
        Err(err) => {
            state.consecutive_failures += 1;
            Attempt {
                started_at: humantime::format_rfc3339_seconds(started).to_string(),
                duration_ms: clock.elapsed().as_millis() as u64,
                outcome: "failed".to_owned(),
                added: 0,
                removed: 0,
                failed_logins: 0,
                error: Some(crate::exit::describe(err)),
            }
        }
    };
    state.last_attempt = Some(attempt);
    if let Err(err) = state.save(&config.store.path) {
        tracing::warn!(error = %err, "could not record the pass in the state file");
    }
    result
}

pub fn refusal(plan: &Plan, config: &Config) -> Option<RemovalsRefused> {
    plan.refused_removals.map(|removals| RemovalsRefused {
        removals,
        limit: config.sync.max_removals,
    })
}

/// Pairs each stored login with what the directory said, and collects the
/// pins worth writing: a first sighting, or a new DN or name.
fn combine(
    snapshot: &SyncSnapshot,
    outcomes: Vec<LoginOutcome>,
) -> (Vec<AccountInput>, Vec<LoginPin>) {
    let mut outcomes = outcomes.into_iter();
    let mut inputs = Vec::with_capacity(snapshot.accounts.len());
    let mut pins = Vec::new();
    for (account, logins) in &snapshot.accounts {
        let mut resolved = Vec::with_capacity(logins.len());
        for login in logins {
            // resolve_logins answers every query, in order.
            let outcome = outcomes
                .next()
                .unwrap_or_else(|| LoginOutcome::Failed("no answer for this login".into()));
            if let LoginOutcome::Active(found) | LoginOutcome::Disabled(found) = &outcome {
                let unchanged = login.pinned.as_ref() == Some(&found.id)
                    && login.dn.as_deref() == Some(found.dn.as_str())
                    && login.label.as_deref() == Some(found.label.as_str());
                if !unchanged {
                    pins.push(LoginPin {
                        login_id: login.login_id,
                        id: found.id.clone(),
                        dn: found.dn.clone(),
                        label: found.label.clone(),
                    });
                }
            }
            resolved.push(ResolvedLogin {
                identity: login.identity.clone(),
                outcome,
            });
        }
        inputs.push(AccountInput {
            account: account.clone(),
            logins: resolved,
        });
    }
    (inputs, pins)
}
