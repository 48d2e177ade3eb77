//! A real OpenLDAP slapd for integration tests of teamsync's generic-LDAP
//! support: provisioned, started and probed through `scripts/slapd.sh`,
//! seeded and read back with the OpenLDAP command-line tools over LDAPS as
//! the rootdn `cn=admin,dc=example,dc=org`.
//!
//! The twin of [`super::samba::SambaDc`], and it shares its machinery: the
//! same pool of loopback addresses 127.0.0.N reserved by `flock` on
//! `/tmp/teamsync-dc-ip-N.lock` (so Samba DCs and slapds never collide, and
//! a folder a dead owner left behind is removed by whoever takes the address
//! next: slapd folders are named `/tmp/teamsync-dc-slapd-*` for that), and
//! the same process control ([`super::server_process`]), so slapd dies with
//! the test process.
//!
//! What the server does (see `scripts/slapd.sh`): overlays memberof
//! (memberOf on direct members of `groupOfNames` only, not of
//! `groupOfUniqueNames`, never transitive), refint (member, uniqueMember:
//! renames and deletes of members rewrite groups), syncprov (contextCSN) and
//! ppolicy (a default policy with pwdLockout, so a locked account cannot
//! bind). Anyone but the rootdn gets at most [`SIZE_LIMIT`] entries from a
//! plain search and everything from a paged one. Anonymous binds see only
//! the rootDSE and the schema.
//!
//! `groupOfNames` and `groupOfUniqueNames` need at least one member: an
//! empty one holds the single value [`EMPTY_MEMBER`], which names no entry.
//! [`Slapd::add_member`] drops it and [`Slapd::remove_member`] puts it back
//! when the last member goes; refint does the same when it removes the last
//! member of a group.

#![allow(dead_code)]

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::samba::{
    self, LdapToolError, child_dn, claim_ip, ldif_line, ldif_strings, parent_dn, run, run_checked,
    sweep_stale_dcs,
};
use super::server_process::ServerProcess;

// Re-exported for tests that use only this harness.
#[allow(unused_imports)]
pub use super::samba::unique;

pub const BASE_DN: &str = "dc=example,dc=org";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=org";
pub const GROUPS_DN: &str = "ou=groups,dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
/// In the server certificate's subjectAltName, beside the IP.
pub const HOSTNAME: &str = "ldap1.example.org";
/// The member an otherwise empty `groupOfNames`/`groupOfUniqueNames` holds
/// (both require one); no entry has this DN. `refint_nothing` in slapd.conf.
pub const EMPTY_MEMBER: &str = "cn=nobody,dc=example,dc=org";
/// `pwdAccountLockedTime` value that locks an account until an admin unlocks it.
pub const LOCKED_FOREVER: &str = "000001010000Z";
/// The password [`Slapd::add_user`] gives every account (stored as `{SSHA}`).
pub const USER_PASSWORD: &str = "Secret-pw-1";
/// Entries a plain (non-paged) search returns to anyone but the rootdn.
pub const SIZE_LIMIT: usize = 500;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or deliberately stopped) throwaway slapd.
pub struct Slapd {
    dir: PathBuf,
    ip: String,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    admin_password_file: PathBuf,
    /// Held for the server's life: the exclusive claim on `ip`.
    ip_lock: File,
    slapd: ServerProcess,
}

impl Slapd {
    /// Provisions and starts a fresh slapd on its own loopback address;
    /// blocks until LDAPS answers. Dropping it kills slapd and removes its
    /// folder.
    pub fn start() -> Slapd {
        sweep_stale_dcs();
        // The `teamsync-dc-` prefix lets samba.rs's lock-file cleanup
        // remove the folder once its owner is gone.
        let dir = tempfile::Builder::new()
            .prefix("teamsync-dc-slapd-")
            .tempdir_in("/tmp")
            .unwrap_or_else(|err| panic!("cannot create a slapd folder under /tmp: {err}"))
            .keep();
        let (ip, ip_lock) = claim_ip(&dir);

        let started = Instant::now();
        let out = script()
            .arg("provision")
            .arg(&dir)
            .arg(&ip)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", script_path().display()));
        if !out.status.success() {
            let _ = fs::remove_dir_all(&dir);
            panic!(
                "provisioning slapd in {} on {ip} failed ({}):\n{}{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let provisioned = started.elapsed();

        let server = Slapd {
            ca_file: dir.join("tls/ca.pem"),
            other_ca_file: dir.join("tls/other-ca.pem"),
            admin_password_file: dir.join("admin-password"),
            slapd: server_process(&dir, &ip, READY_TIMEOUT),
            dir,
            ip,
            ip_lock,
        };
        let ready = server.slapd.spawn_and_wait();
        eprintln!(
            "slapd: {} provisioned in {:.2}s, answered LDAPS {:.2}s after start ({})",
            server.ip,
            provisioned.as_secs_f64(),
            ready.as_secs_f64(),
            server.dir.display()
        );
        server
    }

    /// One slapd shared by all tests of the current test binary, started on
    /// first use. Tests give every entry a unique name (see [`unique`]) and
    /// never stop it. If starting it failed once, every later call fails
    /// fast with the same message.
    pub fn shared() -> &'static Slapd {
        static SHARED: OnceLock<Result<Slapd, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            std::panic::catch_unwind(Slapd::start).map_err(|payload| {
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".to_string())
            })
        });
        match shared {
            Ok(server) => server,
            Err(msg) => panic!("the shared slapd failed to start: {msg}"),
        }
    }

    pub fn ip(&self) -> &str {
        &self.ip
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}", self.ip)
    }

    /// Plain LDAP port (StartTLS available; slapd also accepts binds
    /// without it).
    pub fn starttls_url(&self) -> String {
        format!("ldap://{}", self.ip)
    }

    pub fn base_dn(&self) -> &str {
        BASE_DN
    }

    pub fn people_dn(&self) -> String {
        PEOPLE_DN.to_string()
    }

    pub fn groups_dn(&self) -> String {
        GROUPS_DN.to_string()
    }

    pub fn hostname(&self) -> &str {
        HOSTNAME
    }

    /// The CA that signed the server certificate (SAN: ldap1.example.org and the IP).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A CA unrelated to the server certificate, for "untrusted CA" tests.
    pub fn other_ca_file(&self) -> &Path {
        &self.other_ca_file
    }

    pub fn admin_bind_dn(&self) -> &str {
        ADMIN_DN
    }

    /// The rootdn password, without a trailing newline (0600).
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

    /// The `TEAMSYNC_LDAP_*` variables of `scripts/slapd.sh env`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let out = run_checked(script().arg("env").arg(&self.dir), None, "slapd.sh env");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let (name, value) = line.strip_prefix("export ")?.split_once('=')?;
                Some((name.to_string(), value.trim_matches('\'').to_string()))
            })
            .collect()
    }

    /// The last lines slapd wrote to its stdout/stderr, for failure messages
    /// (quiet unless started with `TEAMSYNC_SLAPD_DEBUG=stats` or similar).
    pub fn log_tail(&self) -> String {
        self.slapd.log_tail()
    }

    // ---- LDAP as the rootdn over LDAPS ----------------------------------

    /// `ldapadd` (entries without changetype lines); panics with ldapadd's
    /// stderr and the start of the LDIF on failure. Any size: the LDIF goes
    /// through a file, not a pipe.
    pub fn add_ldif(&self, ldif: &str) {
        self.try_ldif("ldapadd", ldif)
            .unwrap_or_else(|err| panic!("ldapadd failed, {err}\ninput:\n{}", head(ldif)));
    }

    /// `ldapmodify` (LDIF with changetype lines); panics on failure.
    pub fn modify_ldif(&self, ldif: &str) {
        self.try_modify_ldif(ldif)
            .unwrap_or_else(|err| panic!("ldapmodify failed, {err}\ninput:\n{}", head(ldif)));
    }

    /// `ldapmodify`, returning the tool's exit code (the LDAP result code,
    /// e.g. 65 objectClassViolation) and stderr on failure.
    pub fn try_modify_ldif(&self, ldif: &str) -> Result<(), LdapToolError> {
        self.try_ldif("ldapmodify", ldif)
    }

    fn try_ldif(&self, tool: &str, ldif: &str) -> Result<(), LdapToolError> {
        // ldapadd prints a line per entry; with the LDIF on a pipe a big
        // input and that output could fill both pipes and deadlock.
        let mut file = tempfile::Builder::new()
            .prefix("input-")
            .suffix(".ldif")
            .tempfile_in(&self.dir)
            .unwrap_or_else(|err| {
                panic!(
                    "cannot create an LDIF file in {}: {err}",
                    self.dir.display()
                )
            });
        file.write_all(ldif.as_bytes())
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", file.path().display()));
        let mut cmd = self.ldap_command(tool);
        cmd.arg("-f").arg(file.path());
        run(&mut cmd, None).map(drop)
    }

    /// `ldapsearch -LLL -o ldif-wrap=no` as the rootdn (no size limit);
    /// returns the LDIF. `scope` is base, one, sub or children. Panics on
    /// failure, including a missing base (code 32); see [`Slapd::try_search`].
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
        cmd.args(search_args(base, scope, filter)).args(attrs);
        run(&mut cmd, None).map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A subtree search bound as `bind_dn` (so subject to the size limit
    /// and ACLs), paged with `page_size` entries per page (RFC 2696) if
    /// given. On failure (code 4 sizeLimitExceeded, 49 invalidCredentials,
    /// ...) the error carries the code; what came before it is lost.
    pub fn search_as(
        &self,
        bind_dn: &str,
        password: &str,
        page_size: Option<u32>,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<String, LdapToolError> {
        let mut cmd = self.user_command("ldapsearch", bind_dn, password);
        if let Some(size) = page_size {
            cmd.args(["-E", &format!("pr={size}/noprompt")]);
        }
        cmd.args(search_args(base, "sub", filter)).args(attrs);
        run(&mut cmd, None).map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A simple bind (LDAPS) as `dn`; `Err` with code 49 for a wrong
    /// password or a locked account.
    pub fn try_bind(&self, dn: &str, password: &str) -> Result<(), LdapToolError> {
        run(&mut self.user_command("ldapwhoami", dn, password), None).map(drop)
    }

    /// Whether an entry exists at `dn`.
    pub fn exists(&self, dn: &str) -> bool {
        match self.try_search(dn, "base", "(objectClass=*)", &["1.1"]) {
            Ok(_) => true,
            Err(err) if err.code == Some(32) => false,
            Err(err) => panic!("ldapsearch -b {dn:?}: {err}"),
        }
    }

    /// Values of one attribute (operational ones included) of the entry at
    /// `dn`, as text.
    pub fn attr(&self, dn: &str, attr: &str) -> Vec<String> {
        ldif_strings(&self.search(dn, "base", "(objectClass=*)", &[attr]), attr)
    }

    /// The DNs of the entries a subtree search finds.
    pub fn search_dns(&self, base: &str, filter: &str) -> Vec<String> {
        samba::ldif_dns(&self.search(base, "sub", filter, &["1.1"]))
    }

    /// memberOf of an entry: the `groupOfNames` it is a direct member of.
    pub fn member_of(&self, dn: &str) -> Vec<String> {
        self.attr(dn, "memberOf")
    }

    /// `member` values of a `groupOfNames`.
    pub fn members(&self, group_dn: &str) -> Vec<String> {
        self.attr(group_dn, "member")
    }

    /// entryUUID of an entry (stable across renames and moves).
    pub fn entry_uuid(&self, dn: &str) -> String {
        match self.attr(dn, "entryUUID").as_slice() {
            [uuid] => uuid.clone(),
            other => panic!("{dn} has entryUUID {other:?}"),
        }
    }

    /// contextCSN of the suffix entry (syncprov keeps it current after
    /// every write); the greatest value if there are several.
    pub fn context_csn(&self) -> String {
        self.attr(BASE_DN, "contextCSN")
            .into_iter()
            .max()
            .unwrap_or_else(|| panic!("{BASE_DN} has no contextCSN"))
    }

    // ---- Seeding --------------------------------------------------------

    /// An inetOrgPerson `uid=UID,ou=people` (cn and sn = uid) with password
    /// [`USER_PASSWORD`]. Returns its DN.
    pub fn add_user(&self, uid: &str) -> String {
        self.add_user_in(PEOPLE_DN, uid)
    }

    pub fn add_user_in(&self, parent_dn: &str, uid: &str) -> String {
        let (dn, ldif) = user_ldif(parent_dn, uid, default_password_hash());
        self.add_ldif(&ldif);
        dn
    }

    /// Like [`Slapd::add_user`] with a password of one's own.
    pub fn add_user_with_password(&self, uid: &str, password: &str) -> String {
        let (dn, ldif) = user_ldif(PEOPLE_DN, uid, &password_hash(password));
        self.add_ldif(&ldif);
        dn
    }

    /// Many [`Slapd::add_user`] users in one `ldapadd` (about 0.4 ms each);
    /// returns their DNs in order.
    pub fn add_users(&self, uids: &[&str]) -> Vec<String> {
        let hash = default_password_hash();
        let mut dns = Vec::with_capacity(uids.len());
        let mut ldif = String::new();
        for uid in uids {
            let (dn, entry) = user_ldif(PEOPLE_DN, uid, hash);
            dns.push(dn);
            ldif += &entry;
            ldif.push('\n');
        }
        if !dns.is_empty() {
            self.add_ldif(&ldif);
        }
        dns
    }

    /// A `groupOfNames` `cn=CN,ou=groups` with `member` values `members`
    /// (DNs; need not exist), or [`EMPTY_MEMBER`] alone if there are none.
    /// One add whatever the size (5,000 members: about 0.2 s, memberOf of
    /// the 5,000 included). Returns its DN.
    pub fn add_group(&self, cn: &str, members: &[&str]) -> String {
        self.add_group_of(GROUPS_DN, "groupOfNames", "member", cn, members)
    }

    pub fn add_group_in(&self, parent_dn: &str, cn: &str, members: &[&str]) -> String {
        self.add_group_of(parent_dn, "groupOfNames", "member", cn, members)
    }

    /// A `groupOfUniqueNames` with `uniqueMember` values (memberof ignores
    /// these groups); [`EMPTY_MEMBER`] alone if `members` is empty.
    pub fn add_unique_group(&self, cn: &str, members: &[&str]) -> String {
        self.add_group_of(GROUPS_DN, "groupOfUniqueNames", "uniqueMember", cn, members)
    }

    fn add_group_of(
        &self,
        parent_dn: &str,
        class: &str,
        attr: &str,
        cn: &str,
        members: &[&str],
    ) -> String {
        let dn = child_dn("cn", cn, parent_dn);
        let mut ldif = ldif_line("dn", &dn);
        ldif += &format!("objectClass: top\nobjectClass: {class}\n");
        ldif += &ldif_line("cn", cn);
        if members.is_empty() {
            ldif += &ldif_line(attr, EMPTY_MEMBER);
        }
        for member in members {
            ldif += &ldif_line(attr, member);
        }
        self.add_ldif(&ldif);
        dn
    }

    /// An RFC 2307 `posixGroup` under ou=groups: `gidNumber` and `memberUid`
    /// values (user names, not DNs; may be none).
    pub fn add_posix_group(&self, cn: &str, gid: u32, member_uids: &[&str]) -> String {
        let dn = child_dn("cn", cn, GROUPS_DN);
        let mut ldif = ldif_line("dn", &dn);
        ldif += "objectClass: top\nobjectClass: posixGroup\n";
        ldif += &ldif_line("cn", cn);
        ldif += &format!("gidNumber: {gid}\n");
        for uid in member_uids {
            ldif += &ldif_line("memberUid", uid);
        }
        self.add_ldif(&ldif);
        dn
    }

    /// Adds a `member` to a `groupOfNames`, dropping [`EMPTY_MEMBER`] if
    /// the group held only that.
    pub fn add_member(&self, group_dn: &str, member_dn: &str) {
        self.add_group_value(group_dn, "member", member_dn);
    }

    /// Removes a `member`; the last one is replaced by [`EMPTY_MEMBER`].
    pub fn remove_member(&self, group_dn: &str, member_dn: &str) {
        self.remove_group_value(group_dn, "member", member_dn);
    }

    /// [`Slapd::add_member`] for `groupOfUniqueNames` (`uniqueMember`).
    pub fn add_unique_member(&self, group_dn: &str, member_dn: &str) {
        self.add_group_value(group_dn, "uniqueMember", member_dn);
    }

    /// [`Slapd::remove_member`] for `groupOfUniqueNames` (`uniqueMember`).
    pub fn remove_unique_member(&self, group_dn: &str, member_dn: &str) {
        self.remove_group_value(group_dn, "uniqueMember", member_dn);
    }

    fn add_group_value(&self, group_dn: &str, attr: &str, member_dn: &str) {
        let filter = format!("({attr}={})", escape_filter_value(EMPTY_MEMBER));
        let holds_placeholder = !self
            .search(group_dn, "base", &filter, &["1.1"])
            .trim()
            .is_empty();
        let mut ldif = ldif_line("dn", group_dn);
        ldif += &format!("changetype: modify\nadd: {attr}\n");
        ldif += &ldif_line(attr, member_dn);
        ldif += "-\n";
        if holds_placeholder && !member_dn.eq_ignore_ascii_case(EMPTY_MEMBER) {
            ldif += &format!("delete: {attr}\n");
            ldif += &ldif_line(attr, EMPTY_MEMBER);
            ldif += "-\n";
        }
        self.modify_ldif(&ldif);
    }

    fn remove_group_value(&self, group_dn: &str, attr: &str, member_dn: &str) {
        let delete = format!(
            "{}changetype: modify\ndelete: {attr}\n{}-\n",
            ldif_line("dn", group_dn),
            ldif_line(attr, member_dn)
        );
        match self.try_modify_ldif(&delete) {
            Ok(()) => {}
            // 65 objectClassViolation: that was the last member.
            Err(err) if err.code == Some(65) => self.modify_ldif(&format!(
                "{delete}add: {attr}\n{}-\n",
                ldif_line(attr, EMPTY_MEMBER)
            )),
            Err(err) => panic!("ldapmodify failed, {err}\ninput:\n{delete}"),
        }
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

    /// Locks an account: `pwdAccountLockedTime: 000001010000Z` (ppolicy then
    /// refuses its binds with invalidCredentials).
    pub fn lock_user(&self, dn: &str) {
        self.modify_values(dn, "replace", "pwdAccountLockedTime", &[LOCKED_FOREVER]);
    }

    /// Removes `pwdAccountLockedTime` (no-op if the account is not locked).
    pub fn unlock_user(&self, dn: &str) {
        self.modify_values(dn, "replace", "pwdAccountLockedTime", &[]);
    }

    /// Deletes one entry (a leaf). refint drops it from every group.
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

    /// Renames and/or moves an entry (modrdn, deleteoldrdn 1). `new_rdn` is
    /// a whole RDN such as `uid=new-name` (value escaped as in a DN);
    /// `new_superior` moves it under another parent. Returns the new DN.
    /// entryUUID stays; refint rewrites the groups that name it.
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

    /// An organizationalUnit under the suffix; returns its DN.
    pub fn add_ou(&self, name: &str) -> String {
        self.add_ou_in(BASE_DN, name)
    }

    pub fn add_ou_in(&self, parent_dn: &str, name: &str) -> String {
        let dn = child_dn("ou", name, parent_dn);
        self.add_ldif(&format!(
            "{}objectClass: top\nobjectClass: organizationalUnit\n{}",
            ldif_line("dn", &dn),
            ldif_line("ou", name)
        ));
        dn
    }

    /// Loads LDIF offline with `slapadd -q` (`slapd.sh bulk`): stops slapd,
    /// loads, starts it again. Much faster than ldapadd (100,000 users in
    /// about 3 s) but bypasses the overlays: no memberOf is computed and
    /// refint checks nothing, so the LDIF must carry memberOf itself if a
    /// test needs it. Never use on the shared server.
    pub fn bulk_load(&self, ldif: &str) {
        let mut file = tempfile::Builder::new()
            .prefix("bulk-")
            .suffix(".ldif")
            .tempfile_in(&self.dir)
            .unwrap_or_else(|err| {
                panic!(
                    "cannot create an LDIF file in {}: {err}",
                    self.dir.display()
                )
            });
        file.write_all(ldif.as_bytes())
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", file.path().display()));
        self.bulk_load_file(file.path());
    }

    /// [`Slapd::bulk_load`] from an LDIF file.
    pub fn bulk_load_file(&self, ldif: &Path) {
        self.stop();
        run_checked(
            script().arg("bulk").arg(&self.dir).arg(ldif),
            None,
            "slapd.sh bulk",
        );
        self.slapd.spawn_and_wait();
    }

    // ---- Process control ------------------------------------------------

    /// Stops slapd (SIGTERM, SIGKILL after 10 s) and waits until it has
    /// exited: the server then refuses connections. Never use on the shared
    /// server.
    pub fn stop(&self) {
        self.slapd.stop();
    }

    /// Starts slapd again (stopping it first if it runs) and waits until
    /// LDAPS answers. The data survives.
    pub fn restart(&self) {
        let ready = self.slapd.restart();
        eprintln!(
            "slapd: {} restarted, answered LDAPS after {:.2}s",
            self.ip,
            ready.as_secs_f64()
        );
    }

    /// Whether the slapd process is running.
    pub fn is_running(&self) -> bool {
        self.slapd.is_running()
    }

    /// Rootdn LDAP tool invocation over LDAPS that verifies the certificate.
    fn ldap_command(&self, tool: &str) -> Command {
        let mut cmd = self.tls_command(tool);
        cmd.args(["-D", ADMIN_DN, "-y"])
            .arg(&self.admin_password_file);
        cmd
    }

    /// LDAP tool invocation over LDAPS bound as `dn`.
    fn user_command(&self, tool: &str, dn: &str, password: &str) -> Command {
        let mut cmd = self.tls_command(tool);
        cmd.args(["-D", dn, "-w", password]);
        cmd
    }

    fn tls_command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.env("LDAPTLS_CACERT", &self.ca_file)
            .env("LDAPTLS_REQCERT", "demand")
            .args(["-H", &self.ldaps_url(), "-x", "-o", "nettimeout=10"]);
        cmd
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        if let Err(err) = fs::remove_dir_all(&self.dir) {
            eprintln!("slapd: cannot remove {}: {err}", self.dir.display());
        }
        // The folder is gone: nothing for the next owner of the address to clean.
        let _ = self.ip_lock.set_len(0);
    }
}

/// `dn` and LDIF of an inetOrgPerson with a hashed password.
fn user_ldif(parent_dn: &str, uid: &str, password_hash: &str) -> (String, String) {
    let dn = child_dn("uid", uid, parent_dn);
    let mut ldif = ldif_line("dn", &dn);
    ldif += "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n";
    ldif += &ldif_line("uid", uid);
    ldif += &ldif_line("cn", uid);
    ldif += &ldif_line("sn", uid);
    ldif += &ldif_line("userPassword", password_hash);
    (dn, ldif)
}

/// `{SSHA}` hash of [`USER_PASSWORD`], computed once per process.
fn default_password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password_hash(USER_PASSWORD))
}

/// `{SSHA}` hash of a password, from `slappasswd`.
fn password_hash(password: &str) -> String {
    let mut cmd = Command::new(sbin("slappasswd"));
    cmd.args(["-n", "-s", password]);
    let out: Output = run_checked(&mut cmd, None, "slappasswd");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `/usr/sbin/TOOL` if it is there (a non-login PATH may lack /usr/sbin).
fn sbin(tool: &str) -> PathBuf {
    let path = Path::new("/usr/sbin").join(tool);
    if path.is_file() {
        path
    } else {
        PathBuf::from(tool)
    }
}

fn search_args<'a>(base: &'a str, scope: &'a str, filter: &'a str) -> [&'a str; 8] {
    [
        "-LLL",
        "-o",
        "ldif-wrap=no",
        "-b",
        base,
        "-s",
        scope,
        filter,
    ]
}

/// A value escaped for an LDAP filter (RFC 4515).
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => out += &format!("\\{:02x}", u32::from(c)),
            _ => out.push(c),
        }
    }
    out
}

/// The start of a (possibly huge) LDIF, for panic messages.
fn head(ldif: &str) -> String {
    const MAX: usize = 2000;
    match ldif.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}\n... ({} bytes in all)", &ldif[..cut], ldif.len()),
        None => ldif.to_string(),
    }
}

pub fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slapd.sh")
}

/// The slapd process of the server provisioned in `dir`, not started yet.
/// The benchmark waits longer for its big seeded server than tests do.
pub fn server_process(dir: &Path, ip: &str, ready_timeout: Duration) -> ServerProcess {
    ServerProcess::new(
        "slapd",
        script_path(),
        dir,
        ip,
        "log/slapd.out",
        ready_timeout,
    )
}

fn script() -> Command {
    let path = script_path();
    assert!(path.is_file(), "{} is missing", path.display());
    Command::new(path)
}
