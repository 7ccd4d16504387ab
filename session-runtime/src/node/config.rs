//! Configuration of a store node.

use std::path::PathBuf;
use std::time::Duration;

use crate::raft::Fsync;
use crate::store::Limits;

/// How a node runs. [`NodeConfig::new`] gives defaults for production
/// timings; tests shorten them.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id in its replica set (unique, never reused for a node
    /// with another data directory while the set remembers it).
    pub id: u64,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// Address other members and clients reach this node at; defaults to
    /// the bound address.
    pub advertise: Option<String>,
    /// The other voting members, by id and address.
    pub peers: Vec<(u64, String)>,
    /// Non-voting members (backups that never lead), by id and address.
    pub learners: Vec<(u64, String)>,
    /// Whether this node is itself a learner.
    pub learner: bool,
    /// Directory of the Raft log, the vote and snapshots.
    pub data_dir: PathBuf,
    /// When log entries are fsync'd (they always reach the OS before they
    /// are acknowledged; the vote is always fsync'd).
    pub fsync: Fsync,
    /// The shared cluster secret, proved by the nodes of the set.
    pub secret: Vec<u8>,
    /// The secret application servers prove; `None`: they prove the
    /// cluster secret. With a separate client secret, a client cannot pose
    /// as a node (votes, log entries, membership changes).
    pub client_secret: Option<Vec<u8>>,
    /// Idle TTL of sessions created without one.
    pub default_ttl: Duration,
    /// Session size and count limits.
    pub limits: Limits,
    /// Largest frame accepted or sent.
    pub max_frame: usize,
    /// Most authenticated connections served at once.
    pub max_connections: usize,
    /// Most connections in their handshake at once (not yet authenticated;
    /// a budget of their own, bounded in time by `io_timeout`).
    pub max_handshakes: usize,
    /// Interval of the leader's heartbeats.
    pub heartbeat: Duration,
    /// Silence after which a follower stands for election (randomised
    /// between this and twice this).
    pub election_timeout: Duration,
    /// Time allowed for a handshake or a peer's answer.
    pub io_timeout: Duration,
    /// How long a write or a read may wait for the set before the node
    /// answers that it is unavailable.
    pub request_timeout: Duration,
    /// Interval of the expiry sweep.
    pub expiry_interval: Duration,
    /// A snapshot is built after this many log entries since the last.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot, so that a backup that fell
    /// behind by less catches up from the log, not with a snapshot.
    pub log_keep: u64,
    /// The fingerprint of the one session type this set serves: clients
    /// that declare another, or none, are refused at the handshake. `None`:
    /// any type (each session still accepts only the type that created it).
    pub schema: Option<u64>,
}

impl NodeConfig {
    /// Node `id` listening on `listen`, keeping its state in `data_dir`;
    /// alone (a one-node set) until peers are added.
    pub fn new(
        id: u64,
        listen: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        secret: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            id,
            listen: listen.into(),
            advertise: None,
            peers: Vec::new(),
            learners: Vec::new(),
            learner: false,
            data_dir: data_dir.into(),
            fsync: Fsync::EverySec,
            secret: secret.into(),
            client_secret: None,
            default_ttl: Duration::from_secs(30 * 60),
            limits: Limits::default(),
            max_frame: 16 << 20,
            max_connections: 4096,
            max_handshakes: 256,
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            io_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(3),
            expiry_interval: Duration::from_secs(1),
            snapshot_every: 20_000,
            log_keep: 10_000,
            schema: None,
        }
    }

    /// Sets the other voting members.
    pub fn peers(mut self, peers: impl IntoIterator<Item = (u64, impl Into<String>)>) -> Self {
        self.peers = peers.into_iter().map(|(i, a)| (i, a.into())).collect();
        self
    }
}

/// Parses a member given as `ID=ADDR` (as `session-node serve --peer`
/// takes it).
pub fn parse_member(s: &str) -> Result<(u64, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=ADDR, got {s:?}"))?;
    let id = id
        .parse()
        .map_err(|e| format!("node id {id:?} is not a number: {e}"))?;
    if addr.is_empty() {
        return Err(format!("no address for node {id}"));
    }
    Ok((id, addr.to_string()))
}
