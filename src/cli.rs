//! The command line: names and flags are a contract with admins' scripts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "teamsync",
    version,
    about = "Keep service accounts' team memberships in line with Active Directory groups",
    long_about = "Keep service accounts' team memberships in line with Active Directory groups.\n\n\
        Link an AD account to a service account (`login add`), link teams to AD security \
        groups (`team link`), then run `teamsync --sync-now` (or the daemon) to add and \
        remove the directory-sourced memberships. Manual memberships are never touched.",
    after_help = "Exit codes: 0 success; 1 a command failed, or a pass completed with failed logins; \
        2 usage error; 69 directory unavailable (nothing applied); 75 refused (removal guard, \
        or another pass is running); 78 configuration invalid.",
    arg_required_else_help = true
)]
pub struct Cli {
    /// The YAML config file.
    #[arg(
        long,
        global = true,
        env = "TEAMSYNC_CONFIG",
        default_value = crate::config::DEFAULT_PATH,
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// Run one reconcile pass now and exit.
    #[arg(long)]
    pub sync_now: bool,

    /// With --sync-now: print the plan, write nothing.
    #[arg(long, requires = "sync_now")]
    pub dry_run: bool,

    /// With --sync-now: print one JSON object instead of text.
    #[arg(long, requires = "sync_now")]
    pub json: bool,

    /// With --sync-now: apply removals beyond sync.max_removals, for this run only.
    #[arg(long, requires = "sync_now")]
    pub allow_removals: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Parses the process arguments; exits with a usage error (2) when
    /// `--sync-now` is combined with a command.
    pub fn parse_args() -> Cli {
        use clap::CommandFactory;
        let cli = Cli::parse();
        if cli.sync_now && cli.command.is_some() {
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--sync-now runs a pass on its own and cannot be combined with a command",
                )
                .exit();
        }
        cli
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Service accounts: API-only accounts that can never have a password.
    #[command(subcommand)]
    Account(AccountCommand),
    /// External logins: the AD accounts behind a service account.
    #[command(subcommand)]
    Login(LoginCommand),
    /// Teams, their links to AD groups, and manual members.
    #[command(subcommand)]
    Team(TeamCommand),
    /// API keys of service accounts.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Check the config, the store and the directory connection, and say what was found.
    Check,
    /// Run as a service: a pass at start, then every sync.interval (what the systemd unit runs).
    Daemon,
    /// Show the last pass, the last successful pass, the next one, and counts.
    Status {
        #[command(flatten)]
        output: Json,
    },
    /// Explain why an account is or is not a member of each team (or of one).
    Explain {
        account: String,
        team: Option<String>,
        #[command(flatten)]
        output: Json,
    },
}

#[derive(Debug, Args)]
pub struct Json {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create a service account.
    Create {
        name: String,
        /// A human-friendly name.
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
    },
    /// List service accounts.
    List {
        #[command(flatten)]
        output: Json,
    },
    /// Show an account: logins, teams with their source, API key ids.
    Show {
        name: String,
        #[command(flatten)]
        output: Json,
    },
    /// Disable an account: its API keys stop working; its rows stay.
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// Delete an account with its logins, keys and memberships.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum LoginCommand {
    /// Link an AD account: NETBIOS\name, name@domain (UPN) or a SID (S-1-5-21-...).
    Add { account: String, identity: String },
    /// Unlink an AD account.
    Remove { account: String, identity: String },
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team.
    Create { name: String },
    /// Delete a team with its links and memberships.
    Delete { name: String },
    /// List teams with their linked groups.
    List {
        #[command(flatten)]
        output: Json,
    },
    /// Link a team to an AD security group: a DN, NETBIOS\name, a name or a SID.
    /// The group is looked up in the directory and kept by SID.
    Link { team: String, group: String },
    /// Unlink a group from a team (by DN, NETBIOS\name, name or SID).
    Unlink { team: String, group: String },
    /// Add a manual member; sync never removes manual memberships.
    AddMember { team: String, account: String },
    /// Remove a manual member.
    RemoveMember { team: String, account: String },
    /// List a team's members with the source of each membership.
    Members {
        team: String,
        #[command(flatten)]
        output: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key; it is printed once and only its hash is stored.
    Create {
        account: String,
        /// What the key is for.
        #[arg(long, value_name = "TEXT")]
        purpose: Option<String>,
    },
    /// List an account's keys (never the keys themselves).
    List {
        account: String,
        #[command(flatten)]
        output: Json,
    },
    /// Revoke a key by its id.
    Revoke { account: String, id: i64 },
    /// Read one key from standard input; print its account and teams.
    /// Exits 0 when the key is valid, 1 when not.
    Verify,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sync_flags_need_sync_now() {
        assert!(Cli::try_parse_from(["teamsync", "--dry-run"]).is_err());
        let cli = Cli::try_parse_from(["teamsync", "--sync-now", "--dry-run", "--json"]).unwrap();
        assert!(cli.sync_now && cli.dry_run && cli.json);
    }

    #[test]
    fn subcommands_take_their_own_json_flag() {
        let cli = Cli::try_parse_from(["teamsync", "team", "members", "ops", "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Team(TeamCommand::Members {
                output: Json { json: true },
                ..
            }))
        ));
    }
}
