//! Failing safely against a real Samba AD DC: directory down, untrusted CA,
//! refused bind, and the bind password kept out of every output.

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::samba::{SambaDc, unique};
use common::teamsync::Teamsync;

/// A store with one account already granted a team by a real pass.
fn seeded(dc: &SambaDc) -> Teamsync {
    let (group, user) = (unique("grp"), unique("u"));
    let group_dn = dc.add_security_group(&group);
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);
    let ts = Teamsync::new(dc);
    ts.account("bot");
    ts.login("bot", &format!("CORP\\{user}"));
    ts.team("deploy");
    ts.link("deploy", &format!("CORP\\{group}"));
    assert_eq!(ts.sync(0)["added"], 1);
    // Removing the user from the group would make a good pass remove the
    // membership: a failed pass must not.
    dc.remove_member(&group_dn, &user_dn);
    ts
}

/// Points an existing store's config somewhere else.
fn rewrite_config(ts: &Teamsync, from: &str, to: &str) {
    let text = std::fs::read_to_string(&ts.config).unwrap();
    assert!(text.contains(from), "config lacks {from}");
    std::fs::write(&ts.config, text.replace(from, to)).unwrap();
}

#[test]
fn directory_down_exits_69_and_leaves_the_store_byte_for_byte_unchanged() {
    let dc = SambaDc::shared();
    let ts = seeded(dc);
    // Nothing listens on port 1 of the DC's address.
    rewrite_config(&ts, &dc.ldaps_url(), &format!("{}:1", dc.ldaps_url()));
    let before = ts.store_bytes();
    let run = ts.run(&["--sync-now"]);
    run.code(69);
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    assert_eq!(ts.store_bytes(), before);
}

#[test]
fn a_stopped_dc_exits_69_and_the_next_pass_after_recovery_converges() {
    // Its own DC, so that stopping it disturbs no other test.
    let dc = SambaDc::start();
    let ts = seeded(&dc);
    dc.stop();
    let before = ts.store_bytes();
    ts.run(&["--sync-now"]).code(69);
    assert_eq!(ts.store_bytes(), before);
    dc.restart();
    assert_eq!(ts.sync(0)["removed"], 1);
}

#[test]
fn an_untrusted_ca_exits_69_leaves_the_store_unchanged_and_says_why() {
    let dc = SambaDc::shared();
    let ts = seeded(dc);
    rewrite_config(
        &ts,
        &dc.ca_file().display().to_string(),
        &dc.other_ca_file().display().to_string(),
    );
    let before = ts.store_bytes();
    let run = ts.run(&["--sync-now"]);
    run.code(69);
    assert!(run.stderr.contains("UnknownIssuer"), "{}", run.stderr);
    assert_eq!(ts.store_bytes(), before);

    let check = ts.run(&["check"]);
    check.code(69);
    assert!(check.stdout.contains("ca_file"), "{}", check.stdout);
}

#[test]
fn a_refused_bind_exits_69_and_never_shows_the_password() {
    let dc = SambaDc::shared();
    let ts = seeded(dc);
    let wrong = format!("Wrong-{}-Pass", unique("pw"));
    let password_file = ts.dir.path().join("wrong-password");
    std::fs::write(&password_file, &wrong).unwrap();
    // Owner-only, as teamsync requires of a password file.
    std::fs::set_permissions(
        &password_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    rewrite_config(
        &ts,
        &dc.admin_password_file().display().to_string(),
        &password_file.display().to_string(),
    );
    let before = ts.store_bytes();
    let run = ts
        .command()
        .args(["--sync-now"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(69));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(all.contains("refused the bind"), "{all}");
    assert!(!all.contains(&wrong), "the password reached the output");
    assert_eq!(ts.store_bytes(), before);
}

#[test]
fn the_bind_password_appears_in_no_output_even_at_trace_level() {
    let dc = SambaDc::shared();
    let ts = seeded(dc);
    let password = dc.admin_password();
    for args in [
        vec!["--sync-now"],
        vec!["--sync-now", "--dry-run", "--json"],
        vec!["check"],
        vec!["team", "link", "deploy", "Domain Users"],
        vec!["team", "unlink", "deploy", "Domain Users"],
        vec!["explain", "bot"],
        vec!["status", "--json"],
        vec!["account", "show", "bot"],
        vec!["account", "list"],
        vec!["team", "list"],
        vec!["team", "members", "deploy"],
        vec!["login", "add", "bot", "CORP\\nobody"],
        vec!["apikey", "list", "bot"],
    ] {
        let run = ts
            .command()
            .args(&args)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        // Commands that bind must show that trace logging was on (unlink
        // matches the stored link without binding).
        let binds = matches!(args[0], "--sync-now" | "check" | "explain")
            || (args[0] == "team" && args[1] == "link");
        assert!(
            !binds || all.contains("TRACE") || all.contains("DEBUG"),
            "trace logging was not on for {args:?}: {all}"
        );
        assert!(!all.contains(&password), "{args:?} printed the password");
    }
}

#[test]
fn check_reports_what_it_found() {
    let dc = SambaDc::shared();
    let ts = seeded(dc);
    let run = ts.run(&["check"]);
    run.ok();
    for expected in [
        "dc1.corp.example.com",
        "DC=corp,DC=example,DC=com",
        "CORP",
        "bound as",
        "tokenGroups: readable",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn skipping_certificate_checks_must_be_explicit_and_warns_on_every_run() {
    let dc = SambaDc::shared();
    let ts = seeded(dc);
    // The other CA would be refused; with the opt-in nothing is checked.
    rewrite_config(
        &ts,
        &dc.ca_file().display().to_string(),
        &format!(
            "{}\n    insecure_skip_verify: true",
            dc.other_ca_file().display()
        ),
    );
    for _ in 0..2 {
        let run = ts.run(&["--sync-now"]);
        run.ok();
        assert!(
            run.stderr.contains("insecure_skip_verify") && run.stderr.contains("NOT verified"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_simple_bind_in_plain_text_is_refused_unless_configured() {
    let dc = SambaDc::shared();
    let ts = Teamsync::with_directory(dc, &dc.starttls_url(), dc.ca_file(), "");
    rewrite_config(&ts, "  tls:\n", "  tls:\n    plaintext: true\n");
    let refused = ts.run(&["account", "list"]);
    refused.code(78);
    assert!(
        refused.stderr.contains("allow_plaintext_password"),
        "{}",
        refused.stderr
    );

    // Opted in: teamsync sends the bind, and Samba's default policy refuses it.
    rewrite_config(
        &ts,
        "  bind:\n",
        "  bind:\n    allow_plaintext_password: true\n",
    );
    let run = ts.run(&["--sync-now"]);
    run.code(69);
    assert!(
        run.stderr.contains("strongerAuthRequired") || run.stderr.contains("result 8"),
        "{}",
        run.stderr
    );
}

#[test]
fn every_pass_and_applied_change_is_recorded_in_the_store() {
    let dc = SambaDc::shared();
    let ts = seeded(dc);
    ts.sync(0);
    let db = rusqlite::Connection::open(&ts.store).unwrap();
    let runs: Vec<(String, i64, i64)> = db
        .prepare("SELECT outcome, added, removed FROM sync_runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        runs,
        vec![("success".into(), 1, 0), ("success".into(), 0, 1)]
    );
    let changes: Vec<(String, String, String, String)> = db
        .prepare("SELECT account, team, action, reason FROM sync_changes ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(
        (changes[0].2.as_str(), changes[1].2.as_str()),
        ("add", "remove")
    );
    assert!(
        changes[1].3.contains("no group linked to deploy"),
        "{:?}",
        changes[1]
    );
}

#[test]
fn a_password_file_others_can_read_is_refused_with_exit_78() {
    use std::os::unix::fs::PermissionsExt;
    let dc = SambaDc::shared();
    let ts = Teamsync::new(dc);
    let readable = ts.dir.path().join("readable-password");
    std::fs::write(&readable, dc.admin_password()).unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    rewrite_config(
        &ts,
        &dc.admin_password_file().display().to_string(),
        &readable.display().to_string(),
    );
    let run = ts.run(&["--sync-now"]);
    run.code(78);
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    assert!(!run.stderr.contains(&dc.admin_password()));
    rewrite_config(
        &ts,
        "  bind:\n",
        "  bind:\n    allow_readable_password_file: true\n",
    );
    ts.run(&["--sync-now"]).ok();
}
