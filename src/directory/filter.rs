//! Building LDAP search filters from untrusted values (RFC 4515).
//!
//! Every value placed in a filter goes through [`escape`] or
//! [`escape_bytes`]: a login `CORP\svc-b*` must match the account named
//! exactly `svc-b*`, never `svc-build`.

use std::fmt::Write;

/// Escapes a string value for an equality assertion: `*`, `(`, `)`, `\`,
/// NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`. Other characters,
/// non-ASCII included, stay as UTF-8 as RFC 4515 allows.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\{:02x}", c as u32);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Escapes every byte of a binary value (objectSid, objectGUID) as `\xx`.
pub fn escape_bytes(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value {
        let _ = write!(out, "\\{byte:02x}");
    }
    out
}

/// `(attr=value)` with the value escaped.
pub fn equals(attr: &str, value: &str) -> String {
    format!("({attr}={})", escape(value))
}

/// `(|a b c)` for several filters, or the single filter itself.
pub fn any_of(filters: &[String]) -> String {
    match filters {
        [one] => one.clone(),
        many => format!("(|{})", many.concat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The inverse of `escape`, as a server reading the filter would decode it.
    fn unescape(text: &str) -> Vec<u8> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn escapes_the_five_special_characters() {
        assert_eq!(escape("svc-b*"), "svc-b\\2a");
        assert_eq!(escape("build (prod)"), "build \\28prod\\29");
        assert_eq!(escape("a\\b"), "a\\5cb");
        assert_eq!(escape("nul\0"), "nul\\00");
        assert_eq!(escape("Zoë"), "Zoë");
    }

    #[test]
    fn binary_values_are_fully_escaped() {
        assert_eq!(escape_bytes(&[0x01, 0x05, 0x2a]), "\\01\\05\\2a");
    }

    #[test]
    fn filters_are_composed() {
        assert_eq!(equals("sAMAccountName", "x*"), "(sAMAccountName=x\\2a)");
        assert_eq!(any_of(&["(a=1)".into()]), "(a=1)");
        assert_eq!(any_of(&["(a=1)".into(), "(b=2)".into()]), "(|(a=1)(b=2))");
    }

    proptest! {
        #[test]
        fn escaped_values_hold_no_filter_syntax_and_decode_exactly(value in "\\PC*|[*()\\\\\0a-z]{0,20}") {
            let escaped = escape(&value);
            prop_assert!(!escaped.contains(['*', '(', ')', '\0']));
            prop_assert_eq!(unescape(&escaped), value.as_bytes().to_vec());
        }

        #[test]
        fn escaped_bytes_decode_exactly(value in prop::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(unescape(&escape_bytes(&value)), value);
        }
    }
}
