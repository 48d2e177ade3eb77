//! What a pass learns from the directory and what it decides to change.

use std::collections::BTreeSet;
use std::fmt;

use super::{AccountName, Identity, ObjectId, TeamName};

/// Where a team membership came from. Sync only ever touches `Directory`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Source {
    Manual,
    Directory,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Manual => "manual",
            Source::Directory => "directory",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        match text {
            "manual" => Some(Source::Manual),
            "directory" => Some(Source::Directory),
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A team linked to a directory group, by the group's stable id.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LinkedGroup {
    pub team: TeamName,
    pub group: ObjectId,
    /// How humans know the group (`CORP\Deployers`), for reasons and logs.
    pub label: String,
}

/// The directory account found behind a login.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FoundAccount {
    /// objectSid (AD) or entryUUID (LDAP): what the login is pinned to.
    pub id: ObjectId,
    pub dn: String,
    /// `NETBIOS\sAMAccountName` (AD) or the uid (LDAP), for humans.
    pub label: String,
    /// Every group the account is in, transitively. For AD: the security
    /// groups of `tokenGroups`, primary group included.
    pub groups: BTreeSet<ObjectId>,
}

/// What the directory said about one login.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LoginOutcome {
    /// Found and enabled: its groups count.
    Active(FoundAccount),
    /// Found but disabled (userAccountControl bit 0x2): contributes no groups.
    Disabled(FoundAccount),
    /// No such account (any more): contributes no groups.
    NotFound,
    /// The directory could not tell (no right to read it, ambiguous, ...):
    /// the service account's memberships stay as they are.
    Failed(String),
}

/// One external login with what the directory said about it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ResolvedLogin {
    pub identity: Identity,
    pub outcome: LoginOutcome,
}

/// A service account as the planner sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AccountInput {
    pub account: AccountName,
    pub logins: Vec<ResolvedLogin>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Action {
    Add,
    Remove,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One directory-sourced membership to add or remove, with the reason in
/// words an admin can check.
#[derive(Clone, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub struct Change {
    pub account: AccountName,
    pub team: TeamName,
    pub action: Action,
    pub reason: String,
}

/// A directory group as `team link` found it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DirectoryGroup {
    pub id: ObjectId,
    pub dn: String,
    /// `NETBIOS\sAMAccountName` (AD) or the cn (LDAP).
    pub label: String,
    /// AD: groupType bit 0x80000000; only security groups take part in
    /// authorization. Always true for LDAP groups.
    pub is_security: bool,
}

/// One step of a membership chain: a group on the way up.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChainStep {
    pub label: String,
    pub dn: String,
    /// AD: only security groups pass membership on to Windows authorization.
    pub is_security: bool,
}

/// How an account reaches a linked group: from its first group (direct
/// membership or primary group) up to the linked group itself.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GroupChain {
    pub target: ObjectId,
    pub steps: Vec<ChainStep>,
}

impl GroupChain {
    /// A distribution group on the way: the chain grants nothing.
    pub fn distribution_step(&self) -> Option<&ChainStep> {
        self.steps.iter().find(|step| !step.is_security)
    }
}
