//! Reading typed values out of raw search entries, at the edge.
//!
//! ldap3 files an attribute under `attrs` when all its values happen to be
//! valid UTF-8 and under `bin_attrs` otherwise, so a binary SID made of
//! ASCII-range bytes can land in either. Attribute names compare
//! case-insensitively.

use std::borrow::Cow;

use ldap3::SearchEntry;

use super::DirectoryError;
use crate::model::Sid;

/// A DN in a form fit for comparison: lower case, no spaces around `,` and
/// `=`. Escaped characters stay as written.
///
/// Called for every member value of every group and every account of a
/// dump, so it builds one string (two for non-ASCII) instead of a vector
/// per RDN.
pub fn normalise_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for (i, rdn) in dn.split(',').enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, part) in rdn.split('=').enumerate() {
            if j > 0 {
                out.push('=');
            }
            out.push_str(part.trim());
        }
    }
    if out.is_ascii() {
        out.make_ascii_lowercase();
        out
    } else {
        out.to_lowercase()
    }
}

/// Every value of an attribute as bytes, wherever ldap3 put it.
pub fn raw_values<'a>(entry: &'a SearchEntry, name: &str) -> Vec<&'a [u8]> {
    let mut values: Vec<&[u8]> = Vec::new();
    for (attr, texts) in &entry.attrs {
        if attr.eq_ignore_ascii_case(name) {
            values.extend(texts.iter().map(|text| text.as_bytes()));
        }
    }
    for (attr, blobs) in &entry.bin_attrs {
        if attr.eq_ignore_ascii_case(name) {
            values.extend(blobs.iter().map(Vec::as_slice));
        }
    }
    values
}

/// A ranged answer for `name` (`member;range=0-1499`), with its values.
pub fn ranged(
    entry: &SearchEntry,
    name: &str,
) -> Result<Option<(super::range::Range, Vec<String>)>, DirectoryError> {
    let mut found = None;
    for attr in entry.attrs.keys().chain(entry.bin_attrs.keys()) {
        let parsed = super::range::parse(attr).map_err(|err| DirectoryError::Malformed {
            dn: entry.dn.clone(),
            attribute: attr.clone(),
            problem: err.to_string(),
        })?;
        if let Some((attr_name, range)) = parsed
            && attr_name.eq_ignore_ascii_case(name)
        {
            found = Some((range, texts(entry, attr)));
        }
    }
    Ok(found)
}

/// Whether a value the server matched is the value asked for. The server's
/// equality match is trusted for case and Unicode folding, but some
/// servers (Samba) compare names only up to a NUL: a value that differs
/// from the one asked for by its NUL part is a different name.
pub fn same_name(returned: &str, wanted: &str) -> bool {
    if returned.eq_ignore_ascii_case(wanted) || returned.to_lowercase() == wanted.to_lowercase() {
        return true;
    }
    !returned.contains('\0') && !wanted.contains('\0')
}

/// Keeps the entries whose `attribute` is, by [`same_name`], the value
/// asked for.
pub fn matching(entries: Vec<SearchEntry>, attribute: &str, wanted: &str) -> Vec<SearchEntry> {
    entries
        .into_iter()
        .filter(|e| texts(e, attribute).iter().any(|v| same_name(v, wanted)))
        .collect()
}

/// The one account a login search found; none is "not found", several
/// are a failure of that login (which one was meant cannot be told).
pub fn single_account(
    entries: Vec<SearchEntry>,
) -> Result<SearchEntry, crate::model::LoginOutcome> {
    use crate::model::LoginOutcome;
    let count = entries.len();
    let mut entries = entries.into_iter();
    match (entries.next(), count) {
        (None, _) => Err(LoginOutcome::NotFound),
        (Some(entry), 1) => Ok(entry),
        (Some(first), n) => Err(LoginOutcome::Failed(format!(
            "{n} accounts match: {}",
            std::iter::once(first)
                .chain(entries)
                .map(|e| e.dn)
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

/// The first value of a text attribute.
pub fn text(entry: &SearchEntry, name: &str) -> Option<String> {
    raw_values(entry, name)
        .first()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
}

/// Every value of a text attribute, borrowed where it is valid UTF-8 (for
/// loops over every entry of a dump).
pub fn text_values<'a>(entry: &'a SearchEntry, name: &str) -> Vec<Cow<'a, str>> {
    raw_values(entry, name)
        .into_iter()
        .map(String::from_utf8_lossy)
        .collect()
}

/// Every value of a text attribute.
pub fn texts(entry: &SearchEntry, name: &str) -> Vec<String> {
    text_values(entry, name)
        .into_iter()
        .map(Cow::into_owned)
        .collect()
}

/// The first value of an integer attribute (userAccountControl, groupType).
pub fn integer(entry: &SearchEntry, name: &str) -> Result<Option<i64>, DirectoryError> {
    let Some(value) = text(entry, name) else {
        return Ok(None);
    };
    value
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| DirectoryError::Malformed {
            dn: entry.dn.clone(),
            attribute: name.to_owned(),
            problem: format!("`{value}` is not an integer"),
        })
}

/// Every value of a binary SID attribute (objectSid, tokenGroups).
pub fn sids(entry: &SearchEntry, name: &str) -> Result<Vec<Sid>, DirectoryError> {
    raw_values(entry, name)
        .into_iter()
        .map(|bytes| {
            Sid::from_bytes(bytes).map_err(|err| DirectoryError::Malformed {
                dn: entry.dn.clone(),
                attribute: name.to_owned(),
                problem: err.to_string(),
            })
        })
        .collect()
}

/// The single SID of objectSid; an entry without one is malformed.
pub fn object_sid(entry: &SearchEntry) -> Result<Sid, DirectoryError> {
    sids(entry, "objectSid")?
        .into_iter()
        .next()
        .ok_or_else(|| DirectoryError::Malformed {
            dn: entry.dn.clone(),
            attribute: "objectSid".into(),
            problem: "missing (no right to read it?)".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn entry(attrs: &[(&str, &[&str])], bin: &[(&str, Vec<Vec<u8>>)]) -> SearchEntry {
        SearchEntry {
            dn: "CN=x,DC=corp".into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<HashMap<_, _>>(),
            bin_attrs: bin
                .iter()
                .cloned()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    #[test]
    fn a_name_cut_at_a_nul_is_another_name() {
        assert!(same_name("SVC-Build", "svc-build"));
        assert!(same_name("Zoë", "ZOË"));
        assert!(!same_name("hc-x\0u", "hc-x"));
        assert!(!same_name("hc-x", "hc-x\0u"));
        assert!(same_name("a\0b", "A\0B"));
    }

    /// What normalise_dn computed before it was made to allocate less.
    fn normalise_dn_reference(dn: &str) -> String {
        dn.split(',')
            .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
            .collect::<Vec<_>>()
            .join(",")
            .to_lowercase()
    }

    proptest::proptest! {
        #[test]
        fn normalising_a_dn_is_unchanged_by_the_faster_version(
            dn in "[ a-zA-Z0-9=,\\\\\u{00c0}-\u{00ff}\u{0391}-\u{03c9}\u{3000}\t]{0,40}"
        ) {
            proptest::prop_assert_eq!(normalise_dn(&dn), normalise_dn_reference(&dn));
        }
    }

    #[test]
    fn dns_normalise_case_and_spaces() {
        assert_eq!(
            normalise_dn("CN=Deploy Team , OU = Groups,DC=Example"),
            "cn=deploy team,ou=groups,dc=example"
        );
    }

    #[test]
    fn a_sid_that_is_valid_utf8_is_read_from_text_attributes() {
        // S-1-5-32-545 (Users) is all bytes below 0x80: ldap3 files it as text.
        let users = [1u8, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 0x02, 0, 0];
        let text = String::from_utf8(users.to_vec()).unwrap();
        let e = entry(&[("tokenGroups", &[text.as_str()])], &[]);
        assert_eq!(
            sids(&e, "tokengroups").unwrap()[0].to_string(),
            "S-1-5-32-545"
        );
    }

    #[test]
    fn binary_and_text_values_are_both_found_case_insensitively() {
        let sid: Sid = "S-1-5-21-1-2-3-513".parse().unwrap();
        let e = entry(
            &[("sAMAccountName", &["svc"])],
            &[("objectSID", vec![sid.to_bytes()])],
        );
        assert_eq!(object_sid(&e).unwrap(), sid);
        assert_eq!(text(&e, "samaccountname").as_deref(), Some("svc"));
    }

    #[test]
    fn malformed_values_name_the_entry_and_attribute() {
        let e = entry(
            &[("userAccountControl", &["lots"])],
            &[("objectSid", vec![vec![1, 2]])],
        );
        let message = integer(&e, "userAccountControl").unwrap_err().to_string();
        assert!(
            message.contains("userAccountControl") && message.contains("CN=x"),
            "{message}"
        );
        assert!(object_sid(&e).is_err());
    }
}
