//! Windows security identifiers (SIDs): binary and string forms.
//!
//! AD hands SIDs out in their binary form (objectSid, tokenGroups); admins type
//! the string form `S-1-5-21-a-b-c-RID`. Both are parsed into one [`Sid`] so
//! that comparisons never depend on how a value arrived.

use std::fmt;
use std::str::FromStr;

/// The most sub-authorities a SID may carry (MS-DTYP 2.4.2).
const MAX_SUB_AUTHORITIES: usize = 15;
/// The identifier authority is a 48-bit big-endian number.
const MAX_AUTHORITY: u64 = (1 << 48) - 1;

/// A parsed security identifier.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    revision: u8,
    authority: u64,
    sub_authorities: Vec<u32>,
}

/// Why bytes or text are not a SID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidError {
    #[error("a binary SID needs at least 8 bytes, got {0}")]
    TooShort(usize),
    #[error("binary SID announces {announced} sub-authorities but holds {len} bytes")]
    LengthMismatch { announced: usize, len: usize },
    #[error("a SID has at most {MAX_SUB_AUTHORITIES} sub-authorities, got {0}")]
    TooManySubAuthorities(usize),
    #[error("SID revision must be 1, got {0}")]
    UnsupportedRevision(u8),
    #[error("`{0}` is not a SID: expected S-1-<authority>-<sub-authority>...")]
    Malformed(String),
}

impl Sid {
    /// Decodes the binary form: revision (1 byte), sub-authority count (1),
    /// identifier authority (6, big-endian), sub-authorities (4 each, little-endian).
    pub fn from_bytes(bytes: &[u8]) -> Result<Sid, SidError> {
        if bytes.len() < 8 {
            return Err(SidError::TooShort(bytes.len()));
        }
        let revision = bytes[0];
        if revision != 1 {
            return Err(SidError::UnsupportedRevision(revision));
        }
        let count = usize::from(bytes[1]);
        if count > MAX_SUB_AUTHORITIES {
            return Err(SidError::TooManySubAuthorities(count));
        }
        if bytes.len() != 8 + 4 * count {
            return Err(SidError::LengthMismatch {
                announced: count,
                len: bytes.len(),
            });
        }
        let authority = bytes[2..8]
            .iter()
            .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
        let sub_authorities = bytes[8..]
            .chunks_exact(4)
            .map(|chunk| u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect();
        Ok(Sid {
            revision,
            authority,
            sub_authorities,
        })
    }

    /// Encodes the binary form, the inverse of [`Sid::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 * self.sub_authorities.len());
        out.push(self.revision);
        // The count fits: constructors refuse more than 15 sub-authorities.
        out.push(self.sub_authorities.len() as u8);
        out.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for sub in &self.sub_authorities {
            out.extend_from_slice(&sub.to_le_bytes());
        }
        out
    }

    /// The relative identifier: the last sub-authority.
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities.last().copied()
    }

    /// The domain part: this SID without its last sub-authority.
    pub fn domain(&self) -> Option<Sid> {
        let (_, rest) = self.sub_authorities.split_last()?;
        Some(Sid {
            revision: self.revision,
            authority: self.authority,
            sub_authorities: rest.to_vec(),
        })
    }

    /// This SID with one more sub-authority: a domain SID plus a RID, as for
    /// an account's primary group (domain SID + primaryGroupID).
    pub fn with_rid(&self, rid: u32) -> Result<Sid, SidError> {
        if self.sub_authorities.len() >= MAX_SUB_AUTHORITIES {
            return Err(SidError::TooManySubAuthorities(
                self.sub_authorities.len() + 1,
            ));
        }
        let mut sub_authorities = self.sub_authorities.clone();
        sub_authorities.push(rid);
        Ok(Sid {
            revision: self.revision,
            authority: self.authority,
            sub_authorities,
        })
    }
}

impl FromStr for Sid {
    type Err = SidError;

    fn from_str(text: &str) -> Result<Sid, SidError> {
        let malformed = || SidError::Malformed(text.to_owned());
        let mut parts = text.split('-');
        match parts.next() {
            Some("S") | Some("s") => {}
            _ => return Err(malformed()),
        }
        let revision: u8 = parse_decimal(parts.next(), malformed)?;
        if revision != 1 {
            return Err(SidError::UnsupportedRevision(revision));
        }
        let authority_text = parts.next().ok_or_else(malformed)?;
        let authority = if let Some(hex) = authority_text
            .strip_prefix("0x")
            .or_else(|| authority_text.strip_prefix("0X"))
        {
            if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(malformed());
            }
            u64::from_str_radix(hex, 16).map_err(|_| malformed())?
        } else {
            parse_decimal(Some(authority_text), malformed)?
        };
        if authority > MAX_AUTHORITY {
            return Err(malformed());
        }
        let sub_authorities = parts
            .map(|part| parse_decimal::<u32>(Some(part), malformed))
            .collect::<Result<Vec<u32>, SidError>>()?;
        if sub_authorities.len() > MAX_SUB_AUTHORITIES {
            return Err(SidError::TooManySubAuthorities(sub_authorities.len()));
        }
        Ok(Sid {
            revision,
            authority,
            sub_authorities,
        })
    }
}

/// Parses plain decimal digits only: `u32::from_str` would also take a `+`.
fn parse_decimal<T: FromStr>(
    part: Option<&str>,
    malformed: impl Fn() -> SidError,
) -> Result<T, SidError> {
    let part = part.ok_or_else(&malformed)?;
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    part.parse().map_err(|_| malformed())
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-{}-", self.revision)?;
        // MS-DTYP: authorities of 2^32 and more are written in hex.
        if self.authority >= 1 << 32 {
            write!(f, "0x{:012X}", self.authority)?;
        } else {
            write!(f, "{}", self.authority)?;
        }
        for sub in &self.sub_authorities {
            write!(f, "-{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Domain Users of a domain, as Samba returned it in tokenGroups.
    const DOMAIN_USERS: [u8; 28] = [
        1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 0x15, 0xcd, 0x5b, 0x07, 0x51, 0x8a, 0x1c, 0x2f, 0x01,
        0x02, 0x03, 0x04, 0x01, 0x02, 0x00, 0x00,
    ];

    #[test]
    fn decodes_a_domain_sid_with_little_endian_sub_authorities() {
        let sid = Sid::from_bytes(&DOMAIN_USERS).unwrap();
        assert_eq!(sid.to_string(), "S-1-5-21-123456789-790399569-67305985-513");
        assert_eq!(sid.rid(), Some(513));
    }

    #[test]
    fn decodes_a_builtin_sid() {
        let bytes = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 0x02, 0, 0];
        assert_eq!(Sid::from_bytes(&bytes).unwrap().to_string(), "S-1-5-32-545");
    }

    #[test]
    fn primary_group_sid_is_domain_plus_rid() {
        let user: Sid = "S-1-5-21-1-2-3-1105".parse().unwrap();
        let group = user.domain().unwrap().with_rid(1200).unwrap();
        assert_eq!(group.to_string(), "S-1-5-21-1-2-3-1200");
    }

    #[test]
    fn refuses_truncated_and_padded_bytes() {
        assert_eq!(Sid::from_bytes(&DOMAIN_USERS[..27]).unwrap_err(), {
            SidError::LengthMismatch {
                announced: 5,
                len: 27,
            }
        });
        let mut padded = DOMAIN_USERS.to_vec();
        padded.push(0);
        assert!(Sid::from_bytes(&padded).is_err());
        assert_eq!(Sid::from_bytes(&[1, 0]), Err(SidError::TooShort(2)));
    }

    #[test]
    fn refuses_malformed_text() {
        for text in [
            "",
            "S",
            "S-1",
            "S-1-",
            "S-1-5-",
            "S-1-5--1",
            "S-2-5-21",
            "S-1-+5-21",
            "X-1-5-21",
            "S-1-5-21-4294967296",
            "S-1-5-21-a",
            "S-1-281474976710656-1",
        ] {
            assert!(text.parse::<Sid>().is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn large_authorities_are_written_in_hex() {
        let sid: Sid = "S-1-0x123456789ABC-7".parse().unwrap();
        assert_eq!(sid.to_string(), "S-1-0x123456789ABC-7");
        assert_eq!(Sid::from_bytes(&sid.to_bytes()).unwrap(), sid);
    }

    fn any_sid() -> impl Strategy<Value = Sid> {
        (
            0u64..=MAX_AUTHORITY,
            prop::collection::vec(any::<u32>(), 0..=MAX_SUB_AUTHORITIES),
        )
            .prop_map(|(authority, sub_authorities)| Sid {
                revision: 1,
                authority,
                sub_authorities,
            })
    }

    proptest! {
        #[test]
        fn binary_round_trip_is_exact(sid in any_sid()) {
            prop_assert_eq!(Sid::from_bytes(&sid.to_bytes()).unwrap(), sid);
        }

        #[test]
        fn text_round_trip_is_exact(sid in any_sid()) {
            prop_assert_eq!(sid.to_string().parse::<Sid>().unwrap(), sid);
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(sid) = Sid::from_bytes(&bytes) {
                prop_assert_eq!(sid.to_bytes(), bytes);
            }
        }

        #[test]
        fn any_text_parses_without_panic(text in ".{0,60}") {
            let _ = text.parse::<Sid>();
        }
    }
}
