//! Shows that the Samba AD DC harness works: seeding, AD semantics
//! (tokenGroups, primary group, disabled accounts, renames), stop/restart,
//! and the LDIF/SID helpers. Run with `--nocapture` to see timings.

mod common;

use std::process::Command;
use std::time::Instant;

use common::samba::{self, SambaDc, unique};

/// Runs `f`, printing how long it took.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = f();
    eprintln!(
        "  {what}: {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    value
}

#[test]
fn token_groups_hold_nested_security_groups_but_no_distribution_group() {
    let dc = timed("shared DC ready", SambaDc::shared);
    let user = timed("add_user", || dc.add_user(&unique("u")));
    let inner = timed("add_security_group", || {
        dc.add_security_group(&unique("inner"))
    });
    let outer = dc.add_security_group(&unique("outer"));
    let dist = timed("add_distribution_group", || {
        dc.add_distribution_group(&unique("dist"))
    });
    timed("add_member", || dc.add_member(&inner, &user));
    dc.add_member(&outer, &inner);
    dc.add_member(&dist, &user);

    let ldif = timed("search tokenGroups", || {
        dc.search(&user, "base", "(objectClass=*)", &["tokenGroups"])
    });
    let token_groups: Vec<String> = samba::ldif_values(&ldif, "tokenGroups")
        .iter()
        .map(|sid| samba::sid_to_string(sid))
        .collect();
    let (inner_sid, outer_sid, dist_sid) = (
        timed("object_sid", || dc.object_sid(&inner)),
        dc.object_sid(&outer),
        dc.object_sid(&dist),
    );
    assert!(
        token_groups.contains(&inner_sid),
        "{inner_sid} not in {token_groups:?}"
    );
    assert!(
        token_groups.contains(&outer_sid),
        "{outer_sid} not in {token_groups:?}"
    );
    assert!(
        !token_groups.contains(&dist_sid),
        "{dist_sid} in {token_groups:?}"
    );
    // Domain Users (the default primary group) and BUILTIN\Users come along.
    let domain_users = format!("{}-513", dc.domain_sid());
    assert!(token_groups.contains(&domain_users), "{token_groups:?}");
    assert!(
        token_groups.contains(&"S-1-5-32-545".to_string()),
        "{token_groups:?}"
    );
    assert_eq!(dc.token_groups(&user), token_groups);

    // memberOf: direct memberships only, distribution groups included.
    let member_of = dc.member_of(&user);
    assert_eq!(member_of.len(), 2, "{member_of:?}");
    assert!(member_of.iter().any(|dn| dn.eq_ignore_ascii_case(&inner)));
    assert!(member_of.iter().any(|dn| dn.eq_ignore_ascii_case(&dist)));
}

#[test]
fn a_custom_primary_group_leaves_member_of_but_stays_in_token_groups() {
    let dc = SambaDc::shared();
    let user = dc.add_user(&unique("u"));
    let group = dc.add_security_group(&unique("prim"));
    // Not a member yet: set_primary_group adds the membership AD requires.
    timed("set_primary_group", || dc.set_primary_group(&user, &group));

    assert_eq!(
        dc.attr(&user, "primaryGroupID"),
        vec![dc.rid(&group).to_string()]
    );
    let member_of = dc.search(&user, "base", "(objectClass=*)", &["memberOf"]);
    assert!(
        !member_of.contains(&group),
        "memberOf still lists the primary group:\n{member_of}"
    );
    let token_groups = dc.token_groups(&user);
    assert!(
        token_groups.contains(&dc.object_sid(&group)),
        "{token_groups:?}"
    );
    // The former primary group became an ordinary membership.
    let domain_users = format!("{}-513", dc.domain_sid());
    assert!(token_groups.contains(&domain_users), "{token_groups:?}");
}

#[test]
fn users_come_out_enabled_or_disabled_as_asked() {
    let dc = SambaDc::shared();
    let user = dc.add_user(&unique("u"));
    assert_eq!(dc.user_account_control(&user), 544);
    let sam = unique("u");
    let disabled = timed("add_disabled_user", || dc.add_disabled_user(&sam));
    assert_eq!(dc.user_account_control(&disabled), 546);
    assert_eq!(
        dc.attr(&disabled, "userPrincipalName"),
        vec![format!("{sam}@corp.example.com")]
    );
    timed("disable_user", || dc.disable_user(&user));
    assert_eq!(dc.user_account_control(&user), 546);
    dc.enable_user(&user);
    assert_eq!(dc.user_account_control(&user), 544);
}

#[test]
fn a_user_with_a_password_can_bind_by_upn() {
    let dc = SambaDc::shared();
    let sam = unique("svc");
    let dn = timed("add_user_with_password", || {
        dc.add_user_with_password(&sam, "pw")
    });
    // Samba lacks the WhoAmI extended operation: a search proves the bind.
    let out = Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", dc.ca_file())
        .args([
            "-H",
            &dc.ldaps_url(),
            "-x",
            "-D",
            &format!("{sam}@corp.example.com"),
            "-w",
            "pw",
        ])
        .args(["-LLL", "-b", &dn, "-s", "base", "sAMAccountName"])
        .output()
        .unwrap_or_else(|err| panic!("ldapsearch: {err}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(samba::ldif_strings(&stdout, "sAMAccountName"), vec![sam]);
    let wrong = Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", dc.ca_file())
        .args([
            "-H",
            &dc.ldaps_url(),
            "-x",
            "-D",
            &dn,
            "-w",
            "wrong",
            "-b",
            "",
            "-s",
            "base",
        ])
        .output()
        .unwrap_or_else(|err| panic!("ldapsearch: {err}"));
    assert_eq!(wrong.status.code(), Some(49), "invalidCredentials expected");
}

#[test]
fn renames_and_moves_keep_sid_and_guid_and_deletes_remove() {
    let dc = SambaDc::shared();
    let name = format!("{} (prod)", unique("p"));
    let user = dc.add_user(&name);
    assert_eq!(dc.attr(&user, "sAMAccountName"), vec![name.clone()]);
    let (sid, guid) = (dc.object_sid(&user), dc.object_guid(&user));
    let ou = timed("add_ou", || dc.add_ou(&unique("ou")));
    let renamed = unique("r");
    let moved = timed("rename_entry", || {
        dc.rename_entry(&user, &format!("CN={renamed}"), Some(&ou))
    });
    assert_eq!(moved, format!("CN={renamed},{ou}"));
    assert!(!dc.exists(&user) && dc.exists(&moved));
    assert_eq!((dc.object_sid(&moved), dc.object_guid(&moved)), (sid, guid));
    let back = dc.rename_entry(&moved, "CN=again", None);
    assert_eq!(back, format!("CN=again,{ou}"));
    timed("delete_entry", || dc.delete_entry(&back));
    assert!(!dc.exists(&back));
    dc.delete_entry(&ou);
    assert!(
        dc.try_search(&ou, "base", "(objectClass=*)", &[])
            .is_err_and(|err| err.code == Some(32))
    );
}

#[test]
fn stop_then_restart_brings_the_same_directory_back() {
    // Its own DC: stopping the shared one would break the other tests.
    let dc = timed("private DC ready", SambaDc::start);
    let user = dc.add_user(&unique("u"));
    timed("stop", || dc.stop());
    assert!(!dc.is_running());
    let refused = Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", dc.ca_file())
        .args([
            "-H",
            &dc.ldaps_url(),
            "-x",
            "-o",
            "nettimeout=2",
            "-s",
            "base",
            "-b",
            "",
        ])
        .output()
        .unwrap_or_else(|err| panic!("ldapsearch: {err}"));
    assert_eq!(refused.status.code(), Some(255), "a stopped DC answered");
    timed("restart", || dc.restart());
    assert!(dc.is_running());
    assert!(dc.exists(&user));

    let dir = dc.dir().to_path_buf();
    drop(dc);
    assert!(!dir.exists(), "{} survived the DC", dir.display());
}

#[test]
fn helpers_decode_sids_and_build_names() {
    let sid = samba::base64_decode("AQUAAAAAAAUVAAAAMMqQuFvJNCTr3vPTTgQAAA==");
    assert_eq!(
        samba::sid_to_string(&sid),
        "S-1-5-21-3096496688-607439195-3555974891-1102"
    );
    assert_eq!(
        samba::sid_to_string(&samba::base64_decode("AQIAAAAAAAUgAAAAIQIAAA==")),
        "S-1-5-32-545"
    );
    for text in ["", "a", "ab", "abc", "abcd", "\u{e9}t\u{e9}"] {
        let encoded = samba::base64_encode(text.as_bytes());
        assert_eq!(samba::base64_decode(&encoded), text.as_bytes());
    }
    assert_eq!(samba::base64_encode(b"ab"), "YWI=");

    let a = unique("a-rather-long-prefix");
    assert!(a.len() <= 20 && a.starts_with("a-rather"), "{a}");
    assert!(
        a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
    assert_ne!(unique("x"), unique("x"));

    assert_eq!(
        samba::child_dn("CN", "a,b (c)", "DC=x"),
        "CN=a\\,b (c),DC=x"
    );
    assert_eq!(samba::parent_dn("CN=a\\,b,OU=x,DC=y"), Some("OU=x,DC=y"));
    assert_eq!(samba::ldif_line("cn", " lead"), "cn:: IGxlYWQ=\n");
    let ldif = "dn: CN=x\nmember: CN=a\nMember: CN=b,\n c\n\ndn:: Q049eQ==\n";
    assert_eq!(samba::ldif_strings(ldif, "member"), vec!["CN=a", "CN=b,c"]);
    assert_eq!(samba::ldif_dns(ldif), vec!["CN=x", "CN=y"]);
}
