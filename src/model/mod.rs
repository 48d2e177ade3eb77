//! Shared nouns: names, SIDs, identities, memberships. No I/O here.

mod guid;
mod identity;
mod names;
mod resolution;
mod sid;

pub use guid::{Guid, GuidLengthError};
pub use identity::{GroupRef, Identity, IdentityError};
pub use names::{AccountName, NameError, TeamName};
pub use resolution::{
    AccountInput, Action, Change, DirectoryGroup, FoundAccount, LinkedGroup, LoginOutcome,
    ResolvedLogin, Source,
};
pub use sid::{Sid, SidError};
