//! Everything nodes and clients say to each other.
//!
//! Each frame on a TCP connection is a 4-byte big-endian length followed by
//! one [`Message`], encoded by the codec module (bincode, serde mode).
//! Deltas and trees inside messages are in the tree format of the core
//! crate, carried as byte strings.
//!
//! ```text
//!  client / node                      node
//!      |  <-- Challenge{protocol, nonce_s} |   before anything else
//!      |  Hello{protocol, nonce_c, role,   |
//!      |        proof = HMAC(secret, ...)} -->
//!      |  <-- Welcome{proof', status}      |   or Refused{reason}, then close
//!      |                                   |
//!  client: Request{id, ..} -->  <-- Response{id, ..}   (pipelined by id)
//!  backup: Sync{epoch, repl_id, offset} -->
//!          <-- Continue{..} Entry* | FullResync{..} Snapshot* SnapshotEnd Entry*
//!          <-- Ping{epoch, offset}      Ack{epoch, offset} -->
//!  candidate: Vote{epoch, ..} -->  <-- VoteReply{epoch, granted}
//! ```
//!
//! Every replication message carries the sender's epoch; a node ignores and
//! refuses messages from a lower epoch, and steps down when it sees a
//! higher one.

use serde::{Deserialize, Serialize};

use crate::id::SessionId;

/// Version of this protocol; peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// How long a commit waits before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Durability {
    /// Acknowledged once the primary applied it. Lost if the primary dies
    /// before a backup received it.
    Async,
    /// Acknowledged once this many backups applied it. Survives the loss
    /// of the primary.
    Sync(u8),
}

/// What a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Accepts writes and ships them to backups.
    Primary,
    /// Follows a primary.
    Backup,
    /// Starting, or between primaries: accepts no writes.
    Follower,
}

/// A node's view of its replica set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node's address, as configured.
    pub node: String,
    /// Its role.
    pub role: Role,
    /// Its epoch.
    pub epoch: u64,
    /// The primary it knows of (itself when primary).
    pub primary: Option<String>,
    /// The id of the replication stream it holds.
    pub repl_id: u64,
    /// The last offset it holds.
    pub offset: u64,
}

/// Who is connecting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRole {
    /// An application server; `schema` is the fingerprint of its session
    /// type, if it declares one.
    Client {
        /// Schema fingerprint.
        schema: Option<u64>,
    },
    /// Another node of the set, by its configured address.
    Node {
        /// Its address.
        addr: String,
    },
}

/// A request of an application server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Create a session from its full encoding.
    Create {
        /// New id (chosen by the client from a CSPRNG).
        id: SessionId,
        /// Fingerprint of the session type.
        schema: u64,
        /// Ids of the fields a delta may patch.
        mutable: Vec<u16>,
        /// Idle time-to-live in milliseconds; 0 for the node's default.
        ttl_ms: u64,
        /// Full encoding (immutable fields included).
        #[serde(with = "serde_bytes")]
        tree: Vec<u8>,
        /// When to acknowledge.
        durability: Option<Durability>,
    },
    /// Read a session (counts as an access).
    Load {
        /// Which.
        id: SessionId,
        /// Fingerprint of the reader's type.
        schema: u64,
    },
    /// Apply a delta made against `base`.
    Commit {
        /// Which.
        id: SessionId,
        /// Fingerprint of the writer's type.
        schema: u64,
        /// Version the delta was made against.
        base: u64,
        /// Random id making a retried commit idempotent.
        commit_id: u64,
        /// The delta.
        #[serde(with = "serde_bytes")]
        delta: Vec<u8>,
        /// When to acknowledge.
        durability: Option<Durability>,
    },
    /// Delete a session.
    Delete {
        /// Which.
        id: SessionId,
        /// When to acknowledge.
        durability: Option<Durability>,
    },
    /// Mark a session as accessed.
    Touch {
        /// Which.
        id: SessionId,
    },
    /// The node's status.
    Status,
    /// The node's counters.
    Stats,
    /// A digest of every session the node holds, to compare replicas
    /// (costs a pass over the store; answered by backups too).
    Digest,
}

/// A node's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Created.
    Created {
        /// Its version (1).
        version: u64,
    },
    /// The session.
    Loaded {
        /// Current version.
        version: u64,
        /// Full encoding.
        #[serde(with = "serde_bytes")]
        tree: Vec<u8>,
    },
    /// Committed.
    Committed {
        /// The new version.
        version: u64,
        /// When the commit was merged with commits made since its base, the
        /// fields those changed, as a delta that brings the writer's copy up
        /// to `version`.
        #[serde(with = "serde_bytes")]
        refresh: Vec<u8>,
    },
    /// Done (delete, touch).
    Done,
    /// Status.
    Status(Status),
    /// Counters.
    Stats(crate::node::Stats),
    /// The digest of the sessions held.
    Digest(u64),
    /// Refused; nothing changed.
    Error(ErrorReply),
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorReply {
    /// No such session (or it expired).
    NotFound,
    /// A session with this id exists.
    AlreadyExists,
    /// A field of the delta changed since its base version.
    Conflict {
        /// The current version.
        current: u64,
    },
    /// The base version is newer than the session.
    UnknownVersion {
        /// The current version.
        current: u64,
    },
    /// The session was made by a type with another schema.
    SchemaMismatch {
        /// The session's fingerprint.
        session: u64,
        /// The request's.
        request: u64,
    },
    /// This node is not the primary.
    NotPrimary {
        /// The primary it knows of.
        primary: Option<String>,
    },
    /// The write was applied on the primary but not acknowledged by enough
    /// backups in time; it may or may not survive a failover.
    NotDurable {
        /// Backups that acknowledged.
        acked: u8,
    },
    /// A size limit was exceeded.
    TooLarge(String),
    /// The request is malformed (delta or tree does not decode or apply).
    BadRequest(String),
}

/// One committed change, as replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A new session.
    Create {
        /// Id.
        id: SessionId,
        /// The short number commits refer to it by in this stream.
        slot: u64,
        /// Schema fingerprint.
        schema: u64,
        /// Ids of the fields a delta may patch.
        mutable: Vec<u16>,
        /// Idle TTL, milliseconds.
        ttl_ms: u64,
        /// Full encoding.
        #[serde(with = "serde_bytes")]
        tree: Vec<u8>,
    },
    /// A delta.
    Commit {
        /// The session's slot (see [`Op::Create`]): a varint of a few bytes
        /// instead of the 16-byte id, on the hottest message of the stream.
        slot: u64,
        /// Version after the commit.
        version: u64,
        /// The client's commit id.
        commit_id: u64,
        /// The delta.
        #[serde(with = "serde_bytes")]
        delta: Vec<u8>,
    },
    /// A deletion by a client.
    Delete {
        /// Id.
        id: SessionId,
    },
    /// An expiry decided by the primary.
    Expire {
        /// Id.
        id: SessionId,
    },
}

/// One session in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// Id.
    pub id: SessionId,
    /// Its slot in the stream.
    pub slot: u64,
    /// Schema fingerprint.
    pub schema: u64,
    /// Ids of the fields a delta may patch.
    pub mutable: Vec<u16>,
    /// Version.
    pub version: u64,
    /// Idle TTL, milliseconds.
    pub ttl_ms: u64,
    /// Per top-level field, the version that last changed it.
    pub field_versions: Vec<(u16, u64)>,
    /// Recent commit ids and the versions they produced, oldest first.
    pub recent_commits: Vec<(u64, u64)>,
    /// Full encoding.
    #[serde(with = "serde_bytes")]
    pub tree: Vec<u8>,
}

/// A frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Server's first frame.
    Challenge {
        /// Protocol version.
        protocol: u16,
        /// Server nonce.
        nonce: [u8; 32],
    },
    /// Connecting side's proof of the secret.
    Hello {
        /// Protocol version.
        protocol: u16,
        /// Client nonce.
        nonce: [u8; 32],
        /// Who connects.
        role: PeerRole,
        /// HMAC-SHA256 proof.
        proof: [u8; 32],
    },
    /// Server's proof; the connection is open.
    Welcome {
        /// HMAC-SHA256 proof of the server.
        proof: [u8; 32],
        /// The server's status.
        status: Status,
    },
    /// The handshake failed; the connection closes.
    Refused {
        /// Why.
        reason: String,
    },
    /// A client request.
    Request {
        /// Chosen by the client; echoed in the response.
        id: u64,
        /// The request.
        request: Request,
    },
    /// A response.
    Response {
        /// The request's id.
        id: u64,
        /// The response.
        response: Response,
    },
    /// Backup to primary: resume the stream after `offset` of `repl_id`.
    Sync {
        /// Sender's epoch.
        epoch: u64,
        /// Stream it holds.
        repl_id: u64,
        /// Last offset it holds.
        offset: u64,
    },
    /// Primary to backup: partial resync; entries after the backup's offset
    /// follow.
    Continue {
        /// Primary's epoch.
        epoch: u64,
        /// The stream's id from now on.
        repl_id: u64,
    },
    /// Primary to backup: a snapshot at `offset` follows.
    FullResync {
        /// Primary's epoch.
        epoch: u64,
        /// The stream's id.
        repl_id: u64,
        /// The offset the snapshot is at.
        offset: u64,
    },
    /// Part of a snapshot.
    Snapshot(Vec<SnapshotEntry>),
    /// End of a snapshot.
    SnapshotEnd,
    /// One change of the stream.
    Entry {
        /// Its offset.
        offset: u64,
        /// The change.
        op: Op,
    },
    /// Backup to primary: everything up to `offset` is applied.
    Ack {
        /// Sender's epoch.
        epoch: u64,
        /// Last applied offset.
        offset: u64,
    },
    /// Primary to backup, on idle links: still alive.
    Ping {
        /// Primary's epoch.
        epoch: u64,
        /// Primary's last offset.
        offset: u64,
    },
    /// A candidate asks for a vote.
    Vote {
        /// The epoch it wants to lead.
        epoch: u64,
        /// Its stream.
        repl_id: u64,
        /// Its last offset.
        offset: u64,
        /// Its address.
        candidate: String,
    },
    /// The answer to a vote.
    VoteReply {
        /// The voter's epoch after the vote.
        epoch: u64,
        /// Whether it voted for the candidate.
        granted: bool,
    },
    /// A node refuses a replication message from a lower epoch.
    StaleEpoch {
        /// The refusing node's status.
        status: Status,
    },
}
