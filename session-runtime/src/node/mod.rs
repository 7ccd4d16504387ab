//! A store node: one member of a replica set run by openraft.
//!
//! The leader is the primary: it proposes each client write as a log entry
//! (an [`Op`](crate::net::message::Op) carrying the delta of the modified
//! attributes) and answers once a majority has it and it is applied; it
//! answers reads after confirming its leadership. Followers are backups;
//! learners are backups that never vote or lead.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use session_runtime::node::{Node, NodeConfig};
//!
//! let node = Node::start(
//!     NodeConfig::new(1, "127.0.0.1:7001", "/var/lib/session/1", "cluster secret")
//!         .peers([(2, "127.0.0.1:7002"), (3, "127.0.0.1:7003")]),
//! )
//! .await?;
//! println!("serving on {}", node.addr());
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Tasks
//!
//! - openraft's own tasks (elections, replication, log and state machine);
//! - the accept loop (`serve.rs`), one task per connection, bounded by a
//!   semaphore; a connection's errors end that connection only;
//! - the first start of a set (`bootstrap.rs`): the voter with the lowest id
//!   initialises the group, once;
//! - housekeeping (`housekeeping.rs`): the leader's expiry sweep.

mod bootstrap;
mod config;
mod housekeeping;
mod serve;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::ServerState;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub use config::{parse_member, NodeConfig};

use crate::net::message::{Role, Status};
use crate::net::Stats;
use crate::raft::{LogStore, Network, NetworkCounters, Raft, Replica, StateMachine};

/// Room for a message's envelope around a session in one frame.
pub const FRAME_OVERHEAD: usize = 4096;

/// Starts nodes.
#[derive(Debug)]
pub struct Node;

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

impl Node {
    /// Opens the data directory, binds the listener and starts the node.
    pub async fn start(config: NodeConfig) -> std::io::Result<NodeHandle> {
        // A session must fit in one frame with its envelope, or it could be
        // stored but never loaded nor replicated.
        if config
            .limits
            .max_session_bytes
            .saturating_add(FRAME_OVERHEAD)
            > config.max_frame
        {
            return Err(invalid(format!(
                "max_session_bytes ({}) plus {FRAME_OVERHEAD} bytes of framing must fit in max_frame ({})",
                config.limits.max_session_bytes, config.max_frame
            )));
        }
        if config
            .peers
            .iter()
            .chain(&config.learners)
            .any(|(id, _)| *id == config.id)
        {
            return Err(invalid(format!(
                "node id {} is listed as its own peer",
                config.id
            )));
        }
        let listener = TcpListener::bind(&config.listen).await?;
        let addr = listener.local_addr()?;
        let me = config.advertise.clone().unwrap_or_else(|| addr.to_string());

        let log = LogStore::open(&config.data_dir.join("raft"), config.fsync)?;
        let sm = StateMachine::open(
            &config.data_dir.join("snapshots"),
            config.limits,
            config.default_ttl,
        )?;
        let replica = sm.replica();
        let network = Network::new(
            config.id,
            config.peers.iter().chain(&config.learners).cloned(),
            config.secret.clone(),
            config.max_frame,
            config.io_timeout,
        );
        let counters = network.counters();
        let heartbeat = config.heartbeat.as_millis().max(1) as u64;
        let election = (config.election_timeout.as_millis() as u64).max(heartbeat * 3);
        let raft_config = openraft::Config {
            cluster_name: "session".into(),
            heartbeat_interval: heartbeat,
            election_timeout_min: election,
            election_timeout_max: election * 2,
            install_snapshot_timeout: config.io_timeout.as_millis().max(200) as u64,
            max_payload_entries: 512,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.log_keep,
            // A chunk and its envelope fit in a frame.
            snapshot_max_chunk_size: (config.max_frame as u64 / 2).clamp(4 << 10, 1 << 20),
            ..Default::default()
        }
        .validate()
        .map_err(|e| invalid(format!("raft configuration: {e}")))?;
        let raft = Raft::new(config.id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| std::io::Error::other(format!("starting raft: {e}")))?;

        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| std::io::Error::other(format!("raft stopped at start-up: {e}")))?;
        let secrets = crate::net::connection::Secrets {
            cluster: config.secret.clone(),
            client: config.client_secret.clone(),
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            me,
            connections: Arc::new(Semaphore::new(config.max_connections)),
            config,
            raft,
            replica,
            counters,
            rejected: AtomicU64::new(0),
            secrets,
            // Until the bootstrap task knows better, a node without Raft
            // state may be one that lost its data: it does not vote.
            recovering: std::sync::atomic::AtomicBool::new(!initialized),
            catch_up_to: AtomicU64::new(u64::MAX),
            shutdown: shutdown_rx,
        });
        let tasks = vec![
            tokio::spawn(serve::accept_loop(shared.clone(), listener)),
            tokio::spawn(bootstrap::run(shared.clone())),
            tokio::spawn(housekeeping::run(shared.clone())),
        ];
        tracing::info!(id = shared.config.id, node = %shared.me, "listening");
        Ok(NodeHandle {
            addr,
            shared,
            shutdown: shutdown_tx,
            tasks,
        })
    }
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl NodeHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its state and counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Its view of the set.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Its Raft handle (membership changes, metrics).
    pub fn raft(&self) -> &Raft {
        &self.shared.raft
    }

    /// A digest of every session this node holds (a pass over the store).
    pub fn digest(&self) -> u64 {
        self.shared.replica.lock().store.digest()
    }

    /// Every session this node holds as `(id, version, encoding)`, sorted.
    pub fn dump(&self) -> Vec<(crate::SessionId, u64, Vec<u8>)> {
        self.shared.replica.lock().store.dump()
    }

    /// A session's version and encoding, as this node holds it.
    pub fn peek(&self, id: &crate::SessionId) -> Option<(u64, Vec<u8>)> {
        self.shared.replica.lock().store.peek(id)
    }

    /// Stops accepting, closes every connection, stops Raft (its log is
    /// on disk) and waits for the tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.shared.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
    }
}

/// What every task of a node shares.
pub(crate) struct Shared {
    pub(crate) me: String,
    pub(crate) config: NodeConfig,
    pub(crate) raft: Raft,
    pub(crate) replica: Arc<Replica>,
    pub(crate) counters: Arc<NetworkCounters>,
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) rejected: AtomicU64,
    pub(crate) secrets: crate::net::connection::Secrets,
    /// This node lost its data (it has no Raft state but its set exists):
    /// it refuses to vote until it has caught up with a leader, so that an
    /// election cannot count the vote of a node that forgot entries it
    /// acknowledged before.
    pub(crate) recovering: std::sync::atomic::AtomicBool,
    /// The commit index of the first leader heard from while recovering.
    pub(crate) catch_up_to: AtomicU64,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.config.id)
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

fn role(state: ServerState) -> Role {
    match state {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Learner => Role::Learner,
        ServerState::Candidate => Role::Candidate,
        ServerState::Shutdown => Role::Shutdown,
    }
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves when the node shuts down.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The address of a member, from the membership in force.
    pub(crate) fn addr_of(&self, id: u64) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    pub(crate) fn leader(&self) -> Option<(u64, String)> {
        let leader = self.raft.metrics().borrow().current_leader?;
        let addr = self.addr_of(leader)?;
        Some((leader, addr))
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.config.id)
    }

    pub(crate) fn status(&self) -> Status {
        let (state, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.state, m.current_term)
        };
        Status {
            id: self.config.id,
            node: self.me.clone(),
            role: role(state),
            term,
            leader: self.leader(),
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let m = self.raft.metrics().borrow().clone();
        let (sessions, session_bytes) = {
            let s = self.replica.lock();
            (s.store.len() as u64, s.store.bytes() as u64)
        };
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let learners: Vec<u64> = membership.learner_ids().collect();
        let r = &self.replica;
        Stats {
            id: self.config.id,
            node: self.me.clone(),
            role: role(m.state),
            term: m.current_term,
            leader: m.current_leader,
            last_applied: m.last_applied.map_or(0, |l| l.index),
            last_log: m.last_log_index.unwrap_or(0),
            voters,
            learners,
            sessions,
            session_bytes,
            ops_applied: r.ops_applied.load(Ordering::Relaxed),
            entries_shipped: self.counters.entries_shipped.load(Ordering::Relaxed),
            bytes_shipped: self.counters.bytes_shipped.load(Ordering::Relaxed),
            snapshots_built: r.snapshots_built.load(Ordering::Relaxed),
            snapshots_installed: r.snapshots_installed.load(Ordering::Relaxed),
            expired: r.expired.load(Ordering::Relaxed),
            rejected_connections: self.rejected.load(Ordering::Relaxed),
        }
    }
}
