//! Periodic work of the leader: expiring idle sessions.
//!
//! Expiry is decided by the leader and replicated as an entry, so every
//! replica drops the session at the same log index. Last-access times live
//! on the leader only (reads are not replicated): a node that becomes
//! leader restarts every session's idle clock.

use std::sync::Arc;
use std::time::Instant;

use super::Shared;
use crate::net::message::Op;

/// Expiries proposed per sweep: a sweep never floods the log.
const MAX_EXPIRIES_PER_SWEEP: usize = 1024;

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut sweep = tokio::time::interval(shared.config.expiry_interval);
    let mut was_leader = false;
    loop {
        tokio::select! {
            _ = shared.stopped() => return,
            _ = sweep.tick() => {}
        }
        let leader = shared.is_leader();
        if leader && !was_leader {
            shared.replica.lock().store.touch_all(Instant::now());
        }
        was_leader = leader;
        if leader {
            expire(&shared).await;
        }
    }
}

async fn expire(shared: &Shared) {
    let now = Instant::now();
    let idle: Vec<_> = {
        let s = shared.replica.lock();
        s.store
            .expired(now)
            .into_iter()
            .take(MAX_EXPIRIES_PER_SWEEP)
            .filter_map(|id| s.store.version(&id).map(|v| (id, v)))
            .collect()
    };
    for (id, version) in idle {
        if let Err(e) = shared.raft.client_write(Op::Expire { id, version }).await {
            tracing::debug!(error = %e, "expiry not committed; the next sweep retries");
            return;
        }
    }
}
