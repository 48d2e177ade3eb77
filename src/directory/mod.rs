//! "Which groups is this account in?" The only module that speaks LDAP
//! (ldap3). [`Directory`] is the one door: it connects, tells Active
//! Directory from a generic LDAP server, and hands each question to the
//! implementation for that kind.
//!
//! - `connection`: TLS, bind, timeouts, complete paged searches.
//! - `ad`: Active Directory: the domain, accounts, tokenGroups, groups.
//! - `ldap`: generic LDAP: entryUUID, groupOfNames nested in memory.
//! - `chain`: the group chain behind a membership, for `explain`.
//! - `entry`: typed values out of raw entries; `filter`: RFC 4515 escaping.

mod ad;
mod ad_dump;
mod chain;
mod connection;
mod entry;
pub mod filter;
mod ldap;
mod range;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

pub use ad::{AdDirectory, AdDomain, GroupLookup, LoginQuery};
pub use ldap::LdapDirectory;

/// Which of an account's groups a resolution reports in
/// [`FoundAccount::groups`].
#[derive(Debug, Clone, Default)]
pub struct GroupScope {
    /// `None`: every group (`check` counts them).
    only: Option<(HashSet<Sid>, HashSet<EntryUuid>)>,
}

impl GroupScope {
    pub fn all() -> GroupScope {
        GroupScope { only: None }
    }

    /// Only these groups: a pass asks about the linked groups alone, and
    /// keeping every group of 5,000 accounts cost 19 MiB of 58 at 100,000
    /// users (measured with heaptrack).
    pub fn only(ids: &[ObjectId]) -> GroupScope {
        let mut sids = HashSet::new();
        let mut uuids = HashSet::new();
        for id in ids {
            match id {
                ObjectId::Sid(sid) => sids.insert(sid.clone()),
                ObjectId::Uuid(uuid) => uuids.insert(uuid.clone()),
            };
        }
        GroupScope {
            only: Some((sids, uuids)),
        }
    }

    pub fn keeps(&self, id: &ObjectId) -> bool {
        match id {
            ObjectId::Sid(sid) => self.keeps_sid(sid),
            ObjectId::Uuid(uuid) => self
                .only
                .as_ref()
                .is_none_or(|(_, uuids)| uuids.contains(uuid)),
        }
    }

    pub fn keeps_sid(&self, sid: &Sid) -> bool {
        self.only
            .as_ref()
            .is_none_or(|(sids, _)| sids.contains(sid))
    }
}

use crate::config::{BindMethod, DirectoryConfig, SecretError};
use crate::model::{
    DirectoryKind, EntryUuid, FoundAccount, GroupChain, GroupRef, LoginOutcome, ObjectId, Sid,
};
use connection::Connection;

/// The supportedCapabilities value of Active Directory (and Samba AD).
const AD_CAPABILITY: &str = "1.2.840.113556.1.4.800";

/// What the directory told us about itself when we connected.
#[derive(Debug, Clone)]
pub struct DomainInfo {
    pub kind: DirectoryKind,
    /// Whether the kind was detected from the rootDSE (not configured).
    pub detected: bool,
    pub url: String,
    /// dnsHostName (AD) or the host in the URL.
    pub server: String,
    /// defaultNamingContext (AD) or the first namingContexts value.
    pub naming_context: String,
    pub base_dn: String,
}

/// How far the directory's changes go, to tell "nothing changed since the
/// last full pass" without reading anything else. AD: the DC's
/// invocationId with its highestCommittedUSN; OpenLDAP: the base entry's
/// contextCSN (syncprov). Any change to the directory moves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// Which server (AD: which DC database) the position belongs to.
    pub source: String,
    pub position: String,
}

// One value per pass: the size difference between the kinds costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Ad(AdDirectory),
    Ldap(LdapDirectory),
}

/// A bound connection to a directory of either kind.
pub struct Directory {
    backend: Backend,
    info: DomainInfo,
    root: ldap3::SearchEntry,
    /// How the bind is described when the server cannot say.
    bind_description: String,
}

impl Directory {
    /// Connects, binds, reads the rootDSE and prepares the kind's backend.
    pub async fn connect(config: &DirectoryConfig) -> Result<Directory, DirectoryError> {
        if config.tls.insecure_skip_verify {
            tracing::warn!(
                url = %config.url,
                "directory.tls.insecure_skip_verify is true: the server's certificate is NOT verified and anyone in the network path can read and change this traffic"
            );
        }
        let conn = Connection::open(config).await?;
        let root = conn
            .root_dse(&[
                "defaultNamingContext",
                "configurationNamingContext",
                "dnsHostName",
                "supportedCapabilities",
                "namingContexts",
                "dsServiceName",
                "highestCommittedUSN",
            ])
            .await?;
        let is_ad = entry::texts(&root, "supportedCapabilities")
            .iter()
            .any(|c| c == AD_CAPABILITY);
        let detected = if is_ad {
            DirectoryKind::ActiveDirectory
        } else {
            DirectoryKind::Ldap
        };
        let kind = config.kind.unwrap_or(detected);
        if config.kind.is_some_and(|k| k != detected) {
            tracing::warn!(
                configured = kind.as_str(),
                detected = detected.as_str(),
                "directory.kind differs from what the rootDSE says"
            );
        }
        let naming_context = entry::text(&root, "defaultNamingContext")
            .or_else(|| entry::text(&root, "namingContexts"))
            .unwrap_or_default();
        let server = entry::text(&root, "dnsHostName").unwrap_or_else(|| config.host.clone());
        let backend = match kind {
            DirectoryKind::ActiveDirectory => Backend::Ad(AdDirectory::new(conn, &root, config)?),
            DirectoryKind::Ldap => Backend::Ldap(LdapDirectory::new(conn, config.ldap.clone())),
        };
        Ok(Directory {
            backend,
            info: DomainInfo {
                kind,
                detected: config.kind.is_none(),
                url: config.url.clone(),
                server,
                naming_context,
                base_dn: config.base_dn.clone(),
            },
            root,
            bind_description: match &config.bind.method {
                BindMethod::Simple(_) => format!("{} (as configured)", config.bind.dn),
                BindMethod::Gssapi(kerberos) => match &kerberos.keytab {
                    Some(keytab) => {
                        format!("the Kerberos principal of keytab {}", keytab.display())
                    }
                    None => "the Kerberos principal of the credential cache".to_owned(),
                },
            },
        })
    }

    /// AD: the domain's NetBIOS and DNS names (one search, the first time).
    pub async fn ad_domain(&mut self) -> Result<Option<AdDomain>, DirectoryError> {
        match &mut self.backend {
            Backend::Ad(ad) => Ok(Some(ad.domain().await?)),
            Backend::Ldap(_) => Ok(None),
        }
    }

    /// Who the server says we are bound as, or the configured bind DN when
    /// it does not answer "Who am I?" (Samba does not).
    pub async fn bind_identity(&mut self) -> Result<String, DirectoryError> {
        let described = self.bind_description.clone();
        Ok(self
            .connection()
            .who_am_i()
            .await?
            .unwrap_or_else(|| format!("{described}; the server does not answer \"Who am I?\"")))
    }

    /// The directory's change position, with one read; `None` when the
    /// server does not keep one (then every pass is a full pass).
    pub async fn watermark(&mut self) -> Result<Option<Watermark>, DirectoryError> {
        let base_dn = self.info.base_dn.clone();
        match &mut self.backend {
            Backend::Ad(ad) => Ok(ad
                .watermark(&self.root)
                .await?
                .map(|(source, position)| Watermark { source, position })),
            Backend::Ldap(ldap) => Ok(ldap.watermark(&base_dn).await?.map(|position| Watermark {
                source: format!("ldap:{}", entry::normalise_dn(&base_dn)),
                position,
            })),
        }
    }

    pub fn info(&self) -> &DomainInfo {
        &self.info
    }

    fn connection(&mut self) -> &mut Connection {
        match &mut self.backend {
            Backend::Ad(ad) => ad.connection(),
            Backend::Ldap(ldap) => ldap.connection(),
        }
    }

    /// LDAP requests sent so far on this connection.
    pub fn requests(&mut self) -> u64 {
        self.connection().requests()
    }

    pub async fn close(self) {
        let conn = match self.backend {
            Backend::Ad(ad) => ad.into_connection(),
            Backend::Ldap(ldap) => ldap.into_connection(),
        };
        conn.close().await;
    }

    /// Resolves every login, in order. An `Err` means the directory failed
    /// as a whole and the pass must apply nothing; a problem with one login
    /// only is that login's [`LoginOutcome::Failed`]. Each account's groups
    /// are those `scope` keeps.
    pub async fn resolve_logins(
        &mut self,
        logins: &[LoginQuery],
        scope: &GroupScope,
    ) -> Result<Vec<LoginOutcome>, DirectoryError> {
        match &mut self.backend {
            Backend::Ad(ad) => ad.resolve_logins(logins, scope).await,
            Backend::Ldap(ldap) => ldap.resolve_logins(logins, scope).await,
        }
    }

    /// Which of these linked groups the directory still has.
    pub async fn groups_present(
        &mut self,
        ids: &[ObjectId],
    ) -> Result<std::collections::BTreeSet<ObjectId>, DirectoryError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        match &mut self.backend {
            Backend::Ad(ad) => ad.groups_present(ids).await,
            Backend::Ldap(ldap) => ldap.groups_present(ids).await,
        }
    }

    pub async fn find_group(&mut self, group: &GroupRef) -> Result<GroupLookup, DirectoryError> {
        match &mut self.backend {
            Backend::Ad(ad) => ad.find_group(group).await,
            Backend::Ldap(ldap) => ldap.find_group(group).await,
        }
    }

    pub async fn group_chains(
        &mut self,
        account: &FoundAccount,
        targets: &[ObjectId],
    ) -> Result<Vec<GroupChain>, DirectoryError> {
        match &mut self.backend {
            Backend::Ad(ad) => ad.group_chains(account, targets).await,
            Backend::Ldap(ldap) => ldap.group_chains(account, targets).await,
        }
    }
}

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
