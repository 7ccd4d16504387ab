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
        Self { user, items: Vec::new(), counts: BTreeMap::new(), note: String::new(), blob: vec![0; 256] }
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
    let mut ca = node_config(vec![b.clone()]);
    ca.listen = a.clone();
    ca.bootstrap = Some(true);
    tweak(&mut ca);
    let mut cb = node_config(vec![a.clone()]);
    cb.listen = b.clone();
    cb.bootstrap = Some(false);
    tweak(&mut cb);
    let na = Node::start(ca).await.unwrap();
    let nb = Node::start(cb).await.unwrap();
    wait_until("backup linked", Duration::from_secs(10), || na.stats().backups.len() == 1).await;
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
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls an async condition.
pub async fn wait_for<F: Future<Output = bool>>(what: &str, limit: Duration, mut cond: impl FnMut() -> F) {
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
