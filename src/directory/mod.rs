//! "Which security groups is this AD account in?" The only module that
//! speaks LDAP (ldap3).
//!
//! - `connection`: TLS, bind, timeouts, complete paged searches.
//! - `ad`: Active Directory: the domain, accounts, tokenGroups, groups.
//! - `entry`: typed values out of raw entries; `filter`: RFC 4515 escaping.

mod ad;
mod chain;
mod connection;
mod entry;
pub mod filter;

use std::path::PathBuf;
use std::time::Duration;

pub use ad::{AdDirectory, DomainInfo, GroupLookup, LoginQuery};

use crate::config::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot use the CA file {path} (directory.tls.ca_file): {problem}")]
    CaFile { path: PathBuf, problem: String },
    #[error("cannot set up TLS")]
    TlsSetup {
        #[source]
        source: rustls::Error,
    },
    #[error(transparent)]
    Password(#[from] SecretError),
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    #[error("{url} did not answer within {} while {during}", humantime::format_duration(*after))]
    Timeout {
        url: String,
        during: String,
        after: Duration,
    },
    #[error(
        "the directory refused the bind as {dn}: LDAP result {rc}{}",
        detail(message)
    )]
    BindRefused {
        dn: String,
        rc: u32,
        message: String,
    },
    #[error("{during} failed")]
    Protocol {
        during: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    #[error("{during}: the directory answered LDAP result {rc} ({}){}", rc_name(*rc), detail(text))]
    Result {
        during: String,
        rc: u32,
        text: String,
    },
    #[error("{dn}: attribute {attribute}: {problem}")]
    Malformed {
        dn: String,
        attribute: String,
        problem: String,
    },
    #[error("the rootDSE lacks {attribute}: is {url} an Active Directory domain controller?")]
    NotActiveDirectory {
        url: String,
        attribute: &'static str,
    },
    #[error(
        "no domain in this directory holds base DN {base_dn}; set directory.netbios_domain or fix directory.base_dn"
    )]
    DomainNotFound { base_dn: String },
}

fn detail(text: &str) -> String {
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Names for the result codes an operator is likely to meet.
fn rc_name(rc: u32) -> &'static str {
    match rc {
        1 => "operationsError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "see RFC 4511",
    }
}

impl DirectoryError {
    /// Whether the fault is in teamsync's own configuration (exit 78)
    /// rather than in reaching or reading the directory (exit 69).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            DirectoryError::CaFile { .. } | DirectoryError::Password(_)
        )
    }

    /// A short name for the kind of failure, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            DirectoryError::CaFile { .. }
            | DirectoryError::Password(_)
            | DirectoryError::TlsSetup { .. } => "config",
            DirectoryError::Connect { .. } => {
                let chain = error_chain_text(self);
                if chain.contains("certificate") || chain.contains("Tls") || chain.contains("tls") {
                    "tls"
                } else {
                    "connect"
                }
            }
            DirectoryError::Timeout { .. } => "timeout",
            DirectoryError::BindRefused { .. } => "bind",
            DirectoryError::Protocol { .. } => "connection",
            DirectoryError::Result { .. } => "search",
            DirectoryError::Malformed { .. }
            | DirectoryError::NotActiveDirectory { .. }
            | DirectoryError::DomainNotFound { .. } => "directory",
        }
    }

    /// What an operator should try, when the cause is recognisable.
    pub fn hint(&self) -> Option<String> {
        let chain = error_chain_text(self);
        if chain.contains("UnknownIssuer") || chain.contains("BadSignature") {
            return Some(
                "the server's certificate is not signed by a trusted CA: point directory.tls.ca_file at the CA that issued it"
                    .into(),
            );
        }
        if chain.contains("NotValidForName") {
            return Some(
                "the server's certificate does not name the host in directory.url: use a host name (or IP) the certificate lists"
                    .into(),
            );
        }
        if chain.contains("Expired") {
            return Some("the server's certificate has expired or is not yet valid".into());
        }
        if chain.contains("Connection refused") {
            return Some(
                "nothing listens at that address and port: is the domain controller running, and is the port (636 for ldaps://, 389 for ldap://) right?"
                    .into(),
            );
        }
        match self {
            DirectoryError::BindRefused { rc: 49, .. } => Some(
                "check directory.bind.dn and the password; the bind account may be disabled, locked or expired"
                    .into(),
            ),
            DirectoryError::BindRefused { rc: 8, .. } => Some(
                "the server requires an encrypted connection: use ldaps:// or ldap:// with StartTLS"
                    .into(),
            ),
            DirectoryError::Result { rc: 50, .. } => Some(
                "the bind account lacks read rights: grant it read access to users and groups (tokenGroups included)"
                    .into(),
            ),
            DirectoryError::Result { rc: 32, .. } => {
                Some("check directory.base_dn: the directory has no such entry".into())
            }
            DirectoryError::Timeout { .. } => Some(
                "the server is slow or unreachable: check the network, or raise directory.timeouts"
                    .into(),
            ),
            _ => None,
        }
    }
}

fn error_chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{err:?}");
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    text
}
