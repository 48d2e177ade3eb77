//! What an admin types to name a directory account or group.
//!
//! Parsing is purely syntactic: whether `CORP\svc-build` exists is the
//! directory's question. Names are kept exactly as typed (filters escape
//! them later), so `CORP\svc-b*` stays a name with an asterisk in it.

use std::fmt;

use super::{DirectoryKind, EntryUuid, Sid};

/// An external login: which directory account stands behind a service account.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// AD: `NETBIOS\sAMAccountName`
    DownLevel { domain: String, name: String },
    /// AD: `name@dns.domain`
    Upn { name: String, domain: String },
    /// AD: `S-1-5-21-...`
    Sid(Sid),
    /// LDAP: a uid value (the naming attribute is configurable).
    Uid(String),
    /// LDAP: the account's DN.
    Dn(String),
    /// LDAP: the account's entryUUID.
    Uuid(EntryUuid),
}

/// How an admin names a group to link a team to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum GroupRef {
    /// A distinguished name such as `CN=Deployers,OU=Groups,DC=corp,DC=example,DC=com`.
    Dn(String),
    /// `NETBIOS\name`
    DownLevel {
        domain: String,
        name: String,
    },
    /// A plain sAMAccountName.
    Name(String),
    Sid(Sid),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("an identity cannot be empty")]
    Empty,
    #[error(
        "`{text}` is not an identity: expected NETBIOS\\name (e.g. CORP\\svc-build), a UPN (svc-build@corp.example.com) or a SID (S-1-5-21-...); with directory.kind: ldap, a uid, a DN or an entryUUID"
    )]
    Unrecognised { text: String },
    #[error("`{text}` is {form}, which an {kind} directory does not use for logins; {expected}")]
    WrongKind {
        text: String,
        form: &'static str,
        kind: &'static str,
        expected: &'static str,
    },
    #[error("`{text}`: {problem}")]
    Invalid { text: String, problem: &'static str },
}

/// NetBIOS domain names are at most 15 characters (MS-ADTS).
const NETBIOS_MAX: usize = 15;

fn invalid(text: &str, problem: &'static str) -> IdentityError {
    IdentityError::Invalid {
        text: text.to_owned(),
        problem,
    }
}

/// Control characters never belong in an admin-typed name; refusing them keeps
/// terminals, logs and filters free of surprises.
fn check_printable(text: &str) -> Result<(), IdentityError> {
    if text.chars().any(char::is_control) {
        return Err(invalid(text, "contains a control character"));
    }
    Ok(())
}

fn split_down_level(text: &str) -> Option<Result<(String, String), IdentityError>> {
    let (domain, name) = text.split_once('\\')?;
    Some((|| {
        if domain.is_empty() {
            return Err(invalid(text, "the NetBIOS domain before `\\` is empty"));
        }
        if domain.chars().count() > NETBIOS_MAX {
            return Err(invalid(text, "a NetBIOS domain has at most 15 characters"));
        }
        if domain.contains(|c: char| c.is_whitespace() || "/\\:*?\"<>|.".contains(c)) {
            return Err(invalid(
                text,
                "the NetBIOS domain holds a character it cannot",
            ));
        }
        if name.is_empty() {
            return Err(invalid(text, "the account name after `\\` is empty"));
        }
        Ok((domain.to_owned(), name.to_owned()))
    })())
}

fn looks_like_sid(text: &str) -> bool {
    text.len() > 2 && (text.starts_with("S-") || text.starts_with("s-"))
}

fn parse_sid(text: &str) -> Result<Sid, IdentityError> {
    text.parse::<Sid>().map_err(|_| {
        invalid(
            text,
            "looks like a SID but is not one (expected S-1-5-21-...)",
        )
    })
}

fn is_dns_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

impl Identity {
    /// Parses a login as an admin typed it. With `kind` unknown (not set in
    /// the config) the forms that belong to one kind only are accepted, and
    /// a bare name, which could be either, is refused.
    pub fn parse(text: &str, kind: Option<DirectoryKind>) -> Result<Identity, IdentityError> {
        let identity = Identity::parse_any(text)?;
        let text = text.trim();
        match (kind, identity.kind()) {
            (None, Some(_)) => Ok(identity),
            (None, None) => Err(IdentityError::Unrecognised {
                text: text.to_owned(),
            }),
            (Some(wanted), Some(found)) if wanted == found => Ok(identity),
            (Some(DirectoryKind::Ldap), None) => Ok(identity),
            (Some(DirectoryKind::ActiveDirectory), None) => Err(IdentityError::Unrecognised {
                text: text.to_owned(),
            }),
            (Some(wanted), Some(_)) => Err(IdentityError::WrongKind {
                text: text.to_owned(),
                form: identity.form(),
                kind: wanted.as_str(),
                expected: match wanted {
                    DirectoryKind::ActiveDirectory => "use NETBIOS\\name, name@domain or a SID",
                    DirectoryKind::Ldap => "use a uid, a DN or an entryUUID",
                },
            }),
        }
    }

    /// Parses any syntactically valid form; for values read back from the
    /// store, which were checked against the kind when they were added.
    pub fn parse_any(text: &str) -> Result<Identity, IdentityError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(IdentityError::Empty);
        }
        check_printable(text)?;
        if looks_like_dn(text) {
            return Ok(Identity::Dn(text.to_owned()));
        }
        if let Some(parts) = split_down_level(text) {
            let (domain, name) = parts?;
            return Ok(Identity::DownLevel { domain, name });
        }
        if let Some(uuid) = EntryUuid::parse(text) {
            return Ok(Identity::Uuid(uuid));
        }
        if looks_like_sid(text) && !text.contains('@') {
            return parse_sid(text).map(Identity::Sid);
        }
        if let Some((name, domain)) = text.rsplit_once('@') {
            if name.is_empty() {
                return Err(invalid(text, "the name before `@` is empty"));
            }
            if !is_dns_domain(domain) {
                return Err(invalid(text, "the part after `@` is not a DNS domain"));
            }
            return Ok(Identity::Upn {
                name: name.to_owned(),
                domain: domain.to_owned(),
            });
        }
        Ok(Identity::Uid(text.to_owned()))
    }

    /// The kind of directory this form belongs to; `None` for a bare name.
    pub fn kind(&self) -> Option<DirectoryKind> {
        match self {
            Identity::DownLevel { .. } | Identity::Upn { .. } | Identity::Sid(_) => {
                Some(DirectoryKind::ActiveDirectory)
            }
            Identity::Dn(_) | Identity::Uuid(_) => Some(DirectoryKind::Ldap),
            Identity::Uid(_) => None,
        }
    }

    /// The form, in words, for messages.
    pub fn form(&self) -> &'static str {
        match self {
            Identity::DownLevel { .. } => "a NETBIOS\\name",
            Identity::Upn { .. } => "a UPN",
            Identity::Sid(_) => "a SID",
            Identity::Uid(_) => "a bare name",
            Identity::Dn(_) => "a DN",
            Identity::Uuid(_) => "a UUID",
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::DownLevel { domain, name } => write!(f, "{domain}\\{name}"),
            Identity::Upn { name, domain } => write!(f, "{name}@{domain}"),
            Identity::Sid(sid) => write!(f, "{sid}"),
            Identity::Uid(name) | Identity::Dn(name) => f.write_str(name),
            Identity::Uuid(uuid) => f.write_str(uuid.as_str()),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({self})")
    }
}

/// A DN starts with an attribute type and `=`: `CN=...`, `OU=...`, or an OID.
fn looks_like_dn(text: &str) -> bool {
    let Some((attr, _)) = text.split_once('=') else {
        return false;
    };
    let attr = attr.trim();
    !attr.is_empty()
        && attr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && attr.starts_with(|c: char| c.is_ascii_alphabetic() || c.is_ascii_digit())
}

impl GroupRef {
    pub fn parse(text: &str) -> Result<GroupRef, IdentityError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(IdentityError::Empty);
        }
        check_printable(text)?;
        if looks_like_dn(text) {
            return Ok(GroupRef::Dn(text.to_owned()));
        }
        if let Some(parts) = split_down_level(text) {
            let (domain, name) = parts?;
            return Ok(GroupRef::DownLevel { domain, name });
        }
        if looks_like_sid(text) && text[2..].starts_with(|c: char| c.is_ascii_digit()) {
            return parse_sid(text).map(GroupRef::Sid);
        }
        Ok(GroupRef::Name(text.to_owned()))
    }
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRef::Dn(dn) => f.write_str(dn),
            GroupRef::DownLevel { domain, name } => write!(f, "{domain}\\{name}"),
            GroupRef::Name(name) => f.write_str(name),
            GroupRef::Sid(sid) => write!(f, "{sid}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl Identity {
        fn parse_ad(text: &str) -> Result<Identity, IdentityError> {
            Identity::parse(text, Some(DirectoryKind::ActiveDirectory))
        }
    }

    #[test]
    fn a_bare_name_is_a_uid_only_for_ldap_directories() {
        assert!(Identity::parse("svc-build", None).is_err());
        assert_eq!(
            Identity::parse("svc-build", Some(DirectoryKind::Ldap)).unwrap(),
            Identity::Uid("svc-build".into())
        );
        assert!(matches!(
            Identity::parse("CORP\\svc", Some(DirectoryKind::Ldap)),
            Err(IdentityError::WrongKind { .. })
        ));
        assert!(matches!(
            Identity::parse(
                "uid=svc,ou=people,dc=example,dc=org",
                Some(DirectoryKind::ActiveDirectory)
            ),
            Err(IdentityError::WrongKind { .. })
        ));
        assert!(matches!(
            Identity::parse("5b2c3a6e-1d2f-4a3b-9c8d-0e1f2a3b4c5d", None),
            Ok(Identity::Uuid(_))
        ));
        assert!(matches!(
            Identity::parse("uid=svc,ou=people,dc=example,dc=org", None),
            Ok(Identity::Dn(_))
        ));
    }

    #[test]
    fn parses_the_three_login_forms() {
        assert_eq!(
            Identity::parse_ad("CORP\\svc-build").unwrap(),
            Identity::DownLevel {
                domain: "CORP".into(),
                name: "svc-build".into()
            }
        );
        assert_eq!(
            Identity::parse_ad("svc-build@corp.example.com").unwrap(),
            Identity::Upn {
                name: "svc-build".into(),
                domain: "corp.example.com".into()
            }
        );
        assert_eq!(
            Identity::parse_ad("S-1-5-21-1-2-3-1105").unwrap(),
            Identity::Sid("S-1-5-21-1-2-3-1105".parse().unwrap())
        );
    }

    #[test]
    fn keeps_wildcards_and_parentheses_as_literal_name_characters() {
        let identity = Identity::parse_ad("CORP\\svc-b*").unwrap();
        assert_eq!(identity.to_string(), "CORP\\svc-b*");
        let identity = Identity::parse_ad("CORP\\build (prod)").unwrap();
        assert_eq!(
            identity,
            Identity::DownLevel {
                domain: "CORP".into(),
                name: "build (prod)".into()
            }
        );
    }

    #[test]
    fn refuses_malformed_logins() {
        for text in [
            "",
            "   ",
            "svc-build",
            "\\svc",
            "CORP\\",
            "@corp.example.com",
            "svc@",
            "svc@corp..example.com",
            "S-1-5-21-x",
            "S-1-5-21-1-2-3-4294967296",
            "WAYTOOLONGDOMAINNAME\\svc",
            "CORP\\svc\u{0}x",
            "CO RP\\svc",
        ] {
            assert!(Identity::parse_ad(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn a_malformed_login_message_shows_the_accepted_forms() {
        let message = Identity::parse_ad("svc-build").unwrap_err().to_string();
        assert!(message.contains("NETBIOS\\name"), "{message}");
        assert!(message.contains("S-1-5-21-"), "{message}");
    }

    #[test]
    fn group_refs_tell_dns_from_names_and_sids() {
        assert_eq!(
            GroupRef::parse("CN=Deployers,OU=Groups,DC=corp,DC=example,DC=com").unwrap(),
            GroupRef::Dn("CN=Deployers,OU=Groups,DC=corp,DC=example,DC=com".into())
        );
        assert_eq!(
            GroupRef::parse("CORP\\Deployers").unwrap(),
            GroupRef::DownLevel {
                domain: "CORP".into(),
                name: "Deployers".into()
            }
        );
        assert_eq!(
            GroupRef::parse("Deployers (prod)").unwrap(),
            GroupRef::Name("Deployers (prod)".into())
        );
        assert_eq!(
            GroupRef::parse("S-1-5-21-1-2-3-1200").unwrap(),
            GroupRef::Sid("S-1-5-21-1-2-3-1200".parse().unwrap())
        );
        // A group may well be called "S-Team": not a SID.
        assert_eq!(
            GroupRef::parse("S-Team").unwrap(),
            GroupRef::Name("S-Team".into())
        );
    }

    proptest! {
        #[test]
        fn login_parsing_never_panics_and_round_trips(text in "\\PC{0,40}") {
            if let Ok(identity) = Identity::parse_any(&text) {
                let again = Identity::parse_any(&identity.to_string()).unwrap();
                prop_assert_eq!(again, identity);
            }
        }

        #[test]
        fn down_level_names_round_trip(domain in "[A-Z][A-Z0-9-]{0,14}", name in "[^\\\\\\p{Cc}]{1,20}") {
            let name = name.trim().to_owned();
            prop_assume!(!name.is_empty());
            let text = format!("{domain}\\{name}");
            prop_assert_eq!(
                Identity::parse_ad(&text).unwrap(),
                Identity::DownLevel { domain, name }
            );
        }

        #[test]
        fn group_parsing_never_panics(text in "\\PC{0,40}") {
            let _ = GroupRef::parse(&text);
        }
    }
}
