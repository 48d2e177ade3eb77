//! A TCP proxy between teamsync and a directory server, with faults the
//! test switches while it runs: refuse, reset, stall, cut after n bytes.
//! Standard library threads only.
//!
//! TLS passes through untouched, so teamsync still verifies the server's
//! certificate. To keep that verification on, listen on the DC's own
//! address (`SambaDc::ip()`, held by `lo`) on an ephemeral port and point
//! `directory.url` at `ldaps://<dc ip>:<proxy port>`: the certificate lists
//! that IP, so it verifies as if teamsync spoke to the DC directly.
//!
//! The fault in force when a connection is accepted governs that connection
//! for its whole life; [`Proxy::set`] affects the connections accepted after
//! it. Every loop polls at [`POLL`] and ends when the proxy is dropped (the
//! drop waits for every thread), when a peer closes, or after [`MAX_LIFE`].

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often blocked loops look at the stop flag.
pub const POLL: Duration = Duration::from_millis(20);
/// No connection outlives this, whatever its peers do.
pub const MAX_LIFE: Duration = Duration::from_secs(300);
const UPSTREAM_CONNECT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `Reset` and `Refuse` wait for the client's first bytes / its close.
const CLIENT_WAIT: Duration = Duration::from_secs(2);

/// What the proxy does with a connection it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Close the accepted connection at once (FIN), without connecting to
    /// the target: the TCP connect succeeds, the first read sees EOF.
    Refuse,
    /// Abort the connection with a TCP RST once the client has sent its
    /// first bytes. The standard library cannot set SO_LINGER 0 (unstable
    /// `TcpStream::set_linger`), so this closes the socket while the
    /// client's bytes sit unread in its receive queue, which makes Linux
    /// send a RST instead of a FIN (RFC 2525, 2.17).
    Reset,
    /// Accept, connect nowhere, forward nothing; hold the connection open
    /// until the client closes it.
    Stall,
    /// Forward, but close both sides (FIN) instead of forwarding byte n+1
    /// from the server to the client. `CutAfter(0)`: the client's first
    /// bytes reach the server, nothing comes back.
    CutAfter(u64),
    /// Forward n bytes from the server to the client, then forward nothing
    /// more in either direction while keeping both connections open: a
    /// network path that went silent.
    StallAfter(u64),
}

/// The proxy's state: the current fault and the counters. Shared with its
/// threads; hand a clone of [`Proxy::state`] to another thread to switch
/// faults from there.
pub struct ProxyState {
    target: SocketAddr,
    fault: Mutex<Fault>,
    stop: AtomicBool,
    connections: AtomicU64,
    to_client: AtomicU64,
    to_server: AtomicU64,
}

impl ProxyState {
    /// The fault for connections accepted from now on.
    pub fn set(&self, fault: Fault) {
        *self.lock_fault() = fault;
    }

    pub fn fault(&self) -> Fault {
        *self.lock_fault()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the target to clients so far (counted as they
    /// are handed to the client's socket).
    pub fn bytes_to_client(&self) -> u64 {
        self.to_client.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from clients to the target so far.
    pub fn bytes_to_server(&self) -> u64 {
        self.to_server.load(Ordering::SeqCst)
    }

    /// Zeroes the connection and byte counters.
    pub fn reset_counters(&self) {
        self.connections.store(0, Ordering::SeqCst);
        self.to_client.store(0, Ordering::SeqCst);
        self.to_server.store(0, Ordering::SeqCst);
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn lock_fault(&self) -> MutexGuard<'_, Fault> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running proxy. Dropping it stops it: the listener closes, every open
/// connection is closed, and the drop returns once every thread has ended.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    acceptor: Option<JoinHandle<()>>,
}

impl Deref for Proxy {
    type Target = ProxyState;

    fn deref(&self) -> &ProxyState {
        &self.state
    }
}

impl Proxy {
    /// Listens on `listen_ip` at an ephemeral port and forwards to `target`
    /// (fault [`Fault::Pass`]).
    pub fn start(listen_ip: IpAddr, target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind((listen_ip, 0))
            .unwrap_or_else(|err| panic!("proxy: cannot listen on {listen_ip}: {err}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|err| panic!("proxy: cannot make the listener non-blocking: {err}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("proxy: no local address: {err}"));
        let state = Arc::new(ProxyState {
            target,
            fault: Mutex::new(Fault::Pass),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            to_server: AtomicU64::new(0),
        });
        let shared = Arc::clone(&state);
        let acceptor = thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &shared))
            .unwrap_or_else(|err| panic!("proxy: cannot start the accept thread: {err}"));
        Proxy {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The shared state, for switching faults from another thread.
    pub fn state(&self) -> Arc<ProxyState> {
        Arc::clone(&self.state)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// A port on `ip` that nothing listens on (bound, then released): connecting
/// to it is refused.
pub fn closed_port(ip: IpAddr) -> u16 {
    let listener = TcpListener::bind((ip, 0))
        .unwrap_or_else(|err| panic!("cannot bind a port on {ip}: {err}"));
    listener
        .local_addr()
        .unwrap_or_else(|err| panic!("no local address: {err}"))
        .port()
}

fn accept_loop(listener: &TcpListener, state: &Arc<ProxyState>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !state.stopped() {
        match listener.accept() {
            Ok((client, _)) => {
                state.connections.fetch_add(1, Ordering::SeqCst);
                let fault = state.fault();
                let shared = Arc::clone(state);
                let worker = thread::Builder::new()
                    .name("proxy-conn".into())
                    .spawn(move || serve(client, fault, &shared));
                match worker {
                    Ok(worker) => workers.push(worker),
                    Err(err) => eprintln!("proxy: cannot start a connection thread: {err}"),
                }
                // Finished workers need no join; keep the list short.
                let (done, running): (Vec<_>, Vec<_>) =
                    workers.into_iter().partition(|w| w.is_finished());
                for worker in done {
                    let _ = worker.join();
                }
                workers = running;
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(err) => {
                eprintln!("proxy: accept failed: {err}");
                thread::sleep(POLL);
            }
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
}

fn serve(client: TcpStream, fault: Fault, state: &ProxyState) {
    let deadline = Instant::now() + MAX_LIFE;
    // Accepted sockets do not inherit O_NONBLOCK on Linux; make sure.
    if client.set_nonblocking(false).is_err()
        || client.set_read_timeout(Some(POLL)).is_err()
        || client.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    match fault {
        Fault::Refuse => refuse(client),
        Fault::Reset => reset(client, state),
        Fault::Stall => drain(&client, state, deadline),
        Fault::Pass => forward(client, None, state, deadline),
        Fault::CutAfter(n) => forward(client, Some((n, Limit::Cut)), state, deadline),
        Fault::StallAfter(n) => forward(client, Some((n, Limit::Stall)), state, deadline),
    }
}

/// FIN at once; then read until the client closes (bounded), so that no
/// unread byte turns the close into a RST.
fn refuse(client: TcpStream) {
    let _ = client.shutdown(Shutdown::Write);
    let until = Instant::now() + CLIENT_WAIT;
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        match (&client).read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) if is_timeout(&err) => {}
            Err(_) => break,
        }
    }
}

/// Waits (bounded) until the client has sent something, leaves it unread,
/// and closes: Linux answers with a RST.
fn reset(client: TcpStream, state: &ProxyState) {
    let until = Instant::now() + CLIENT_WAIT;
    let mut probe = [0u8; 1];
    while Instant::now() < until && !state.stopped() {
        match client.peek(&mut probe) {
            Ok(_) => break,
            Err(err) if is_timeout(&err) => {}
            Err(_) => break,
        }
    }
    drop(client);
}

/// Reads and drops what arrives until the peer closes or the proxy stops.
fn drain(stream: &TcpStream, state: &ProxyState, deadline: Instant) {
    let mut buf = [0u8; 16 * 1024];
    while !state.stopped() && Instant::now() < deadline {
        match (&*stream).read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if is_timeout(&err) => {}
            Err(_) => return,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Limit {
    Cut,
    Stall,
}

/// One forwarded connection: what both pumps share.
struct Link {
    client: TcpStream,
    server: TcpStream,
    /// Set by the server->client pump when a `StallAfter` limit is reached.
    stalled: AtomicBool,
}

impl Link {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

fn forward(client: TcpStream, limit: Option<(u64, Limit)>, state: &ProxyState, deadline: Instant) {
    let Ok(server) = TcpStream::connect_timeout(&state.target, UPSTREAM_CONNECT) else {
        // The target is down: the client sees the connection close.
        return;
    };
    if server.set_read_timeout(Some(POLL)).is_err()
        || server.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let link = Link {
        client,
        server,
        stalled: AtomicBool::new(false),
    };
    thread::scope(|scope| {
        scope.spawn(|| pump_up(&link, state, deadline));
        pump_down(&link, limit, state, deadline);
    });
    link.close();
}

/// Client -> server. Drops what it reads once the link is stalled.
fn pump_up(link: &Link, state: &ProxyState, deadline: Instant) {
    let mut buf = [0u8; 16 * 1024];
    while !state.stopped() && Instant::now() < deadline {
        match (&link.client).read(&mut buf) {
            Ok(0) => {
                // Pass the half-close on.
                let _ = link.server.shutdown(Shutdown::Write);
                return;
            }
            Ok(_) if link.stalled.load(Ordering::SeqCst) => {}
            Ok(n) => {
                // Counted before the write, so that whoever sees the bytes
                // arrive also sees them counted.
                state.to_server.fetch_add(n as u64, Ordering::SeqCst);
                if (&link.server).write_all(&buf[..n]).is_err() {
                    link.close();
                    return;
                }
            }
            Err(err) if is_timeout(&err) => {}
            Err(_) => {
                link.close();
                return;
            }
        }
    }
    link.close();
}

/// Server -> client, applying the byte limit.
fn pump_down(link: &Link, limit: Option<(u64, Limit)>, state: &ProxyState, deadline: Instant) {
    let mut buf = [0u8; 16 * 1024];
    let mut sent: u64 = 0;
    while !state.stopped() && Instant::now() < deadline {
        match (&link.server).read(&mut buf) {
            Ok(0) => {
                let _ = link.client.shutdown(Shutdown::Write);
                return;
            }
            Ok(_) if link.stalled.load(Ordering::SeqCst) => {}
            Ok(n) => {
                let allowed = match limit {
                    Some((max, _)) => (n as u64).min(max - sent) as usize,
                    None => n,
                };
                if allowed > 0 {
                    sent += allowed as u64;
                    state.to_client.fetch_add(allowed as u64, Ordering::SeqCst);
                    if (&link.client).write_all(&buf[..allowed]).is_err() {
                        link.close();
                        return;
                    }
                }
                if allowed < n {
                    match limit {
                        Some((_, Limit::Cut)) => {
                            link.close();
                            return;
                        }
                        Some((_, Limit::Stall)) => link.stalled.store(true, Ordering::SeqCst),
                        None => {}
                    }
                }
            }
            Err(err) if is_timeout(&err) => {}
            Err(_) => {
                link.close();
                return;
            }
        }
    }
    link.close();
}

fn is_timeout(err: &std::io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
        || err.kind() == ErrorKind::Interrupted
}
