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
//!  node:   Peer{rpc} -->        <-- PeerReply{rpc}     (one at a time)
//! ```
//!
//! `rpc` is one of openraft's messages (append entries, vote, a snapshot
//! chunk) or its answer, encoded by the node's `raft` module: clients never
//! decode it. Log entries carry an [`Op`].

use serde::{Deserialize, Serialize};

use crate::id::SessionId;

/// Version of this protocol; peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 2;

/// What a node is doing in its replica set (a Raft group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The leader: the primary, which accepts writes and serves reads.
    Leader,
    /// A voting backup.
    Follower,
    /// A non-voting backup.
    Learner,
    /// Standing for election.
    Candidate,
    /// Stopping, or stopped after a storage failure.
    Shutdown,
}

impl Role {
    /// The lowercase name used in `session-node stats`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Learner => "learner",
            Role::Candidate => "candidate",
            Role::Shutdown => "shutdown",
        }
    }
}

/// A node's view of its replica set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node's id.
    pub id: u64,
    /// This node's address, as advertised.
    pub node: String,
    /// Its role.
    pub role: Role,
    /// Its Raft term.
    pub term: u64,
    /// The leader it knows of: its id and address.
    pub leader: Option<(u64, String)>,
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
    /// Another node of the set (or an operator's admin command), by its
    /// node id.
    Node {
        /// Its id.
        id: u64,
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
        /// Random id making a retried create idempotent.
        commit_id: u64,
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
    },
    /// Delete a session.
    Delete {
        /// Which.
        id: SessionId,
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
    /// Every session the node holds as `(id, version, encoding)`, sorted by
    /// id, to compare replicas in full (tests and operators; answered by
    /// backups too; costs a copy of the store).
    Dump,
    /// Admin (node connections only): add a non-voting member.
    AddLearner {
        /// Its node id.
        id: u64,
        /// Its address.
        addr: String,
    },
    /// Admin (node connections only): make these ids the voters; members
    /// not listed become learners, or leave when `remove` is set.
    ChangeVoters {
        /// The voters.
        voters: Vec<u64>,
        /// Whether members that are not voters leave the set.
        remove: bool,
    },
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
    Stats(super::stats::Stats),
    /// The digest of the sessions held.
    Digest(u64),
    /// Every session held, sorted by id.
    Dump(Vec<(SessionId, u64, serde_bytes::ByteBuf)>),
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
    /// This node is not the leader (or lost its leadership while the
    /// request was pending: a write may still be committed by the next
    /// leader, so it is retried there with the same commit id).
    NotLeader {
        /// The leader it knows of, by address.
        leader: Option<String>,
    },
    /// The replica set cannot serve the request now (no quorum, the node
    /// is stopping, a storage failure).
    Unavailable(String),
    /// Only a node may send this request.
    Forbidden(String),
    /// A size limit was exceeded.
    TooLarge(String),
    /// The request is malformed (delta or tree does not decode or apply).
    BadRequest(String),
}

/// Which session a replicated commit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// By its slot: a varint of a few bytes instead of the 16-byte id, on
    /// the hottest entry of the log. Slots are never reused, and a slot's
    /// schema never changes, so the leader checked the schema already.
    Slot(u64),
    /// By id, with the writer's schema (a session the leader has not
    /// applied yet, which is rare).
    Id {
        /// The session.
        id: SessionId,
        /// The writer's schema fingerprint.
        schema: u64,
    },
}

/// One change of the replicated log. Every replica applies it with the
/// same rules (versions, field-level merge, idempotent commit ids, limits),
/// so every replica reaches the same state and answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A new session; it takes the next slot.
    Create {
        /// Id.
        id: SessionId,
        /// Schema fingerprint.
        schema: u64,
        /// Ids of the fields a delta may patch.
        mutable: Vec<u16>,
        /// Idle TTL, milliseconds; 0 for the node's default.
        ttl_ms: u64,
        /// Full encoding.
        #[serde(with = "serde_bytes")]
        tree: Vec<u8>,
        /// The client's id for this create (a retry is recognised).
        commit_id: u64,
    },
    /// A delta of the modified attributes, made against `base`.
    Commit {
        /// The session.
        target: Target,
        /// The version the delta was made against.
        base: u64,
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
    /// An expiry decided by the leader: applies only if the session is
    /// still at `version` (a commit that came first keeps it alive).
    Expire {
        /// Id.
        id: SessionId,
        /// The version the leader saw idle.
        version: u64,
    },
}

/// What applying an [`Op`] answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// A session was created (or a retried create was recognised).
    Created,
    /// A commit was applied (or a retry recognised).
    Committed {
        /// The new version.
        version: u64,
        /// Fields others changed since the commit's base (a delta).
        #[serde(with = "serde_bytes")]
        refresh: Vec<u8>,
    },
    /// A delete or an expiry removed the session.
    Removed,
    /// Nothing to do (an expiry that a commit overtook, a Raft-internal
    /// entry).
    Nothing,
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
    /// Node to node: one openraft request, encoded by the node.
    Peer {
        /// The request.
        #[serde(with = "serde_bytes")]
        rpc: Vec<u8>,
    },
    /// Node to node: the answer to a [`Message::Peer`].
    PeerReply {
        /// The answer.
        #[serde(with = "serde_bytes")]
        rpc: Vec<u8>,
    },
}
