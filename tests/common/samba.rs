//! A real Samba AD domain controller for integration tests: provisioned,
//! started and probed through `scripts/samba-dc.sh`, seeded and read back
//! with the OpenLDAP command-line tools over LDAPS as Administrator.
//!
//! Each DC gets its own loopback address 127.0.0.N (20..=250), reserved by an
//! exclusive `flock` on `/tmp/teamsync-dc-ip-N.lock` for the DC's life, so
//! parallel tests and several test binaries never collide. The lock file
//! holds the DC's folder, so whoever takes the address next removes what a
//! dead owner left behind (the shared DC lives in a static, never dropped).
//!
//! The samba process dies with the test process, panics included (see
//! [`super::server_process`], which starts, probes and stops it).

#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::server_process::ServerProcess;

pub const REALM: &str = "CORP.EXAMPLE.COM";
pub const NETBIOS_DOMAIN: &str = "CORP";
pub const DNS_DOMAIN: &str = "corp.example.com";
pub const HOSTNAME: &str = "dc1.corp.example.com";
pub const BASE_DN: &str = "DC=corp,DC=example,DC=com";
pub const USERS_DN: &str = "CN=Users,DC=corp,DC=example,DC=com";
pub const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=corp,DC=example,DC=com";

/// `groupType` values (the 0x80000000 bit marks a security group).
pub const GLOBAL_SECURITY: i32 = -2147483646;
pub const DOMAIN_LOCAL_SECURITY: i32 = -2147483644;
pub const UNIVERSAL_SECURITY: i32 = -2147483640;
pub const GLOBAL_DISTRIBUTION: i32 = 2;

/// `userAccountControl` bits.
pub const UAC_ACCOUNTDISABLE: u32 = 0x2;
pub const UAC_PASSWD_NOTREQD: u32 = 0x20;
pub const UAC_NORMAL_ACCOUNT: u32 = 0x200;

const IP_RANGE: std::ops::RangeInclusive<u8> = 20..=250;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running (or deliberately stopped) throwaway DC.
pub struct SambaDc {
    dir: PathBuf,
    ip: String,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    admin_password_file: PathBuf,
    /// Held for the DC's life: the exclusive claim on `ip`.
    ip_lock: File,
    samba: ServerProcess,
}

impl SambaDc {
    /// Provisions and starts a fresh DC on its own loopback address; blocks
    /// until LDAPS answers. Dropping it kills samba and removes its folder.
    pub fn start() -> SambaDc {
        sweep_stale_dcs();
        let dir = tempfile::Builder::new()
            .prefix("teamsync-dc-")
            .tempdir_in("/tmp")
            .unwrap_or_else(|err| panic!("cannot create a DC folder under /tmp: {err}"))
            .keep();
        let (ip, ip_lock) = claim_ip(&dir);

        let started = Instant::now();
        let out = script()
            .args(["provision"])
            .arg(&dir)
            .arg(&ip)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", script_path().display()));
        if !out.status.success() {
            let _ = fs::remove_dir_all(&dir);
            panic!(
                "provisioning a Samba AD DC in {} on {ip} failed ({}):\n{}{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let provisioned = started.elapsed();

        let dc = SambaDc {
            ca_file: dir.join("tls/ca.pem"),
            other_ca_file: dir.join("tls/other-ca.pem"),
            admin_password_file: dir.join("admin-password"),
            samba: server_process(&dir, &ip, READY_TIMEOUT),
            dir,
            ip,
            ip_lock,
        };
        let ready = dc.samba.spawn_and_wait();
        eprintln!(
            "samba-dc: {} provisioned in {:.1}s, answered LDAPS {:.1}s after start ({})",
            dc.ip,
            provisioned.as_secs_f64(),
            ready.as_secs_f64(),
            dc.dir.display()
        );
        dc
    }

    /// One DC shared by all tests of the current test binary, started on
    /// first use. Tests give every object a unique name (see [`unique`]) and
    /// never stop it. If starting it failed once, every later call fails
    /// fast with the same message instead of provisioning again.
    pub fn shared() -> &'static SambaDc {
        static SHARED: OnceLock<Result<SambaDc, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            panic::catch_unwind(AssertUnwindSafe(SambaDc::start)).map_err(|payload| {
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".to_string())
            })
        });
        match shared {
            Ok(dc) => dc,
            Err(msg) => panic!("the shared Samba DC failed to start: {msg}"),
        }
    }

    pub fn ip(&self) -> &str {
        &self.ip
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}", self.ip)
    }

    /// Plain LDAP port; simple binds need StartTLS there (Samba requires
    /// transport encryption for them).
    pub fn starttls_url(&self) -> String {
        format!("ldap://{}", self.ip)
    }

    pub fn base_dn(&self) -> &str {
        BASE_DN
    }

    pub fn hostname(&self) -> &str {
        HOSTNAME
    }

    /// The CA that signed the DC's certificate (SAN: dc1.corp.example.com and the IP).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A CA unrelated to the DC's certificate, for "untrusted CA" tests.
    pub fn other_ca_file(&self) -> &Path {
        &self.other_ca_file
    }

    pub fn admin_bind_dn(&self) -> &str {
        ADMIN_DN
    }

    /// The Administrator password, without a trailing newline (0600).
    pub fn admin_password_file(&self) -> &Path {
        &self.admin_password_file
    }

    pub fn admin_password(&self) -> String {
        fs::read_to_string(&self.admin_password_file).unwrap_or_else(|err| {
            panic!("cannot read {}: {err}", self.admin_password_file.display())
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A krb5.conf naming this DC as the KDC of CORP.EXAMPLE.COM.
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir.join("krb5.conf")
    }

    /// The `TEAMSYNC_DC_*` variables of `scripts/samba-dc.sh env`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let out = run_checked(script().arg("env").arg(&self.dir), None, "samba-dc.sh env");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let (name, value) = line.strip_prefix("export ")?.split_once('=')?;
                Some((name.to_string(), value.trim_matches('\'').to_string()))
            })
            .collect()
    }

    /// The last lines samba wrote to its stdout/stderr, for failure messages.
    pub fn log_tail(&self) -> String {
        self.samba.log_tail()
    }

    // ---- LDAP as Administrator over LDAPS -------------------------------

    /// `ldapadd` (entries without changetype lines); panics with ldapadd's
    /// stderr and the LDIF on failure.
    pub fn add_ldif(&self, ldif: &str) {
        run_checked(&mut self.ldap_command("ldapadd"), Some(ldif), "ldapadd");
    }

    /// `ldapmodify` (LDIF with changetype lines); panics on failure.
    pub fn modify_ldif(&self, ldif: &str) {
        run_checked(
            &mut self.ldap_command("ldapmodify"),
            Some(ldif),
            "ldapmodify",
        );
    }

    /// `ldapmodify`, returning the tool's exit code (an LDAP result code,
    /// e.g. 53 unwillingToPerform) and stderr on failure, for tests that
    /// expect the DC to refuse something.
    pub fn try_modify_ldif(&self, ldif: &str) -> Result<(), LdapToolError> {
        run(&mut self.ldap_command("ldapmodify"), Some(ldif)).map(drop)
    }

    /// `ldapsearch -LLL -o ldif-wrap=no` as Administrator; returns the LDIF.
    /// `scope` is base, one, sub or children. Panics on failure, including
    /// a missing base (code 32); see [`SambaDc::try_search`].
    pub fn search(&self, base: &str, scope: &str, filter: &str, attrs: &[&str]) -> String {
        self.try_search(base, scope, filter, attrs)
            .unwrap_or_else(|err| panic!("ldapsearch -b {base:?} -s {scope} {filter:?}: {err}"))
    }

    pub fn try_search(
        &self,
        base: &str,
        scope: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<String, LdapToolError> {
        let mut cmd = self.ldap_command("ldapsearch");
        cmd.args([
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-b",
            base,
            "-s",
            scope,
            filter,
        ]);
        cmd.args(attrs);
        run(&mut cmd, None).map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether an entry exists at `dn`.
    pub fn exists(&self, dn: &str) -> bool {
        match self.try_search(dn, "base", "(objectClass=*)", &["1.1"]) {
            Ok(_) => true,
            Err(err) if err.code == Some(32) => false,
            Err(err) => panic!("ldapsearch -b {dn:?}: {err}"),
        }
    }

    /// Values of one attribute of the entry at `dn` (base-scope read, so
    /// constructed attributes such as tokenGroups work), base64 decoded.
    pub fn attr_bytes(&self, dn: &str, attr: &str) -> Vec<Vec<u8>> {
        ldif_values(&self.search(dn, "base", "(objectClass=*)", &[attr]), attr)
    }

    /// Values of one attribute of the entry at `dn` as text.
    pub fn attr(&self, dn: &str, attr: &str) -> Vec<String> {
        ldif_strings(&self.search(dn, "base", "(objectClass=*)", &[attr]), attr)
    }

    /// objectSid of an entry as `S-1-5-21-…`.
    pub fn object_sid(&self, dn: &str) -> String {
        match self.attr_bytes(dn, "objectSid").as_slice() {
            [sid] => sid_to_string(sid),
            other => panic!("{dn} has {} objectSid values", other.len()),
        }
    }

    /// objectGUID of an entry in its usual string form.
    pub fn object_guid(&self, dn: &str) -> String {
        match self.attr_bytes(dn, "objectGUID").as_slice() {
            [guid] => guid_to_string(guid),
            other => panic!("{dn} has {} objectGUID values", other.len()),
        }
    }

    /// The last sub-authority of the entry's objectSid.
    pub fn rid(&self, dn: &str) -> u32 {
        let sid = self.object_sid(dn);
        sid.rsplit('-')
            .next()
            .and_then(|rid| rid.parse().ok())
            .unwrap_or_else(|| panic!("objectSid {sid} of {dn} has no RID"))
    }

    /// The domain SID (objectSid of the domain root).
    pub fn domain_sid(&self) -> String {
        self.object_sid(BASE_DN)
    }

    /// tokenGroups of an account: the SIDs of every security group it is in,
    /// transitively, primary group included.
    pub fn token_groups(&self, dn: &str) -> Vec<String> {
        self.attr_bytes(dn, "tokenGroups")
            .iter()
            .map(|sid| sid_to_string(sid))
            .collect()
    }

    /// Direct memberships (DNs), primary group excluded.
    pub fn member_of(&self, dn: &str) -> Vec<String> {
        self.attr(dn, "memberOf")
    }

    pub fn user_account_control(&self, dn: &str) -> u32 {
        match self.attr(dn, "userAccountControl").as_slice() {
            [uac] => uac
                .parse()
                .unwrap_or_else(|err| panic!("userAccountControl {uac:?} of {dn}: {err}")),
            other => panic!("{dn} has userAccountControl {other:?}"),
        }
    }

    // ---- Seeding --------------------------------------------------------

    /// An enabled user (userAccountControl 544: normal account, password not
    /// required) under CN=Users, with sAMAccountName `sam` and UPN
    /// `sam@corp.example.com`. Returns its DN.
    pub fn add_user(&self, sam: &str) -> String {
        self.add_user_in(USERS_DN, sam)
    }

    pub fn add_user_in(&self, parent_dn: &str, sam: &str) -> String {
        let dn = self.add_account(
            parent_dn,
            sam,
            UAC_NORMAL_ACCOUNT | UAC_PASSWD_NOTREQD,
            None,
        );
        let uac = self.user_account_control(&dn);
        assert_eq!(
            uac & UAC_ACCOUNTDISABLE,
            0,
            "{dn} came out disabled (userAccountControl {uac})"
        );
        dn
    }

    /// A disabled user (userAccountControl 546) under CN=Users.
    pub fn add_disabled_user(&self, sam: &str) -> String {
        let uac = UAC_NORMAL_ACCOUNT | UAC_PASSWD_NOTREQD | UAC_ACCOUNTDISABLE;
        self.add_account(USERS_DN, sam, uac, None)
    }

    /// An enabled user (userAccountControl 512) with a password, so that it
    /// can bind itself (by DN or by UPN `sam@corp.example.com`).
    pub fn add_user_with_password(&self, sam: &str, password: &str) -> String {
        self.add_account(USERS_DN, sam, UAC_NORMAL_ACCOUNT, Some(password))
    }

    fn add_account(&self, parent_dn: &str, sam: &str, uac: u32, password: Option<&str>) -> String {
        let dn = child_dn("CN", sam, parent_dn);
        let mut ldif = ldif_line("dn", &dn);
        ldif += "objectClass: user\n";
        ldif += &ldif_line("sAMAccountName", sam);
        ldif += &ldif_line("userPrincipalName", &format!("{sam}@{DNS_DOMAIN}"));
        ldif += &format!("userAccountControl: {uac}\n");
        if let Some(password) = password {
            ldif += &format!("unicodePwd:: {}\n", base64_encode(&unicode_pwd(password)));
        }
        self.add_ldif(&ldif);
        dn
    }

    /// Replaces a user's password (unicodePwd, over LDAPS as Administrator).
    pub fn set_password(&self, dn: &str, password: &str) {
        self.modify_ldif(&format!(
            "{}changetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n",
            ldif_line("dn", dn),
            base64_encode(&unicode_pwd(password))
        ));
    }

    /// A global security group under CN=Users; returns its DN.
    pub fn add_security_group(&self, name: &str) -> String {
        self.add_group_in(USERS_DN, name, GLOBAL_SECURITY)
    }

    /// A global distribution group under CN=Users; returns its DN.
    pub fn add_distribution_group(&self, name: &str) -> String {
        self.add_group_in(USERS_DN, name, GLOBAL_DISTRIBUTION)
    }

    /// A group of any `groupType` (see the constants) under `parent_dn`.
    pub fn add_group_in(&self, parent_dn: &str, name: &str, group_type: i32) -> String {
        let dn = child_dn("CN", name, parent_dn);
        self.add_ldif(&format!(
            "{}objectClass: group\n{}groupType: {group_type}\n",
            ldif_line("dn", &dn),
            ldif_line("sAMAccountName", name)
        ));
        dn
    }

    /// An organizational unit under the domain root; returns its DN.
    pub fn add_ou(&self, name: &str) -> String {
        self.add_ou_in(BASE_DN, name)
    }

    pub fn add_ou_in(&self, parent_dn: &str, name: &str) -> String {
        let dn = child_dn("OU", name, parent_dn);
        self.add_ldif(&format!(
            "{}objectClass: organizationalUnit\n",
            ldif_line("dn", &dn)
        ));
        dn
    }

    pub fn add_member(&self, group_dn: &str, member_dn: &str) {
        self.modify_values(group_dn, "add", "member", &[member_dn]);
    }

    pub fn remove_member(&self, group_dn: &str, member_dn: &str) {
        self.modify_values(group_dn, "delete", "member", &[member_dn]);
    }

    /// Makes `group_dn` the user's primary group (primaryGroupID = the
    /// group's RID), adding the user as a direct member first if needed, as
    /// AD requires. AD then drops the group from the user's memberOf.
    pub fn set_primary_group(&self, user_dn: &str, group_dn: &str) {
        let is_member = self
            .member_of(user_dn)
            .iter()
            .any(|dn| dn.eq_ignore_ascii_case(group_dn));
        if !is_member {
            self.add_member(group_dn, user_dn);
        }
        let rid = self.rid(group_dn).to_string();
        self.modify_values(user_dn, "replace", "primaryGroupID", &[&rid]);
    }

    /// Sets the ACCOUNTDISABLE bit of userAccountControl.
    pub fn disable_user(&self, dn: &str) {
        let uac = self.user_account_control(dn) | UAC_ACCOUNTDISABLE;
        self.modify_values(dn, "replace", "userAccountControl", &[&uac.to_string()]);
    }

    /// Clears the ACCOUNTDISABLE bit of userAccountControl.
    pub fn enable_user(&self, dn: &str) {
        let uac = self.user_account_control(dn) & !UAC_ACCOUNTDISABLE;
        self.modify_values(dn, "replace", "userAccountControl", &[&uac.to_string()]);
    }

    /// `changetype: modify` with one operation (add, delete, replace) on one attribute.
    pub fn modify_values(&self, dn: &str, op: &str, attr: &str, values: &[&str]) {
        let mut ldif = ldif_line("dn", dn);
        ldif += &format!("changetype: modify\n{op}: {attr}\n");
        for value in values {
            ldif += &ldif_line(attr, value);
        }
        ldif += "-\n";
        self.modify_ldif(&ldif);
    }

    /// Deletes one entry (a leaf).
    pub fn delete_entry(&self, dn: &str) {
        run_checked(self.ldap_command("ldapdelete").arg(dn), None, "ldapdelete");
    }

    /// Deletes an entry and everything below it.
    pub fn delete_tree(&self, dn: &str) {
        run_checked(
            self.ldap_command("ldapdelete").args(["-r", dn]),
            None,
            "ldapdelete -r",
        );
    }

    /// Renames and/or moves an entry. `new_rdn` is a whole RDN such as
    /// `CN=new-name` (value escaped as in a DN); `new_superior` moves it
    /// under another parent. Returns the new DN. objectSid and objectGUID
    /// stay the same.
    pub fn rename_entry(&self, dn: &str, new_rdn: &str, new_superior: Option<&str>) -> String {
        let mut ldif = ldif_line("dn", dn);
        ldif += "changetype: modrdn\n";
        ldif += &ldif_line("newrdn", new_rdn);
        ldif += "deleteoldrdn: 1\n";
        if let Some(superior) = new_superior {
            ldif += &ldif_line("newsuperior", superior);
        }
        self.modify_ldif(&ldif);
        let parent = match new_superior {
            Some(superior) => superior.to_string(),
            None => parent_dn(dn)
                .unwrap_or_else(|| panic!("{dn:?} has no parent"))
                .to_string(),
        };
        format!("{new_rdn},{parent}")
    }

    // ---- Process control ------------------------------------------------

    /// Stops samba (SIGTERM, SIGKILL after 10 s) and waits until it has
    /// exited: the DC then refuses connections. Never use on the shared DC.
    pub fn stop(&self) {
        self.samba.stop();
    }

    /// Starts samba again (stopping it first if it runs) and waits until
    /// LDAPS answers.
    pub fn restart(&self) {
        let ready = self.samba.restart();
        eprintln!(
            "samba-dc: {} restarted, answered LDAPS after {:.1}s",
            self.ip,
            ready.as_secs_f64()
        );
    }

    /// Whether the samba process is running.
    pub fn is_running(&self) -> bool {
        self.samba.is_running()
    }

    /// Admin LDAP tool invocation over LDAPS that verifies the DC's certificate.
    fn ldap_command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.env("LDAPTLS_CACERT", &self.ca_file)
            .env("LDAPTLS_REQCERT", "demand")
            .args([
                "-H",
                &self.ldaps_url(),
                "-x",
                "-o",
                "nettimeout=10",
                "-D",
                ADMIN_DN,
                "-y",
            ])
            .arg(&self.admin_password_file);
        cmd
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        self.stop();
        if let Err(err) = fs::remove_dir_all(&self.dir) {
            eprintln!("samba-dc: cannot remove {}: {err}", self.dir.display());
        }
        // The folder is gone: nothing for the next owner of the address to clean.
        let _ = self.ip_lock.set_len(0);
    }
}

/// A failed OpenLDAP tool run: its exit code (the LDAP result code for
/// server errors) and stderr.
#[derive(Debug)]
pub struct LdapToolError {
    pub code: Option<i32>,
    pub stderr: String,
}

impl std::fmt::Display for LdapToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(f, "exit code {code}: {}", self.stderr.trim_end()),
            None => write!(f, "killed by a signal: {}", self.stderr.trim_end()),
        }
    }
}

/// `prefix` plus a short suffix unique within this test process (pid and a
/// counter in base 36), e.g. `grp-1a2b3` + `4`. Only [a-z0-9-], at most 20
/// characters (the sAMAccountName limit), the prefix shortened if needed.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    assert!(
        prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "unique() prefixes use only [a-z0-9-], got {prefix:?}"
    );
    let suffix = format!(
        "{}{}",
        base36(std::process::id()),
        base36(COUNTER.fetch_add(1, Ordering::Relaxed))
    );
    let keep = prefix.len().min(20 - 1 - suffix.len());
    format!("{}-{suffix}", &prefix[..keep])
}

fn base36(mut n: u32) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit(n % 36, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

// ---- LDIF, DN and SID helpers ------------------------------------------

/// Values of `attr` in every entry of an LDIF text (as ldapsearch prints
/// it), base64 values (`attr:: …`) decoded. Attribute names compare
/// case-insensitively; folded lines are unfolded.
pub fn ldif_values(ldif: &str, attr: &str) -> Vec<Vec<u8>> {
    let mut lines: Vec<String> = Vec::new();
    for line in ldif.lines() {
        match (line.strip_prefix(' '), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => lines.push(line.to_string()),
        }
    }
    lines
        .iter()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            if !name.eq_ignore_ascii_case(attr) {
                return None;
            }
            Some(match rest.strip_prefix(':') {
                Some(b64) => base64_decode(b64.trim()),
                None => rest.strip_prefix(' ').unwrap_or(rest).as_bytes().to_vec(),
            })
        })
        .collect()
}

/// [`ldif_values`] as text.
pub fn ldif_strings(ldif: &str, attr: &str) -> Vec<String> {
    ldif_values(ldif, attr)
        .into_iter()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .collect()
}

/// The DNs of the entries in an LDIF text.
pub fn ldif_dns(ldif: &str) -> Vec<String> {
    ldif_strings(ldif, "dn")
}

/// One LDIF line `name: value`, base64-encoded (`name:: …`) when the value
/// is not a safe string (RFC 2849).
pub fn ldif_line(name: &str, value: &str) -> String {
    let safe = value
        .bytes()
        .all(|b| b.is_ascii() && b != b'\0' && b != b'\n' && b != b'\r')
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    if safe {
        format!("{name}: {value}\n")
    } else {
        format!("{name}:: {}\n", base64_encode(value.as_bytes()))
    }
}

/// `ATTR=value,parent` with the value escaped for a DN (RFC 4514).
pub fn child_dn(attr: &str, value: &str, parent: &str) -> String {
    format!("{attr}={},{parent}", escape_rdn_value(value))
}

pub fn escape_rdn_value(value: &str) -> String {
    let mut out = String::new();
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
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

/// The DN without its first RDN (splitting at the first unescaped comma).
pub fn parent_dn(dn: &str) -> Option<&str> {
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => return Some(&dn[i + 1..]),
            _ => {}
        }
    }
    None
}

/// Binary SID (revision, count, 6-byte big-endian authority, little-endian
/// sub-authorities) to `S-1-5-21-…`.
pub fn sid_to_string(sid: &[u8]) -> String {
    assert!(sid.len() >= 8, "SID too short: {sid:?}");
    let count = usize::from(sid[1]);
    assert_eq!(
        sid.len(),
        8 + 4 * count,
        "SID length does not match its count: {sid:?}"
    );
    let authority = sid[2..8]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut out = format!("S-{}-{authority}", sid[0]);
    for sub in sid[8..].chunks_exact(4) {
        out += &format!("-{}", u32::from_le_bytes([sub[0], sub[1], sub[2], sub[3]]));
    }
    out
}

/// 16-byte objectGUID (first three fields little-endian) to its string form.
pub fn guid_to_string(g: &[u8]) -> String {
    assert_eq!(g.len(), 16, "objectGUID must be 16 bytes: {g:?}");
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        g[3],
        g[2],
        g[1],
        g[0],
        g[5],
        g[4],
        g[7],
        g[6],
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

/// unicodePwd value: the password in double quotes, UTF-16LE.
fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = B64
            .iter()
            .position(|&b| b == c)
            .unwrap_or_else(|| panic!("invalid base64 {text:?}"));
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

// ---- Processes ----------------------------------------------------------

pub fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/samba-dc.sh")
}

/// The samba process of the DC provisioned in `dir`, not started yet. The
/// benchmark waits longer for its big seeded DC than tests do for theirs.
pub fn server_process(dir: &Path, ip: &str, ready_timeout: Duration) -> ServerProcess {
    ServerProcess::new(
        "samba",
        script_path(),
        dir,
        ip,
        "log/samba.out",
        ready_timeout,
    )
}

fn script() -> Command {
    let path = script_path();
    assert!(path.is_file(), "{} is missing", path.display());
    Command::new(path)
}

pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<Output, LdapToolError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|err| {
        panic!(
            "cannot run {:?} (is it installed? .ci/install-deps): {err}",
            cmd.get_program()
        )
    });
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .unwrap_or_else(|err| panic!("cannot write to {:?}: {err}", cmd.get_program()));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|err| panic!("cannot wait for {:?}: {err}", cmd.get_program()));
    if out.status.success() {
        Ok(out)
    } else {
        Err(LdapToolError {
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

pub fn run_checked(cmd: &mut Command, stdin: Option<&str>, what: &str) -> Output {
    run(cmd, stdin).unwrap_or_else(|err| match stdin {
        Some(text) => panic!("{what} failed, {err}\ninput:\n{text}"),
        None => panic!("{what} failed, {err}"),
    })
}

fn lock_path(n: u8) -> PathBuf {
    PathBuf::from(format!("/tmp/teamsync-dc-ip-{n}.lock"))
}

fn open_lock(n: u8) -> File {
    let path = lock_path(n);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()))
}

/// Locks `file` if nobody holds it.
fn try_lock(file: &File, n: u8) -> bool {
    match file.try_lock() {
        Ok(()) => true,
        Err(fs::TryLockError::WouldBlock) => false,
        Err(fs::TryLockError::Error(err)) => {
            panic!("cannot flock {}: {err}", lock_path(n).display())
        }
    }
}

/// Removes the DC folder a previous, now dead, owner of a lock left behind
/// (recorded in the lock file), and empties the record. Caller holds the lock.
fn clean_previous_owner(lock: &mut File) {
    let mut previous = String::new();
    let _ = lock.seek(SeekFrom::Start(0));
    let _ = lock.read_to_string(&mut previous);
    let previous = Path::new(previous.trim());
    if previous.starts_with("/tmp")
        && previous
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("teamsync-dc-"))
    {
        let _ = fs::remove_dir_all(previous);
    }
    let _ = lock.set_len(0);
}

/// Once per process: removes folders of DCs whose owners died (the shared
/// DC of every earlier test run, and anything a crash left).
pub fn sweep_stale_dcs() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        for n in IP_RANGE {
            if !lock_path(n).exists() {
                continue;
            }
            let mut lock = open_lock(n);
            if try_lock(&lock, n) {
                clean_previous_owner(&mut lock);
            }
        }
    });
}

/// Claims the first free 127.0.0.N and records `dir` in its lock file.
pub fn claim_ip(dir: &Path) -> (String, File) {
    for n in IP_RANGE {
        let mut lock = open_lock(n);
        if !try_lock(&lock, n) {
            continue;
        }
        clean_previous_owner(&mut lock);
        let ip = format!("127.0.0.{n}");
        // Something that does not take our locks (a demo DC, a stray server)
        // may already listen there.
        let busy = [389u16, 636, 88].iter().any(|port| {
            let addr = SocketAddr::from(([127, 0, 0, n], *port));
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        if busy {
            continue;
        }
        let _ = lock.seek(SeekFrom::Start(0));
        lock.write_all(dir.as_os_str().as_encoded_bytes())
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", lock_path(n).display()));
        return (ip, lock);
    }
    panic!(
        "no free loopback address for a Samba DC: all of /tmp/teamsync-dc-ip-{{{}..{}}}.lock are held",
        IP_RANGE.start(),
        IP_RANGE.end()
    );
}
