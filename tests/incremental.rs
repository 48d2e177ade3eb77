//! A pass that finds nothing changed stops after two requests past the
//! bind and writes no membership; any change in the directory or the store
//! brings the full pass back. Against a real Samba DC and slapd, each its
//! own so that no other test moves their change counters.

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::samba::{SambaDc, unique};
use common::slapd::Slapd;
use common::teamsync::{Teamsync, change, changes};

/// The bind, then the change position (rootDSE and one read).
const UNCHANGED_PASS_REQUESTS: u64 = 1 + 2;

fn memberships(ts: &Teamsync) -> i64 {
    let db = rusqlite::Connection::open(&ts.store).unwrap();
    db.query_row("SELECT count(*) FROM memberships", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn active_directory_passes_with_nothing_changed_cost_two_requests() {
    let dc = SambaDc::start();
    let (group, user) = (unique("grp"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);
    let ts = Teamsync::new(&dc);
    ts.account("bot");
    ts.login("bot", &format!("CORP\\{user}"));
    ts.team("deploy");
    ts.link("deploy", &format!("CORP\\{group}"));

    let full = ts.sync(0);
    assert_eq!(full["unchanged"], false);
    assert_eq!(full["added"], 1);
    // The first bind may itself touch the directory (lastLogonTimestamp);
    // from then on, passes with nothing changed must be cheap.
    let mut second = ts.sync(0);
    if second["unchanged"] == false {
        second = ts.sync(0);
    }
    assert_eq!(second["unchanged"], true, "{second}");
    assert_eq!(second["ldap_requests"], UNCHANGED_PASS_REQUESTS, "{second}");
    assert_eq!(memberships(&ts), 1);

    // A change in the directory brings a full pass back.
    dc.remove_member(&group_dn, &user_dn);
    let after = ts.sync(0);
    assert_eq!(after["unchanged"], false);
    assert_eq!(changes(&after), vec![change("bot", "deploy", "remove")]);

    // So does a change in the store.
    let settled = ts.sync(0);
    assert_eq!(settled["unchanged"], true, "{settled}");
    dc.add_member(&group_dn, &user_dn);
    ts.team("ops");
    let moved = ts.sync(0);
    assert_eq!(moved["unchanged"], false);
}

#[test]
fn ldap_passes_with_nothing_changed_cost_two_requests() {
    let s = Slapd::start();
    let user = unique("u");
    let user_dn = s.add_user(&user);
    let group = unique("grp");
    s.add_group(&group, &[&user_dn]);
    let ts = Teamsync::for_slapd(&s, "", "");
    ts.account("bot");
    ts.login("bot", &user);
    ts.team("deploy");
    ts.link("deploy", &group);

    assert_eq!(ts.sync(0)["added"], 1);
    let second = ts.sync(0);
    assert_eq!(second["unchanged"], true, "{second}");
    assert_eq!(second["ldap_requests"], UNCHANGED_PASS_REQUESTS, "{second}");

    // A login added by the admin changes the store: full pass.
    ts.account("other");
    let other = unique("o");
    s.add_user(&other);
    ts.login("other", &other);
    assert_eq!(ts.sync(0)["unchanged"], false);

    // A change in the directory moves contextCSN: full pass.
    s.lock_user(&user_dn);
    let after = ts.sync(0);
    assert_eq!(after["unchanged"], false);
    assert_eq!(changes(&after), vec![change("bot", "deploy", "remove")]);
}

#[test]
fn a_full_pass_runs_anyway_once_full_every_has_passed() {
    let s = Slapd::start();
    let user = unique("u");
    let user_dn = s.add_user(&user);
    let group = unique("grp");
    s.add_group(&group, &[&user_dn]);
    let ts = Teamsync::for_slapd(&s, "", "sync:\n  full_every: 1s\n");
    ts.account("bot");
    ts.login("bot", &user);
    ts.team("deploy");
    ts.link("deploy", &group);
    assert_eq!(ts.sync(0)["added"], 1);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let later = ts.sync(0);
    assert_eq!(later["unchanged"], false, "{later}");
    assert!(changes(&later).is_empty());
}
