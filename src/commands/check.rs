//! `teamsync check`: config, store, connection, bind and read rights, each
//! step said as it succeeds, and on failure the cause with the fix.

use anyhow::Context;

use super::open_store;
use crate::config::{BindMethod, Config, Transport};
use crate::directory::{Directory, DirectoryError, GroupScope, LoginQuery};
use crate::exit::{FAILURE, SUCCESS};
use crate::model::LoginOutcome;

pub async fn run(config: &Config) -> anyhow::Result<u8> {
    println!("config:     {} is valid", config.path.display());
    let store = open_store(config)?;
    let snapshot = store.sync_snapshot().context("reading the store")?;
    let logins: usize = snapshot.accounts.iter().map(|(_, l)| l.len()).sum();
    println!(
        "store:      {} (schema {}; {} accounts, {} logins, {} team links)",
        config.store.path.display(),
        crate::store::SCHEMA_VERSION,
        snapshot.accounts.len(),
        logins,
        snapshot.links.len()
    );
    let gssapi = matches!(config.directory.bind.method, BindMethod::Gssapi(_));
    let transport = match config.directory.transport {
        Transport::Ldaps => "LDAPS",
        Transport::StartTls => "StartTLS",
        Transport::Plaintext if gssapi => "plain LDAP, sealed by the Kerberos (GSSAPI) layer",
        Transport::Plaintext => "plain text (NOT encrypted)",
    };
    println!("directory:  {} ({transport})", config.directory.url);
    let mut directory = match Directory::connect(&config.directory).await {
        Ok(directory) => directory,
        Err(err) => {
            print_hint(&err);
            return Err(err).context("connecting and binding");
        }
    };
    let info = directory.info().clone();
    println!(
        "kind:       {}{}",
        info.kind.as_str(),
        if info.detected {
            " (detected from the rootDSE)"
        } else {
            " (directory.kind)"
        }
    );
    println!("server:     {}", info.server);
    println!("naming ctx: {}", info.naming_context);
    println!("base DN:    {}", info.base_dn);
    let domain = directory
        .ad_domain()
        .await
        .context("discovering the domain")?;
    if let Some(domain) = &domain {
        println!("domain:     {} ({})", domain.netbios, domain.dns);
    }
    println!("bound as:   {}", directory.bind_identity().await?);
    match directory.watermark().await? {
        Some(mark) => println!("changes:    tracked ({} at {})", mark.source, mark.position),
        None => println!("changes:    not tracked by this server: every pass is a full pass"),
    }

    let first = snapshot
        .accounts
        .iter()
        .flat_map(|(_, logins)| logins)
        .next()
        .map(|login| LoginQuery {
            identity: login.identity.clone(),
            pinned: login.pinned.clone(),
        });
    let Some(query) = first else {
        println!("tokenGroups: not checked: no login is linked yet");
        directory.close().await;
        return Ok(SUCCESS);
    };
    let outcome = directory
        .resolve_logins(std::slice::from_ref(&query), &GroupScope::all())
        .await
        .context("reading a linked account")?;
    directory.close().await;
    let code = match outcome.first() {
        Some(LoginOutcome::Active(found)) if domain.is_some() => {
            println!(
                "tokenGroups: readable for {} ({} groups)",
                found.label,
                found.groups.len()
            );
            SUCCESS
        }
        Some(LoginOutcome::Active(found)) => {
            println!(
                "groups:     readable for {} ({} groups)",
                found.label,
                found.groups.len()
            );
            SUCCESS
        }
        Some(LoginOutcome::Disabled(found)) => {
            println!(
                "tokenGroups: not checked: {} (login {}) is disabled in AD",
                found.label, query.identity
            );
            SUCCESS
        }
        Some(LoginOutcome::NotFound) => {
            println!(
                "tokenGroups: not checked: login {} is not found in {}",
                query.identity, info.base_dn
            );
            SUCCESS
        }
        Some(LoginOutcome::Failed(why)) => {
            println!("tokenGroups: NOT readable for {}: {why}", query.identity);
            println!(
                "fix:        grant the bind account read access to users, including the tokenGroups attribute"
            );
            FAILURE
        }
        None => FAILURE,
    };
    Ok(code)
}

fn print_hint(err: &DirectoryError) {
    if let Some(hint) = err.hint() {
        println!("fix:        {hint}");
    }
}
