//! Shared nouns: names, SIDs, identities, memberships. No I/O here.

mod guid;
mod identity;
mod names;
mod object_id;
mod resolution;
mod sid;

pub use guid::{Guid, GuidLengthError};
pub use identity::{GroupRef, Identity, IdentityError};
pub use names::{AccountName, NameError, TeamName};
pub use object_id::{EntryUuid, ObjectId, ObjectIdError};
pub use resolution::{
    AccountInput, Action, ChainStep, Change, DirectoryGroup, FoundAccount, GroupChain, LinkedGroup,
    LoginOutcome, ResolvedLogin, Source,
};
pub use sid::{Sid, SidError};

/// Which kind of directory teamsync talks to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DirectoryKind {
    /// Microsoft Active Directory (or Samba AD): SIDs, tokenGroups.
    ActiveDirectory,
    /// A generic LDAP directory (OpenLDAP, 389-DS): groupOfNames, entryUUID.
    Ldap,
}

impl DirectoryKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectoryKind::ActiveDirectory => "active_directory",
            DirectoryKind::Ldap => "ldap",
        }
    }
}
