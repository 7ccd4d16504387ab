//! Configuration of a store node.

use std::time::Duration;

use crate::net::message::Durability;
use crate::store::Limits;

/// How a node runs. [`NodeConfig::new`] gives defaults fit for loopback
/// tests; production deployments set the secret, peers and limits.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// Address other members and clients reach this node at; defaults to
    /// the bound address.
    pub advertise: Option<String>,
    /// The other members of the replica set.
    pub peers: Vec<String>,
    /// The shared cluster secret.
    pub secret: Vec<u8>,
    /// Whether this node may lead at start-up when it finds no primary.
    /// `None`: the member with the smallest address may.
    pub bootstrap: Option<bool>,
    /// Idle TTL of sessions created without one.
    pub default_ttl: Duration,
    /// Session size and count limits.
    pub limits: Limits,
    /// Largest frame accepted or sent.
    pub max_frame: usize,
    /// Bytes of recent changes kept for partial resynchronisation.
    pub backlog_bytes: usize,
    /// Changes queued for one backup before it is dropped to resync.
    pub backup_queue: usize,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Interval of heartbeats from the primary.
    pub heartbeat: Duration,
    /// Silence after which a backup considers its primary lost.
    pub failover_timeout: Duration,
    /// How long a `Sync` write waits for acknowledgements.
    pub sync_timeout: Duration,
    /// Time allowed for a handshake or a peer's answer.
    pub io_timeout: Duration,
    /// Interval of the expiry sweep.
    pub expiry_interval: Duration,
    /// The fingerprint of the one session type this set serves: clients
    /// that declare another, or none, are refused at the handshake. `None`:
    /// any type (each session still accepts only the type that created it).
    pub schema: Option<u64>,
    /// Durability of writes that do not choose one. `None`: `Sync(1)` when
    /// the set has backups, else `Async`.
    pub default_durability: Option<Durability>,
}

impl NodeConfig {
    /// A node listening on `listen`, alone until peers are added.
    pub fn new(listen: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            listen: listen.into(),
            advertise: None,
            peers: Vec::new(),
            secret: secret.into(),
            bootstrap: None,
            default_ttl: Duration::from_secs(30 * 60),
            limits: Limits::default(),
            max_frame: 16 << 20,
            backlog_bytes: 64 << 20,
            backup_queue: 65_536,
            max_connections: 4096,
            heartbeat: Duration::from_millis(100),
            failover_timeout: Duration::from_millis(1000),
            sync_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(2),
            expiry_interval: Duration::from_secs(1),
            default_durability: None,
            schema: None,
        }
    }

    /// Sets the other members.
    pub fn peers(mut self, peers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.peers = peers.into_iter().map(Into::into).collect();
        self
    }
}
