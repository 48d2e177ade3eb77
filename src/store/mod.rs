//! The SQLite account store: "what do we have now?" and "make it so".
//!
//! The only module that touches rusqlite. Every write of a sync pass happens
//! in one `BEGIN IMMEDIATE` transaction; admin commands write one statement
//! (or one small transaction) each. The schema is documented in docs/schema.md.

mod accounts;
mod apikeys;
mod schema;
mod state_file;
mod sync_state;
mod teams;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags};

pub use accounts::{AccountDetail, AccountRow, LoginRow};
pub use apikeys::{ApiKeyRow, KeyCheck};
pub use schema::SCHEMA_VERSION;
pub use state_file::{Attempt, PassState, StateFileError, state_path};
pub use sync_state::{
    DirectoryMark, DirectoryState, LinkMark, LoginPin, MarkUpdate, PassRecord, PassWrite,
    RunOutcome, RunRow, StoreCounts, SyncSnapshot, SyncSnapshotLogin,
};
pub use teams::{GroupLinkRow, MemberRow, TeamRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the store {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the store {path} has schema version {found}; this teamsync knows up to {supported}: upgrade teamsync"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "the store is busy: another process held its write lock for longer than store.busy_timeout"
    )]
    Busy {
        #[source]
        source: rusqlite::Error,
    },
    #[error("store: {action}")]
    Sql {
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("no service account named `{0}`")]
    AccountNotFound(String),
    #[error("a service account named `{0}` already exists")]
    AccountExists(String),
    #[error("no team named `{0}`")]
    TeamNotFound(String),
    #[error("a team named `{0}` already exists")]
    TeamExists(String),
    #[error("`{account}` already has the login {identity}")]
    LoginExists { account: String, identity: String },
    #[error("`{account}` has no login {identity}")]
    LoginNotFound { account: String, identity: String },
    #[error("team `{team}` is already linked to {group}")]
    LinkExists { team: String, group: String },
    #[error("team `{team}` is not linked to {group}")]
    LinkNotFound { team: String, group: String },
    #[error("`{account}` is already a manual member of team `{team}`")]
    MemberExists { account: String, team: String },
    #[error("`{account}` is not a manual member of team `{team}`")]
    MemberNotFound { account: String, team: String },
    #[error("`{account}` has no API key with id {id}")]
    KeyNotFound { account: String, id: i64 },
}

impl StoreError {
    /// Wraps a rusqlite error with what was being done; lock timeouts get
    /// their own variant so callers can tell "busy" from "broken".
    fn sql(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + Copy {
        move |source| {
            if is_busy(&source) {
                StoreError::Busy { source }
            } else {
                StoreError::Sql { action, source }
            }
        }
    }
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked)
    )
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An open store.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens the store, creating it (owner-only permissions) and bringing its
    /// schema up to date. Opening a current store writes nothing.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Store> {
        create_private_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        conn.busy_timeout(busy_timeout)
            .map_err(StoreError::sql("setting the busy timeout"))?;
        // WAL lets readers (the application using the store) read while a
        // pass writes; setting it on a WAL database changes nothing on disk.
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .map_err(StoreError::sql("reading the journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            switch_to_wal(&conn, busy_timeout)?;
        }
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
            .map_err(StoreError::sql("setting pragmas"))?;
        let mut store = Store { conn };
        schema::migrate(&mut store.conn, path)?;
        Ok(store)
    }
}

/// Switches a new store to WAL. SQLite answers "busy" at once here, without
/// its busy handler, when another process is creating the same store, so
/// this waits itself, up to the busy timeout.
fn switch_to_wal(conn: &Connection, busy_timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + busy_timeout;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())) {
            Ok(()) => return Ok(()),
            Err(err) if is_busy(&err) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => return Err(StoreError::sql("switching to WAL")(err)),
        }
    }
}

/// Creates the database file readable by its owner only before SQLite sees
/// it; SQLite gives the -wal and -shm files the same permissions.
fn create_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Create {
            path: path.to_owned(),
            source,
        })?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|err| match err.kind() {
            // Another process created it between our check and our open.
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(err),
        })
        .map_err(|source| StoreError::Create {
            path: path.to_owned(),
            source,
        })
}

/// Now, as stored: RFC 3339 UTC with seconds.
fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Maps a UNIQUE constraint failure to a domain error, anything else to `sql`.
fn unique_or(
    action: &'static str,
    on_unique: impl FnOnce() -> StoreError,
) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |err| match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => on_unique(),
        _ => StoreError::sql(action)(err),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("accounts.db"), Duration::from_secs(1)).unwrap();
        (dir, store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_store_is_private_and_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/accounts.db");
        let store = Store::open(&path, Duration::from_secs(1)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn reopening_a_current_store_leaves_its_bytes_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.db");
        drop(Store::open(&path, Duration::from_secs(1)).unwrap());
        let before = std::fs::read(&path).unwrap();
        drop(Store::open(&path, Duration::from_secs(1)).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
