//! Replication between in-process nodes on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use session_runtime::net::message::Role;
use session_runtime::{Client, ClientError, Session};
use std::time::Duration;

#[tokio::test]
async fn commits_replicate_and_the_backup_holds_the_same_bytes() {
    let (primary, backup) = pair().await;
    let client = Client::connect(client_config(&[
        primary.addr().to_string(),
        backup.addr().to_string(),
    ]))
    .await
    .unwrap();
    let (id, mut cart) = client.create_tracked(Cart::new(7)).await.unwrap();
    for i in 0..20 {
        cart.edit().items().push(format!("item-{i}"));
        *cart
            .edit()
            .counts()
            .entry(format!("k{}", i % 3))
            .or_default() += 1;
        client.commit(id, &mut cart).await.unwrap();
    }
    assert_eq!(cart.version(), 21);
    let loaded: session_runtime::Tracked<Cart> = client.load(id).await.unwrap();
    assert_eq!(*loaded, *cart);
    // Acknowledged means in the backup's log; it applies it once it
    // learns the commit index (the next heartbeat at the latest).
    wait_until("backup applied", Duration::from_secs(5), || {
        backup.peek(&id) == primary.peek(&id)
    })
    .await;
    assert_eq!(
        backup
            .peek(&id)
            .map(|(v, b)| (v, Cart::from_bytes(&b).unwrap())),
        Some((21, (*cart).clone()))
    );
    let stats = primary.stats();
    assert_eq!(stats.role, Role::Leader);
    // One create and 20 commits, each shipped at least once (openraft may
    // resend an entry after a timeout, and the membership entry counts).
    assert!(stats.entries_shipped >= 21, "{stats:?}");
    let full = Cart::from_bytes(&primary.peek(&id).unwrap().1)
        .unwrap()
        .to_bytes()
        .len() as u64;
    assert!(
        stats.bytes_shipped < 21 * full / 2,
        "deltas are smaller than whole sessions: {stats:?}"
    );
    assert_eq!(backup.stats().role, Role::Follower);
    primary.shutdown().await;
    backup.shutdown().await;
}

#[tokio::test]
async fn a_commit_with_nothing_changed_sends_nothing() {
    let (primary, backup) = pair().await;
    let client = Client::connect(client_config(&[primary.addr().to_string()]))
        .await
        .unwrap();
    let (id, mut cart) = client.create_tracked(Cart::new(1)).await.unwrap();
    let before = primary.stats().ops_applied;
    assert_eq!(client.commit(id, &mut cart).await.unwrap(), 1);
    *cart.edit().note() = String::new();
    assert_eq!(client.commit(id, &mut cart).await.unwrap(), 1);
    assert_eq!(primary.stats().ops_applied, before);
    primary.shutdown().await;
    backup.shutdown().await;
}

#[tokio::test]
async fn concurrent_commits_merge_by_field_and_conflict_on_the_same_field() {
    let (primary, backup) = pair().await;
    let nodes = [primary.addr().to_string(), backup.addr().to_string()];
    let app_a = Client::connect(client_config(&nodes)).await.unwrap();
    let app_b = Client::connect(client_config(&nodes)).await.unwrap();
    let id = app_a.create(&Cart::new(3)).await.unwrap();
    let mut a = app_a.load::<Cart>(id).await.unwrap();
    let mut b = app_b.load::<Cart>(id).await.unwrap();

    // --- disjoint fields: both applied
    a.edit().items().push("from-a".into());
    b.edit().note().push_str("from-b");
    let (ra, rb) = tokio::join!(app_a.commit(id, &mut a), app_b.commit(id, &mut b));
    let (va, vb) = (ra.unwrap(), rb.unwrap());
    assert_eq!([va.min(vb), va.max(vb)], [2, 3]);
    let now = app_a.load::<Cart>(id).await.unwrap();
    assert_eq!(now.items, vec!["from-a".to_string()]);
    assert_eq!(now.note, "from-b");
    // The merged writer was brought up to date by the refresh.
    let later = if va > vb { &a } else { &b };
    assert_eq!(**later, *now);

    // --- the same field: exactly one conflict, and nothing is lost
    let mut a = app_a.load::<Cart>(id).await.unwrap();
    let mut b = app_b.load::<Cart>(id).await.unwrap();
    a.edit().items().push("second-a".into());
    b.edit().items().push("second-b".into());
    let (ra, rb) = tokio::join!(app_a.commit(id, &mut a), app_b.commit(id, &mut b));
    let conflicts = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Err(ClientError::Conflict { current: 4 })))
        .count();
    assert_eq!(conflicts, 1, "{ra:?} {rb:?}");
    let loser = if ra.is_err() { &mut a } else { &mut b };
    assert!(loser.is_dirty(), "the losing writer keeps its change");
    assert_eq!(backup.peek(&id), primary.peek(&id));
    primary.shutdown().await;
    backup.shutdown().await;
}

#[derive(
    session_runtime::Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize,
)]
struct Other {
    n: u32,
}

#[tokio::test]
async fn a_set_serving_one_schema_refuses_other_clients_at_the_handshake() {
    let cart = Cart::schema().fingerprint();
    let (primary, backup) = pair_with(|c| c.schema = Some(cart)).await;
    let nodes = [primary.addr().to_string(), backup.addr().to_string()];
    let quick = |cfg: session_runtime::ClientConfig| {
        let mut cfg = cfg;
        cfg.failover_timeout = std::time::Duration::from_millis(500);
        cfg
    };

    // --- the declared type is served
    let ok = Client::connect(quick(client_config(&nodes).schema::<Cart>()))
        .await
        .unwrap();
    let id = ok.create(&Cart::new(1)).await.unwrap();
    assert_eq!(ok.load::<Cart>(id).await.unwrap().user, 1);

    // --- another type, or none declared: refused before any request
    for (cfg, needle) in [
        (
            quick(client_config(&nodes).schema::<Other>()),
            "schema mismatch",
        ),
        (
            quick(client_config(&nodes)),
            "declare the client's session type",
        ),
    ] {
        match Client::connect(cfg).await {
            Err(ClientError::Unavailable(reason)) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    primary.shutdown().await;
    backup.shutdown().await;
}
