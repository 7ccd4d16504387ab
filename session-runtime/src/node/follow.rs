//! The follower task: while this node is not primary, find the primary,
//! resynchronise with it, apply its stream; when it falls silent, stand for
//! election.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::Shared;
use crate::id::random_u64;
use crate::net::message::{Message, PeerRole, Role, Status};
use crate::net::{Connection, NetError};
use crate::replication::{quorum, EpochCheck};

pub(crate) async fn run(shared: Arc<Shared>) {
    let cfg = &shared.config;
    while !shared.stopping() {
        if shared.core().role == Role::Primary {
            tokio::select! {
                _ = shared.stopped() => return,
                _ = shared.role_changed.notified() => {}
                _ = tokio::time::sleep(cfg.heartbeat) => {}
            }
            continue;
        }
        if let Some((conn, status)) = find_primary(&shared).await {
            match follow(&shared, conn, &status).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::info!(primary = %status.node, error = %e, "link to primary ended")
                }
            }
            let mut core = shared.core();
            if core.role == Role::Backup {
                core.role = Role::Follower;
            }
        }
        if shared.stopping() {
            return;
        }
        let silent = shared.core().last_contact.elapsed();
        if silent >= cfg.failover_timeout {
            stand_for_election(&shared).await;
        } else {
            let wait = cfg.heartbeat.min(cfg.failover_timeout - silent);
            tokio::select! {
                _ = shared.stopped() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

async fn connect(shared: &Shared, peer: &str) -> Result<(Connection, Status), NetError> {
    let cfg = &shared.config;
    Connection::connect(
        peer,
        &cfg.secret,
        PeerRole::Node {
            addr: shared.me.clone(),
        },
        cfg.max_frame,
        cfg.io_timeout,
    )
    .await
}

/// Asks every peer for its status; returns a connection to the primary of
/// the highest epoch, if any. Adopts any higher epoch seen.
async fn find_primary(shared: &Shared) -> Option<(Connection, Status)> {
    let answers = join_all(shared.config.peers.iter().map(|p| connect(shared, p))).await;
    let mut best: Option<(Connection, Status)> = None;
    for (conn, status) in answers.into_iter().flatten() {
        if status.role == Role::Primary && best.as_ref().is_none_or(|(_, b)| status.epoch > b.epoch)
        {
            best = Some((conn, status));
        }
    }
    let (conn, status) = best?;
    if shared.core().term.epoch() > status.epoch {
        // A primary of an older epoch: it will step down when it notices.
        return None;
    }
    Some((conn, status))
}

/// Follows one primary until the link breaks or falls silent.
async fn follow(shared: &Shared, mut conn: Connection, primary: &Status) -> Result<(), NetError> {
    let cfg = &shared.config;
    let (epoch, repl_id, offset) = {
        let core = shared.core();
        (core.term.epoch(), core.log.id(), core.log.offset())
    };
    conn.send(&Message::Sync {
        epoch,
        repl_id,
        offset,
    })
    .await?;
    let link_epoch = match conn.read_within(cfg.io_timeout).await? {
        Message::Continue { epoch, repl_id } => {
            let mut core = shared.core();
            if core.term.observe(epoch) == EpochCheck::Stale {
                return Err(NetError::Protocol(format!(
                    "primary of stale epoch {epoch}"
                )));
            }
            core.log.follow(repl_id);
            core.stats.partial_resyncs += 1;
            become_backup(&mut core, primary);
            epoch
        }
        Message::FullResync {
            epoch,
            repl_id,
            offset,
        } => {
            let mut sessions = Vec::new();
            loop {
                match conn
                    .read_within(cfg.io_timeout.max(cfg.failover_timeout))
                    .await?
                {
                    Message::Snapshot(chunk) => sessions.extend(chunk),
                    Message::SnapshotEnd => break,
                    other => {
                        return Err(NetError::Protocol(format!(
                            "expected snapshot, got {}",
                            crate::net::connection::kind(&other)
                        )))
                    }
                }
            }
            {
                let mut core = shared.core();
                if core.term.observe(epoch) == EpochCheck::Stale {
                    return Err(NetError::Protocol(format!(
                        "primary of stale epoch {epoch}"
                    )));
                }
                let now = Instant::now();
                core.store.clear();
                for s in sessions {
                    core.store.restore(s, now).map_err(NetError::Protocol)?;
                }
                core.log.reset(repl_id, offset);
                core.stats.full_resyncs += 1;
                become_backup(&mut core, primary);
            }
            conn.send(&Message::Ack { epoch, offset }).await?;
            tracing::info!(primary = %primary.node, offset, "full resync done");
            epoch
        }
        Message::StaleEpoch { status } => {
            shared.core().term.observe(status.epoch);
            return Ok(());
        }
        other => {
            return Err(NetError::Protocol(format!(
                "expected resync, got {}",
                crate::net::connection::kind(&other)
            )))
        }
    };
    loop {
        let next = tokio::select! {
            _ = shared.stopped() => return Ok(()),
            r = tokio::time::timeout(cfg.failover_timeout, conn.read_raw()) => r,
        };
        let Ok(first) = next else {
            return Err(NetError::Timeout(cfg.failover_timeout));
        };
        let mut frame = first?;
        let mut ack = false;
        // Apply every frame already buffered (up to a bound, so that the
        // primary hears an acknowledgement now and then), then acknowledge
        // once. A frame is only read once it will be handled: one read and
        // dropped at the bound would leave a gap in the stream.
        let mut applied = 0;
        loop {
            let Some((raw, msg)) = frame else {
                return Ok(());
            };
            match handle(shared, link_epoch, raw, msg) {
                Ok(a) => ack |= a,
                Err(Stale(status)) => {
                    let _ = conn.send(&Message::StaleEpoch { status }).await;
                    return Err(NetError::Protocol("primary of a stale epoch".into()));
                }
                Err(Broken(e)) => return Err(e),
            }
            applied += 1;
            if applied == 1024 {
                break;
            }
            frame = match conn.read_ready() {
                Some(f) => f?,
                None => break,
            };
        }
        if ack {
            let offset = shared.core().log.offset();
            conn.send(&Message::Ack {
                epoch: link_epoch,
                offset,
            })
            .await?;
        }
    }
}

fn become_backup(core: &mut super::Core, primary: &Status) {
    core.role = Role::Backup;
    core.primary = Some(primary.node.clone());
    core.last_contact = Instant::now();
}

/// Why the stream from a primary stops.
enum Stop {
    /// The primary is of an older epoch: tell it, and leave.
    Stale(Status),
    /// The link is broken or the stream makes no sense.
    Broken(NetError),
}
use Stop::{Broken, Stale};

impl From<NetError> for Stop {
    fn from(e: NetError) -> Self {
        Broken(e)
    }
}

/// Applies one message of the stream. Returns whether to acknowledge.
fn handle(shared: &Shared, link_epoch: u64, raw: bytes::Bytes, msg: Message) -> Result<bool, Stop> {
    let mut core = shared.core();
    // Having voted in a newer epoch, this node no longer helps the old
    // primary make writes durable.
    if core.term.epoch() != link_epoch || core.role != Role::Backup {
        return Err(Broken(NetError::Protocol(
            "link belongs to an old epoch".into(),
        )));
    }
    match msg {
        Message::Entry { offset, op } => {
            core.log
                .check_next(offset)
                .map_err(|gap| Broken(NetError::Protocol(gap.to_string())))?;
            if let Err(e) = core.store.apply_op(&op, Instant::now()) {
                // This copy diverged: forget the stream so the next sync is full.
                let id = random_u64();
                core.log.reset(id, 0);
                return Err(Broken(NetError::Protocol(format!(
                    "replicated change does not apply: {e}"
                ))));
            }
            core.log.append(raw);
            core.last_contact = Instant::now();
            Ok(true)
        }
        Message::Ping { epoch, .. } => match core.term.observe(epoch) {
            EpochCheck::Stale => Err(Stale(core.status(&shared.me))),
            _ => {
                core.last_contact = Instant::now();
                Ok(true)
            }
        },
        other => Err(Broken(NetError::Protocol(format!(
            "primary sent {}",
            crate::net::connection::kind(&other)
        )))),
    }
}

/// Stands for the next epoch; becomes primary with a quorum of votes.
async fn stand_for_election(shared: &Shared) {
    let cfg = &shared.config;
    // Random delay, so that two candidates rarely split the vote.
    let jitter =
        Duration::from_millis(random_u64() % (cfg.failover_timeout.as_millis() as u64 / 4 + 1));
    tokio::select! {
        _ = shared.stopped() => return,
        _ = tokio::time::sleep(jitter) => {}
    }
    let (epoch, repl_id, offset) = {
        let mut core = shared.core();
        if core.role == Role::Primary || core.last_contact.elapsed() < cfg.failover_timeout {
            return;
        }
        let epoch = core.term.stand(&shared.me);
        (epoch, core.log.id(), core.log.offset())
    };
    let needed = quorum(cfg.peers.len() + 1);
    let mut votes = 1;
    if votes < needed {
        let ask = |peer: String| async move {
            let (mut conn, _) = connect(shared, &peer).await.ok()?;
            conn.send(&Message::Vote {
                epoch,
                repl_id,
                offset,
                candidate: shared.me.clone(),
            })
            .await
            .ok()?;
            match conn.read_within(cfg.io_timeout).await.ok()? {
                Message::VoteReply { epoch, granted } => Some((epoch, granted)),
                _ => None,
            }
        };
        let replies = join_all(cfg.peers.iter().cloned().map(ask)).await;
        let mut core = shared.core();
        for (their_epoch, granted) in replies.into_iter().flatten() {
            core.term.observe(their_epoch);
            votes += usize::from(granted);
        }
    }
    let mut core = shared.core();
    if core.term.epoch() == epoch && votes >= needed && core.role != Role::Primary {
        core.promote(&shared.me);
        drop(core);
        shared.role_changed.notify_waiters();
    } else {
        tracing::info!(epoch, votes, needed, "election lost");
        core.last_contact = Instant::now();
    }
}
