//! Crash safety and locking against a real slapd: a pass killed with
//! SIGKILL at any point leaves the store as it was or as the pass meant it,
//! never a mix; a store write lock held by another process makes a pass
//! wait up to `store.busy_timeout`, then exit 75 having changed nothing;
//! two passes started at once (two `--sync-now`, or the daemon and one)
//! never write at the same time.

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::slapd::{Slapd, unique};
use common::teamsync::{Run, Teamsync};

/// Directory users, service accounts and logins (one each).
const USERS: usize = 200;
/// Groups, each linked to its own team; user i is in group i % GROUPS.
const GROUPS: usize = 20;
/// How many passes the crash test kills.
const KILLS: usize = 50;

/// A store with everything set up with the CLI but no pass run yet, and
/// the membership pairs a full pass must produce.
struct Fixture {
    template: Teamsync,
    expected: BTreeSet<(String, String)>,
}

fn account_name(i: usize) -> String {
    format!("bot-{i:03}")
}

fn team_name(g: usize) -> String {
    format!("team-{g:02}")
}

/// Built once per test binary: 200 users in 20 groups on the shared slapd,
/// 200 service accounts with one login each, 20 teams each linked to one
/// group. Later tests copy the store file.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let started = Instant::now();
        let s = Slapd::shared();
        let prefix = unique("cr");
        let uids: Vec<String> = (0..USERS).map(|i| format!("{prefix}-u{i}")).collect();
        let uid_refs: Vec<&str> = uids.iter().map(String::as_str).collect();
        let dns = s.add_users(&uid_refs);
        let mut expected = BTreeSet::new();
        let mut group_names = Vec::new();
        for g in 0..GROUPS {
            let members: Vec<&str> = (g..USERS)
                .step_by(GROUPS)
                .map(|i| dns[i].as_str())
                .collect();
            let name = format!("{prefix}-g{g}");
            s.add_group(&name, &members);
            group_names.push(name);
            for i in (g..USERS).step_by(GROUPS) {
                expected.insert((account_name(i), team_name(g)));
            }
        }

        let ts = Teamsync::for_slapd(s, "", "");
        // The first command creates the store alone (see
        // two_commands_creating_a_store_at_once_both_succeed).
        ts.account(&account_name(0));
        ts.login(&account_name(0), &uids[0]);
        // Store commands, two at a time: each is its own small transaction
        // (the busy timeout covers the other writer).
        let halves: Vec<Vec<usize>> = vec![
            (2..USERS).step_by(2).collect(),
            (1..USERS).step_by(2).collect(),
        ];
        std::thread::scope(|scope| {
            for half in &halves {
                let (ts, uids) = (&ts, &uids);
                scope.spawn(move || {
                    for &i in half {
                        ts.account(&account_name(i));
                        ts.login(&account_name(i), &uids[i]);
                    }
                });
            }
        });
        for (g, group) in group_names.iter().enumerate() {
            ts.team(&team_name(g));
            ts.link(&team_name(g), group);
        }
        assert!(
            file_len(&sibling(&ts.store, "-wal")) == 0,
            "the template store kept a non-empty WAL"
        );
        eprintln!(
            "crash_and_locks: fixture of {USERS} accounts and {GROUPS} teams built in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Fixture {
            template: ts,
            expected,
        }
    })
}

/// A fresh config for the shared slapd (with `extra` top-level YAML) and a
/// copy of the fixture's store.
fn copy_of_fixture(extra: &str) -> Teamsync {
    let fx = fixture();
    let ts = Teamsync::for_slapd(Slapd::shared(), "", extra);
    std::fs::copy(&fx.template.store, &ts.store).unwrap();
    ts
}

fn sibling(store: &Path, suffix: &str) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Puts the store back to `bytes` and removes everything a pass leaves
/// beside it.
fn restore(store: &Path, bytes: &[u8]) {
    for suffix in ["-wal", "-shm", "-journal", ".lock", ".state.json"] {
        let path = sibling(store, suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => panic!("cannot remove {}: {err}", path.display()),
        }
    }
    std::fs::write(store, bytes).unwrap();
}

/// Sets `store.busy_timeout` in a config written by the harness.
fn set_busy_timeout(ts: &Teamsync, value: &str) {
    let text = std::fs::read_to_string(&ts.config).unwrap();
    assert!(text.starts_with("store:\n"), "{text}");
    let text = text.replacen("store:\n", &format!("store:\n  busy_timeout: {value}\n"), 1);
    std::fs::write(&ts.config, text).unwrap();
}

fn integrity(db: &rusqlite::Connection) -> String {
    db.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

fn runs(db: &rusqlite::Connection) -> Vec<(String, i64, i64)> {
    db.prepare("SELECT outcome, added, removed FROM sync_runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn directory_pairs(db: &rusqlite::Connection) -> BTreeSet<(String, String)> {
    db.prepare(
        "SELECT a.name, t.name FROM memberships m
         JOIN accounts a ON a.id = m.account_id JOIN teams t ON t.id = m.team_id
         WHERE m.source = 'directory'",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// As the fixture left it: no pass applied.
    Old,
    /// As one complete pass leaves it.
    New,
}

/// Opens the store as a reader would after a crash and says which state it
/// holds; panics on a damaged store or on anything between the two.
fn inspect(store: &Path) -> Seen {
    let fx = fixture();
    let db = rusqlite::Connection::open(store).unwrap();
    assert_eq!(integrity(&db), "ok", "PRAGMA integrity_check");
    // What the pass does not touch is always there.
    assert_eq!(count(&db, "SELECT count(*) FROM accounts"), USERS as i64);
    assert_eq!(
        count(&db, "SELECT count(*) FROM external_logins"),
        USERS as i64
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM team_groups"),
        GROUPS as i64
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM memberships WHERE source = 'manual'"
        ),
        0
    );
    let observed = (
        count(
            &db,
            "SELECT count(*) FROM memberships WHERE source = 'directory'",
        ),
        runs(&db),
        count(&db, "SELECT count(*) FROM sync_changes"),
        count(
            &db,
            "SELECT count(*) FROM external_logins WHERE object_id IS NOT NULL",
        ),
        count(&db, "SELECT count(*) FROM directory_state"),
    );
    let old = (0, vec![], 0, 0, 0);
    let new = (
        USERS as i64,
        vec![("success".to_owned(), USERS as i64, 0)],
        USERS as i64,
        USERS as i64,
        1,
    );
    if observed == old {
        Seen::Old
    } else if observed == new {
        assert_eq!(
            directory_pairs(&db),
            fx.expected,
            "wrong memberships after a full pass"
        );
        Seen::New
    } else {
        panic!(
            "the store holds a mix of the old and the new state: (directory memberships, runs, changes, pinned logins, directory_state rows) = {observed:?}"
        );
    }
}

/// A tiny xorshift64 generator: reproducible delays without a crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

fn spawn_pass(ts: &Teamsync) -> Child {
    ts.command()
        .args(["--sync-now", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> Run {
    child.wait_with_output().unwrap().into()
}

#[test]
fn a_pass_killed_at_any_point_leaves_the_old_or_the_new_state_never_a_mix() {
    let ts = copy_of_fixture("");
    let old = std::fs::read(&ts.store).unwrap();
    assert_eq!(inspect(&ts.store), Seen::Old);

    // A normal pass: how long it takes, and what it leaves.
    let mut durations = Vec::new();
    for _ in 0..3 {
        restore(&ts.store, &old);
        let started = Instant::now();
        let run = finish(spawn_pass(&ts));
        durations.push(started.elapsed());
        run.ok();
        assert_eq!(run.json()["added"], USERS);
        assert_eq!(inspect(&ts.store), Seen::New);
    }
    durations.sort();
    let pass = durations[1];

    // The first kills land anywhere in a normal pass; the rest around where
    // the first ones saw the state flip from old to new: the write, the
    // commit and the moments after it.
    let mut rng = XorShift(0x5eed_c0ff_ee15_900d);
    let uniform = KILLS * 3 / 5;
    let mut window = (Duration::ZERO, pass);
    let (mut last_old, mut first_new) = (Duration::ZERO, pass * 2);
    let (mut before, mut after, mut finished) = (0, 0, 0);
    let mut killed_new = Vec::new();
    for round in 0..KILLS {
        if round == uniform {
            let from = last_old
                .min(first_new)
                .saturating_sub(Duration::from_millis(40));
            window = (from, first_new.max(last_old) + Duration::from_millis(15));
        }
        let (from, to) = window;
        let span = (to - from).as_micros() as u64;
        let delay = from + Duration::from_micros(rng.below(span));
        restore(&ts.store, &old);
        let mut child = spawn_pass(&ts);
        std::thread::sleep(delay);
        let exited_first = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let seen = inspect(&ts.store);
        match (exited_first || status.code() == Some(0), seen) {
            (true, Seen::New) => {
                finished += 1;
                first_new = first_new.min(delay);
            }
            (true, Seen::Old) => panic!(
                "a pass that exited ({status}) before the kill left the old state, after {delay:?}"
            ),
            (false, Seen::Old) => {
                before += 1;
                last_old = last_old.max(delay);
            }
            (false, Seen::New) => {
                after += 1;
                killed_new.push(delay);
                first_new = first_new.min(delay);
            }
        }
    }
    eprintln!(
        "crash_and_locks: normal pass {pass:?} (of {durations:?}); {KILLS} kills ({uniform} over 0..{pass:?}, \
         the rest over {:?}..{:?}): {before} before the commit (old state), {after} after it \
         (new state, process still running), {finished} after the process had exited; \
         kills that found the new state in a running process: {killed_new:?}",
        window.0, window.1
    );
    assert_eq!(before + after + finished, KILLS);
    assert!(
        before > 0,
        "no kill landed before the commit: the delays do not cover the pass"
    );

    // Whatever the last kill left, it blocks nothing: the next pass
    // completes and the store converges.
    let last = inspect(&ts.store);
    let run = finish(spawn_pass(&ts));
    run.ok();
    let db = rusqlite::Connection::open(&ts.store).unwrap();
    assert_eq!(integrity(&db), "ok");
    assert_eq!(directory_pairs(&db), fixture().expected);
    let expected_runs = match last {
        Seen::Old => vec![("success".to_owned(), USERS as i64, 0)],
        Seen::New => vec![
            ("success".to_owned(), USERS as i64, 0),
            ("success".to_owned(), 0, 0),
        ],
    };
    assert_eq!(runs(&db), expected_runs);
}

/// One user in one group, linked to a team through one account; passes
/// against it are short.
fn small(extra: &str) -> Teamsync {
    let s = Slapd::shared();
    let user = unique("lk");
    let user_dn = s.add_user(&user);
    let group = unique("lkg");
    s.add_group(&group, &[&user_dn]);
    let ts = Teamsync::for_slapd(s, "", extra);
    ts.account("bot");
    ts.login("bot", &user);
    ts.team("deploy");
    ts.link("deploy", &group);
    ts
}

#[test]
fn a_store_write_lock_held_past_the_busy_timeout_exits_75_and_changes_nothing() {
    let ts = small("");
    set_busy_timeout(&ts, "1s");
    let before = ts.store_bytes();

    let holder = rusqlite::Connection::open(&ts.store).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let run = ts.run(&["--sync-now"]);
    let took = started.elapsed();
    run.code(75);
    assert!(
        run.stderr.contains("the store is busy"),
        "stderr does not say the store is busy:\n{}",
        run.stderr
    );
    assert!(
        took >= Duration::from_secs(1),
        "gave up after {took:?}, before store.busy_timeout (1s)"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);

    assert_eq!(
        ts.store_bytes(),
        before,
        "the refused pass changed the store"
    );
    let db = rusqlite::Connection::open(&ts.store).unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM sync_runs"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM memberships"), 0);
    drop(db);

    let report = ts.sync(0);
    assert_eq!(report["added"], 1, "{report}");
    assert_eq!(
        ts.members("deploy"),
        vec![("bot".to_owned(), "directory".to_owned())]
    );
}

#[test]
fn a_store_write_lock_released_within_the_busy_timeout_is_waited_for() {
    const HOLD: Duration = Duration::from_millis(300);
    let ts = small("");
    set_busy_timeout(&ts, "1s");

    let holder = rusqlite::Connection::open(&ts.store).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut child = ts
        .command()
        .args(["--sync-now", "--json"])
        .env("RUST_LOG", "teamsync=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The last directory read of a pass over slapd logs "read the groups";
    // from there the pass only plans and writes. Hold the lock for HOLD
    // after that, so that the write certainly meets it.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("read the groups") {
                let _ = tx.send(());
            }
            all += &line;
            all.push('\n');
        }
        all
    });
    let read = rx.recv_timeout(Duration::from_secs(20));
    if read.is_ok() {
        std::thread::sleep(HOLD);
    }
    let still_waiting = child.try_wait().unwrap().is_none();
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    let output = child.wait_with_output().unwrap();
    let log = reader.join().unwrap();
    assert!(
        read.is_ok(),
        "the pass never logged \"read the groups\":\n{log}"
    );
    assert!(
        still_waiting,
        "the pass ended while the store was locked ({:?}):\n{log}",
        output.status
    );
    assert_eq!(output.status.code(), Some(0), "{log}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["added"], 1, "{report}");
    let db = rusqlite::Connection::open(&ts.store).unwrap();
    assert_eq!(integrity(&db), "ok");
    assert_eq!(runs(&db), vec![("success".to_owned(), 1, 0)]);
}

/// Log text without the colour codes of a terminal-style log.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// After two passes over a copy of the fixture: one applied everything,
/// the other found nothing left to do; memberships right, store sound.
fn assert_two_serial_passes(store: &Path, reports: &[serde_json::Value]) {
    let mut added: Vec<i64> = reports
        .iter()
        .map(|r| r["added"].as_i64().unwrap())
        .collect();
    added.sort();
    assert_eq!(
        added,
        vec![0, USERS as i64],
        "both passes planned against the same store state: {reports:?}"
    );
    let db = rusqlite::Connection::open(store).unwrap();
    assert_eq!(integrity(&db), "ok");
    let mut recorded = runs(&db);
    recorded.sort();
    assert_eq!(
        recorded,
        vec![
            ("success".to_owned(), 0, 0),
            ("success".to_owned(), USERS as i64, 0)
        ],
        "one sync_runs row per applied pass"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM sync_changes"),
        USERS as i64
    );
    assert_eq!(directory_pairs(&db), fixture().expected);
}

#[test]
fn two_sync_now_started_at_once_run_one_after_the_other() {
    let ts = copy_of_fixture("");
    let started = Instant::now();
    let children = [spawn_pass(&ts), spawn_pass(&ts)];
    let runs: Vec<Run> = children.into_iter().map(finish).collect();
    let took = started.elapsed();
    for run in &runs {
        run.ok();
    }
    let reports: Vec<serde_json::Value> = runs.iter().map(Run::json).collect();
    eprintln!("crash_and_locks: two concurrent --sync-now took {took:?}");
    assert_two_serial_passes(&ts.store, &reports);
}

#[test]
fn the_daemon_and_a_sync_now_started_at_once_never_write_together() {
    let ts = copy_of_fixture("sync:\n  interval: 1h\n  jitter: 0s\n");
    let mut daemon = ts
        .command()
        .arg("daemon")
        .env("RUST_LOG", "teamsync=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let one_shot = finish(spawn_pass(&ts));

    // The daemon's first pass, before or after the one-shot's.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = rusqlite::Connection::open(&ts.store)
            .ok()
            .and_then(|db| {
                db.query_row("SELECT count(*) FROM sync_runs", [], |r| r.get::<_, i64>(0))
                    .ok()
            })
            .unwrap_or(0);
        if done >= 2 {
            break;
        }
        if let Some(status) = daemon.try_wait().unwrap() {
            panic!("the daemon exited early ({status})");
        }
        assert!(
            Instant::now() < deadline,
            "the daemon recorded no pass within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = daemon.wait_with_output().unwrap();
    let log = strip_ansi(&String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "daemon:\n{log}");
    one_shot.ok();

    // The daemon's report is its log line: either it applied everything,
    // or it found nothing to do (nothing changed, or a full pass adding 0).
    let applied = format!("added={USERS} ");
    let daemon_added = if log.contains(&applied) {
        USERS
    } else if log.contains("added=0 ") || log.contains("nothing changed since the last full pass") {
        0
    } else {
        panic!("the daemon logged no finished pass:\n{log}");
    };
    let reports = vec![
        one_shot.json(),
        serde_json::json!({ "added": daemon_added }),
    ];
    assert_two_serial_passes(&ts.store, &reports);
}

#[test]
fn two_commands_creating_a_store_at_once_both_succeed() {
    const ROUNDS: usize = 200;
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        // account create touches only the store.
        let ts = Teamsync::for_slapd(Slapd::shared(), "", "");
        let children: Vec<(Instant, Child)> = ["first", "second"]
            .iter()
            .map(|name| {
                let child = ts
                    .command()
                    .args(["account", "create", name])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (Instant::now(), child)
            })
            .collect();
        for (started, child) in children {
            let run = finish(child);
            if run.code != 0 {
                failures.push(format!(
                    "round {round}: exit {} after {:?}: {}",
                    run.code,
                    started.elapsed(),
                    run.stderr.trim()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ROUNDS} rounds had a command fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
