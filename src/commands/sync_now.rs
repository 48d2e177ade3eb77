//! `teamsync --sync-now`: one pass under the pass lock.

use super::output;
use crate::cli::Cli;
use crate::config::Config;
use crate::exit::{FAILURE, SUCCESS, TEMPORARY};
use crate::sync::{self, PassOptions};

pub async fn run(config: &Config, cli: &Cli) -> anyhow::Result<u8> {
    let options = PassOptions {
        dry_run: cli.dry_run,
        allow_removals: cli.allow_removals,
    };
    let report = sync::run_recorded(config, options, config.sync.lock_wait).await?;
    if cli.json {
        output::json(&report)?;
    } else {
        print!("{}", report.to_text());
    }
    if let Some(removals) = report.refused_removals {
        tracing::error!(
            removals,
            limit = config.sync.max_removals,
            "removal guard refused the pass; nothing was applied"
        );
        return Ok(TEMPORARY);
    }
    if !report.failed_logins.is_empty() {
        for failed in &report.failed_logins {
            tracing::warn!(account = %failed.account, error = %failed.error, "login could not be read; account left as it was");
        }
        return Ok(FAILURE);
    }
    Ok(SUCCESS)
}
