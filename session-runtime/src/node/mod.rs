//! A store node: sessions in memory, replicated from a primary to backups.
//!
//! One node of a replica set is the primary: it applies clients' writes,
//! appends each committed change to its [`ReplicationLog`] and ships it to
//! every backup. Backups apply the stream, acknowledge offsets, and elect a
//! new primary when theirs falls silent.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use session_runtime::node::{Node, NodeConfig};
//!
//! let node = Node::start(NodeConfig::new("127.0.0.1:7000", "cluster secret")
//!     .peers(["127.0.0.1:7001"])).await?;
//! println!("serving on {}", node.addr());
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Tasks
//!
//! - the accept loop (`serve.rs`), one task per connection, bounded by a
//!   semaphore; a connection's errors end that connection only;
//! - per backup, a link task on the primary (`link.rs`) that streams
//!   changes from a bounded queue; a backup whose queue overflows is dropped
//!   and resynchronises;
//! - the follower task (`follow.rs`): while not primary, finds the primary,
//!   resynchronises, applies the stream, and stands for election when the
//!   primary is lost;
//! - housekeeping (`housekeeping.rs`): expiry, and on a primary, checking
//!   that no peer leads a newer epoch.
//!
//! All of them share one `Core` behind a mutex that is never held across
//! an `await`; the replication decisions are made by the socket-free types
//! of [`crate::replication`].

mod config;
mod follow;
mod housekeeping;
mod link;
mod serve;
mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore};
use tokio::task::JoinHandle;

pub use config::NodeConfig;
pub use stats::{BackupLag, Stats};

use crate::net::connection::encode;
use crate::net::message::{Durability, ErrorReply, Message, Op, Role, Status};
use crate::replication::{Acks, ReplicationLog, Term};
use crate::store::Store;

/// Room for a message's envelope around a session in one frame.
pub const FRAME_OVERHEAD: usize = 4096;

/// Starts nodes.
#[derive(Debug)]
pub struct Node;

impl Node {
    /// Binds the listener and starts the node's tasks.
    pub async fn start(config: NodeConfig) -> std::io::Result<NodeHandle> {
        // A session must fit in one frame with its envelope, or it could be
        // stored but never loaded nor replicated.
        if config
            .limits
            .max_session_bytes
            .saturating_add(FRAME_OVERHEAD)
            > config.max_frame
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "max_session_bytes ({}) plus {FRAME_OVERHEAD} bytes of framing must fit in max_frame ({})",
                    config.limits.max_session_bytes, config.max_frame
                ),
            ));
        }
        let listener = TcpListener::bind(&config.listen).await?;
        let addr = listener.local_addr()?;
        let me = config.advertise.clone().unwrap_or_else(|| addr.to_string());
        let bootstrap = config
            .bootstrap
            .unwrap_or_else(|| config.peers.iter().all(|p| me.as_str() < p.as_str()));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let now = Instant::now();
        let core = Core {
            role: Role::Follower,
            primary: None,
            term: Term::new(),
            log: ReplicationLog::new(config.backlog_bytes),
            acks: Acks::new(),
            store: Store::new(config.limits, config.default_ttl),
            links: HashMap::new(),
            waiters: HashMap::new(),
            // A bootstrap node may stand for election as soon as it finds
            // no primary; the others first wait a failover timeout.
            last_contact: if bootstrap {
                now.checked_sub(config.failover_timeout).unwrap_or(now)
            } else {
                now
            },
            next_token: 1,
            stats: Stats::new(me.clone()),
        };
        let shared = Arc::new(Shared {
            me,
            connections: Arc::new(Semaphore::new(config.max_connections)),
            config,
            core: Mutex::new(core),
            role_changed: Notify::new(),
            shutdown: shutdown_rx,
        });
        let tasks = vec![
            tokio::spawn(serve::accept_loop(shared.clone(), listener)),
            tokio::spawn(follow::run(shared.clone())),
            tokio::spawn(housekeeping::run(shared.clone())),
        ];
        tracing::info!(node = %shared.me, "listening");
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

    /// Its counters.
    pub fn stats(&self) -> Stats {
        self.shared.core().stats()
    }

    /// Its view of the set.
    pub fn status(&self) -> Status {
        self.shared.core().status(&self.shared.me)
    }

    /// A digest of every session this node holds (a pass over the store):
    /// a primary and an up-to-date backup have the same.
    pub fn digest(&self) -> u64 {
        self.shared.core().store.digest()
    }

    /// A session's version and encoding, as this node holds it.
    pub fn peek(&self, id: &crate::SessionId) -> Option<(u64, Vec<u8>)> {
        self.shared.core().store.peek(id)
    }

    /// Stops accepting, closes every connection and waits for the tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.shared.role_changed.notify_waiters();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// What every task of a node shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) me: String,
    pub(crate) config: NodeConfig,
    pub(crate) core: Mutex<Core>,
    pub(crate) connections: Arc<Semaphore>,
    /// Woken when the node steps down or is promoted.
    pub(crate) role_changed: Notify,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock would be a bug; the data is still
        // consistent enough to keep serving other sessions.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves when the node shuts down.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The durability of a write that did not choose one.
    pub(crate) fn durability(&self, asked: Option<Durability>) -> Durability {
        asked
            .or(self.config.default_durability)
            .unwrap_or(if self.config.peers.is_empty() {
                Durability::Async
            } else {
                Durability::Sync(1)
            })
    }
}

/// Outcome of waiting for acknowledgements.
pub(crate) type AckResult = Result<(), u8>;

/// The state of a node.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) role: Role,
    pub(crate) primary: Option<String>,
    pub(crate) term: Term,
    pub(crate) log: ReplicationLog,
    pub(crate) acks: Acks,
    pub(crate) store: Store,
    /// Outbound queues of the backups linked to this primary.
    pub(crate) links: HashMap<u64, mpsc::Sender<Bytes>>,
    /// `Sync` writers waiting for acknowledgements, by token.
    pub(crate) waiters: HashMap<u64, oneshot::Sender<AckResult>>,
    /// Last message from a live primary (or, on a primary, last promotion).
    pub(crate) last_contact: Instant,
    pub(crate) next_token: u64,
    pub(crate) stats: Stats,
}

/// What the writer of a change waits for.
#[derive(Debug)]
pub(crate) enum Durable {
    /// Nothing: answer now.
    Now,
    /// This many backups must acknowledge; the receiver says when.
    Wait {
        token: u64,
        rx: oneshot::Receiver<AckResult>,
    },
}

impl Core {
    pub(crate) fn status(&self, me: &str) -> Status {
        Status {
            node: me.to_string(),
            role: self.role,
            epoch: self.term.epoch(),
            primary: self.primary.clone(),
            repl_id: self.log.id(),
            offset: self.log.offset(),
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.role = self.role;
        s.epoch = self.term.epoch();
        s.offset = self.log.offset();
        s.sessions = self.store.len() as u64;
        s.session_bytes = self.store.bytes() as u64;
        s.backups = self
            .acks
            .offsets()
            .map(|(_, acked)| BackupLag {
                acked,
                lag: self.log.offset().saturating_sub(acked),
            })
            .collect();
        s
    }

    pub(crate) fn not_primary(&self) -> ErrorReply {
        ErrorReply::NotPrimary {
            primary: self.primary.clone(),
        }
    }

    /// Appends a committed change to the stream and queues it for every
    /// backup; a backup whose queue is full is dropped (it will
    /// resynchronise). `session_bytes` is what shipping the whole session
    /// would have cost.
    pub(crate) fn replicate(&mut self, op: Op, session_bytes: usize) -> u64 {
        let offset = self.log.offset() + 1;
        let frame = encode(&Message::Entry { offset, op });
        self.log.append(frame.clone());
        self.stats.commits += 1;
        let mut overflowed = Vec::new();
        for (link, tx) in &self.links {
            if tx.try_send(frame.clone()).is_ok() {
                self.stats.deltas_shipped += 1;
                self.stats.bytes_shipped += frame.len() as u64;
                self.stats.full_state_bytes += session_bytes as u64;
            } else {
                overflowed.push(*link);
            }
        }
        for link in overflowed {
            tracing::warn!(
                link,
                "backup fell too far behind; dropping it to resynchronise"
            );
            self.drop_link(link);
        }
        offset
    }

    /// Expires a session: a change decided by the primary and replicated,
    /// so every copy drops it at the same offset.
    pub(crate) fn expire(&mut self, id: &crate::SessionId) {
        if self.store.delete(id).is_ok() {
            self.replicate(Op::Expire { id: *id }, 0);
            self.stats.expired += 1;
        }
    }

    pub(crate) fn drop_link(&mut self, link: u64) {
        self.links.remove(&link);
        self.acks.remove_link(link);
    }

    /// Registers a writer that needs `needed` backups to apply `offset`.
    pub(crate) fn durable(&mut self, offset: u64, durability: Durability) -> Durable {
        let needed = match durability {
            Durability::Async | Durability::Sync(0) => return Durable::Now,
            Durability::Sync(n) => n,
        };
        let token = self.next_token;
        self.next_token += 1;
        if self.acks.wait(offset, needed, token) {
            return Durable::Now;
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.insert(token, tx);
        Durable::Wait { token, rx }
    }

    /// A backup acknowledged `offset`: wakes the writers it completes.
    pub(crate) fn ack(&mut self, link: u64, offset: u64) {
        for token in self.acks.ack(link, offset) {
            if let Some(tx) = self.waiters.remove(&token) {
                let _ = tx.send(Ok(()));
            }
        }
    }

    /// Gives up on a writer; returns how many backups had acknowledged.
    pub(crate) fn give_up(&mut self, token: u64, offset: u64) -> u8 {
        self.acks.cancel(token);
        self.waiters.remove(&token);
        self.acks.count(offset)
    }

    /// Leaves the primary role (a newer epoch exists): drops every backup
    /// link and tells waiting writers their writes are not durable. Writes
    /// acknowledged `Async` that no backup received are lost when this node
    /// resynchronises from the new primary.
    pub(crate) fn step_down(&mut self, primary: Option<String>) {
        if self.role == Role::Primary {
            tracing::warn!(
                epoch = self.term.epoch(),
                "stepping down: a newer epoch exists"
            );
        }
        self.role = Role::Follower;
        self.primary = primary;
        self.links.clear();
        for token in self.acks.drain() {
            if let Some(tx) = self.waiters.remove(&token) {
                let _ = tx.send(Err(0));
            }
        }
        self.last_contact = Instant::now();
    }

    /// Becomes primary of the current epoch.
    pub(crate) fn promote(&mut self, me: &str) {
        self.role = Role::Primary;
        self.primary = Some(me.to_string());
        self.log.promote();
        let now = Instant::now();
        self.store.touch_all(now);
        self.last_contact = now;
        self.stats.failovers += 1;
        tracing::info!(
            epoch = self.term.epoch(),
            offset = self.log.offset(),
            "promoted to primary"
        );
    }

    /// Whether a primary was heard from within `timeout`.
    pub(crate) fn primary_alive(&self, timeout: Duration) -> bool {
        self.role == Role::Primary
            || (self.role == Role::Backup && self.last_contact.elapsed() < timeout)
    }
}
