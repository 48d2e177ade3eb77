//! `teamsync account ...` and `teamsync login ...`: store-only commands.

use super::{open_store, output};
use crate::cli::{AccountCommand, LoginCommand};
use crate::config::Config;
use crate::exit::SUCCESS;
use crate::model::{AccountName, Identity};

pub fn account(config: &Config, command: AccountCommand) -> anyhow::Result<u8> {
    let store = open_store(config)?;
    match command {
        AccountCommand::Create { name, display_name } => {
            let name = AccountName::new(&name)?;
            store.create_account(&name, display_name.as_deref())?;
            println!("created service account {name} (API-only: it has no password)");
        }
        AccountCommand::List { output } => {
            let accounts = store.list_accounts()?;
            if output.json {
                output::json(&accounts)?;
            } else {
                let rows: Vec<Vec<String>> = accounts
                    .iter()
                    .map(|a| {
                        vec![
                            a.name.clone(),
                            output::or_dash(a.display_name.as_deref()),
                            if a.disabled { "disabled" } else { "enabled" }.to_owned(),
                            a.logins.to_string(),
                            a.teams.to_string(),
                        ]
                    })
                    .collect();
                output::table(
                    &["ACCOUNT", "DISPLAY NAME", "STATE", "LOGINS", "TEAMS"],
                    &rows,
                );
            }
        }
        AccountCommand::Show { name, output } => {
            let detail = store.account_detail(&AccountName::new(&name)?)?;
            if output.json {
                output::json(&detail)?;
            } else {
                println!("account:  {}", detail.name);
                if let Some(display) = &detail.display_name {
                    println!("display:  {display}");
                }
                println!(
                    "state:    {}",
                    if detail.disabled {
                        "disabled"
                    } else {
                        "enabled"
                    }
                );
                println!("created:  {}", detail.created_at);
                println!("logins:");
                for login in &detail.logins {
                    let seen = match (&login.label, &login.object_id) {
                        (Some(label), Some(sid)) => format!("{label}, {sid}"),
                        (None, Some(sid)) => sid.clone(),
                        _ => "not found in the directory yet".to_owned(),
                    };
                    println!("  {} ({seen})", login.identity);
                }
                println!("teams:");
                for team in &detail.teams {
                    println!("  {} ({}, since {})", team.team, team.source, team.since);
                }
                let ids: Vec<String> = detail.api_key_ids.iter().map(i64::to_string).collect();
                println!(
                    "api keys: {}",
                    if ids.is_empty() {
                        "-".into()
                    } else {
                        ids.join(", ")
                    }
                );
            }
        }
        AccountCommand::Disable { name } => {
            let name = AccountName::new(&name)?;
            store.set_account_disabled(&name, true)?;
            println!("disabled {name}: its API keys are refused; its logins and teams are kept");
        }
        AccountCommand::Enable { name } => {
            let name = AccountName::new(&name)?;
            store.set_account_disabled(&name, false)?;
            println!("enabled {name}");
        }
        AccountCommand::Delete { name } => {
            let name = AccountName::new(&name)?;
            store.delete_account(&name)?;
            println!("deleted {name} with its logins, API keys and memberships");
        }
    }
    Ok(SUCCESS)
}

pub fn login(config: &Config, command: LoginCommand) -> anyhow::Result<u8> {
    // Parse before opening the store: a malformed identity is a usage error.
    let (account, identity, add) = match &command {
        LoginCommand::Add { account, identity } => (account, identity, true),
        LoginCommand::Remove { account, identity } => (account, identity, false),
    };
    let account = AccountName::new(account)?;
    let identity = Identity::parse(identity, config.directory.kind)?;
    let store = open_store(config)?;
    if add {
        store.add_login(&account, &identity)?;
        println!("linked {identity} to {account}; the next pass resolves it");
    } else {
        store.remove_login(&account, &identity)?;
        println!("unlinked {identity} from {account}");
    }
    Ok(SUCCESS)
}
