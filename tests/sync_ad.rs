//! End-to-end reconcile passes against a real Samba AD domain controller,
//! through the real binary. Every test seeds objects with unique names on
//! the shared DC, and keeps its own store.

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::samba::{SambaDc, unique};
use common::teamsync::{Teamsync, change, changes};

fn dc() -> &'static SambaDc {
    SambaDc::shared()
}

/// CORP\name
fn corp(name: &str) -> String {
    format!("CORP\\{name}")
}

#[test]
fn nested_groups_three_deep_grant_the_team_and_a_rerun_changes_nothing() {
    let dc = dc();
    let (top, mid, low, user) = (unique("top"), unique("mid"), unique("low"), unique("u"));
    let top_dn = dc.add_security_group(&top);
    let mid_dn = dc.add_security_group(&mid);
    let low_dn = dc.add_security_group(&low);
    let user_dn = dc.add_user(&user);
    dc.add_member(&top_dn, &mid_dn);
    dc.add_member(&mid_dn, &low_dn);
    dc.add_member(&low_dn, &user_dn);

    let ts = Teamsync::new(dc);
    ts.account("deploy-bot");
    ts.login("deploy-bot", &corp(&user));
    ts.team("release");
    ts.link("release", &corp(&top));

    let report = ts.sync(0);
    assert_eq!(report["added"], 1);
    assert_eq!(report["removed"], 0);
    assert_eq!(
        changes(&report),
        vec![change("deploy-bot", "release", "add")]
    );
    let reason = report["changes"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&top),
        "reason names the linked group: {reason}"
    );
    assert_eq!(
        ts.members("release"),
        vec![("deploy-bot".to_owned(), "directory".to_owned())]
    );

    let again = ts.sync(0);
    assert_eq!(again["added"], 0);
    assert_eq!(again["removed"], 0);
    assert!(again["changes"].as_array().unwrap().is_empty());
}

#[test]
fn the_primary_group_counts_although_member_of_omits_it() {
    let dc = dc();
    let (group, user) = (unique("prim"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let user_dn = dc.add_user(&user);
    dc.set_primary_group(&user_dn, &group_dn);
    let member_of = dc.search(&user_dn, "base", "(objectClass=*)", &["memberOf"]);
    assert!(
        !member_of.contains(&group_dn),
        "precondition: memberOf omits the primary group"
    );

    let ts = Teamsync::new(dc);
    ts.account("bot");
    ts.login("bot", &corp(&user));
    ts.team("builders");
    ts.link("builders", &group_dn);
    assert_eq!(changes(&ts.sync(0)), vec![change("bot", "builders", "add")]);
}

#[test]
fn distribution_groups_can_neither_be_linked_nor_grant_anything() {
    let dc = dc();
    let (dist, sec, user) = (unique("dist"), unique("sec"), unique("u"));
    let dist_dn = dc.add_distribution_group(&dist);
    let sec_dn = dc.add_security_group(&sec);
    let user_dn = dc.add_user(&user);
    dc.add_member(&dist_dn, &user_dn);

    let ts = Teamsync::new(dc);
    ts.team("mail");
    let refused = ts.run(&["team", "link", "mail", &corp(&dist)]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("distribution group"),
        "{}",
        refused.stderr
    );
    let unknown = ts.run(&["team", "link", "mail", &corp(&unique("nosuch"))]);
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("no group"), "{}", unknown.stderr);

    // The user is only in the distribution group: the security team stays empty.
    ts.account("bot");
    ts.login("bot", &corp(&user));
    ts.team("secure");
    ts.link("secure", &sec_dn);
    assert!(changes(&ts.sync(0)).is_empty());
}

#[test]
fn a_disabled_ad_account_loses_its_directory_teams_but_not_manual_ones() {
    let dc = dc();
    let (group, user) = (unique("grp"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);

    let ts = Teamsync::new(dc);
    ts.account("bot");
    ts.login("bot", &corp(&user));
    ts.team("deploy");
    ts.team("ops");
    ts.link("deploy", &corp(&group));
    ts.link("ops", &corp(&group));
    // A manual membership in a linked team, and one in an unlinked team.
    ts.run(&["team", "add-member", "ops", "bot"]).ok();
    ts.team("handmade");
    ts.run(&["team", "add-member", "handmade", "bot"]).ok();
    assert_eq!(ts.sync(0)["added"], 2);

    dc.disable_user(&user_dn);
    let report = ts.sync(0);
    assert_eq!(
        changes(&report),
        vec![
            change("bot", "deploy", "remove"),
            change("bot", "ops", "remove")
        ]
    );
    let reason = report["changes"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("disabled"), "{reason}");
    assert!(ts.members("deploy").is_empty());
    assert_eq!(ts.members("ops"), vec![("bot".into(), "manual".into())]);
    assert_eq!(
        ts.members("handmade"),
        vec![("bot".into(), "manual".into())]
    );
}

#[test]
fn a_deleted_ad_account_loses_its_teams() {
    let dc = dc();
    let (group, user) = (unique("grp"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);

    let ts = Teamsync::new(dc);
    ts.account("bot");
    ts.login("bot", &corp(&user));
    ts.team("deploy");
    ts.link("deploy", &corp(&group));
    assert_eq!(ts.sync(0)["added"], 1);

    dc.delete_entry(&user_dn);
    let report = ts.sync(0);
    assert_eq!(changes(&report), vec![change("bot", "deploy", "remove")]);
    let reason = report["changes"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("not found"), "{reason}");
}

#[test]
fn renaming_and_moving_keep_links_and_a_reused_name_inherits_nothing() {
    let dc = dc();
    let (group, other, user) = (unique("grp"), unique("oth"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let other_dn = dc.add_security_group(&other);
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);

    let ts = Teamsync::new(dc);
    ts.account("bot");
    ts.login("bot", &corp(&user));
    ts.team("deploy");
    ts.team("other");
    ts.link("deploy", &corp(&group));
    ts.link("other", &corp(&other));
    assert_eq!(changes(&ts.sync(0)), vec![change("bot", "deploy", "add")]);

    // Rename and move the group; rename the user (DN and sAMAccountName).
    let ou = dc.add_ou(&unique("ou"));
    let renamed_group = unique("grpnew");
    let new_group_dn = dc.rename_entry(&group_dn, &format!("CN={renamed_group}"), Some(&ou));
    dc.modify_ldif(&format!(
        "dn: {new_group_dn}\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: {renamed_group}\n"
    ));
    let renamed_user = unique("unew");
    let new_user_dn = dc.rename_entry(&user_dn, &format!("CN={renamed_user}"), Some(&ou));
    dc.modify_ldif(&format!(
        "dn: {new_user_dn}\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: {renamed_user}\n-\n\
         replace: userPrincipalName\nuserPrincipalName: {renamed_user}@corp.example.com\n"
    ));
    // A new account takes the old name, in the other linked group.
    let impostor_dn = dc.add_user(&user);
    dc.add_member(&other_dn, &impostor_dn);

    let report = ts.sync(0);
    assert!(
        changes(&report).is_empty(),
        "renames changed memberships: {report}"
    );
    assert_eq!(
        ts.members("deploy"),
        vec![("bot".to_owned(), "directory".to_owned())]
    );
    assert!(ts.members("other").is_empty());
    let shown = ts.run(&["account", "show", "bot", "--json"]);
    let login = &shown.ok().json()["logins"][0];
    assert_eq!(login["identity"], corp(&user));
    assert!(
        login["label"].as_str().unwrap().contains(&renamed_user),
        "{login}"
    );
}

#[test]
fn filter_values_are_escaped_so_wildcards_and_parentheses_match_exactly() {
    let dc = dc();
    let group = unique("grp");
    let group_dn = dc.add_security_group(&group);
    let build = unique("svcb");
    let build_dn = dc.add_user(&build);
    dc.add_member(&group_dn, &build_dn);
    let paren = format!("{} (prod)", unique("p"));
    let paren_dn = dc.add_user(&paren);
    dc.add_member(&group_dn, &paren_dn);

    let ts = Teamsync::new(dc);
    ts.team("deploy");
    ts.link("deploy", &corp(&group));
    // `svc-build…` with its tail replaced by `*` must not match svc-build….
    let wildcard = format!("{}*", &build[..build.len() - 2]);
    ts.account("wild");
    ts.login("wild", &corp(&wildcard));
    ts.account("paren");
    ts.login("paren", &corp(&paren));

    let report = ts.sync(0);
    assert_eq!(changes(&report), vec![change("paren", "deploy", "add")]);
}

#[test]
fn an_account_with_two_logins_gets_the_union_of_their_groups() {
    let dc = dc();
    let (g1, g2, u1, u2) = (unique("g"), unique("g"), unique("u"), unique("u"));
    let g1_dn = dc.add_security_group(&g1);
    let g2_dn = dc.add_security_group(&g2);
    let u1_dn = dc.add_user(&u1);
    let u2_dn = dc.add_user(&u2);
    dc.add_member(&g1_dn, &u1_dn);
    dc.add_member(&g2_dn, &u2_dn);

    let ts = Teamsync::new(dc);
    ts.account("bot");
    ts.login("bot", &corp(&u1));
    // The second login by UPN.
    ts.login("bot", &format!("{u2}@corp.example.com"));
    ts.team("one");
    ts.team("two");
    ts.link("one", &corp(&g1));
    ts.link("two", &g2_dn);
    assert_eq!(
        changes(&ts.sync(0)),
        vec![change("bot", "one", "add"), change("bot", "two", "add")]
    );
}

#[test]
fn a_login_that_cannot_be_read_leaves_its_account_alone_and_exits_1() {
    let dc = dc();
    let (group, user) = (unique("grp"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);

    let ts = Teamsync::new(dc);
    ts.account("bot");
    ts.login("bot", &corp(&user));
    ts.team("deploy");
    ts.link("deploy", &corp(&group));
    assert_eq!(ts.sync(0)["added"], 1);

    // The AD account leaves the group, but a second login of the same
    // service account names a domain this directory cannot answer for.
    dc.remove_member(&group_dn, &user_dn);
    ts.login("bot", "OTHERDOM\\someone");
    let report = ts.sync(1);
    assert!(changes(&report).is_empty(), "{report}");
    let failed = report["failed_logins"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"].as_str().unwrap().contains("OTHERDOM"));
    assert_eq!(
        ts.members("deploy"),
        vec![("bot".to_owned(), "directory".to_owned())]
    );

    ts.run(&["login", "remove", "bot", "OTHERDOM\\someone"])
        .ok();
    assert_eq!(
        changes(&ts.sync(0)),
        vec![change("bot", "deploy", "remove")]
    );
}

#[test]
fn the_removal_guard_refuses_mass_removals_unless_allowed() {
    let dc = dc();
    let (group, u1, u2) = (unique("grp"), unique("u"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let u1_dn = dc.add_user(&u1);
    let u2_dn = dc.add_user(&u2);
    dc.add_member(&group_dn, &u1_dn);
    dc.add_member(&group_dn, &u2_dn);

    let ts = Teamsync::with_directory(
        dc,
        &dc.ldaps_url(),
        dc.ca_file(),
        "sync:\n  max_removals: 1\n",
    );
    for (account, user) in [("a", &u1), ("b", &u2)] {
        ts.account(account);
        ts.login(account, &corp(user));
    }
    ts.team("deploy");
    ts.link("deploy", &corp(&group));
    assert_eq!(ts.sync(0)["added"], 2);

    dc.remove_member(&group_dn, &u1_dn);
    dc.remove_member(&group_dn, &u2_dn);
    let refused = ts.run(&["--sync-now"]);
    refused.code(75);
    assert!(refused.stdout.contains("refused"), "{}", refused.stdout);
    assert_eq!(
        refused.stdout.matches("[refused]").count(),
        2,
        "{}",
        refused.stdout
    );
    assert_eq!(ts.members("deploy").len(), 2);

    let allowed = ts.run(&["--sync-now", "--allow-removals", "--json"]);
    allowed.ok();
    assert_eq!(allowed.json()["removed"], 2);
    assert!(ts.members("deploy").is_empty());
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let dc = dc();
    let (group, user) = (unique("grp"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);

    let ts = Teamsync::new(dc);
    ts.account("bot");
    ts.login("bot", &corp(&user));
    ts.team("deploy");
    ts.link("deploy", &corp(&group));
    let before = ts.store_bytes();
    let run = ts.run(&["--sync-now", "--dry-run"]);
    run.ok();
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    assert!(run.stdout.contains("bot add team deploy"), "{}", run.stdout);
    assert_eq!(ts.store_bytes(), before, "a dry run wrote to the store");
    assert_eq!(ts.sync(0)["added"], 1);
}

#[test]
fn starttls_works_like_ldaps() {
    let dc = dc();
    let (group, user) = (unique("grp"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);

    let ts = Teamsync::with_directory(dc, &dc.starttls_url(), dc.ca_file(), "");
    ts.account("bot");
    ts.login("bot", &corp(&user));
    ts.team("deploy");
    ts.link("deploy", &corp(&group));
    assert_eq!(ts.sync(0)["added"], 1);
}

#[test]
fn sid_logins_and_sid_group_links_work() {
    let dc = dc();
    let (group, user) = (unique("grp"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);

    let ts = Teamsync::new(dc);
    ts.account("bot");
    ts.login("bot", &dc.object_sid(&user_dn));
    ts.team("deploy");
    ts.link("deploy", &dc.object_sid(&group_dn));
    assert_eq!(ts.sync(0)["added"], 1);
    // Unlinking by name matches the stored link without asking the directory.
    ts.run(&["team", "unlink", "deploy", &group]).ok();
    assert_eq!(
        changes(&ts.sync(0)),
        vec![change("bot", "deploy", "remove")]
    );
}

#[test]
fn a_deleted_linked_group_loses_its_members_only_after_a_second_pass_confirms() {
    let dc = dc();
    let (group, user) = (unique("grp"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);

    let ts = Teamsync::new(dc);
    ts.account("bot");
    ts.login("bot", &corp(&user));
    ts.team("deploy");
    ts.link("deploy", &corp(&group));
    assert_eq!(ts.sync(0)["added"], 1);

    dc.delete_entry(&group_dn);
    let first = ts.sync(0);
    assert!(changes(&first).is_empty(), "{first}");
    let held = &first["held_teams"][0];
    assert_eq!(held["team"], "deploy");
    assert_eq!(held["removals_waiting"], 1);
    assert_eq!(ts.members("deploy").len(), 1);

    let second = ts.sync(0);
    assert_eq!(changes(&second), vec![change("bot", "deploy", "remove")]);
    assert!(second["held_teams"].as_array().unwrap().is_empty());
}
