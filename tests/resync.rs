//! Resynchronising a backup whose link to the primary broke: partially from
//! the backlog when it still holds the missed changes, else in full.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use session_runtime::node::{NodeConfig, NodeHandle};
use session_runtime::{Client, Durability};

/// A primary, and a backup that reaches it only through `proxy`.
async fn pair_behind_proxy(backlog_bytes: usize) -> (NodeHandle, NodeHandle, Proxy) {
    let (a, b) = (free_addr(), free_addr());
    let proxy = Proxy::start(a.clone()).await;
    let tweak = |c: &mut NodeConfig| {
        c.backlog_bytes = backlog_bytes;
        // Longer than the cuts below, so the backup does not take over.
        c.failover_timeout = Duration::from_secs(5);
    };
    let (primary, backup) = pair_at(a, b, proxy.addr.clone(), tweak).await;
    (primary, backup, proxy)
}

async fn commit_many(client: &Client, id: session_runtime::SessionId, n: usize, tag: &str) {
    let mut cart = client.load::<Cart>(id).await.unwrap();
    for i in 0..n {
        cart.edit().items().push(format!("{tag}-{i}"));
        client.commit(id, &mut cart).await.unwrap();
    }
}

async fn cut_commit_heal(
    backlog_bytes: usize,
    commits_while_cut: usize,
) -> (NodeHandle, NodeHandle) {
    let (primary, backup, proxy) = pair_behind_proxy(backlog_bytes).await;
    let mut cfg = client_config(&[primary.addr().to_string()]);
    cfg.durability = Some(Durability::Async);
    let client = Client::connect(cfg).await.unwrap();
    let id = client.create(&Cart::new(1)).await.unwrap();
    commit_many(&client, id, 5, "linked").await;
    wait_until("backup caught up", Duration::from_secs(5), || {
        backup.peek(&id) == primary.peek(&id)
    })
    .await;

    // --- cut the backup off and keep committing
    proxy.cut();
    wait_until("link dropped", Duration::from_secs(5), || {
        primary.stats().backups.is_empty()
    })
    .await;
    commit_many(&client, id, commits_while_cut, "cut").await;
    assert_ne!(backup.peek(&id), primary.peek(&id));

    // --- heal: the backup comes back and catches up
    proxy.heal();
    wait_until("backup resynchronised", Duration::from_secs(10), || {
        primary.stats().backups.len() == 1 && backup.peek(&id) == primary.peek(&id)
    })
    .await;
    assert_eq!(backup.digest(), primary.digest());
    (primary, backup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_within_the_backlog_resyncs_partially() {
    let (primary, backup) = cut_commit_heal(1 << 20, 20).await;
    let stats = primary.stats();
    assert_eq!(
        (stats.partial_resyncs_served, stats.full_resyncs_served),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(backup.stats().partial_resyncs, 1);
    primary.shutdown().await;
    backup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_beyond_the_backlog_resyncs_in_full() {
    // A backlog of 2 KiB holds a few dozen small commits at most.
    let (primary, backup) = cut_commit_heal(2048, 200).await;
    let stats = primary.stats();
    assert_eq!(
        (stats.partial_resyncs_served, stats.full_resyncs_served),
        (0, 2),
        "{stats:?}"
    );
    assert_eq!(backup.stats().full_resyncs, 2);
    primary.shutdown().await;
    backup.shutdown().await;
}
