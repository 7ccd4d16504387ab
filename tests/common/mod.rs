//! Helpers for scenario tests: nodes on 127.0.0.1 (in-process, or real
//! `session-node` processes), a session type, and bounded waiting.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use session_runtime::node::{Node, NodeConfig, NodeHandle};
use session_runtime::{ClientConfig, Session};

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

/// A config with timeouts short enough for tests.
pub fn node_config(peers: Vec<String>) -> NodeConfig {
    let mut c = NodeConfig::new("127.0.0.1:0", SECRET).peers(peers);
    c.heartbeat = Duration::from_millis(50);
    c.failover_timeout = Duration::from_millis(500);
    c.sync_timeout = Duration::from_millis(1500);
    c.io_timeout = Duration::from_millis(500);
    c.expiry_interval = Duration::from_millis(100);
    c
}

/// Reserves a free port on loopback.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A primary and a backup, in-process; the first is the bootstrap node.
pub async fn pair() -> (NodeHandle, NodeHandle) {
    pair_with(|_| {}).await
}

pub async fn pair_with(tweak: impl Fn(&mut NodeConfig)) -> (NodeHandle, NodeHandle) {
    let (a, b) = (free_addr(), free_addr());
    pair_at(a.clone(), b, a, tweak).await
}

/// A primary on `a` and a backup on `b` that reaches the primary at
/// `primary_seen_from_backup` (the primary's own address, or a proxy's).
pub async fn pair_at(
    a: String,
    b: String,
    primary_seen_from_backup: String,
    tweak: impl Fn(&mut NodeConfig),
) -> (NodeHandle, NodeHandle) {
    let mut ca = node_config(vec![b.clone()]);
    ca.listen = a;
    ca.bootstrap = Some(true);
    tweak(&mut ca);
    let mut cb = node_config(vec![primary_seen_from_backup]);
    cb.listen = b;
    cb.bootstrap = Some(false);
    tweak(&mut cb);
    let na = Node::start(ca).await.unwrap();
    let nb = Node::start(cb).await.unwrap();
    wait_until("backup linked", Duration::from_secs(10), || {
        na.stats().backups.len() == 1
    })
    .await;
    (na, nb)
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

/// A real `session-node` process on loopback, killed on drop.
pub struct NodeProcess {
    child: Option<std::process::Child>,
    pub addr: String,
    args: Vec<String>,
    log: std::path::PathBuf,
}

/// A secret file for node processes.
pub fn secret_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("session-test-secret-{}", std::process::id()));
    std::fs::write(&path, SECRET).unwrap();
    path
}

impl NodeProcess {
    /// Starts `session-node serve` on `addr` with `peers`.
    pub fn spawn(addr: &str, peers: &[String], bootstrap: bool, extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            addr.into(),
            "--secret-file".into(),
            secret_file().display().to_string(),
            "--bootstrap".into(),
            bootstrap.to_string(),
            "--heartbeat-ms".into(),
            "50".into(),
            "--failover-ms".into(),
            "500".into(),
            "--sync-timeout-ms".into(),
            "1500".into(),
        ];
        for p in peers {
            args.push("--peer".into());
            args.push(p.clone());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = std::env::temp_dir().join(format!(
            "session-node-{}-{}.log",
            std::process::id(),
            addr.replace(':', "_")
        ));
        let mut p = Self {
            child: None,
            addr: addr.into(),
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

    /// SIGKILL: no shutdown, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again with the same arguments (and no state).
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    /// The node's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One request to a node, as a client; `None` if it is unreachable.
async fn node_request(
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
pub async fn node_stats(addr: &str) -> Option<session_runtime::node::Stats> {
    use session_runtime::net::message::{Request, Response};
    match node_request(addr, Request::Stats).await? {
        Response::Stats(s) => Some(s),
        _ => None,
    }
}

/// The digest of every session a node holds; `None` if unreachable.
pub async fn node_digest(addr: &str) -> Option<u64> {
    use session_runtime::net::message::{Request, Response};
    match node_request(addr, Request::Digest).await? {
        Response::Digest(d) => Some(d),
        _ => None,
    }
}

/// Waits until the node at `addr` is primary with `backups` backups whose
/// lag is zero, and returns its stats.
pub async fn wait_primary(
    addr: &str,
    backups: usize,
    limit: Duration,
) -> session_runtime::node::Stats {
    wait_role(addr, backups, true, limit).await
}

/// Waits until the node at `addr` is primary with `backups` backups linked
/// (whatever their lag, as under load).
pub async fn wait_linked(
    addr: &str,
    backups: usize,
    limit: Duration,
) -> session_runtime::node::Stats {
    wait_role(addr, backups, false, limit).await
}

async fn wait_role(
    addr: &str,
    backups: usize,
    caught_up: bool,
    limit: Duration,
) -> session_runtime::node::Stats {
    let start = Instant::now();
    loop {
        if let Some(s) = node_stats(addr).await {
            if s.role == session_runtime::net::message::Role::Primary
                && s.backups.len() == backups
                && (!caught_up || s.backups.iter().all(|b| b.lag == 0))
            {
                return s;
            }
        }
        assert!(
            start.elapsed() < limit,
            "{addr} did not become primary with {backups} backups within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
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
