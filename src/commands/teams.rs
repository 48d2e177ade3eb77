//! `teamsync team ...`: teams, their group links, manual members.

use anyhow::{Context, anyhow, bail};

use super::{connect, open_store, output};
use crate::cli::TeamCommand;
use crate::config::Config;
use crate::directory::GroupLookup;
use crate::exit::SUCCESS;
use crate::model::{AccountName, GroupRef, ObjectId, TeamName};
use crate::store::GroupLinkRow;

pub async fn run(config: &Config, command: TeamCommand) -> anyhow::Result<u8> {
    match command {
        TeamCommand::Create { name } => {
            let name = TeamName::new(&name)?;
            open_store(config)?.create_team(&name)?;
            println!("created team {name}");
        }
        TeamCommand::Delete { name } => {
            let name = TeamName::new(&name)?;
            open_store(config)?.delete_team(&name)?;
            println!("deleted team {name} with its links and memberships");
        }
        TeamCommand::List { output } => {
            let teams = open_store(config)?.list_teams()?;
            if output.json {
                output::json(&teams)?;
            } else {
                let rows: Vec<Vec<String>> = teams
                    .iter()
                    .map(|t| {
                        let groups: Vec<&str> = t.groups.iter().map(|g| g.label.as_str()).collect();
                        vec![
                            t.name.clone(),
                            t.members.to_string(),
                            if groups.is_empty() {
                                "-".into()
                            } else {
                                groups.join(", ")
                            },
                        ]
                    })
                    .collect();
                output::table(&["TEAM", "MEMBERS", "LINKED GROUPS"], &rows);
            }
        }
        TeamCommand::Link { team, group } => link(config, &team, &group).await?,
        TeamCommand::Unlink { team, group } => unlink(config, &team, &group).await?,
        TeamCommand::AddMember { team, account } => {
            let (team, account) = (TeamName::new(&team)?, AccountName::new(&account)?);
            open_store(config)?.add_manual_member(&team, &account)?;
            println!("added {account} to {team} (manual: sync never removes it)");
        }
        TeamCommand::RemoveMember { team, account } => {
            let (team, account) = (TeamName::new(&team)?, AccountName::new(&account)?);
            open_store(config)?.remove_manual_member(&team, &account)?;
            println!("removed the manual membership of {account} in {team}");
        }
        TeamCommand::Members { team, output } => {
            let members = open_store(config)?.team_members(&TeamName::new(&team)?)?;
            if output.json {
                output::json(&members)?;
            } else {
                let rows: Vec<Vec<String>> = members
                    .iter()
                    .map(|m| {
                        vec![
                            m.account.clone(),
                            m.source.clone(),
                            m.since.clone(),
                            output::or_dash(m.reason.as_deref()),
                        ]
                    })
                    .collect();
                output::table(&["ACCOUNT", "SOURCE", "SINCE", "REASON"], &rows);
            }
        }
    }
    Ok(SUCCESS)
}

async fn link(config: &Config, team: &str, group: &str) -> anyhow::Result<()> {
    let team = TeamName::new(team)?;
    let group_ref = GroupRef::parse(group)?;
    let store = open_store(config)?;
    // Fail on an unknown team before asking the directory anything.
    store.links_of(&team)?;
    let mut directory = connect(config).await?;
    let lookup = directory
        .find_group(&group_ref)
        .await
        .with_context(|| format!("looking up group {group_ref}"))?;
    let base_dn = directory.info().base_dn.clone();
    let our_domain = directory.ad_domain().await?.map_or_else(
        || "none: this is not Active Directory".to_owned(),
        |d| d.netbios,
    );
    directory.close().await;
    let found = match lookup {
        GroupLookup::Found(found) => found,
        GroupLookup::NotFound => {
            bail!("no group {group_ref} in {base_dn}: check the name, or give its DN or SID")
        }
        GroupLookup::NotAGroup { dn } => bail!("{dn} is not a group"),
        GroupLookup::Ambiguous { dns } => bail!(
            "{group_ref} matches {} groups ({}): give the DN or SID instead",
            dns.len(),
            dns.join("; ")
        ),
        GroupLookup::OtherDomain { domain } => {
            bail!("{domain} is not this directory's domain ({our_domain})")
        }
    };
    if !found.is_security {
        bail!(
            "{} is a distribution group: only security groups grant rights in Windows, so it cannot be linked",
            found.label
        );
    }
    store.link_group(&team, &found)?;
    // Directory names may hold control characters (even NUL): shown escaped.
    println!(
        "linked team {team} to {} ({}, {})",
        found.label.escape_debug(),
        found.id,
        found.dn.escape_debug()
    );
    Ok(())
}

/// Matches the group against the team's stored links first, so a group
/// deleted in AD (or a directory that is down) can still be unlinked.
async fn unlink(config: &Config, team: &str, group: &str) -> anyhow::Result<()> {
    let team = TeamName::new(team)?;
    let group_ref = GroupRef::parse(group)?;
    let store = open_store(config)?;
    let links = store.links_of(&team)?;
    let sid = match stored_match(&links, &group_ref) {
        Some(sid) => sid,
        None => {
            let mut directory = connect(config).await?;
            let lookup = directory.find_group(&group_ref).await?;
            directory.close().await;
            match lookup {
                GroupLookup::Found(found) => found.id,
                _ => {
                    return Err(anyhow!(
                        "team {team} has no link matching {group_ref}, and the directory knows no such group"
                    ));
                }
            }
        }
    };
    store.unlink_group(&team, &sid, &group_ref.to_string())?;
    println!("unlinked {group_ref} from team {team}");
    Ok(())
}

fn stored_match(links: &[GroupLinkRow], group: &GroupRef) -> Option<ObjectId> {
    let matches = |link: &GroupLinkRow| match group {
        GroupRef::Sid(sid) => link.id == sid.to_string(),
        GroupRef::Dn(dn) => link.dn.eq_ignore_ascii_case(dn),
        GroupRef::DownLevel { domain, name } => link
            .label
            .eq_ignore_ascii_case(&format!("{domain}\\{name}")),
        GroupRef::Name(name) => link
            .label
            .rsplit_once('\\')
            .is_some_and(|(_, stored)| stored.eq_ignore_ascii_case(name)),
    };
    links
        .iter()
        .find(|link| matches(link))
        .and_then(|link| ObjectId::parse(&link.id).ok())
}
