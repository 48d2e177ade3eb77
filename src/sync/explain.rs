//! Why an account is or is not a member of a team, in words: the pure part
//! of `teamsync explain`. The same facts the planner uses (tokenGroups,
//! account state, manual rows), plus the group chain for humans.

use serde::Serialize;

use crate::model::{GroupChain, Identity, LinkedGroup, LoginOutcome, TeamName};

/// A login with what the directory said and its chains to the team's groups.
pub struct LoginView {
    pub identity: Identity,
    pub outcome: LoginOutcome,
    pub chains: Vec<GroupChain>,
}

/// A team as the store has it, seen from one account.
pub struct TeamView {
    pub team: TeamName,
    pub links: Vec<LinkedGroup>,
    pub manual_member: bool,
    pub directory_member: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Explanation {
    pub team: String,
    /// Whether the account is a member now (any source, as stored).
    pub member: bool,
    pub manual: bool,
    /// Whether the directory grants the team now.
    pub directory_grants: bool,
    pub reasons: Vec<String>,
}

pub fn explain(team: &TeamView, logins: &[LoginView]) -> Explanation {
    let mut reasons = Vec::new();
    if team.manual_member {
        reasons.push("manual membership: made by an admin, never changed by sync".to_owned());
    }
    let mut grants = false;
    if team.links.is_empty() {
        reasons.push("the team is not linked to any directory group".to_owned());
    } else if logins.is_empty() {
        reasons.push("the account has no external login".to_owned());
    }
    for login in logins.iter().filter(|_| !team.links.is_empty()) {
        let (found, reason) = match &login.outcome {
            LoginOutcome::Active(found) => (found, None),
            LoginOutcome::Disabled(found) => (
                found,
                Some(format!("directory account {} is disabled", found.label)),
            ),
            LoginOutcome::NotFound => {
                reasons.push(format!(
                    "login {}: no such account in the directory",
                    login.identity
                ));
                continue;
            }
            LoginOutcome::Failed(why) => {
                reasons.push(format!(
                    "login {}: could not be read: {why}",
                    login.identity
                ));
                continue;
            }
        };
        if let Some(reason) = reason {
            reasons.push(format!("login {}: {reason}", login.identity));
            continue;
        }
        let granted: Vec<&LinkedGroup> = team
            .links
            .iter()
            .filter(|link| found.groups.contains(&link.group))
            .collect();
        for link in &granted {
            grants = true;
            let chain = login
                .chains
                .iter()
                .find(|c| c.target == link.group && c.distribution_step().is_none());
            let path = match chain {
                Some(chain) => chain
                    .steps
                    .iter()
                    .map(|s| s.label.as_str())
                    .collect::<Vec<_>>()
                    .join(" -> "),
                None => link.label.clone(),
            };
            reasons.push(format!(
                "login {} -> {} -> {path} (linked to {})",
                login.identity, found.label, team.team
            ));
        }
        if granted.is_empty() {
            let via_distribution = login.chains.iter().find_map(|chain| {
                let linked = team.links.iter().find(|l| l.group == chain.target)?;
                Some((linked, chain.distribution_step()?))
            });
            match via_distribution {
                Some((linked, step)) => reasons.push(format!(
                    "login {}: {} reaches {} only through distribution group {}, which grants nothing",
                    login.identity, found.label, linked.label, step.label
                )),
                None => reasons.push(format!(
                    "login {}: {} is not in any group linked to {} ({})",
                    login.identity,
                    found.label,
                    team.team,
                    team.links
                        .iter()
                        .map(|l| l.label.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
    if grants != team.directory_member {
        reasons.push(if grants {
            "not yet in the store: the next pass adds it".to_owned()
        } else {
            "still in the store from the directory: the next pass removes it".to_owned()
        });
    }
    Explanation {
        team: team.team.to_string(),
        member: team.manual_member || team.directory_member,
        manual: team.manual_member,
        directory_grants: grants,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChainStep, FoundAccount, ObjectId};

    fn id(rid: u32) -> ObjectId {
        ObjectId::parse(&format!("S-1-5-21-1-2-3-{rid}")).unwrap()
    }

    fn team(links: &[u32], manual: bool, directory: bool) -> TeamView {
        TeamView {
            team: TeamName::new("prod").unwrap(),
            links: links
                .iter()
                .map(|rid| LinkedGroup {
                    team: TeamName::new("prod").unwrap(),
                    group: id(*rid),
                    label: format!("CORP\\g{rid}"),
                })
                .collect(),
            manual_member: manual,
            directory_member: directory,
        }
    }

    fn step(label: &str, is_security: bool) -> ChainStep {
        ChainStep {
            label: label.into(),
            dn: format!("CN={label}"),
            is_security,
        }
    }

    fn active(groups: &[u32], chains: Vec<GroupChain>) -> LoginView {
        LoginView {
            identity: Identity::parse_any("CORP\\svc").unwrap(),
            outcome: LoginOutcome::Active(FoundAccount {
                id: id(9000),
                dn: "CN=svc".into(),
                label: "CORP\\svc".into(),
                groups: groups.iter().map(|r| id(*r)).collect(),
            }),
            chains,
        }
    }

    #[test]
    fn a_granted_team_shows_the_whole_chain() {
        let chain = GroupChain {
            target: id(3),
            steps: vec![
                step("CORP\\low", true),
                step("CORP\\mid", true),
                step("CORP\\g3", true),
            ],
        };
        let result = explain(&team(&[3], false, true), &[active(&[1, 2, 3], vec![chain])]);
        assert!(result.directory_grants && result.member);
        assert_eq!(
            result.reasons,
            vec![
                "login CORP\\svc -> CORP\\svc -> CORP\\low -> CORP\\mid -> CORP\\g3 (linked to prod)"
            ]
        );
    }

    #[test]
    fn a_disabled_account_and_a_distribution_path_are_named() {
        let disabled = LoginView {
            identity: Identity::parse_any("CORP\\old").unwrap(),
            outcome: LoginOutcome::Disabled(FoundAccount {
                id: id(9001),
                dn: "CN=old".into(),
                label: "CORP\\old".into(),
                groups: Default::default(),
            }),
            chains: vec![],
        };
        let result = explain(&team(&[3], false, false), &[disabled]);
        assert!(!result.directory_grants);
        assert_eq!(
            result.reasons,
            vec!["login CORP\\old: directory account CORP\\old is disabled"]
        );

        let chain = GroupChain {
            target: id(3),
            steps: vec![step("CORP\\news", false), step("CORP\\g3", true)],
        };
        let result = explain(&team(&[3], true, false), &[active(&[1], vec![chain])]);
        assert!(result.member && result.manual && !result.directory_grants);
        assert!(
            result.reasons[1].contains("only through distribution group CORP\\news"),
            "{:?}",
            result.reasons
        );
    }
}
