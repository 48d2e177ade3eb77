//! `teamsync status`: read from the store and its state file, so it works
//! while the daemon runs.

use std::time::SystemTime;

use serde::Serialize;

use super::{open_store, output};
use crate::config::Config;
use crate::exit::SUCCESS;
use crate::store::{Attempt, PassState, RunRow, StoreCounts};

#[derive(Serialize)]
struct Status {
    last_pass: Option<Attempt>,
    last_success: Option<RunRow>,
    next_pass_at: Option<String>,
    consecutive_failures: u32,
    /// No pass has applied its plan for longer than sync.stale_after.
    stale: bool,
    counts: StoreCounts,
}

pub fn run(config: &Config, json: bool) -> anyhow::Result<u8> {
    let store = open_store(config)?;
    let state = PassState::load(&config.store.path)?;
    let last_success = store.last_applied_run()?;
    let counts = store.counts()?;
    let stale = match &last_success {
        Some(run) => humantime::parse_rfc3339(&run.finished_at)
            .ok()
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .is_some_and(|age| age > config.sync.stale_after),
        None => state.last_attempt.is_some(),
    };
    let status = Status {
        last_pass: state.last_attempt,
        last_success,
        next_pass_at: state.next_pass_at,
        consecutive_failures: state.consecutive_failures,
        stale,
        counts,
    };
    if json {
        output::json(&status)?;
        return Ok(SUCCESS);
    }
    match &status.last_pass {
        Some(pass) => {
            println!(
                "last pass:     {} ({} ms): {}, +{} -{}, {} failed logins",
                pass.started_at,
                pass.duration_ms,
                pass.outcome,
                pass.added,
                pass.removed,
                pass.failed_logins
            );
            if let Some(error) = &pass.error {
                println!("  error:       {error}");
            }
        }
        None => println!("last pass:     none yet"),
    }
    match &status.last_success {
        Some(run) => println!(
            "last success:  {} ({}, +{} -{})",
            run.finished_at, run.outcome, run.added, run.removed
        ),
        None => println!("last success:  never"),
    }
    println!(
        "next pass:     {}",
        status
            .next_pass_at
            .as_deref()
            .unwrap_or("not scheduled (is the daemon running?)")
    );
    if status.stale {
        println!(
            "STALE:         no pass has succeeded for longer than sync.stale_after ({})",
            humantime::format_duration(config.sync.stale_after)
        );
    }
    println!(
        "store:         {} service accounts, {} with logins ({} logins), {} linked teams",
        status.counts.service_accounts,
        status.counts.linked_accounts,
        status.counts.linked_logins,
        status.counts.linked_teams
    );
    Ok(SUCCESS)
}
