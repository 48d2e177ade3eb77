//! Sync-pass benchmark (project issue 5): a command that prints figures, not a timed test.
//!
//! ```sh
//! cargo bench --bench passes -- [--ad] [--ldap] [--runs N] [--scale small|half|full] [--doubling] [--ad-strategy S]
//! ```
//!
//! For each directory kind (both when neither flag is given) it seeds a
//! Samba AD DC or an OpenLDAP slapd and a store with a deterministic
//! generator (fixed xorshift seed), or restores them from the cache under
//! `target/bench-cache/` (keyed by kind, scale and [`GENERATOR_VERSION`]),
//! then drives the release `teamsync` binary through its command line and
//! times, each as the median of `--runs` runs (after one untimed warm-up
//! run that also counts the SQLite write transactions):
//!
//! 1. baseline: one paged `ldapsearch` reading what a pass needs;
//! 2. a full pass into the seeded store (no memberships yet);
//! 3. a pass right after it, with nothing changed;
//! 4. a pass after 10 groups' members changed in the directory.
//!
//! `--doubling` runs half and then full scale of each kind and prints how
//! much each row grew; `--ad-strategy` sets `directory.ad_strategy` for the
//! AD passes (to measure `token_groups` where `auto` would dump).
//!
//! `cargo test --all-targets` also runs this binary, without the `--bench`
//! flag `cargo bench` passes: it then only says how to run it and exits.
//! docs/performance.md explains the rows and holds measured figures.

// A benchmark driver: a failed step stops it with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::samba::{self, child_dn, ldif_line, ldif_strings, ldif_values, sid_to_string};
use common::server_process::ServerProcess;
use common::slapd;

/// Bump whenever the generator or the seeding changes: caches made by
/// another version are ignored (and can be deleted).
const GENERATOR_VERSION: u32 = 1;
/// The generator's fixed xorshift seed.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// Groups whose members change before the "10 groups changed" pass.
const CHANGED_GROUPS: usize = 10;
/// Members added to, and removed from, each changed group.
const CHANGED_MEMBERS: usize = 5;
/// Parallel `teamsync` processes when creating accounts, logins and teams.
const CLI_WORKERS: usize = 4;
/// Seeding Samba: users per `ldapadd` file, and (roughly) member values
/// per file of groups.
const USERS_PER_BATCH: usize = 1000;
const MEMBER_VALUES_PER_BATCH: usize = 20_000;
/// Nesting levels of the security groups, and the share (per mille) of the
/// groups at each level; level 0 holds most users, level 7 is the top.
const LEVEL_SHARES: [usize; 8] = [500, 200, 125, 75, 50, 25, 15, 10];
/// Outside the tests' range (127.0.0.20..=250) and the demo's (.251).
const AD_IP: &str = "127.0.0.252";
const LDAP_IP: &str = "127.0.0.253";
const AD_PEOPLE_DN: &str = "OU=People,DC=corp,DC=example,DC=com";
const AD_GROUPS_DN: &str = "OU=Groups,DC=corp,DC=example,DC=com";
const READY_TIMEOUT: Duration = Duration::from_secs(300);
const GNU_TIME: &str = "/usr/bin/time";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|arg| arg == "--bench") {
        println!(
            "passes: a benchmark, not a test; run it with \
             `cargo bench --bench passes -- [--ad] [--ldap] [--runs N] [--scale small|half|full] [--doubling] [--ad-strategy S]`"
        );
        return;
    }
    let options = Options::parse(&args);
    assert!(
        Path::new(GNU_TIME).is_file(),
        "{GNU_TIME} is missing (GNU time measures peak RSS): apt-get install -y time"
    );
    let bin = teamsync_binary();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-cache");
    fs::create_dir_all(&root).ctx(|| format!("creating {}", root.display()));
    let _lock = lock_cache(&root);

    let date = today();
    let code = code_version();
    let mut reports = Vec::new();
    for kind in options.kinds() {
        for scale in options.scales() {
            reports.push(bench_kind(kind, scale, &options, &bin, &root, &code));
        }
    }
    println!();
    for report in &reports {
        report.print(&options, &date);
    }
    if options.doubling {
        for pair in reports.chunks(2) {
            if let [half, full] = pair {
                print_doubling(half, full);
            }
        }
    }
}

// ---- Options --------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ad,
    Ldap,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scale {
    Small,
    /// Half of full: `--doubling` compares it with full.
    Half,
    Full,
}

impl Scale {
    fn name(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Half => "half",
            Scale::Full => "full",
        }
    }
}

struct Options {
    ad: bool,
    ldap: bool,
    runs: usize,
    scale: Scale,
    /// Half, then full, of each kind, and how much the doubling cost.
    doubling: bool,
    /// `directory.ad_strategy` for the AD passes (teamsync's default,
    /// `auto`, when not given).
    ad_strategy: Option<String>,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let usage = "usage: cargo bench --bench passes -- [--ad] [--ldap] [--runs N] [--scale small|half|full] [--doubling] [--ad-strategy S]";
        let mut options = Options {
            ad: false,
            ldap: false,
            runs: 5,
            scale: Scale::Full,
            doubling: false,
            ad_strategy: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => {}
                "--ad" => options.ad = true,
                "--ldap" => options.ldap = true,
                "--doubling" => options.doubling = true,
                "--ad-strategy" => {
                    options.ad_strategy = match args.next().map(String::as_str) {
                        Some(s @ ("auto" | "token_groups" | "group_dump")) => Some(s.to_owned()),
                        _ => exit_usage(&format!(
                            "--ad-strategy is auto, token_groups or group_dump\n{usage}"
                        )),
                    }
                }
                "--runs" => {
                    options.runs = match args.next().map(|n| n.parse::<usize>()) {
                        Some(Ok(n)) if n >= 1 => n,
                        _ => exit_usage(&format!("--runs needs a whole number >= 1\n{usage}")),
                    }
                }
                "--scale" => {
                    options.scale = match args.next().map(String::as_str) {
                        Some("small") => Scale::Small,
                        Some("half") => Scale::Half,
                        Some("full") => Scale::Full,
                        _ => exit_usage(&format!("--scale is small, half or full\n{usage}")),
                    }
                }
                other => exit_usage(&format!("unknown argument {other:?}\n{usage}")),
            }
        }
        options
    }

    /// Both kinds when neither flag is given.
    fn kinds(&self) -> Vec<Kind> {
        match (self.ad, self.ldap) {
            (false, false) => vec![Kind::Ad, Kind::Ldap],
            (ad, ldap) => [(ad, Kind::Ad), (ldap, Kind::Ldap)]
                .into_iter()
                .filter_map(|(on, kind)| on.then_some(kind))
                .collect(),
        }
    }

    /// The scales to run: `--doubling` runs half and full.
    fn scales(&self) -> Vec<Scale> {
        if self.doubling {
            vec![Scale::Half, Scale::Full]
        } else {
            vec![self.scale]
        }
    }

    fn command_line(&self, kind: Kind, scale: Scale) -> String {
        let flag = match kind {
            Kind::Ad => "--ad",
            Kind::Ldap => "--ldap",
        };
        let strategy = match (&self.ad_strategy, kind) {
            (Some(strategy), Kind::Ad) => format!(" --ad-strategy {strategy}"),
            _ => String::new(),
        };
        format!(
            "cargo bench --bench passes -- {flag} --scale {} --runs {}{strategy}",
            scale.name(),
            self.runs
        )
    }
}

fn exit_usage(message: &str) -> ! {
    eprintln!("passes: {message}");
    std::process::exit(2);
}

// ---- Directory kinds ------------------------------------------------------

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ad => "ad",
            Kind::Ldap => "ldap",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Ad => "Active Directory (Samba AD DC)",
            Kind::Ldap => "generic LDAP (OpenLDAP slapd)",
        }
    }

    fn ip(self) -> &'static str {
        match self {
            Kind::Ad => AD_IP,
            Kind::Ldap => LDAP_IP,
        }
    }

    fn script(self) -> PathBuf {
        match self {
            Kind::Ad => samba::script_path(),
            Kind::Ldap => slapd::script_path(),
        }
    }

    fn base_dn(self) -> &'static str {
        match self {
            Kind::Ad => samba::BASE_DN,
            Kind::Ldap => slapd::BASE_DN,
        }
    }

    fn admin_dn(self) -> &'static str {
        match self {
            Kind::Ad => samba::ADMIN_DN,
            Kind::Ldap => slapd::ADMIN_DN,
        }
    }

    fn user_dn(self, name: &str) -> String {
        match self {
            Kind::Ad => child_dn("CN", name, AD_PEOPLE_DN),
            Kind::Ldap => child_dn("uid", name, slapd::PEOPLE_DN),
        }
    }

    fn group_dn(self, name: &str) -> String {
        match self {
            Kind::Ad => child_dn("CN", name, AD_GROUPS_DN),
            Kind::Ldap => child_dn("cn", name, slapd::GROUPS_DN),
        }
    }

    /// What a user's login looks like in `teamsync login add`.
    fn login(self, user: &str) -> String {
        match self {
            Kind::Ad => format!("{}\\{user}", samba::NETBIOS_DOMAIN),
            Kind::Ldap => user.to_owned(),
        }
    }

    /// The baseline's one search (from the base DN: the accounts and the
    /// groups a pass reads) and the union of the attributes a pass reads of
    /// them. One search with an OR filter, not two (`ldapsearch -f`): with
    /// paging, ldapsearch 2.5 stops the second search of a `-f` file after
    /// its first page.
    fn baseline_search(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Kind::Ad => (
                "(|(objectClass=user)(objectClass=group))",
                &[
                    "objectSid",
                    "sAMAccountName",
                    "userPrincipalName",
                    "userAccountControl",
                    "primaryGroupID",
                    "groupType",
                    "member",
                ],
            ),
            Kind::Ldap => (
                "(|(objectClass=person)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
                &["entryUUID", "uid", "cn", "member"],
            ),
        }
    }

    /// The teamsync config: bound as the directory's admin over LDAPS,
    /// everything else at its defaults.
    fn config_yaml(self, server_dir: &Path, store: &Path) -> String {
        let mut yaml = format!(
            "store:\n  path: {store}\ndirectory:\n  kind: {kind}\n  url: ldaps://{ip}\n  base_dn: {base}\n  \
             bind:\n    dn: {bind}\n    password_file: {password}\n  tls:\n    ca_file: {ca}\n  \
             timeouts:\n    connect: 10s\n    operation: 300s\n",
            store = store.display(),
            kind = match self {
                Kind::Ad => "active_directory",
                Kind::Ldap => "ldap",
            },
            ip = self.ip(),
            base = self.base_dn(),
            bind = self.admin_dn(),
            password = server_dir.join("admin-password").display(),
            ca = server_dir.join("tls/ca.pem").display(),
        );
        if self == Kind::Ldap {
            yaml += &format!(
                "  ldap:\n    user_base: {}\n    group_base: {}\n",
                slapd::PEOPLE_DN,
                slapd::GROUPS_DN
            );
        }
        yaml
    }
}

// ---- The generator ----------------------------------------------------------

/// xorshift64: enough randomness for a fixed, reproducible data set.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn within(&mut self, range: &Range<usize>) -> usize {
        range.start + self.below(range.len())
    }
}

#[derive(Clone, Copy)]
struct Sizes {
    users: usize,
    groups: usize,
    big_group: usize,
    accounts: usize,
    teams: usize,
    distribution: usize,
    custom_primary: usize,
}

impl Sizes {
    fn of(kind: Kind, scale: Scale) -> Sizes {
        let full = match kind {
            Kind::Ad => Sizes {
                users: 10_000,
                groups: 2_000,
                big_group: 5_000,
                accounts: 5_000,
                teams: 500,
                distribution: 10,
                custom_primary: 100,
            },
            Kind::Ldap => Sizes {
                users: 100_000,
                groups: 10_000,
                big_group: 5_000,
                accounts: 5_000,
                teams: 500,
                distribution: 0,
                custom_primary: 0,
            },
        };
        match scale {
            Scale::Full => full,
            Scale::Half => Sizes {
                users: full.users / 2,
                groups: full.groups / 2,
                big_group: full.big_group / 2,
                accounts: full.accounts / 2,
                teams: full.teams / 2,
                distribution: full.distribution / 2,
                custom_primary: full.custom_primary / 2,
            },
            Scale::Small => Sizes {
                users: full.users / 10,
                groups: full.groups / 10,
                big_group: full.big_group / 10,
                accounts: full.accounts / 10,
                teams: full.teams / 10,
                // "A few" at either scale.
                distribution: full.distribution.min(3),
                custom_primary: full.custom_primary / 10,
            },
        }
    }

    fn describe(&self, kind: Kind) -> String {
        let groups = match kind {
            Kind::Ad => "security groups",
            Kind::Ldap => "groupOfNames",
        };
        let mut text = format!(
            "{} users, {} {groups} nested {} deep (one of {} members)",
            self.users,
            self.groups,
            LEVEL_SHARES.len(),
            self.big_group
        );
        if kind == Kind::Ad {
            text += &format!(
                ", {} distribution groups, {} users with a custom primary group",
                self.distribution, self.custom_primary
            );
        }
        text += &format!(
            "; {} linked service accounts, {} teams",
            self.accounts, self.teams
        );
        text
    }
}

struct Group {
    name: String,
    security: bool,
    /// Direct user members (indices into `World::users`), ascending.
    users: Vec<usize>,
    /// Direct group members (indices into `World::groups`), all earlier.
    children: Vec<usize>,
}

/// One group's member changes for the "10 groups changed" pass.
struct GroupChange {
    group: usize,
    add: Vec<usize>,
    remove: Vec<usize>,
}

/// The whole data set, computed from the seed; the same on every run, so
/// the cache holds only what the servers and the store made of it.
struct World {
    kind: Kind,
    sizes: Sizes,
    users: Vec<String>,
    /// Children before parents: the order they can be added in.
    groups: Vec<Group>,
    /// (account name, user index).
    accounts: Vec<(String, usize)>,
    /// (team name, group index).
    teams: Vec<(String, usize)>,
    /// (user index, group index): users whose primaryGroupID names the group.
    custom_primary: Vec<(usize, usize)>,
    changes: Vec<GroupChange>,
}

impl World {
    fn generate(kind: Kind, scale: Scale) -> World {
        let sizes = Sizes::of(kind, scale);
        let mut rng = Rng(SEED);
        let digits = if kind == Kind::Ldap { 6 } else { 5 };
        let users: Vec<String> = (0..sizes.users).map(|i| format!("u{i:0digits$}")).collect();

        // Security groups level by level; distribution groups right after
        // level 0 (they hold level-0 groups and sit in level-3 groups).
        let mut groups = Vec::new();
        let mut levels: Vec<Range<usize>> = Vec::new();
        let mut distribution = 0..0;
        for (level, share) in LEVEL_SHARES.iter().enumerate() {
            let start = groups.len();
            for i in 0..sizes.groups * share / 1000 {
                groups.push(Group {
                    name: format!("g{level}-{i:05}"),
                    security: true,
                    users: Vec::new(),
                    children: Vec::new(),
                });
            }
            levels.push(start..groups.len());
            if level == 0 {
                let start = groups.len();
                for i in 0..sizes.distribution {
                    groups.push(Group {
                        name: format!("d-{i:03}"),
                        security: false,
                        users: Vec::new(),
                        children: Vec::new(),
                    });
                }
                distribution = start..groups.len();
            }
        }

        // Nesting: every group below the top has a parent one level up and,
        // half the time, a second one one or two levels up: a DAG with
        // shared parents, 8 levels deep.
        let top = LEVEL_SHARES.len() - 1;
        for level in 0..top {
            for child in levels[level].clone() {
                let first = rng.within(&levels[level + 1]);
                groups[first].children.push(child);
                if rng.below(2) == 0 {
                    let up = (level + 1 + rng.below(2)).min(top);
                    let second = rng.within(&levels[up]);
                    if second != first {
                        groups[second].children.push(child);
                    }
                }
            }
        }

        // Users: two level-0 groups each, a third of them a level-1 group too.
        let mut first_group = vec![0; users.len()];
        for (user, first) in first_group.iter_mut().enumerate() {
            let a = rng.within(&levels[0]);
            let mut b = rng.within(&levels[0]);
            while b == a && levels[0].len() > 1 {
                b = rng.within(&levels[0]);
            }
            *first = a;
            groups[a].users.push(user);
            if b != a {
                groups[b].users.push(user);
            }
            if rng.below(3) == 0 {
                let c = rng.within(&levels[1]);
                groups[c].users.push(user);
            }
        }

        // The big group (level 2) holds exactly the users behind the
        // linked accounts: every `step`-th user.
        let step = sizes.users / sizes.accounts;
        let big = levels[2].start;
        groups[big].name = "robots-all".to_owned();
        groups[big].users = (0..sizes.big_group).map(|i| i * step).collect();
        let accounts: Vec<(String, usize)> = (0..sizes.accounts)
            .map(|i| (format!("svc-{i:05}"), i * step))
            .collect();

        for d in distribution.clone() {
            let members: BTreeSet<usize> = (0..20).map(|_| rng.below(users.len())).collect();
            groups[d].users = members.into_iter().collect();
            let child = rng.within(&levels[0]);
            groups[d].children.push(child);
            let parent = rng.within(&levels[3]);
            groups[parent].children.push(d);
        }
        for group in &mut groups {
            group.users.sort_unstable();
            group.users.dedup();
            group.children.sort_unstable();
            group.children.dedup();
        }

        let mut custom_primary = Vec::new();
        let mut chosen = BTreeSet::new();
        while chosen.len() < sizes.custom_primary {
            chosen.insert(rng.below(users.len()));
        }
        for user in chosen {
            custom_primary.push((user, first_group[user]));
        }

        let security: Vec<usize> = (0..groups.len()).filter(|g| groups[*g].security).collect();
        let mut teams = vec![("team-000".to_owned(), big)];
        for i in 1..sizes.teams {
            teams.push((format!("team-{i:03}"), security[rng.below(security.len())]));
        }

        let mut world = World {
            kind,
            sizes,
            users,
            groups,
            accounts,
            teams,
            custom_primary,
            changes: Vec::new(),
        };
        world.changes = world.pick_changes(&mut rng);
        world
    }

    /// Ten linked groups (the big one aside) with direct user members: each
    /// gains [`CHANGED_MEMBERS`] linked users and loses up to as many. Users
    /// with a custom primary group are left out (AD keeps their primary
    /// group's membership implicit).
    fn pick_changes(&self, rng: &mut Rng) -> Vec<GroupChange> {
        let primary: BTreeSet<usize> = self.custom_primary.iter().map(|(u, _)| *u).collect();
        let linked_users: Vec<usize> = self
            .accounts
            .iter()
            .map(|(_, u)| *u)
            .filter(|u| !primary.contains(u))
            .collect();
        let mut picked = BTreeSet::new();
        let mut changes = Vec::new();
        for (_, group) in self.teams.iter().skip(1) {
            if changes.len() == CHANGED_GROUPS {
                break;
            }
            let members = &self.groups[*group].users;
            let removable: Vec<usize> = members
                .iter()
                .copied()
                .filter(|u| !primary.contains(u))
                .collect();
            if removable.len() < 2 || !picked.insert(*group) {
                continue;
            }
            let mut add = BTreeSet::new();
            while add.len() < CHANGED_MEMBERS {
                let user = linked_users[rng.below(linked_users.len())];
                if members.binary_search(&user).is_err() {
                    add.insert(user);
                }
            }
            let mut remove = BTreeSet::new();
            while remove.len() < CHANGED_MEMBERS.min(removable.len()) {
                remove.insert(removable[rng.below(removable.len())]);
            }
            changes.push(GroupChange {
                group: *group,
                add: add.into_iter().collect(),
                remove: remove.into_iter().collect(),
            });
        }
        changes
    }

    fn user_entry(&self, user: usize) -> String {
        let name = &self.users[user];
        let mut ldif = ldif_line("dn", &self.kind.user_dn(name));
        match self.kind {
            Kind::Ad => {
                ldif += "objectClass: user\n";
                ldif += &ldif_line("sAMAccountName", name);
                ldif += &ldif_line(
                    "userPrincipalName",
                    &format!("{name}@{}", samba::DNS_DOMAIN),
                );
                ldif += &format!(
                    "userAccountControl: {}\n",
                    samba::UAC_NORMAL_ACCOUNT | samba::UAC_PASSWD_NOTREQD
                );
            }
            Kind::Ldap => {
                ldif += "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
                         objectClass: inetOrgPerson\n";
                ldif += &ldif_line("uid", name);
                ldif += &ldif_line("cn", name);
                ldif += &ldif_line("sn", name);
            }
        }
        ldif + "\n"
    }

    fn group_entry(&self, index: usize) -> String {
        let group = &self.groups[index];
        let mut ldif = ldif_line("dn", &self.kind.group_dn(&group.name));
        match self.kind {
            Kind::Ad => {
                ldif += "objectClass: group\n";
                ldif += &ldif_line("sAMAccountName", &group.name);
                let group_type = if group.security {
                    samba::GLOBAL_SECURITY
                } else {
                    samba::GLOBAL_DISTRIBUTION
                };
                ldif += &format!("groupType: {group_type}\n");
            }
            Kind::Ldap => {
                ldif += "objectClass: top\nobjectClass: groupOfNames\n";
                ldif += &ldif_line("cn", &group.name);
                if group.users.is_empty() && group.children.is_empty() {
                    ldif += &ldif_line("member", slapd::EMPTY_MEMBER);
                }
            }
        }
        for child in &group.children {
            ldif += &ldif_line("member", &self.kind.group_dn(&self.groups[*child].name));
        }
        for user in &group.users {
            ldif += &ldif_line("member", &self.kind.user_dn(&self.users[*user]));
        }
        ldif + "\n"
    }

    /// The LDIF that applies the group changes, or (`revert`) undoes them.
    fn change_ldif(&self, revert: bool) -> String {
        let mut ldif = String::new();
        for change in &self.changes {
            let (add, remove) = if revert {
                (&change.remove, &change.add)
            } else {
                (&change.add, &change.remove)
            };
            ldif += &ldif_line("dn", &self.kind.group_dn(&self.groups[change.group].name));
            ldif += "changetype: modify\n";
            // Adding first keeps a groupOfNames from ever being empty.
            for (op, users) in [("add", add), ("delete", remove)] {
                if users.is_empty() {
                    continue;
                }
                ldif += &format!("{op}: member\n");
                for user in users {
                    ldif += &ldif_line("member", &self.kind.user_dn(&self.users[*user]));
                }
                ldif += "-\n";
            }
            ldif += "\n";
        }
        ldif
    }
}

// ---- Directory servers ------------------------------------------------------

/// A Samba DC or slapd running in the foreground from a fixed folder, killed
/// with this process (setpriv --pdeathsig), stopped on drop.
struct Server {
    kind: Kind,
    process: ServerProcess,
}

impl Server {
    fn start(kind: Kind, dir: &Path) -> Server {
        let addr: SocketAddr = format!("{}:636", kind.ip())
            .parse()
            .expect("socket address");
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
            "something already listens on {addr}: a benchmark server left running? \
             (`scripts/samba-dc.sh stop DIR` / `scripts/slapd.sh stop DIR`)"
        );
        if kind == Kind::Ad {
            ensure_loopback(kind.ip());
        }
        let process = match kind {
            Kind::Ad => samba::server_process(dir, kind.ip(), READY_TIMEOUT),
            Kind::Ldap => slapd::server_process(dir, kind.ip(), READY_TIMEOUT),
        };
        process.spawn_and_wait();
        Server { kind, process }
    }

    fn stop(&self) {
        self.process.stop();
    }

    /// An OpenLDAP tool bound as the admin over LDAPS, certificate verified.
    fn tool(&self, tool: &str) -> Command {
        admin_tool(self.kind, self.process.dir(), tool)
    }

    /// `ldapadd`/`ldapmodify -c -f FILE`; panics with the tool's stderr on
    /// any failure.
    fn apply_ldif_file(&self, tool: &str, file: &Path) {
        let mut cmd = self.tool(tool);
        cmd.args(["-c", "-f"]).arg(file).stdout(Stdio::null());
        let out = run_output(&mut cmd);
        assert!(
            out.status.success(),
            "{tool} -c -f {} failed ({}):\n{}",
            file.display(),
            out.status,
            head(&String::from_utf8_lossy(&out.stderr), 40)
        );
    }
}

fn admin_tool(kind: Kind, dir: &Path, tool: &str) -> Command {
    let mut cmd = Command::new(tool);
    cmd.env("LDAPTLS_CACERT", dir.join("tls/ca.pem"))
        .env("LDAPTLS_REQCERT", "demand")
        .args(["-H", &format!("ldaps://{}", kind.ip())])
        .args(["-x", "-o", "nettimeout=30", "-D", kind.admin_dn(), "-y"])
        .arg(dir.join("admin-password"))
        .stdin(Stdio::null());
    cmd
}

/// Samba binds only addresses an interface holds; after a reboot the cached
/// DC's address is gone from `lo`.
fn ensure_loopback(ip: &str) {
    let out =
        run_output(Command::new("ip").args(["addr", "add", &format!("{ip}/32"), "dev", "lo"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            || stderr.contains("File exists")
            || stderr.contains("already assigned"),
        "ip addr add {ip}/32 dev lo failed: {stderr}"
    );
}

// ---- The cache --------------------------------------------------------------

/// `target/bench-cache/KIND-SCALE-vVERSION/`: the seeded server folder as a
/// tarball (`server.tar`, restored to `server/` before every benchmark run,
/// always at this same path since the server's config names it), the seeded
/// never-synced store (`store.db`), and `seeded.json` (written last: a
/// folder without it is an interrupted seeding and is redone).
struct Cache {
    dir: PathBuf,
}

impl Cache {
    fn new(root: &Path, kind: Kind, scale: Scale) -> Cache {
        Cache {
            dir: root.join(format!(
                "{}-{}-v{GENERATOR_VERSION}",
                kind.name(),
                scale.name()
            )),
        }
    }

    fn server_dir(&self) -> PathBuf {
        self.dir.join("server")
    }

    fn tarball(&self) -> PathBuf {
        self.dir.join("server.tar")
    }

    fn store(&self) -> PathBuf {
        self.dir.join("store.db")
    }

    fn record(&self) -> PathBuf {
        self.dir.join("seeded.json")
    }

    fn load(&self) -> Option<serde_json::Value> {
        let text = fs::read_to_string(self.record()).ok()?;
        let record: serde_json::Value = serde_json::from_str(&text).ok()?;
        (self.tarball().is_file() && self.store().is_file()).then_some(record)
    }

    /// Replaces `server/` with the seeded state from the tarball.
    fn restore_server(&self) {
        remove_dir_if_present(&self.server_dir());
        run_checked(
            Command::new("tar")
                .arg("-C")
                .arg(&self.dir)
                .arg("-xf")
                .arg(self.tarball()),
            "tar -x",
        );
    }

    fn save_server(&self) {
        let partial = self.dir.join("server.tar.partial");
        run_checked(
            Command::new("tar")
                .arg("-C")
                .arg(&self.dir)
                .args(["--sparse", "-cf"])
                .arg(&partial)
                .arg("server"),
            "tar -c",
        );
        fs::rename(&partial, self.tarball()).ctx(|| "renaming the tarball".into());
    }
}

// ---- Seeding ----------------------------------------------------------------

/// Seeding durations, in seconds, by step.
struct Steps(Vec<(String, f64)>);

impl Steps {
    fn time<T>(&mut self, step: &str, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let value = work();
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("passes: seeding: {step}: {seconds:.1} s");
        self.0.push((step.to_owned(), seconds));
        value
    }
}

fn seed(kind: Kind, world: &World, cache: &Cache, bin: &Path) -> serde_json::Value {
    eprintln!(
        "passes: seeding {} ({}) into {}",
        kind.title(),
        world.sizes.describe(kind),
        cache.dir.display()
    );
    remove_dir_if_present(&cache.dir);
    fs::create_dir_all(&cache.dir).ctx(|| format!("creating {}", cache.dir.display()));
    let work = cache.dir.join("seed");
    fs::create_dir_all(&work).ctx(|| format!("creating {}", work.display()));
    let server_dir = cache.server_dir();
    let mut steps = Steps(Vec::new());
    let started = Instant::now();

    steps.time("provision", || {
        run_checked(
            Command::new(kind.script())
                .arg("provision")
                .arg(&server_dir)
                .arg(kind.ip()),
            "provision",
        )
    });
    let server = match kind {
        Kind::Ad => seed_samba(world, &server_dir, &work, &mut steps),
        Kind::Ldap => seed_slapd(world, &server_dir, &work, &mut steps),
    };

    let seed_store = work.join("accounts.db");
    let config = work.join("config.yaml");
    fs::write(&config, kind.config_yaml(&server_dir, &seed_store))
        .ctx(|| format!("writing {}", config.display()));
    let account_jobs: Vec<Vec<Vec<String>>> = world
        .accounts
        .iter()
        .map(|(name, user)| {
            vec![
                strings(&["account", "create", name]),
                strings(&["login", "add", name, &kind.login(&world.users[*user])]),
            ]
        })
        .collect();
    steps.time(
        &format!(
            "{} accounts and logins ({} teamsync processes, {CLI_WORKERS} at a time)",
            world.accounts.len(),
            2 * world.accounts.len()
        ),
        || run_cli_jobs(bin, &config, &account_jobs),
    );
    let team_jobs: Vec<Vec<Vec<String>>> = world
        .teams
        .iter()
        .map(|(name, group)| {
            let group = &world.groups[*group].name;
            let group = match kind {
                Kind::Ad => format!("{}\\{group}", samba::NETBIOS_DOMAIN),
                Kind::Ldap => group.clone(),
            };
            vec![
                strings(&["team", "create", name]),
                strings(&["team", "link", name, &group]),
            ]
        })
        .collect();
    steps.time(
        &format!(
            "{} teams and links ({} teamsync processes, {CLI_WORKERS} at a time)",
            world.teams.len(),
            2 * world.teams.len()
        ),
        || run_cli_jobs(bin, &config, &team_jobs),
    );
    check_store(&seed_store, world);

    steps.time("stop the server and save the tarball", || {
        server.stop();
        cache.save_server();
    });
    fs::copy(&seed_store, cache.store()).ctx(|| "copying the seeded store".into());
    remove_dir_if_present(&work);

    let total = started.elapsed().as_secs_f64();
    let record = serde_json::json!({
        "generator_version": GENERATOR_VERSION,
        "seeded_on": today(),
        "total_seconds": total,
        "steps": steps.0.iter().map(|(step, s)| serde_json::json!({"step": step, "seconds": s})).collect::<Vec<_>>(),
    });
    fs::write(
        cache.record(),
        serde_json::to_string_pretty(&record).expect("JSON"),
    )
    .ctx(|| "writing seeded.json".into());
    eprintln!("passes: seeded in {total:.1} s");
    record
}

/// Users and groups with `ldapadd -c -f` over LDAPS in large batches
/// (groups with all their members in one entry, children before parents),
/// then the custom primary groups with one `ldapmodify`.
fn seed_samba(world: &World, dir: &Path, work: &Path, steps: &mut Steps) -> Server {
    let server = Server::start(Kind::Ad, dir);
    let ous = format!(
        "{}objectClass: organizationalUnit\n\n{}objectClass: organizationalUnit\n",
        ldif_line("dn", AD_PEOPLE_DN),
        ldif_line("dn", AD_GROUPS_DN)
    );
    let file = work.join("ous.ldif");
    fs::write(&file, ous).ctx(|| "writing ous.ldif".into());
    server.apply_ldif_file("ldapadd", &file);

    steps.time(&format!("{} users (ldapadd)", world.users.len()), || {
        for (batch, users) in (0..world.users.len())
            .collect::<Vec<_>>()
            .chunks(USERS_PER_BATCH)
            .enumerate()
        {
            let file = work.join(format!("users-{batch:03}.ldif"));
            let ldif: String = users.iter().map(|u| world.user_entry(*u)).collect();
            fs::write(&file, ldif).ctx(|| format!("writing {}", file.display()));
            server.apply_ldif_file("ldapadd", &file);
        }
    });

    let values: usize = world
        .groups
        .iter()
        .map(|g| g.users.len() + g.children.len())
        .sum();
    steps.time(
        &format!(
            "{} groups with {values} member values (ldapadd)",
            world.groups.len()
        ),
        || {
            let mut batch = String::new();
            let mut in_batch = 0;
            let mut files = 0;
            for index in 0..world.groups.len() {
                let group = &world.groups[index];
                batch += &world.group_entry(index);
                in_batch += group.users.len() + group.children.len() + 1;
                if in_batch >= MEMBER_VALUES_PER_BATCH || index + 1 == world.groups.len() {
                    let file = work.join(format!("groups-{files:03}.ldif"));
                    fs::write(&file, std::mem::take(&mut batch))
                        .ctx(|| format!("writing {}", file.display()));
                    server.apply_ldif_file("ldapadd", &file);
                    in_batch = 0;
                    files += 1;
                }
            }
        },
    );

    steps.time(
        &format!(
            "{} custom primary groups (ldapmodify)",
            world.custom_primary.len()
        ),
        || {
            let rids = group_rids(&server);
            let mut ldif = String::new();
            for (user, group) in &world.custom_primary {
                let name = &world.groups[*group].name;
                let rid = rids
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, rid)| rid)
                    .unwrap_or_else(|| panic!("no objectSid read for group {name}"));
                ldif += &ldif_line("dn", &Kind::Ad.user_dn(&world.users[*user]));
                ldif += &format!(
                    "changetype: modify\nreplace: primaryGroupID\nprimaryGroupID: {rid}\n-\n\n"
                );
            }
            if !ldif.is_empty() {
                let file = work.join("primary.ldif");
                fs::write(&file, ldif).ctx(|| "writing primary.ldif".into());
                server.apply_ldif_file("ldapmodify", &file);
            }
        },
    );
    server
}

/// (sAMAccountName, RID) of every group under OU=Groups.
fn group_rids(server: &Server) -> Vec<(String, u32)> {
    let mut cmd = server.tool("ldapsearch");
    cmd.args(["-LLL", "-o", "ldif-wrap=no", "-E", "pr=1000/noprompt"])
        .args(["-b", AD_GROUPS_DN, "-s", "one", "(objectClass=group)"])
        .args(["sAMAccountName", "objectSid"]);
    let out = run_output(&mut cmd);
    assert!(
        out.status.success(),
        "ldapsearch of the groups' SIDs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("\n\n")
        .filter_map(|entry| {
            let name = ldif_strings(entry, "sAMAccountName").into_iter().next()?;
            let sid = sid_to_string(ldif_values(entry, "objectSid").first()?);
            let rid = sid.rsplit('-').next()?.parse().ok()?;
            Some((name, rid))
        })
        .collect()
}

/// Everything in one LDIF file loaded offline with `slapadd` (no memberOf
/// is computed: teamsync reads the groups' `member` values).
fn seed_slapd(world: &World, dir: &Path, work: &Path, steps: &mut Steps) -> Server {
    let file = work.join("bulk.ldif");
    steps.time("write the LDIF", || {
        let out = File::create(&file).ctx(|| format!("creating {}", file.display()));
        let mut out = BufWriter::new(out);
        for user in 0..world.users.len() {
            out.write_all(world.user_entry(user).as_bytes())
                .ctx(|| "writing the LDIF".into());
        }
        for group in 0..world.groups.len() {
            out.write_all(world.group_entry(group).as_bytes())
                .ctx(|| "writing the LDIF".into());
        }
        out.flush().ctx(|| "writing the LDIF".into());
    });
    steps.time(
        &format!(
            "{} users and {} groups (slapadd)",
            world.users.len(),
            world.groups.len()
        ),
        || {
            run_checked(
                Command::new(Kind::Ldap.script())
                    .arg("bulk")
                    .arg(dir)
                    .arg(&file),
                "slapd.sh bulk",
            )
        },
    );
    fs::remove_file(&file).ctx(|| "removing the LDIF".into());
    steps.time("start slapd", || Server::start(Kind::Ldap, dir))
}

/// The seeded store holds what the generator asked for, and no memberships.
fn check_store(store: &Path, world: &World) {
    let conn =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ctx(|| format!("opening {}", store.display()));
    let count = |table: &str| -> usize {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get::<_, i64>(0)
        })
        .ctx(|| format!("counting {table}")) as usize
    };
    let expected = [
        ("accounts", world.accounts.len()),
        ("external_logins", world.accounts.len()),
        ("teams", world.teams.len()),
        ("team_groups", world.teams.len()),
        ("memberships", 0),
        ("sync_runs", 0),
    ];
    for (table, want) in expected {
        assert_eq!(count(table), want, "rows in {table} of the seeded store");
    }
}

/// Runs each job's `teamsync` commands in order, [`CLI_WORKERS`] jobs at a
/// time; panics on the first failure.
fn run_cli_jobs(bin: &Path, config: &Path, jobs: &[Vec<Vec<String>>]) {
    let next = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..CLI_WORKERS {
            scope.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    for args in job {
                        let out = run_output(
                            Command::new(bin)
                                .arg("--config")
                                .arg(config)
                                .args(args)
                                .env_remove("RUST_LOG")
                                .stdout(Stdio::null()),
                        );
                        assert!(
                            out.status.success(),
                            "teamsync {} failed ({}): {}",
                            args.join(" "),
                            out.status,
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
            });
        }
    });
}

// ---- Measuring ----------------------------------------------------------------

/// One timed process.
struct Sample {
    wall: Duration,
    rss_kib: u64,
}

/// One `teamsync --sync-now --json --allow-removals`.
struct PassSample {
    sample: Sample,
    ldap_requests: u64,
    added: u64,
    removed: u64,
    /// Write transactions committed, counted by [`CommitCounter`] (warm-up run only).
    commits: Option<u32>,
    /// Change of the database header's file change counter over the pass.
    header_delta: u32,
}

/// Counts the write transactions other processes commit to a WAL-mode
/// store: while this connection stays open, the last teamsync connection to
/// close is not the last one, so the WAL-index (`-shm`) survives, and its
/// header's `iChange` (bytes 8..12, native byte order) goes up by one per
/// committed write transaction (sqlite3.c, walFrames). Holding it open
/// also skips the checkpoint a closing teamsync would do, so only the
/// untimed warm-up run uses it.
struct CommitCounter {
    _conn: rusqlite::Connection,
    shm: PathBuf,
}

impl CommitCounter {
    fn attach(store: &Path) -> CommitCounter {
        let conn = rusqlite::Connection::open(store).ctx(|| format!("opening {}", store.display()));
        // A read maps the WAL-index.
        let _: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .ctx(|| "reading the store".into());
        CommitCounter {
            _conn: conn,
            shm: sibling(store, "-shm"),
        }
    }

    fn value(&self) -> u32 {
        let bytes = read_prefix(&self.shm, 12);
        u32::from_ne_bytes(bytes[8..12].try_into().expect("4 bytes"))
    }
}

/// Bytes 24..28 of the SQLite header: the file change counter.
fn header_counter(store: &Path) -> u32 {
    let bytes = read_prefix(store, 28);
    u32::from_be_bytes(bytes[24..28].try_into().expect("4 bytes"))
}

/// The first `n` bytes of a file, read by a child process (`head -c`):
/// closing a descriptor of the store in this process would drop every
/// POSIX lock this process holds on it, the [`CommitCounter`]'s included,
/// and a closing teamsync would then believe itself the last connection.
fn read_prefix(path: &Path, n: usize) -> Vec<u8> {
    let out = run_output(Command::new("head").args(["-c", &n.to_string()]).arg(path));
    assert!(
        out.status.success() && out.stdout.len() == n,
        "cannot read {n} bytes of {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A run folder (`KIND-SCALE-vN/run/`, kept after the run so the printed
/// commands can be repeated): config, store copy, logs.
struct Runner<'a> {
    kind: Kind,
    bin: &'a Path,
    server_dir: PathBuf,
    seeded_store: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    store: PathBuf,
}

impl Runner<'_> {
    fn new<'a>(kind: Kind, bin: &'a Path, cache: &Cache, ad_strategy: Option<&str>) -> Runner<'a> {
        let dir = cache.dir.join("run");
        remove_dir_if_present(&dir);
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()));
        let store = dir.join("accounts.db");
        let config = dir.join("config.yaml");
        let mut yaml = kind.config_yaml(&cache.server_dir(), &store);
        if let (Kind::Ad, Some(strategy)) = (kind, ad_strategy) {
            yaml += &format!("  ad_strategy: {strategy}\n");
        }
        fs::write(&config, yaml).ctx(|| format!("writing {}", config.display()));
        Runner {
            kind,
            bin,
            server_dir: cache.server_dir(),
            seeded_store: cache.store(),
            dir,
            config,
            store,
        }
    }

    /// The seeded, never-synced store, and nothing beside it.
    fn restore_store(&self) {
        for suffix in ["-wal", "-shm", ".lock", ".state.json"] {
            let path = sibling(&self.store, suffix);
            if path.exists() {
                fs::remove_file(&path).ctx(|| format!("removing {}", path.display()));
            }
        }
        fs::copy(&self.seeded_store, &self.store).ctx(|| "restoring the store".into());
    }

    fn baseline_command(&self) -> Command {
        let (filter, attrs) = self.kind.baseline_search();
        let mut cmd = admin_tool(self.kind, &self.server_dir, "ldapsearch");
        cmd.args([
            "-LLL",
            "-E",
            "pr=1000/noprompt",
            "-b",
            self.kind.base_dn(),
            filter,
        ])
        .args(attrs);
        cmd
    }

    fn baseline(&self) -> Sample {
        let (sample, out) = self.timed(self.baseline_command());
        assert!(
            out.status.success(),
            "the baseline ldapsearch failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        sample
    }

    fn pass_command(&self) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.arg("--config")
            .arg(&self.config)
            .args(["--sync-now", "--json", "--allow-removals"])
            .env_remove("RUST_LOG")
            .env_remove("TEAMSYNC_CONFIG");
        cmd
    }

    fn pass(&self, counter: Option<&CommitCounter>) -> PassSample {
        let header_before = header_counter(&self.store);
        let commits_before = counter.map(CommitCounter::value);
        let (sample, out) = self.timed(self.pass_command());
        let stderr = String::from_utf8_lossy(&out.stderr);
        fs::write(self.dir.join("last-pass.stderr"), stderr.as_bytes())
            .ctx(|| "writing the pass log".into());
        assert!(
            out.status.code() == Some(0),
            "teamsync --sync-now failed ({}); stdout:\n{}\nstderr:\n{}",
            out.status,
            head(&String::from_utf8_lossy(&out.stdout), 20),
            head(&stderr, 40)
        );
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).ctx(|| "parsing the --json report".into());
        let number = |field: &str| {
            report[field]
                .as_u64()
                .unwrap_or_else(|| panic!("the report has no number {field:?}: {report}"))
        };
        PassSample {
            sample,
            ldap_requests: number("ldap_requests"),
            added: number("added"),
            removed: number("removed"),
            commits: counter
                .zip(commits_before)
                .map(|(counter, before)| counter.value().wrapping_sub(before)),
            header_delta: header_counter(&self.store).wrapping_sub(header_before),
        }
    }

    /// Runs `cmd` under GNU time (peak RSS), stdout captured; wall time
    /// measured around the whole process.
    fn timed(&self, cmd: Command) -> (Sample, Output) {
        let rss_file = self.dir.join("rss");
        let mut timed = Command::new(GNU_TIME);
        timed
            .args(["-f", "%M", "-o"])
            .arg(&rss_file)
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .envs(
                cmd.get_envs()
                    .filter_map(|(key, value)| value.map(|value| (key, value))),
            )
            .stdin(Stdio::null());
        for (key, value) in cmd.get_envs() {
            if value.is_none() {
                timed.env_remove(key);
            }
        }
        let started = Instant::now();
        let out = run_output(&mut timed);
        let wall = started.elapsed();
        let rss = fs::read_to_string(&rss_file).ctx(|| "reading GNU time's output".into());
        let rss_kib = rss
            .lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("GNU time wrote {rss:?}"));
        (Sample { wall, rss_kib }, out)
    }

    fn modify(&self, ldif: &str, what: &str) {
        let file = self.dir.join(format!("{what}.ldif"));
        fs::write(&file, ldif).ctx(|| format!("writing {}", file.display()));
        let mut cmd = admin_tool(self.kind, &self.server_dir, "ldapmodify");
        cmd.arg("-f").arg(&file).stdout(Stdio::null());
        let out = run_output(&mut cmd);
        assert!(
            out.status.success(),
            "ldapmodify ({what}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What one kind's benchmark found.
struct Report {
    kind: Kind,
    scale: Scale,
    provenance: String,
    sizes: Sizes,
    seeding: String,
    restore_seconds: f64,
    changed_groups: usize,
    baseline: Vec<Sample>,
    /// Per row (full, unchanged, changed): the timed runs, then the warm-up.
    passes: [Vec<PassSample>; 3],
    warmup: [PassSample; 3],
    commands: Vec<String>,
}

fn bench_kind(
    kind: Kind,
    scale: Scale,
    options: &Options,
    bin: &Path,
    root: &Path,
    code: &str,
) -> Report {
    let world = World::generate(kind, scale);
    let cache = Cache::new(root, kind, scale);
    let (record, cached) = match cache.load() {
        Some(record) => (record, true),
        None => (seed(kind, &world, &cache, bin), false),
    };

    let provenance = provenance(code);
    let started = Instant::now();
    cache.restore_server();
    let server = Server::start(kind, &cache.server_dir());
    let restore_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "passes: {}: {} server restored from the cache and started in {restore_seconds:.1} s",
        kind.name(),
        if cached { "seeded" } else { "freshly seeded" },
    );

    let runner = Runner::new(kind, bin, &cache, options.ad_strategy.as_deref());
    runner.baseline(); // warm-up
    let baseline: Vec<Sample> = (0..options.runs).map(|_| runner.baseline()).collect();

    let change = world.change_ldif(false);
    let revert = world.change_ldif(true);
    // One iteration: full pass, nothing-changed pass, 10 groups changed and
    // a pass, then the change reverted so every iteration sees the same data.
    let iteration = |counter: bool| -> [PassSample; 3] {
        runner.restore_store();
        let counter = counter.then(|| CommitCounter::attach(&runner.store));
        let full = runner.pass(counter.as_ref());
        let unchanged = runner.pass(counter.as_ref());
        runner.modify(&change, "change");
        let changed = runner.pass(counter.as_ref());
        runner.modify(&revert, "revert");
        [full, unchanged, changed]
    };
    eprintln!(
        "passes: {}: warm-up run (counts write transactions)",
        kind.name()
    );
    let warmup = iteration(true);
    let mut passes: [Vec<PassSample>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for run in 1..=options.runs {
        eprintln!("passes: {}: run {run}/{}", kind.name(), options.runs);
        for (row, sample) in iteration(false).into_iter().enumerate() {
            passes[row].push(sample);
        }
    }
    drop(server);

    let seeding = describe_seeding(&record, cached);
    let start_server = format!(
        "bash {} start-bg {}",
        relative(&kind.script()),
        relative(&cache.server_dir())
    );
    let commands = vec![
        options.command_line(kind, scale),
        "# by hand: the seeded data, the server, one baseline, one full pass".to_owned(),
        format!(
            "rm -rf {} && tar -C {} -xf {}",
            relative(&cache.server_dir()),
            relative(&cache.dir),
            relative(&cache.tarball())
        ),
        start_server,
        format!("{} >/dev/null", shell_line(&runner.baseline_command())),
        format!(
            "cp {} {} && {GNU_TIME} -f %M {}",
            relative(&cache.store()),
            relative(&runner.store),
            shell_line(&runner.pass_command())
        ),
        format!(
            "bash {} stop {}",
            relative(&kind.script()),
            relative(&cache.server_dir())
        ),
    ];
    Report {
        kind,
        scale,
        provenance,
        sizes: world.sizes,
        seeding,
        restore_seconds,
        changed_groups: world.changes.len(),
        baseline,
        passes,
        warmup,
        commands,
    }
}

fn describe_seeding(record: &serde_json::Value, cached: bool) -> String {
    let steps: Vec<String> = record["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|step| {
                    format!(
                        "{} {:.1} s",
                        step["step"].as_str().unwrap_or("?"),
                        step["seconds"].as_f64().unwrap_or(f64::NAN)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{} on {} in {:.1} s ({})",
        if cached {
            "cached: seeded"
        } else {
            "seeded by this run"
        },
        record["seeded_on"].as_str().unwrap_or("?"),
        record["total_seconds"].as_f64().unwrap_or(f64::NAN),
        steps.join("; ")
    )
}

impl Report {
    fn print(&self, options: &Options, date: &str) {
        let baseline = median(self.baseline.iter().map(|s| s.wall));
        println!(
            "## {}, scale {} ({}), {date}",
            self.kind.title(),
            self.scale.name(),
            self.sizes.describe(self.kind)
        );
        println!();
        println!(
            "Median of {} runs (min-max in brackets), after one untimed warm-up run; {}.",
            options.runs, self.provenance
        );
        if self.kind == Kind::Ad {
            println!(
                "`directory.ad_strategy`: {}.",
                options
                    .ad_strategy
                    .as_deref()
                    .unwrap_or("auto (the default: group_dump from 200 linked logins on)")
            );
        }
        println!();
        println!(
            "| row | wall time | vs baseline | LDAP requests | SQLite write transactions | peak RSS | memberships +/- |"
        );
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| 1. baseline `ldapsearch` | {} | 1.00x | - | - | {} | - |",
            wall_cell(self.baseline.iter().map(|s| s.wall)),
            mib(median(self.baseline.iter().map(|s| s.rss_kib)))
        );
        let titles = [
            "2. full pass (empty memberships)".to_owned(),
            "3. pass, nothing changed".to_owned(),
            format!("4. pass, {} groups changed", self.changed_groups),
        ];
        for (row, title) in titles.iter().enumerate() {
            let runs = &self.passes[row];
            let wall = median(runs.iter().map(|s| s.sample.wall));
            let ratio = wall.as_secs_f64() / baseline.as_secs_f64();
            println!(
                "| {title} | {} | {ratio:.2}x | {} | {} | {} | +{} / -{} |",
                wall_cell(runs.iter().map(|s| s.sample.wall)),
                range_cell(runs.iter().map(|s| s.ldap_requests)),
                self.warmup[row]
                    .commits
                    .map_or("?".to_owned(), |n| n.to_string()),
                mib(median(runs.iter().map(|s| s.sample.rss_kib))),
                median(runs.iter().map(|s| s.added)),
                median(runs.iter().map(|s| s.removed)),
            );
        }
        println!();
        println!(
            "Header change counter (bytes 24..28) moved by {} / {} / {} over rows 2 / 3 / 4 \
             (median): in WAL mode SQLite bumps it only when a commit rewrites page 1, so it is \
             not the transaction count; that column counts commits in the WAL-index instead.",
            median(self.passes[0].iter().map(|s| s.header_delta)),
            median(self.passes[1].iter().map(|s| s.header_delta)),
            median(self.passes[2].iter().map(|s| s.header_delta)),
        );
        println!("Data: {}.", self.seeding);
        println!(
            "Restoring the server from the cache and starting it took {:.1} s.",
            self.restore_seconds
        );
        println!();
        println!("Reproduce:");
        println!();
        println!("```sh");
        for command in &self.commands {
            println!("{command}");
        }
        println!("```");
        println!();
    }
}

/// How the medians grew from half the directory to all of it.
fn print_doubling(half: &Report, full: &Report) {
    println!(
        "## Doubling the directory: {}, half -> full",
        full.kind.title()
    );
    println!();
    println!(
        "Half: {}. Full: {}. Each cell is the median of the two tables above.",
        half.sizes.describe(half.kind),
        full.sizes.describe(full.kind)
    );
    println!();
    println!("| row | half | full | full / half |");
    println!("|---|---|---|---|");
    let walls = |report: &Report| -> Vec<Duration> {
        let mut walls = vec![median(report.baseline.iter().map(|s| s.wall))];
        walls.extend(
            report
                .passes
                .iter()
                .map(|runs| median(runs.iter().map(|s| s.sample.wall))),
        );
        walls
    };
    let titles = [
        "1. baseline `ldapsearch`".to_owned(),
        "2. full pass (empty memberships)".to_owned(),
        "3. pass, nothing changed".to_owned(),
        format!("4. pass, {} groups changed", full.changed_groups),
    ];
    for ((title, h), f) in titles.iter().zip(walls(half)).zip(walls(full)) {
        println!(
            "| {title} | {} | {} | {:.2}x |",
            seconds(h),
            seconds(f),
            f.as_secs_f64() / h.as_secs_f64()
        );
    }
    println!();
}

fn wall_cell(walls: impl Iterator<Item = Duration>) -> String {
    let walls: Vec<Duration> = walls.collect();
    let min = walls.iter().min().copied().unwrap_or_default();
    let max = walls.iter().max().copied().unwrap_or_default();
    format!(
        "{} ({}-{})",
        seconds(median(walls.into_iter())),
        seconds(min),
        seconds(max)
    )
}

fn range_cell(values: impl Iterator<Item = u64>) -> String {
    let values: Vec<u64> = values.collect();
    let (min, max) = (
        values.iter().min().copied().unwrap_or(0),
        values.iter().max().copied().unwrap_or(0),
    );
    if min == max {
        min.to_string()
    } else {
        format!("{} ({min}-{max})", median(values.into_iter()))
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.1} s")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The median; the lower of the middle two for an even count.
fn median<T: Ord + Copy + Default>(values: impl Iterator<Item = T>) -> T {
    let mut values: Vec<T> = values.collect();
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

/// Which code the binary was built from: `git describe` when the run
/// started (cargo bench has just built it).
fn code_version() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "an unknown commit".to_owned())
}

/// The code, the machine and how busy it is.
fn provenance(code: &str) -> String {
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let load = fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("teamsync at {code}, {cores} cores, load average {load} before the run")
}

// ---- Small helpers -------------------------------------------------------------

trait Ctx<T> {
    /// The value, or a panic saying what was being done and why it failed.
    fn ctx(self, what: impl FnOnce() -> String) -> T;
}

impl<T, E: Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> T {
        self.unwrap_or_else(|err| panic!("{}: {err}", what()))
    }
}

fn run_output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {:?}: {err}", cmd.get_program()))
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = run_output(cmd);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        head(&String::from_utf8_lossy(&out.stdout), 20),
        head(&String::from_utf8_lossy(&out.stderr), 40)
    );
}

fn head(text: &str, lines: usize) -> String {
    text.lines().take(lines).collect::<Vec<_>>().join("\n")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_dir_if_present(dir: &Path) {
    if dir.exists() {
        fs::remove_dir_all(dir).ctx(|| format!("removing {}", dir.display()));
    }
}

/// A path relative to the repository, for printed commands.
fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A command as a shell line (environment, program, arguments), quoted.
fn shell_line(cmd: &Command) -> String {
    let quote = |text: &str| {
        if !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%".contains(c))
        {
            text.to_owned()
        } else {
            format!("'{}'", text.replace('\'', r"'\''"))
        }
    };
    let mut words: Vec<String> = cmd
        .get_envs()
        .filter_map(|(key, value)| {
            value.map(|value| {
                format!(
                    "{}={}",
                    key.to_string_lossy(),
                    quote(&relative(Path::new(value)))
                )
            })
        })
        .collect();
    words.push(quote(&relative(Path::new(cmd.get_program()))));
    words.extend(cmd.get_args().map(|arg| quote(&relative(Path::new(arg)))));
    words.join(" ")
}

/// The release binary `cargo bench` built (building it if it is missing).
fn teamsync_binary() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_teamsync"));
    if !bin.is_file() {
        run_checked(
            Command::new(env!("CARGO"))
                .args(["build", "--release", "--bin", "teamsync"])
                .current_dir(env!("CARGO_MANIFEST_DIR")),
            "cargo build --release",
        );
    }
    assert!(bin.is_file(), "{} is missing", bin.display());
    bin
}

/// One benchmark at a time: the servers use fixed addresses and folders.
fn lock_cache(root: &Path) -> File {
    let path = root.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()));
    if file.try_lock().is_err() {
        eprintln!(
            "passes: waiting for another benchmark run ({})",
            path.display()
        );
        file.lock().ctx(|| format!("locking {}", path.display()));
    }
    file
}

/// Today's UTC date, YYYY-MM-DD.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
