//! Service accounts and their external logins.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Result, Store, StoreError, now, unique_or};
use crate::model::{AccountName, Identity};

#[derive(Debug, Clone, Serialize)]
pub struct AccountRow {
    pub name: String,
    pub display_name: Option<String>,
    pub disabled: bool,
    pub created_at: String,
    pub logins: i64,
    pub teams: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoginRow {
    pub identity: String,
    /// The directory account's objectSid or entryUUID, pinned once the
    /// login was first found.
    pub object_id: Option<String>,
    pub dn: Option<String>,
    pub label: Option<String>,
    pub resolved_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountTeam {
    pub team: String,
    pub source: String,
    pub since: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountDetail {
    pub name: String,
    pub display_name: Option<String>,
    pub disabled: bool,
    pub created_at: String,
    pub logins: Vec<LoginRow>,
    pub teams: Vec<AccountTeam>,
    pub api_key_ids: Vec<i64>,
}

impl Store {
    pub(super) fn account_id(&self, name: &AccountName) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT id FROM accounts WHERE name = ?1",
                [name.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(StoreError::sql("looking up an account"))?
            .ok_or_else(|| StoreError::AccountNotFound(name.to_string()))
    }

    pub fn create_account(&self, name: &AccountName, display_name: Option<&str>) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO accounts (name, display_name, created_at) VALUES (?1, ?2, ?3)",
                params![name.as_str(), display_name, now()],
            )
            .map_err(unique_or("creating an account", || {
                StoreError::AccountExists(name.to_string())
            }))?;
        Ok(())
    }

    pub fn list_accounts(&self) -> Result<Vec<AccountRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT a.name, a.display_name, a.disabled, a.created_at,
                        (SELECT count(*) FROM external_logins l WHERE l.account_id = a.id),
                        (SELECT count(DISTINCT team_id) FROM memberships m WHERE m.account_id = a.id)
                 FROM accounts a ORDER BY a.name",
            )
            .map_err(StoreError::sql("listing accounts"))?;
        let rows = stmt
            .query_map([], |row| {
                Ok(AccountRow {
                    name: row.get(0)?,
                    display_name: row.get(1)?,
                    disabled: row.get(2)?,
                    created_at: row.get(3)?,
                    logins: row.get(4)?,
                    teams: row.get(5)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("listing accounts"))?;
        Ok(rows)
    }

    pub fn account_detail(&self, name: &AccountName) -> Result<AccountDetail> {
        let id = self.account_id(name)?;
        let (name, display_name, disabled, created_at) = self
            .conn
            .query_row(
                "SELECT name, display_name, disabled, created_at FROM accounts WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .map_err(StoreError::sql("reading an account"))?;
        let logins = self.logins(id)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.name, m.source, m.added_at FROM memberships m
                 JOIN teams t ON t.id = m.team_id WHERE m.account_id = ?1
                 ORDER BY t.name, m.source",
            )
            .map_err(StoreError::sql("reading an account's teams"))?;
        let teams = stmt
            .query_map([id], |row| {
                Ok(AccountTeam {
                    team: row.get(0)?,
                    source: row.get(1)?,
                    since: row.get(2)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("reading an account's teams"))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id FROM api_keys WHERE account_id = ?1 AND revoked_at IS NULL ORDER BY id",
            )
            .map_err(StoreError::sql("reading an account's keys"))?;
        let api_key_ids = stmt
            .query_map([id], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("reading an account's keys"))?;
        Ok(AccountDetail {
            name,
            display_name,
            disabled,
            created_at,
            logins,
            teams,
            api_key_ids,
        })
    }

    fn logins(&self, account_id: i64) -> Result<Vec<LoginRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT identity, object_id, dn, label, resolved_at FROM external_logins
                 WHERE account_id = ?1 ORDER BY id",
            )
            .map_err(StoreError::sql("reading logins"))?;
        let rows = stmt
            .query_map([account_id], |row| {
                Ok(LoginRow {
                    identity: row.get(0)?,
                    object_id: row.get(1)?,
                    dn: row.get(2)?,
                    label: row.get(3)?,
                    resolved_at: row.get(4)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("reading logins"))?;
        Ok(rows)
    }

    pub fn set_account_disabled(&self, name: &AccountName, disabled: bool) -> Result<()> {
        let id = self.account_id(name)?;
        self.conn
            .execute(
                "UPDATE accounts SET disabled = ?1 WHERE id = ?2",
                params![disabled, id],
            )
            .map_err(StoreError::sql("disabling an account"))?;
        Ok(())
    }

    /// Deletes the account with its logins, keys and memberships. The sync
    /// history keeps its name.
    pub fn delete_account(&self, name: &AccountName) -> Result<()> {
        let id = self.account_id(name)?;
        self.conn
            .execute("DELETE FROM accounts WHERE id = ?1", [id])
            .map_err(StoreError::sql("deleting an account"))?;
        Ok(())
    }

    pub fn add_login(&self, account: &AccountName, identity: &Identity) -> Result<()> {
        let id = self.account_id(account)?;
        let text = identity.to_string();
        // A login typed as its stable id (SID, entryUUID) is pinned from the start.
        let pinned = match identity {
            Identity::Sid(sid) => Some(sid.to_string()),
            Identity::Uuid(uuid) => Some(uuid.as_str().to_owned()),
            _ => None,
        };
        self.conn
            .execute(
                "INSERT INTO external_logins (account_id, identity, object_id, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, text, pinned, now()],
            )
            .map_err(unique_or("adding a login", || StoreError::LoginExists {
                account: account.to_string(),
                identity: text.clone(),
            }))?;
        Ok(())
    }

    pub fn remove_login(&self, account: &AccountName, identity: &Identity) -> Result<()> {
        let id = self.account_id(account)?;
        let text = identity.to_string();
        let removed = self
            .conn
            .execute(
                "DELETE FROM external_logins WHERE account_id = ?1 AND identity = ?2",
                params![id, text],
            )
            .map_err(StoreError::sql("removing a login"))?;
        if removed == 0 {
            return Err(StoreError::LoginNotFound {
                account: account.to_string(),
                identity: text,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{AccountName, Identity};
    use crate::store::StoreError;
    use crate::store::test_support::temp_store;

    fn name(text: &str) -> AccountName {
        AccountName::new(text).unwrap()
    }

    #[test]
    fn accounts_are_unique_case_insensitively() {
        let (_dir, store) = temp_store();
        store
            .create_account(&name("deploy-bot"), Some("Deploy bot"))
            .unwrap();
        assert!(matches!(
            store.create_account(&name("Deploy-Bot"), None),
            Err(StoreError::AccountExists(_))
        ));
        let rows = store.list_accounts().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].display_name.as_deref(), Some("Deploy bot"));
    }

    #[test]
    fn logins_are_listed_and_a_sid_login_is_pinned_at_once() {
        let (_dir, store) = temp_store();
        store.create_account(&name("bot"), None).unwrap();
        let by_name = Identity::parse_any("CORP\\svc-a").unwrap();
        let by_sid = Identity::parse_any("S-1-5-21-1-2-3-1105").unwrap();
        store.add_login(&name("bot"), &by_name).unwrap();
        store.add_login(&name("bot"), &by_sid).unwrap();
        assert!(matches!(
            store.add_login(&name("bot"), &Identity::parse_any("corp\\SVC-A").unwrap()),
            Err(StoreError::LoginExists { .. })
        ));
        let detail = store.account_detail(&name("bot")).unwrap();
        assert_eq!(detail.logins.len(), 2);
        assert_eq!(detail.logins[0].object_id, None);
        assert_eq!(
            detail.logins[1].object_id.as_deref(),
            Some("S-1-5-21-1-2-3-1105")
        );
        store.remove_login(&name("bot"), &by_name).unwrap();
        assert!(matches!(
            store.remove_login(&name("bot"), &by_name),
            Err(StoreError::LoginNotFound { .. })
        ));
    }

    #[test]
    fn deleting_an_account_takes_its_rows_along() {
        let (_dir, store) = temp_store();
        store.create_account(&name("bot"), None).unwrap();
        store
            .add_login(&name("bot"), &Identity::parse_any("CORP\\svc").unwrap())
            .unwrap();
        store.delete_account(&name("bot")).unwrap();
        assert!(store.list_accounts().unwrap().is_empty());
        let logins: i64 = store
            .conn
            .query_row("SELECT count(*) FROM external_logins", [], |r| r.get(0))
            .unwrap();
        assert_eq!(logins, 0);
    }
}
