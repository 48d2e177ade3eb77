//! Range retrieval of large multi-valued attributes (Active Directory).
//!
//! A Windows DC returns at most MaxValRange values (1,500 by default) of an
//! attribute such as `member` and names what it returned
//! `member;range=0-1499`; the rest is asked for as `member;range=1500-*`
//! until an answer's range ends in `*`. Samba answers without ranges, so
//! these rules are tested here on Windows' answers.

/// Where a ranged answer stands: which values it held, and whether more follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: usize,
    /// `None`: the answer ended in `*`, nothing more to ask for.
    pub end: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("`{0}` is not a ranged attribute name (attr;range=START-END)")]
    Malformed(String),
    #[error("asked for values from {asked} but the server answered from {got}")]
    Gap { asked: usize, got: usize },
    #[error("the server's range {start}-{end} holds {values} values")]
    Count {
        start: usize,
        end: usize,
        values: usize,
    },
}

/// Splits `member;range=0-1499` into the attribute and its range; a name
/// without a range option gives `None`.
pub fn parse(attribute: &str) -> Result<Option<(&str, Range)>, RangeError> {
    let malformed = || RangeError::Malformed(attribute.to_owned());
    let mut parts = attribute.split(';');
    let name = parts.next().unwrap_or_default();
    let Some(option) = parts.find(|p| {
        p.get(..6)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("range="))
    }) else {
        return Ok(None);
    };
    let (start, end) = option[6..].split_once('-').ok_or_else(malformed)?;
    let start: usize = start.parse().map_err(|_| malformed())?;
    let end = match end {
        "*" => None,
        end => {
            let end: usize = end.parse().map_err(|_| malformed())?;
            if end < start {
                return Err(malformed());
            }
            Some(end)
        }
    };
    Ok(Some((name, Range { start, end })))
}

/// Checks an answer against the request and says where to continue:
/// `Ok(None)` when it was the last part.
pub fn next_start(
    asked: usize,
    answered: Range,
    values: usize,
) -> Result<Option<usize>, RangeError> {
    if answered.start != asked {
        return Err(RangeError::Gap {
            asked,
            got: answered.start,
        });
    }
    match answered.end {
        None => Ok(None),
        Some(end) => {
            if values != end - answered.start + 1 {
                return Err(RangeError::Count {
                    start: answered.start,
                    end,
                    values,
                });
            }
            Ok(Some(end + 1))
        }
    }
}

/// The attribute to ask for next: `member;range=1500-*`.
pub fn request(name: &str, start: usize) -> String {
    format!("{name};range={start}-*")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_windows_answers() {
        assert_eq!(
            parse("member;range=0-1499").unwrap(),
            Some((
                "member",
                Range {
                    start: 0,
                    end: Some(1499)
                }
            ))
        );
        assert_eq!(
            parse("member;range=1500-*").unwrap(),
            Some((
                "member",
                Range {
                    start: 1500,
                    end: None
                }
            ))
        );
        assert_eq!(parse("member").unwrap(), None);
        // Options may come in any case and beside others.
        assert_eq!(
            parse("member;binary;Range=3000-4499").unwrap().unwrap().1,
            Range {
                start: 3000,
                end: Some(4499)
            }
        );
    }

    #[test]
    fn refuses_malformed_ranges() {
        for name in [
            "member;range=",
            "member;range=5",
            "member;range=a-b",
            "member;range=10-5",
        ] {
            assert!(parse(name).is_err(), "{name}");
        }
    }

    #[test]
    fn walks_a_three_part_answer_and_catches_gaps_and_short_parts() {
        // 1500 + 1500 + 700 values, as a Windows DC pages a 3,700-member group.
        let first = Range {
            start: 0,
            end: Some(1499),
        };
        assert_eq!(next_start(0, first, 1500).unwrap(), Some(1500));
        let second = Range {
            start: 1500,
            end: Some(2999),
        };
        assert_eq!(next_start(1500, second, 1500).unwrap(), Some(3000));
        let last = Range {
            start: 3000,
            end: None,
        };
        assert_eq!(next_start(3000, last, 700).unwrap(), None);

        assert!(matches!(
            next_start(1500, first, 1500),
            Err(RangeError::Gap { .. })
        ));
        assert!(matches!(
            next_start(0, first, 1000),
            Err(RangeError::Count { .. })
        ));
        assert_eq!(request("member", 1500), "member;range=1500-*");
    }

    proptest! {
        #[test]
        fn any_name_parses_without_panic(name in "\\PC{0,40}") {
            let _ = parse(&name);
        }

        #[test]
        fn ranges_round_trip(start in 0usize..1_000_000, len in 0usize..5000, open in any::<bool>()) {
            let name = if open {
                format!("member;range={start}-*")
            } else {
                format!("member;range={start}-{}", start + len)
            };
            let (attr, range) = parse(&name).unwrap().unwrap();
            prop_assert_eq!(attr, "member");
            prop_assert_eq!(range.start, start);
            prop_assert_eq!(range.end, (!open).then_some(start + len));
        }
    }
}
