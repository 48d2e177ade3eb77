//! The identifier a directory object keeps through renames and moves: an
//! objectSid in Active Directory, an entryUUID in generic LDAP directories.
//!
//! Logins are pinned and groups linked by this id, never by name or DN.

use std::fmt;

use super::{Sid, SidError};

/// A stable directory object id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectId {
    Sid(Sid),
    Uuid(EntryUuid),
}

/// An RFC 4122 UUID in its text form, as OpenLDAP's entryUUID holds it;
/// kept in lowercase so that comparisons are exact.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct EntryUuid(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectIdError {
    #[error(transparent)]
    Sid(#[from] SidError),
    #[error("`{0}` is neither a SID (S-1-...) nor a UUID (8-4-4-4-12 hex digits)")]
    Unrecognised(String),
}

impl EntryUuid {
    pub fn parse(text: &str) -> Option<EntryUuid> {
        let groups: Vec<&str> = text.split('-').collect();
        let lengths = [8, 4, 4, 4, 12];
        let well_formed = groups.len() == lengths.len()
            && groups.iter().zip(lengths).all(|(group, len)| {
                group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit())
            });
        well_formed.then(|| EntryUuid(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ObjectId {
    /// Parses the stored text form: `S-1-...` or a UUID.
    pub fn parse(text: &str) -> Result<ObjectId, ObjectIdError> {
        if text.starts_with("S-") || text.starts_with("s-") {
            return Ok(ObjectId::Sid(text.parse()?));
        }
        EntryUuid::parse(text)
            .map(ObjectId::Uuid)
            .ok_or_else(|| ObjectIdError::Unrecognised(text.to_owned()))
    }

    pub fn as_sid(&self) -> Option<&Sid> {
        match self {
            ObjectId::Sid(sid) => Some(sid),
            ObjectId::Uuid(_) => None,
        }
    }
}

impl From<Sid> for ObjectId {
    fn from(sid: Sid) -> ObjectId {
        ObjectId::Sid(sid)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectId::Sid(sid) => write!(f, "{sid}"),
            ObjectId::Uuid(uuid) => f.write_str(uuid.as_str()),
        }
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sids_and_uuids_are_told_apart() {
        assert!(matches!(
            ObjectId::parse("S-1-5-21-1-2-3-1105"),
            Ok(ObjectId::Sid(_))
        ));
        let uuid = ObjectId::parse("5B2C3A6E-1D2F-4A3B-9C8D-0E1F2A3B4C5D").unwrap();
        assert_eq!(uuid.to_string(), "5b2c3a6e-1d2f-4a3b-9c8d-0e1f2a3b4c5d");
        assert!(ObjectId::parse("5b2c3a6e1d2f4a3b9c8d0e1f2a3b4c5d").is_err());
        assert!(ObjectId::parse("S-1-x").is_err());
        assert!(ObjectId::parse("").is_err());
    }

    proptest! {
        #[test]
        fn text_round_trips_and_never_panics(text in "\\PC{0,50}") {
            if let Ok(id) = ObjectId::parse(&text) {
                prop_assert_eq!(ObjectId::parse(&id.to_string()).unwrap(), id);
            }
        }

        #[test]
        fn uuids_round_trip(bytes in prop::array::uniform16(any::<u8>())) {
            let h = hex::encode(bytes);
            let text = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
            let id = ObjectId::parse(&text).unwrap();
            prop_assert_eq!(id.to_string(), text);
        }
    }
}
