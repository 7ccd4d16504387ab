//! The application server's side: create, load, commit, delete and touch
//! sessions on replica sets of store nodes.
//!
//! A [`Client`] routes each session to one replica set by a consistent hash
//! of its id, finds that set's leader, and follows it across elections:
//! every call retries on a lost connection or a node that is no longer
//! leader until [`ClientConfig::failover_timeout`] has passed; no call waits
//! longer. Retries are safe: a create and a commit carry a random id the
//! replicas remember, so one whose answer was lost is not applied twice.
//!
//! A call that gives up fails with [`ClientError::Unavailable`] when the
//! request certainly was not applied, and with [`ClientError::Uncertain`]
//! when a write was sent and its outcome is unknown (it may be committed
//! later): never with success it cannot vouch for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::error::ApplyError;
use crate::id::{random_u64, SessionId};
use crate::net::connection::encode;
use crate::net::message::{ErrorReply, Message, PeerRole, Request, Response, Role};
use crate::net::Stats;
use crate::net::{Connection, NetError};
use crate::session::Session;
use crate::tracked::Tracked;

/// How a [`Client`] reaches its replica sets.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Replica sets, each given by the addresses of its nodes.
    pub sets: Vec<Vec<String>>,
    /// The shared cluster secret.
    pub secret: Vec<u8>,
    /// How long one attempt of a request may take (above the nodes'
    /// `request_timeout`, so that their answer is awaited).
    pub request_timeout: Duration,
    /// How long a call keeps retrying to reach a leader.
    pub failover_timeout: Duration,
    /// Time allowed to connect and authenticate.
    pub connect_timeout: Duration,
    /// Largest frame sent or accepted.
    pub max_frame: usize,
    /// Idle TTL of created sessions; `None`: the nodes' default.
    pub ttl: Option<Duration>,
    /// Schema fingerprint declared at the handshake (see
    /// [`ClientConfig::schema`]).
    pub schema: Option<u64>,
}

impl ClientConfig {
    /// One replica set made of `nodes`.
    pub fn new(
        nodes: impl IntoIterator<Item = impl Into<String>>,
        secret: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            sets: vec![nodes.into_iter().map(Into::into).collect()],
            secret: secret.into(),
            request_timeout: Duration::from_secs(5),
            failover_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
            max_frame: 16 << 20,
            ttl: None,
            schema: None,
        }
    }

    /// Declares the session type this client stores, so that nodes serving
    /// another one refuse it at the handshake instead of at its first
    /// request.
    pub fn schema<T: Session>(mut self) -> Self {
        self.schema = Some(T::schema().fingerprint());
        self
    }

    /// Adds a replica set.
    pub fn with_set(mut self, nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.sets.push(nodes.into_iter().map(Into::into).collect());
        self
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No such session (never created, deleted, or expired).
    #[error("session not found")]
    NotFound,
    /// A field this commit changes was changed by another commit since the
    /// version the session was loaded at. Nothing was applied and the
    /// tracked changes are kept: reload and redo them.
    #[error("conflict: the session is at version {current}")]
    Conflict {
        /// The session's current version.
        current: u64,
    },
    /// The session was created by a type with another schema.
    #[error("schema mismatch: session has fingerprint {session:016x}, this type {client:016x}")]
    SchemaMismatch {
        /// The session's fingerprint.
        session: u64,
        /// This client's.
        client: u64,
    },
    /// No leader answered in time; the request was not applied.
    #[error("replica set unavailable: {0}")]
    Unavailable(String),
    /// A write was sent but no answer came in time: it may or may not be
    /// applied (it may still be committed). Retrying it, or loading the
    /// session, tells which.
    #[error("outcome unknown: {0}")]
    Uncertain(String),
    /// The node refused the request (size limit, malformed delta).
    #[error("refused: {0}")]
    Refused(String),
    /// The stored session does not decode as this type.
    #[error("stored session does not decode: {0}")]
    Decode(#[from] ApplyError),
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A connection to one replica set's leader, shared by all callers.
///
/// Hands out cheap clones; every call has a bounded time (see the module
/// documentation).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    sets: Vec<SetConn>,
    /// Source of commit ids: a counter from a random start, mixed.
    commit_ids: AtomicU64,
}

#[derive(Debug)]
struct SetConn {
    nodes: Vec<String>,
    link: Mutex<Option<Link>>,
}

type Reply = oneshot::Sender<Response>;

/// A multiplexed connection: requests go in through the channel, a task
/// writes them and matches responses by id.
#[derive(Debug, Clone)]
struct Link {
    calls: mpsc::Sender<(Request, Reply)>,
}

/// Jump consistent hash (Lamping and Veach): moves only 1/n of the keys
/// when a set is added.
fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

impl Client {
    /// Checks the configuration and finds the leader of every set.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.sets.is_empty() || config.sets.iter().any(Vec::is_empty) {
            return Err(ClientError::Config(
                "every replica set needs at least one node".into(),
            ));
        }
        let sets = config
            .sets
            .iter()
            .map(|nodes| SetConn {
                nodes: nodes.clone(),
                link: Mutex::new(None),
            })
            .collect();
        let client = Client {
            inner: Arc::new(Inner {
                config,
                sets,
                commit_ids: AtomicU64::new(random_u64()),
            }),
        };
        let deadline = Instant::now() + client.inner.config.failover_timeout;
        for set in &client.inner.sets {
            client.link(set, deadline).await?;
        }
        Ok(client)
    }

    /// A fresh commit id (never 0). Drawing one from the operating system
    /// per commit cost a system call on the hot path; instead, a counter
    /// started at a random value goes through the SplitMix64 finaliser, a
    /// bijection, so the ids of one client differ before the low bit is
    /// forced to 1, and any two ids (of one client or of two) are equal
    /// only by chance, as likely as for ids drawn from the OS.
    fn commit_id(&self) -> u64 {
        let mut z = self
            .inner
            .commit_ids
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) | 1
    }

    fn set(&self, id: &SessionId) -> &SetConn {
        &self.inner.sets[jump_hash(id.route_key(), self.inner.sets.len())]
    }

    /// Stores a new session; returns its id (128 random bits).
    pub async fn create<T: Session>(&self, value: &T) -> Result<SessionId, ClientError> {
        let id = SessionId::random();
        let schema = T::schema();
        let request = Request::Create {
            id,
            schema: schema.fingerprint(),
            mutable: schema.mutable_ids().to_vec(),
            ttl_ms: self
                .inner
                .config
                .ttl
                .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            tree: value.to_bytes(),
            commit_id: self.commit_id(),
        };
        match self.call(self.set(&id), request).await? {
            Response::Created { .. } => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// Stores a new session and returns it tracked, at version 1.
    pub async fn create_tracked<T: Session>(
        &self,
        value: T,
    ) -> Result<(SessionId, Tracked<T>), ClientError> {
        let id = self.create(&value).await?;
        Ok((id, Tracked::with_version(value, 1)))
    }

    /// Reads a session, tracked at its current version.
    pub async fn load<T: Session>(&self, id: SessionId) -> Result<Tracked<T>, ClientError> {
        let request = Request::Load {
            id,
            schema: T::schema().fingerprint(),
        };
        match self.call(self.set(&id), request).await? {
            Response::Loaded { version, tree } => {
                Ok(Tracked::with_version(T::from_bytes(&tree)?, version))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Ships the tracked changes, made against the tracked version. Sends
    /// nothing when nothing changed. On success the changes become the
    /// benchmark and the version advances; on error they are kept.
    pub async fn commit<T: Session>(
        &self,
        id: SessionId,
        tracked: &mut Tracked<T>,
    ) -> Result<u64, ClientError> {
        let Some(delta) = tracked.begin_commit() else {
            return Ok(tracked.version());
        };
        let request = Request::Commit {
            id,
            schema: T::schema().fingerprint(),
            base: tracked.version(),
            commit_id: self.commit_id(),
            delta: delta.to_bytes(),
        };
        match self.call(self.set(&id), request).await? {
            Response::Committed { version, refresh } => {
                tracked.finish_commit(version, crate::backend::refresh(&refresh)?.as_ref())?;
                Ok(version)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a session.
    pub async fn delete(&self, id: SessionId) -> Result<(), ClientError> {
        let request = Request::Delete { id };
        match self.call(self.set(&id), request).await {
            Ok(Response::Done) => Ok(()),
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(e),
        }
    }

    /// Marks a session as accessed, restarting its idle TTL.
    pub async fn touch(&self, id: SessionId) -> Result<(), ClientError> {
        match self.call(self.set(&id), Request::Touch { id }).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The counters of each set's leader.
    pub async fn stats(&self) -> Result<Vec<Stats>, ClientError> {
        let mut out = Vec::new();
        for set in &self.inner.sets {
            match self.call(set, Request::Stats).await? {
                Response::Stats(s) => out.push(s),
                other => return Err(unexpected(other)),
            }
        }
        Ok(out)
    }

    /// Sends a request to a set's leader, retrying across elections until
    /// the failover timeout.
    async fn call(&self, set: &SetConn, request: Request) -> Result<Response, ClientError> {
        let cfg = &self.inner.config;
        let deadline = Instant::now() + cfg.failover_timeout;
        let write = matches!(
            request,
            Request::Create { .. } | Request::Commit { .. } | Request::Delete { .. }
        );
        // Whether an attempt of this write may have been applied.
        let mut uncertain = false;
        let mut last_error: String;
        loop {
            let link = match self.link(set, deadline).await {
                Ok(link) => link,
                Err(ClientError::Unavailable(e)) if uncertain => {
                    return Err(ClientError::Uncertain(e))
                }
                Err(e) => return Err(e),
            };
            let (tx, rx) = oneshot::channel();
            let sent = link.calls.send((request.clone(), tx)).await.is_ok();
            let answer = if sent {
                tokio::time::timeout(cfg.request_timeout, rx)
                    .await
                    .map(Result::ok)
            } else {
                Ok(None)
            };
            match answer {
                Ok(Some(Response::Error(ErrorReply::NotLeader { .. }))) => {
                    // Refused before proposing, or leadership lost while
                    // the write was pending (the next leader may commit it).
                    last_error = "node is not the leader".into();
                    uncertain |= write;
                    *set.link.lock().await = None;
                }
                Ok(Some(Response::Error(ErrorReply::Unavailable(reason)))) => {
                    last_error = reason;
                    uncertain |= write;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(Some(Response::Error(ErrorReply::NotFound)))
                    if uncertain && matches!(request, Request::Delete { .. }) =>
                {
                    // An earlier attempt may have deleted it; either way the
                    // leader applied this delete to the committed state, in
                    // which the session does not exist.
                    return Ok(Response::Done);
                }
                Ok(Some(Response::Error(e))) => return Err(refusal(e)),
                Ok(Some(response)) => return Ok(response),
                Ok(None) => {
                    last_error = "connection lost".into();
                    uncertain |= write && sent;
                    *set.link.lock().await = None;
                }
                Err(_) => {
                    last_error = format!("no answer within {:?}", cfg.request_timeout);
                    uncertain |= write;
                    *set.link.lock().await = None;
                }
            }
            if Instant::now() >= deadline {
                return Err(if uncertain {
                    ClientError::Uncertain(last_error)
                } else {
                    ClientError::Unavailable(last_error)
                });
            }
        }
    }

    /// The link to a set's leader, connecting (and finding the leader) if
    /// there is none.
    async fn link(&self, set: &SetConn, deadline: Instant) -> Result<Link, ClientError> {
        let mut slot = set.link.lock().await;
        if let Some(link) = slot.as_ref().filter(|l| !l.calls.is_closed()) {
            return Ok(link.clone());
        }
        let mut last_error: String;
        loop {
            match self.find_leader(&set.nodes).await {
                Ok(conn) => {
                    let link = spawn_link(conn);
                    *slot = Some(link.clone());
                    return Ok(link);
                }
                Err(e) => last_error = e,
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Unavailable(last_error));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Connects to every node and keeps the connection to the leader of
    /// the highest term; a node that names a leader outside the configured
    /// list (a member added at runtime) is followed there.
    async fn find_leader(&self, nodes: &[String]) -> Result<Connection, String> {
        let cfg = &self.inner.config;
        let role = PeerRole::Client { schema: cfg.schema };
        let connect = |addr: String| {
            let role = role.clone();
            async move {
                Connection::connect(&addr, &cfg.secret, role, cfg.max_frame, cfg.connect_timeout)
                    .await
            }
        };
        let mut best: Option<(Connection, u64)> = None;
        let mut hint: Option<String> = None;
        let mut errors = Vec::new();
        let tries = nodes.iter().map(|n| connect(n.clone()));
        for (node, result) in nodes
            .iter()
            .zip(futures_util::future::join_all(tries).await)
        {
            match result {
                Ok((conn, status)) if status.role == Role::Leader => {
                    if best.as_ref().is_none_or(|(_, t)| status.term > *t) {
                        best = Some((conn, status.term));
                    }
                }
                Ok((_, status)) => {
                    if let Some((_, addr)) = status.leader {
                        if !nodes.contains(&addr) {
                            hint = Some(addr);
                        }
                    }
                }
                Err(NetError::Refused(reason)) => errors.push(format!("{node}: refused: {reason}")),
                Err(e) => errors.push(format!("{node}: {e}")),
            }
        }
        if best.is_none() {
            if let Some(addr) = hint {
                if let Ok((conn, status)) = connect(addr).await {
                    if status.role == Role::Leader {
                        best = Some((conn, status.term));
                    }
                }
            }
        }
        best.map(|(c, _)| c).ok_or_else(|| {
            if errors.is_empty() {
                "no node is leader".to_string()
            } else {
                errors.join("; ")
            }
        })
    }
}

/// Most requests written at once by a link.
const MAX_BATCH: usize = 256;

/// Moves queued calls into `batch`, up to [`MAX_BATCH`].
fn take_calls(rx: &mut mpsc::Receiver<(Request, Reply)>, batch: &mut Vec<(Request, Reply)>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(call) => batch.push(call),
            Err(_) => break,
        }
    }
}

/// Starts the task that owns a connection to a primary.
fn spawn_link(conn: Connection) -> Link {
    let (calls, mut rx) = mpsc::channel::<(Request, Reply)>(1024);
    tokio::spawn(async move {
        let (mut writer, mut reader) = conn.split();
        let mut pending: HashMap<u64, Reply> = HashMap::new();
        let mut next = 0u64;
        // Callers handed a response since the last write.
        let mut woken = 0usize;
        loop {
            tokio::select! {
                call = rx.recv() => {
                    let Some(first) = call else { return };
                    let mut batch = vec![first];
                    take_calls(&mut rx, &mut batch);
                    if batch.len() < woken.min(MAX_BATCH) {
                        // The callers that responses woke since the last
                        // write send their next requests a few polls apart:
                        // let them, so that one write carries them all
                        // rather than one write each. (A lone caller is
                        // not kept waiting.)
                        tokio::task::yield_now().await;
                        take_calls(&mut rx, &mut batch);
                    }
                    woken = 0;
                    for (request, reply) in batch {
                        next += 1;
                        pending.insert(next, reply);
                        if writer.feed(encode(&Message::Request { id: next, request })).await.is_err() {
                            return;
                        }
                    }
                    if writer.flush().await.is_err() {
                        return;
                    }
                }
                msg = reader.read() => match msg {
                    Ok(Some(Message::Response { id, response })) => {
                        if let Some(reply) = pending.remove(&id) {
                            woken += usize::from(reply.send(response).is_ok());
                        }
                    }
                    // Anything else (or an error) ends the link; dropping the
                    // pending replies tells their callers to retry.
                    _ => return,
                },
            }
        }
    });
    Link { calls }
}

pub(crate) fn refusal(e: ErrorReply) -> ClientError {
    match e {
        ErrorReply::NotFound => ClientError::NotFound,
        ErrorReply::Conflict { current } => ClientError::Conflict { current },
        ErrorReply::SchemaMismatch { session, request } => ClientError::SchemaMismatch {
            session,
            client: request,
        },
        ErrorReply::NotLeader { leader } => {
            ClientError::Unavailable(format!("not the leader (leader: {leader:?})"))
        }
        ErrorReply::Unavailable(m) => ClientError::Unavailable(m),
        ErrorReply::Forbidden(m) => ClientError::Refused(m),
        ErrorReply::AlreadyExists => ClientError::Refused("a session with this id exists".into()),
        ErrorReply::UnknownVersion { current } => ClientError::Refused(format!(
            "base version is newer than the session ({current})"
        )),
        ErrorReply::TooLarge(m) | ErrorReply::BadRequest(m) => ClientError::Refused(m),
    }
}

fn unexpected(r: Response) -> ClientError {
    ClientError::Refused(format!("unexpected response {r:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_is_stable_and_moves_few_keys() {
        let keys: Vec<u64> = (0..10_000u64)
            .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let three: Vec<usize> = keys.iter().map(|k| jump_hash(*k, 3)).collect();
        let four: Vec<usize> = keys.iter().map(|k| jump_hash(*k, 4)).collect();
        assert!(three.iter().all(|b| *b < 3));
        let moved = three.iter().zip(&four).filter(|(a, b)| a != b).count();
        assert!(moved < 3_500, "{moved} of 10000 moved");
        assert!(
            four.iter().zip(&three).all(|(f, t)| f == t || *f == 3),
            "keys only move to the new set"
        );
    }
}
