//! The accept loop and the requests of clients and peers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{link, Durable, Shared};
use crate::net::connection::{encode, kind, Writer};
use crate::net::message::{Durability, ErrorReply, Message, Op, PeerRole, Request, Response, Role};
use crate::net::{Connection, NetError};

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let permit = tokio::select! {
            _ = shared.stopped() => return,
            p = shared.connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = shared.stopped() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = handle(&shared, stream).await {
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

async fn handle(shared: &Arc<Shared>, stream: TcpStream) -> Result<(), NetError> {
    let mut conn = Connection::new(stream, shared.config.max_frame);
    let status = shared.core().status(&shared.me);
    let role = match conn
        .accept(
            &shared.config.secret,
            status,
            shared.config.schema,
            shared.config.io_timeout,
        )
        .await
    {
        Ok(role) => role,
        Err(e) => {
            shared.core().stats.rejected_connections += 1;
            return Err(e);
        }
    };
    let result = match role {
        PeerRole::Client { .. } => serve_client(shared, conn).await,
        PeerRole::Node { addr } => serve_node(shared, conn, addr).await,
    };
    if matches!(
        result,
        Err(NetError::Decode(_) | NetError::FrameTooLarge { .. } | NetError::Protocol(_))
    ) {
        shared.core().stats.rejected_connections += 1;
    }
    result
}

/// Serves one application server: requests are read and answered as they
/// come; `Sync` writes are answered when acknowledged, possibly out of
/// order (responses carry the request id).
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
                if respond(shared, id, request, &out).await.is_err() {
                    break Ok(());
                }
            }
            Ok(Some(other)) => {
                break Err(NetError::Protocol(format!("client sent {}", kind(&other))))
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
            // More responses are due (the other writes one acknowledgement
            // from a backup made durable, the other requests of one read)
            // and are usually queued a few polls apart: let them, so that
            // one write carries them all. A lone response is not delayed.
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

async fn respond(
    shared: &Arc<Shared>,
    id: u64,
    request: Request,
    out: &mpsc::Sender<Bytes>,
) -> Result<(), ()> {
    let send = move |response: Response| encode(&Message::Response { id, response });
    match execute(shared, request) {
        (response, None) => out.send(send(response)).await.map_err(|_| ()),
        (response, Some((offset, token, rx))) => {
            let shared = shared.clone();
            let out = out.clone();
            tokio::spawn(async move {
                let outcome = tokio::time::timeout(shared.config.sync_timeout, rx).await;
                let response = match outcome {
                    Ok(Ok(Ok(()))) => response,
                    _ => {
                        let acked = shared.core().give_up(token, offset);
                        Response::Error(ErrorReply::NotDurable { acked })
                    }
                };
                let _ = out.send(send(response)).await;
            });
            Ok(())
        }
    }
}

type Pending = (u64, u64, tokio::sync::oneshot::Receiver<super::AckResult>);

/// Runs a request against the core. Returns the response, and for a write
/// that must wait for backups, what to wait on.
fn execute(shared: &Shared, request: Request) -> (Response, Option<Pending>) {
    let now = Instant::now();
    let mut core = shared.core();
    if let Request::Status = request {
        return (Response::Status(core.status(&shared.me)), None);
    }
    if let Request::Stats = request {
        return (Response::Stats(core.stats()), None);
    }
    if let Request::Digest = request {
        return (Response::Digest(core.store.digest()), None);
    }
    if core.role != Role::Primary {
        return (Response::Error(core.not_primary()), None);
    }
    // A session idle past its TTL is gone whether or not the expiry sweep
    // ran since (as in MemoryStore and Redis): expire it now, replicated as
    // the sweep does, or this access would find it and restart its clock.
    if let Request::Load { id, .. }
    | Request::Commit { id, .. }
    | Request::Delete { id, .. }
    | Request::Touch { id } = &request
    {
        if core.store.is_expired(id, now) {
            core.expire(id);
        }
    }
    let durability = |d: Option<Durability>| {
        let d = shared.durability(d);
        match d {
            Durability::Sync(n) if usize::from(n) > shared.config.peers.len() => {
                Err(ErrorReply::BadRequest(format!(
                    "Sync({n}) needs {n} backups; this set has {}",
                    shared.config.peers.len()
                )))
            }
            d => Ok(d),
        }
    };
    let result = match request {
        Request::Create {
            id,
            schema,
            mutable,
            ttl_ms,
            tree,
            durability: d,
        } => durability(d).and_then(|d| {
            let slot = core
                .store
                .create(id, schema, &mutable, ttl_ms, &tree, now)?;
            let size = tree.len();
            let offset = core.replicate(
                Op::Create {
                    id,
                    slot,
                    schema,
                    mutable,
                    ttl_ms,
                    tree,
                },
                size,
            );
            Ok((Response::Created { version: 1 }, offset, d))
        }),
        Request::Load { id, schema } => core
            .store
            .load(&id, schema, now)
            .map(|(version, tree)| (Response::Loaded { version, tree }, 0, Durability::Async)),
        Request::Commit {
            id,
            schema,
            base,
            commit_id,
            delta,
            durability: d,
        } => durability(d).and_then(|d| {
            let c = core
                .store
                .commit(&id, schema, base, commit_id, &delta, now)?;
            let offset = if c.replayed {
                core.log.offset()
            } else {
                let size = core.store.session_bytes(&id).unwrap_or(0);
                core.replicate(
                    Op::Commit {
                        slot: c.slot,
                        version: c.version,
                        commit_id,
                        delta,
                    },
                    size,
                )
            };
            Ok((
                Response::Committed {
                    version: c.version,
                    refresh: c.refresh,
                },
                offset,
                d,
            ))
        }),
        Request::Delete { id, durability: d } => durability(d).and_then(|d| {
            core.store.delete(&id)?;
            let offset = core.replicate(Op::Delete { id }, 0);
            Ok((Response::Done, offset, d))
        }),
        Request::Touch { id } => core
            .store
            .touch(&id, now)
            .map(|()| (Response::Done, 0, Durability::Async)),
        // Answered before the role check; kept here so the match is total.
        Request::Status | Request::Stats | Request::Digest => Err(ErrorReply::BadRequest(
            "status requests are answered above".into(),
        )),
    };
    match result {
        Err(e) => (Response::Error(e), None),
        Ok((response, offset, d)) => match core.durable(offset, d) {
            Durable::Now => (response, None),
            Durable::Wait { token, rx } => (response, Some((offset, token, rx))),
        },
    }
}

/// Serves another node: a backup linking up, or a candidate asking for a
/// vote.
async fn serve_node(
    shared: &Arc<Shared>,
    mut conn: Connection,
    addr: String,
) -> Result<(), NetError> {
    let Some(first) = conn.read().await? else {
        return Ok(());
    };
    match first {
        Message::Sync {
            epoch,
            repl_id,
            offset,
        } => link::serve_backup(shared, conn, addr, epoch, repl_id, offset).await,
        Message::Vote {
            epoch,
            repl_id: _,
            offset,
            candidate,
        } => {
            let (granted, epoch_now) = {
                let mut core = shared.core();
                let alive = core.primary_alive(shared.config.failover_timeout);
                let up_to_date = offset >= core.log.offset();
                let granted = core.term.vote(epoch, &candidate, up_to_date, alive);
                if granted {
                    // Give the candidate time to win before standing ourselves.
                    core.last_contact = Instant::now();
                    if core.role == Role::Backup {
                        core.role = Role::Follower;
                    }
                }
                (granted, core.term.epoch())
            };
            tracing::info!(%candidate, epoch, granted, "vote");
            conn.send(&Message::VoteReply {
                epoch: epoch_now,
                granted,
            })
            .await
        }
        other => Err(NetError::Protocol(format!(
            "node {addr} sent {}",
            kind(&other)
        ))),
    }
}
