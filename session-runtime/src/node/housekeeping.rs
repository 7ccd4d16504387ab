//! Periodic work: expiring idle sessions, and on a primary, making sure no
//! peer leads a newer epoch.

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;

use super::Shared;
use crate::net::message::{PeerRole, Role};
use crate::net::Connection;
use crate::replication::EpochCheck;

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut expiry = tokio::time::interval(shared.config.expiry_interval);
    let mut probe = tokio::time::interval(shared.config.failover_timeout);
    loop {
        tokio::select! {
            _ = shared.stopped() => return,
            _ = expiry.tick() => expire(&shared),
            _ = probe.tick() => check_peers(&shared).await,
        }
    }
}

/// Expiry is decided by the primary and replicated as a change, so every
/// copy drops the session at the same offset.
fn expire(shared: &Shared) {
    let mut core = shared.core();
    if core.role != Role::Primary {
        return;
    }
    for id in core.store.expired(Instant::now()) {
        core.expire(&id);
    }
}

/// A primary cut off from its set keeps running until it hears of the newer
/// epoch; this finds out and steps down.
async fn check_peers(shared: &Shared) {
    if shared.core().role != Role::Primary {
        return;
    }
    let cfg = &shared.config;
    let role = PeerRole::Node {
        addr: shared.me.clone(),
    };
    let answers =
        join_all(cfg.peers.iter().map(|p| {
            Connection::connect(p, &cfg.secret, role.clone(), cfg.max_frame, cfg.io_timeout)
        }))
        .await;
    let mut core = shared.core();
    for (_, status) in answers.into_iter().flatten() {
        if core.term.observe(status.epoch) == EpochCheck::Newer && core.role == Role::Primary {
            let primary = (status.role == Role::Primary).then(|| status.node.clone());
            core.step_down(primary);
            shared.role_changed.notify_waiters();
        }
    }
}
