//! The documented exit codes (README "Exit codes") and which error maps to
//! which. main turns an error into a code here and nowhere else.

use crate::config::ConfigError;
use crate::directory::DirectoryError;
use crate::model::{IdentityError, NameError};
use crate::store::StoreError;

pub const SUCCESS: u8 = 0;
/// The pass completed but some logins failed; or a command failed.
pub const FAILURE: u8 = 1;
/// Bad arguments.
pub const USAGE: u8 = 2;
/// The directory was unavailable or failed during the pass; nothing applied.
pub const UNAVAILABLE: u8 = 69;
/// Refused for now: the removal guard, or another pass holds the lock.
pub const TEMPORARY: u8 = 75;
/// The configuration is invalid.
pub const CONFIG: u8 = 78;

/// Another pass holds the lock.
#[derive(Debug, thiserror::Error)]
#[error("another pass is running (lock {path} is held{holder})")]
pub struct PassLocked {
    pub path: std::path::PathBuf,
    /// ", by pid N" when the holder wrote its pid.
    pub holder: String,
}

/// The removal guard refused a plan.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused: the pass would remove {removals} memberships, more than sync.max_removals ({limit}); nothing was applied. Check the directory, then re-run with --sync-now --allow-removals to apply them"
)]
pub struct RemovalsRefused {
    pub removals: usize,
    pub limit: usize,
}

/// The error and its causes on one line, `: `-separated. A cause whose
/// text the message before it already holds is left out: some libraries
/// (ldap3) print their cause inside their own message.
pub fn describe(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|last| last.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// Picks the exit code for an error by looking through its causes.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<ConfigError>() {
            return CONFIG;
        }
        if let Some(directory) = cause.downcast_ref::<DirectoryError>() {
            return if directory.is_configuration() {
                CONFIG
            } else {
                UNAVAILABLE
            };
        }
        if cause.is::<IdentityError>() || cause.is::<NameError>() {
            return USAGE;
        }
        if cause.is::<PassLocked>() || cause.is::<RemovalsRefused>() {
            return TEMPORARY;
        }
        if let Some(StoreError::Busy { .. }) = cause.downcast_ref::<StoreError>() {
            return TEMPORARY;
        }
    }
    FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn causes_already_in_a_message_are_not_repeated() {
        let inner = std::io::Error::other("tls handshake eof");
        let err = anyhow::Error::new(inner)
            .context("I/O error: tls handshake eof")
            .context("cannot connect to ldaps://dc1");
        assert_eq!(
            describe(&err),
            "cannot connect to ldaps://dc1: I/O error: tls handshake eof"
        );
    }

    #[test]
    fn causes_deep_in_the_chain_pick_the_code() {
        let err = Err::<(), _>(DirectoryError::Timeout {
            url: "ldaps://x".into(),
            during: "binding".into(),
            after: std::time::Duration::from_secs(1),
        })
        .context("sync pass")
        .unwrap_err();
        assert_eq!(code_for(&err), UNAVAILABLE);
        let err = anyhow::Error::new(crate::model::Identity::parse("x", None).unwrap_err());
        assert_eq!(code_for(&err), USAGE);
        assert_eq!(code_for(&anyhow::anyhow!("other")), FAILURE);
    }
}
