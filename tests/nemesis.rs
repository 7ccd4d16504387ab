//! Jepsen-style fault injection: several clients append unique values to a
//! few shared sessions and load them, against 3- and 5-node sets of real
//! `session-node` processes, while a seeded random schedule cuts, delays
//! and black-holes links (every node-to-node direction and every client
//! link has its own proxy), kills, pauses and restarts nodes (on their data
//! directory or wiped). Every operation's invocation and outcome (ok,
//! failed, unknown) is recorded with monotonic timestamps, and the history
//! is checked by stateright's linearizability tester over a sequential
//! list spec, plus: every acknowledged append is in the final state exactly
//! once, no load ever returned a state older than an append acknowledged
//! before it began.
//!
//! `NEMESIS_SEED=N` replays a schedule; `NEMESIS_SECS=N` runs longer. A
//! violation writes the history to `target/nemesis-<seed>.jsonl` and fails
//! with the seed.
#![allow(clippy::unwrap_used, dead_code)]

mod common;
#[path = "nemesis/history.rs"]
mod history;
#[path = "nemesis/proxy.rs"]
mod proxy;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use history::{History, Op, Outcome};
use proxy::{Fault, FaultKind, FaultProxy, Schedule};
use serde::{Deserialize, Serialize};
use session_runtime::{Client, ClientError, Session, SessionId, Tracked};

#[derive(Session, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Ledger {
    #[immutable]
    number: u32,
    items: Vec<u64>,
}

const SESSIONS: u32 = 4;
const CLIENTS: u64 = 4;

struct Cluster {
    nodes: Vec<NodeProcess>,
    /// `links[i * n + j]`: node i's way to node j (i != j); then one client
    /// link per node.
    proxies: Vec<FaultProxy>,
    client_addrs: Vec<String>,
}

async fn cluster(n: usize) -> Cluster {
    let addrs: Vec<String> = (0..n).map(|_| free_addr()).collect();
    let mut proxies = Vec::new();
    let mut route = HashMap::new();
    for i in 0..n {
        for (j, target) in addrs.iter().enumerate() {
            if i != j {
                let p = FaultProxy::start(target.clone()).await.unwrap();
                route.insert((i, j), p.addr());
                proxies.push(p);
            }
        }
    }
    let mut client_addrs = Vec::new();
    for a in &addrs {
        let p = FaultProxy::start(a.clone()).await.unwrap();
        client_addrs.push(p.addr());
        proxies.push(p);
    }
    let nodes = (0..n)
        .map(|i| {
            let peers: Vec<(u64, String)> = (0..n)
                .filter(|j| *j != i)
                .map(|j| (j as u64 + 1, route[&(i, j)].clone()))
                .collect();
            NodeProcess::spawn(
                i as u64 + 1,
                &addrs[i],
                &peers,
                &["--snapshot-every", "500", "--log-keep", "100"],
            )
        })
        .collect();
    Cluster {
        nodes,
        proxies,
        client_addrs,
    }
}

fn client_cfg(addrs: &[String]) -> session_runtime::ClientConfig {
    let mut c = client_config(addrs);
    c.failover_timeout = Duration::from_secs(4);
    c.request_timeout = Duration::from_secs(2);
    c.connect_timeout = Duration::from_millis(300);
    c
}

/// One append, as a client does it: load, push, commit; on a conflict
/// reload and retry. Ok once a commit succeeds (or a reload shows an
/// earlier uncertain attempt took effect); Fail when no attempt can have
/// been applied; Unknown otherwise.
async fn append(client: &Client, id: SessionId, value: u64, deadline: Instant) -> Outcome {
    let mut uncertain = false;
    while Instant::now() < deadline {
        let mut t: Tracked<Ledger> = match client.load(id).await {
            Ok(t) => t,
            Err(_) => continue,
        };
        if t.items.contains(&value) {
            return Outcome::Ok(None);
        }
        t.edit().items().push(value);
        match client.commit(id, &mut t).await {
            Ok(_) => return Outcome::Ok(None),
            Err(ClientError::Conflict { .. }) | Err(ClientError::Unavailable(_)) => {}
            Err(ClientError::Uncertain(_)) => uncertain = true,
            Err(e) => panic!("unexpected error appending {value}: {e}"),
        }
    }
    if uncertain {
        Outcome::Unknown
    } else {
        Outcome::Fail
    }
}

async fn run(nodes: usize, faults: &[FaultKind], default_secs: u64) {
    let seed = proxy::seed_from_env();
    let secs = proxy::duration_from_env(Duration::from_secs(default_secs));
    let mut c = cluster(nodes).await;
    let links = c.proxies.len();
    let schedule = Schedule::new(seed, secs, faults, links, nodes);
    eprintln!("{schedule}");
    let set = ProcessSet {
        nodes: std::mem::take(&mut c.nodes),
    };
    set.wait_leader(&[], Duration::from_secs(20)).await;
    let mut nodes_back = set.nodes;

    let setup = Client::connect(client_cfg(&c.client_addrs)).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..SESSIONS {
        ids.push(
            setup
                .create(&Ledger {
                    number: n,
                    items: vec![],
                })
                .await
                .unwrap(),
        );
    }
    let ids = Arc::new(ids);
    let history = History::new();
    let stop = Arc::new(AtomicBool::new(false));
    let next_value = Arc::new(AtomicU64::new(1));
    let mut workers = Vec::new();
    for process in 0..CLIENTS {
        let client = Client::connect(client_cfg(&c.client_addrs)).await.unwrap();
        let (ids, history, stop, next_value) = (
            ids.clone(),
            history.clone(),
            stop.clone(),
            next_value.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = seed ^ (process + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut step = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let started = Instant::now();
            // Bounded by the stop flag and by time, whatever the faults.
            while !stop.load(Ordering::Relaxed) && started.elapsed() < secs * 3 {
                let session = (step() % u64::from(SESSIONS)) as u32;
                let id = ids[session as usize];
                if step() % 2 == 0 {
                    let value = next_value.fetch_add(1, Ordering::Relaxed);
                    let op = history.invoke(process, Op::Append { session, value });
                    let outcome =
                        append(&client, id, value, Instant::now() + Duration::from_secs(6)).await;
                    history.complete(op, outcome);
                } else {
                    let op = history.invoke(process, Op::Load { session });
                    let outcome = match client.load::<Ledger>(id).await {
                        Ok(t) => Outcome::Ok(Some(t.items.clone())),
                        Err(_) => Outcome::Fail,
                    };
                    history.complete(op, outcome);
                }
            }
        }));
    }

    // --- the nemesis
    let counts = Arc::new(Mutex::new(HashMap::<&'static str, u32>::new()));
    {
        let nodes_ref = &mut nodes_back;
        let counts = counts.clone();
        let proxies = &c.proxies;
        let start = tokio::time::Instant::now();
        for (at, fault) in &schedule.steps {
            tokio::time::sleep_until(start + *at).await;
            let kind = match fault {
                Fault::Cut { .. } => "cut",
                Fault::CutOneWay { .. } => "cut_one_way",
                Fault::Blackhole { .. } => "blackhole",
                Fault::Delay { .. } => "delay",
                Fault::Heal { .. } | Fault::HealAll => "heal",
                Fault::Kill { .. } => "kill",
                Fault::Pause { .. } => "pause",
                Fault::Resume { .. } => "resume",
                Fault::Restart { .. } => "restart",
                Fault::RestartWiped { .. } => "restart_wiped",
            };
            *counts.lock().unwrap().entry(kind).or_default() += 1;
            match *fault {
                Fault::Heal { link } => {
                    proxies[link].heal();
                    // Bytes dropped on a live connection desynchronise its
                    // frames: a healed link starts from fresh connections.
                    proxies[link].reset_connections();
                }
                Fault::HealAll => {
                    for p in proxies {
                        p.heal();
                        p.reset_connections();
                    }
                }
                Fault::Kill { node } => nodes_ref[node].kill(),
                Fault::Pause { node } => nodes_ref[node].pause(),
                Fault::Resume { node } => nodes_ref[node].resume(),
                Fault::Restart { node } => nodes_ref[node].restart(),
                Fault::RestartWiped { node } => nodes_ref[node].restart_wiped(),
                link_fault => {
                    link_fault.apply(proxies);
                }
            }
        }
    }
    for p in &c.proxies {
        p.heal();
    }
    // Let the workers run a little on the healed set, then stop them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    // --- the final state, read once the set is whole again
    let set = ProcessSet { nodes: nodes_back };
    set.wait_leader(&[], Duration::from_secs(30)).await;
    let reader = Client::connect(client_cfg(&set.addrs())).await.unwrap();
    let mut final_state = HashMap::new();
    for (n, id) in ids.iter().enumerate() {
        let t: Tracked<Ledger> = reader.load(*id).await.unwrap();
        final_state.insert(n as u32, t.items.clone());
    }
    let h = history.clone();
    let checked = tokio::task::spawn_blocking(move || history::check(&h, &final_state))
        .await
        .unwrap();
    let faults = counts.lock().unwrap().clone();
    match checked {
        Ok(report) => {
            eprintln!(
                "nemesis: seed={seed} nodes={nodes} secs={} ops={} ok={} fail={} unknown={} faults={faults:?} checker={:?}",
                secs.as_secs(),
                report.ops,
                report.ok,
                report.fail,
                report.unknown,
                report.checker_time
            );
            assert!(
                report.ok >= 20,
                "too few operations succeeded to mean anything: {report:?}"
            );
        }
        Err(violation) => {
            let path = format!("{}/target/nemesis-{seed}.jsonl", env!("CARGO_MANIFEST_DIR"));
            history.write_to(&path).unwrap();
            panic!(
                "history violates the spec (seed {seed}, replay with NEMESIS_SEED={seed}; history in {path}):\n{}",
                violation.explanation()
            );
        }
    }
    // Every replica ends with the same sessions.
    wait_for("replicas equal", Duration::from_secs(30), || async {
        let mut dumps = Vec::new();
        for n in &set.nodes {
            dumps.push(node_dump(&n.addr).await);
        }
        dumps.iter().all(|d| d.is_some() && *d == dumps[0])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_under_partitions_kills_and_pauses_stay_linearizable() {
    run(3, &FaultKind::ALL, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_under_partitions_kills_and_pauses_stay_linearizable() {
    run(5, &FaultKind::ALL, 30).await;
}
