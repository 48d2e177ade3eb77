//! `teamsync explain ACCOUNT [TEAM]`: asks the directory now, and says for
//! each team why the account is or is not a member.

use anyhow::bail;

use super::{connect, open_store, output};
use crate::config::Config;
use crate::directory::{GroupScope, LoginQuery};
use crate::exit::SUCCESS;
use crate::model::{AccountName, LoginOutcome, ObjectId, TeamName};
use crate::sync::explain::{self, LoginView, TeamView};

pub async fn run(
    config: &Config,
    account: &str,
    team: Option<&str>,
    json: bool,
) -> anyhow::Result<u8> {
    let account = AccountName::new(account)?;
    let team = team.map(TeamName::new).transpose()?;
    let store = open_store(config)?;
    let detail = store.account_detail(&account)?;
    let snapshot = store.sync_snapshot()?;
    let teams: Vec<TeamName> = match &team {
        Some(team) => {
            // Fails with "no team named ..." when there is none.
            store.links_of(team)?;
            vec![team.clone()]
        }
        None => store
            .list_teams()?
            .into_iter()
            .filter_map(|row| TeamName::new(&row.name).ok())
            .collect(),
    };
    let Some((_, logins)) = snapshot
        .accounts
        .iter()
        .find(|(name, _)| name.as_str().eq_ignore_ascii_case(account.as_str()))
    else {
        bail!("no service account named `{account}`");
    };
    let targets: Vec<ObjectId> = snapshot
        .links
        .iter()
        .filter(|link| teams.contains(&link.team))
        .map(|link| link.group.clone())
        .collect();

    let mut views = Vec::new();
    if !logins.is_empty() && !targets.is_empty() {
        let mut directory = connect(config).await?;
        let queries: Vec<LoginQuery> = logins
            .iter()
            .map(|login| LoginQuery {
                identity: login.identity.clone(),
                pinned: login.pinned.clone(),
            })
            .collect();
        let outcomes = directory
            .resolve_logins(&queries, &GroupScope::only(&targets))
            .await?;
        for (login, outcome) in logins.iter().zip(outcomes) {
            let chains = match &outcome {
                LoginOutcome::Active(found) => directory.group_chains(found, &targets).await?,
                _ => Vec::new(),
            };
            views.push(LoginView {
                identity: login.identity.clone(),
                outcome,
                chains,
            });
        }
        directory.close().await;
    }

    let has = |team: &TeamName, source: &str| {
        detail
            .teams
            .iter()
            .any(|t| t.team.eq_ignore_ascii_case(team.as_str()) && t.source == source)
    };
    let explanations: Vec<_> = teams
        .iter()
        .map(|team| {
            let view = TeamView {
                team: team.clone(),
                links: snapshot
                    .links
                    .iter()
                    .filter(|link| &link.team == team)
                    .cloned()
                    .collect(),
                manual_member: has(team, "manual"),
                directory_member: has(team, "directory"),
            };
            explain::explain(&view, &views)
        })
        .collect();

    if json {
        output::json(&explanations)?;
        return Ok(SUCCESS);
    }
    for explanation in &explanations {
        println!(
            "{} {} {}:",
            account,
            if explanation.member {
                "IS a member of"
            } else {
                "is not a member of"
            },
            explanation.team
        );
        for reason in &explanation.reasons {
            println!("  - {reason}");
        }
    }
    Ok(SUCCESS)
}
