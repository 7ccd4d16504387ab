//! Helpers for scenario tests: nodes on 127.0.0.1 (in-process, or real
//! `session-node` processes), a session type, and bounded waiting.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use session_runtime::net::message::Role;
use session_runtime::net::Stats;
use session_runtime::node::{Node, NodeConfig, NodeHandle};
use session_runtime::{ClientConfig, Session, SessionId};

pub const SECRET: &[u8] = b"scenario-test-cluster-secret";

#[derive(Session, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    #[immutable]
    pub user: u64,
    pub items: Vec<String>,
    pub counts: BTreeMap<String, u64>,
    pub note: String,
    pub blob: Vec<u8>,
}

impl Cart {
    pub fn new(user: u64) -> Self {
        Self {
            user,
            items: Vec::new(),
            counts: BTreeMap::new(),
            note: String::new(),
            blob: vec![0; 256],
        }
    }
}

/// A data directory for a test node, removed when the test process ends
/// only by the OS's temp cleaning: a restarted node must find it again.
pub fn data_dir() -> std::path::PathBuf {
    tempfile::Builder::new()
        .prefix("session-node-test-")
        .tempdir()
        .unwrap()
        .keep()
}

/// A config with timeouts short enough for tests.
pub fn node_config(id: u64, peers: Vec<(u64, String)>) -> NodeConfig {
    let mut c = NodeConfig::new(id, "127.0.0.1:0", data_dir(), SECRET).peers(peers);
    c.heartbeat = Duration::from_millis(50);
    c.election_timeout = Duration::from_millis(300);
    c.io_timeout = Duration::from_millis(500);
    c.request_timeout = Duration::from_millis(1500);
    c.expiry_interval = Duration::from_millis(100);
    c.fsync = session_runtime::raft::Fsync::No;
    c
}

/// Reserves a free port on loopback (for node processes, which must know
/// each other's addresses before they start).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A two-voter set, in-process: returns (leader, follower) once the leader
/// is elected and the follower has caught up. Commits need both.
pub async fn pair() -> (NodeHandle, NodeHandle) {
    pair_with(|_| {}).await
}

pub async fn pair_with(tweak: impl Fn(&mut NodeConfig)) -> (NodeHandle, NodeHandle) {
    let (a, b) = (free_addr(), free_addr());
    pair_at(a.clone(), b.clone(), b, a, tweak).await
}

/// A set of node 1 on `a` and node 2 on `b`, where node 1 reaches node 2 at
/// `b_seen_from_a` and node 2 reaches node 1 at `a_seen_from_b` (their own
/// addresses, or proxies'). Returns (leader, follower).
pub async fn pair_at(
    a: String,
    b: String,
    b_seen_from_a: String,
    a_seen_from_b: String,
    tweak: impl Fn(&mut NodeConfig),
) -> (NodeHandle, NodeHandle) {
    let mut ca = node_config(1, vec![(2, b_seen_from_a)]);
    ca.listen = a.clone();
    ca.advertise = Some(a_seen_from_b);
    tweak(&mut ca);
    let mut cb = node_config(2, vec![(1, a)]);
    cb.listen = b;
    tweak(&mut cb);
    let na = Node::start(ca).await.unwrap();
    let nb = Node::start(cb).await.unwrap();
    wait_until(
        "a leader with a caught-up follower",
        Duration::from_secs(10),
        || {
            let (sa, sb) = (na.stats(), nb.stats());
            sa.leader.is_some()
                && sa.leader == sb.leader
                && sa.last_applied == sb.last_applied
                && sa.last_applied > 0
        },
    )
    .await;
    if na.stats().role == Role::Leader {
        (na, nb)
    } else {
        (nb, na)
    }
}

pub fn client_config(nodes: &[String]) -> ClientConfig {
    let mut c = ClientConfig::new(nodes.iter().cloned(), SECRET);
    c.failover_timeout = Duration::from_secs(10);
    c.request_timeout = Duration::from_secs(3);
    c.connect_timeout = Duration::from_millis(500);
    c
}

/// Polls `cond` every 10 ms until it holds, failing the test after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls an async condition.
pub async fn wait_for<F: Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> F,
) {
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A secret file for node processes (owner-only, as a node expects).
pub fn secret_file() -> std::path::PathBuf {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("session-test-secret-{}", std::process::id()));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, SECRET).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    })
    .clone()
}

/// A real `session-node` process on loopback, killed on drop.
pub struct NodeProcess {
    child: Option<std::process::Child>,
    pub id: u64,
    pub addr: String,
    pub data_dir: std::path::PathBuf,
    args: Vec<String>,
    log: std::path::PathBuf,
}

impl NodeProcess {
    /// Starts `session-node serve` as node `id` on `addr` with voting
    /// `peers`, on a fresh data directory.
    pub fn spawn(id: u64, addr: &str, peers: &[(u64, String)], extra: &[&str]) -> Self {
        let data_dir = data_dir();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            addr.into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--secret-file".into(),
            secret_file().display().to_string(),
            "--heartbeat-ms".into(),
            "50".into(),
            "--election-ms".into(),
            "300".into(),
            "--request-timeout-ms".into(),
            "1500".into(),
        ];
        for (pid, p) in peers {
            args.push("--peer".into());
            args.push(format!("{pid}={p}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = std::env::temp_dir().join(format!(
            "session-node-{}-{}.log",
            std::process::id(),
            addr.replace(':', "_")
        ));
        let mut p = Self {
            child: None,
            id,
            addr: addr.into(),
            data_dir,
            args,
            log,
        };
        p.start();
        p
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_session-node"))
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("session-node starts");
        self.child = Some(child);
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = std::process::Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} {}", c.id());
        }
    }

    /// SIGKILL: no shutdown, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the process freezes with its sockets open.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL, then start again at once on the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    /// SIGKILL, delete the data directory, start again.
    pub fn restart_wiped(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
        self.start();
    }

    /// The node's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        if std::env::var_os("KEEP_NODE_LOGS").is_none() {
            let _ = std::fs::remove_file(&self.log);
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A set of `n` voting `session-node` processes with ids 1..=n.
pub struct ProcessSet {
    pub nodes: Vec<NodeProcess>,
}

impl ProcessSet {
    pub fn start(n: usize, extra: &[&str]) -> Self {
        let addrs: Vec<String> = (0..n).map(|_| free_addr()).collect();
        let nodes = (0..n)
            .map(|i| {
                let peers: Vec<(u64, String)> = (0..n)
                    .filter(|j| *j != i)
                    .map(|j| (j as u64 + 1, addrs[j].clone()))
                    .collect();
                NodeProcess::spawn(i as u64 + 1, &addrs[i], &peers, extra)
            })
            .collect();
        Self { nodes }
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Waits until one node leads and the others (but `except`) follow
    /// it, and returns the leader's index.
    pub async fn wait_leader(&self, except: &[usize], limit: Duration) -> usize {
        let start = Instant::now();
        loop {
            let mut stats = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if !except.contains(&i) {
                    stats.push((i, node_stats(&n.addr).await));
                }
            }
            let leader = stats.iter().find_map(|(i, s)| {
                s.as_ref()
                    .filter(|s| s.role == Role::Leader)
                    .map(|s| (*i, s.id, s.term))
            });
            if let Some((i, id, term)) = leader {
                if stats.iter().all(|(_, s)| {
                    s.as_ref()
                        .is_some_and(|s| s.leader == Some(id) && s.term == term)
                }) {
                    return i;
                }
            }
            if start.elapsed() > limit {
                let logs: Vec<String> = self.nodes.iter().map(|n| n.log()).collect();
                panic!(
                    "no leader within {limit:?}: {stats:?}\n{}",
                    logs.join("\n----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until every node but `except` applied at least `index`.
    pub async fn wait_applied(&self, except: &[usize], index: u64, limit: Duration) {
        let start = Instant::now();
        'outer: loop {
            assert!(
                start.elapsed() < limit,
                "nodes did not apply {index} within {limit:?}"
            );
            for (i, n) in self.nodes.iter().enumerate() {
                if except.contains(&i) {
                    continue;
                }
                if node_stats(&n.addr)
                    .await
                    .is_none_or(|s| s.last_applied < index)
                {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    continue 'outer;
                }
            }
            return;
        }
    }
}

/// One request to a node, as a client; `None` if it is unreachable.
pub async fn node_request(
    addr: &str,
    request: session_runtime::net::message::Request,
) -> Option<session_runtime::net::message::Response> {
    use session_runtime::net::message::{Message, PeerRole};
    use session_runtime::net::Connection;
    let limit = Duration::from_millis(500);
    let (mut conn, _) = Connection::connect(
        addr,
        SECRET,
        PeerRole::Client { schema: None },
        16 << 20,
        limit,
    )
    .await
    .ok()?;
    conn.send(&Message::Request { id: 1, request }).await.ok()?;
    match conn.read_within(limit).await.ok()? {
        Message::Response { response, .. } => Some(response),
        _ => None,
    }
}

/// A node's counters, fetched over the network; `None` if unreachable.
pub async fn node_stats(addr: &str) -> Option<Stats> {
    use session_runtime::net::message::{Request, Response};
    match node_request(addr, Request::Stats).await? {
        Response::Stats(s) => Some(s),
        _ => None,
    }
}

/// Every session a node holds, `(id, version, encoding)` sorted by id;
/// `None` if unreachable.
pub async fn node_dump(addr: &str) -> Option<Vec<(SessionId, u64, Vec<u8>)>> {
    use session_runtime::net::message::{Request, Response};
    match node_request(addr, Request::Dump).await? {
        Response::Dump(d) => Some(
            d.into_iter()
                .map(|(i, v, t)| (i, v, t.into_vec()))
                .collect(),
        ),
        _ => None,
    }
}

/// A TCP proxy on loopback whose connections can be cut, to break a link
/// between two real nodes.
pub struct Proxy {
    pub addr: String,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    blocked: bool,
    links: Vec<tokio::task::JoinHandle<()>>,
}

/// Copies `from` to `to`, holding each chunk for `delay` (bytes in flight
/// are lost when either side fails, as on a network that drops them).
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at + delay).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((tokio::time::Instant::now(), buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    writer.abort();
}

impl Proxy {
    /// Forwards connections made to `addr` to `target`.
    pub async fn start(target: String) -> Self {
        Self::start_with_delay(target, Duration::ZERO).await
    }

    /// Forwards connections to `target`, delaying every byte by `delay`
    /// each way.
    pub async fn start_with_delay(target: String, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if shared.lock().unwrap().blocked {
                    continue;
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    if delay.is_zero() {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    // Either direction ending ends the link, dropping what is in flight.
                    tokio::select! {
                        _ = delayed_copy(in_read, out_write, delay) => {}
                        _ = delayed_copy(out_read, in_write, delay) => {}
                    }
                });
                shared.lock().unwrap().links.push(link);
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        let mut s = self.state.lock().unwrap();
        s.blocked = true;
        for l in s.links.drain(..) {
            l.abort();
        }
    }

    /// Accepts connections again.
    pub fn heal(&self) {
        self.state.lock().unwrap().blocked = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
