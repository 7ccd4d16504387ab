//! Chaos: clients keep committing to shared sessions while the leader of a
//! three-node set is SIGKILLed and restarted on its data directory again
//! and again, its links delayed and cut in flight. Every acknowledged
//! commit must survive, and every replica must end holding the same
//! sessions (compared in full, not by digest).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde::{Deserialize, Serialize};
use session_runtime::net::message::Role;
use session_runtime::{Client, Session, SessionId};

const CLIENTS: usize = 4;
const SESSIONS: usize = 8;
const KILLS: usize = 5;
/// Extra `session-node` arguments.
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
    let addrs = [free_addr(), free_addr(), free_addr()];
    // Nodes reach each other through proxies that add 2 ms each way and
    // drop what is in flight when a node dies.
    let mut to = Vec::new();
    for a in &addrs {
        to.push(Proxy::start_with_delay(a.clone(), Duration::from_millis(2)).await);
    }
    let mut nodes: Vec<NodeProcess> = (0..3)
        .map(|i| {
            let peers: Vec<(u64, String)> = (0..3)
                .filter(|j| *j != i)
                .map(|j| (j as u64 + 1, to[j].addr.clone()))
                .collect();
            NodeProcess::spawn(i as u64 + 1, &addrs[i], &peers, NODE_ARGS)
        })
        .collect();
    let leader_of = |addrs: [String; 3]| async move {
        for (i, a) in addrs.iter().enumerate() {
            if node_stats(a).await.is_some_and(|s| s.role == Role::Leader) {
                return Some(i);
            }
        }
        None
    };
    wait_for("a leader", Duration::from_secs(15), || async {
        leader_of(addrs.clone()).await.is_some()
    })
    .await;
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

    // --- kill whichever node leads, restart it at once, repeat
    let mut kills = 0;
    let term_before = node_stats(&addrs[0]).await.map_or(0, |s| s.term);
    while kills < KILLS {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut leader = None;
        for _ in 0..100 {
            leader = leader_of(addrs.clone()).await;
            if leader.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let l = leader.expect("a leader exists between kills");
        let s = node_stats(&addrs[l]).await;
        eprintln!("kill {kills}: leader {l} term {:?}", s.map(|s| s.term));
        if kills % 2 == 1 {
            // Kept down until the others elect a new leader.
            nodes[l].kill();
            wait_for("a new leader", Duration::from_secs(10), || async {
                leader_of(addrs.clone()).await.is_some_and(|n| n != l)
            })
            .await;
        }
        nodes[l].restart();
        kills += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in workers {
        acked.push(w.await.unwrap());
    }

    // --- every replica holds the same sessions, in full
    wait_for("replicas equal", Duration::from_secs(20), || async {
        let mut dumps = Vec::new();
        for a in &addrs {
            dumps.push(node_dump(a).await);
        }
        dumps.iter().all(|d| d.is_some() && *d == dumps[0])
    })
    .await;
    let terms = node_stats(&addrs[0]).await.map_or(0, |s| s.term) - term_before;

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
        "chaos: commits_acknowledged={total} commits_failed={} kills={kills} new_terms={terms} lost={lost} elapsed={:?}",
        failed.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(
        total >= 100,
        "too few commits acknowledged to mean anything: {total}"
    );
    // A leader restarted at once may take its leadership back in the same
    // term (openraft restores its committed vote for itself, as Raft
    // allows); one restarted after a pause is replaced by an election.
    assert!(
        terms >= (KILLS / 2) as u64,
        "every leader kept down led to an election"
    );
    assert_eq!(lost, 0, "acknowledged commits lost");
    assert!(started.elapsed() < Duration::from_secs(120));
}
