//! Counters a node reports.

use serde::{Deserialize, Serialize};

use crate::net::message::Role;

/// One backup as its primary sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupLag {
    /// Offset the backup applied.
    pub acked: u64,
    /// Changes it is behind.
    pub lag: u64,
}

/// A node's counters, since it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Its address.
    pub node: String,
    /// Its role.
    pub role: Role,
    /// Its epoch.
    pub epoch: u64,
    /// Its replication offset.
    pub offset: u64,
    /// Sessions held.
    pub sessions: u64,
    /// Encoded bytes of the sessions held.
    pub session_bytes: u64,
    /// Changes committed here as primary (creates, commits, deletes, expiries).
    pub commits: u64,
    /// Entries shipped to backups.
    pub deltas_shipped: u64,
    /// Bytes of those entries.
    pub bytes_shipped: u64,
    /// Bytes that shipping the whole session on each change would have cost.
    pub full_state_bytes: u64,
    /// Partial resynchronisations served to backups.
    pub partial_resyncs_served: u64,
    /// Full resynchronisations served to backups.
    pub full_resyncs_served: u64,
    /// Partial resynchronisations this node made as a backup.
    pub partial_resyncs: u64,
    /// Full resynchronisations this node made as a backup.
    pub full_resyncs: u64,
    /// Times this node was promoted.
    pub failovers: u64,
    /// Sessions expired.
    pub expired: u64,
    /// Connections closed for bad frames or failed handshakes.
    pub rejected_connections: u64,
    /// Backups connected, with their lag.
    pub backups: Vec<BackupLag>,
}

impl Stats {
    pub(crate) fn new(node: String) -> Self {
        Self {
            node,
            role: Role::Follower,
            epoch: 0,
            offset: 0,
            sessions: 0,
            session_bytes: 0,
            commits: 0,
            deltas_shipped: 0,
            bytes_shipped: 0,
            full_state_bytes: 0,
            partial_resyncs_served: 0,
            full_resyncs_served: 0,
            partial_resyncs: 0,
            full_resyncs: 0,
            failovers: 0,
            expired: 0,
            rejected_connections: 0,
            backups: Vec::new(),
        }
    }
}
