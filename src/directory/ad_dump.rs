//! The group-dump strategy for Active Directory: one paged search of the
//! accounts and one of the groups (with their members, range retrieval
//! where the DC ranges), then Windows' token expansion in memory.
//!
//! It costs pages, not requests per account, so it wins when many logins
//! are linked, and it needs no right to read tokenGroups. Its answer is the
//! same as tokenGroups': transitive security groups only, the primary group
//! included, distribution groups neither counted nor passed through.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use ldap3::{Scope, SearchEntry};

use super::ad::{ACCOUNT_ATTRS, AdDomain, GROUP_TYPE_SECURITY, LoginQuery, UAC_ACCOUNT_DISABLE};
use super::connection::Connection;
use super::entry::normalise_dn;
use super::{DirectoryError, GroupScope, entry};
use crate::model::{FoundAccount, Identity, LoginOutcome, ObjectId, Sid};

const GROUP_ATTRS: &[&str] = &["objectSid", "groupType", "member"];

struct Account {
    entry: SearchEntry,
    sid: Sid,
}

/// A group of the dump.
pub struct DumpGroup {
    pub dn: String,
    pub sid: Sid,
    pub is_security: bool,
    /// Member DNs as the directory lists them.
    pub members: Vec<String>,
}

/// The security groups and how they nest, ready for token expansion.
pub struct Token {
    sids: Vec<Sid>,
    by_sid: HashMap<Sid, usize>,
    /// Normalised member DN -> security groups listing it.
    containing: HashMap<String, Vec<usize>>,
    dns: Vec<String>,
}

impl Token {
    /// Keeps the security groups only: a distribution group neither counts
    /// nor passes on the memberships of the groups it is in.
    pub fn new(groups: Vec<DumpGroup>) -> Token {
        let mut token = Token {
            sids: Vec::new(),
            by_sid: HashMap::new(),
            containing: HashMap::new(),
            dns: Vec::new(),
        };
        for group in groups.into_iter().filter(|g| g.is_security) {
            let index = token.sids.len();
            token.by_sid.insert(group.sid.clone(), index);
            for member in &group.members {
                token
                    .containing
                    .entry(normalise_dn(member))
                    .or_default()
                    .push(index);
            }
            token.sids.push(group.sid);
            token.dns.push(normalise_dn(&group.dn));
        }
        token
    }

    /// The SIDs Windows puts in the token of the account at `dn` whose
    /// primary group is `primary`: its security groups, transitively.
    pub fn expand(&self, dn: &str, primary: Option<&Sid>) -> BTreeSet<Sid> {
        let mut queue: VecDeque<usize> = self
            .containing
            .get(&normalise_dn(dn))
            .cloned()
            .unwrap_or_default()
            .into();
        let mut sids = BTreeSet::new();
        if let Some(primary) = primary {
            // The primary group counts even when the dump lacks it.
            sids.insert(primary.clone());
            if let Some(index) = self.by_sid.get(primary) {
                queue.push_back(*index);
            }
        }
        let mut seen = vec![false; self.sids.len()];
        while let Some(index) = queue.pop_front() {
            if std::mem::replace(&mut seen[index], true) {
                continue;
            }
            sids.insert(self.sids[index].clone());
            if let Some(parents) = self.containing.get(&self.dns[index]) {
                queue.extend(parents.iter().copied().filter(|p| !seen[*p]));
            }
        }
        sids
    }
}

/// What the dumps said: an outcome per login, in order, and the SID of
/// every group under the base DN (security or not), which answers "is this
/// linked group still there?" without another search.
pub struct Resolved {
    pub outcomes: Vec<LoginOutcome>,
    pub group_sids: HashSet<Sid>,
}

/// Resolves every login from the two dumps.
pub async fn resolve(
    conn: &Connection,
    domain: &AdDomain,
    logins: &[LoginQuery],
    scope: &GroupScope,
) -> Result<Resolved, DirectoryError> {
    let base = domain.base_dn.clone();
    // Both dumps at once on the one connection: while the DC works on one
    // page, teamsync decodes the other's, instead of each side waiting for
    // the other in turn.
    let (account_entries, groups) = tokio::try_join!(
        conn.search(&base, Scope::Subtree, "(objectClass=user)", ACCOUNT_ATTRS),
        read_groups(conn, &base),
    )?;
    let mut accounts = Vec::with_capacity(account_entries.len());
    for entry in account_entries {
        let sid = entry::object_sid(&entry)?;
        accounts.push(Account { entry, sid });
    }
    let mut by_sid: HashMap<&Sid, usize> = HashMap::new();
    let mut by_sam: HashMap<String, Vec<usize>> = HashMap::new();
    let mut by_upn: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, account) in accounts.iter().enumerate() {
        by_sid.insert(&account.sid, index);
        if let Some(sam) = entry::text(&account.entry, "sAMAccountName") {
            by_sam.entry(sam.to_lowercase()).or_default().push(index);
        }
        if let Some(upn) = entry::text(&account.entry, "userPrincipalName") {
            by_upn.entry(upn.to_lowercase()).or_default().push(index);
        }
    }

    tracing::debug!(
        accounts = accounts.len(),
        groups = groups.len(),
        "read the accounts and groups"
    );
    let group_sids = groups.iter().map(|group| group.sid.clone()).collect();
    let token = Token::new(groups);

    let mut outcomes = Vec::with_capacity(logins.len());
    for login in logins {
        let matches: Vec<usize> = match (&login.pinned, &login.identity) {
            (Some(ObjectId::Sid(sid)), _) | (None, Identity::Sid(sid)) => {
                by_sid.get(sid).copied().into_iter().collect()
            }
            (Some(ObjectId::Uuid(uuid)), _) => {
                outcomes.push(LoginOutcome::Failed(format!(
                    "pinned to entryUUID {}, which an Active Directory does not use",
                    uuid.as_str()
                )));
                continue;
            }
            (
                None,
                Identity::DownLevel {
                    domain: netbios,
                    name,
                },
            ) => {
                if !netbios.eq_ignore_ascii_case(&domain.netbios) {
                    outcomes.push(LoginOutcome::Failed(format!(
                        "domain {netbios} is not this directory's domain {}",
                        domain.netbios
                    )));
                    continue;
                }
                by_sam
                    .get(&name.to_lowercase())
                    .cloned()
                    .unwrap_or_default()
            }
            (
                None,
                Identity::Upn {
                    name,
                    domain: suffix,
                },
            ) => {
                let upn = format!("{name}@{suffix}").to_lowercase();
                match by_upn.get(&upn) {
                    Some(found) => found.clone(),
                    // AD also accepts the implicit UPN sAMAccountName@dns-domain.
                    None if suffix.eq_ignore_ascii_case(&domain.dns) => by_sam
                        .get(&name.to_lowercase())
                        .cloned()
                        .unwrap_or_default(),
                    None => Vec::new(),
                }
            }
            (None, identity) => {
                outcomes.push(LoginOutcome::Failed(format!(
                    "{identity} is {}, not a login form for Active Directory: use NETBIOS\\name, name@domain or a SID",
                    identity.form()
                )));
                continue;
            }
        };
        let account = match matches.as_slice() {
            [] => {
                outcomes.push(LoginOutcome::NotFound);
                continue;
            }
            [one] => &accounts[*one],
            many => {
                outcomes.push(LoginOutcome::Failed(format!(
                    "{} accounts match: {}",
                    many.len(),
                    many.iter()
                        .map(|i| accounts[*i].entry.dn.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
                continue;
            }
        };
        outcomes.push(outcome(account, domain, &token, scope)?);
    }
    Ok(Resolved {
        outcomes,
        group_sids,
    })
}

/// Every group under `base` with all its members (the remaining ranges
/// read where the DC ranged `member`).
async fn read_groups(conn: &Connection, base: &str) -> Result<Vec<DumpGroup>, DirectoryError> {
    let mut groups = Vec::new();
    for group in conn
        .search(base, Scope::Subtree, "(objectClass=group)", GROUP_ATTRS)
        .await?
    {
        let members = conn.all_values(&group, "member").await?;
        groups.push(DumpGroup {
            dn: group.dn.clone(),
            sid: entry::object_sid(&group)?,
            is_security: entry::integer(&group, "groupType")?.unwrap_or(0) & GROUP_TYPE_SECURITY
                != 0,
            members,
        });
    }
    Ok(groups)
}

fn outcome(
    account: &Account,
    domain: &AdDomain,
    token: &Token,
    scope: &GroupScope,
) -> Result<LoginOutcome, DirectoryError> {
    let entry = &account.entry;
    let sam = entry::text(entry, "sAMAccountName").unwrap_or_else(|| account.sid.to_string());
    let mut found = FoundAccount {
        id: ObjectId::Sid(account.sid.clone()),
        dn: entry.dn.clone(),
        label: format!("{}\\{sam}", domain.netbios),
        groups: BTreeSet::new(),
    };
    let Some(uac) = entry::integer(entry, "userAccountControl")? else {
        return Ok(LoginOutcome::Failed(format!(
            "cannot read userAccountControl of {} (does the bind account have read rights?)",
            entry.dn
        )));
    };
    if uac & UAC_ACCOUNT_DISABLE != 0 {
        return Ok(LoginOutcome::Disabled(found));
    }
    let primary = entry::integer(entry, "primaryGroupID")?
        .and_then(|rid| u32::try_from(rid).ok())
        .and_then(|rid| account.sid.domain()?.with_rid(rid).ok());
    let Some(primary) = primary else {
        // Every account has a primary group: without it the entry was not readable.
        return Ok(LoginOutcome::Failed(format!(
            "cannot read primaryGroupID of {} (does the bind account have read rights?)",
            entry.dn
        )));
    };
    found.groups = token
        .expand(&entry.dn, Some(&primary))
        .into_iter()
        .filter(|sid| scope.keeps_sid(sid))
        .map(ObjectId::Sid)
        .collect();
    Ok(LoginOutcome::Active(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(rid: u32) -> Sid {
        format!("S-1-5-21-1-2-3-{rid}").parse().unwrap()
    }

    fn group(rid: u32, security: bool, members: &[&str]) -> DumpGroup {
        DumpGroup {
            dn: format!("CN=g{rid},DC=corp"),
            sid: sid(rid),
            is_security: security,
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    const USER: &str = "CN=svc,CN=Users,DC=corp";

    #[test]
    fn expands_nesting_the_primary_group_and_its_parents() {
        let token = Token::new(vec![
            group(1, true, &[USER]),
            group(2, true, &["cn=g1, dc=corp"]),
            group(3, true, &["CN=g2,DC=corp", "CN=g513,DC=corp"]),
            group(513, true, &[]),
            group(9, true, &["CN=other,DC=corp"]),
        ]);
        let sids = token.expand(USER, Some(&sid(513)));
        assert_eq!(sids, [1, 2, 3, 513].into_iter().map(sid).collect());
    }

    #[test]
    fn distribution_groups_neither_count_nor_pass_membership_on() {
        let token = Token::new(vec![
            group(1, false, &[USER]),
            group(2, true, &["CN=g1,DC=corp"]),
        ]);
        assert_eq!(token.expand(USER, None), BTreeSet::new());
    }

    #[test]
    fn cycles_and_self_members_end() {
        let token = Token::new(vec![
            group(1, true, &[USER, "CN=g2,DC=corp", "CN=g1,DC=corp"]),
            group(2, true, &["CN=g1,DC=corp"]),
        ]);
        assert_eq!(
            token.expand(USER, None),
            [1, 2].into_iter().map(sid).collect()
        );
    }

    #[test]
    fn a_primary_group_missing_from_the_dump_still_counts() {
        let token = Token::new(vec![]);
        assert_eq!(token.expand(USER, Some(&sid(513))), [sid(513)].into());
    }
}
