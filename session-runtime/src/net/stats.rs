//! Counters a node reports (`Request::Stats`), shared by nodes and clients.

use serde::{Deserialize, Serialize};

use super::message::Role;

/// A node's state and counters since it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Its node id.
    pub id: u64,
    /// Its address.
    pub node: String,
    /// Its role in the replica set.
    pub role: Role,
    /// Its Raft term.
    pub term: u64,
    /// The leader's id, if known.
    pub leader: Option<u64>,
    /// Index of the last log entry applied to its store.
    pub last_applied: u64,
    /// Index of the last entry in its log.
    pub last_log: u64,
    /// Voters of the set, by id.
    pub voters: Vec<u64>,
    /// Learners of the set, by id.
    pub learners: Vec<u64>,
    /// Sessions held.
    pub sessions: u64,
    /// Encoded bytes of the sessions held.
    pub session_bytes: u64,
    /// Client operations applied to the store (creates, commits, deletes,
    /// expiries), as leader or as backup.
    pub ops_applied: u64,
    /// Log entries this node sent to other members.
    pub entries_shipped: u64,
    /// Bytes of the append-entries frames that carried them (Raft framing
    /// included; heartbeats without entries are not counted).
    pub bytes_shipped: u64,
    /// Snapshots this node built.
    pub snapshots_built: u64,
    /// Snapshots this node installed from a leader.
    pub snapshots_installed: u64,
    /// Sessions expired (applied expiries).
    pub expired: u64,
    /// Connections closed for bad frames, failed handshakes or forbidden
    /// messages.
    pub rejected_connections: u64,
}
