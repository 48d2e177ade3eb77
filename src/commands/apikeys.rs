//! `teamsync apikey ...`: create (printed once), list, revoke, verify.

use std::io::Read;

use anyhow::Context;

use super::{open_store, output};
use crate::apikey;
use crate::cli::ApikeyCommand;
use crate::config::Config;
use crate::exit::{FAILURE, SUCCESS};
use crate::model::AccountName;
use crate::store::KeyCheck;

/// A key is short; anything longer on stdin is not a key.
const MAX_KEY_INPUT: u64 = 1024;

pub fn run(config: &Config, command: ApikeyCommand) -> anyhow::Result<u8> {
    let store = open_store(config)?;
    match command {
        ApikeyCommand::Create { account, purpose } => {
            let account = AccountName::new(&account)?;
            let (key, hash) = apikey::generate()?;
            let id = store.create_api_key(&account, &hash, purpose.as_deref())?;
            eprintln!("API key {id} for {account}; it is shown once and cannot be recovered:");
            println!("{}", key.expose());
        }
        ApikeyCommand::List { account, output } => {
            let keys = store.list_api_keys(&AccountName::new(&account)?)?;
            if output.json {
                output::json(&keys)?;
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.to_string(),
                            output::or_dash(k.purpose.as_deref()),
                            k.created_at.clone(),
                            output::or_dash(k.last_used_at.as_deref()),
                            output::or_dash(k.revoked_at.as_deref()),
                        ]
                    })
                    .collect();
                output::table(&["ID", "PURPOSE", "CREATED", "LAST USED", "REVOKED"], &rows);
            }
        }
        ApikeyCommand::Revoke { account, id } => {
            let account = AccountName::new(&account)?;
            store.revoke_api_key(&account, id)?;
            println!("revoked API key {id} of {account}");
        }
        ApikeyCommand::Verify => {
            let mut input = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .take(MAX_KEY_INPUT)
                .read_to_string(&mut input)
                .context("reading the key from standard input")?;
            let key = input.trim();
            if !apikey::looks_like_key(key) {
                println!("invalid: not an API key");
                return Ok(FAILURE);
            }
            return Ok(match store.check_api_key(&apikey::hash(key))? {
                KeyCheck::Valid { account, teams } => {
                    println!("valid: account {account}");
                    println!(
                        "teams: {}",
                        if teams.is_empty() {
                            "-".into()
                        } else {
                            teams.join(", ")
                        }
                    );
                    SUCCESS
                }
                KeyCheck::Revoked { account } => {
                    println!("invalid: the key of {account} was revoked");
                    FAILURE
                }
                KeyCheck::AccountDisabled { account } => {
                    println!("invalid: account {account} is disabled");
                    FAILURE
                }
                KeyCheck::Unknown => {
                    println!("invalid: unknown key");
                    FAILURE
                }
            });
        }
    }
    Ok(SUCCESS)
}
