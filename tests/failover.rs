//! Failover between real `session-node` processes on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use session_runtime::{Client, ClientError, Durability, Tracked};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_loses_no_acknowledged_sync_commit() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let mut a = NodeProcess::spawn(&a_addr, std::slice::from_ref(&b_addr), true, &[]);
    let mut b = NodeProcess::spawn(&b_addr, std::slice::from_ref(&a_addr), false, &[]);
    wait_primary(&a_addr, 1, Duration::from_secs(10)).await;
    let client = Client::connect(client_config(&[a_addr.clone(), b_addr.clone()]))
        .await
        .unwrap();
    let (id, mut cart) = client.create_tracked(Cart::new(1)).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..30 {
        cart.edit().items().push(format!("before-kill-{i}"));
        client.commit(id, &mut cart).await.unwrap();
        expected.push(format!("before-kill-{i}"));
    }

    // --- SIGKILL the primary
    a.kill();
    let promoted = wait_primary(&b_addr, 0, Duration::from_secs(10)).await;
    assert_eq!(promoted.failovers, 1, "{}", b.log());
    assert!(promoted.epoch >= 2);

    // --- the client follows: every acknowledged commit is on the new primary
    let on_b: Tracked<Cart> = client.load(id).await.unwrap();
    assert_eq!(on_b.items, expected);
    assert_eq!(on_b.version(), 31);

    // --- alone, the new primary cannot make a Sync write durable
    let mut short = client_config(&[a_addr.clone(), b_addr.clone()]);
    short.failover_timeout = Duration::from_millis(1500);
    let impatient = Client::connect(short).await.unwrap();
    let mut probe = impatient.load::<Cart>(id).await.unwrap();
    probe.edit().note().push_str("unacknowledged");
    let alone = impatient.commit(id, &mut probe).await;
    assert!(
        matches!(alone, Err(ClientError::NotDurable { acked: 0 })),
        "{alone:?}"
    );

    // --- restart the old primary: it rejoins as a backup with a full resync
    a.restart();
    let b_stats = wait_primary(&b_addr, 1, Duration::from_secs(10)).await;
    assert!(b_stats.full_resyncs_served >= 1);
    assert_eq!(
        node_digest(&a_addr).await.unwrap(),
        node_digest(&b_addr).await.unwrap(),
        "backup holds what the primary holds"
    );

    // --- Sync commits work again; kill the new primary too
    let mut cart = client.load::<Cart>(id).await.unwrap();
    for i in 0..10 {
        cart.edit().items().push(format!("after-restart-{i}"));
        client.commit(id, &mut cart).await.unwrap();
        expected.push(format!("after-restart-{i}"));
    }
    b.kill();
    wait_primary(&a_addr, 0, Duration::from_secs(10)).await;
    let on_a: Tracked<Cart> = client.load(id).await.unwrap();
    assert_eq!(on_a.items, expected, "{}", a.log());
    // The write acknowledged only by the old primary itself may or may not
    // have survived; it was never acknowledged as durable.
    assert!(on_a.note.is_empty() || on_a.note == "unacknowledged");

    // --- Async writes are acknowledged without a backup
    let mut lone = client_config(&[a_addr.clone(), b_addr.clone()]);
    lone.durability = Some(Durability::Async);
    let async_client = Client::connect(lone).await.unwrap();
    let mut cart = async_client.load::<Cart>(id).await.unwrap();
    cart.edit().note().push('!');
    async_client.commit(id, &mut cart).await.unwrap();
}
