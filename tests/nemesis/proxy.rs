//! Fault injection for loopback cluster tests: a TCP fault proxy and seeded,
//! randomized fault schedules.
//!
//! [`FaultProxy`] listens on `127.0.0.1:0` and forwards every accepted
//! connection to a target address. Put one in front of every link you want
//! to break (node to node, client to node) and steer it at run time:
//! [`FaultProxy::cut`], [`FaultProxy::cut_one_way`], [`FaultProxy::blackhole`],
//! [`FaultProxy::delay`], [`FaultProxy::heal`]. Faults take effect at once on
//! existing and new connections: every copy loop watches the proxy's fault
//! state through a `tokio::sync::watch` channel, so nothing polls.
//!
//! [`Schedule`] turns a seed into a reproducible list of timed [`Fault`]s over
//! links (proxies) and nodes (processes). Link faults can be executed with
//! [`Fault::apply`]; process faults (kill, pause, restart...) are only
//! described here and carried out by the product's harness, e.g. through
//! [`Schedule::run`]. Use [`seed_from_env`] so that a failing run prints the
//! seed that replays it.
//!
//! Everything here binds and connects on loopback only.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

// ---------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------

/// A direction of traffic through a [`FaultProxy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dir {
    /// From the connecting peer to the proxy's target.
    ToTarget,
    /// From the target back to the connecting peer.
    FromTarget,
}

impl Dir {
    fn index(self) -> usize {
        match self {
            Dir::ToTarget => 0,
            Dir::FromTarget => 1,
        }
    }
}

/// The faults currently in force on a proxy. Faults compose (e.g. a delay
/// and a one-way cut) until [`FaultProxy::heal`] clears them all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultState {
    /// Existing connections are closed (reset) and new ones refused.
    pub cut: bool,
    /// Bytes towards the target are discarded.
    pub drop_to_target: bool,
    /// Bytes from the target are discarded.
    pub drop_from_target: bool,
    /// Everything is read and discarded both ways; connections stay open.
    pub blackhole: bool,
    /// Every chunk is held this long before it is forwarded, each way.
    pub delay: Duration,
    /// Bumped by [`FaultProxy::reset_connections`]: connections opened under
    /// an older epoch are closed.
    pub epoch: u64,
}

impl FaultState {
    fn drops(&self, dir: Dir) -> bool {
        self.blackhole
            || match dir {
                Dir::ToTarget => self.drop_to_target,
                Dir::FromTarget => self.drop_from_target,
            }
    }

    fn kills(&self, epoch: u64) -> bool {
        self.cut || self.epoch != epoch
    }
}

/// Counters of a proxy since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStats {
    /// Connections accepted (including the ones refused during a cut).
    pub accepted: u64,
    /// Accepted connections closed at once because of a cut (or because the
    /// target refused the connection).
    pub refused: u64,
    /// Connections currently open through the proxy.
    pub active: u64,
    /// Bytes delivered to the target.
    pub to_target_bytes: u64,
    /// Bytes delivered back from the target.
    pub from_target_bytes: u64,
    /// Bytes towards the target discarded by a fault.
    pub dropped_to_target_bytes: u64,
    /// Bytes from the target discarded by a fault.
    pub dropped_from_target_bytes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    active: AtomicU64,
    forwarded: [AtomicU64; 2],
    dropped: [AtomicU64; 2],
}

#[derive(Debug)]
struct Shared {
    state: watch::Sender<FaultState>,
    target: Mutex<String>,
    counters: Counters,
}

impl Shared {
    fn target(&self) -> String {
        self.target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A TCP proxy on `127.0.0.1` that forwards to a target and injects faults.
///
/// Every task it spawns is tracked and ends when the proxy is dropped or
/// [`FaultProxy::shutdown`] is called: the listener closes and every
/// connection through it is closed.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
}

/// Size of one read; the unit a delay holds back.
const CHUNK: usize = 16 * 1024;
/// Chunks buffered per direction while delayed (backpressure beyond).
const QUEUE: usize = 256;

impl FaultProxy {
    /// Binds `127.0.0.1:0` and forwards every accepted connection to
    /// `target` (anything `TcpStream::connect` accepts, e.g. a `SocketAddr`
    /// or `"127.0.0.1:4000"`; resolved anew for each connection).
    pub async fn start(target: impl ToString) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(FaultState::default());
        let shared = Arc::new(Shared {
            state,
            target: Mutex::new(target.to_string()),
            counters: Counters::default(),
        });
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(accept_loop(
            listener,
            Arc::clone(&shared),
            token.clone(),
            tracker.clone(),
        ));
        Ok(FaultProxy {
            addr,
            shared,
            token,
            tracker,
        })
    }

    /// The address to connect to instead of the target, as `ip:port`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The address to connect to, as a `SocketAddr`.
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Points new connections at another target (e.g. a restarted node on a
    /// new port). Existing connections keep their target.
    pub fn retarget(&self, target: impl ToString) {
        *self
            .shared
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = target.to_string();
    }

    /// The faults currently in force.
    pub fn state(&self) -> FaultState {
        *self.shared.state.borrow()
    }

    fn modify(&self, f: impl FnOnce(&mut FaultState)) {
        self.shared.state.send_modify(f);
    }

    /// Both ways: closes (resets) every existing connection and refuses new
    /// ones (accepts, then resets them at once) until [`FaultProxy::heal`].
    pub fn cut(&self) {
        self.modify(|s| s.cut = true);
    }

    /// One-way partition: bytes travelling in `dir` are discarded (never
    /// delivered, even after a heal); the other direction still flows and
    /// connections stay open.
    pub fn cut_one_way(&self, dir: Dir) {
        self.modify(|s| match dir {
            Dir::ToTarget => s.drop_to_target = true,
            Dir::FromTarget => s.drop_from_target = true,
        });
    }

    /// Silent hang: connections are accepted and kept open, everything is
    /// read and discarded both ways and nothing is delivered, so peers see
    /// neither data nor a reset.
    pub fn blackhole(&self) {
        self.modify(|s| s.blackhole = true);
    }

    /// Holds every chunk `d` before forwarding it, each way, preserving
    /// order. Applies to chunks already queued too. `Duration::ZERO` removes
    /// the delay.
    pub fn delay(&self, d: Duration) {
        self.modify(|s| s.delay = d);
    }

    /// Back to normal: clears every fault. Connections closed by a cut stay
    /// closed; new ones are accepted again.
    ///
    /// Note that bytes discarded by a one-way cut or a blackhole are gone
    /// while the connection lives on, which real TCP never does: a framed
    /// protocol on such a connection will be out of step after the heal. Call
    /// [`FaultProxy::reset_connections`] after the heal to model a partition
    /// that also broke the connections.
    pub fn heal(&self) {
        self.modify(|s| {
            let epoch = s.epoch;
            *s = FaultState {
                epoch,
                ..FaultState::default()
            };
        });
    }

    /// Closes (resets) every existing connection without refusing new ones.
    pub fn reset_connections(&self) {
        self.modify(|s| s.epoch += 1);
    }

    /// Counters since the proxy started.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            accepted: get(&c.accepted),
            refused: get(&c.refused),
            active: get(&c.active),
            to_target_bytes: get(&c.forwarded[0]),
            from_target_bytes: get(&c.forwarded[1]),
            dropped_to_target_bytes: get(&c.dropped[0]),
            dropped_from_target_bytes: get(&c.dropped[1]),
        }
    }

    /// Stops accepting, closes every connection and waits for every task of
    /// the proxy to end.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Every task selects on this token, so they all end at their next
        // poll; `shutdown` additionally waits for them.
        self.token.cancel();
        self.tracker.close();
    }
}

/// Closes a socket with a reset (RST) rather than a graceful FIN.
fn reset_on_close(s: &TcpStream) {
    // A zero linger never blocks on close (the deprecation is about non-zero
    // lingers). Failure only means a FIN instead of a RST.
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => r,
        };
        let client = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                }
            }
        };
        let c = &shared.counters;
        c.accepted.fetch_add(1, Ordering::Relaxed);
        if shared.state.borrow().cut {
            c.refused.fetch_add(1, Ordering::Relaxed);
            reset_on_close(&client);
            continue;
        }
        tracker.spawn(connection(client, Arc::clone(&shared), token.child_token()));
    }
}

/// Keeps `active` accurate however a connection task ends.
struct ActiveGuard<'a>(&'a AtomicU64);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(client: TcpStream, shared: Arc<Shared>, token: CancellationToken) {
    let c = &shared.counters;
    c.active.fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(&c.active);
    let mut state = shared.state.subscribe();
    let epoch = state.borrow_and_update().epoch;
    let target = shared.target();
    let upstream = tokio::select! {
        _ = token.cancelled() => return,
        r = TcpStream::connect(target.as_str()) => r,
    };
    let upstream = match upstream {
        Ok(s) => s,
        Err(_) => {
            if state.borrow().blackhole {
                // A blackhole must not leak that the target is down.
                swallow(client, &mut state, epoch, c, &token).await;
            } else {
                c.refused.fetch_add(1, Ordering::Relaxed);
                reset_on_close(&client);
            }
            return;
        }
    };
    if state.borrow().kills(epoch) {
        reset_on_close(&client);
        reset_on_close(&upstream);
        return;
    }
    // Latency matters more than throughput here; failure is harmless.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let (to_tx, to_rx) = mpsc::channel(QUEUE);
    let (from_tx, from_rx) = mpsc::channel(QUEUE);
    let reset = AtomicBool::new(false);
    let pump = Pump {
        shared: &shared,
        epoch,
        token: &token,
        reset: &reset,
    };
    tokio::join!(
        pump.read_side(&mut cr, to_tx, Dir::ToTarget),
        pump.write_side(&mut uw, to_rx, Dir::ToTarget),
        pump.read_side(&mut ur, from_tx, Dir::FromTarget),
        pump.write_side(&mut cw, from_rx, Dir::FromTarget),
    );
    if reset.load(Ordering::Relaxed) {
        reset_on_close(cr.as_ref());
        reset_on_close(ur.as_ref());
    }
}

/// Holds a connection open, reading and discarding, while a blackhole lasts.
async fn swallow(
    mut client: TcpStream,
    state: &mut watch::Receiver<FaultState>,
    epoch: u64,
    c: &Counters,
    token: &CancellationToken,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            changed = state.changed() => {
                let st = *state.borrow_and_update();
                if changed.is_err() || !st.blackhole || st.kills(epoch) {
                    reset_on_close(&client);
                    return;
                }
            }
            r = client.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    c.dropped[0].fetch_add(n as u64, Ordering::Relaxed);
                }
            },
        }
    }
}

enum Chunk {
    Data(Instant, Vec<u8>),
    Eof,
}

#[derive(Clone, Copy)]
struct Pump<'a> {
    shared: &'a Shared,
    epoch: u64,
    token: &'a CancellationToken,
    reset: &'a AtomicBool,
}

impl Pump<'_> {
    /// Ends the whole connection with resets.
    fn kill(&self) {
        self.reset.store(true, Ordering::Relaxed);
        self.token.cancel();
    }

    /// Reads from `rd` and queues chunks for the other side, or discards
    /// them while a fault drops this direction.
    async fn read_side(&self, rd: &mut OwnedReadHalf, tx: mpsc::Sender<Chunk>, dir: Dir) {
        let mut state = self.shared.state.subscribe();
        if state.borrow_and_update().kills(self.epoch) {
            self.kill();
            return;
        }
        let c = &self.shared.counters;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let read = tokio::select! {
                _ = self.token.cancelled() => return,
                changed = state.changed() => {
                    if changed.is_err() || state.borrow_and_update().kills(self.epoch) {
                        self.kill();
                        return;
                    }
                    continue;
                }
                r = rd.read(&mut buf) => r,
            };
            let n = match read {
                Ok(0) => {
                    // Half-close: forwarded after the queued data.
                    tokio::select! {
                        _ = self.token.cancelled() => {}
                        _ = tx.send(Chunk::Eof) => {}
                    }
                    return;
                }
                Ok(n) => n,
                Err(_) => {
                    self.kill();
                    return;
                }
            };
            let st = *state.borrow();
            if st.kills(self.epoch) {
                self.kill();
                return;
            }
            if st.drops(dir) {
                c.dropped[dir.index()].fetch_add(n as u64, Ordering::Relaxed);
                continue;
            }
            let chunk = Chunk::Data(Instant::now(), buf[..n].to_vec());
            tokio::select! {
                _ = self.token.cancelled() => return,
                sent = tx.send(chunk) => if sent.is_err() { return },
            }
        }
    }

    /// Delivers queued chunks to `wr` once their delay has passed.
    async fn write_side(&self, wr: &mut OwnedWriteHalf, mut rx: mpsc::Receiver<Chunk>, dir: Dir) {
        let mut state = self.shared.state.subscribe();
        if state.borrow_and_update().kills(self.epoch) {
            self.kill();
            return;
        }
        let c = &self.shared.counters;
        loop {
            let chunk = tokio::select! {
                _ = self.token.cancelled() => return,
                changed = state.changed() => {
                    if changed.is_err() || state.borrow_and_update().kills(self.epoch) {
                        self.kill();
                        return;
                    }
                    continue;
                }
                m = rx.recv() => match m {
                    None => return,
                    Some(chunk) => chunk,
                },
            };
            let (arrived, bytes) = match chunk {
                Chunk::Eof => {
                    let _ = wr.shutdown().await;
                    return;
                }
                Chunk::Data(arrived, bytes) => (arrived, bytes),
            };
            // Wait out the delay in force (it may change meanwhile).
            loop {
                let st = *state.borrow_and_update();
                if st.kills(self.epoch) {
                    self.kill();
                    return;
                }
                let due = arrived + st.delay;
                if Instant::now() >= due {
                    break;
                }
                tokio::select! {
                    _ = self.token.cancelled() => return,
                    _ = tokio::time::sleep_until(due) => {}
                    changed = state.changed() => if changed.is_err() {
                        self.kill();
                        return;
                    },
                }
            }
            if state.borrow().drops(dir) {
                c.dropped[dir.index()].fetch_add(bytes.len() as u64, Ordering::Relaxed);
                continue;
            }
            tokio::select! {
                _ = self.token.cancelled() => return,
                written = wr.write_all(&bytes) => if written.is_err() {
                    self.kill();
                    return;
                },
            }
            c.forwarded[dir.index()].fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------

/// The kinds of fault a [`Schedule`] may draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultKind {
    /// A link is cut both ways ([`Fault::Cut`]), healed later.
    Cut,
    /// A link drops one direction ([`Fault::CutOneWay`]), healed later.
    CutOneWay,
    /// A link swallows everything ([`Fault::Blackhole`]), healed later.
    Blackhole,
    /// A link is slowed ([`Fault::Delay`]), healed later.
    Delay,
    /// A node is killed ([`Fault::Kill`]) and restarted with its data a few
    /// seconds later ([`Fault::Restart`]).
    Kill,
    /// A node is paused ([`Fault::Pause`], e.g. SIGSTOP) and resumed
    /// ([`Fault::Resume`]) within [`ScheduleOptions::pause_len`].
    Pause,
    /// Crash-restart: [`Fault::Kill`] followed within a second by
    /// [`Fault::Restart`].
    Restart,
    /// A node is killed and later comes back with its data wiped
    /// ([`Fault::RestartWiped`]).
    RestartWiped,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Cut,
        FaultKind::CutOneWay,
        FaultKind::Blackhole,
        FaultKind::Delay,
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Restart,
        FaultKind::RestartWiped,
    ];

    fn is_link(self) -> bool {
        matches!(
            self,
            FaultKind::Cut | FaultKind::CutOneWay | FaultKind::Blackhole | FaultKind::Delay
        )
    }
}

/// One step of a schedule. `link` indexes the proxies, `node` the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fault {
    /// [`FaultProxy::cut`] on `link`.
    Cut {
        /// Proxy index.
        link: usize,
    },
    /// [`FaultProxy::cut_one_way`] on `link`.
    CutOneWay {
        /// Proxy index.
        link: usize,
        /// The direction whose bytes are dropped.
        dir: Dir,
    },
    /// [`FaultProxy::blackhole`] on `link`.
    Blackhole {
        /// Proxy index.
        link: usize,
    },
    /// [`FaultProxy::delay`] of `ms` milliseconds on `link`.
    Delay {
        /// Proxy index.
        link: usize,
        /// The delay, each way.
        ms: u64,
    },
    /// [`FaultProxy::heal`] on `link`.
    Heal {
        /// Proxy index.
        link: usize,
    },
    /// [`FaultProxy::heal`] on every proxy.
    HealAll,
    /// Kill the node's process (SIGKILL); it stays down until a
    /// [`Fault::Restart`] or [`Fault::RestartWiped`].
    Kill {
        /// Node index.
        node: usize,
    },
    /// Pause the node's process (SIGSTOP) until [`Fault::Resume`].
    Pause {
        /// Node index.
        node: usize,
    },
    /// Resume a paused node (SIGCONT).
    Resume {
        /// Node index.
        node: usize,
    },
    /// Start a killed node again with its data.
    Restart {
        /// Node index.
        node: usize,
    },
    /// Start a killed node again with its data directory wiped.
    RestartWiped {
        /// Node index.
        node: usize,
    },
}

impl Fault {
    /// Whether this step acts on proxies (as opposed to processes).
    pub fn is_link_fault(&self) -> bool {
        matches!(
            self,
            Fault::Cut { .. }
                | Fault::CutOneWay { .. }
                | Fault::Blackhole { .. }
                | Fault::Delay { .. }
                | Fault::Heal { .. }
                | Fault::HealAll
        )
    }

    /// Executes a link step on `proxies` and returns true; returns false
    /// (doing nothing) for a process step, which the harness must execute.
    ///
    /// # Panics
    /// If `link` is out of range of `proxies` (the schedule was built for
    /// another topology).
    pub fn apply(&self, proxies: &[FaultProxy]) -> bool {
        let proxy = |link: usize| {
            proxies.get(link).unwrap_or_else(|| {
                panic!(
                    "{self} names link {link} but only {} proxies were given",
                    proxies.len()
                )
            })
        };
        match *self {
            Fault::Cut { link } => proxy(link).cut(),
            Fault::CutOneWay { link, dir } => proxy(link).cut_one_way(dir),
            Fault::Blackhole { link } => proxy(link).blackhole(),
            Fault::Delay { link, ms } => proxy(link).delay(Duration::from_millis(ms)),
            Fault::Heal { link } => proxy(link).heal(),
            Fault::HealAll => proxies.iter().for_each(FaultProxy::heal),
            Fault::Kill { .. }
            | Fault::Pause { .. }
            | Fault::Resume { .. }
            | Fault::Restart { .. }
            | Fault::RestartWiped { .. } => return false,
        }
        true
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Cut { link } => write!(f, "cut link {link}"),
            Fault::CutOneWay { link, dir } => write!(f, "cut link {link} one way ({dir:?})"),
            Fault::Blackhole { link } => write!(f, "blackhole link {link}"),
            Fault::Delay { link, ms } => write!(f, "delay link {link} by {ms}ms"),
            Fault::Heal { link } => write!(f, "heal link {link}"),
            Fault::HealAll => write!(f, "heal all links"),
            Fault::Kill { node } => write!(f, "kill node {node}"),
            Fault::Pause { node } => write!(f, "pause node {node}"),
            Fault::Resume { node } => write!(f, "resume node {node}"),
            Fault::Restart { node } => write!(f, "restart node {node}"),
            Fault::RestartWiped { node } => write!(f, "restart node {node} wiped"),
        }
    }
}

/// Timing knobs of [`Schedule::with_options`]; ranges are inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// Time between two drawn faults.
    pub gap: (Duration, Duration),
    /// How long a link fault lasts before its heal.
    pub link_fault_len: (Duration, Duration),
    /// How long a pause lasts before its resume.
    pub pause_len: (Duration, Duration),
    /// How long a killed node stays down ([`FaultKind::Kill`],
    /// [`FaultKind::RestartWiped`]).
    pub down_len: (Duration, Duration),
    /// How long a crash-restart keeps the node down ([`FaultKind::Restart`]).
    pub crash_restart_len: (Duration, Duration),
    /// After a node is back, it still counts as impaired this long (time to
    /// catch up) before another node fault may be drawn in its place.
    pub settle: Duration,
    /// Range of [`Fault::Delay`] milliseconds.
    pub delay_ms: (u64, u64),
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        let s = Duration::from_millis;
        ScheduleOptions {
            gap: (s(500), s(3_000)),
            link_fault_len: (s(1_000), s(5_000)),
            pause_len: (s(500), s(3_000)),
            down_len: (s(1_000), s(6_000)),
            crash_restart_len: (s(100), s(1_000)),
            settle: s(2_000),
            delay_ms: (20, 500),
        }
    }
}

/// A seeded, reproducible, recoverable fault schedule.
///
/// Guarantees, for any seed:
/// - steps are sorted by time, all within `[0, duration]`;
/// - at most a minority of nodes (`(nodes - 1) / 2`) is down or paused at
///   any time, counting a node that came back as impaired for
///   [`ScheduleOptions::settle`] more (so with fewer than 3 nodes no process
///   fault is drawn at all);
/// - every `Pause` is followed by its `Resume` within
///   [`ScheduleOptions::pause_len`], every `Kill` by a `Restart` or
///   `RestartWiped`, every link fault by a `Heal` of that link;
/// - it ends, at `duration`, with `HealAll`, every node back up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The seed it was drawn from.
    pub seed: u64,
    /// When the last step (`HealAll`) happens.
    pub duration: Duration,
    /// Number of links (proxies) it addresses.
    pub links: usize,
    /// Number of nodes it addresses.
    pub nodes: usize,
    /// `(at, fault)` steps, `at` counted from the start of the run.
    pub steps: Vec<(Duration, Fault)>,
}

impl Schedule {
    /// Draws a schedule of `faults` over `links` proxies and `nodes` nodes,
    /// lasting `duration`, with [`ScheduleOptions::default`]. Kinds that do
    /// not fit the topology (link faults without links, process faults
    /// with fewer than 3 nodes) are never drawn.
    pub fn new(
        seed: u64,
        duration: Duration,
        faults: &[FaultKind],
        links: usize,
        nodes: usize,
    ) -> Schedule {
        Self::with_options(
            seed,
            duration,
            faults,
            links,
            nodes,
            &ScheduleOptions::default(),
        )
    }

    /// [`Schedule::new`] with explicit timing options.
    pub fn with_options(
        seed: u64,
        duration: Duration,
        faults: &[FaultKind],
        links: usize,
        nodes: usize,
        opts: &ScheduleOptions,
    ) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed);
        let max_impaired = nodes.saturating_sub(1) / 2;
        let mut kinds: Vec<FaultKind> = faults
            .iter()
            .copied()
            .filter(|k| {
                if k.is_link() {
                    links > 0
                } else {
                    max_impaired > 0
                }
            })
            .collect();
        kinds.sort();
        kinds.dedup();

        let end = duration;
        let mut steps: Vec<(Duration, Fault)> = Vec::new();
        // Recoveries not yet emitted.
        let mut pending: Vec<(Duration, Fault)> = Vec::new();
        let mut link_busy_until = vec![Duration::ZERO; links];
        let mut node_busy_until = vec![Duration::ZERO; nodes];
        let mut t = Duration::ZERO;
        while !kinds.is_empty() {
            t += draw(&mut rng, opts.gap).max(Duration::from_millis(1));
            if t >= end {
                break;
            }
            flush(&mut pending, &mut steps, Some(t));
            let kind = kinds[rng.random_range(0..kinds.len())];
            if kind.is_link() {
                let free: Vec<usize> = (0..links).filter(|&l| link_busy_until[l] <= t).collect();
                if free.is_empty() {
                    continue;
                }
                let link = free[rng.random_range(0..free.len())];
                let fault = match kind {
                    FaultKind::Cut => Fault::Cut { link },
                    FaultKind::CutOneWay => Fault::CutOneWay {
                        link,
                        dir: if rng.random_bool(0.5) {
                            Dir::ToTarget
                        } else {
                            Dir::FromTarget
                        },
                    },
                    FaultKind::Blackhole => Fault::Blackhole { link },
                    _ => Fault::Delay {
                        link,
                        ms: rng
                            .random_range(opts.delay_ms.0..=opts.delay_ms.1.max(opts.delay_ms.0)),
                    },
                };
                let heal_at = (t + draw(&mut rng, opts.link_fault_len)).min(end);
                steps.push((t, fault));
                pending.push((heal_at, Fault::Heal { link }));
                link_busy_until[link] = heal_at;
            } else {
                let impaired = node_busy_until.iter().filter(|&&b| b > t).count();
                if impaired >= max_impaired {
                    continue;
                }
                let free: Vec<usize> = (0..nodes).filter(|&n| node_busy_until[n] <= t).collect();
                if free.is_empty() {
                    continue;
                }
                let node = free[rng.random_range(0..free.len())];
                let (fault, len, back) = match kind {
                    FaultKind::Pause => (
                        Fault::Pause { node },
                        opts.pause_len,
                        Fault::Resume { node },
                    ),
                    FaultKind::Restart => (
                        Fault::Kill { node },
                        opts.crash_restart_len,
                        Fault::Restart { node },
                    ),
                    FaultKind::RestartWiped => (
                        Fault::Kill { node },
                        opts.down_len,
                        Fault::RestartWiped { node },
                    ),
                    _ => (Fault::Kill { node }, opts.down_len, Fault::Restart { node }),
                };
                let back_at = (t + draw(&mut rng, len)).min(end);
                steps.push((t, fault));
                pending.push((back_at, back));
                node_busy_until[node] = back_at + opts.settle;
            }
        }
        flush(&mut pending, &mut steps, None);
        steps.push((end, Fault::HealAll));
        steps.sort_by_key(|(at, _)| *at); // stable: recoveries stay before HealAll
        Schedule {
            seed,
            duration,
            links,
            nodes,
            steps,
        }
    }

    /// Executes the schedule in real time from now: link steps on `proxies`
    /// (via [`Fault::apply`]), process steps through `on_process`, awaited
    /// before the next step.
    pub async fn run<F, Fut>(&self, proxies: &[FaultProxy], mut on_process: F)
    where
        F: FnMut(Fault) -> Fut,
        Fut: Future<Output = ()>,
    {
        let start = Instant::now();
        for (at, fault) in &self.steps {
            tokio::time::sleep_until(start + *at).await;
            if !fault.apply(proxies) {
                on_process(*fault).await;
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "schedule (seed {}, {:?}, {} links, {} nodes):",
            self.seed, self.duration, self.links, self.nodes
        )?;
        for (at, fault) in &self.steps {
            writeln!(f, "  {:>9.3}s  {fault}", at.as_secs_f64())?;
        }
        Ok(())
    }
}

fn draw(rng: &mut StdRng, (lo, hi): (Duration, Duration)) -> Duration {
    let lo_ms = u64::try_from(lo.as_millis()).unwrap_or(u64::MAX);
    let hi_ms = u64::try_from(hi.as_millis()).unwrap_or(u64::MAX).max(lo_ms);
    Duration::from_millis(rng.random_range(lo_ms..=hi_ms))
}

/// Moves pending recoveries due by `until` (all when `None`) into `steps`,
/// in time order.
fn flush(
    pending: &mut Vec<(Duration, Fault)>,
    steps: &mut Vec<(Duration, Fault)>,
    until: Option<Duration>,
) {
    pending.sort_by_key(|(at, _)| *at);
    let due = pending
        .iter()
        .take_while(|(at, _)| until.is_none_or(|u| *at <= u))
        .count();
    steps.extend(pending.drain(..due));
}

/// Reads the seed from `NEMESIS_SEED`, or draws one from the clock, and
/// prints `nemesis seed = N (replay with NEMESIS_SEED=N)` to stderr.
///
/// # Panics
/// If `NEMESIS_SEED` is set but is not a `u64` (a typo must not silently
/// run another seed).
pub fn seed_from_env() -> u64 {
    let seed = parse_seed(std::env::var("NEMESIS_SEED").ok().as_deref());
    eprintln!("nemesis seed = {seed} (replay with NEMESIS_SEED={seed})");
    seed
}

fn parse_seed(var: Option<&str>) -> u64 {
    match var {
        Some(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("NEMESIS_SEED={s:?} is not a u64")),
        None => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            // splitmix64 finaliser over clock and pid.
            let mut z = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }
}

/// Reads the run length in seconds (e.g. `30` or `2.5`) from `NEMESIS_SECS`,
/// or returns `default`.
///
/// # Panics
/// If `NEMESIS_SECS` is set but is not a non-negative number of seconds.
pub fn duration_from_env(default: Duration) -> Duration {
    parse_secs(std::env::var("NEMESIS_SECS").ok().as_deref(), default)
}

fn parse_secs(var: Option<&str>, default: Duration) -> Duration {
    match var {
        None => default,
        Some(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .unwrap_or_else(|| panic!("NEMESIS_SECS={s:?} is not a number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet, HashSet};
    use tokio::task::JoinSet;

    const WAIT: Duration = Duration::from_secs(5);
    const QUIET: Duration = Duration::from_millis(300);

    /// An echo server on 127.0.0.1:0; dropping the JoinSet stops it.
    async fn echo_server() -> (SocketAddr, JoinSet<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let mut server = JoinSet::new();
        server.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut s, _)) = listener.accept().await {
                conns.spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        (addr, server)
    }

    /// A server for one connection that reports what it reads and writes
    /// what it is told to.
    struct Tap {
        addr: SocketAddr,
        received: mpsc::UnboundedReceiver<Vec<u8>>,
        send: mpsc::UnboundedSender<Vec<u8>>,
        _server: JoinSet<()>,
    }

    async fn tap_server() -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let addr = listener.local_addr().expect("tap addr");
        let (rec_tx, received) = mpsc::unbounded_channel();
        let (send, mut send_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let mut server = JoinSet::new();
        server.spawn(async move {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let (mut r, mut w) = s.into_split();
            let reader = async move {
                let mut buf = vec![0u8; 1024];
                while let Ok(n @ 1..) = r.read(&mut buf).await {
                    if rec_tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            };
            let writer = async move {
                while let Some(bytes) = send_rx.recv().await {
                    if w.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            };
            tokio::join!(reader, writer);
        });
        Tap {
            addr,
            received,
            send,
            _server: server,
        }
    }

    #[derive(Debug, PartialEq)]
    enum Read {
        Data(Vec<u8>),
        Closed,
        Silent,
    }

    /// One read with a bounded wait: data, closed (EOF or error), or silence.
    async fn read_within(s: &mut TcpStream, wait: Duration) -> Read {
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Err(_) => Read::Silent,
            Ok(Ok(0)) | Ok(Err(_)) => Read::Closed,
            Ok(Ok(n)) => Read::Data(buf[..n].to_vec()),
        }
    }

    async fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        tokio::time::timeout(WAIT, s.read_exact(&mut buf))
            .await
            .expect("timed out reading")
            .expect("read failed");
        buf
    }

    async fn connect(p: &FaultProxy) -> TcpStream {
        TcpStream::connect(p.addr())
            .await
            .expect("connect to proxy")
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) {
        s.write_all(msg).await.expect("write");
        assert_eq!(read_exactly(s, msg.len()).await, msg);
    }

    async fn eventually(mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !f() {
            assert!(
                Instant::now() < deadline,
                "condition not reached in {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn pass_through_forwards_both_ways() {
        let (echo, _server) = echo_server().await;
        let proxy = FaultProxy::start(echo).await.expect("start proxy");
        let mut a = connect(&proxy).await;
        roundtrip(&mut a, b"hello").await;
        // A large payload: chunking and backpressure.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = a.into_split();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.expect("write big");
            w.shutdown().await.expect("half-close");
        });
        let mut back = Vec::new();
        tokio::time::timeout(WAIT, r.read_to_end(&mut back))
            .await
            .expect("timed out")
            .expect("read big");
        writer.await.expect("writer task");
        // The half-close went through and came back as EOF.
        assert_eq!(back, big);
        let total = 5 + big.len() as u64;
        eventually(|| proxy.stats().from_target_bytes == total).await;
        let st = proxy.stats();
        assert_eq!((st.accepted, st.refused), (1, 0));
        assert_eq!(st.to_target_bytes, total);
        eventually(|| proxy.stats().active == 0).await;
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn cut_closes_existing_and_refuses_new_until_heal() {
        let (echo, _server) = echo_server().await;
        let proxy = FaultProxy::start(echo.to_string())
            .await
            .expect("start proxy");
        let mut old = connect(&proxy).await;
        roundtrip(&mut old, b"before").await;

        proxy.cut();
        assert!(proxy.state().cut);
        assert_eq!(read_within(&mut old, WAIT).await, Read::Closed);
        // New connections are accepted and dropped at once.
        for _ in 0..3 {
            if let Ok(mut s) = TcpStream::connect(proxy.addr()).await {
                let _ = s.write_all(b"x").await;
                assert_eq!(read_within(&mut s, WAIT).await, Read::Closed);
            }
        }
        assert!(proxy.stats().refused >= 3);
        eventually(|| proxy.stats().active == 0).await;

        proxy.heal();
        let mut new = connect(&proxy).await;
        roundtrip(&mut new, b"after").await;
        // The old connection stays closed.
        let _ = old.write_all(b"late").await;
        assert_eq!(read_within(&mut old, WAIT).await, Read::Closed);
        assert_eq!(proxy.stats().active, 1);
    }

    #[tokio::test]
    async fn cut_one_way_drops_one_direction_only() {
        let mut tap = tap_server().await;
        let proxy = FaultProxy::start(tap.addr).await.expect("start proxy");
        let mut c = connect(&proxy).await;
        c.write_all(b"hi").await.expect("write");
        assert_eq!(tap.received.recv().await.expect("tap"), b"hi");

        proxy.cut_one_way(Dir::ToTarget);
        c.write_all(b"lost").await.expect("write still succeeds");
        tap.send.send(b"down".to_vec()).expect("tap send");
        assert_eq!(read_exactly(&mut c, 4).await, b"down");
        tokio::time::sleep(QUIET).await;
        assert!(
            tap.received.try_recv().is_err(),
            "bytes crossed a cut direction"
        );
        eventually(|| proxy.stats().dropped_to_target_bytes == 4).await;

        proxy.heal();
        proxy.cut_one_way(Dir::FromTarget);
        c.write_all(b"up").await.expect("write");
        let got = tokio::time::timeout(WAIT, tap.received.recv())
            .await
            .expect("timed out")
            .expect("tap");
        assert_eq!(got, b"up");
        tap.send.send(b"gone".to_vec()).expect("tap send");
        assert_eq!(read_within(&mut c, QUIET).await, Read::Silent);
        eventually(|| proxy.stats().dropped_from_target_bytes == 4).await;

        // Same connection, healed: both ways again.
        proxy.heal();
        tap.send.send(b"back".to_vec()).expect("tap send");
        assert_eq!(read_exactly(&mut c, 4).await, b"back");
        assert_eq!(proxy.stats().accepted, 1);
    }

    #[tokio::test]
    async fn blackhole_keeps_connections_open_and_delivers_nothing() {
        let (echo, _server) = echo_server().await;
        let proxy = FaultProxy::start(echo).await.expect("start proxy");
        let mut old = connect(&proxy).await;
        roundtrip(&mut old, b"1").await;

        proxy.blackhole();
        old.write_all(b"swallowed").await.expect("write");
        assert_eq!(read_within(&mut old, QUIET).await, Read::Silent);
        let mut new = connect(&proxy).await;
        new.write_all(b"also swallowed").await.expect("write");
        assert_eq!(read_within(&mut new, QUIET).await, Read::Silent);
        eventually(|| proxy.stats().dropped_to_target_bytes == 9 + 14).await;

        proxy.heal();
        roundtrip(&mut old, b"2").await;
        roundtrip(&mut new, b"3").await;
    }

    #[tokio::test]
    async fn blackhole_hides_a_dead_target() {
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr")
        };
        let proxy = FaultProxy::start(dead).await.expect("start proxy");
        let mut s = connect(&proxy).await;
        assert_eq!(read_within(&mut s, WAIT).await, Read::Closed);

        proxy.blackhole();
        let mut s = connect(&proxy).await;
        s.write_all(b"anyone?").await.expect("write");
        assert_eq!(read_within(&mut s, QUIET).await, Read::Silent);
        proxy.heal();
        assert_eq!(read_within(&mut s, WAIT).await, Read::Closed);
    }

    #[tokio::test]
    async fn delay_holds_each_chunk_each_way_in_order() {
        let (echo, _server) = echo_server().await;
        let proxy = FaultProxy::start(echo).await.expect("start proxy");
        let mut c = connect(&proxy).await;
        roundtrip(&mut c, b"warm").await;

        let d = Duration::from_millis(150);
        proxy.delay(d);
        let t0 = Instant::now();
        roundtrip(&mut c, b"ping").await;
        let rtt = t0.elapsed();
        assert!(
            rtt >= 2 * d,
            "round trip {rtt:?} shorter than twice the delay"
        );
        assert!(rtt < WAIT);

        // Several separate chunks arrive whole and in order, and are not
        // delayed one after the other (that would take 5 x 2 x d).
        let t0 = Instant::now();
        let mut expected = Vec::new();
        for i in 0..5u8 {
            let chunk = [b'a' + i; 3];
            c.write_all(&chunk).await.expect("write");
            expected.extend_from_slice(&chunk);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(read_exactly(&mut c, expected.len()).await, expected);
        let elapsed = t0.elapsed();
        assert!(elapsed >= 2 * d && elapsed < 6 * d, "{elapsed:?}");

        proxy.heal();
        let t0 = Instant::now();
        roundtrip(&mut c, b"fast").await;
        assert!(t0.elapsed() < d, "still delayed after heal");
    }

    #[tokio::test]
    async fn reset_connections_closes_existing_only() {
        let (echo, _server) = echo_server().await;
        let proxy = FaultProxy::start(echo).await.expect("start proxy");
        let mut old = connect(&proxy).await;
        roundtrip(&mut old, b"x").await;
        proxy.reset_connections();
        assert_eq!(read_within(&mut old, WAIT).await, Read::Closed);
        let mut new = connect(&proxy).await;
        roundtrip(&mut new, b"y").await;
    }

    #[tokio::test]
    async fn retarget_moves_new_connections() {
        let (echo1, _s1) = echo_server().await;
        let mut tap = tap_server().await;
        let proxy = FaultProxy::start(echo1).await.expect("start proxy");
        let mut a = connect(&proxy).await;
        roundtrip(&mut a, b"old target").await;
        proxy.retarget(tap.addr);
        roundtrip(&mut a, b"still old").await;
        let mut b = connect(&proxy).await;
        b.write_all(b"new").await.expect("write");
        assert_eq!(tap.received.recv().await.expect("tap"), b"new");
    }

    #[tokio::test]
    async fn shutdown_and_drop_close_everything() {
        let (echo, _server) = echo_server().await;
        let proxy = FaultProxy::start(echo).await.expect("start proxy");
        let addr = proxy.addr();
        let mut c = connect(&proxy).await;
        roundtrip(&mut c, b"x").await;
        proxy.shutdown().await;
        assert_eq!(read_within(&mut c, WAIT).await, Read::Closed);
        assert!(
            TcpStream::connect(&addr).await.is_err(),
            "listener still open"
        );

        let proxy = FaultProxy::start(echo).await.expect("start proxy");
        let addr = proxy.addr();
        let mut c = connect(&proxy).await;
        roundtrip(&mut c, b"y").await;
        drop(proxy);
        assert_eq!(read_within(&mut c, WAIT).await, Read::Closed);
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(&addr).await.is_ok() {
            assert!(Instant::now() < deadline, "listener still open after drop");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // -- Schedules -----------------------------------------------------------

    /// Replays a schedule and checks every guarantee documented on
    /// [`Schedule`].
    fn assert_recoverable(s: &Schedule, opts: &ScheduleOptions) {
        let max = s.nodes.saturating_sub(1) / 2;
        let mut down = BTreeSet::new();
        let mut paused: BTreeMap<usize, Duration> = BTreeMap::new();
        let mut faulty_links = BTreeSet::new();
        let mut last = Duration::ZERO;
        for (at, fault) in &s.steps {
            assert!(*at >= last && *at <= s.duration, "unsorted: {s}");
            last = *at;
            match *fault {
                Fault::Kill { node } => assert!(down.insert(node), "double kill: {s}"),
                Fault::Restart { node } | Fault::RestartWiped { node } => {
                    assert!(down.remove(&node), "restart of a live node: {s}")
                }
                Fault::Pause { node } => {
                    assert!(!down.contains(&node) && paused.insert(node, *at).is_none());
                }
                Fault::Resume { node } => {
                    let since = paused.remove(&node).expect("resume without pause");
                    assert!(*at - since <= opts.pause_len.1, "pause too long: {s}");
                }
                Fault::Heal { link } => {
                    faulty_links.remove(&link);
                }
                Fault::HealAll => faulty_links.clear(),
                Fault::Cut { link }
                | Fault::CutOneWay { link, .. }
                | Fault::Blackhole { link }
                | Fault::Delay { link, .. } => {
                    assert!(link < s.links);
                    faulty_links.insert(link);
                }
            }
            if let Fault::Kill { node } | Fault::Pause { node } = fault {
                assert!(*node < s.nodes);
            }
            assert!(
                down.len() + paused.len() <= max,
                "more than a minority impaired at {at:?}: {s}"
            );
        }
        assert_eq!(s.steps.last().map(|x| x.1), Some(Fault::HealAll), "{s}");
        assert_eq!(s.steps.last().map(|x| x.0), Some(s.duration));
        assert!(
            down.is_empty() && paused.is_empty() && faulty_links.is_empty(),
            "{s}"
        );
    }

    #[test]
    fn schedule_is_deterministic_per_seed_and_differs_across_seeds() {
        let d = Duration::from_secs(60);
        let a = Schedule::new(42, d, &FaultKind::ALL, 6, 3);
        let b = Schedule::new(42, d, &FaultKind::ALL, 6, 3);
        assert_eq!(a, b);
        let distinct: BTreeSet<String> = (0..50)
            .map(|seed| format!("{:?}", Schedule::new(seed, d, &FaultKind::ALL, 6, 3).steps))
            .collect();
        assert_eq!(distinct.len(), 50);
        assert!(a.steps.len() > 10, "{a}");
    }

    #[test]
    fn schedule_keeps_a_majority_up_and_ends_healed() {
        let opts = ScheduleOptions::default();
        let d = Duration::from_secs(120);
        for nodes in [3, 5] {
            let mut max_seen = 0;
            let mut kinds_seen = HashSet::new();
            for seed in 0..500 {
                let s = Schedule::new(seed, d, &FaultKind::ALL, 2 * nodes, nodes);
                assert_recoverable(&s, &opts);
                let mut down = 0i32;
                for (_, f) in &s.steps {
                    kinds_seen.insert(std::mem::discriminant(f));
                    match f {
                        Fault::Kill { .. } | Fault::Pause { .. } => down += 1,
                        Fault::Restart { .. }
                        | Fault::RestartWiped { .. }
                        | Fault::Resume { .. } => down -= 1,
                        _ => {}
                    }
                    max_seen = max_seen.max(down);
                }
            }
            // The bound is reached, so the check above is not vacuous.
            assert_eq!(max_seen, ((nodes - 1) / 2) as i32);
            assert_eq!(kinds_seen.len(), 11, "every Fault variant is drawn");
        }
    }

    #[test]
    fn schedule_respects_topology_and_kinds() {
        let d = Duration::from_secs(60);
        // Fewer than 3 nodes: no process fault can keep a majority up.
        for nodes in [0, 1, 2] {
            let s = Schedule::new(1, d, &FaultKind::ALL, 3, nodes);
            assert!(s.steps.iter().all(|(_, f)| f.is_link_fault()), "{s}");
            assert_recoverable(&s, &ScheduleOptions::default());
        }
        // Only the requested kinds.
        let s = Schedule::new(2, d, &[FaultKind::Pause], 3, 3);
        assert!(s.steps.iter().all(|(_, f)| matches!(
            f,
            Fault::Pause { .. } | Fault::Resume { .. } | Fault::HealAll
        )));
        assert!(s.steps.len() > 3);
        // Nothing to draw: just the final heal.
        let s = Schedule::new(3, d, &[], 3, 3);
        assert_eq!(s.steps, vec![(d, Fault::HealAll)]);
        let s = Schedule::new(3, d, &[FaultKind::Cut], 0, 3);
        assert_eq!(s.steps, vec![(d, Fault::HealAll)]);
    }

    #[test]
    fn env_parsing() {
        assert_eq!(parse_seed(Some(" 1234 ")), 1234);
        assert_ne!(parse_seed(None), parse_seed(None));
        assert!(std::panic::catch_unwind(|| parse_seed(Some("12x"))).is_err());
        let d = Duration::from_secs(7);
        assert_eq!(parse_secs(None, d), d);
        assert_eq!(parse_secs(Some("2.5"), d), Duration::from_millis(2500));
        assert!(std::panic::catch_unwind(|| parse_secs(Some("-1"), d)).is_err());
        // The real readers work with whatever the environment holds.
        let _ = duration_from_env(d);
    }

    #[tokio::test]
    async fn schedule_runs_link_faults_on_proxies_and_hands_over_process_faults() {
        let (echo, _server) = echo_server().await;
        let proxies = vec![
            FaultProxy::start(echo).await.expect("proxy 0"),
            FaultProxy::start(echo).await.expect("proxy 1"),
        ];
        assert!(Fault::Cut { link: 1 }.apply(&proxies));
        assert!(proxies[1].state().cut);
        assert!(Fault::Delay { link: 0, ms: 5 }.apply(&proxies));
        assert_eq!(proxies[0].state().delay, Duration::from_millis(5));
        assert!(!Fault::Kill { node: 0 }.apply(&proxies));
        assert!(Fault::HealAll.apply(&proxies));
        assert!(proxies.iter().all(|p| p.state() == FaultState::default()));

        let ms = Duration::from_millis;
        let opts = ScheduleOptions {
            gap: (ms(5), ms(15)),
            link_fault_len: (ms(5), ms(20)),
            pause_len: (ms(5), ms(20)),
            down_len: (ms(5), ms(20)),
            crash_restart_len: (ms(1), ms(5)),
            settle: ms(5),
            delay_ms: (1, 5),
        };
        let s = Schedule::with_options(9, ms(300), &FaultKind::ALL, 2, 3, &opts);
        assert_recoverable(&s, &opts);
        let expected: Vec<Fault> = s
            .steps
            .iter()
            .map(|x| x.1)
            .filter(|f| !f.is_link_fault())
            .collect();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        s.run(&proxies, |f| {
            let seen = Arc::clone(&seen);
            async move { seen.lock().expect("lock").push(f) }
        })
        .await;
        assert!(t0.elapsed() >= ms(300));
        assert_eq!(*seen.lock().expect("lock"), expected);
        assert!(proxies.iter().all(|p| p.state() == FaultState::default()));
        let mut c = connect(&proxies[0]).await;
        roundtrip(&mut c, b"healed").await;
        assert!(s.to_string().contains("heal all links"));
    }
}
