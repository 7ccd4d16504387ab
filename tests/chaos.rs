//! Chaos: clients keep committing `Sync` to shared sessions while the
//! primary is SIGKILLed and restarted again and again. Every acknowledged
//! commit must survive, and the backup must end equal to the primary.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde::{Deserialize, Serialize};
use session_runtime::{Client, Session, SessionId};

const CLIENTS: usize = 4;
const SESSIONS: usize = 8;
const KILLS: usize = 5;
/// Extra `session-node` arguments (none: the default `Sync(1)`).
const NODE_ARGS: &[&str] = &[];

/// Each client appends to its own field, so concurrent commits merge.
#[derive(Session, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Ledger {
    #[immutable]
    number: u64,
    c0: Vec<u64>,
    c1: Vec<u64>,
    c2: Vec<u64>,
    c3: Vec<u64>,
}

impl Ledger {
    fn column(&self, client: usize) -> &Vec<u64> {
        [&self.c0, &self.c1, &self.c2, &self.c3][client]
    }
}

fn push(t: &mut session_runtime::Tracked<Ledger>, client: usize, token: u64) {
    match client {
        0 => t.edit().c0().push(token),
        1 => t.edit().c1().push(token),
        2 => t.edit().c2().push(token),
        _ => t.edit().c3().push(token),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_repeated_primary_kills() {
    let started = Instant::now();
    let addrs = [free_addr(), free_addr()];
    // Nodes reach each other through proxies that add 2 ms each way and
    // drop what is in flight when a node dies, so that a write acknowledged
    // before its backup applied it would be lost.
    let to = [
        Proxy::start_with_delay(addrs[0].clone(), Duration::from_millis(2)).await,
        Proxy::start_with_delay(addrs[1].clone(), Duration::from_millis(2)).await,
    ];
    let mut nodes = [
        NodeProcess::spawn(&addrs[0], &[to[1].addr.clone()], true, NODE_ARGS),
        NodeProcess::spawn(&addrs[1], &[to[0].addr.clone()], false, NODE_ARGS),
    ];
    wait_primary(&addrs[0], 1, Duration::from_secs(10)).await;
    let setup = Client::connect(client_config(&addrs)).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..SESSIONS {
        let empty = Ledger {
            number: n as u64,
            c0: vec![],
            c1: vec![],
            c2: vec![],
            c3: vec![],
        };
        ids.push(setup.create(&empty).await.unwrap());
    }
    let ids: Arc<Vec<SessionId>> = Arc::new(ids);

    // --- clients commit until told to stop: each of the 4 clients runs one
    // worker per session, so many commits are in flight when a node dies.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for c in 0..CLIENTS {
        let client = Client::connect(client_config(&addrs)).await.unwrap();
        for s in 0..SESSIONS {
            let (ids, stop, failed, client) =
                (ids.clone(), stop.clone(), failed.clone(), client.clone());
            workers.push(tokio::spawn(async move {
                let mut acked: Vec<(usize, usize, u64)> = Vec::new();
                let mut token = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    token += 1;
                    let Ok(mut ledger) = client.load::<Ledger>(ids[s]).await else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    push(&mut ledger, c, token);
                    match client.commit(ids[s], &mut ledger).await {
                        Ok(_) => acked.push((c, s, token)),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                acked
            }));
        }
    }

    // --- kill whichever node is primary, restart it, repeat
    let mut kills = 0;
    let mut resyncs = 0;
    while kills < KILLS {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut primary = None;
        for (i, a) in addrs.iter().enumerate() {
            if node_stats(a)
                .await
                .is_some_and(|s| s.role == session_runtime::net::message::Role::Primary)
            {
                primary = Some(i);
            }
        }
        let p = primary.expect("a primary exists between kills");
        let survivor = 1 - p;
        let served =
            |s: &session_runtime::node::Stats| s.full_resyncs_served + s.partial_resyncs_served;
        let before = node_stats(&addrs[survivor]).await.map_or(0, |s| served(&s));
        nodes[p].kill();
        kills += 1;
        wait_linked(&addrs[survivor], 0, Duration::from_secs(10)).await;
        nodes[p].restart();
        let linked = wait_linked(&addrs[survivor], 1, Duration::from_secs(15)).await;
        resyncs += served(&linked) - before;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in workers {
        acked.push(w.await.unwrap());
    }

    // --- every acknowledged commit is present, and both copies are equal
    let mut primary = None;
    for a in &addrs {
        if let Some(s) = node_stats(a)
            .await
            .filter(|s| s.role == session_runtime::net::message::Role::Primary)
        {
            primary = Some((a.clone(), s));
        }
    }
    let (paddr, _) = primary.expect("a primary at the end");
    wait_primary(&paddr, 1, Duration::from_secs(10)).await;
    let backup_addr = addrs.iter().find(|a| **a != paddr).unwrap();
    assert_eq!(
        node_digest(&paddr).await.unwrap(),
        node_digest(backup_addr).await.unwrap(),
        "backup differs from primary"
    );

    let reader = Client::connect(client_config(&addrs)).await.unwrap();
    let mut ledgers = Vec::new();
    for id in ids.iter() {
        ledgers.push(reader.load::<Ledger>(*id).await.unwrap());
    }
    let mut lost = 0;
    let mut total = 0;
    for (c, s, token) in acked.iter().flatten() {
        total += 1;
        if !ledgers[*s].column(*c).contains(token) {
            lost += 1;
        }
    }
    println!(
        "chaos: commits_acknowledged={total} commits_failed={} kills={kills} resyncs={resyncs} lost={lost} elapsed={:?}",
        failed.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(
        total >= 100,
        "too few commits acknowledged to mean anything: {total}"
    );
    assert!(
        resyncs >= KILLS as u64,
        "every restarted node resynchronised"
    );
    assert_eq!(lost, 0, "acknowledged commits lost");
    assert!(started.elapsed() < Duration::from_secs(120));
}
