//! A server that cuts a search short with a result code fails the pass:
//! nothing is applied, never fewer members. A real slapd answers with a
//! size limit on the bind account, and with slapo-retcode's fixed codes
//! (timeLimitExceeded, sizeLimitExceeded, adminLimitExceeded, busy,
//! unavailable, unwillingToPerform).

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::slapd::{Slapd, USER_PASSWORD, unique};
use common::teamsync::{Teamsync, change, changes};

#[test]
fn a_search_cut_short_by_a_size_limit_fails_the_pass_and_changes_nothing() {
    let s = Slapd::start();
    // A bind account whose paged searches may return 3 entries in all.
    let limited = unique("lim");
    let limited_dn = s.add_user(&limited);
    let conf = s.dir().join("slapd.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let everyone = text.find("limits * ").expect("a `limits *` line");
    let mut patched = text.clone();
    patched.insert_str(
        everyone,
        &format!("limits dn.exact=\"{limited_dn}\" size.prtotal=3 size.soft=3 size.hard=3\n"),
    );
    std::fs::write(&conf, patched).unwrap();
    s.restart();

    let user = unique("u");
    let user_dn = s.add_user(&user);
    let groups: Vec<String> = (0..6).map(|_| unique("g")).collect();
    let mut group_dns = Vec::new();
    for group in &groups {
        group_dns.push(s.add_group(group, &[&user_dn]));
    }
    let ts = Teamsync::for_slapd(&s, "", "");
    ts.account("bot");
    ts.login("bot", &user);
    ts.team("deploy");
    ts.link("deploy", &groups[0]);
    assert_eq!(ts.sync(0)["added"], 1);
    s.remove_member(&group_dns[0], &user_dn);

    // Bind as the limited account from now on.
    let password = ts.dir.path().join("limited-password");
    std::fs::write(&password, USER_PASSWORD).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = std::fs::read_to_string(&ts.config).unwrap();
    let config = config
        .replace(
            &format!("dn: {}", s.admin_bind_dn()),
            &format!("dn: {limited_dn}"),
        )
        .replace(
            &s.admin_password_file().display().to_string(),
            &password.display().to_string(),
        );
    std::fs::write(&ts.config, config).unwrap();

    let before = ts.store_bytes();
    let run = ts.run(&["--sync-now"]);
    run.code(69);
    assert!(run.stderr.contains("sizeLimitExceeded"), "{}", run.stderr);
    assert_eq!(
        ts.store_bytes(),
        before,
        "a cut-short search changed the store"
    );

    // Back to an account without the limit: the pass converges.
    let config = std::fs::read_to_string(&ts.config).unwrap();
    let config = config
        .replace(
            &format!("dn: {limited_dn}"),
            &format!("dn: {}", s.admin_bind_dn()),
        )
        .replace(
            &password.display().to_string(),
            &s.admin_password_file().display().to_string(),
        );
    std::fs::write(&ts.config, config).unwrap();
    assert_eq!(
        changes(&ts.sync(0)),
        vec![change("bot", "deploy", "remove")]
    );
}

#[test]
fn every_result_code_that_cuts_a_search_short_fails_the_pass() {
    let s = Slapd::start();
    // slapo-retcode answers searches under these entries with fixed codes.
    let conf = s.dir().join("slapd.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let codes = [
        ("timelimit", 3, "timeLimitExceeded"),
        ("sizelimit", 4, "sizeLimitExceeded"),
        ("adminlimit", 11, "adminLimitExceeded"),
        ("busy", 51, "busy"),
        ("unavailable", 52, "unavailable"),
        ("unwilling", 53, "unwillingToPerform"),
    ];
    let mut patched = text.replace(
        "moduleload ppolicy\n",
        "moduleload ppolicy\nmoduleload retcode\n",
    );
    patched.push_str("overlay retcode\nretcode-parent \"ou=retcode,dc=example,dc=org\"\n");
    for (name, code, _) in codes {
        patched.push_str(&format!("retcode-item \"cn={name}\" {code}\n"));
    }
    std::fs::write(&conf, patched).unwrap();
    s.restart();

    let user = unique("u");
    let user_dn = s.add_user(&user);
    let group = unique("grp");
    let group_dn = s.add_group(&group, &[&user_dn]);
    let ts = Teamsync::for_slapd(&s, "", "");
    ts.account("bot");
    ts.login("bot", &user);
    ts.team("deploy");
    ts.link("deploy", &group);
    assert_eq!(ts.sync(0)["added"], 1);
    s.remove_member(&group_dn, &user_dn);

    let good = std::fs::read_to_string(&ts.config).unwrap();
    let groups_base = format!("group_base: {}", s.groups_dn());
    assert!(good.contains(&groups_base));
    for (name, code, label) in codes {
        let cut = good.replace(
            &groups_base,
            &format!("group_base: cn={name},ou=retcode,dc=example,dc=org"),
        );
        std::fs::write(&ts.config, cut).unwrap();
        let before = ts.store_bytes();
        let run = ts.run(&["--sync-now"]);
        run.code(69);
        assert!(
            run.stderr.contains(&format!("result {code} ({label})")),
            "{name}: {}",
            run.stderr
        );
        assert_eq!(ts.store_bytes(), before, "{name} changed the store");
    }
    std::fs::write(&ts.config, good).unwrap();
    assert_eq!(
        changes(&ts.sync(0)),
        vec![change("bot", "deploy", "remove")]
    );
}
