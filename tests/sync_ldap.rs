//! End-to-end passes against a real OpenLDAP slapd (directory.kind: ldap),
//! through the real binary: the same guarantees as for Active Directory.

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::slapd::{Slapd, unique};
use common::teamsync::{Teamsync, change, changes};

fn slapd() -> &'static Slapd {
    Slapd::shared()
}

fn ldap(slapd: &Slapd) -> Teamsync {
    Teamsync::for_slapd(slapd, "", "")
}

#[test]
fn nested_groups_and_a_cycle_grant_teams_and_a_rerun_changes_nothing() {
    let s = slapd();
    let user = unique("u");
    let user_dn = s.add_user(&user);
    let (low, mid, top) = (unique("low"), unique("mid"), unique("top"));
    let low_dn = s.add_group(&low, &[&user_dn]);
    let mid_dn = s.add_group(&mid, &[&low_dn]);
    let top_dn = s.add_group(&top, &[&mid_dn]);
    // A cycle: top is also a member of low.
    s.add_member(&low_dn, &top_dn);
    // A self-member.
    let selfish = unique("self");
    let selfish_dn = s.add_group(&selfish, &[&user_dn]);
    s.add_member(&selfish_dn, &selfish_dn);

    let ts = ldap(s);
    ts.account("bot");
    ts.login("bot", &user);
    ts.team("release");
    ts.team("loop");
    ts.link("release", &top);
    ts.link("loop", &selfish_dn);
    let report = ts.sync(0);
    assert_eq!(
        changes(&report),
        vec![
            change("bot", "loop", "add"),
            change("bot", "release", "add")
        ]
    );
    let again = ts.sync(0);
    assert!(changes(&again).is_empty(), "{again}");
    assert_eq!(
        ts.members("release"),
        vec![("bot".to_owned(), "directory".to_owned())]
    );
}

#[test]
fn unique_names_posix_groups_and_a_group_of_five_thousand_members() {
    let s = slapd();
    let user = unique("u");
    let user_dn = s.add_user(&user);
    let crowd: Vec<String> = (0..4999).map(|i| format!("{}-{i}", unique("c"))).collect();
    let crowd_refs: Vec<&str> = crowd.iter().map(String::as_str).collect();
    let mut members = s.add_users(&crowd_refs);
    members.push(user_dn.clone());
    let member_refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let big = unique("big");
    s.add_group(&big, &member_refs);
    let uniq = unique("uniq");
    s.add_unique_group(&uniq, &[&user_dn]);
    let posix = unique("posix");
    s.add_posix_group(&posix, 40000, &[&user]);

    let ts = Teamsync::for_slapd(s, "    posix_groups: true\n", "");
    ts.account("bot");
    ts.login("bot", &user);
    for (team, group) in [("big", &big), ("uniq", &uniq), ("posix", &posix)] {
        ts.team(team);
        ts.link(team, group);
    }
    assert_eq!(
        changes(&ts.sync(0)),
        vec![
            change("bot", "big", "add"),
            change("bot", "posix", "add"),
            change("bot", "uniq", "add")
        ]
    );
}

#[test]
fn renames_and_moves_keep_links_and_pins() {
    let s = slapd();
    let user = unique("u");
    let user_dn = s.add_user(&user);
    let group = unique("grp");
    let group_dn = s.add_group(&group, &[&user_dn]);

    let ts = ldap(s);
    ts.account("bot");
    ts.login("bot", &user);
    ts.team("deploy");
    ts.link("deploy", &group_dn);
    assert_eq!(ts.sync(0)["added"], 1);

    // Rename and move both, staying under their bases.
    let groups_ou = s.add_ou_in(&s.groups_dn(), &unique("ou"));
    s.rename_entry(
        &group_dn,
        &format!("cn={}", unique("renamed")),
        Some(&groups_ou),
    );
    let people_ou = s.add_ou_in(&s.people_dn(), &unique("ou"));
    let new_user = unique("unew");
    s.rename_entry(&user_dn, &format!("uid={new_user}"), Some(&people_ou));
    let report = ts.sync(0);
    assert!(
        changes(&report).is_empty(),
        "renames changed memberships: {report}"
    );
    let shown = ts.run(&["account", "show", "bot", "--json"]).json();
    assert_eq!(shown["logins"][0]["label"], new_user.as_str());
}

#[test]
fn locked_and_deleted_accounts_lose_directory_teams_manual_ones_stay() {
    let s = slapd();
    let (locked, gone) = (unique("lk"), unique("gone"));
    let locked_dn = s.add_user(&locked);
    let gone_dn = s.add_user(&gone);
    let group = unique("grp");
    s.add_group(&group, &[&locked_dn, &gone_dn]);

    let ts = ldap(s);
    ts.account("locked");
    ts.login("locked", &locked);
    ts.account("gone");
    ts.login("gone", &gone);
    ts.team("deploy");
    ts.link("deploy", &group);
    ts.run(&["team", "add-member", "deploy", "locked"]).ok();
    assert_eq!(ts.sync(0)["added"], 2);

    s.lock_user(&locked_dn);
    s.delete_entry(&gone_dn);
    let report = ts.sync(0);
    assert_eq!(
        changes(&report),
        vec![
            change("gone", "deploy", "remove"),
            change("locked", "deploy", "remove")
        ]
    );
    let text = report["changes"].to_string();
    assert!(
        text.contains("disabled") && text.contains("not found"),
        "{text}"
    );
    assert_eq!(
        ts.members("deploy"),
        vec![("locked".to_owned(), "manual".to_owned())]
    );
}

#[test]
fn the_kind_is_detected_when_not_set_and_check_says_so() {
    let s = slapd();
    let user = unique("u");
    let user_dn = s.add_user(&user);
    let group = unique("grp");
    let group_dn = s.add_group(&group, &[&user_dn]);
    let ts = Teamsync::with_yaml(
        &format!(
            "directory:\n  url: {}\n  base_dn: {}\n  bind:\n    dn: {}\n    password_file: {}\n  tls:\n    ca_file: {}\n",
            s.ldaps_url(),
            s.base_dn(),
            s.admin_bind_dn(),
            s.admin_password_file().display(),
            s.ca_file().display()
        ),
        "",
    );
    // Without directory.kind a bare uid is ambiguous, a DN is not.
    ts.account("bot");
    assert_eq!(ts.run(&["login", "add", "bot", &user]).code, 2);
    ts.login("bot", &user_dn);
    ts.team("deploy");
    ts.link("deploy", &group_dn);
    let check = ts.run(&["check"]);
    check.ok();
    assert!(
        check.stdout.contains("kind:       ldap (detected"),
        "{}",
        check.stdout
    );
    assert_eq!(ts.sync(0)["added"], 1);
}

#[test]
fn unknown_groups_and_ad_forms_are_refused() {
    let s = slapd();
    let ts = ldap(s);
    ts.team("deploy");
    let run = ts.run(&["team", "link", "deploy", &unique("nosuch")]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no group"), "{}", run.stderr);
    ts.account("bot");
    assert_eq!(ts.run(&["login", "add", "bot", "CORP\\svc"]).code, 2);
}

#[test]
fn directory_down_exits_69_and_changes_nothing() {
    let s = Slapd::start();
    let user = unique("u");
    let user_dn = s.add_user(&user);
    let group = unique("grp");
    let group_dn = s.add_group(&group, &[&user_dn]);
    let ts = ldap(&s);
    ts.account("bot");
    ts.login("bot", &user);
    ts.team("deploy");
    ts.link("deploy", &group);
    assert_eq!(ts.sync(0)["added"], 1);

    s.remove_member(&group_dn, &user_dn);
    s.stop();
    let before = ts.store_bytes();
    ts.run(&["--sync-now"]).code(69);
    assert_eq!(ts.store_bytes(), before);
    s.restart();
    assert_eq!(
        changes(&ts.sync(0)),
        vec![change("bot", "deploy", "remove")]
    );
}

#[test]
fn a_deleted_linked_group_loses_its_members_only_after_a_second_pass_confirms() {
    let s = slapd();
    let user = unique("u");
    let user_dn = s.add_user(&user);
    let group = unique("grp");
    let group_dn = s.add_group(&group, &[&user_dn]);
    let ts = ldap(s);
    ts.account("bot");
    ts.login("bot", &user);
    ts.team("deploy");
    ts.link("deploy", &group);
    assert_eq!(ts.sync(0)["added"], 1);

    s.delete_entry(&group_dn);
    let first = ts.sync(0);
    assert!(changes(&first).is_empty(), "{first}");
    assert_eq!(first["held_teams"][0]["removals_waiting"], 1);
    let second = ts.sync(0);
    assert_eq!(changes(&second), vec![change("bot", "deploy", "remove")]);
}

#[test]
fn explain_shows_the_nesting_chain_and_the_lock() {
    let s = slapd();
    let (user, locked) = (unique("u"), unique("lk"));
    let user_dn = s.add_user(&user);
    let locked_dn = s.add_user(&locked);
    let (low, top) = (unique("low"), unique("top"));
    let low_dn = s.add_group(&low, &[&user_dn, &locked_dn]);
    s.add_group(&top, &[&low_dn]);
    s.lock_user(&locked_dn);
    let ts = ldap(s);
    ts.account("bot");
    ts.login("bot", &user);
    ts.account("old");
    ts.login("old", &locked);
    ts.team("prod");
    ts.link("prod", &top);
    ts.sync(0);

    let run = ts.run(&["explain", "bot", "prod"]);
    run.ok();
    assert!(
        run.stdout.contains("bot IS a member of prod"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("{low} -> {top}")),
        "{}",
        run.stdout
    );
    let json = ts.run(&["explain", "old", "prod", "--json"]).json();
    assert_eq!(json[0]["member"], false);
    assert!(
        json[0]["reasons"].to_string().contains("is disabled"),
        "{json}"
    );
}

#[test]
fn with_many_logins_all_accounts_are_read_in_one_dump_with_the_same_answers() {
    let s = slapd();
    // 200 logins and more: teamsync reads every account with one paged search.
    let crowd: Vec<String> = (0..205).map(|i| format!("{}-{i}", unique("m"))).collect();
    let refs: Vec<&str> = crowd.iter().map(String::as_str).collect();
    let dns = s.add_users(&refs);
    let (low, top) = (unique("low"), unique("top"));
    let low_dn = s.add_group(&low, &[&dns[0], &dns[1], &dns[2]]);
    s.add_group(&top, &[&low_dn]);
    s.lock_user(&dns[1]);

    let ts = ldap(s);
    for (i, uid) in crowd.iter().enumerate() {
        let account = format!("bot{i:03}");
        ts.account(&account);
        // One login by DN, the rest by uid.
        let login = if i == 2 { dns[2].clone() } else { uid.clone() };
        ts.login(&account, &login);
    }
    ts.team("prod");
    ts.link("prod", &top);
    let report = ts.sync(0);
    assert_eq!(
        changes(&report),
        vec![
            change("bot000", "prod", "add"),
            change("bot002", "prod", "add")
        ],
        "bot001 is locked; the others are in no linked group"
    );
    assert!(report["ldap_requests"].as_u64().unwrap() < 20, "{report}");
}
