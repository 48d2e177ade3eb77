//! API keys: only the SHA-256 of each key is stored.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Result, Store, StoreError, now};
use crate::model::AccountName;

#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyRow {
    pub id: i64,
    pub purpose: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// What `apikey verify` learns about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    Valid { account: String, teams: Vec<String> },
    Revoked { account: String },
    AccountDisabled { account: String },
    Unknown,
}

impl Store {
    pub fn create_api_key(
        &self,
        account: &AccountName,
        key_sha256: &str,
        purpose: Option<&str>,
    ) -> Result<i64> {
        let account_id = self.account_id(account)?;
        self.conn
            .execute(
                "INSERT INTO api_keys (account_id, key_sha256, purpose, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![account_id, key_sha256, purpose, now()],
            )
            .map_err(StoreError::sql("storing an API key"))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn list_api_keys(&self, account: &AccountName) -> Result<Vec<ApiKeyRow>> {
        let account_id = self.account_id(account)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, purpose, created_at, last_used_at, revoked_at FROM api_keys
                 WHERE account_id = ?1 ORDER BY id",
            )
            .map_err(StoreError::sql("listing API keys"))?;
        let rows = stmt
            .query_map([account_id], |row| {
                Ok(ApiKeyRow {
                    id: row.get(0)?,
                    purpose: row.get(1)?,
                    created_at: row.get(2)?,
                    last_used_at: row.get(3)?,
                    revoked_at: row.get(4)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("listing API keys"))?;
        Ok(rows)
    }

    pub fn revoke_api_key(&self, account: &AccountName, id: i64) -> Result<()> {
        let account_id = self.account_id(account)?;
        let changed = self
            .conn
            .execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?1)
                 WHERE id = ?2 AND account_id = ?3",
                params![now(), id, account_id],
            )
            .map_err(StoreError::sql("revoking an API key"))?;
        if changed == 0 {
            return Err(StoreError::KeyNotFound {
                account: account.to_string(),
                id,
            });
        }
        Ok(())
    }

    /// Looks a key up by its hash and, when it is valid, records its use.
    pub fn check_api_key(&self, key_sha256: &str) -> Result<KeyCheck> {
        let found: Option<(i64, i64, String, bool, Option<String>)> = self
            .conn
            .query_row(
                "SELECT k.id, a.id, a.name, a.disabled, k.revoked_at FROM api_keys k
                 JOIN accounts a ON a.id = k.account_id WHERE k.key_sha256 = ?1",
                [key_sha256],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )
            .optional()
            .map_err(StoreError::sql("looking up an API key"))?;
        let Some((key_id, account_id, account, disabled, revoked_at)) = found else {
            return Ok(KeyCheck::Unknown);
        };
        if revoked_at.is_some() {
            return Ok(KeyCheck::Revoked { account });
        }
        if disabled {
            return Ok(KeyCheck::AccountDisabled { account });
        }
        self.conn
            .execute(
                "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2",
                params![now(), key_id],
            )
            .map_err(StoreError::sql("recording an API key's use"))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT t.name FROM memberships m JOIN teams t ON t.id = m.team_id
                 WHERE m.account_id = ?1 ORDER BY t.name",
            )
            .map_err(StoreError::sql("reading an account's teams"))?;
        let teams = stmt
            .query_map([account_id], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("reading an account's teams"))?;
        Ok(KeyCheck::Valid { account, teams })
    }
}

#[cfg(test)]
mod tests {
    use super::KeyCheck;
    use crate::model::AccountName;
    use crate::store::test_support::temp_store;

    #[test]
    fn keys_are_found_by_hash_until_revoked_or_disabled() {
        let (_dir, store) = temp_store();
        let bot = AccountName::new("bot").unwrap();
        store.create_account(&bot, None).unwrap();
        let id = store.create_api_key(&bot, "aa11", Some("ci")).unwrap();
        assert_eq!(
            store.check_api_key("aa11").unwrap(),
            KeyCheck::Valid {
                account: "bot".into(),
                teams: vec![]
            }
        );
        assert!(store.list_api_keys(&bot).unwrap()[0].last_used_at.is_some());
        assert_eq!(store.check_api_key("bb22").unwrap(), KeyCheck::Unknown);
        store.set_account_disabled(&bot, true).unwrap();
        assert!(matches!(
            store.check_api_key("aa11").unwrap(),
            KeyCheck::AccountDisabled { .. }
        ));
        store.set_account_disabled(&bot, false).unwrap();
        store.revoke_api_key(&bot, id).unwrap();
        assert!(matches!(
            store.check_api_key("aa11").unwrap(),
            KeyCheck::Revoked { .. }
        ));
        assert!(store.revoke_api_key(&bot, id + 1).is_err());
    }
}
