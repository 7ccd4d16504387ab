//! The primary's side of the link to one backup.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Shared;
use crate::id::random_u64;
use crate::net::message::{Message, Role, SnapshotEntry};
use crate::net::{Connection, NetError};
use crate::replication::{EpochCheck, Resume};

/// Most changes written to a backup before one flush.
const BATCH: usize = 256;
/// Target size of one snapshot chunk.
const CHUNK_BYTES: usize = 1 << 20;
/// Bytes of a `Snapshot` frame besides its entries (tag, entry count).
const CHUNK_OVERHEAD: usize = 16;

/// An upper bound of the encoded size of a snapshot entry.
fn entry_bound(s: &SnapshotEntry) -> usize {
    // The tree and the id; nine bytes at most for each integer and length
    // (slot, schema, version, TTL, and the lengths of the tree and the three
    // lists); three per mutable id, twelve per field version, eighteen per
    // remembered commit.
    s.tree.len()
        + 16
        + 9 * 9
        + 3 * s.mutable.len()
        + 12 * s.field_versions.len()
        + 18 * s.recent_commits.len()
}

enum Plan {
    Partial(Vec<bytes::Bytes>),
    Full(Vec<SnapshotEntry>, u64),
}

/// Removes the link from the core when the task ends, however it ends.
struct LinkGuard<'a> {
    shared: &'a Shared,
    link: u64,
}

impl Drop for LinkGuard<'_> {
    fn drop(&mut self) {
        self.shared.core().drop_link(self.link);
    }
}

/// Brings a backup up to date (partially from the backlog, or with a full
/// snapshot), then streams changes to it and counts its acknowledgements.
pub(crate) async fn serve_backup(
    shared: &Arc<Shared>,
    mut conn: Connection,
    addr: String,
    epoch: u64,
    repl_id: u64,
    offset: u64,
) -> Result<(), NetError> {
    let link = random_u64();
    let (tx, mut rx) = mpsc::channel(shared.config.backup_queue);
    let refused = {
        let mut core = shared.core();
        if core.term.observe(epoch) == EpochCheck::Newer && core.role == Role::Primary {
            core.step_down(None);
            shared.role_changed.notify_waiters();
        }
        (core.role != Role::Primary).then(|| core.status(&shared.me))
    };
    if let Some(status) = refused {
        return conn.send(&Message::StaleEpoch { status }).await;
    }
    let (epoch, stream_id, plan) = {
        let mut core = shared.core();
        if core.role != Role::Primary {
            return Ok(());
        }
        let plan = match core.log.resume(repl_id, offset) {
            Resume::Partial(frames) => {
                core.stats.partial_resyncs_served += 1;
                core.acks.add_link(link, offset);
                Plan::Partial(frames)
            }
            Resume::Full => {
                core.stats.full_resyncs_served += 1;
                core.acks.add_link(link, 0);
                Plan::Full(core.store.snapshot(), core.log.offset())
            }
        };
        core.links.insert(link, tx);
        (core.term.epoch(), core.log.id(), plan)
    };
    let _guard = LinkGuard { shared, link };
    match plan {
        Plan::Partial(frames) => {
            tracing::info!(backup = %addr, missed = frames.len(), "partial resync");
            conn.feed_encoded(crate::net::connection::encode(&Message::Continue {
                epoch,
                repl_id: stream_id,
            }))
            .await?;
            for f in frames {
                conn.feed_encoded(f).await?;
            }
            conn.flush().await?;
        }
        Plan::Full(sessions, at) => {
            tracing::info!(backup = %addr, sessions = sessions.len(), offset = at, "full resync");
            conn.send(&Message::FullResync {
                epoch,
                repl_id: stream_id,
                offset: at,
            })
            .await?;
            // A chunk must fit in a frame, which may be smaller than a chunk.
            let limit = CHUNK_BYTES.min(shared.config.max_frame.saturating_sub(CHUNK_OVERHEAD));
            let mut chunk = Vec::new();
            let mut bytes = 0;
            for s in sessions {
                let size = entry_bound(&s);
                if !chunk.is_empty() && bytes + size > limit {
                    conn.send(&Message::Snapshot(std::mem::take(&mut chunk)))
                        .await?;
                    bytes = 0;
                }
                bytes += size;
                chunk.push(s);
            }
            if !chunk.is_empty() {
                conn.send(&Message::Snapshot(chunk)).await?;
            }
            conn.send(&Message::SnapshotEnd).await?;
        }
    }
    let mut heartbeat = tokio::time::interval(shared.config.heartbeat);
    loop {
        tokio::select! {
            _ = shared.stopped() => return Ok(()),
            frame = rx.recv() => {
                // `None`: this primary dropped the link (overflow, step-down).
                let Some(frame) = frame else { return Ok(()) };
                conn.feed_encoded(frame).await?;
                let mut fed = 1;
                while fed < BATCH {
                    match rx.try_recv() {
                        Ok(f) => conn.feed_encoded(f).await?,
                        Err(_) => break,
                    }
                    fed += 1;
                }
                if fed > 1 && fed < BATCH {
                    // Changes are coming in a burst (requests read
                    // together, from several clients): the rest are queued
                    // a few polls apart, so let them, and one write (and
                    // one acknowledgement from the backup) covers them all.
                    // A lone change is not delayed.
                    tokio::task::yield_now().await;
                    while fed < BATCH {
                        match rx.try_recv() {
                            Ok(f) => conn.feed_encoded(f).await?,
                            Err(_) => break,
                        }
                        fed += 1;
                    }
                }
                conn.flush().await?;
            }
            msg = conn.read() => match msg? {
                None => return Ok(()),
                Some(Message::Ack { epoch, offset }) => {
                    let mut core = shared.core();
                    if core.term.observe(epoch) == EpochCheck::Newer {
                        core.step_down(None);
                        shared.role_changed.notify_waiters();
                        return Ok(());
                    }
                    core.ack(link, offset);
                }
                Some(Message::StaleEpoch { status }) => {
                    let mut core = shared.core();
                    if core.term.observe(status.epoch) == EpochCheck::Newer {
                        core.step_down(status.primary);
                        shared.role_changed.notify_waiters();
                    }
                    return Ok(());
                }
                Some(other) => {
                    return Err(NetError::Protocol(format!("backup sent {}", crate::net::connection::kind(&other))))
                }
            },
            _ = heartbeat.tick() => {
                let (epoch, offset) = {
                    let core = shared.core();
                    (core.term.epoch(), core.log.offset())
                };
                conn.send(&Message::Ping { epoch, offset }).await?;
            }
        }
    }
}
