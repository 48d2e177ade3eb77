//! Generic LDAP directories (OpenLDAP, 389-DS): accounts pinned by
//! entryUUID, groups read with one paged search and nested in memory.
//!
//! Membership comes from groupOfNames `member` and groupOfUniqueNames
//! `uniqueMember` (and posixGroup `memberUid` when configured), nested to
//! any depth; cycles end because every group is visited once.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use ldap3::{Scope, SearchEntry};

use super::ad::{GroupLookup, LoginQuery};
use super::chain;
use super::connection::{BaseRead, Connection};
use super::entry::normalise_dn;
use super::{DirectoryError, GroupScope, entry, filter};
use crate::config::LdapSettings;
use crate::model::{
    DirectoryGroup, EntryUuid, FoundAccount, GroupChain, GroupRef, Identity, LoginOutcome, ObjectId,
};

/// LDAP result invalidDNSyntax.
const INVALID_DN_SYNTAX: u32 = 34;

/// From this many logins on, all accounts are read with one paged search
/// instead of searches per login, as the AD group dump does.
const DUMP_FROM_LOGINS: usize = crate::config::AdStrategy::DUMP_FROM_LOGINS;

fn pinned_to_sid(sid: &crate::model::Sid) -> LoginOutcome {
    LoginOutcome::Failed(format!(
        "pinned to SID {sid}, which a generic LDAP directory does not use"
    ))
}

/// How many ids go into one `(|(entryUUID=..)..)` search.
const IDS_PER_SEARCH: usize = 100;

/// groupOfUniqueNames values may carry an optional `#'0101'B` uid suffix.
fn unique_member_dn(value: &str) -> &str {
    match value.rfind("#'") {
        Some(at) if value.ends_with("'B") => &value[..at],
        _ => value,
    }
}

/// A group as read from the directory.
struct Group {
    id: ObjectId,
    dn: String,
    label: String,
    /// Normalised DNs of member entries (accounts or groups).
    members: Vec<String>,
    /// memberUid values (posixGroup).
    member_uids: Vec<String>,
}

/// Every group under the group base, indexed for membership questions.
struct GroupIndex {
    groups: Vec<Group>,
    /// Normalised group DN -> index.
    by_dn: HashMap<String, usize>,
    /// Normalised member DN -> groups listing it.
    containing: HashMap<String, Vec<usize>>,
    /// Lower-cased memberUid -> groups listing it.
    containing_uid: HashMap<String, Vec<usize>>,
    /// Group index -> the groups listing it as a member.
    parents: Vec<Vec<usize>>,
}

impl GroupIndex {
    /// Moves the member lists into the index: each member DN is kept once,
    /// as a key, not once per group listing it as well.
    fn new(mut groups: Vec<Group>) -> GroupIndex {
        let mut containing: HashMap<String, Vec<usize>> = HashMap::new();
        let mut containing_uid: HashMap<String, Vec<usize>> = HashMap::new();
        let dns: Vec<String> = groups.iter().map(|group| normalise_dn(&group.dn)).collect();
        for (index, group) in groups.iter_mut().enumerate() {
            for member in std::mem::take(&mut group.members) {
                containing.entry(member).or_default().push(index);
            }
            for uid in std::mem::take(&mut group.member_uids) {
                containing_uid
                    .entry(uid.to_lowercase())
                    .or_default()
                    .push(index);
            }
        }
        let parents = dns
            .iter()
            .map(|dn| containing.get(dn).cloned().unwrap_or_default())
            .collect();
        let by_dn = dns.into_iter().enumerate().map(|(i, dn)| (dn, i)).collect();
        GroupIndex {
            groups,
            by_dn,
            containing,
            containing_uid,
            parents,
        }
    }

    /// The groups an entry is directly in.
    fn direct(&self, dn: &str, uid: Option<&str>) -> Vec<usize> {
        let mut direct = self
            .containing
            .get(&normalise_dn(dn))
            .cloned()
            .unwrap_or_default();
        if let Some(uid) = uid
            && let Some(more) = self.containing_uid.get(&uid.to_lowercase())
        {
            direct.extend(more);
        }
        direct
    }

    /// The closure upwards from some groups: every group reachable through
    /// nesting, each visited once, so cycles end.
    fn closure(&self, start: Vec<usize>) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<usize> = start.into();
        while let Some(index) = queue.pop_front() {
            if !seen.insert(index) {
                continue;
            }
            queue.extend(
                self.parents[index]
                    .iter()
                    .copied()
                    .filter(|p| !seen.contains(p)),
            );
        }
        seen
    }
}

pub struct LdapDirectory {
    conn: Connection,
    settings: LdapSettings,
    /// Read on first use, once per connection.
    index: Option<GroupIndex>,
}

fn uuid_of(entry: &SearchEntry) -> Result<EntryUuid, DirectoryError> {
    let text = entry::text(entry, "entryUUID").ok_or_else(|| DirectoryError::Malformed {
        dn: entry.dn.clone(),
        attribute: "entryUUID".into(),
        problem: "missing: the directory must maintain entryUUID (RFC 4530)".into(),
    })?;
    EntryUuid::parse(&text).ok_or_else(|| DirectoryError::Malformed {
        dn: entry.dn.clone(),
        attribute: "entryUUID".into(),
        problem: format!("`{text}` is not a UUID"),
    })
}

/// Reads every group under the group base with one paged search.
async fn read_group_index(
    conn: &Connection,
    settings: &LdapSettings,
) -> Result<GroupIndex, DirectoryError> {
    let mut attrs = vec!["entryUUID", "cn", "member", "uniqueMember"];
    if settings.posix_groups {
        attrs.push("memberUid");
    }
    // Each page is turned into groups as it arrives, so the raw entries
    // of all the groups are never held at once.
    let mut groups = Vec::new();
    let mut malformed = None;
    conn.search_each(
        &settings.group_base,
        Scope::Subtree,
        &settings.group_filter,
        &attrs,
        |entry| match group_of(&entry, settings.posix_groups) {
            Ok(group) => groups.push(group),
            Err(err) => {
                malformed.get_or_insert(err);
            }
        },
    )
    .await?;
    if let Some(err) = malformed {
        return Err(err);
    }
    tracing::debug!(groups = groups.len(), "read the groups");
    Ok(GroupIndex::new(groups))
}

/// The entryUUIDs of every account under the user base that the disabled
/// filter matches.
async fn disabled_accounts(
    conn: &Connection,
    settings: &LdapSettings,
) -> Result<HashSet<EntryUuid>, DirectoryError> {
    let query = format!("(&{}{})", settings.user_filter, settings.disabled_filter);
    conn.search(&settings.user_base, Scope::Subtree, &query, &["entryUUID"])
        .await?
        .iter()
        .map(uuid_of)
        .collect()
}

fn group_of(entry: &SearchEntry, posix_groups: bool) -> Result<Group, DirectoryError> {
    let mut members: Vec<String> = entry::text_values(entry, "member")
        .iter()
        .map(|dn| normalise_dn(dn))
        .collect();
    members.extend(
        entry::text_values(entry, "uniqueMember")
            .iter()
            .map(|value| normalise_dn(unique_member_dn(value))),
    );
    Ok(Group {
        id: ObjectId::Uuid(uuid_of(entry)?),
        dn: entry.dn.clone(),
        label: entry::text(entry, "cn").unwrap_or_else(|| entry.dn.clone()),
        members,
        member_uids: if posix_groups {
            entry::texts(entry, "memberUid")
        } else {
            Vec::new()
        },
    })
}

impl LdapDirectory {
    pub(super) fn new(conn: Connection, settings: LdapSettings) -> LdapDirectory {
        LdapDirectory {
            conn,
            settings,
            index: None,
        }
    }

    pub(super) fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(super) fn into_connection(self) -> Connection {
        self.conn
    }

    /// The base entry's contextCSN values (the syncprov overlay keeps
    /// them), sorted and joined; `None` when the server keeps none.
    pub async fn watermark(&mut self, base_dn: &str) -> Result<Option<String>, DirectoryError> {
        let BaseRead::Found(base) = self.conn.read(base_dn, &["contextCSN"]).await? else {
            return Ok(None);
        };
        let mut csns = entry::texts(&base, "contextCSN");
        if csns.is_empty() {
            return Ok(None);
        }
        csns.sort();
        Ok(Some(csns.join(" ")))
    }

    fn account_attrs(&self) -> Vec<&str> {
        let mut attrs = vec!["entryUUID", self.settings.login_attribute.as_str()];
        if self.settings.use_memberof {
            attrs.push("memberOf");
        }
        attrs
    }

    /// The group index, read with one paged search the first time.
    async fn index(&mut self) -> Result<&GroupIndex, DirectoryError> {
        if self.index.is_none() {
            self.index = Some(read_group_index(&self.conn, &self.settings).await?);
        }
        // Just filled above when it was empty.
        self.index
            .as_ref()
            .ok_or_else(|| DirectoryError::Malformed {
                dn: String::new(),
                attribute: "group index".into(),
                problem: "not built".into(),
            })
    }

    /// Resolves every login: pinned ones by entryUUID in batches, the
    /// others by the identity typed; disabled ones found with one more
    /// search per batch; groups from one paged search.
    pub async fn resolve_logins(
        &mut self,
        logins: &[LoginQuery],
        scope: &GroupScope,
    ) -> Result<Vec<LoginOutcome>, DirectoryError> {
        let (found, disabled) = if logins.len() >= DUMP_FROM_LOGINS {
            // The accounts stream past on this connection while a second
            // one reads the groups and the disabled accounts: slapd keeps
            // one paged search per connection (a second one invalidates the
            // first's cookie), and answers two connections at once.
            let other = self.conn.open_another().await?;
            let cached = self.index.take();
            let settings = &self.settings;
            let read = tokio::try_join!(self.find_in_dump(logins), async {
                let index = match cached {
                    Some(index) => index,
                    None => read_group_index(&other, settings).await?,
                };
                let disabled = disabled_accounts(&other, settings).await?;
                Ok::<_, DirectoryError>((index, disabled))
            });
            other.close().await;
            let (found, (index, disabled)) = read?;
            self.index = Some(index);
            (found, disabled)
        } else {
            self.find_one_by_one(logins).await?
        };
        let needs_groups = found.iter().any(|f| f.is_ok());
        if needs_groups {
            self.index().await?;
        }
        let mut outcomes = Vec::with_capacity(logins.len());
        for result in found {
            let entry = match result {
                Ok(entry) => entry,
                Err(outcome) => {
                    outcomes.push(outcome);
                    continue;
                }
            };
            let uuid = uuid_of(&entry)?;
            let uid = entry::text(&entry, &self.settings.login_attribute);
            let mut account = FoundAccount {
                id: ObjectId::Uuid(uuid.clone()),
                dn: entry.dn.clone(),
                label: uid.clone().unwrap_or_else(|| entry.dn.clone()),
                groups: BTreeSet::new(),
            };
            if disabled.contains(&uuid) {
                outcomes.push(LoginOutcome::Disabled(account));
                continue;
            }
            let use_memberof = self.settings.use_memberof;
            let index = self.index().await?;
            let direct = if use_memberof {
                let mut direct: Vec<usize> = entry::texts(&entry, "memberOf")
                    .iter()
                    .filter_map(|dn| index.by_dn.get(&normalise_dn(dn)).copied())
                    .collect();
                if let Some(uid) = uid.as_deref()
                    && let Some(more) = index.containing_uid.get(&uid.to_lowercase())
                {
                    direct.extend(more);
                }
                direct
            } else {
                index.direct(&entry.dn, uid.as_deref())
            };
            account.groups = index
                .closure(direct)
                .into_iter()
                .map(|i| &index.groups[i].id)
                .filter(|id| scope.keeps(id))
                .cloned()
                .collect();
            outcomes.push(LoginOutcome::Active(account));
        }
        Ok(outcomes)
    }

    /// Finds each login's entry with searches per login (pinned ones in
    /// batches), and which of them the disabled filter matches.
    async fn find_one_by_one(
        &mut self,
        logins: &[LoginQuery],
    ) -> Result<(Vec<Result<SearchEntry, LoginOutcome>>, HashSet<EntryUuid>), DirectoryError> {
        let pinned: Vec<&EntryUuid> = logins
            .iter()
            .filter_map(|l| match &l.pinned {
                Some(ObjectId::Uuid(uuid)) => Some(uuid),
                _ => None,
            })
            .collect();
        let mut by_uuid = self.accounts_by_uuid(&pinned, None).await?;

        let mut found: Vec<Result<SearchEntry, LoginOutcome>> = Vec::with_capacity(logins.len());
        for login in logins {
            found.push(match &login.pinned {
                Some(ObjectId::Uuid(uuid)) => by_uuid
                    .remove(uuid)
                    .map(Ok)
                    .unwrap_or(Err(LoginOutcome::NotFound)),
                Some(ObjectId::Sid(sid)) => Err(pinned_to_sid(sid)),
                None => self.account_by_identity(&login.identity).await?,
            });
        }

        let uuids: Vec<EntryUuid> = found
            .iter()
            .filter_map(|f| f.as_ref().ok())
            .map(uuid_of)
            .collect::<Result<_, _>>()?;
        let refs: Vec<&EntryUuid> = uuids.iter().collect();
        let disabled_filter = self.settings.disabled_filter.clone();
        let disabled: HashSet<EntryUuid> = self
            .accounts_by_uuid(&refs, Some(&disabled_filter))
            .await?
            .into_keys()
            .collect();
        Ok((found, disabled))
    }

    /// Finds every login's entry in one paged search of all accounts:
    /// pages, not requests per login.
    async fn find_in_dump(
        &self,
        logins: &[LoginQuery],
    ) -> Result<Vec<Result<SearchEntry, LoginOutcome>>, DirectoryError> {
        let attrs: Vec<String> = self.account_attrs().iter().map(|a| a.to_string()).collect();
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let base = self.settings.user_base.clone();
        let user_filter = self.settings.user_filter.clone();
        let login_attribute = self.settings.login_attribute.clone();
        // Only the entries some login asks for are kept: a directory of
        // 100,000 accounts streams past in pages.
        let mut wanted_uuids: HashSet<&EntryUuid> = HashSet::new();
        let mut wanted_logins: HashSet<String> = HashSet::new();
        let mut wanted_dns: HashSet<String> = HashSet::new();
        for login in logins {
            match (&login.pinned, &login.identity) {
                (Some(ObjectId::Uuid(uuid)), _) | (None, Identity::Uuid(uuid)) => {
                    wanted_uuids.insert(uuid);
                }
                (None, Identity::Uid(name)) => {
                    wanted_logins.insert(name.to_lowercase());
                }
                (None, Identity::Dn(dn)) => {
                    wanted_dns.insert(normalise_dn(dn));
                }
                _ => {}
            }
        }
        let mut accounts = Vec::new();
        let mut malformed = None;
        self.conn
            .search_each(&base, Scope::Subtree, &user_filter, &attrs, |account| {
                let uuid = match uuid_of(&account) {
                    Ok(uuid) => uuid,
                    Err(err) => {
                        malformed.get_or_insert(err);
                        return;
                    }
                };
                // Most of a large directory is not wanted: ask cheap
                // questions first, and only those some login needs.
                let wanted = wanted_uuids.contains(&uuid)
                    || (!wanted_logins.is_empty()
                        && entry::text_values(&account, &login_attribute)
                            .iter()
                            .any(|value| wanted_logins.contains(&value.to_lowercase())))
                    || (!wanted_dns.is_empty() && wanted_dns.contains(&normalise_dn(&account.dn)));
                if wanted {
                    accounts.push(account);
                }
            })
            .await?;
        if let Some(err) = malformed {
            return Err(err);
        }
        let mut by_uuid: HashMap<EntryUuid, usize> = HashMap::new();
        let mut by_login: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_dn: HashMap<String, usize> = HashMap::new();
        for (index, account) in accounts.iter().enumerate() {
            by_uuid.insert(uuid_of(account)?, index);
            for value in entry::texts(account, &login_attribute) {
                by_login
                    .entry(value.to_lowercase())
                    .or_default()
                    .push(index);
            }
            by_dn.insert(normalise_dn(&account.dn), index);
        }
        let mut found = Vec::with_capacity(logins.len());
        for login in logins {
            let matches: Vec<usize> = match (&login.pinned, &login.identity) {
                (Some(ObjectId::Uuid(uuid)), _) | (None, Identity::Uuid(uuid)) => {
                    by_uuid.get(uuid).copied().into_iter().collect()
                }
                (Some(ObjectId::Sid(sid)), _) => {
                    found.push(Err(pinned_to_sid(sid)));
                    continue;
                }
                (None, Identity::Uid(name)) => by_login
                    .get(&name.to_lowercase())
                    .cloned()
                    .unwrap_or_default(),
                (None, Identity::Dn(dn)) => match by_dn.get(&normalise_dn(dn)) {
                    Some(index) => vec![*index],
                    // Outside what the dump read: ask for it, as one by one would.
                    None => {
                        found.push(self.account_by_identity(&login.identity).await?);
                        continue;
                    }
                },
                (None, identity) => {
                    found.push(Err(self.not_an_ldap_login(identity)));
                    continue;
                }
            };
            found.push(entry::single_account(
                matches.into_iter().map(|i| accounts[i].clone()).collect(),
            ));
        }
        Ok(found)
    }

    fn not_an_ldap_login(&self, identity: &Identity) -> LoginOutcome {
        LoginOutcome::Failed(format!(
            "{identity} is {}, not a login form for a generic LDAP directory: use a {}, a DN or an entryUUID",
            identity.form(),
            self.settings.login_attribute
        ))
    }

    /// Accounts by entryUUID, in batches; with `extra`, only those that
    /// also match it (the disabled filter).
    async fn accounts_by_uuid(
        &self,
        uuids: &[&EntryUuid],
        extra: Option<&str>,
    ) -> Result<HashMap<EntryUuid, SearchEntry>, DirectoryError> {
        let mut found = HashMap::new();
        let unique: BTreeSet<&EntryUuid> = uuids.iter().copied().collect();
        let unique: Vec<&EntryUuid> = unique.into_iter().collect();
        let attrs: Vec<String> = self.account_attrs().iter().map(|a| a.to_string()).collect();
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        for chunk in unique.chunks(IDS_PER_SEARCH) {
            let alternatives: Vec<String> = chunk
                .iter()
                .map(|uuid| filter::equals("entryUUID", uuid.as_str()))
                .collect();
            let query = format!(
                "(&{}{}{})",
                self.settings.user_filter,
                filter::any_of(&alternatives),
                extra.unwrap_or("")
            );
            let base = self.settings.user_base.clone();
            for entry in self
                .conn
                .search(&base, Scope::Subtree, &query, &attrs)
                .await?
            {
                found.insert(uuid_of(&entry)?, entry);
            }
        }
        Ok(found)
    }

    async fn account_by_identity(
        &self,
        identity: &Identity,
    ) -> Result<Result<SearchEntry, LoginOutcome>, DirectoryError> {
        let attrs: Vec<String> = self.account_attrs().iter().map(|a| a.to_string()).collect();
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let entries = match identity {
            Identity::Uid(name) => {
                let query = format!(
                    "(&{}{})",
                    self.settings.user_filter,
                    filter::equals(&self.settings.login_attribute, name)
                );
                let base = self.settings.user_base.clone();
                self.conn
                    .search(&base, Scope::Subtree, &query, &attrs)
                    .await?
            }
            Identity::Uuid(uuid) => {
                let query = format!(
                    "(&{}{})",
                    self.settings.user_filter,
                    filter::equals("entryUUID", uuid.as_str())
                );
                let base = self.settings.user_base.clone();
                self.conn
                    .search(&base, Scope::Subtree, &query, &attrs)
                    .await?
            }
            Identity::Dn(dn) => match self.conn.read(dn, &attrs).await {
                Ok(BaseRead::Found(entry)) => vec![entry],
                Ok(BaseRead::Missing) => vec![],
                Ok(BaseRead::Denied(text)) => {
                    return Ok(Err(LoginOutcome::Failed(format!(
                        "no right to read {dn}: {text}"
                    ))));
                }
                // The server cannot parse this DN: that login fails, not the pass.
                Err(DirectoryError::Result {
                    rc: INVALID_DN_SYNTAX,
                    text,
                    ..
                }) => {
                    return Ok(Err(LoginOutcome::Failed(format!(
                        "`{dn}` is not a DN the directory accepts: {text}"
                    ))));
                }
                Err(err) => return Err(err),
            },
            Identity::DownLevel { .. } | Identity::Upn { .. } | Identity::Sid(_) => {
                return Ok(Err(self.not_an_ldap_login(identity)));
            }
        };
        Ok(entry::single_account(entries))
    }

    /// Which of these groups exist, from the group index.
    pub async fn groups_present(
        &mut self,
        ids: &[ObjectId],
    ) -> Result<BTreeSet<ObjectId>, DirectoryError> {
        let index = self.index().await?;
        let known: HashSet<&ObjectId> = index.groups.iter().map(|g| &g.id).collect();
        Ok(ids
            .iter()
            .filter(|id| known.contains(id))
            .cloned()
            .collect())
    }

    /// Finds a group by DN or cn under the group base.
    pub async fn find_group(&mut self, group: &GroupRef) -> Result<GroupLookup, DirectoryError> {
        let attrs = ["entryUUID", "cn", "objectClass"];
        let entries = match group {
            GroupRef::Dn(dn) => {
                let query = format!("(&{}{})", self.settings.group_filter, "(objectClass=*)");
                match self.conn.read(dn, &attrs).await? {
                    BaseRead::Found(entry) => {
                        // The entry exists; is it one of the groups we read?
                        let base = entry.dn.clone();
                        let matching = self.conn.search(&base, Scope::Base, &query, &attrs).await?;
                        if matching.is_empty() {
                            return Ok(GroupLookup::NotAGroup { dn: entry.dn });
                        }
                        matching
                    }
                    BaseRead::Missing | BaseRead::Denied(_) => vec![],
                }
            }
            GroupRef::Name(name) => {
                let query = format!(
                    "(&{}{})",
                    self.settings.group_filter,
                    filter::equals("cn", name)
                );
                let base = self.settings.group_base.clone();
                self.conn
                    .search(&base, Scope::Subtree, &query, &attrs)
                    .await?
            }
            GroupRef::DownLevel { domain, .. } => {
                return Ok(GroupLookup::OtherDomain {
                    domain: domain.clone(),
                });
            }
            GroupRef::Sid(_) => vec![],
        };
        match entries.len() {
            0 => Ok(GroupLookup::NotFound),
            1 => {
                let entry = &entries[0];
                Ok(GroupLookup::Found(DirectoryGroup {
                    id: ObjectId::Uuid(uuid_of(entry)?),
                    dn: entry.dn.clone(),
                    label: entry::text(entry, "cn").unwrap_or_else(|| entry.dn.clone()),
                    is_security: true,
                }))
            }
            _ => Ok(GroupLookup::Ambiguous {
                dns: entries.into_iter().map(|e| e.dn).collect(),
            }),
        }
    }

    /// Chains from the account's direct groups to the targets, from the
    /// in-memory group graph.
    pub async fn group_chains(
        &mut self,
        account: &FoundAccount,
        targets: &[ObjectId],
    ) -> Result<Vec<GroupChain>, DirectoryError> {
        let uid = if account.label == account.dn {
            None
        } else {
            Some(account.label.clone())
        };
        let index = self.index().await?;
        let starts: Vec<String> = index
            .direct(&account.dn, uid.as_deref())
            .into_iter()
            .map(|i| index.groups[i].dn.clone())
            .collect();
        let mut graph = chain::Graph::default();
        for group in &index.groups {
            let parents = index
                .containing
                .get(&normalise_dn(&group.dn))
                .map(|ps| ps.iter().map(|p| index.groups[*p].dn.clone()).collect())
                .unwrap_or_default();
            graph.insert(chain::Node {
                dn: group.dn.clone(),
                id: group.id.clone(),
                label: group.label.clone(),
                is_security: true,
                parents,
            });
        }
        Ok(targets
            .iter()
            .filter_map(|target| graph.chain(&starts, target))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid(n: u8) -> ObjectId {
        ObjectId::parse(&format!("00000000-0000-0000-0000-0000000000{n:02x}")).unwrap()
    }

    fn group(n: u8, members: &[&str]) -> Group {
        Group {
            id: uuid(n),
            dn: format!("cn=g{n},ou=groups,dc=example,dc=org"),
            label: format!("g{n}"),
            members: members.iter().map(|m| normalise_dn(m)).collect(),
            member_uids: vec![],
        }
    }

    #[test]
    fn nesting_is_followed_and_cycles_end() {
        let user = "uid=svc,ou=people,dc=example,dc=org";
        let index = GroupIndex::new(vec![
            group(1, &[user]),
            group(2, &["CN=g1, ou=groups,dc=example,dc=org"]),
            group(
                3,
                &[
                    "cn=g2,ou=groups,dc=example,dc=org",
                    "cn=g4,ou=groups,dc=example,dc=org",
                ],
            ),
            group(4, &["cn=g3,ou=groups,dc=example,dc=org"]),
            group(5, &["uid=other,ou=people,dc=example,dc=org"]),
        ]);
        let closure = index.closure(index.direct(user, None));
        let ids: Vec<&ObjectId> = closure.iter().map(|i| &index.groups[*i].id).collect();
        assert_eq!(ids, vec![&uuid(1), &uuid(2), &uuid(3), &uuid(4)]);
    }

    #[test]
    fn member_uid_and_unique_member_suffixes_count() {
        let mut posix = group(1, &[]);
        posix.member_uids = vec!["SVC".into()];
        let unique = group(
            2,
            &[unique_member_dn(
                "uid=svc,ou=people,dc=example,dc=org#'0101'B",
            )],
        );
        let index = GroupIndex::new(vec![posix, unique]);
        let direct = index.direct("uid=svc,ou=people,dc=example,dc=org", Some("svc"));
        assert_eq!(direct.len(), 2);
    }
}
