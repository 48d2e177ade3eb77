//! The two Active Directory strategies, tokenGroups and the group dump,
//! give identical memberships on the same real Samba DC.

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::samba::{SambaDc, unique};
use common::teamsync::Teamsync;

#[test]
fn token_groups_and_the_group_dump_agree_on_every_membership() {
    let dc = SambaDc::shared();
    let names: Vec<String> = ["top", "mid", "low", "prim", "dist", "viad", "lone"]
        .iter()
        .map(|p| unique(p))
        .collect();
    let [top, mid, low, prim, dist, via_dist, lone] = names.as_slice() else {
        unreachable!()
    };
    let top_dn = dc.add_security_group(top);
    let mid_dn = dc.add_security_group(mid);
    let low_dn = dc.add_security_group(low);
    let prim_dn = dc.add_security_group(prim);
    let dist_dn = dc.add_distribution_group(dist);
    let via_dist_dn = dc.add_security_group(via_dist);
    dc.add_security_group(lone);
    dc.add_member(&top_dn, &mid_dn);
    dc.add_member(&mid_dn, &low_dn);
    // A security group whose only route to the users is a distribution group.
    dc.add_member(&via_dist_dn, &dist_dn);

    let users: Vec<String> = (0..5).map(|_| unique("u")).collect();
    let dns: Vec<String> = users.iter().map(|u| dc.add_user(u)).collect();
    let paren = format!("{} (x)", unique("p"));
    let paren_dn = dc.add_user(&paren);
    dc.add_member(&low_dn, &dns[0]);
    dc.set_primary_group(&dns[1], &prim_dn);
    dc.add_member(&dist_dn, &dns[2]);
    dc.add_member(&low_dn, &dns[3]);
    dc.disable_user(&dns[3]);
    dc.add_member(&mid_dn, &paren_dn);
    // A cycle, for good measure.
    dc.add_member(&low_dn, &top_dn);

    let store_for = |strategy: &str| {
        let ts = Teamsync::with_directory(dc, &dc.ldaps_url(), dc.ca_file(), "");
        let text = std::fs::read_to_string(&ts.config).unwrap();
        std::fs::write(
            &ts.config,
            text.replace("  tls:\n", &format!("  ad_strategy: {strategy}\n  tls:\n")),
        )
        .unwrap();
        for (i, user) in users.iter().enumerate() {
            let account = format!("bot{i}");
            ts.account(&account);
            ts.login(&account, &format!("CORP\\{user}"));
        }
        ts.account("paren");
        ts.login("paren", &format!("CORP\\{paren}"));
        // Two logins on one account.
        ts.login("bot4", &format!("{}@corp.example.com", users[0]));
        for group in [top, mid, low, prim, via_dist, lone] {
            ts.team(group);
            ts.link(group, &format!("CORP\\{group}"));
        }
        ts.team("users");
        ts.link("users", "Domain Users");
        let report = ts.sync(0);
        (ts, report)
    };
    let (token, token_report) = store_for("token_groups");
    let (dump, dump_report) = store_for("group_dump");

    let mut teams: Vec<&String> = vec![top, mid, low, prim, via_dist, lone];
    let users_team = "users".to_owned();
    teams.push(&users_team);
    for team in teams {
        assert_eq!(
            token.members(team),
            dump.members(team),
            "the strategies disagree on team {team}"
        );
    }
    // The facts the comparison rests on.
    assert_eq!(
        token.members(top).len(),
        3,
        "bot0, bot4 and paren via nesting"
    );
    assert_eq!(
        token.members(prim),
        vec![("bot1".into(), "directory".into())]
    );
    assert!(token.members(lone).is_empty());
    assert!(
        token.members(via_dist).is_empty(),
        "a distribution group passed a membership on"
    );
    assert_eq!(token_report["added"], dump_report["added"]);
    eprintln!(
        "LDAP requests: token_groups {}, group_dump {}",
        token_report["ldap_requests"], dump_report["ldap_requests"]
    );
}
