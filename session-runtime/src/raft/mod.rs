//! openraft glue: a replica set is one Raft group.
//!
//! openraft owns terms, votes, log matching, the commit index, membership
//! and snapshots; what is ours is the data plane:
//!
//! - a log entry is one [`Op`] (create, commit of a delta of the modified
//!   attributes, delete, expiry decided by the leader) in our compact
//!   encoding, naming sessions by slot;
//! - the state machine ([`StateMachine`]) is the schema-agnostic
//!   [`Store`](crate::store::Store), applying every op with the same rules
//!   on every replica;
//! - the log ([`LogStore`]) is a segment log on plain files in the node's
//!   data directory, with the vote beside it;
//! - the network ([`Network`]) carries openraft's messages over our
//!   authenticated TCP connections.
//!
//! # Layout
//!
//! - `mod.rs`: the type configuration and the encoding of RPCs;
//! - `log_store.rs`: the durable log and vote;
//! - `state_machine.rs`: the store as a state machine, snapshots built and
//!   installed;
//! - `snapshot.rs`: the snapshot file format, streamed both ways;
//! - `network.rs`: the RPC client side.

mod log_store;
mod network;
mod snapshot;
mod state_machine;

use serde::{Deserialize, Serialize};

pub use log_store::{Fsync, LogStats, ParseFsyncError};
/// The durable log of a node.
pub type LogStore = log_store::LogStore<TypeConfig>;
pub use network::{Network, NetworkCounters};
pub use state_machine::{Replica, ReplicaState, StateMachine};

use crate::net::message::{Applied, ErrorReply, Op};

openraft::declare_raft_types!(
    /// The types of a replica set's Raft group.
    pub TypeConfig:
        D = Op,
        R = Result<Applied, ErrorReply>,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = tokio::fs::File,
);

/// A node's Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<u64>;

/// One openraft request from one member to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRpc {
    /// Replicate entries (or a heartbeat).
    AppendEntries(openraft::raft::AppendEntriesRequest<TypeConfig>),
    /// Ask for a vote.
    Vote(openraft::raft::VoteRequest<u64>),
    /// One chunk of a snapshot.
    InstallSnapshot(openraft::raft::InstallSnapshotRequest<TypeConfig>),
}

/// The answer to a [`PeerRpc`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerAnswer {
    /// To [`PeerRpc::AppendEntries`].
    AppendEntries(
        Result<openraft::raft::AppendEntriesResponse<u64>, openraft::error::RaftError<u64>>,
    ),
    /// To [`PeerRpc::Vote`].
    Vote(Result<openraft::raft::VoteResponse<u64>, openraft::error::RaftError<u64>>),
    /// To [`PeerRpc::InstallSnapshot`].
    InstallSnapshot(
        Result<
            openraft::raft::InstallSnapshotResponse<u64>,
            openraft::error::RaftError<u64, openraft::error::InstallSnapshotError>,
        >,
    ),
}

/// Answers one request of another member with this node's Raft.
pub async fn answer(raft: &Raft, rpc: PeerRpc) -> PeerAnswer {
    match rpc {
        PeerRpc::AppendEntries(r) => PeerAnswer::AppendEntries(raft.append_entries(r).await),
        PeerRpc::Vote(r) => PeerAnswer::Vote(raft.vote(r).await),
        PeerRpc::InstallSnapshot(r) => PeerAnswer::InstallSnapshot(raft.install_snapshot(r).await),
    }
}
