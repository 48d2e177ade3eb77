//! Active Directory: the domain behind `base_dn`, the account behind each
//! login, its groups as Windows sees them (tokenGroups), and groups by name.

use std::collections::{BTreeSet, HashMap, HashSet};

use ldap3::{Scope, SearchEntry};

use super::chain;
use super::connection::{BaseRead, Connection};
use super::{DirectoryError, GroupScope, ad_dump, entry, filter};
use crate::config::{AdStrategy, DirectoryConfig};
use crate::model::{
    DirectoryGroup, FoundAccount, GroupChain, GroupRef, Identity, LoginOutcome, ObjectId, Sid,
};

/// userAccountControl bit: the account is disabled.
pub(super) const UAC_ACCOUNT_DISABLE: i64 = 0x2;
/// groupType bit: a security group (otherwise a distribution group).
pub(super) const GROUP_TYPE_SECURITY: i64 = 0x8000_0000;
/// How many SIDs go into one `(|(objectSid=..)..)` search.
const SIDS_PER_SEARCH: usize = 100;

pub(super) const ACCOUNT_ATTRS: &[&str] = &[
    "objectSid",
    "sAMAccountName",
    "userPrincipalName",
    "userAccountControl",
    "primaryGroupID",
];
const GROUP_ATTRS: &[&str] = &["objectSid", "sAMAccountName", "groupType", "objectClass"];

/// A login to resolve: the identity as typed, and the SID once pinned.
#[derive(Debug, Clone)]
pub struct LoginQuery {
    pub identity: Identity,
    pub pinned: Option<ObjectId>,
}

pub enum GroupLookup {
    Found(DirectoryGroup),
    NotFound,
    /// The entry exists but is not a group (a user, an OU, ...).
    NotAGroup {
        dn: String,
    },
    Ambiguous {
        dns: Vec<String>,
    },
    /// `OTHER\name` where OTHER is not this directory's domain.
    OtherDomain {
        domain: String,
    },
}

/// The domain behind `base_dn`.
#[derive(Debug, Clone)]
pub struct AdDomain {
    pub netbios: String,
    pub dns: String,
    pub base_dn: String,
}

/// How many linked groups one existence check asks for.
const GROUPS_PER_SEARCH: usize = 500;

/// How many tokenGroups reads are in flight at once on the connection.
const TOKEN_READS_IN_FLIGHT: usize = 8;

/// A bound connection to an AD domain controller.
pub struct AdDirectory {
    conn: Connection,
    /// Valid once `domain_loaded`; the public entry points load it.
    domain: AdDomain,
    domain_loaded: bool,
    /// configurationNamingContext, where the crossRef objects live.
    configuration: String,
    strategy: AdStrategy,
    /// Set once the group-dump strategy read every group under the base
    /// DN in this pass: then whether a linked group exists needs no search.
    dumped_group_sids: Option<HashSet<Sid>>,
}

/// The outcome of an enabled account once its tokenGroups read answered.
fn token_outcome(
    entry: &SearchEntry,
    mut found: FoundAccount,
    token: BaseRead,
    scope: &GroupScope,
) -> Result<LoginOutcome, DirectoryError> {
    let token = match token {
        BaseRead::Found(token) => token,
        BaseRead::Missing => {
            return Ok(LoginOutcome::Failed(format!(
                "{} vanished while it was being read",
                entry.dn
            )));
        }
        BaseRead::Denied(text) => {
            return Ok(LoginOutcome::Failed(format!(
                "no right to read tokenGroups of {}: {text}",
                entry.dn
            )));
        }
    };
    let groups = entry::sids(&token, "tokenGroups")?;
    // Every account is at least in its primary group, so an empty
    // tokenGroups means it could not be read, never "no groups".
    if groups.is_empty() {
        return Ok(LoginOutcome::Failed(format!(
            "tokenGroups of {} came back empty: the bind account needs the right to read it",
            entry.dn
        )));
    }
    found.groups.extend(
        groups
            .into_iter()
            .filter(|sid| scope.keeps_sid(sid))
            .map(ObjectId::Sid),
    );
    let sid = entry::object_sid(entry)?;
    if let Some(rid) = entry::integer(entry, "primaryGroupID")?
        && let (Some(domain), Ok(rid)) = (sid.domain(), u32::try_from(rid))
        && let Ok(primary) = domain.with_rid(rid)
        && scope.keeps_sid(&primary)
    {
        found.groups.insert(ObjectId::Sid(primary));
    }
    Ok(LoginOutcome::Active(found))
}

impl AdDirectory {
    /// Wraps a bound connection. The domain's names are learnt on first
    /// need, so a pass that finds nothing changed sends no more requests.
    pub(super) fn new(
        conn: Connection,
        root: &SearchEntry,
        config: &DirectoryConfig,
    ) -> Result<AdDirectory, DirectoryError> {
        let configuration = entry::text(root, "configurationNamingContext").ok_or_else(|| {
            DirectoryError::NotActiveDirectory {
                url: config.url.clone(),
                attribute: "configurationNamingContext",
            }
        })?;
        Ok(AdDirectory {
            conn,
            domain: AdDomain {
                netbios: config.netbios_domain.clone().unwrap_or_default(),
                dns: String::new(),
                base_dn: config.base_dn.clone(),
            },
            domain_loaded: false,
            dumped_group_sids: None,
            configuration,
            strategy: config.ad_strategy,
        })
    }

    /// The domain behind base_dn, discovered from the crossRef objects once.
    pub async fn domain(&mut self) -> Result<AdDomain, DirectoryError> {
        if !self.domain_loaded {
            let (netbios, dns) =
                discover_domain(&mut self.conn, &self.configuration, &self.domain.base_dn).await?;
            if self.domain.netbios.is_empty() {
                self.domain.netbios = netbios;
            }
            self.domain.dns = dns;
            self.domain_loaded = true;
            tracing::info!(domain = %self.domain.netbios, "connected to Active Directory");
        }
        Ok(self.domain.clone())
    }

    /// This DC's identity and how far its changes go: invocationId and
    /// highestCommittedUSN (read from the rootDSE at connect).
    pub async fn watermark(
        &mut self,
        root: &SearchEntry,
    ) -> Result<Option<(String, String)>, DirectoryError> {
        let (Some(service), Some(usn)) = (
            entry::text(root, "dsServiceName"),
            entry::text(root, "highestCommittedUSN"),
        ) else {
            return Ok(None);
        };
        let BaseRead::Found(dsa) = self.conn.read(&service, &["invocationId"]).await? else {
            return Ok(None);
        };
        let Some(invocation) = entry::raw_values(&dsa, "invocationId")
            .first()
            .map(hex::encode)
        else {
            return Ok(None);
        };
        Ok(Some((format!("ad:{invocation}"), usn)))
    }

    pub(super) fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(super) fn into_connection(self) -> Connection {
        self.conn
    }

    /// Resolves every login. An `Err` means the directory failed as a whole
    /// and the pass must apply nothing; a problem with one login only is
    /// that login's [`LoginOutcome::Failed`].
    pub async fn resolve_logins(
        &mut self,
        logins: &[LoginQuery],
        scope: &GroupScope,
    ) -> Result<Vec<LoginOutcome>, DirectoryError> {
        self.domain().await?;
        let strategy = self.strategy.for_logins(logins.len());
        tracing::debug!(?strategy, logins = logins.len(), "resolving logins");
        match strategy {
            AdStrategy::GroupDump => {
                let resolved = ad_dump::resolve(&self.conn, &self.domain, logins, scope).await?;
                self.dumped_group_sids = Some(resolved.group_sids);
                Ok(resolved.outcomes)
            }
            _ => self.resolve_by_token_groups(logins, scope).await,
        }
    }

    /// Finds each login's account, then reads the tokenGroups of the
    /// enabled ones with several reads in flight.
    async fn resolve_by_token_groups(
        &mut self,
        logins: &[LoginQuery],
        scope: &GroupScope,
    ) -> Result<Vec<LoginOutcome>, DirectoryError> {
        let pinned: Vec<&Sid> = logins
            .iter()
            .filter_map(|l| l.pinned.as_ref().and_then(ObjectId::as_sid))
            .collect();
        let by_sid = self.accounts_by_sid(&pinned).await?;

        // First what the account entries alone tell: missing, disabled, or
        // enabled and waiting for its tokenGroups.
        let mut outcomes = Vec::with_capacity(logins.len());
        let mut waiting: Vec<(usize, SearchEntry, FoundAccount)> = Vec::new();
        for login in logins {
            let found = match &login.pinned {
                Some(ObjectId::Sid(sid)) => match by_sid.get(sid) {
                    Some(entry) => Ok(entry.clone()),
                    None => Err(LoginOutcome::NotFound),
                },
                Some(ObjectId::Uuid(uuid)) => Err(LoginOutcome::Failed(format!(
                    "pinned to entryUUID {}, which an Active Directory does not use",
                    uuid.as_str()
                ))),
                None => self.account_by_identity(&login.identity).await?,
            };
            let outcome = match found {
                Ok(entry) => match self.account_state(&entry)? {
                    Ok(found) => {
                        waiting.push((outcomes.len(), entry, found));
                        // Replaced below once tokenGroups is read.
                        LoginOutcome::NotFound
                    }
                    Err(outcome) => outcome,
                },
                Err(outcome) => outcome,
            };
            outcomes.push(outcome);
        }

        let dns: Vec<String> = waiting
            .iter()
            .map(|(_, entry, _)| entry.dn.clone())
            .collect();
        let tokens = self
            .conn
            .read_many(&dns, &["tokenGroups"], TOKEN_READS_IN_FLIGHT)
            .await?;
        for ((slot, entry, found), token) in waiting.into_iter().zip(tokens) {
            outcomes[slot] = token_outcome(&entry, found, token, scope)?;
        }
        Ok(outcomes)
    }

    /// Pinned logins, looked up by exact SID in batches.
    async fn accounts_by_sid(
        &mut self,
        sids: &[&Sid],
    ) -> Result<HashMap<Sid, SearchEntry>, DirectoryError> {
        let mut found = HashMap::new();
        let unique: BTreeSet<&Sid> = sids.iter().copied().collect();
        let unique: Vec<&Sid> = unique.into_iter().collect();
        for chunk in unique.chunks(SIDS_PER_SEARCH) {
            let alternatives: Vec<String> = chunk
                .iter()
                .map(|sid| format!("(objectSid={})", filter::escape_bytes(&sid.to_bytes())))
                .collect();
            let query = format!("(&(objectClass=user){})", filter::any_of(&alternatives));
            let base = self.domain.base_dn.clone();
            for entry in self
                .conn
                .search(&base, Scope::Subtree, &query, ACCOUNT_ATTRS)
                .await?
            {
                found.insert(entry::object_sid(&entry)?, entry);
            }
        }
        Ok(found)
    }

    /// A login not pinned yet, looked up by the identity as typed. The
    /// inner `Err` is the outcome when no single account was found.
    async fn account_by_identity(
        &mut self,
        identity: &Identity,
    ) -> Result<Result<SearchEntry, LoginOutcome>, DirectoryError> {
        let query = match identity {
            Identity::DownLevel { domain, name } => {
                if !domain.eq_ignore_ascii_case(&self.domain.netbios) {
                    return Ok(Err(LoginOutcome::Failed(format!(
                        "domain {domain} is not this directory's domain {}",
                        self.domain.netbios
                    ))));
                }
                filter::equals("sAMAccountName", name)
            }
            Identity::Upn { name, domain } => {
                let upn = filter::equals("userPrincipalName", &format!("{name}@{domain}"));
                // AD also accepts the implicit UPN sAMAccountName@dns-domain.
                if domain.eq_ignore_ascii_case(&self.domain.dns) {
                    format!("(|{upn}{})", filter::equals("sAMAccountName", name))
                } else {
                    upn
                }
            }
            Identity::Sid(sid) => format!("(objectSid={})", filter::escape_bytes(&sid.to_bytes())),
            Identity::Uid(_) | Identity::Dn(_) | Identity::Uuid(_) => {
                return Ok(Err(LoginOutcome::Failed(format!(
                    "{identity} is {}, not a login form for Active Directory: use NETBIOS\\name, name@domain or a SID",
                    identity.form()
                ))));
            }
        };
        let query = format!("(&(objectClass=user){query})");
        let base = self.domain.base_dn.clone();
        let mut entries = self
            .conn
            .search(&base, Scope::Subtree, &query, ACCOUNT_ATTRS)
            .await?;
        match identity {
            Identity::DownLevel { name, .. } => {
                entries = entry::matching(entries, "sAMAccountName", name);
            }
            Identity::Upn { name, domain } => {
                let upn = format!("{name}@{domain}");
                entries.retain(|e| {
                    entry::texts(e, "userPrincipalName")
                        .iter()
                        .any(|v| entry::same_name(v, &upn))
                        || entry::texts(e, "sAMAccountName")
                            .iter()
                            .any(|v| entry::same_name(v, name))
                });
                // An explicit UPN beats another account's implicit one.
                if entries.len() > 1 {
                    entries.retain(|e| {
                        entry::text(e, "userPrincipalName")
                            .is_some_and(|v| v.eq_ignore_ascii_case(&upn))
                    });
                }
            }
            _ => {}
        }
        Ok(entry::single_account(entries))
    }

    /// What the account entry alone says: `Ok` for an enabled account
    /// (its groups still to be read), `Err` with the outcome otherwise.
    fn account_state(
        &self,
        entry: &SearchEntry,
    ) -> Result<Result<FoundAccount, LoginOutcome>, DirectoryError> {
        let sid = entry::object_sid(entry)?;
        let sam = entry::text(entry, "sAMAccountName").unwrap_or_else(|| sid.to_string());
        let found = FoundAccount {
            id: ObjectId::Sid(sid),
            dn: entry.dn.clone(),
            label: format!("{}\\{sam}", self.domain.netbios),
            groups: BTreeSet::new(),
        };
        let Some(uac) = entry::integer(entry, "userAccountControl")? else {
            return Ok(Err(LoginOutcome::Failed(format!(
                "cannot read userAccountControl of {} (does the bind account have read rights?)",
                entry.dn
            ))));
        };
        if uac & UAC_ACCOUNT_DISABLE != 0 {
            return Ok(Err(LoginOutcome::Disabled(found)));
        }
        Ok(Ok(found))
    }

    /// Which of these groups exist (by SID), with one search per 500.
    pub async fn groups_present(
        &mut self,
        ids: &[ObjectId],
    ) -> Result<BTreeSet<ObjectId>, DirectoryError> {
        if let Some(dumped) = &self.dumped_group_sids {
            // This pass already read every group under the base DN.
            return Ok(ids
                .iter()
                .filter(|id| id.as_sid().is_some_and(|sid| dumped.contains(sid)))
                .cloned()
                .collect());
        }
        let sids: Vec<&Sid> = ids.iter().filter_map(ObjectId::as_sid).collect();
        let mut present = BTreeSet::new();
        for chunk in sids.chunks(GROUPS_PER_SEARCH) {
            let alternatives: Vec<String> = chunk
                .iter()
                .map(|sid| format!("(objectSid={})", filter::escape_bytes(&sid.to_bytes())))
                .collect();
            let query = format!("(&(objectClass=group){})", filter::any_of(&alternatives));
            let base = self.domain.base_dn.clone();
            for group in self
                .conn
                .search(&base, Scope::Subtree, &query, &["objectSid"])
                .await?
            {
                present.insert(ObjectId::Sid(entry::object_sid(&group)?));
            }
        }
        Ok(present)
    }

    /// How the account reaches each target group, for `explain`: walks
    /// memberOf upwards from the account's direct groups and its primary
    /// group. A chain through security groups only is preferred; a target
    /// reachable only through a distribution group gets that chain, which
    /// grants nothing. Unreachable targets get no chain.
    pub async fn group_chains(
        &mut self,
        account: &FoundAccount,
        targets: &[ObjectId],
    ) -> Result<Vec<GroupChain>, DirectoryError> {
        self.domain().await?;
        let BaseRead::Found(entry) = self
            .conn
            .read(&account.dn, &["memberOf", "primaryGroupID", "objectSid"])
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut starts = entry::texts(&entry, "memberOf");
        if let (Some(rid), Ok(sid)) = (
            entry::integer(&entry, "primaryGroupID")?,
            entry::object_sid(&entry),
        ) && let (Some(domain), Ok(rid)) = (sid.domain(), u32::try_from(rid))
            && let Ok(primary) = domain.with_rid(rid)
        {
            let query = format!("(objectSid={})", filter::escape_bytes(&primary.to_bytes()));
            let base = self.domain.base_dn.clone();
            let found = self
                .conn
                .search(&base, Scope::Subtree, &query, &["objectSid"])
                .await?;
            starts.extend(found.into_iter().map(|e| e.dn));
        }

        let mut graph = chain::Graph::default();
        let mut queue: std::collections::VecDeque<String> = starts.iter().cloned().collect();
        while let Some(dn) = queue.pop_front() {
            if graph.contains(&dn) || graph.len() >= chain::MAX_NODES {
                continue;
            }
            let attrs = ["objectSid", "sAMAccountName", "groupType", "memberOf"];
            let BaseRead::Found(group) = self.conn.read(&dn, &attrs).await? else {
                continue;
            };
            let Ok(sid) = entry::object_sid(&group) else {
                continue;
            };
            let parents = entry::texts(&group, "memberOf");
            queue.extend(parents.iter().cloned());
            let name = entry::text(&group, "sAMAccountName").unwrap_or_else(|| sid.to_string());
            let group_type = entry::integer(&group, "groupType")?.unwrap_or(0);
            graph.insert(chain::Node {
                dn: group.dn.clone(),
                id: ObjectId::Sid(sid),
                label: format!("{}\\{name}", self.domain.netbios),
                is_security: group_type & GROUP_TYPE_SECURITY != 0,
                parents,
            });
        }
        Ok(targets
            .iter()
            .filter_map(|target| graph.chain(&starts, target))
            .collect())
    }

    /// Finds a group by DN, `NETBIOS\name`, plain name or SID.
    pub async fn find_group(&mut self, group: &GroupRef) -> Result<GroupLookup, DirectoryError> {
        self.domain().await?;
        let base = self.domain.base_dn.clone();
        let entries = match group {
            GroupRef::Dn(dn) => match self.conn.read(dn, GROUP_ATTRS).await? {
                BaseRead::Found(entry) => vec![entry],
                BaseRead::Missing | BaseRead::Denied(_) => vec![],
            },
            GroupRef::DownLevel { domain, .. }
                if !domain.eq_ignore_ascii_case(&self.domain.netbios) =>
            {
                return Ok(GroupLookup::OtherDomain {
                    domain: domain.clone(),
                });
            }
            GroupRef::DownLevel { name, .. } | GroupRef::Name(name) => {
                let query = format!(
                    "(&(objectClass=group){})",
                    filter::equals("sAMAccountName", name)
                );
                let found = self
                    .conn
                    .search(&base, Scope::Subtree, &query, GROUP_ATTRS)
                    .await?;
                entry::matching(found, "sAMAccountName", name)
            }
            GroupRef::Sid(sid) => {
                let query = format!(
                    "(&(objectClass=group)(objectSid={}))",
                    filter::escape_bytes(&sid.to_bytes())
                );
                self.conn
                    .search(&base, Scope::Subtree, &query, GROUP_ATTRS)
                    .await?
            }
        };
        match entries.len() {
            0 => Ok(GroupLookup::NotFound),
            1 => {
                let entry = &entries[0];
                let is_group = entry::texts(entry, "objectClass")
                    .iter()
                    .any(|class| class.eq_ignore_ascii_case("group"));
                if !is_group {
                    return Ok(GroupLookup::NotAGroup {
                        dn: entry.dn.clone(),
                    });
                }
                Ok(GroupLookup::Found(self.directory_group(entry)?))
            }
            _ => Ok(GroupLookup::Ambiguous {
                dns: entries.into_iter().map(|e| e.dn).collect(),
            }),
        }
    }

    fn directory_group(&self, entry: &SearchEntry) -> Result<DirectoryGroup, DirectoryError> {
        let sid = entry::object_sid(entry)?;
        let group_type =
            entry::integer(entry, "groupType")?.ok_or_else(|| DirectoryError::Malformed {
                dn: entry.dn.clone(),
                attribute: "groupType".into(),
                problem: "missing (no right to read it?)".into(),
            })?;
        let name = entry::text(entry, "sAMAccountName").unwrap_or_else(|| sid.to_string());
        Ok(DirectoryGroup {
            id: ObjectId::Sid(sid),
            dn: entry.dn.clone(),
            label: format!("{}\\{name}", self.domain.netbios),
            is_security: group_type & GROUP_TYPE_SECURITY != 0,
        })
    }
}

/// Finds the NetBIOS and DNS names of the domain whose naming context holds
/// `base_dn`, from the crossRef objects in the Configuration partition.
async fn discover_domain(
    conn: &mut Connection,
    configuration: &str,
    base_dn: &str,
) -> Result<(String, String), DirectoryError> {
    let partitions = format!("CN=Partitions,{configuration}");
    let refs = conn
        .search(
            &partitions,
            Scope::OneLevel,
            "(&(objectClass=crossRef)(nETBIOSName=*))",
            &["nCName", "nETBIOSName", "dnsRoot"],
        )
        .await?;
    let base = entry::normalise_dn(base_dn);
    refs.iter()
        .filter_map(|cross_ref| {
            let nc = entry::normalise_dn(&entry::text(cross_ref, "nCName")?);
            let within = base == nc || base.ends_with(&format!(",{nc}"));
            within.then(|| {
                Some((
                    nc.len(),
                    entry::text(cross_ref, "nETBIOSName")?,
                    entry::text(cross_ref, "dnsRoot").unwrap_or_default(),
                ))
            })?
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, netbios, dns)| (netbios, dns))
        .ok_or_else(|| DirectoryError::DomainNotFound {
            base_dn: base_dn.to_owned(),
        })
}
