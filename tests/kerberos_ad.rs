//! Kerberos binds (SASL GSSAPI) against the Samba DC's own KDC: from a
//! keytab, from an existing credential cache, and a refused one.

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::samba::{SambaDc, unique};
use common::teamsync::{Teamsync, change, changes};

const PASSWORD: &str = "Krb-Pass-123!";

/// A GSSAPI config over plain LDAP (the SASL layer seals the session), with
/// the keytab line given.
fn kerberos_config(dc: &SambaDc, keytab_line: &str) -> Teamsync {
    Teamsync::with_yaml(
        &format!(
            "directory:\n  url: ldap://{ip}\n  base_dn: {base}\n  bind:\n    method: gssapi\n{keytab_line}    \
             krb5_config: {krb5}\n    service_host: dc1.corp.example.com\n  tls:\n    plaintext: true\n",
            ip = dc.ip(),
            base = dc.base_dn(),
            krb5 = dc.krb5_conf().display(),
        ),
        "",
    )
}

fn export_keytab(dc: &SambaDc, principal: &str, into: &Path) -> PathBuf {
    let keytab = into.join(format!("{}.keytab", unique("kt")));
    let status = Command::new("samba-tool")
        .args(["domain", "exportkeytab"])
        .arg(&keytab)
        .arg(format!("--principal={principal}@CORP.EXAMPLE.COM"))
        .arg("-s")
        .arg(dc.dir().join("etc/smb.conf"))
        .status()
        .unwrap();
    assert!(status.success(), "samba-tool domain exportkeytab failed");
    std::fs::set_permissions(&keytab, std::fs::Permissions::from_mode(0o600)).unwrap();
    keytab
}

/// A directory where the bind account is in a linked group.
fn seeded(dc: &SambaDc, ts: &Teamsync) {
    let group = unique("grp");
    let group_dn = dc.add_security_group(&group);
    let user = unique("u");
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);
    ts.account("bot");
    ts.login("bot", &format!("CORP\\{user}"));
    ts.team("deploy");
    ts.link("deploy", &format!("CORP\\{group}"));
}

#[test]
fn a_keytab_binds_and_a_pass_runs() {
    let dc = SambaDc::shared();
    let principal = unique("krb");
    dc.add_user_with_password(&principal, PASSWORD);
    let scratch = tempfile::tempdir().unwrap();
    let keytab = export_keytab(dc, &principal, scratch.path());
    let ts = kerberos_config(dc, &format!("    keytab: {}\n", keytab.display()));
    seeded(dc, &ts);

    let check = ts.run(&["check"]);
    check.ok();
    assert!(
        check.stdout.contains("sealed by the Kerberos"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("tokenGroups: readable"),
        "{}",
        check.stdout
    );
    assert_eq!(changes(&ts.sync(0)), vec![change("bot", "deploy", "add")]);
}

#[test]
fn an_existing_credential_cache_binds() {
    let dc = SambaDc::shared();
    let principal = unique("krb");
    dc.add_user_with_password(&principal, PASSWORD);
    let scratch = tempfile::tempdir().unwrap();
    let cache = format!("FILE:{}", scratch.path().join("ccache").display());
    let mut kinit = Command::new("kinit")
        .arg(format!("{principal}@CORP.EXAMPLE.COM"))
        .env("KRB5_CONFIG", dc.krb5_conf())
        .env("KRB5CCNAME", &cache)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(kinit.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(kinit.wait().unwrap().success(), "kinit failed");

    let ts = kerberos_config(dc, "");
    // Every command that binds needs the cache, team link included.
    let group = unique("grp");
    let group_dn = dc.add_security_group(&group);
    let user = unique("u");
    let user_dn = dc.add_user(&user);
    dc.add_member(&group_dn, &user_dn);
    ts.account("bot");
    ts.login("bot", &format!("CORP\\{user}"));
    ts.team("deploy");
    let link = ts
        .command()
        .args(["team", "link", "deploy", &group_dn])
        .env("KRB5CCNAME", &cache)
        .output()
        .unwrap();
    assert!(
        link.status.success(),
        "{}",
        String::from_utf8_lossy(&link.stderr)
    );
    let run = ts
        .command()
        .args(["--sync-now", "--json"])
        .env("KRB5CCNAME", &cache)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["added"], 1);
}

#[test]
fn a_keytab_for_a_disabled_account_is_refused_with_exit_69() {
    let dc = SambaDc::shared();
    let principal = unique("krb");
    let dn = dc.add_user_with_password(&principal, PASSWORD);
    let scratch = tempfile::tempdir().unwrap();
    let keytab = export_keytab(dc, &principal, scratch.path());
    dc.disable_user(&dn);
    let ts = kerberos_config(dc, &format!("    keytab: {}\n", keytab.display()));
    let run = ts.run(&["--sync-now"]);
    run.code(69);
    assert!(
        run.stderr.contains("Kerberos") || run.stderr.contains("GSSAPI"),
        "{}",
        run.stderr
    );
}
