//! What each command does: turn parsed arguments into store and directory
//! calls and print the result. Returns the exit code on success; errors go
//! back to main, which prints them once and maps them through `exit`.

mod accounts;
mod apikeys;
mod check;
mod explain;
mod output;
mod status;
mod sync_now;
mod teams;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::directory::Directory;
use crate::store::Store;

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<u8> {
    if cli.sync_now {
        return sync_now::run(&config, &cli).await;
    }
    match cli.command {
        Some(Command::Account(command)) => accounts::account(&config, command),
        Some(Command::Login(command)) => accounts::login(&config, command),
        Some(Command::Team(command)) => teams::run(&config, command).await,
        Some(Command::Apikey(command)) => apikeys::run(&config, command),
        Some(Command::Check) => check::run(&config).await,
        Some(Command::Daemon) => crate::daemon::run(cli.config.clone(), config).await,
        Some(Command::Status { output }) => status::run(&config, output.json),
        Some(Command::Explain {
            account,
            team,
            output,
        }) => explain::run(&config, &account, team.as_deref(), output.json).await,
        // clap's arg_required_else_help prints the help before we get here.
        None => Ok(crate::exit::USAGE),
    }
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.store.path, config.store.busy_timeout)
        .with_context(|| format!("opening the store {}", config.store.path.display()))
}

async fn connect(config: &Config) -> anyhow::Result<Directory> {
    Directory::connect(&config.directory)
        .await
        .with_context(|| format!("connecting to the directory {}", config.directory.url))
}
