//! The pure heart of a pass: given what the directory said and what the store
//! holds, decide which directory-sourced memberships to add and remove.
//!
//! No I/O and no clock: the same inputs always give the same plan, in the
//! same order, which is what `--dry-run` prints and what a pass applies.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{
    AccountInput, AccountName, Action, Change, LinkedGroup, LoginOutcome, ObjectId, ResolvedLogin,
    TeamName,
};

/// How many removals a pass may make before it refuses to apply anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemovalPolicy {
    pub max_removals: usize,
    /// `--allow-removals`: lift the limit for one run.
    pub allow_any: bool,
}

/// A service account whose memberships were left alone because at least one
/// of its logins could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldAccount {
    pub account: AccountName,
    /// `login: what went wrong`, one per failed login.
    pub failures: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Sorted by account, team, action.
    pub changes: Vec<Change>,
    pub held: Vec<HeldAccount>,
    /// Removals not made because their team is held (a linked group went
    /// missing in this pass only): team, why, removals waiting.
    pub held_teams: Vec<(TeamName, String, usize)>,
    /// Set when the removals exceed the policy: nothing may be applied.
    pub refused_removals: Option<usize>,
}

impl Plan {
    pub fn added(&self) -> usize {
        self.count(Action::Add)
    }

    pub fn removed(&self) -> usize {
        self.count(Action::Remove)
    }

    fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    pub fn is_refused(&self) -> bool {
        self.refused_removals.is_some()
    }
}

/// Decides the directory-sourced memberships every account should have and
/// the changes that get the store there.
///
/// `current` holds the directory-sourced memberships the store has now;
/// manual memberships are never passed in, so they can never be removed.
pub fn plan(
    accounts: &[AccountInput],
    links: &[LinkedGroup],
    current: &BTreeSet<(AccountName, TeamName)>,
    policy: RemovalPolicy,
) -> Plan {
    plan_holding(accounts, links, current, policy, &BTreeMap::new())
}

/// [`plan`], but making no removal from the teams in `held_teams` (team ->
/// why): a linked group that vanished is only believed gone when a second
/// pass confirms it.
pub fn plan_holding(
    accounts: &[AccountInput],
    links: &[LinkedGroup],
    current: &BTreeSet<(AccountName, TeamName)>,
    policy: RemovalPolicy,
    held_teams: &BTreeMap<TeamName, String>,
) -> Plan {
    let mut current_by_account: BTreeMap<&AccountName, BTreeSet<&TeamName>> = BTreeMap::new();
    for (account, team) in current {
        current_by_account.entry(account).or_default().insert(team);
    }

    let links_by_group = LinksByGroup::new(links);
    let mut changes = BTreeSet::new();
    let mut held = Vec::new();
    let mut seen = BTreeSet::new();

    for input in accounts {
        seen.insert(&input.account);
        let failures = failed_logins(&input.logins);
        if !failures.is_empty() {
            held.push(HeldAccount {
                account: input.account.clone(),
                failures,
            });
            continue;
        }
        let desired = links_by_group.desired_teams(&input.logins);
        let have = current_by_account
            .get(&input.account)
            .cloned()
            .unwrap_or_default();
        for (team, reason) in &desired {
            if !have.contains(team) {
                changes.insert(Change {
                    account: input.account.clone(),
                    team: (*team).clone(),
                    action: Action::Add,
                    reason: reason.clone(),
                });
            }
        }
        for team in have {
            if !desired.contains_key(team) {
                changes.insert(Change {
                    account: input.account.clone(),
                    team: team.clone(),
                    action: Action::Remove,
                    reason: removal_reason(&input.logins, team, links),
                });
            }
        }
    }

    // Memberships of accounts the caller did not describe cannot be justified.
    for (account, teams) in &current_by_account {
        if seen.contains(account) {
            continue;
        }
        for team in teams {
            changes.insert(Change {
                account: (*account).clone(),
                team: (*team).clone(),
                action: Action::Remove,
                reason: "no external login linked".to_owned(),
            });
        }
    }

    // The guard weighs every removal the directory asks for, held ones
    // included: a wrong base DN makes the linked groups vanish too, and must
    // be refused at once, not one pass later.
    let removals = changes
        .iter()
        .filter(|c| c.action == Action::Remove)
        .count();
    let refused_removals =
        (!policy.allow_any && removals > policy.max_removals).then_some(removals);
    let mut waiting: BTreeMap<TeamName, usize> = BTreeMap::new();
    let changes: Vec<Change> = changes
        .into_iter()
        .filter(|change| {
            let held = refused_removals.is_none()
                && change.action == Action::Remove
                && held_teams.contains_key(&change.team);
            if held {
                *waiting.entry(change.team.clone()).or_default() += 1;
            }
            !held
        })
        .collect();
    let held_teams = held_teams
        .iter()
        .filter_map(|(team, why)| Some((team.clone(), why.clone(), *waiting.get(team)?)))
        .collect();
    Plan {
        changes,
        held,
        held_teams,
        refused_removals,
    }
}

fn failed_logins(logins: &[ResolvedLogin]) -> Vec<String> {
    logins
        .iter()
        .filter_map(|login| match &login.outcome {
            LoginOutcome::Failed(why) => Some(format!("{}: {why}", login.identity)),
            _ => None,
        })
        .collect()
}

/// The links of each linked group, as indices into `links`.
struct LinksByGroup<'a> {
    links: &'a [LinkedGroup],
    by_group: HashMap<&'a ObjectId, Vec<usize>>,
}

impl<'a> LinksByGroup<'a> {
    fn new(links: &'a [LinkedGroup]) -> LinksByGroup<'a> {
        let mut by_group: HashMap<&ObjectId, Vec<usize>> = HashMap::new();
        for (index, link) in links.iter().enumerate() {
            by_group.entry(&link.group).or_default().push(index);
        }
        LinksByGroup { links, by_group }
    }

    /// Every team the account's active logins grant, with the first reason
    /// found in `links` order. Walks the account's groups (tens) rather than
    /// every link (hundreds) for each account.
    fn desired_teams(&self, logins: &[ResolvedLogin]) -> BTreeMap<&'a TeamName, String> {
        let mut desired = BTreeMap::new();
        for login in logins {
            let LoginOutcome::Active(found) = &login.outcome else {
                continue;
            };
            let mut matched: Vec<usize> = found
                .groups
                .iter()
                .filter_map(|group| self.by_group.get(group))
                .flatten()
                .copied()
                .collect();
            matched.sort_unstable();
            for link in matched.into_iter().map(|index| &self.links[index]) {
                desired
                    .entry(&link.team)
                    .or_insert_with(|| format!("{} is in {}", found.label, link.label));
            }
        }
        desired
    }
}

fn removal_reason(logins: &[ResolvedLogin], team: &TeamName, links: &[LinkedGroup]) -> String {
    if logins.is_empty() {
        return "no external login linked".to_owned();
    }
    if !links.iter().any(|link| &link.team == team) {
        return "team is no longer linked to a directory group".to_owned();
    }
    let states: Vec<String> = logins
        .iter()
        .map(|login| match &login.outcome {
            LoginOutcome::Active(found) => {
                format!("{} is in no group linked to {team}", found.label)
            }
            LoginOutcome::Disabled(found) => {
                format!("directory account {} is disabled", found.label)
            }
            LoginOutcome::NotFound => {
                format!("directory account for {} not found", login.identity)
            }
            // Accounts with a failed login are held before reasons are asked for.
            LoginOutcome::Failed(why) => format!("{} could not be read: {why}", login.identity),
        })
        .collect();
    states.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FoundAccount, Identity, ObjectId};
    use proptest::prelude::*;

    fn sid(rid: u32) -> ObjectId {
        ObjectId::parse(&format!("S-1-5-21-1-2-3-{rid}")).unwrap()
    }
    fn account(name: &str) -> AccountName {
        AccountName::new(name).unwrap()
    }
    fn team(name: &str) -> TeamName {
        TeamName::new(name).unwrap()
    }
    fn link(team_name: &str, rid: u32) -> LinkedGroup {
        LinkedGroup {
            team: team(team_name),
            group: sid(rid),
            label: format!("CORP\\g{rid}"),
        }
    }
    fn found(name: &str, groups: &[u32]) -> FoundAccount {
        FoundAccount {
            id: sid(5000),
            dn: format!("CN={name},CN=Users,DC=corp"),
            label: format!("CORP\\{name}"),
            groups: groups.iter().map(|rid| sid(*rid)).collect(),
        }
    }
    fn login(name: &str, outcome: LoginOutcome) -> ResolvedLogin {
        ResolvedLogin {
            identity: Identity::parse_any(&format!("CORP\\{name}")).unwrap(),
            outcome,
        }
    }
    fn input(name: &str, logins: Vec<ResolvedLogin>) -> AccountInput {
        AccountInput {
            account: account(name),
            logins,
        }
    }
    fn current(pairs: &[(&str, &str)]) -> BTreeSet<(AccountName, TeamName)> {
        pairs.iter().map(|(a, t)| (account(a), team(t))).collect()
    }
    const LAX: RemovalPolicy = RemovalPolicy {
        max_removals: 1000,
        allow_any: false,
    };
    fn summary(plan: &Plan) -> Vec<(String, String, Action)> {
        plan.changes
            .iter()
            .map(|c| (c.account.to_string(), c.team.to_string(), c.action))
            .collect()
    }

    #[test]
    fn adds_teams_of_linked_groups_and_removes_the_rest() {
        let accounts = [input(
            "bot",
            vec![login("svc", LoginOutcome::Active(found("svc", &[10, 11])))],
        )];
        let links = [link("deploy", 10), link("ops", 12), link("audit", 11)];
        let plan = plan(
            &accounts,
            &links,
            &current(&[("bot", "ops"), ("bot", "audit")]),
            LAX,
        );
        assert_eq!(
            summary(&plan),
            vec![
                ("bot".into(), "deploy".into(), Action::Add),
                ("bot".into(), "ops".into(), Action::Remove),
            ]
        );
        assert_eq!(plan.changes[0].reason, "CORP\\svc is in CORP\\g10");
        assert_eq!(
            plan.changes[1].reason,
            "CORP\\svc is in no group linked to ops"
        );
    }

    #[test]
    fn the_reason_names_the_first_link_of_the_team_whatever_the_group_order() {
        // Two groups both grant "deploy"; the reason is the first link in
        // link order, not the first group in the account's group order.
        let accounts = [input(
            "bot",
            vec![login("svc", LoginOutcome::Active(found("svc", &[10, 11])))],
        )];
        let links = [link("deploy", 11), link("deploy", 10)];
        let plan = plan(&accounts, &links, &current(&[]), LAX);
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].reason, "CORP\\svc is in CORP\\g11");
    }

    #[test]
    fn a_second_plan_after_applying_the_first_is_empty() {
        let accounts = [input(
            "bot",
            vec![login("svc", LoginOutcome::Active(found("svc", &[10])))],
        )];
        let links = [link("deploy", 10)];
        let first = plan(&accounts, &links, &current(&[]), LAX);
        let applied: BTreeSet<_> = first
            .changes
            .iter()
            .map(|c| (c.account.clone(), c.team.clone()))
            .collect();
        assert!(plan(&accounts, &links, &applied, LAX).changes.is_empty());
    }

    #[test]
    fn disabled_and_missing_accounts_lose_their_directory_teams() {
        let accounts = [
            input(
                "a",
                vec![login("a", LoginOutcome::Disabled(found("a", &[])))],
            ),
            input("b", vec![login("b", LoginOutcome::NotFound)]),
        ];
        let links = [link("deploy", 10)];
        let plan = plan(
            &accounts,
            &links,
            &current(&[("a", "deploy"), ("b", "deploy")]),
            LAX,
        );
        assert_eq!(plan.removed(), 2);
        assert_eq!(
            plan.changes[0].reason,
            "directory account CORP\\a is disabled"
        );
        assert_eq!(
            plan.changes[1].reason,
            "directory account for CORP\\b not found"
        );
    }

    #[test]
    fn a_failed_login_holds_the_whole_account() {
        let accounts = [input(
            "bot",
            vec![
                login("ok", LoginOutcome::Active(found("ok", &[10]))),
                login("bad", LoginOutcome::Failed("insufficient access".into())),
            ],
        )];
        let links = [link("deploy", 10), link("ops", 11)];
        let plan = plan(&accounts, &links, &current(&[("bot", "ops")]), LAX);
        assert!(plan.changes.is_empty());
        assert_eq!(plan.held.len(), 1);
        assert_eq!(
            plan.held[0].failures,
            vec!["CORP\\bad: insufficient access"]
        );
    }

    #[test]
    fn groups_of_several_logins_are_united() {
        let accounts = [input(
            "bot",
            vec![
                login("one", LoginOutcome::Active(found("one", &[10]))),
                login("two", LoginOutcome::Active(found("two", &[11]))),
                login("off", LoginOutcome::Disabled(found("off", &[]))),
            ],
        )];
        let links = [link("deploy", 10), link("ops", 11)];
        let plan = plan(&accounts, &links, &current(&[]), LAX);
        assert_eq!(plan.added(), 2);
    }

    #[test]
    fn a_team_linked_to_several_groups_is_granted_by_any() {
        let accounts = [input(
            "bot",
            vec![login("svc", LoginOutcome::Active(found("svc", &[11])))],
        )];
        let links = [link("deploy", 10), link("deploy", 11)];
        let plan = plan(&accounts, &links, &current(&[]), LAX);
        assert_eq!(
            summary(&plan),
            vec![("bot".into(), "deploy".into(), Action::Add)]
        );
    }

    #[test]
    fn memberships_of_an_unlinked_team_or_a_login_less_account_go() {
        let accounts = [input("bot", vec![])];
        let plan = plan(
            &accounts,
            &[],
            &current(&[("bot", "old"), ("ghost", "old")]),
            LAX,
        );
        assert_eq!(plan.removed(), 2);
        assert!(
            plan.changes
                .iter()
                .all(|c| c.reason == "no external login linked")
        );
    }

    #[test]
    fn removals_beyond_the_limit_refuse_the_plan_unless_allowed() {
        let accounts = [input("bot", vec![login("svc", LoginOutcome::NotFound)])];
        let links = [link("a", 1), link("b", 2), link("c", 3)];
        let have = current(&[("bot", "a"), ("bot", "b"), ("bot", "c")]);
        let strict = RemovalPolicy {
            max_removals: 2,
            allow_any: false,
        };
        assert_eq!(
            plan(&accounts, &links, &have, strict).refused_removals,
            Some(3)
        );
        let exact = RemovalPolicy {
            max_removals: 3,
            allow_any: false,
        };
        assert_eq!(plan(&accounts, &links, &have, exact).refused_removals, None);
        let allowed = RemovalPolicy {
            max_removals: 0,
            allow_any: true,
        };
        assert!(!plan(&accounts, &links, &have, allowed).is_refused());
    }

    #[test]
    fn removals_from_a_held_team_wait_but_adds_and_other_teams_go_on() {
        let accounts = [input(
            "bot",
            vec![login("svc", LoginOutcome::Active(found("svc", &[11])))],
        )];
        let links = [link("gone", 10), link("gone", 11), link("ops", 12)];
        let have = current(&[("bot", "ops"), ("old", "gone")]);
        let held: BTreeMap<TeamName, String> =
            [(team("gone"), "linked group CORP\\g10 vanished".to_owned())].into();
        let plan = plan_holding(&accounts, &links, &have, LAX, &held);
        assert_eq!(
            summary(&plan),
            vec![
                ("bot".into(), "gone".into(), Action::Add),
                ("bot".into(), "ops".into(), Action::Remove),
            ]
        );
        assert_eq!(
            plan.held_teams,
            vec![(team("gone"), held[&team("gone")].clone(), 1)]
        );
    }

    fn outcome_strategy() -> impl Strategy<Value = LoginOutcome> {
        prop_oneof![
            prop::collection::btree_set(0u32..8, 0..5).prop_map(|rids| {
                LoginOutcome::Active(FoundAccount {
                    id: sid(9000),
                    dn: "CN=x".into(),
                    label: "CORP\\x".into(),
                    groups: rids.into_iter().map(sid).collect(),
                })
            }),
            Just(LoginOutcome::NotFound),
            Just(LoginOutcome::Failed("denied".into())),
        ]
    }

    proptest! {
        /// Applying a plan and planning again yields nothing, whatever the inputs,
        /// and held accounts are never touched.
        #[test]
        fn plans_converge_and_leave_held_accounts_alone(
            outcomes in prop::collection::vec(prop::collection::vec(outcome_strategy(), 0..3), 1..4),
            link_rids in prop::collection::vec((0usize..3, 0u32..8), 0..6),
            have in prop::collection::btree_set((0usize..4, 0usize..3), 0..8),
        ) {
            let accounts: Vec<AccountInput> = outcomes
                .into_iter()
                .enumerate()
                .map(|(i, outcomes)| input(
                    &format!("acct{i}"),
                    outcomes.into_iter().map(|o| login("x", o)).collect(),
                ))
                .collect();
            let links: Vec<LinkedGroup> = link_rids
                .into_iter()
                .map(|(t, rid)| link(&format!("team{t}"), rid))
                .collect();
            let have: BTreeSet<(AccountName, TeamName)> = have
                .into_iter()
                .map(|(a, t)| (account(&format!("acct{a}")), team(&format!("team{t}"))))
                .collect();
            let first = plan(&accounts, &links, &have, LAX);
            let held: BTreeSet<&AccountName> = first.held.iter().map(|h| &h.account).collect();
            for change in &first.changes {
                prop_assert!(!held.contains(&change.account));
            }
            let mut after = have.clone();
            for change in &first.changes {
                let key = (change.account.clone(), change.team.clone());
                match change.action {
                    Action::Add => prop_assert!(after.insert(key)),
                    Action::Remove => prop_assert!(after.remove(&key)),
                }
            }
            prop_assert!(plan(&accounts, &links, &after, LAX).changes.is_empty());
        }
    }
}
