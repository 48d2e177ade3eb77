//! Hostile names in the directory resolve exactly, through the CLI, against
//! a real Samba AD DC and a real slapd: parentheses, asterisks, backslashes,
//! DN specials, non-ASCII, NUL and very long names, each next to a decoy
//! that the value taken as filter syntax (or cut short) would hit instead.
//!
//! What the servers accept (checked by hand and pinned by
//! `what_samba_accepts_in_sam_account_name`): Samba refuses
//! `"/\[]:;|=,+*?<>`, control characters 0x01-0x1f and a trailing `.` in
//! sAMAccountName, as AD does; it accepts `()@#%&'~!$^{}.`, space and
//! non-ASCII, and, unlike AD, a NUL, and user names longer than 20
//! characters. Group names go up to 256 characters. CN takes anything,
//! NUL included. slapd takes anything in uid and cn, NUL and control
//! characters included; it compares them Unicode-normalised and
//! case-folded (NFD and upper-case forms name the NFC entry); its mdb
//! backend refuses a cn longer than about 242 characters under ou=groups.

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::samba::{GLOBAL_SECURITY, SambaDc, USERS_DN, ldif_line, unique};
use common::slapd::{GROUPS_DN, PEOPLE_DN, Slapd};
use common::teamsync::{Teamsync, change, changes};

// ---- Helpers ---------------------------------------------------------------

/// A short suffix unique in this test process: [a-z0-9].
fn suffix() -> String {
    unique("x")[2..].to_owned()
}

/// An RDN value escaped as RFC 4514 asks, with NUL and the other control
/// characters as `\xx`.
fn rdn_escape(value: &str) -> String {
    let mut out = String::new();
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        if c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out += &format!("\\{byte:02x}");
            }
            continue;
        }
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn object_ids(store: &Path, sql: &str, name: &str) -> Vec<Option<String>> {
    let db = rusqlite::Connection::open(store).unwrap();
    db.prepare(sql)
        .unwrap()
        .query_map([name], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The pinned object ids of an account's logins (None: not found yet).
fn pinned(ts: &Teamsync, account: &str) -> Vec<Option<String>> {
    object_ids(
        &ts.store,
        "SELECT l.object_id FROM external_logins l JOIN accounts a ON a.id = l.account_id
         WHERE a.name = ?1 ORDER BY l.id",
        account,
    )
}

/// The group ids a team is linked to.
fn linked(ts: &Teamsync, team: &str) -> Vec<Option<String>> {
    object_ids(
        &ts.store,
        "SELECT g.group_id FROM team_groups g JOIN teams t ON t.id = g.team_id
         WHERE t.name = ?1 ORDER BY g.id",
        team,
    )
}

/// A fresh config (same directory) holding a copy of `ts`'s store, with
/// `edit` applied to the config text.
fn copy_with(ts: &Teamsync, fresh: Teamsync, edit: impl Fn(&str) -> String) -> Teamsync {
    let text = std::fs::read_to_string(&fresh.config).unwrap();
    std::fs::write(&fresh.config, edit(&text)).unwrap();
    std::fs::copy(&ts.store, &fresh.store).unwrap();
    fresh
}

/// The objects of one hostile-name case: the admin types `login` for
/// account `h` and `link` for team `exact`; they must name `user` and
/// `group` and nothing else. The decoys are what the typed values would
/// hit if they were taken as filter syntax or cut short; account `d`
/// (logged in by a stable id) sits in the decoy group, linked to team
/// `decoy` by a stable id, to show the decoys are live.
struct Case<'a> {
    login: &'a str,
    user: &'a str,
    link: &'a str,
    group: &'a str,
    decoy_user: &'a str,
    decoy_group: &'a str,
}

// ---- Active Directory ------------------------------------------------------

fn dc() -> &'static SambaDc {
    SambaDc::shared()
}

/// A user under CN=Users with the given CN, sAMAccountName and UPN.
fn ad_user(dc: &SambaDc, cn: &str, sam: &str, upn: &str) -> String {
    let dn = format!("CN={},{USERS_DN}", rdn_escape(cn));
    let mut ldif = ldif_line("dn", &dn);
    ldif += "objectClass: user\n";
    ldif += &ldif_line("sAMAccountName", sam);
    ldif += &ldif_line("userPrincipalName", upn);
    ldif += "userAccountControl: 544\n";
    dc.add_ldif(&ldif);
    dn
}

/// A global security group under CN=Users.
fn ad_group(dc: &SambaDc, cn: &str, sam: &str) -> String {
    let dn = format!("CN={},{USERS_DN}", rdn_escape(cn));
    let mut ldif = ldif_line("dn", &dn);
    ldif += "objectClass: group\n";
    ldif += &ldif_line("sAMAccountName", sam);
    ldif += &format!("groupType: {GLOBAL_SECURITY}\n");
    dc.add_ldif(&ldif);
    dn
}

/// Sets up `case` in a store, checks the link, then runs a pass with each
/// AD strategy (tokenGroups reads SIDs; the group dump matches member DNs)
/// and checks only the right objects count. Returns the store for more.
fn check_ad(dc: &SambaDc, case: &Case) -> Teamsync {
    dc.add_member(case.group, case.user);
    dc.add_member(case.decoy_group, case.decoy_user);
    let ts = Teamsync::new(dc);
    ts.account("h");
    ts.login("h", case.login);
    ts.account("d");
    ts.login("d", &dc.object_sid(case.decoy_user));
    ts.team("exact");
    ts.link("exact", case.link);
    ts.team("decoy");
    ts.link("decoy", &dc.object_sid(case.decoy_group));
    assert_eq!(
        linked(&ts, "exact"),
        vec![Some(dc.object_sid(case.group))],
        "team link exact {:?} linked another group",
        case.link
    );
    // The group dump on a copy of the store as it is now; tokenGroups on
    // the store itself, which later checks go on using.
    let dump = copy_with(&ts, Teamsync::new(dc), |text| {
        text.replacen(
            "  timeouts:\n",
            "  ad_strategy: group_dump\n  timeouts:\n",
            1,
        )
    });
    let edited = std::fs::read_to_string(&ts.config).unwrap().replacen(
        "  timeouts:\n",
        "  ad_strategy: token_groups\n  timeouts:\n",
        1,
    );
    std::fs::write(&ts.config, edited).unwrap();
    for (strategy, run) in [("token_groups", &ts), ("group_dump", &dump)] {
        let report = run.sync(0);
        assert_eq!(
            changes(&report),
            vec![change("d", "decoy", "add"), change("h", "exact", "add")],
            "{strategy}: login {:?}, link {:?}: {report}",
            case.login,
            case.link
        );
        assert_eq!(
            pinned(run, "h"),
            vec![Some(dc.object_sid(case.user))],
            "{strategy}: login {:?} was pinned to another account",
            case.login
        );
    }
    ts
}

#[test]
fn what_samba_accepts_in_sam_account_name() {
    let dc = dc();
    let s = suffix();
    let add = |name: &str| {
        let mut ldif = ldif_line("dn", &format!("CN=acc-{},{USERS_DN}", unique("c")));
        ldif += "objectClass: group\n";
        ldif += &ldif_line("sAMAccountName", name);
        ldif += &format!("groupType: {GLOBAL_SECURITY}\n");
        let mut cmd = std::process::Command::new("ldapadd");
        cmd.env("LDAPTLS_CACERT", dc.ca_file())
            .env("LDAPTLS_REQCERT", "demand")
            .args(["-H", &dc.ldaps_url(), "-x", "-D", dc.admin_bind_dn(), "-y"])
            .arg(dc.admin_password_file());
        common::samba::run(&mut cmd, Some(&ldif))
    };
    let mut refused = String::new();
    for c in "\"/\\[]:;|=,+*?<>\u{1}\t\u{1f}".chars() {
        match add(&format!("acc{c}{s}")) {
            Err(err) if err.code == Some(19) => refused.push(c),
            other => panic!("Samba did not refuse {c:?} in sAMAccountName: {other:?}"),
        }
    }
    assert!(add(&format!("acc-{s}.")).is_err(), "a trailing dot");
    for c in "()@#%&'~!$^{}. ëÆ名".chars() {
        if let Err(err) = add(&format!("acc{c}{s}")) {
            panic!("Samba refused {c:?} in sAMAccountName: {err}");
        }
    }
    // Unlike Windows AD: a NUL is taken and kept.
    let with_nul = format!("acc\0{s}");
    add(&with_nul).unwrap();
    let found = dc.search(
        USERS_DN,
        "one",
        &format!("(sAMAccountName=acc\\00{s})"),
        &["sAMAccountName"],
    );
    assert_eq!(
        common::samba::ldif_values(&found, "sAMAccountName"),
        vec![with_nul.into_bytes()]
    );
    // Group names: 256 characters, not 257.
    let long = format!("{s}{}", "L".repeat(256 - s.len()));
    add(&long).unwrap();
    assert!(add(&format!("{long}L")).is_err(), "257 characters");
    // Unlike Windows AD, a user's name may be longer than 20 characters.
    let long_user = format!("{s}{}", "u".repeat(24 - s.len()));
    ad_user(
        dc,
        &long_user,
        &long_user,
        &format!("{long_user}@corp.example.com"),
    );
    eprintln!("hostile_names: Samba refuses in sAMAccountName: {refused:?}");
}

#[test]
fn ad_parentheses_match_exactly() {
    let dc = dc();
    let (p, g) = (unique("hp"), unique("hpg"));
    let case = Case {
        login: &format!("CORP\\{p}(b)"),
        user: &ad_user(
            dc,
            &format!("{p}(b)"),
            &format!("{p}(b)"),
            &format!("{p}-b@corp.example.com"),
        ),
        link: &format!("CORP\\{g}(b)"),
        group: &ad_group(dc, &format!("{g}(b)"), &format!("{g}(b)")),
        decoy_user: &ad_user(dc, &p, &p, &format!("{p}@corp.example.com")),
        decoy_group: &ad_group(dc, &g, &g),
    };
    let ts = check_ad(dc, &case);
    // The plain-name form and the UPN form too.
    ts.team("plain");
    ts.link("plain", &format!("{g}(b)"));
    assert_eq!(linked(&ts, "plain"), vec![Some(dc.object_sid(case.group))]);
    let paren_upn = format!("{p}(u)@corp.example.com");
    let upn_user = ad_user(dc, &format!("{p}-upn"), &format!("{p}-upn"), &paren_upn);
    dc.add_member(case.group, &upn_user);
    ts.account("u");
    ts.login("u", &paren_upn);
    let report = ts.sync(0);
    assert_eq!(
        changes(&report),
        vec![
            change("h", "plain", "add"),
            change("u", "exact", "add"),
            change("u", "plain", "add")
        ],
        "{report}"
    );
    assert_eq!(pinned(&ts, "u"), vec![Some(dc.object_sid(&upn_user))]);
}

#[test]
fn ad_asterisks_are_never_wildcards() {
    let dc = dc();
    // `*` is refused in sAMAccountName, so the hostile objects carry it in
    // their UPN and CN; the decoys are the only objects a wildcard `{p}*`
    // would find.
    let p = unique("hs");
    let q = unique("hsq");
    let star_upn = format!("{p}*@corp.example.com");
    let case = Case {
        login: &star_upn,
        user: &ad_user(dc, &format!("{q}-u*"), &format!("{q}-u"), &star_upn),
        link: &format!("CN={}*,{USERS_DN}", p),
        group: &ad_group(dc, &format!("{p}*"), &format!("{q}-g")),
        decoy_user: &ad_user(
            dc,
            &format!("{p}U"),
            &format!("{p}U"),
            &format!("{p}U@corp.example.com"),
        ),
        decoy_group: &ad_group(dc, &format!("{p}G"), &format!("{p}G")),
    };
    let ts = check_ad(dc, &case);

    // No group is named `{p}*`: refused, not the decoy `{p}G`.
    let run = ts.run(&["team", "link", "decoy", &format!("CORP\\{p}*")]);
    run.code(1);
    assert!(run.stderr.contains("no group"), "{}", run.stderr);
    let run = ts.run(&["team", "link", "decoy", &format!("{p}*")]);
    run.code(1);
    // No account is named `{p}*`: not found, not the decoy `{p}U`.
    ts.account("n");
    ts.login("n", &format!("CORP\\{p}*"));
    let report = ts.sync(0);
    assert!(changes(&report).is_empty(), "{report}");
    assert_eq!(
        report["failed_logins"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert_eq!(pinned(&ts, "n"), vec![None]);
}

#[test]
fn ad_non_ascii_names_match_exactly_and_case_insensitively() {
    let dc = dc();
    let s = suffix();
    let name = format!("Zoë-Ærø-名前-{s}");
    let ascii = format!("Zoe-Ærø-名前-{s}");
    let decomposed = format!("Zoe\u{308}-Ærø-名前-{s}");
    let group = format!("Zoë-Ærø-名前-g{s}");
    let group_decomposed = format!("Zoe\u{308}-Ærø-名前-g{s}");
    // Samba reserves the sAMAccountName a UPN implies: plain ASCII UPNs.
    let upn = |tag: &str| format!("{tag}-{s}@corp.example.com");
    let decoy_user = ad_user(dc, &ascii, &ascii, &upn("ascii"));
    let decomposed_user = ad_user(dc, &decomposed, &decomposed, &upn("nfd"));
    let case = Case {
        login: &format!("CORP\\{name}"),
        user: &ad_user(dc, &name, &name, &upn("nfc")),
        link: &format!("CORP\\{group}"),
        group: &ad_group(dc, &group, &group),
        decoy_user: &decoy_user,
        decoy_group: &ad_group(dc, &group_decomposed, &group_decomposed),
    };
    dc.add_member(case.decoy_group, &decomposed_user);
    let ts = check_ad(dc, &case);

    // AD compares names without regard to case, non-ASCII letters included:
    // the upper-case form names the same account, and nothing else.
    ts.account("upper");
    ts.login("upper", &format!("CORP\\{}", name.to_uppercase()));
    let report = ts.sync(0);
    assert_eq!(
        changes(&report),
        vec![change("upper", "exact", "add")],
        "{report}"
    );
    assert_eq!(pinned(&ts, "upper"), vec![Some(dc.object_sid(case.user))]);
}

#[test]
fn ad_longest_names_match_exactly() {
    let dc = dc();
    let p = unique("hl");
    // A user's sAMAccountName has at most 20 characters in AD; a group's 256.
    let user = format!("{p}{}", "y".repeat(20 - p.len()));
    let group = format!("{p}{}", "z".repeat(256 - p.len()));
    let case = Case {
        login: &format!("CORP\\{user}"),
        user: &ad_user(
            dc,
            &format!("{p}-u"),
            &user,
            &format!("{p}-u@corp.example.com"),
        ),
        link: &group,
        group: &ad_group(dc, &format!("{p}-g"), &group),
        decoy_user: &ad_user(
            dc,
            &format!("{p}-du"),
            &user[..19],
            &format!("{p}-du@corp.example.com"),
        ),
        decoy_group: &ad_group(dc, &format!("{p}-dg"), &group[..255]),
    };
    let ts = check_ad(dc, &case);
    ts.team("downlevel");
    ts.link("downlevel", &format!("CORP\\{group}"));
    assert_eq!(
        linked(&ts, "downlevel"),
        vec![Some(dc.object_sid(case.group))]
    );
}

#[test]
fn ad_dn_specials_in_cn_match_exactly() {
    let dc = dc();
    let p = unique("hd");
    // The CN of the hostile group reads `{p}\2a` and that of the decoy
    // `{p}*`: `\2a` undone once too often would name the decoy. The users'
    // CNs hold every character a DN escapes, so the group dump must match
    // member DNs exactly as the DC writes them.
    let group_cn = format!("{p}\\2a");
    let user_cn = format!("#{p}, Jr.+\"<x>\";=\\/*( )[]:|?");
    let case = Case {
        login: &format!("CORP\\{p}-u"),
        user: &ad_user(
            dc,
            &user_cn,
            &format!("{p}-u"),
            &format!("{p}-u@corp.example.com"),
        ),
        link: &format!("CN={},{USERS_DN}", rdn_escape(&group_cn)),
        group: &ad_group(dc, &group_cn, &format!("{p}-g")),
        decoy_user: &ad_user(
            dc,
            &format!("{user_cn}!"),
            &format!("{p}-du"),
            &format!("{p}-du@corp.example.com"),
        ),
        decoy_group: &ad_group(dc, &format!("{p}*"), &format!("{p}-dg")),
    };
    check_ad(dc, &case);
}

#[test]
fn ad_nul_in_names_is_kept_exactly() {
    let dc = dc();
    let p = unique("hn");
    let g = unique("hng");
    // No command line can carry a NUL, so these objects are named by DN and
    // SID. The decoys are the names with the NUL dropped. (Samba refused the
    // names cut at the NUL beside them when tried: it took `CN=x\00y` and
    // `CN=x` for the same DN, and a user `x` for a duplicate of `x<NUL>y`.)
    let user = ad_user(
        dc,
        &format!("{p}\0u"),
        &format!("{p}\0u"),
        &format!("{p}-u@corp.example.com"),
    );
    let group = ad_group(dc, &format!("{g}\0g"), &format!("{g}\0g"));
    let case = Case {
        login: &dc.object_sid(&user),
        user: &user,
        link: &group,
        group: &group,
        decoy_user: &ad_user(
            dc,
            &format!("{p}u"),
            &format!("{p}u"),
            &format!("{p}u@corp.example.com"),
        ),
        decoy_group: &ad_group(dc, &format!("{g}g"), &format!("{g}g")),
    };
    assert!(group.contains("\\00"), "{group}");
    let ts = check_ad(dc, &case);
    let label: String = rusqlite::Connection::open(&ts.store)
        .unwrap()
        .query_row(
            "SELECT group_label FROM team_groups g JOIN teams t ON t.id = g.team_id WHERE t.name = 'exact'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(label, format!("CORP\\{g}\0g"));
}

#[test]
fn ad_a_name_cut_at_a_nul_names_nothing() {
    let dc = dc();
    let (p, g) = (unique("hc"), unique("hcg"));
    let user = ad_user(
        dc,
        &format!("{p}\0u"),
        &format!("{p}\0u"),
        &format!("{p}-u@corp.example.com"),
    );
    let group = ad_group(dc, &format!("{g}\0g"), &format!("{g}\0g"));
    dc.add_member(&group, &user);
    let ts = Teamsync::new(dc);
    ts.team("exact");
    let run = ts.run(&["team", "link", "exact", &format!("CORP\\{g}")]);
    let linked_to = linked(&ts, "exact");
    ts.account("h");
    ts.login("h", &format!("CORP\\{p}"));
    let report = ts.sync(0);
    let mut wrong = Vec::new();
    if run.code != 1 || !linked_to.is_empty() {
        wrong.push(format!(
            "`team link exact CORP\\{g}`: expected exit 1 (no group is named {g}), got exit {} \
             linking {linked_to:?}, the SID of the group named {g}<NUL>g ({}); stdout {:?}",
            run.code,
            dc.object_sid(&group),
            run.stdout
        ));
    }
    let pins = pinned(&ts, "h");
    if pins != vec![None] {
        wrong.push(format!(
            "`login add h CORP\\{p}` then `--sync-now`: expected the login not found (no account \
             is named {p}), got it pinned to {pins:?}, the SID of the account named {p}<NUL>u ({}); \
             changes {:?}",
            dc.object_sid(&user),
            changes(&report)
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---- Control characters on the command line -------------------------------

#[test]
fn control_characters_are_refused_on_the_command_line_and_nul_cannot_be_passed() {
    let ts = Teamsync::new(dc());
    ts.account("bot");
    ts.team("deploy");
    for bad in ["\u{1}", "\t", "\n", "\r", "\u{1b}", "\u{7f}", "\u{85}"] {
        for args in [
            vec!["login", "add", "bot", &format!("CORP\\svc{bad}x")],
            vec![
                "login",
                "add",
                "bot",
                &format!("svc{bad}x@corp.example.com"),
            ],
            vec!["team", "link", "deploy", &format!("CORP\\grp{bad}x")],
            vec!["team", "link", "deploy", &format!("grp{bad}x")],
            vec!["account", "create", &format!("bot{bad}x")],
            vec!["team", "create", &format!("team{bad}x")],
        ] {
            let run = ts.run(&args);
            assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
            assert!(
                run.stderr.contains("control character"),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
    // Nothing was stored.
    let shown = ts.run(&["account", "show", "bot", "--json"]).json();
    assert_eq!(shown["logins"].as_array().unwrap().len(), 0, "{shown}");
    assert!(linked(&ts, "deploy").is_empty());

    // A NUL cannot reach teamsync through argv at all.
    let err = ts
        .command()
        .args(["login", "add", "bot", "CORP\\svc\0x"])
        .output()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

// ---- Generic LDAP (slapd) ----------------------------------------------------

fn slapd() -> &'static Slapd {
    Slapd::shared()
}

/// An inetOrgPerson under ou=people named by `uid` (cn and sn the same).
fn ldap_user(s: &Slapd, uid: &str) -> String {
    let dn = format!("uid={},{PEOPLE_DN}", rdn_escape(uid));
    let mut ldif = ldif_line("dn", &dn);
    ldif += "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n";
    for attr in ["uid", "cn", "sn"] {
        ldif += &ldif_line(attr, uid);
    }
    s.add_ldif(&ldif);
    dn
}

/// A groupOfNames under ou=groups named by `cn`, with one member.
fn ldap_group(s: &Slapd, cn: &str, member: &str) -> String {
    let dn = format!("cn={},{GROUPS_DN}", rdn_escape(cn));
    let mut ldif = ldif_line("dn", &dn);
    ldif += "objectClass: top\nobjectClass: groupOfNames\n";
    ldif += &ldif_line("cn", cn);
    ldif += &ldif_line("member", member);
    s.add_ldif(&ldif);
    dn
}

/// [`check_ad`] for slapd: `user` must be the only member of `group`
/// already. Runs a pass reading members from the groups and one reading
/// memberOf.
fn check_ldap(s: &Slapd, case: &Case) -> Teamsync {
    let ts = Teamsync::for_slapd(s, "", "");
    ts.account("h");
    ts.login("h", case.login);
    ts.account("d");
    ts.login("d", &s.entry_uuid(case.decoy_user));
    ts.team("exact");
    ts.link("exact", case.link);
    ts.team("decoy");
    ts.link("decoy", case.decoy_group);
    assert_eq!(
        linked(&ts, "exact"),
        vec![Some(s.entry_uuid(case.group))],
        "team link exact {:?} linked another group",
        case.link
    );
    // memberOf on a copy of the store as it is now; member lists on the
    // store itself, which later checks go on using.
    let memberof = copy_with(
        &ts,
        Teamsync::for_slapd(s, "    use_memberof: true\n", ""),
        str::to_owned,
    );
    for (how, run) in [("member lists", &ts), ("memberOf", &memberof)] {
        let report = run.sync(0);
        assert_eq!(
            changes(&report),
            vec![change("d", "decoy", "add"), change("h", "exact", "add")],
            "{how}: login {:?}, link {:?}: {report}",
            case.login,
            case.link
        );
        assert_eq!(
            pinned(run, "h"),
            vec![Some(s.entry_uuid(case.user))],
            "{how}: login {:?} was pinned to another account",
            case.login
        );
    }
    ts
}

/// A hostile user in a hostile group, and a decoy user in a decoy group.
fn ldap_case(s: &Slapd, hostile: &str, decoy: &str) -> (String, String, String, String) {
    let user = ldap_user(s, hostile);
    let group = ldap_group(s, hostile, &user);
    let decoy_user = ldap_user(s, decoy);
    let decoy_group = ldap_group(s, decoy, &decoy_user);
    (user, group, decoy_user, decoy_group)
}

#[test]
fn ldap_asterisks_and_parentheses_match_exactly() {
    let s = slapd();
    for (hostile, decoy) in [
        (format!("{}*", unique("ls")), None),
        (format!("{}(b)", unique("lp")), None),
        (format!("*{}*)(uid=*", unique("lx")), Some(unique("lx"))),
    ] {
        // The decoy: what the value as a pattern (or cut at the first
        // special character) would find.
        let decoy = decoy.unwrap_or_else(|| {
            let cut = hostile.find(['*', '(']).unwrap();
            format!(
                "{}{}",
                &hostile[..cut],
                if hostile.ends_with('*') { "X" } else { "" }
            )
        });
        let (user, group, decoy_user, decoy_group) = ldap_case(s, &hostile, &decoy);
        check_ldap(
            s,
            &Case {
                login: &hostile,
                user: &user,
                link: &hostile,
                group: &group,
                decoy_user: &decoy_user,
                decoy_group: &decoy_group,
            },
        );
    }
}

#[test]
fn ldap_non_ascii_names_match_exactly() {
    let s = slapd();
    let sfx = suffix();
    let hostile = format!("Zoë-Ærø-名前-{sfx}");
    let (user, group, decoy_user, decoy_group) =
        ldap_case(s, &hostile, &format!("Zoe-Ærø-名前-{sfx}"));
    let ts = check_ldap(
        s,
        &Case {
            login: &hostile,
            user: &user,
            link: &hostile,
            group: &group,
            decoy_user: &decoy_user,
            decoy_group: &decoy_group,
        },
    );
    // slapd compares uid Unicode-normalised and case-folded: the decomposed
    // and the upper-case forms name the same entry (it refuses to add them
    // beside it), and nothing else.
    for (account, login) in [
        ("nfd", format!("Zoe\u{308}-Ærø-名前-{sfx}")),
        ("upper", hostile.to_uppercase()),
    ] {
        ts.account(account);
        ts.login(account, &login);
    }
    let report = ts.sync(0);
    assert_eq!(
        changes(&report),
        vec![
            change("nfd", "exact", "add"),
            change("upper", "exact", "add")
        ],
        "{report}"
    );
    assert_eq!(pinned(&ts, "nfd"), vec![Some(s.entry_uuid(&user))]);
}

#[test]
fn ldap_backslashes_match_exactly_by_dn() {
    let s = slapd();
    let p = unique("lb");
    // uid and cn `{p}\2a`, decoys `{p}*`: `\2a` read as an escape would
    // name the decoys.
    let hostile = format!("{p}\\2a");
    let (user, group, decoy_user, decoy_group) = ldap_case(s, &hostile, &format!("{p}*"));
    let ts = check_ldap(
        s,
        &Case {
            login: &user,
            user: &user,
            link: &group,
            group: &group,
            decoy_user: &decoy_user,
            decoy_group: &decoy_group,
        },
    );
    // A bare name with a backslash reads as NETBIOS\name, which an LDAP
    // directory does not use: refused, never looked up.
    let run = ts.run(&["login", "add", "h", &hostile]);
    run.code(2);
    let run = ts.run(&["team", "link", "decoy", &hostile]);
    assert_ne!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(pinned(&ts, "h").len(), 1);
    assert_eq!(linked(&ts, "decoy").len(), 1);
}

#[test]
fn ldap_longest_names_match_exactly() {
    let s = slapd();
    let p = unique("ll");
    // slapd's mdb refuses a cn of more than about 242 characters here.
    let hostile = format!("{p}{}", "w".repeat(240 - p.len()));
    let (user, group, decoy_user, decoy_group) = ldap_case(s, &hostile, &hostile[..239]);
    check_ldap(
        s,
        &Case {
            login: &hostile,
            user: &user,
            link: &hostile,
            group: &group,
            decoy_user: &decoy_user,
            decoy_group: &decoy_group,
        },
    );
}

#[test]
fn ldap_nul_in_names_is_kept_exactly() {
    let s = slapd();
    let p = unique("ln");
    let (user, group, decoy_user, decoy_group) = ldap_case(s, &format!("{p}\0x"), &p);
    assert!(user.contains("\\00"), "{user}");
    let ts = check_ldap(
        s,
        &Case {
            login: &user,
            user: &user,
            link: &group,
            group: &group,
            decoy_user: &decoy_user,
            decoy_group: &decoy_group,
        },
    );
    // The name cut at the NUL is the decoy's, and only the decoy's.
    ts.account("cut");
    ts.login("cut", &p);
    ts.team("cut");
    ts.link("cut", &p);
    assert_eq!(linked(&ts, "cut"), vec![Some(s.entry_uuid(&decoy_group))]);
    let report = ts.sync(0);
    assert_eq!(
        changes(&report),
        vec![
            change("cut", "cut", "add"),
            change("cut", "decoy", "add"),
            change("d", "cut", "add"),
        ],
        "{report}"
    );
    assert_eq!(pinned(&ts, "cut"), vec![Some(s.entry_uuid(&decoy_user))]);
}

#[test]
fn ldap_a_login_the_server_cannot_parse_holds_only_its_own_account() {
    let s = slapd();
    let (good, odd) = (unique("lg"), format!("{}=x", unique("le")));
    let good_dn = s.add_user(&good);
    let odd_dn = ldap_user(s, &odd);
    let group = unique("lgg");
    s.add_group(&group, &[&good_dn, &odd_dn]);
    let ts = Teamsync::for_slapd(s, "", "");
    ts.account("good");
    ts.login("good", &good);
    ts.team("deploy");
    ts.link("deploy", &group);
    for (account, login) in [
        ("odd", odd.clone()),
        ("typo", format!("uid={good}\\zz,{PEOPLE_DN}")),
    ] {
        ts.account(account);
        let added = ts.run(&["login", "add", account, &login]);
        if added.code == 2 {
            continue; // refused as malformed: fine
        }
        added.ok();
    }
    let run = ts.run(&["--sync-now", "--json"]);
    assert!(
        run.code == 0 || run.code == 1,
        "one unreadable login stopped the whole pass: exit {}\n{}{}",
        run.code,
        run.stdout,
        run.stderr
    );
    assert!(
        changes(&run.json()).contains(&change("good", "deploy", "add")),
        "{}",
        run.stdout
    );
}
