//! Teams, their links to directory groups, and manual memberships.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Result, Store, StoreError, now, unique_or};
use crate::model::{AccountName, DirectoryGroup, ObjectId, TeamName};

#[derive(Debug, Clone, Serialize)]
pub struct GroupLinkRow {
    pub id: String,
    pub dn: String,
    pub label: String,
    pub linked_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamRow {
    pub name: String,
    pub created_at: String,
    pub groups: Vec<GroupLinkRow>,
    pub members: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    pub account: String,
    pub source: String,
    pub since: String,
    /// Why the directory granted it (directory memberships only).
    pub reason: Option<String>,
}

impl Store {
    pub(super) fn team_id(&self, name: &TeamName) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT id FROM teams WHERE name = ?1",
                [name.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(StoreError::sql("looking up a team"))?
            .ok_or_else(|| StoreError::TeamNotFound(name.to_string()))
    }

    pub fn create_team(&self, name: &TeamName) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO teams (name, created_at) VALUES (?1, ?2)",
                params![name.as_str(), now()],
            )
            .map_err(unique_or("creating a team", || {
                StoreError::TeamExists(name.to_string())
            }))?;
        Ok(())
    }

    /// Deletes the team with its links and memberships (manual ones too).
    pub fn delete_team(&self, name: &TeamName) -> Result<()> {
        let id = self.team_id(name)?;
        self.conn
            .execute("DELETE FROM teams WHERE id = ?1", [id])
            .map_err(StoreError::sql("deleting a team"))?;
        Ok(())
    }

    pub fn list_teams(&self) -> Result<Vec<TeamRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.id, t.name, t.created_at,
                        (SELECT count(DISTINCT account_id) FROM memberships m WHERE m.team_id = t.id)
                 FROM teams t ORDER BY t.name",
            )
            .map_err(StoreError::sql("listing teams"))?;
        let teams: Vec<(i64, String, String, i64)> = stmt
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("listing teams"))?;
        teams
            .into_iter()
            .map(|(id, name, created_at, members)| {
                Ok(TeamRow {
                    name,
                    created_at,
                    groups: self.team_links(id)?,
                    members,
                })
            })
            .collect()
    }

    fn team_links(&self, team_id: i64) -> Result<Vec<GroupLinkRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT group_id, group_dn, group_label, linked_at FROM team_groups
                 WHERE team_id = ?1 ORDER BY group_label",
            )
            .map_err(StoreError::sql("reading a team's links"))?;
        let rows = stmt
            .query_map([team_id], |row| {
                Ok(GroupLinkRow {
                    id: row.get(0)?,
                    dn: row.get(1)?,
                    label: row.get(2)?,
                    linked_at: row.get(3)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("reading a team's links"))?;
        Ok(rows)
    }

    /// The links of one team, for `team unlink` to match against offline.
    pub fn links_of(&self, team: &TeamName) -> Result<Vec<GroupLinkRow>> {
        let id = self.team_id(team)?;
        self.team_links(id)
    }

    pub fn link_group(&self, team: &TeamName, group: &DirectoryGroup) -> Result<()> {
        let id = self.team_id(team)?;
        self.conn
            .execute(
                "INSERT INTO team_groups (team_id, group_id, group_dn, group_label, linked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, group.id.to_string(), group.dn, group.label, now()],
            )
            .map_err(unique_or("linking a group", || StoreError::LinkExists {
                team: team.to_string(),
                group: group.label.clone(),
            }))?;
        Ok(())
    }

    pub fn unlink_group(&self, team: &TeamName, group: &ObjectId, shown_as: &str) -> Result<()> {
        let id = self.team_id(team)?;
        let removed = self
            .conn
            .execute(
                "DELETE FROM team_groups WHERE team_id = ?1 AND group_id = ?2",
                params![id, group.to_string()],
            )
            .map_err(StoreError::sql("unlinking a group"))?;
        if removed == 0 {
            return Err(StoreError::LinkNotFound {
                team: team.to_string(),
                group: shown_as.to_owned(),
            });
        }
        Ok(())
    }

    pub fn add_manual_member(&self, team: &TeamName, account: &AccountName) -> Result<()> {
        let team_id = self.team_id(team)?;
        let account_id = self.account_id(account)?;
        self.conn
            .execute(
                "INSERT INTO memberships (team_id, account_id, source, added_at)
                 VALUES (?1, ?2, 'manual', ?3)",
                params![team_id, account_id, now()],
            )
            .map_err(unique_or("adding a member", || StoreError::MemberExists {
                account: account.to_string(),
                team: team.to_string(),
            }))?;
        Ok(())
    }

    /// Removes a manual membership only; a directory membership of the same
    /// account stays, because the directory still grants it.
    pub fn remove_manual_member(&self, team: &TeamName, account: &AccountName) -> Result<()> {
        let team_id = self.team_id(team)?;
        let account_id = self.account_id(account)?;
        let removed = self
            .conn
            .execute(
                "DELETE FROM memberships WHERE team_id = ?1 AND account_id = ?2 AND source = 'manual'",
                params![team_id, account_id],
            )
            .map_err(StoreError::sql("removing a member"))?;
        if removed == 0 {
            return Err(StoreError::MemberNotFound {
                account: account.to_string(),
                team: team.to_string(),
            });
        }
        Ok(())
    }

    /// One row per membership: an account that is both a manual and a
    /// directory member appears twice, once per source.
    pub fn team_members(&self, team: &TeamName) -> Result<Vec<MemberRow>> {
        let id = self.team_id(team)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT a.name, m.source, m.added_at, m.reason FROM memberships m
                 JOIN accounts a ON a.id = m.account_id WHERE m.team_id = ?1
                 ORDER BY a.name, m.source",
            )
            .map_err(StoreError::sql("listing members"))?;
        let rows: Vec<MemberRow> = stmt
            .query_map([id], |row| {
                Ok(MemberRow {
                    account: row.get(0)?,
                    source: row.get(1)?,
                    since: row.get(2)?,
                    reason: row.get(3)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(StoreError::sql("listing members"))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{AccountName, DirectoryGroup, ObjectId, TeamName};
    use crate::store::StoreError;
    use crate::store::test_support::temp_store;

    fn group(rid: u32) -> DirectoryGroup {
        DirectoryGroup {
            id: ObjectId::parse(&format!("S-1-5-21-1-2-3-{rid}")).unwrap(),
            dn: format!("CN=g{rid},DC=corp"),
            label: format!("CORP\\g{rid}"),
            is_security: true,
        }
    }

    #[test]
    fn links_are_kept_by_sid_and_listed_with_labels() {
        let (_dir, store) = temp_store();
        let team = TeamName::new("deploy").unwrap();
        store.create_team(&team).unwrap();
        store.link_group(&team, &group(10)).unwrap();
        store.link_group(&team, &group(11)).unwrap();
        assert!(matches!(
            store.link_group(&team, &group(10)),
            Err(StoreError::LinkExists { .. })
        ));
        let teams = store.list_teams().unwrap();
        assert_eq!(teams[0].groups.len(), 2);
        store
            .unlink_group(&team, &group(10).id, "CORP\\g10")
            .unwrap();
        assert_eq!(store.links_of(&team).unwrap().len(), 1);
    }

    #[test]
    fn manual_members_are_listed_with_their_source() {
        let (_dir, store) = temp_store();
        let team = TeamName::new("ops").unwrap();
        let bot = AccountName::new("bot").unwrap();
        store.create_team(&team).unwrap();
        store.create_account(&bot, None).unwrap();
        store.add_manual_member(&team, &bot).unwrap();
        assert!(matches!(
            store.add_manual_member(&team, &bot),
            Err(StoreError::MemberExists { .. })
        ));
        let members = store.team_members(&team).unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].source, "manual");
        store.remove_manual_member(&team, &bot).unwrap();
        assert!(store.team_members(&team).unwrap().is_empty());
    }
}
