//! Numbered, append-only schema migrations, tracked in `PRAGMA user_version`.
//!
//! Never edit a migration that has shipped: add the next one. docs/schema.md
//! describes the resulting tables for programs that read the store.

use std::path::Path;

use rusqlite::Connection;

use super::{Result, StoreError};

/// Migration N (1-based) brings the schema from version N-1 to N.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT NOT NULL
);

CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key_sha256    TEXT NOT NULL UNIQUE,
    purpose       TEXT,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    revoked_at    TEXT
);
CREATE INDEX api_keys_by_account ON api_keys(account_id);

CREATE TABLE teams (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at    TEXT NOT NULL
);

CREATE TABLE external_logins (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    identity      TEXT NOT NULL COLLATE NOCASE,
    object_id     TEXT,
    dn            TEXT,
    label         TEXT,
    resolved_at   TEXT,
    created_at    TEXT NOT NULL,
    UNIQUE (account_id, identity)
);

CREATE TABLE team_groups (
    id            INTEGER PRIMARY KEY,
    team_id       INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    group_id      TEXT NOT NULL,
    group_dn      TEXT NOT NULL,
    group_label   TEXT NOT NULL,
    linked_at     TEXT NOT NULL,
    UNIQUE (team_id, group_id)
);

CREATE TABLE memberships (
    team_id       INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    source        TEXT NOT NULL CHECK (source IN ('manual', 'directory')),
    reason        TEXT,
    added_at      TEXT NOT NULL,
    PRIMARY KEY (team_id, account_id, source)
) WITHOUT ROWID;
CREATE INDEX memberships_by_account ON memberships(account_id);

CREATE TABLE sync_runs (
    id            INTEGER PRIMARY KEY,
    started_at    TEXT NOT NULL,
    finished_at   TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('success', 'partial', 'refused')),
    added         INTEGER NOT NULL,
    removed       INTEGER NOT NULL,
    failed_logins INTEGER NOT NULL,
    detail        TEXT
);

CREATE TABLE sync_changes (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES sync_runs(id) ON DELETE CASCADE,
    at            TEXT NOT NULL,
    account       TEXT NOT NULL,
    team          TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    reason        TEXT NOT NULL
);
CREATE INDEX sync_changes_by_run ON sync_changes(run_id);
"#,
    // 2: where the directory stood at the last full pass, so that a pass
    // finding nothing changed can stop after two requests.
    r#"
CREATE TABLE directory_state (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    source            TEXT NOT NULL,
    position          TEXT NOT NULL,
    store_fingerprint TEXT NOT NULL,
    full_pass_at      TEXT NOT NULL
);
"#,
    // 3: a linked group that vanished is believed gone only when a second
    // pass confirms it; this is when the first pass missed it.
    r#"
ALTER TABLE team_groups ADD COLUMN missing_since TEXT;
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies every migration the store has not seen, each in its own
/// transaction together with the version bump, so a crash leaves a
/// consistent version.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(StoreError::sql("reading the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let version = index as i64 + 1;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::sql("starting a migration"))?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(StoreError::sql("reading the schema version"))?;
        if now >= version {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(StoreError::sql("applying a schema migration"))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(StoreError::sql("recording the schema version"))?;
        tx.commit()
            .map_err(StoreError::sql("committing a migration"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store left at `version` by an older teamsync, with some data.
    fn store_at(version: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.db");
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        if version >= 1 {
            conn.execute_batch(
                "INSERT INTO accounts (name, created_at) VALUES ('bot', '2026-01-01T00:00:00Z');
                 INSERT INTO teams (name, created_at) VALUES ('ops', '2026-01-01T00:00:00Z');
                 INSERT INTO memberships (team_id, account_id, source, added_at)
                     VALUES (1, 1, 'manual', '2026-01-01T00:00:00Z');",
            )
            .unwrap();
        }
        (dir, path)
    }

    #[test]
    fn every_earlier_version_migrates_to_the_current_one_keeping_data() {
        for version in 0..MIGRATIONS.len() {
            let (_dir, path) = store_at(version);
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, &path).unwrap();
            let now: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(now, SCHEMA_VERSION, "from version {version}");
            if version >= 1 {
                let members: i64 = conn
                    .query_row("SELECT count(*) FROM memberships", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(members, 1, "data lost migrating from version {version}");
            }
            let integrity: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(integrity, "ok");
        }
    }

    #[test]
    fn a_newer_store_is_refused() {
        let (_dir, path) = store_at(MIGRATIONS.len());
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn, &path),
            Err(StoreError::NewerSchema { .. })
        ));
    }
}
