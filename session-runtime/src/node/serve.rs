//! The accept loop and the requests of clients and peers.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::Shared;
use crate::codec;
use crate::net::connection::{encode, kind, Writer};
use crate::net::message::{Applied, ErrorReply, Message, Op, PeerRole, Request, Response, Target};
use crate::net::{Connection, NetError};
use crate::raft::{answer, PeerRpc};

/// Accepts connections. A connection first takes a place among the
/// handshakes in progress (a small budget of its own, so that idle or
/// half-open connections that never authenticate cannot keep peers or
/// clients out), then, once authenticated, a place among the served
/// connections. Without a place it is closed at once, not queued.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let pending = Arc::new(tokio::sync::Semaphore::new(shared.config.max_handshakes));
    loop {
        let accepted = tokio::select! {
            _ = shared.stopped() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(handshake) = pending.clone().try_acquire_owned() else {
                    shared.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "too many handshakes in progress; closing");
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let served = tokio::select! {
                        r = handle(&shared, stream, handshake) => r,
                        _ = shared.stopped() => Ok(()),
                    };
                    if let Err(e) = served {
                        match e {
                            NetError::Closed => {}
                            e => tracing::warn!(%peer, error = %e, "closing connection"),
                        }
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors, typically: back off briefly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

async fn handle(
    shared: &Arc<Shared>,
    stream: TcpStream,
    handshake: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), NetError> {
    let mut conn = Connection::new(stream, shared.config.max_frame);
    let limit = shared.config.io_timeout;
    // The whole handshake, not each read, is bounded.
    let accepted = tokio::time::timeout(
        limit,
        conn.accept(
            &shared.secrets,
            shared.status(),
            shared.config.schema,
            limit,
        ),
    )
    .await
    .unwrap_or(Err(NetError::Timeout(limit)));
    drop(handshake);
    let role = match accepted {
        Ok(role) => role,
        Err(e) => {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    let Ok(_served) = shared.connections.clone().try_acquire_owned() else {
        shared.rejected.fetch_add(1, Ordering::Relaxed);
        return Err(NetError::Refused(format!(
            "the node serves its limit of {} connections",
            shared.config.max_connections
        )));
    };
    let result = match role {
        PeerRole::Client { .. } => serve_client(shared, conn).await,
        PeerRole::Node { id } => serve_node(shared, conn, id).await,
    };
    if matches!(
        result,
        Err(NetError::Decode(_) | NetError::FrameTooLarge { .. } | NetError::Protocol(_))
    ) {
        shared.rejected.fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// Serves one application server: requests are read as they come and
/// answered when done, possibly out of order (responses carry the id).
async fn serve_client(shared: &Arc<Shared>, conn: Connection) -> Result<(), NetError> {
    let (writer, mut reader) = conn.split();
    let (out, rx) = mpsc::channel::<Bytes>(1024);
    // Requests read whose responses the writer has not taken yet.
    let unanswered = Arc::new(AtomicUsize::new(0));
    let writing = tokio::spawn(write_loop(writer, rx, unanswered.clone()));
    let result = loop {
        let msg = tokio::select! {
            _ = shared.stopped() => break Ok(()),
            m = reader.read() => m,
        };
        match msg {
            Ok(Some(Message::Request { id, request })) => {
                unanswered.fetch_add(1, Ordering::Relaxed);
                let send = move |response: Response| encode(&Message::Response { id, response });
                if let Some(response) = local(shared, &request, false) {
                    if out.send(send(response)).await.is_err() {
                        break Ok(());
                    }
                    continue;
                }
                let (shared, out) = (shared.clone(), out.clone());
                tokio::spawn(async move {
                    let response = execute(&shared, request).await;
                    let _ = out.send(send(response)).await;
                });
            }
            Ok(Some(other)) => {
                break Err(NetError::Protocol(format!(
                    "a client connection sent {}: node-to-node messages need a node's credentials",
                    kind(&other)
                )))
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    drop(out);
    let _ = writing.await;
    result
}

/// Writes responses, flushing when no more are queued.
async fn write_loop(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Bytes>,
    unanswered: Arc<AtomicUsize>,
) {
    while let Some(frame) = rx.recv().await {
        let mut taken = 1;
        if writer.feed(frame).await.is_err() {
            return;
        }
        while let Ok(frame) = rx.try_recv() {
            taken += 1;
            if writer.feed(frame).await.is_err() {
                return;
            }
        }
        if unanswered.fetch_sub(taken, Ordering::Relaxed) > taken {
            // More responses are due and are usually queued a few polls
            // apart: let them, so that one write carries them all. A lone
            // response is not delayed.
            tokio::task::yield_now().await;
            while let Ok(frame) = rx.try_recv() {
                unanswered.fetch_sub(1, Ordering::Relaxed);
                if writer.feed(frame).await.is_err() {
                    return;
                }
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}

/// Requests answered from this node's own state at once: status, counters,
/// the comparison of replicas. Admin requests are refused on client
/// connections. `None`: the request goes to the replica set.
fn local(shared: &Shared, request: &Request, node: bool) -> Option<Response> {
    Some(match request {
        Request::Status => Response::Status(shared.status()),
        Request::Stats => Response::Stats(shared.stats()),
        Request::Digest => Response::Digest(shared.replica.lock().store.digest()),
        Request::Dump => Response::Dump(
            shared
                .replica
                .lock()
                .store
                .dump()
                .into_iter()
                .map(|(id, v, tree)| (id, v, serde_bytes::ByteBuf::from(tree)))
                .collect(),
        ),
        Request::AddLearner { .. } | Request::ChangeVoters { .. } if !node => {
            Response::Error(ErrorReply::Forbidden(
                "membership changes need the cluster secret (a node connection)".into(),
            ))
        }
        _ => return None,
    })
}

fn not_leader(shared: &Shared) -> Response {
    Response::Error(ErrorReply::NotLeader {
        leader: shared.leader().map(|(_, addr)| addr),
    })
}

fn forward<E>(e: RaftError<u64, E>, leader: impl FnOnce(&E) -> Option<Option<String>>) -> ErrorReply
where
    E: std::error::Error,
{
    if let RaftError::APIError(api) = &e {
        if let Some(leader) = leader(api) {
            return ErrorReply::NotLeader { leader };
        }
    }
    ErrorReply::Unavailable(e.to_string())
}

/// Runs a request that needs the replica set, within the node's request
/// timeout. A write that times out may still be committed later: the
/// client retries it with the same commit id, which is never applied twice.
async fn execute(shared: &Arc<Shared>, request: Request) -> Response {
    let limit = shared.config.request_timeout;
    match tokio::time::timeout(limit, run(shared, request)).await {
        Ok(r) => r,
        Err(_) => Response::Error(ErrorReply::Unavailable(format!(
            "the replica set did not answer within {limit:?} (a write may still be committed)"
        ))),
    }
}

async fn run(shared: &Arc<Shared>, request: Request) -> Response {
    let now = Instant::now();
    match request {
        Request::Create {
            id,
            schema,
            mutable,
            ttl_ms,
            tree,
            commit_id,
        } => {
            if !shared.is_leader() {
                return not_leader(shared);
            }
            let max = shared.config.limits.max_session_bytes;
            if tree.len() > max {
                return Response::Error(ErrorReply::TooLarge(format!(
                    "session of {} bytes exceeds the {max}-byte limit",
                    tree.len()
                )));
            }
            write(
                shared,
                Op::Create {
                    id,
                    schema,
                    mutable,
                    ttl_ms,
                    tree,
                    commit_id,
                },
            )
            .await
        }
        Request::Commit {
            id,
            schema,
            base,
            commit_id,
            delta,
        } => {
            if !shared.is_leader() {
                return not_leader(shared);
            }
            let target = {
                let s = shared.replica.lock();
                if s.store.is_expired(&id, now) {
                    None
                } else {
                    Some(match s.store.slot_and_schema(&id) {
                        Some((slot, held)) if held == schema => Target::Slot(slot),
                        Some((_, held)) => {
                            return Response::Error(ErrorReply::SchemaMismatch {
                                session: held,
                                request: schema,
                            })
                        }
                        None => Target::Id { id, schema },
                    })
                }
            };
            let Some(target) = target else {
                return expire_now(shared, id).await;
            };
            write(
                shared,
                Op::Commit {
                    target,
                    base,
                    commit_id,
                    delta,
                },
            )
            .await
        }
        Request::Delete { id } => {
            if !shared.is_leader() {
                return not_leader(shared);
            }
            write(shared, Op::Delete { id }).await
        }
        Request::Load { id, schema } => {
            if let Err(e) = read_barrier(shared).await {
                return Response::Error(e);
            }
            let loaded = {
                let mut s = shared.replica.lock();
                if s.store.is_expired(&id, now) {
                    None
                } else {
                    Some(s.store.load(&id, schema, now))
                }
            };
            match loaded {
                None => expire_now(shared, id).await,
                Some(Ok((version, tree))) => Response::Loaded { version, tree },
                Some(Err(e)) => Response::Error(e),
            }
        }
        Request::Touch { id } => {
            if let Err(e) = read_barrier(shared).await {
                return Response::Error(e);
            }
            let touched = {
                let mut s = shared.replica.lock();
                if s.store.is_expired(&id, now) {
                    None
                } else {
                    Some(s.store.touch(&id, now))
                }
            };
            match touched {
                None => expire_now(shared, id).await,
                Some(Ok(())) => Response::Done,
                Some(Err(e)) => Response::Error(e),
            }
        }
        Request::AddLearner { id, addr } => {
            match shared
                .raft
                .add_learner(id, BasicNode::new(addr), false)
                .await
            {
                Ok(_) => Response::Done,
                Err(e) => Response::Error(forward(e, write_leader)),
            }
        }
        Request::ChangeVoters { voters, remove } => {
            let voters: BTreeSet<u64> = voters.into_iter().collect();
            match shared
                .raft
                .change_membership(ChangeMembers::ReplaceAllVoters(voters), !remove)
                .await
            {
                Ok(_) => Response::Done,
                Err(e) => Response::Error(forward(e, write_leader)),
            }
        }
        // Answered by `local` before `run` is called; answered the same
        // way if they ever get here.
        local_request @ (Request::Status | Request::Stats | Request::Digest | Request::Dump) => {
            local(shared, &local_request, true).unwrap_or(Response::Done)
        }
    }
}

fn write_leader(e: &ClientWriteError<u64, BasicNode>) -> Option<Option<String>> {
    match e {
        ClientWriteError::ForwardToLeader(f) => {
            Some(f.leader_node.as_ref().map(|n| n.addr.clone()))
        }
        ClientWriteError::ChangeMembershipError(_) => None,
    }
}

/// Proposes an op and answers with what applying it gave.
async fn write(shared: &Shared, op: Op) -> Response {
    match shared.raft.client_write(op).await {
        Ok(r) => match r.data {
            Ok(Applied::Created) => Response::Created { version: 1 },
            Ok(Applied::Committed { version, refresh }) => Response::Committed { version, refresh },
            Ok(Applied::Removed | Applied::Nothing) => Response::Done,
            Err(e) => Response::Error(e),
        },
        Err(e) => Response::Error(forward(e, write_leader)),
    }
}

/// A session idle past its TTL is gone whether or not the sweep ran: the
/// leader expires it now (replicated, as the sweep does) and answers
/// `NotFound`.
async fn expire_now(shared: &Shared, id: crate::SessionId) -> Response {
    let version = shared.replica.lock().store.version(&id);
    if let Some(version) = version {
        if let Response::Error(e @ (ErrorReply::NotLeader { .. } | ErrorReply::Unavailable(_))) =
            write(shared, Op::Expire { id, version }).await
        {
            return Response::Error(e);
        }
    }
    Response::Error(ErrorReply::NotFound)
}

/// Waits until this node is a leader that confirmed its leadership with a
/// quorum and applied everything committed before: what it reads next is
/// linearizable.
async fn read_barrier(shared: &Shared) -> Result<(), ErrorReply> {
    if !shared.is_leader() {
        return Err(ErrorReply::NotLeader {
            leader: shared.leader().map(|(_, a)| a),
        });
    }
    shared
        .raft
        .ensure_linearizable()
        .await
        .map(|_| ())
        .map_err(|e| {
            forward(e, |e| match e {
                CheckIsLeaderError::ForwardToLeader(f) => {
                    Some(f.leader_node.as_ref().map(|n| n.addr.clone()))
                }
                CheckIsLeaderError::QuorumNotEnough(_) => None,
            })
        })
}

/// Serves another member (openraft's RPCs, one at a time) or an operator's
/// admin command.
async fn serve_node(shared: &Arc<Shared>, mut conn: Connection, peer: u64) -> Result<(), NetError> {
    loop {
        let msg = tokio::select! {
            _ = shared.stopped() => return Ok(()),
            m = conn.read() => m?,
        };
        match msg {
            None => return Ok(()),
            Some(Message::Peer { rpc }) => {
                let rpc: PeerRpc = codec::decode(&rpc)?;
                let recovering = shared.recovering.load(Ordering::Relaxed);
                if recovering {
                    match &rpc {
                        PeerRpc::Vote(_) => {
                            tracing::info!(
                                candidate = peer,
                                "not voting: catching up after data loss"
                            );
                            return Ok(());
                        }
                        PeerRpc::AppendEntries(r) => {
                            let commit = r.leader_commit.map_or(0, |c| c.index);
                            let _ = shared.catch_up_to.compare_exchange(
                                u64::MAX,
                                commit,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                        }
                        PeerRpc::InstallSnapshot(_) => {}
                    }
                }
                let reply = answer(&shared.raft, rpc).await;
                if recovering {
                    let target = shared.catch_up_to.load(Ordering::Relaxed);
                    let applied = shared
                        .raft
                        .metrics()
                        .borrow()
                        .last_applied
                        .map_or(0, |l| l.index);
                    if target != u64::MAX && applied >= target {
                        shared.recovering.store(false, Ordering::Relaxed);
                        tracing::info!(applied, "caught up after data loss: voting again");
                    }
                }
                conn.send(&Message::PeerReply {
                    rpc: codec::encode(&reply),
                })
                .await?;
            }
            Some(Message::Request { id, request }) => {
                let response = match local(shared, &request, true) {
                    Some(r) => r,
                    None => execute(shared, request).await,
                };
                conn.send(&Message::Response { id, response }).await?;
            }
            Some(other) => {
                return Err(NetError::Protocol(format!(
                    "node {peer} sent {}",
                    kind(&other)
                )))
            }
        }
    }
}
