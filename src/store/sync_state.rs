//! What a pass reads before it asks the directory, and the one transaction
//! in which it writes what it decided.

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use rusqlite::{Transaction, TransactionBehavior, params};

use super::{Result, Store, StoreError, now};
use crate::model::{AccountName, Action, Change, Identity, LinkedGroup, ObjectId, TeamName};

/// One external login as the store has it.
#[derive(Debug, Clone)]
pub struct SyncSnapshotLogin {
    pub login_id: i64,
    pub identity: Identity,
    /// Set once the login was first found: from then on it is looked up by SID.
    pub pinned: Option<ObjectId>,
    pub dn: Option<String>,
    pub label: Option<String>,
}

/// Everything a pass needs from the store, read in one go.
#[derive(Debug, Clone, Default)]
pub struct SyncSnapshot {
    pub accounts: Vec<(AccountName, Vec<SyncSnapshotLogin>)>,
    pub links: Vec<LinkedGroup>,
    /// Directory-sourced memberships only.
    pub current: BTreeSet<(AccountName, TeamName)>,
    /// Linked groups an earlier pass found missing from the directory.
    pub missing_groups: BTreeSet<ObjectId>,
}

/// A linked group found missing, or found again, by a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkMark {
    Missing(ObjectId),
    Present(ObjectId),
}

/// What a pass learned about a login that is worth keeping: its SID (the
/// pin) and where and under what name it was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPin {
    pub login_id: i64,
    pub id: ObjectId,
    pub dn: String,
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Applied; every login was read.
    Success,
    /// Applied; some accounts were held because a login could not be read.
    Partial,
    /// Nothing applied: the removal guard refused the plan.
    Refused,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Success => "success",
            RunOutcome::Partial => "partial",
            RunOutcome::Refused => "refused",
        }
    }
}

/// The sync-run row of one pass.
#[derive(Debug, Clone)]
pub struct PassRecord {
    pub started_at: SystemTime,
    pub outcome: RunOutcome,
    pub added: usize,
    pub removed: usize,
    pub failed_logins: usize,
    pub detail: Option<String>,
}

fn corrupt(what: String) -> StoreError {
    StoreError::Sql {
        action: "reading a stored value",
        source: rusqlite::Error::InvalidColumnType(0, what, rusqlite::types::Type::Text),
    }
}

impl Store {
    pub fn sync_snapshot(&self) -> Result<SyncSnapshot> {
        read_snapshot(&self.conn)
    }
}

/// Where the directory stood at the last full pass that read every login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryMark {
    pub source: String,
    pub position: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryState {
    pub mark: DirectoryMark,
    /// The store's [`SyncSnapshot::fingerprint`] right after that pass.
    pub store_fingerprint: String,
    pub full_pass_at: String,
}

/// Everything one pass writes, in one transaction.
pub struct PassWrite<'a> {
    pub record: &'a PassRecord,
    pub changes: &'a [Change],
    pub pins: &'a [LoginPin],
    pub mark: MarkUpdate,
    pub link_marks: &'a [LinkMark],
}

/// What to do with the directory state when a pass is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkUpdate {
    /// A full pass that read every login: remember where the directory stood.
    Set(DirectoryMark),
    /// Something was left undone: the next pass must be a full one.
    Clear,
    /// Nothing changed since the last full pass: keep it.
    Keep,
}

impl SyncSnapshot {
    /// A digest of everything a pass depends on in the store: accounts,
    /// logins and their pins, team links, directory memberships. Equal
    /// digests mean the store gives a pass nothing new to do.
    pub fn fingerprint(&self) -> String {
        let mut print = Fingerprint::default();
        print.accounts_and_links(self);
        for (account, team) in &self.current {
            print.membership(account.as_str(), team.as_str());
        }
        print.finish()
    }
}

/// The digest behind [`SyncSnapshot::fingerprint`], fed piece by piece so
/// that the memberships can also be streamed from the store
/// ([`store_fingerprint`]). Fields are fed one by one, each ended by a
/// NUL, rather than formatted into a string per row first.
#[derive(Default)]
struct Fingerprint(sha2::Sha256);

impl Fingerprint {
    fn field(&mut self, text: &str) {
        use sha2::Digest;
        self.0.update(text.as_bytes());
        self.0.update(b"\0");
    }

    fn accounts_and_links(&mut self, snapshot: &SyncSnapshot) {
        for (account, logins) in &snapshot.accounts {
            self.field("a");
            self.field(account.as_str());
            for login in logins {
                let pinned = login
                    .pinned
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                self.field("l");
                self.field(&login.login_id.to_string());
                self.field(&login.identity.to_string());
                self.field(&pinned);
            }
        }
        for link in &snapshot.links {
            self.field("g");
            self.field(link.team.as_str());
            self.field(&link.group.to_string());
        }
    }

    /// Memberships must come in `SyncSnapshot::current`'s order: by
    /// account, then team, comparing bytes.
    fn membership(&mut self, account: &str, team: &str) {
        self.field("m");
        self.field(account);
        self.field(team);
    }

    fn finish(self) -> String {
        use sha2::Digest;
        hex::encode(self.0.finalize())
    }
}

/// [`SyncSnapshot::fingerprint`] of the store as it is, without holding its
/// directory memberships in memory: after a first full pass there can be
/// tens of thousands.
fn store_fingerprint(conn: &rusqlite::Connection) -> Result<String> {
    let mut print = Fingerprint::default();
    print.accounts_and_links(&read_snapshot_parts(conn, false)?);
    let failed = StoreError::sql("reading memberships");
    // BINARY: the names are NOCASE columns, and the snapshot's BTreeSet
    // orders by bytes.
    let mut stmt = conn
        .prepare(
            "SELECT a.name, t.name FROM memberships m
             JOIN accounts a ON a.id = m.account_id JOIN teams t ON t.id = m.team_id
             WHERE m.source = 'directory'
             ORDER BY a.name COLLATE BINARY, t.name COLLATE BINARY",
        )
        .map_err(failed)?;
    let mut rows = stmt.query([]).map_err(failed)?;
    while let Some(row) = rows.next().map_err(failed)? {
        let account = row.get_ref(0).and_then(|v| v.as_str().map_err(Into::into));
        let team = row.get_ref(1).and_then(|v| v.as_str().map_err(Into::into));
        print.membership(account.map_err(failed)?, team.map_err(failed)?);
    }
    Ok(print.finish())
}

impl Store {
    pub fn directory_state(&self) -> Result<Option<DirectoryState>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT source, position, store_fingerprint, full_pass_at FROM directory_state WHERE id = 1",
                [],
                |row| {
                    Ok(DirectoryState {
                        mark: DirectoryMark {
                            source: row.get(0)?,
                            position: row.get(1)?,
                        },
                        store_fingerprint: row.get(2)?,
                        full_pass_at: row.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(StoreError::sql("reading the directory state"))
    }
}

fn read_snapshot(conn: &rusqlite::Connection) -> Result<SyncSnapshot> {
    read_snapshot_parts(conn, true)
}

/// The snapshot, with or without the directory memberships.
fn read_snapshot_parts(
    conn: &rusqlite::Connection,
    with_memberships: bool,
) -> Result<SyncSnapshot> {
    let mut snapshot = SyncSnapshot::default();
    {
        let mut stmt = conn
            .prepare(
                "SELECT a.name, l.id, l.identity, l.object_id, l.dn, l.label
                 FROM accounts a LEFT JOIN external_logins l ON l.account_id = a.id
                 ORDER BY a.name, l.id",
            )
            .map_err(StoreError::sql("reading logins"))?;
        let mut rows = stmt.query([]).map_err(StoreError::sql("reading logins"))?;
        while let Some(row) = rows.next().map_err(StoreError::sql("reading logins"))? {
            let name: String = row.get(0).map_err(StoreError::sql("reading logins"))?;
            let account = AccountName::new(&name)
                .map_err(|err| corrupt(format!("account name {name:?}: {err}")))?;
            if snapshot
                .accounts
                .last()
                .is_none_or(|(last, _)| *last != account)
            {
                snapshot.accounts.push((account, Vec::new()));
            }
            let login_id: Option<i64> = row.get(1).map_err(StoreError::sql("reading logins"))?;
            let Some(login_id) = login_id else { continue };
            let identity_text: String = row.get(2).map_err(StoreError::sql("reading logins"))?;
            let identity = Identity::parse_any(&identity_text)
                .map_err(|err| corrupt(format!("login {identity_text:?}: {err}")))?;
            let pinned_text: Option<String> =
                row.get(3).map_err(StoreError::sql("reading logins"))?;
            let pinned = pinned_text
                .map(|text| {
                    ObjectId::parse(&text)
                        .map_err(|err| corrupt(format!("pinned id {text:?}: {err}")))
                })
                .transpose()?;
            let login = SyncSnapshotLogin {
                login_id,
                identity,
                pinned,
                dn: row.get(4).map_err(StoreError::sql("reading logins"))?,
                label: row.get(5).map_err(StoreError::sql("reading logins"))?,
            };
            if let Some((_, logins)) = snapshot.accounts.last_mut() {
                logins.push(login);
            }
        }

        let mut stmt = conn
            .prepare(
                "SELECT t.name, g.group_id, g.group_label, g.missing_since FROM team_groups g
                 JOIN teams t ON t.id = g.team_id ORDER BY t.name, g.group_label",
            )
            .map_err(StoreError::sql("reading team links"))?;
        let links: Vec<(String, String, String, Option<String>)> = stmt
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("reading team links"))?;
        for (team, sid, label, missing_since) in links {
            if missing_since.is_some() {
                snapshot.missing_groups.insert(
                    ObjectId::parse(&sid)
                        .map_err(|err| corrupt(format!("group id {sid:?}: {err}")))?,
                );
            }
            snapshot.links.push(LinkedGroup {
                team: TeamName::new(&team)
                    .map_err(|err| corrupt(format!("team name {team:?}: {err}")))?,
                group: ObjectId::parse(&sid)
                    .map_err(|err| corrupt(format!("group id {sid:?}: {err}")))?,
                label,
            });
        }
        if !with_memberships {
            return Ok(snapshot);
        }

        let mut stmt = conn
            .prepare(
                "SELECT a.name, t.name FROM memberships m
                 JOIN accounts a ON a.id = m.account_id JOIN teams t ON t.id = m.team_id
                 WHERE m.source = 'directory'",
            )
            .map_err(StoreError::sql("reading memberships"))?;
        let pairs: Vec<(String, String)> = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("reading memberships"))?;
        for (account, team) in pairs {
            snapshot.current.insert((
                AccountName::new(&account)
                    .map_err(|err| corrupt(format!("account name {account:?}: {err}")))?,
                TeamName::new(&team)
                    .map_err(|err| corrupt(format!("team name {team:?}: {err}")))?,
            ));
        }
    }
    Ok(snapshot)
}

impl Store {
    /// Writes a whole pass in one `BEGIN IMMEDIATE` transaction: the
    /// membership changes, their change rows, the login pins and the run row.
    /// Either all of it lands or none of it.
    pub fn apply_pass(&mut self, write: &PassWrite<'_>) -> Result<i64> {
        let PassWrite {
            record,
            changes,
            pins,
            ref mark,
            link_marks,
        } = *write;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql("starting the pass transaction"))?;
        let run_id = insert_run(&tx, record)?;
        let at = now();
        write_changes(&tx, run_id, changes, &at)?;
        write_pins(&tx, pins, &at)?;
        for link in link_marks.iter() {
            match link {
                LinkMark::Missing(group) => tx.execute(
                    "UPDATE team_groups SET missing_since = ?1
                     WHERE group_id = ?2 AND missing_since IS NULL",
                    params![at, group.to_string()],
                ),
                LinkMark::Present(group) => tx.execute(
                    "UPDATE team_groups SET missing_since = NULL WHERE group_id = ?1",
                    params![group.to_string()],
                ),
            }
            .map_err(StoreError::sql("marking a linked group"))?;
        }
        match mark {
            MarkUpdate::Keep => {}
            MarkUpdate::Clear => {
                tx.execute("DELETE FROM directory_state", [])
                    .map_err(StoreError::sql("clearing the directory state"))?;
            }
            MarkUpdate::Set(mark) => {
                // The fingerprint of the store as this transaction leaves it.
                let fingerprint = store_fingerprint(&tx)?;
                tx.execute(
                    "INSERT OR REPLACE INTO directory_state
                     (id, source, position, store_fingerprint, full_pass_at)
                     VALUES (1, ?1, ?2, ?3, ?4)",
                    params![mark.source, mark.position, fingerprint, at],
                )
                .map_err(StoreError::sql("recording the directory state"))?;
            }
        }
        tx.commit()
            .map_err(StoreError::sql("committing the pass"))?;
        Ok(run_id)
    }

    /// Records a pass that applied nothing (the removal guard refused it,
    /// or nothing had changed).
    pub fn record_run(&mut self, record: &PassRecord) -> Result<i64> {
        self.apply_pass(&PassWrite {
            record,
            changes: &[],
            pins: &[],
            mark: MarkUpdate::Keep,
            link_marks: &[],
        })
    }
}

/// A recorded pass, as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub started_at: String,
    pub finished_at: String,
    pub outcome: String,
    pub added: i64,
    pub removed: i64,
    pub failed_logins: i64,
    pub detail: Option<String>,
}

/// What the store holds, counted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreCounts {
    pub service_accounts: i64,
    /// Service accounts with at least one external login.
    pub linked_accounts: i64,
    pub linked_logins: i64,
    pub linked_teams: i64,
}

impl Store {
    /// The last pass that applied its plan (success or partial).
    pub fn last_applied_run(&self) -> Result<Option<RunRow>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT started_at, finished_at, outcome, added, removed, failed_logins, detail
                 FROM sync_runs WHERE outcome IN ('success', 'partial') ORDER BY id DESC LIMIT 1",
                [],
                |row| {
                    Ok(RunRow {
                        started_at: row.get(0)?,
                        finished_at: row.get(1)?,
                        outcome: row.get(2)?,
                        added: row.get(3)?,
                        removed: row.get(4)?,
                        failed_logins: row.get(5)?,
                        detail: row.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(StoreError::sql("reading the last pass"))
    }

    pub fn counts(&self) -> Result<StoreCounts> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM accounts),
                        (SELECT count(DISTINCT account_id) FROM external_logins),
                        (SELECT count(*) FROM external_logins),
                        (SELECT count(DISTINCT team_id) FROM team_groups)",
                [],
                |row| {
                    Ok(StoreCounts {
                        service_accounts: row.get(0)?,
                        linked_accounts: row.get(1)?,
                        linked_logins: row.get(2)?,
                        linked_teams: row.get(3)?,
                    })
                },
            )
            .map_err(StoreError::sql("counting"))
    }
}

fn insert_run(tx: &Transaction<'_>, record: &PassRecord) -> Result<i64> {
    tx.execute(
        "INSERT INTO sync_runs (started_at, finished_at, outcome, added, removed, failed_logins, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            humantime::format_rfc3339_seconds(record.started_at).to_string(),
            now(),
            record.outcome.as_str(),
            record.added as i64,
            record.removed as i64,
            record.failed_logins as i64,
            record.detail
        ],
    )
    .map_err(StoreError::sql("recording the pass"))?;
    Ok(tx.last_insert_rowid())
}

/// Applies the directory-sourced changes and records each in
/// `sync_changes`. The plan was made from a snapshot; an account or team
/// deleted since then simply has nothing to change.
///
/// A full pass can carry tens of thousands of changes: the statements are
/// prepared once and take row ids looked up once, rather than being parsed
/// and joined by name for every row.
fn write_changes(tx: &Transaction<'_>, run_id: i64, changes: &[Change], at: &str) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let teams = ids_by_name(tx, "SELECT name, id FROM teams", "reading team ids")?;
    let accounts = ids_by_name(tx, "SELECT name, id FROM accounts", "reading account ids")?;
    let failed = StoreError::sql("applying a membership change");
    let mut add = tx
        .prepare(
            "INSERT OR IGNORE INTO memberships (team_id, account_id, source, reason, added_at)
             VALUES (?1, ?2, 'directory', ?3, ?4)",
        )
        .map_err(failed)?;
    let mut remove = tx
        .prepare(
            "DELETE FROM memberships
             WHERE source = 'directory' AND team_id = ?1 AND account_id = ?2",
        )
        .map_err(failed)?;
    let mut record = tx
        .prepare(
            "INSERT INTO sync_changes (run_id, at, account, team, action, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(StoreError::sql("recording a change"))?;
    // In the table's key order (team, account): each insert lands next to
    // the last one instead of anywhere in the B-tree.
    let mut keyed: Vec<(i64, i64, &Change)> = changes
        .iter()
        .filter_map(|change| {
            let team_id = teams.get(change.team.as_str())?;
            let account_id = accounts.get(change.account.as_str())?;
            Some((*team_id, *account_id, change))
        })
        .collect();
    keyed.sort_unstable_by_key(|(team_id, account_id, _)| (*team_id, *account_id));
    for (team_id, account_id, change) in keyed {
        match change.action {
            Action::Add => add.execute(params![team_id, account_id, change.reason, at]),
            Action::Remove => remove.execute(params![team_id, account_id]),
        }
        .map_err(failed)?;
    }
    for change in changes {
        record
            .execute(params![
                run_id,
                at,
                change.account.as_str(),
                change.team.as_str(),
                change.action.as_str(),
                change.reason
            ])
            .map_err(StoreError::sql("recording a change"))?;
    }
    Ok(())
}

fn write_pins(tx: &Transaction<'_>, pins: &[LoginPin], at: &str) -> Result<()> {
    if pins.is_empty() {
        return Ok(());
    }
    let failed = StoreError::sql("pinning a login");
    let mut pin_login = tx
        .prepare(
            "UPDATE external_logins SET object_id = ?1, dn = ?2, label = ?3, resolved_at = ?4
             WHERE id = ?5",
        )
        .map_err(failed)?;
    for pin in pins {
        pin_login
            .execute(params![
                pin.id.to_string(),
                pin.dn,
                pin.label,
                at,
                pin.login_id
            ])
            .map_err(failed)?;
    }
    Ok(())
}

fn ids_by_name(
    tx: &Transaction<'_>,
    query: &str,
    what: &'static str,
) -> Result<HashMap<String, i64>> {
    let mut stmt = tx.prepare(query).map_err(StoreError::sql(what))?;
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(StoreError::sql(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;

    fn change(account: &str, team: &str, action: Action) -> Change {
        Change {
            account: AccountName::new(account).unwrap(),
            team: TeamName::new(team).unwrap(),
            action,
            reason: "test".into(),
        }
    }

    /// A pass that changes memberships only (no pins, no link marks).
    fn apply(store: &mut Store, outcome: RunOutcome, changes: &[Change], mark: MarkUpdate) {
        store
            .apply_pass(&PassWrite {
                record: &record(outcome),
                changes,
                pins: &[],
                mark,
                link_marks: &[],
            })
            .unwrap();
    }

    fn count(store: &Store, table: &str) -> i64 {
        store
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    fn record(outcome: RunOutcome) -> PassRecord {
        PassRecord {
            started_at: SystemTime::now(),
            outcome,
            added: 0,
            removed: 0,
            failed_logins: 0,
            detail: None,
        }
    }

    #[test]
    fn a_pass_changes_directory_rows_only_and_records_itself() {
        let (_dir, mut store) = temp_store();
        let bot = AccountName::new("bot").unwrap();
        let ops = TeamName::new("ops").unwrap();
        store.create_account(&bot, None).unwrap();
        store.create_team(&ops).unwrap();
        store.add_manual_member(&ops, &bot).unwrap();

        apply(
            &mut store,
            RunOutcome::Success,
            &[change("bot", "ops", Action::Add)],
            MarkUpdate::Keep,
        );
        let snapshot = store.sync_snapshot().unwrap();
        assert_eq!(snapshot.current.len(), 1);
        assert_eq!(store.team_members(&ops).unwrap().len(), 2);

        apply(
            &mut store,
            RunOutcome::Success,
            &[change("bot", "ops", Action::Remove)],
            MarkUpdate::Keep,
        );
        let members = store.team_members(&ops).unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].source, "manual");
        let runs = count(&store, "sync_runs");
        let changes = count(&store, "sync_changes");
        assert_eq!((runs, changes), (2, 2));
    }

    #[test]
    fn a_change_for_an_account_deleted_since_the_plan_changes_nothing_else() {
        let (_dir, mut store) = temp_store();
        let bot = AccountName::new("bot").unwrap();
        let ops = TeamName::new("ops").unwrap();
        store.create_account(&bot, None).unwrap();
        store.create_team(&ops).unwrap();

        apply(
            &mut store,
            RunOutcome::Success,
            &[
                change("gone", "ops", Action::Add),
                change("bot", "ops", Action::Add),
                change("bot", "gone-team", Action::Add),
            ],
            MarkUpdate::Keep,
        );
        let members = store.team_members(&ops).unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].source, "directory");
        let recorded = count(&store, "sync_changes");
        assert_eq!(recorded, 3, "the history keeps what the pass planned");
    }

    #[test]
    fn pins_are_stored_and_read_back() {
        let (_dir, mut store) = temp_store();
        let bot = AccountName::new("bot").unwrap();
        store.create_account(&bot, None).unwrap();
        store
            .add_login(&bot, &Identity::parse_any("CORP\\svc").unwrap())
            .unwrap();
        let login_id = store.sync_snapshot().unwrap().accounts[0].1[0].login_id;
        let sid = ObjectId::parse("S-1-5-21-1-2-3-1105").unwrap();
        store
            .apply_pass(&PassWrite {
                record: &record(RunOutcome::Success),
                changes: &[],
                pins: &[LoginPin {
                    login_id,
                    id: sid.clone(),
                    dn: "CN=svc,DC=corp".into(),
                    label: "CORP\\svc".into(),
                }],
                mark: MarkUpdate::Keep,
                link_marks: &[],
            })
            .unwrap();
        let snapshot = store.sync_snapshot().unwrap();
        assert_eq!(snapshot.accounts[0].1[0].pinned, Some(sid));
    }

    #[test]
    fn a_set_mark_remembers_the_store_as_the_pass_left_it() {
        let (_dir, mut store) = temp_store();
        let bot = AccountName::new("bot").unwrap();
        let ops = TeamName::new("ops").unwrap();
        store.create_account(&bot, None).unwrap();
        store.create_team(&ops).unwrap();
        let mark = DirectoryMark {
            source: "ad:0011".into(),
            position: "4242".into(),
        };
        apply(
            &mut store,
            RunOutcome::Success,
            &[change("bot", "ops", Action::Add)],
            MarkUpdate::Set(mark.clone()),
        );
        let state = store.directory_state().unwrap().unwrap();
        assert_eq!(state.mark, mark);
        assert_eq!(
            state.store_fingerprint,
            store.sync_snapshot().unwrap().fingerprint()
        );

        // Any store change moves the fingerprint; clearing forgets the mark.
        store
            .create_account(&AccountName::new("other").unwrap(), None)
            .unwrap();
        assert_ne!(
            state.store_fingerprint,
            store.sync_snapshot().unwrap().fingerprint()
        );
        apply(&mut store, RunOutcome::Partial, &[], MarkUpdate::Clear);
        assert_eq!(store.directory_state().unwrap(), None);
    }

    #[test]
    fn the_streamed_fingerprint_orders_memberships_as_the_snapshot_does() {
        // NOCASE puts amy before Zed, byte order Zed before amy: the stored
        // fingerprint must still match the snapshot's, or every pass after
        // this one would be a full pass.
        let (_dir, mut store) = temp_store();
        for account in ["Zed", "amy", "bob"] {
            store
                .create_account(&AccountName::new(account).unwrap(), None)
                .unwrap();
        }
        for team in ["Ops", "deploy"] {
            store.create_team(&TeamName::new(team).unwrap()).unwrap();
        }
        let mut changes = Vec::new();
        for account in ["Zed", "amy", "bob"] {
            for team in ["Ops", "deploy"] {
                changes.push(change(account, team, Action::Add));
            }
        }
        apply(
            &mut store,
            RunOutcome::Success,
            &changes,
            MarkUpdate::Set(DirectoryMark {
                source: "ldap:x".into(),
                position: "1".into(),
            }),
        );
        let snapshot = store.sync_snapshot().unwrap();
        assert_eq!(snapshot.current.len(), 6);
        assert_eq!(
            store.directory_state().unwrap().unwrap().store_fingerprint,
            snapshot.fingerprint()
        );
    }
}
