//! Shows that the OpenLDAP slapd harness works: seeding users and every
//! group kind, memberOf maintenance (nesting, cycles, 5,000 members), the
//! size limit versus paged results, entryUUID across rename and move,
//! locking, TLS, stop/restart and offline bulk loads. Run with
//! `--nocapture` to see timings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::samba::{ldif_dns, ldif_strings};
use common::slapd::{self, EMPTY_MEMBER, LOCKED_FOREVER, SIZE_LIMIT, Slapd, USER_PASSWORD, unique};

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

fn set(values: &[String]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_ascii_lowercase()).collect()
}

fn set_of(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_ascii_lowercase()).collect()
}

#[test]
fn member_of_follows_nested_group_of_names_and_cycles() {
    let ds = timed("shared slapd ready", Slapd::shared);
    let user = timed("add_user", || ds.add_user(&unique("u")));
    let g1 = timed("add_group", || ds.add_group(&unique("g1"), &[&user]));
    let g2 = ds.add_group(&unique("g2"), &[&g1]);
    let g3 = ds.add_group(&unique("g3"), &[&g2]);

    // memberOf: direct memberships only, on users and on groups alike.
    assert_eq!(set(&ds.member_of(&user)), set_of(&[&g1]));
    assert_eq!(set(&ds.member_of(&g1)), set_of(&[&g2]));
    assert_eq!(set(&ds.member_of(&g2)), set_of(&[&g3]));
    assert!(ds.member_of(&g3).is_empty());

    // A cycle: A has B as member and B has A. Both overlays accept it.
    let a = ds.add_group(&unique("cyc-a"), &[&user]);
    let b = ds.add_group(&unique("cyc-b"), &[&a]);
    timed("add_member (closing a cycle)", || ds.add_member(&a, &b));
    assert_eq!(set(&ds.members(&a)), set_of(&[&user, &b]));
    assert_eq!(set(&ds.members(&b)), set_of(&[&a]));
    assert_eq!(set(&ds.member_of(&a)), set_of(&[&b]));
    assert_eq!(set(&ds.member_of(&b)), set_of(&[&a]));
    assert_eq!(set(&ds.member_of(&user)), set_of(&[&g1, &a]));

    timed("remove_member", || ds.remove_member(&a, &user));
    assert_eq!(set(&ds.member_of(&user)), set_of(&[&g1]));
}

#[test]
fn empty_groups_hold_the_placeholder_member() {
    let ds = Slapd::shared();
    let user = ds.add_user(&unique("u"));
    let group = ds.add_group(&unique("empty"), &[]);
    assert_eq!(ds.members(&group), vec![EMPTY_MEMBER.to_string()]);

    ds.add_member(&group, &user);
    assert_eq!(set(&ds.members(&group)), set_of(&[&user]));
    assert_eq!(set(&ds.member_of(&user)), set_of(&[&group]));

    ds.remove_member(&group, &user);
    assert_eq!(ds.members(&group), vec![EMPTY_MEMBER.to_string()]);
    assert!(ds.member_of(&user).is_empty());

    // refint puts the placeholder in when deleting a group's last member.
    let other = ds.add_user(&unique("u"));
    let unique_group = ds.add_unique_group(&unique("uniq"), &[&other]);
    ds.delete_entry(&other);
    assert_eq!(
        ds.attr(&unique_group, "uniqueMember"),
        vec![EMPTY_MEMBER.to_string()]
    );
}

// The plain search below must hit the size limit.
const _: () = assert!(SIZE_LIMIT < 5000);

#[test]
fn five_thousand_member_group_and_paged_results() {
    let ds = Slapd::shared();
    let tag = unique("big");
    let uids: Vec<String> = (0..5000).map(|i| format!("{tag}-{i}")).collect();
    let uid_refs: Vec<&str> = uids.iter().map(String::as_str).collect();
    let users = timed("add_users (5,000 in one ldapadd)", || {
        ds.add_users(&uid_refs)
    });
    let member_refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let group = timed("add_group with 5,000 members (one add)", || {
        ds.add_group(&tag, &member_refs)
    });

    let members = timed("read 5,000 member values", || ds.members(&group));
    assert_eq!(members.len(), 5000);
    for user in [&users[0], &users[2500], &users[4999]] {
        assert_eq!(set(&ds.member_of(user)), set_of(&[&group]));
    }
    let filter = format!("(memberOf={group})");
    let with_member_of = timed("search (memberOf=group) as rootdn", || {
        ds.search_dns(&ds.people_dn(), &filter)
    });
    assert_eq!(with_member_of.len(), 5000);

    // Anyone but the rootdn: a plain search stops at the size limit, a
    // paged one sees everything, whatever the page size.
    let reader = &users[0];
    let plain = ds
        .search_as(
            reader,
            USER_PASSWORD,
            None,
            &ds.people_dn(),
            &filter,
            &["1.1"],
        )
        .unwrap_err();
    assert_eq!(plain.code, Some(4), "{plain}");
    for page_size in [200, 1000] {
        let paged = timed(&format!("paged search, pages of {page_size}"), || {
            ds.search_as(
                reader,
                USER_PASSWORD,
                Some(page_size),
                &ds.people_dn(),
                &filter,
                &["1.1"],
            )
            .unwrap()
        });
        assert_eq!(ldif_dns(&paged).len(), 5000, "page size {page_size}");
    }
}

#[test]
fn unique_and_posix_groups() {
    let ds = Slapd::shared();
    let (alice, bob) = (unique("alice"), unique("bob"));
    let alice_dn = ds.add_user(&alice);
    let bob_dn = ds.add_user(&bob);

    let unique_group = ds.add_unique_group(&unique("uniq"), &[&alice_dn]);
    ds.add_unique_member(&unique_group, &bob_dn);
    assert_eq!(
        set(&ds.attr(&unique_group, "uniqueMember")),
        set_of(&[&alice_dn, &bob_dn])
    );
    // memberof ignores groupOfUniqueNames.
    assert!(ds.member_of(&alice_dn).is_empty());
    ds.remove_unique_member(&unique_group, &alice_dn);
    ds.remove_unique_member(&unique_group, &bob_dn);
    assert_eq!(
        ds.attr(&unique_group, "uniqueMember"),
        vec![EMPTY_MEMBER.to_string()]
    );

    let posix = ds.add_posix_group(&unique("posix"), 5001, &[&alice, &bob]);
    let ldif = ds.search(&posix, "base", "(objectClass=posixGroup)", &["*"]);
    assert_eq!(ldif_strings(&ldif, "gidNumber"), vec!["5001".to_string()]);
    assert_eq!(
        set(&ldif_strings(&ldif, "memberUid")),
        set_of(&[&alice, &bob])
    );
    let empty_posix = ds.add_posix_group(&unique("posix"), 5002, &[]);
    assert!(ds.attr(&empty_posix, "memberUid").is_empty());
}

#[test]
fn entry_uuid_survives_rename_and_move() {
    let ds = Slapd::shared();
    let user = ds.add_user(&unique("mover"));
    let group = ds.add_group(&unique("g"), &[&user]);
    let uuid = ds.entry_uuid(&user);
    assert_eq!(uuid.len(), 36, "{uuid}");

    let ou = ds.add_ou(&unique("ou"));
    let new_uid = unique("moved");
    let moved = timed("rename_entry (modrdn + newSuperior)", || {
        ds.rename_entry(&user, &format!("uid={new_uid}"), Some(&ou))
    });
    assert_eq!(moved, format!("uid={new_uid},{ou}"));
    assert!(!ds.exists(&user));
    assert_eq!(ds.entry_uuid(&moved), uuid);
    assert_eq!(ds.attr(&moved, "uid"), vec![new_uid]);
    // refint rewrote the group; memberOf is still there.
    assert_eq!(set(&ds.members(&group)), set_of(&[&moved]));
    assert_eq!(set(&ds.member_of(&moved)), set_of(&[&group]));
    let found = ds.search_dns(ds.base_dn(), &format!("(entryUUID={uuid})"));
    assert_eq!(set(&found), set_of(&[&moved]));

    // Renaming a group rewrites memberOf of its members.
    let renamed_group = ds.rename_entry(&group, &format!("cn={}", unique("g")), None);
    assert_eq!(set(&ds.member_of(&moved)), set_of(&[&renamed_group]));
}

#[test]
fn locked_user_shows_pwd_account_locked_time_and_cannot_bind() {
    let ds = Slapd::shared();
    let user = ds.add_user(&unique("lock"));
    ds.try_bind(&user, USER_PASSWORD).unwrap();
    assert_eq!(ds.try_bind(&user, "wrong").unwrap_err().code, Some(49));

    timed("lock_user", || ds.lock_user(&user));
    assert_eq!(
        ds.attr(&user, "pwdAccountLockedTime"),
        vec![LOCKED_FOREVER.to_string()]
    );
    let locked = ds.try_bind(&user, USER_PASSWORD).unwrap_err();
    assert_eq!(locked.code, Some(49), "{locked}");

    ds.unlock_user(&user);
    assert!(ds.attr(&user, "pwdAccountLockedTime").is_empty());
    ds.try_bind(&user, USER_PASSWORD).unwrap();
    ds.unlock_user(&user); // idempotent

    let custom = ds.add_user_with_password(&unique("pw"), "other pw");
    ds.try_bind(&custom, "other pw").unwrap();
    let stored = ds.attr(&custom, "userPassword");
    assert!(stored[0].starts_with("{SSHA}"), "{stored:?}");
}

#[test]
fn tls_root_dse_and_env() {
    let ds = Slapd::shared();
    // Anonymous: the rootDSE tells OpenLDAP apart from AD; the tree is hidden.
    let out = Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", ds.ca_file())
        .env("LDAPTLS_REQCERT", "demand")
        .args(["-H", &ds.ldaps_url(), "-x", "-LLL", "-s", "base", "-b", ""])
        .args([
            "structuralObjectClass",
            "namingContexts",
            "supportedControl",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let root_dse = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        ldif_strings(&root_dse, "structuralObjectClass"),
        vec!["OpenLDAProotDSE".to_string()]
    );
    assert_eq!(
        ldif_strings(&root_dse, "namingContexts"),
        vec![ds.base_dn().to_string()]
    );
    // Paged results (RFC 2696) are advertised.
    assert!(ldif_strings(&root_dse, "supportedControl").contains(&"1.2.840.113556.1.4.319".into()));

    let whoami = |url: &str, ca: &std::path::Path, starttls: bool| {
        let mut cmd = Command::new("ldapwhoami");
        cmd.env("LDAPTLS_CACERT", ca)
            .env("LDAPTLS_REQCERT", "demand")
            .args([
                "-H",
                url,
                "-x",
                "-o",
                "nettimeout=5",
                "-D",
                ds.admin_bind_dn(),
                "-y",
            ])
            .arg(ds.admin_password_file());
        if starttls {
            cmd.arg("-ZZ");
        }
        cmd.output().unwrap()
    };
    let ldaps = whoami(&ds.ldaps_url(), ds.ca_file(), false);
    assert!(ldaps.status.success(), "{ldaps:?}");
    let starttls = whoami(&ds.starttls_url(), ds.ca_file(), true);
    assert!(starttls.status.success(), "{starttls:?}");
    let untrusted = whoami(&ds.ldaps_url(), ds.other_ca_file(), false);
    assert!(!untrusted.status.success(), "{untrusted:?}");
    let untrusted = whoami(&ds.starttls_url(), ds.other_ca_file(), true);
    assert!(!untrusted.status.success(), "{untrusted:?}");

    let env = ds.env_vars();
    let get = |name: &str| {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing from {env:?}"))
    };
    assert_eq!(get("TEAMSYNC_LDAP_URL"), ds.ldaps_url());
    assert_eq!(get("TEAMSYNC_LDAP_STARTTLS_URL"), ds.starttls_url());
    assert_eq!(get("TEAMSYNC_LDAP_BASE"), ds.base_dn());
    assert_eq!(get("TEAMSYNC_LDAP_CA"), ds.ca_file().to_string_lossy());
    assert_eq!(
        get("TEAMSYNC_LDAP_OTHER_CA"),
        ds.other_ca_file().to_string_lossy()
    );
    assert_eq!(get("TEAMSYNC_LDAP_ADMIN_DN"), ds.admin_bind_dn());
    assert_eq!(
        get("TEAMSYNC_LDAP_ADMIN_PASSWORD_FILE"),
        ds.admin_password_file().to_string_lossy()
    );
    assert_eq!(get("TEAMSYNC_LDAP_PEOPLE_DN"), ds.people_dn());
    assert_eq!(get("TEAMSYNC_LDAP_GROUPS_DN"), ds.groups_dn());
    assert!(!ds.admin_password().ends_with('\n'));
}

/// Its own server: the shared one is never stopped.
#[test]
fn stop_restart_context_csn_and_bulk_load() {
    let ds = timed("Slapd::start (provision + start)", Slapd::start);
    let user = ds.add_user(&unique("u"));
    let uuid = ds.entry_uuid(&user);

    let before = ds.context_csn();
    ds.add_member(&ds.add_group(&unique("g"), &[]), &user);
    let after = ds.context_csn();
    assert!(after > before, "contextCSN {before} -> {after}");

    timed("stop", || ds.stop());
    assert!(!ds.is_running());
    let addr: SocketAddr = format!("{}:636", ds.ip()).parse().unwrap();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());

    timed("restart", || ds.restart());
    assert!(ds.is_running());
    assert_eq!(ds.entry_uuid(&user), uuid);
    assert_eq!(ds.context_csn(), after);

    // Offline load: 2,000 users, then a group whose members carry memberOf
    // themselves (slapadd bypasses the memberof overlay).
    let tag = unique("bulk");
    let group_dn = format!("cn={tag},{}", ds.groups_dn());
    let mut ldif = String::new();
    let mut group = format!("dn: {group_dn}\nobjectClass: groupOfNames\ncn: {tag}\n");
    for i in 0..2000 {
        let dn = format!("uid={tag}-{i},{}", ds.people_dn());
        ldif += &format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nuid: {tag}-{i}\ncn: {tag}-{i}\nsn: x\nmemberOf: {group_dn}\n\n"
        );
        group += &format!("member: {dn}\n");
    }
    ldif += &group;
    timed(
        "bulk_load 2,000 users + group (stop, slapadd, start)",
        || ds.bulk_load(&ldif),
    );
    assert_eq!(ds.members(&group_dn).len(), 2000);
    let last = format!("uid={tag}-1999,{}", ds.people_dn());
    assert_eq!(set(&ds.member_of(&last)), set_of(&[&group_dn]));
    assert_eq!(ds.entry_uuid(&last).len(), 36);
    assert!(ds.context_csn() > after);
    let dir = ds.dir().to_path_buf();
    drop(ds);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn script_refuses_bulk_load_while_running() {
    let ds = Slapd::shared();
    let file = ds.dir().join("refused.ldif");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(slapd::script_path())
        .arg("bulk")
        .arg(ds.dir())
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop it before a bulk load"),
        "{out:?}"
    );
}
