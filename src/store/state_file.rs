//! The pass state file beside the store (`accounts.db.state.json`): what
//! the last attempt did and when the next is due.
//!
//! A pass that fails because the directory is unavailable must leave the
//! database byte for byte as it was, so its outcome is kept here, not in
//! `sync_runs`. Written atomically (temporary file, then rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One pass attempt, whatever its outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attempt {
    pub started_at: String,
    pub duration_ms: u64,
    /// success, partial, refused or failed.
    pub outcome: String,
    pub added: usize,
    pub removed: usize,
    pub failed_logins: usize,
    /// Why it failed or was refused.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PassState {
    pub last_attempt: Option<Attempt>,
    /// Set by the daemon: when it runs the next pass.
    pub next_pass_at: Option<String>,
    /// Failed passes since the last one that completed.
    pub consecutive_failures: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read the state file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the state file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the state of the store at `store_path` is kept.
pub fn state_path(store_path: &Path) -> PathBuf {
    let mut name = store_path.as_os_str().to_owned();
    name.push(".state.json");
    PathBuf::from(name)
}

impl PassState {
    /// Reads the state; a store that never had a pass has none.
    pub fn load(store_path: &Path) -> Result<PassState, StateFileError> {
        let path = state_path(store_path);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StateFileError::Parse { path, source }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(PassState::default()),
            Err(source) => Err(StateFileError::Read { path, source }),
        }
    }

    pub fn save(&self, store_path: &Path) -> Result<(), StateFileError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = state_path(store_path);
        let mut temporary = path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let write_error = |source| StateFileError::Write {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| StateFileError::Parse {
            path: path.clone(),
            source,
        })?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(write_error)?;
        file.write_all(&bytes).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        std::fs::rename(&temporary, &path).map_err(write_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_defaults_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("accounts.db");
        assert_eq!(PassState::load(&store).unwrap(), PassState::default());
        let state = PassState {
            last_attempt: Some(Attempt {
                started_at: "2026-12-04T20:00:00Z".into(),
                duration_ms: 12,
                outcome: "failed".into(),
                added: 0,
                removed: 0,
                failed_logins: 0,
                error: Some("cannot connect".into()),
            }),
            next_pass_at: None,
            consecutive_failures: 3,
        };
        state.save(&store).unwrap();
        assert_eq!(PassState::load(&store).unwrap(), state);
    }
}
