//! The first start of a replica set.
//!
//! The voter with the lowest id initialises the Raft group with every
//! configured voter, once: a node whose data directory holds a vote or a
//! log is initialised already and never does it again. A node that lost
//! its data directory first asks its peers: if any of them knows a leader,
//! the set exists, and the node neither initialises it nor votes until that
//! leader has caught it up (a vote from a node that forgot what it
//! acknowledged could elect a leader without a committed entry). Learners
//! are added by the first leader.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use openraft::BasicNode;

use super::Shared;
use crate::net::message::PeerRole;
use crate::net::Connection;

pub(crate) async fn run(shared: Arc<Shared>) {
    let cfg = &shared.config;
    match shared.raft.is_initialized().await {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "raft stopped before start-up");
            return;
        }
    }
    if set_exists(&shared).await {
        tracing::warn!(
            "this node has no Raft state but its peers do (its data was lost?): \
             it votes again once caught up by the leader"
        );
        return;
    }
    // A new set: vote, so that it can elect its first leader.
    shared.recovering.store(false, Ordering::Relaxed);
    let lowest = cfg.peers.iter().map(|(id, _)| *id).min();
    if cfg.learner || lowest.is_some_and(|low| low < cfg.id) {
        tracing::info!("waiting for the set's leader to add this node");
        return;
    }
    let mut voters = BTreeMap::new();
    voters.insert(cfg.id, BasicNode::new(shared.me.clone()));
    for (id, addr) in &cfg.peers {
        voters.insert(*id, BasicNode::new(addr.clone()));
    }
    match shared.raft.initialize(voters).await {
        Ok(()) => tracing::info!(voters = cfg.peers.len() + 1, "replica set initialised"),
        Err(e) => {
            tracing::warn!(error = %e, "not initialising the replica set");
            return;
        }
    }
    if cfg.learners.is_empty() {
        return;
    }
    // Learners are added by the leader, once one is elected (bounded: a
    // set that elects nobody within a minute has bigger problems, logged).
    for _ in 0..600 {
        if shared.stopping() {
            return;
        }
        if shared.is_leader() {
            for (id, addr) in &cfg.learners {
                match shared
                    .raft
                    .add_learner(*id, BasicNode::new(addr.clone()), false)
                    .await
                {
                    Ok(_) => tracing::info!(learner = id, "learner added"),
                    Err(e) => tracing::warn!(learner = id, error = %e, "adding a learner failed"),
                }
            }
            return;
        }
        if shared.leader().is_some() {
            // Another voter leads; it did not initialise, so add them from
            // here is not possible: the operator adds them
            // (`session-node member add-learner`).
            tracing::warn!("another node leads; add the learners with `session-node member`");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::error!("no leader elected within a minute: learners not added");
}

/// Whether any peer follows or is a leader: the set exists and has a
/// leader that will catch this node up. (Peers still electing their first
/// leader do not count, or fresh members of a new set would all wait.)
async fn set_exists(shared: &Shared) -> bool {
    let cfg = &shared.config;
    let role = PeerRole::Node { id: cfg.id };
    let answers = join_all(cfg.peers.iter().chain(&cfg.learners).map(|(_, addr)| {
        Connection::connect(
            addr,
            &cfg.secret,
            role.clone(),
            cfg.max_frame,
            cfg.io_timeout,
        )
    }))
    .await;
    answers
        .into_iter()
        .flatten()
        .any(|(_, status)| status.leader.is_some())
}
