//! Names of service accounts and teams, checked once where they enter.

use std::fmt;

const MAX_NAME_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a {kind} name cannot be empty")]
    Empty { kind: &'static str },
    #[error("{kind} name `{name}` is longer than {MAX_NAME_CHARS} characters")]
    TooLong { kind: &'static str, name: String },
    #[error("{kind} name {name:?} contains a control character")]
    ControlCharacter { kind: &'static str, name: String },
    #[error("{kind} name {name:?} starts or ends with white space")]
    Padded { kind: &'static str, name: String },
}

fn check(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong {
            kind,
            name: name.to_owned(),
        });
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter {
            kind,
            name: name.to_owned(),
        });
    }
    if name.trim() != name {
        return Err(NameError::Padded {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

macro_rules! checked_name {
    ($(#[$doc:meta])* $type:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $type(String);

        impl $type {
            pub fn new(name: &str) -> Result<$type, NameError> {
                check($kind, name)?;
                Ok($type(name.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $type {
            type Err = NameError;
            fn from_str(name: &str) -> Result<$type, NameError> {
                $type::new(name)
            }
        }
    };
}

checked_name!(
    /// A service account's name, unique in the store (case-insensitively).
    AccountName,
    "account"
);
checked_name!(
    /// A team's name, unique in the store (case-insensitively).
    TeamName,
    "team"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        assert_eq!(
            AccountName::new("deploy-bot").unwrap().as_str(),
            "deploy-bot"
        );
        assert_eq!(
            TeamName::new("Release managers").unwrap().as_str(),
            "Release managers"
        );
    }

    #[test]
    fn refuses_empty_padded_long_and_control_names() {
        assert!(matches!(AccountName::new(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            TeamName::new(" ops"),
            Err(NameError::Padded { .. })
        ));
        assert!(matches!(
            TeamName::new("a\nb"),
            Err(NameError::ControlCharacter { .. })
        ));
        assert!(matches!(
            AccountName::new(&"x".repeat(129)),
            Err(NameError::TooLong { .. })
        ));
    }
}
