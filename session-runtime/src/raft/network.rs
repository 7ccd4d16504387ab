//! openraft's RPCs over our authenticated TCP connections.
//!
//! Each member keeps one connection per peer it sends to (openraft sends
//! one request at a time per peer), opened lazily with the node role and
//! the cluster secret, and dropped on the first error or timeout so the
//! next request reconnects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::{PeerAnswer, PeerRpc, TypeConfig};
use crate::codec;
use crate::net::connection::encode;
use crate::net::message::{Message, PeerRole};
use crate::net::{Connection, NetError};

/// Counters of what this node shipped to its peers.
#[derive(Debug, Default)]
pub struct NetworkCounters {
    /// Log entries sent.
    pub entries_shipped: AtomicU64,
    /// Bytes of the append-entries frames that carried entries.
    pub bytes_shipped: AtomicU64,
}

/// Opens connections to peers (openraft's network factory). A peer is
/// reached at the address this node was configured with for it, else at
/// its address in the membership.
#[derive(Debug, Clone)]
pub struct Network {
    me: u64,
    /// Addresses this node reaches peers at, where they differ from the
    /// addresses in the membership (another network path, a proxy).
    routes: Arc<std::collections::HashMap<u64, String>>,
    secret: Arc<Vec<u8>>,
    max_frame: usize,
    connect_timeout: Duration,
    counters: Arc<NetworkCounters>,
}

impl Network {
    /// The network of node `me`.
    pub fn new(
        me: u64,
        routes: impl IntoIterator<Item = (u64, String)>,
        secret: Vec<u8>,
        max_frame: usize,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            me,
            routes: Arc::new(routes.into_iter().collect()),
            secret: Arc::new(secret),
            max_frame,
            connect_timeout,
            counters: Arc::default(),
        }
    }

    /// Its counters.
    pub fn counters(&self) -> Arc<NetworkCounters> {
        self.counters.clone()
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: self
                .routes
                .get(&target)
                .cloned()
                .unwrap_or_else(|| node.addr.clone()),
            net: self.clone(),
            conn: None,
        }
    }
}

/// The connection to one peer.
#[derive(Debug)]
pub struct PeerClient {
    target: u64,
    addr: String,
    net: Network,
    conn: Option<Connection>,
}

/// Why a call failed, before it is told to openraft.
enum Failure {
    /// The request does not fit in a frame: openraft sends fewer entries.
    TooLarge(u64),
    /// Could not connect: openraft backs off.
    Unreachable(NetError),
    /// The connection failed or timed out: retried at once.
    Network(NetError),
}

impl Failure {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<u64, BasicNode, E> {
        match self {
            Failure::TooLarge(hint) => {
                RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint))
            }
            Failure::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            Failure::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

impl PeerClient {
    async fn call(&mut self, rpc: &PeerRpc, ttl: Duration) -> Result<PeerAnswer, Failure> {
        if self.conn.is_none() {
            let role = PeerRole::Node { id: self.net.me };
            let limit = self.net.connect_timeout.min(ttl);
            match Connection::connect(
                &self.addr,
                &self.net.secret,
                role,
                self.net.max_frame,
                limit,
            )
            .await
            {
                Ok((conn, _)) => self.conn = Some(conn),
                Err(e) => return Err(Failure::Unreachable(e)),
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::Unreachable(NetError::Closed));
        };
        let frame = encode(&Message::Peer {
            rpc: codec::encode(rpc),
        });
        if let PeerRpc::AppendEntries(r) = rpc {
            if frame.len() > self.net.max_frame && r.entries.len() > 1 {
                // A batch of entries too large for one frame (each entry fits:
                // sessions are bounded below the frame size).
                return Err(Failure::TooLarge((r.entries.len() as u64 / 2).max(1)));
            }
            if !r.entries.is_empty() {
                let c = &self.net.counters;
                c.entries_shipped
                    .fetch_add(r.entries.len() as u64, Ordering::Relaxed);
                c.bytes_shipped
                    .fetch_add(frame.len() as u64 + 4, Ordering::Relaxed);
            }
        }
        let exchange = async {
            conn.send_encoded(frame).await?;
            match conn.read().await? {
                Some(Message::PeerReply { rpc }) => Ok(codec::decode::<PeerAnswer>(&rpc)?),
                Some(other) => Err(NetError::Protocol(format!(
                    "peer answered {}",
                    crate::net::connection::kind(&other)
                ))),
                None => Err(NetError::Closed),
            }
        };
        let result = match tokio::time::timeout(ttl, exchange).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => e,
            Err(_) => NetError::Timeout(ttl),
        };
        self.conn = None;
        Err(Failure::Network(result))
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<u64, BasicNode, E> {
        RPCError::Network(NetworkError::new(&NetError::Protocol(format!(
            "node {} answered another request",
            self.target
        ))))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .call(&PeerRpc::AppendEntries(rpc), option.hard_ttl())
            .await
            .map_err(Failure::into_rpc)?
        {
            PeerAnswer::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self
            .call(&PeerRpc::InstallSnapshot(rpc), option.hard_ttl())
            .await
            .map_err(Failure::into_rpc)?
        {
            PeerAnswer::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .call(&PeerRpc::Vote(rpc), option.hard_ttl())
            .await
            .map_err(Failure::into_rpc)?
        {
            PeerAnswer::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    fn backoff(&self) -> Backoff {
        // A restarted peer is back within a second or two; look again soon.
        Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }
}
