//! Network and directory faults against a real Samba AD DC, injected by a
//! TCP proxy between teamsync and the DC (`common::proxy`): refused and
//! reset connections, failed TLS handshakes, a certificate for another
//! name, connections cut or stalled anywhere in a pass, and a base DN that
//! suddenly holds nobody. Each faulty pass must exit 69 (75 for the
//! removal guard), say what happened, leave the store byte for byte as it
//! was, and the next healthy pass must converge.

// Tests stop at the first failed step, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::proxy::{Fault, Proxy, closed_port};
use common::samba::{
    DNS_DOMAIN, GLOBAL_SECURITY, SambaDc, UAC_NORMAL_ACCOUNT, UAC_PASSWD_NOTREQD, USERS_DN,
    child_dn, ldif_line, unique,
};
use common::teamsync::{Run, Teamsync};

/// directory.timeouts in every config here.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a stalled pass may take at most on a loaded 2-core machine.
const STALL_BOUND: Duration = Duration::from_secs(20);

/// A seeded store whose config reaches the DC through a proxy.
struct Case {
    dc: &'static SambaDc,
    proxy: Proxy,
    ts: Teamsync,
}

fn dc_ip(dc: &SambaDc) -> IpAddr {
    dc.ip().parse().unwrap()
}

/// A proxy on the DC's own address (so the certificate's IP SAN matches)
/// forwarding to its LDAPS port.
fn dc_proxy(dc: &SambaDc) -> Proxy {
    Proxy::start(dc_ip(dc), SocketAddr::new(dc_ip(dc), 636))
}

/// Replaces `from` by `to` in the config (which must contain it).
fn rewrite_config(ts: &Teamsync, from: &str, to: &str) {
    let text = std::fs::read_to_string(&ts.config).unwrap();
    assert!(text.contains(from), "config lacks {from}:\n{text}");
    std::fs::write(&ts.config, text.replace(from, to)).unwrap();
}

/// A config for `url` with the short timeouts of these tests, `directory`
/// lines added to the `directory:` section and `extra` top-level YAML.
fn config_for(dc: &SambaDc, url: &str, directory: &str, extra: &str) -> Teamsync {
    let ts = Teamsync::with_directory(dc, url, dc.ca_file(), extra);
    if !directory.is_empty() {
        rewrite_config(&ts, "  tls:\n", &format!("{directory}  tls:\n"));
    }
    rewrite_config(
        &ts,
        "connect: 5s\n    operation: 20s",
        &format!(
            "connect: {}s\n    operation: {}s",
            CONNECT_TIMEOUT.as_secs(),
            OPERATION_TIMEOUT.as_secs()
        ),
    );
    ts
}

/// `accounts` service accounts, each with the login of its own AD user,
/// all users in one group linked to team `deploy`, granted by a real pass
/// through the proxy. Then the first user leaves the group, so that a
/// healthy pass would remove exactly one membership.
fn seeded(accounts: usize) -> Case {
    seeded_with(accounts, "")
}

/// [`seeded`], with `directory` lines added to the `directory:` section.
fn seeded_with(accounts: usize, directory: &str) -> Case {
    let dc = SambaDc::shared();
    let group = unique("grp");
    let group_dn = child_dn("CN", &group, USERS_DN);
    let sams: Vec<String> = (0..accounts).map(|_| unique("u")).collect();
    let users: Vec<String> = sams.iter().map(|s| child_dn("CN", s, USERS_DN)).collect();
    // One ldapadd: the users, then the group holding them all.
    let mut ldif = String::new();
    for (sam, dn) in sams.iter().zip(&users) {
        ldif += &ldif_line("dn", dn);
        ldif += "objectClass: user\n";
        ldif += &ldif_line("sAMAccountName", sam);
        ldif += &ldif_line("userPrincipalName", &format!("{sam}@{DNS_DOMAIN}"));
        ldif += &format!(
            "userAccountControl: {}\n\n",
            UAC_NORMAL_ACCOUNT | UAC_PASSWD_NOTREQD
        );
    }
    ldif += &ldif_line("dn", &group_dn);
    ldif += "objectClass: group\n";
    ldif += &ldif_line("sAMAccountName", &group);
    ldif += &format!("groupType: {GLOBAL_SECURITY}\n");
    for dn in &users {
        ldif += &ldif_line("member", dn);
    }
    dc.add_ldif(&ldif);

    let proxy = dc_proxy(dc);
    let url = format!("ldaps://{}:{}", dc.ip(), proxy.port());
    let ts = config_for(dc, &url, directory, "");
    ts.team("deploy");
    ts.link("deploy", &format!("CORP\\{group}"));
    for (i, sam) in sams.iter().enumerate() {
        let account = format!("bot-{i}");
        ts.account(&account);
        ts.login(&account, &format!("CORP\\{sam}"));
    }
    assert_eq!(ts.sync(0)["added"], accounts);
    dc.remove_member(&group_dn, &users[0]);
    Case { dc, proxy, ts }
}

impl Case {
    /// One `--sync-now` with the proxy set to `fault` (back to `Pass`
    /// after): exit 69, the store byte for byte as it was, and the failure
    /// recorded where `status` finds it.
    #[track_caller]
    fn faulty_pass(&self, fault: Fault) -> (Run, Duration) {
        let before = self.ts.store_bytes();
        let connections = self.proxy.connections();
        self.proxy.set(fault);
        let started = Instant::now();
        let run = self.ts.run(&["--sync-now"]);
        let took = started.elapsed();
        self.proxy.set(Fault::Pass);
        eprintln!(
            "{fault:?}: exit {} after {:.2}s: {}",
            run.code,
            took.as_secs_f64(),
            short(error_line(&run))
        );
        run.code(69);
        assert!(
            self.proxy.connections() > connections,
            "{fault:?}: the pass never reached the proxy"
        );
        assert!(
            self.ts.store_bytes() == before,
            "{fault:?}: the store changed\nstderr:\n{}",
            run.stderr
        );
        let status = self.ts.run(&["status", "--json"]);
        status.ok();
        let last = &status.json()["last_pass"];
        assert_eq!(last["outcome"], "failed", "{fault:?}: {last}");
        assert!(
            last["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{fault:?}: {last}"
        );
        (run, took)
    }

    /// A healthy pass now removes the membership the DC change revoked.
    #[track_caller]
    fn converges(&self) {
        let report = self.ts.sync(0);
        assert_eq!(report["removed"], 1, "{report}");
        assert_eq!(report["added"], 0, "{report}");
        assert_eq!(report["changes"][0]["account"], "bot-0", "{report}");
    }

    /// Bytes the DC sends in a whole healthy pass (a dry run: the same
    /// reads, nothing written), and up to the end of the bind (a pass whose
    /// bind is refused: the handshake and the bind's answer).
    fn measure(&self) -> (u64, u64) {
        self.proxy.reset_counters();
        let run = self.ts.run(&["--sync-now", "--dry-run", "--json"]);
        run.ok();
        assert_eq!(run.json()["removed"], 1, "{}", run.stdout);
        let pass = self.proxy.bytes_to_client();

        let wrong = self.ts.dir.path().join("wrong-password");
        std::fs::write(&wrong, "Not-The-Password-1").unwrap();
        // Owner-only, as teamsync requires of a password file.
        std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let right = self.dc.admin_password_file().display().to_string();
        rewrite_config(&self.ts, &right, &wrong.display().to_string());
        self.proxy.reset_counters();
        let run = self.ts.run(&["--sync-now", "--dry-run"]);
        run.code(69);
        assert!(run.stderr.contains("refused the bind"), "{}", run.stderr);
        let bind = self.proxy.bytes_to_client();
        rewrite_config(&self.ts, &wrong.display().to_string(), &right);
        assert!(bind < pass, "bind {bind} bytes, whole pass {pass}");
        eprintln!("a healthy pass: {pass} bytes from the DC, {bind} up to the bind's answer");
        (bind, pass)
    }
}

/// The `teamsync: error:` line of a failed run.
fn error_line(run: &Run) -> &str {
    run.stderr
        .lines()
        .find(|l| l.starts_with("teamsync: error:"))
        .unwrap_or("(no error line)")
}

/// Long lines (a batch search names every SID) cut for messages.
fn short(text: &str) -> String {
    let mut out: String = text.chars().take(240).collect();
    if out.len() < text.len() {
        out += " ...";
    }
    out
}

#[track_caller]
fn says(run: &Run, words: &[&str]) {
    for word in words {
        assert!(
            run.stderr.contains(word),
            "stderr lacks {word:?}:\n{}",
            run.stderr
        );
    }
}

// ---- Directory faults ----------------------------------------------------

#[test]
fn refused_connections_exit_69_and_change_nothing() {
    let case = seeded(1);
    let url = format!("ldaps://{}:{}", case.dc.ip(), case.proxy.port());

    let (run, _) = case.faulty_pass(Fault::Refuse);
    says(&run, &["cannot connect", &url]);

    // Nothing listening at all: the TCP connect itself is refused.
    let closed = format!("ldaps://{}:{}", case.dc.ip(), closed_port(dc_ip(case.dc)));
    rewrite_config(&case.ts, &url, &closed);
    let before = case.ts.store_bytes();
    let run = case.ts.run(&["--sync-now"]);
    run.code(69);
    says(&run, &["cannot connect", &closed, "refused"]);
    assert!(case.ts.store_bytes() == before, "the store changed");
    rewrite_config(&case.ts, &closed, &url);

    case.converges();
}

#[test]
fn a_failed_tls_handshake_exits_69_and_changes_nothing() {
    let case = seeded(1);
    let url = format!("ldaps://{}:{}", case.dc.ip(), case.proxy.port());
    // Cut before the server's first byte, inside its first flight (the
    // certificate), and reset once the client has said hello.
    for fault in [Fault::CutAfter(0), Fault::CutAfter(700)] {
        let (run, _) = case.faulty_pass(fault);
        says(&run, &["cannot connect", &url]);
    }
    let (run, _) = case.faulty_pass(Fault::Reset);
    says(&run, &["cannot connect", &url, "reset"]);
    case.converges();
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let case = seeded(1);
    let url = format!("ldaps://{}:{}", case.dc.ip(), case.proxy.port());
    // The DC's certificate lists dc1.corp.example.com, dc1 and the DC's IP;
    // neither `localhost` nor 127.0.0.1.
    let elsewhere = Proxy::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        SocketAddr::new(dc_ip(case.dc), 636),
    );
    for host in ["localhost", "127.0.0.1"] {
        let other = format!("ldaps://{host}:{}", elsewhere.port());
        rewrite_config(&case.ts, &url, &other);
        let before = case.ts.store_bytes();
        let run = case.ts.run(&["--sync-now"]);
        eprintln!("{host}: exit {}: {}", run.code, run.stderr.trim_end());
        run.code(69);
        says(
            &run,
            &[
                "cannot connect",
                &other,
                &format!("not valid for name \"{host}\""),
            ],
        );
        assert!(case.ts.store_bytes() == before, "the store changed");
        rewrite_config(&case.ts, &other, &url);
    }
    assert!(elsewhere.connections() >= 2, "teamsync never connected");
    case.converges();
}

/// Ten passes, each cut after n bytes from the DC, n spread from the end
/// of the bind to well before the pass's last answer.
fn cut_anywhere(case: &Case) {
    let (bind, pass) = case.measure();
    let started = Instant::now();
    for k in 1..=10u64 {
        let n = bind + (pass - bind) * k / 11;
        let (run, took) = case.faulty_pass(Fault::CutAfter(n));
        // Said as a failed read, and noticed at once, not waited out.
        let error = error_line(&run);
        assert!(
            error.contains(" failed")
                && ["searching ", "reading ", "asking "]
                    .iter()
                    .any(|step| error.contains(step)),
            "CutAfter({n}): {}",
            short(error)
        );
        assert!(took < OPERATION_TIMEOUT, "CutAfter({n}) took {took:?}");
    }
    eprintln!("10 cut passes in {:.1}s", started.elapsed().as_secs_f64());
    case.converges();
}

#[test]
fn a_connection_cut_anywhere_in_a_token_groups_pass_exits_69_and_changes_nothing() {
    // 30 logins: their tokenGroups are read one request each (pipelined).
    cut_anywhere(&seeded_with(30, "  ad_strategy: token_groups\n"));
}

#[test]
fn a_connection_cut_anywhere_in_a_group_dump_pass_exits_69_and_changes_nothing() {
    // Small pages: the dump of every account and group takes many requests.
    cut_anywhere(&seeded_with(
        30,
        "  ad_strategy: group_dump\n  page_size: 20\n",
    ));
}

#[test]
fn a_stalled_directory_times_out_with_69_and_changes_nothing() {
    let case = seeded(3);
    let url = format!("ldaps://{}:{}", case.dc.ip(), case.proxy.port());
    let (bind, pass) = case.measure();
    // Silent before the TLS handshake is done: the connect timeout.
    for fault in [Fault::Stall, Fault::StallAfter(700)] {
        let (run, took) = case.faulty_pass(fault);
        // Two timers of the same length race here (ldap3's connect timeout
        // and teamsync's around it); either way the message says timeout.
        let error = error_line(&run);
        assert!(
            error.contains(&url)
                && ((error.contains("cannot connect") && error.contains("timeout"))
                    || error.contains("did not answer within 2s while connecting")),
            "{fault:?}: {error}"
        );
        assert!(
            took >= CONNECT_TIMEOUT && took < STALL_BOUND,
            "{fault:?}: the pass took {took:?}"
        );
    }
    // Silent in the middle of the searches: the operation timeout.
    let fault = Fault::StallAfter(bind + (pass - bind) / 2);
    let (run, took) = case.faulty_pass(fault);
    says(&run, &["did not answer within 3s while"]);
    assert!(
        took >= OPERATION_TIMEOUT && took < STALL_BOUND,
        "{fault:?}: the pass took {took:?}"
    );
    case.converges();
}

#[test]
fn a_pass_that_overruns_timeouts_pass_exits_69_and_changes_nothing() {
    let case = seeded(3);
    let (bind, pass) = case.measure();
    // Operations may take long, the whole pass may not.
    rewrite_config(
        &case.ts,
        &format!("operation: {}s", OPERATION_TIMEOUT.as_secs()),
        "operation: 60s\n    pass: 4s",
    );
    let (run, took) = case.faulty_pass(Fault::StallAfter(bind + (pass - bind) / 2));
    says(
        &run,
        &["did not answer within 4s while the pass (directory.timeouts.pass)"],
    );
    assert!(
        took >= Duration::from_secs(4) && took < STALL_BOUND,
        "the pass took {took:?}"
    );
    case.converges();
}

#[test]
fn a_base_dn_holding_nobody_trips_the_removal_guard() {
    let dc = SambaDc::shared();
    let group = unique("grp");
    let group_dn = dc.add_security_group(&group);
    let ts = config_for(dc, &dc.ldaps_url(), "", "sync:\n  max_removals: 1\n");
    ts.team("deploy");
    ts.link("deploy", &format!("CORP\\{group}"));
    for i in 0..3 {
        let user = unique("u");
        let user_dn = dc.add_user(&user);
        dc.add_member(&group_dn, &user_dn);
        ts.account(&format!("bot-{i}"));
        ts.login(&format!("bot-{i}"), &format!("CORP\\{user}"));
    }
    assert_eq!(ts.sync(0)["added"], 3);

    // An OU that exists but holds none of the users.
    let empty = dc.add_ou(&unique("empty"));
    let base = format!("base_dn: {}", dc.base_dn());
    rewrite_config(&ts, &base, &format!("base_dn: {empty}"));
    let members = ts.members("deploy");
    let rows = memberships(&ts);
    let run = ts.run(&["--sync-now"]);
    eprintln!("exit {}:\n{}{}", run.code, run.stdout, run.stderr);
    run.code(75);
    assert!(run.stdout.contains("refused"), "{}", run.stdout);
    for i in 0..3 {
        let line = format!("- bot-{i} remove team deploy");
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(&line) && l.ends_with("[refused]")),
            "no refused removal for bot-{i}:\n{}",
            run.stdout
        );
    }
    assert_eq!(ts.members("deploy"), members);
    assert_eq!(memberships(&ts), rows);

    rewrite_config(&ts, &format!("base_dn: {empty}"), &base);
    let report = ts.sync(0);
    assert_eq!(
        (&report["added"], &report["removed"]),
        (&0.into(), &0.into())
    );
}

/// Every membership row, as text.
fn memberships(ts: &Teamsync) -> Vec<String> {
    let db = rusqlite::Connection::open(&ts.store).unwrap();
    db.prepare(
        "SELECT team_id, account_id, source, reason, added_at FROM memberships ORDER BY 1, 2, 3",
    )
    .unwrap()
    .query_map([], |r| {
        Ok(format!(
            "{}|{}|{}|{:?}|{}",
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, String>(4)?
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

// ---- The proxy itself, against a local echo server -------------------------

/// Echoes every connection until dropped.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        thread::spawn(move || echo(stream));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Echo {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

fn echo(mut stream: TcpStream) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn client(proxy: &Proxy) -> TcpStream {
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    stream
}

/// Reads until EOF, an error or a read timeout; returns what came and how it ended.
fn read_all(stream: &mut TcpStream) -> (Vec<u8>, Result<(), ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => return (got, Err(err.kind())),
        }
    }
}

fn is_timeout(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

#[test]
fn proxy_forwards_both_ways_and_counts() {
    let echo = Echo::start();
    let proxy = Proxy::start(IpAddr::V4(Ipv4Addr::LOCALHOST), echo.addr);
    for _ in 0..2 {
        let mut stream = client(&proxy);
        stream.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
    }
    assert_eq!(proxy.connections(), 2);
    assert_eq!(proxy.bytes_to_server(), 10);
    assert_eq!(proxy.bytes_to_client(), 10);
    proxy.reset_counters();
    assert_eq!((proxy.connections(), proxy.bytes_to_client()), (0, 0));
}

#[test]
fn proxy_cut_after_n_forwards_n_bytes_then_closes() {
    let echo = Echo::start();
    let proxy = Proxy::start(IpAddr::V4(Ipv4Addr::LOCALHOST), echo.addr);
    proxy.set(Fault::CutAfter(3));
    let mut stream = client(&proxy);
    stream.write_all(b"hello").unwrap();
    let (got, end) = read_all(&mut stream);
    assert_eq!(got, b"hel");
    assert!(
        end.is_ok() || end == Err(ErrorKind::ConnectionReset),
        "{end:?}"
    );
    assert_eq!(proxy.bytes_to_client(), 3);

    proxy.set(Fault::CutAfter(0));
    let mut stream = client(&proxy);
    stream.write_all(b"hello").unwrap();
    let (got, end) = read_all(&mut stream);
    assert!(got.is_empty(), "{got:?}");
    assert!(
        end.is_ok() || end == Err(ErrorKind::ConnectionReset),
        "{end:?}"
    );
}

#[test]
fn proxy_stall_holds_connections_open_without_forwarding() {
    let echo = Echo::start();
    let proxy = Proxy::start(IpAddr::V4(Ipv4Addr::LOCALHOST), echo.addr);
    proxy.set(Fault::StallAfter(2));
    let mut stalled_after = client(&proxy);
    stalled_after.write_all(b"hello").unwrap();
    let (got, end) = read_all(&mut stalled_after);
    assert_eq!(got, b"he");
    assert!(matches!(end, Err(kind) if is_timeout(kind)), "{end:?}");
    // Still open: more is accepted, nothing comes back.
    stalled_after.write_all(b"more").unwrap();
    let (got, end) = read_all(&mut stalled_after);
    assert!(got.is_empty() && matches!(end, Err(kind) if is_timeout(kind)));

    proxy.set(Fault::Stall);
    let mut stalled = client(&proxy);
    stalled.write_all(b"hello").unwrap();
    let (got, end) = read_all(&mut stalled);
    assert!(got.is_empty(), "{got:?}");
    assert!(matches!(end, Err(kind) if is_timeout(kind)), "{end:?}");
    assert_eq!(proxy.bytes_to_server(), 5);

    // Dropping the proxy closes what it holds, promptly.
    let started = Instant::now();
    let addr = proxy.addr();
    drop(proxy);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for stream in [&mut stalled_after, &mut stalled] {
        let (_, end) = read_all(stream);
        assert!(
            end.is_ok() || end == Err(ErrorKind::ConnectionReset),
            "{end:?}"
        );
    }
    let refused = TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn proxy_refuse_closes_and_reset_aborts() {
    let echo = Echo::start();
    let proxy = Proxy::start(IpAddr::V4(Ipv4Addr::LOCALHOST), echo.addr);
    proxy.set(Fault::Refuse);
    let mut refused = client(&proxy);
    let (got, end) = read_all(&mut refused);
    assert!(got.is_empty() && end.is_ok(), "{got:?} {end:?}");

    proxy.set(Fault::Reset);
    let mut reset = client(&proxy);
    reset.write_all(b"hello").unwrap();
    let (got, end) = read_all(&mut reset);
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(end, Err(ErrorKind::ConnectionReset));
    assert_eq!(proxy.connections(), 2);
    assert_eq!(proxy.bytes_to_server(), 0);
}
