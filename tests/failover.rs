//! Replica sets of real `session-node` processes on 127.0.0.1, under
//! crashes, quick restarts, a whole-set restart, a pause, a rolling restart
//! and a lost data directory. Each test reads as a script; every
//! acknowledged write is checked at the end against what the set returns.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use session_runtime::net::message::{Request, Response, Role};
use session_runtime::{Client, ClientError, SessionId, Tracked};

/// Writers that each append unique numbers to their own session's `items`
/// and remember which appends were acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ids: Vec<SessionId>,
    acked: Vec<Arc<Mutex<Vec<u64>>>>,
    errors: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
}

impl Load {
    async fn start(client: &Client, writers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        let mut ids = Vec::new();
        let mut acked = Vec::new();
        for w in 0..writers {
            let (id, tracked) = client.create_tracked(Cart::new(w as u64)).await.unwrap();
            ids.push(id);
            let mine = Arc::new(Mutex::new(Vec::new()));
            acked.push(mine.clone());
            let (client, stop, errors, ok) =
                (client.clone(), stop.clone(), errors.clone(), ok.clone());
            tasks.push(tokio::spawn(async move {
                let mut t: Tracked<Cart> = tracked;
                let started = Instant::now();
                let mut next = (w as u64) << 32;
                // Bounded: stops when told, or after two minutes whatever happens.
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120)
                {
                    next += 1;
                    t.edit().items().push(next.to_string());
                    match client.commit(id, &mut t).await {
                        Ok(_) => {
                            mine.lock().unwrap().push(next);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("writer {w}: {e}");
                            // Whatever happened, start again from what the
                            // set holds (an uncertain append may be there).
                            loop {
                                match client.load::<Cart>(id).await {
                                    Ok(fresh) => {
                                        t = fresh;
                                        break;
                                    }
                                    Err(_) if started.elapsed() < Duration::from_secs(120) => {
                                        tokio::time::sleep(Duration::from_millis(50)).await
                                    }
                                    Err(e) => panic!("writer {w} cannot reload: {e}"),
                                }
                            }
                        }
                    }
                }
            }));
        }
        Load {
            stop,
            tasks,
            ids,
            acked,
            errors,
            ok,
        }
    }

    /// Stops the writers and checks that every acknowledged append is in
    /// its session exactly once. Returns (acknowledged, errors).
    async fn finish(self, client: &Client) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        for (id, acked) in self.ids.iter().zip(&self.acked) {
            let cart: Tracked<Cart> = client.load(*id).await.unwrap();
            let held: Vec<u64> = cart.items.iter().map(|s| s.parse().unwrap()).collect();
            let mut sorted = held.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(
                sorted.len(),
                held.len(),
                "an append was applied twice: {held:?}"
            );
            for v in acked.lock().unwrap().iter() {
                assert!(held.contains(v), "acknowledged append {v} lost from {id}");
            }
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

async fn same_state(set: &ProcessSet, except: &[usize]) {
    wait_for(
        "every replica holds the same sessions",
        Duration::from_secs(20),
        || async {
            let mut dumps = Vec::new();
            for (i, n) in set.nodes.iter().enumerate() {
                if !except.contains(&i) {
                    dumps.push(node_dump(&n.addr).await);
                }
            }
            dumps.iter().all(|d| d.is_some() && *d == dumps[0])
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_and_restarted_at_once_loses_nothing_and_rejoins_from_its_log() {
    let mut set = ProcessSet::start(3, &[]);
    let leader = set.wait_leader(&[], Duration::from_secs(15)).await;
    let client = Client::connect(client_config(&set.addrs())).await.unwrap();
    let load = Load::start(&client, 4).await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    // --- SIGKILL the leader and start it again at once (systemd, k8s)
    set.nodes[leader].restart();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    set.wait_leader(&[], Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // --- stop the writers: every acknowledged append is there
    let (ok, errors) = load.finish(&client).await;
    assert!(ok > 50, "only {ok} commits acknowledged ({errors} errors)");
    same_state(&set, &[]).await;
    let restarted = node_stats(&set.nodes[leader].addr).await.unwrap();
    assert_eq!(
        restarted.snapshots_installed, 0,
        "rejoined from its own log"
    );
    eprintln!("acknowledged {ok}, errors {errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_set_killed_and_restarted_keeps_every_acknowledged_session() {
    let mut set = ProcessSet::start(3, &[]);
    set.wait_leader(&[], Duration::from_secs(15)).await;
    let client = Client::connect(client_config(&set.addrs())).await.unwrap();
    let mut acked = Vec::new();
    for n in 0..20u64 {
        let (id, mut t) = client.create_tracked(Cart::new(n)).await.unwrap();
        t.edit().note().push_str(&format!("session {n}"));
        let version = client.commit(id, &mut t).await.unwrap();
        acked.push((id, version, t.note.clone()));
    }

    // --- SIGKILL all three, start all three
    for n in &mut set.nodes {
        n.kill();
    }
    for n in &mut set.nodes {
        n.restart();
    }
    set.wait_leader(&[], Duration::from_secs(15)).await;

    // --- every acknowledged session is back at its acknowledged version
    let client = Client::connect(client_config(&set.addrs())).await.unwrap();
    for (id, version, note) in acked {
        let t: Tracked<Cart> = client.load(id).await.unwrap();
        assert_eq!((t.version(), &t.note), (version, &note));
    }
    same_state(&set, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_acknowledges_nothing_once_deposed_and_no_load_is_stale() {
    let set = ProcessSet::start(3, &[]);
    let old = set.wait_leader(&[], Duration::from_secs(15)).await;
    let client = Client::connect(client_config(&set.addrs())).await.unwrap();
    let (id, mut t) = client.create_tracked(Cart::new(1)).await.unwrap();
    t.edit().note().push_str("before");
    client.commit(id, &mut t).await.unwrap();

    // --- SIGSTOP the leader past the election timeout
    set.nodes[old].pause();
    let new = set.wait_leader(&[old], Duration::from_secs(15)).await;
    assert_ne!(new, old);

    // --- the new leader takes writes (the client moves on by itself)
    *t.edit().note() = "after".into();
    let v_after = client.commit(id, &mut t).await.unwrap();

    // --- SIGCONT: the old leader learns of the new term and steps down
    set.nodes[old].resume();
    wait_for(
        "the old leader follows",
        Duration::from_secs(15),
        || async {
            node_stats(&set.nodes[old].addr)
                .await
                .is_some_and(|s| s.role == Role::Follower && s.leader == Some(set.nodes[new].id))
        },
    )
    .await;
    // It refuses writes and reads: nothing is acknowledged or served stale.
    let refused = node_request(
        &set.nodes[old].addr,
        Request::Load {
            id,
            schema: <Cart as session_runtime::Session>::schema().fingerprint(),
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(
            refused,
            Response::Error(session_runtime::net::message::ErrorReply::NotLeader { .. })
        ),
        "{refused:?}"
    );
    let fresh = Client::connect(client_config(&set.addrs())).await.unwrap();
    let seen: Tracked<Cart> = fresh.load(id).await.unwrap();
    assert_eq!((seen.version(), seen.note.as_str()), (v_after, "after"));
    same_state(&set, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_nothing() {
    let mut set = ProcessSet::start(3, &[]);
    set.wait_leader(&[], Duration::from_secs(15)).await;
    let client = Client::connect(client_config(&set.addrs())).await.unwrap();
    let load = Load::start(&client, 4).await;
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // --- restart node i; wait until the set is whole again
        set.nodes[i].restart();
        set.wait_leader(&[], Duration::from_secs(15)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, errors) = load.finish(&client).await;
    assert!(ok > 50, "only {ok} commits acknowledged");
    assert_eq!(errors, 0, "client errors beyond the bounded retries");
    same_state(&set, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_with_its_data_dir_deleted_rejoins_through_a_snapshot() {
    let mut set = ProcessSet::start(3, &["--snapshot-every", "100", "--log-keep", "20"]);
    let leader = set.wait_leader(&[], Duration::from_secs(15)).await;
    let client = Client::connect(client_config(&set.addrs())).await.unwrap();
    let backup = (leader + 1) % 3;
    let load = Load::start(&client, 4).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // --- the backup loses its disk; the set stays available meanwhile
    set.nodes[backup].restart_wiped();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ok, errors) = load.finish(&client).await;
    assert!(ok > 100, "only {ok} commits acknowledged");
    assert_eq!(errors, 0, "the set stayed available");
    same_state(&set, &[]).await;
    let s = node_stats(&set.nodes[backup].addr).await.unwrap();
    assert!(s.snapshots_installed >= 1, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_node_set_is_standalone_and_durable() {
    let mut set = ProcessSet::start(1, &["--fsync", "always"]);
    set.wait_leader(&[], Duration::from_secs(15)).await;
    let client = Client::connect(client_config(&set.addrs())).await.unwrap();
    let (id, mut t) = client.create_tracked(Cart::new(7)).await.unwrap();
    t.edit().items().push("kept".into());
    let v = client.commit(id, &mut t).await.unwrap();
    set.nodes[0].restart();
    set.wait_leader(&[], Duration::from_secs(15)).await;
    let back: Tracked<Cart> = client.load(id).await.unwrap();
    assert_eq!(
        (back.version(), back.items.clone()),
        (v, vec!["kept".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_and_a_learner_replicate_but_do_not_fail_over() {
    let (a, b) = (free_addr(), free_addr());
    let mut voter = NodeProcess::spawn(1, &a, &[], &["--learner", &format!("2={b}")]);
    let learner = NodeProcess::spawn(2, &b, &[], &["--as-learner", "--peer", &format!("1={a}")]);
    let mut client_cfg = client_config(&[a.clone(), b.clone()]);
    client_cfg.failover_timeout = Duration::from_secs(3);
    wait_for("the learner joined", Duration::from_secs(15), || async {
        node_stats(&a)
            .await
            .is_some_and(|s| s.role == Role::Leader && s.learners == vec![2])
    })
    .await;
    let client = Client::connect(client_cfg).await.unwrap();
    let (id, mut t) = client.create_tracked(Cart::new(1)).await.unwrap();
    t.edit().note().push_str("copied");
    client.commit(id, &mut t).await.unwrap();
    wait_for(
        "the learner holds the session",
        Duration::from_secs(10),
        || async { node_dump(&b).await == node_dump(&a).await },
    )
    .await;
    let s = node_stats(&b).await.unwrap();
    assert_eq!((s.role, s.sessions), (Role::Learner, 1));

    // --- the voter dies: the learner does not take over (manual failover)
    voter.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(node_stats(&b).await.unwrap().role, Role::Learner);
    assert!(matches!(
        client.load::<Cart>(id).await,
        Err(ClientError::Unavailable(_))
    ));
    // --- it comes back: writes go on, nothing lost
    voter.restart();
    let back: Tracked<Cart> = client.load(id).await.unwrap();
    assert_eq!(back.note, "copied");
    drop(learner);
}

fn member(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_session-node"))
        .arg("member")
        .args(args)
        .args(["--secret-file", &secret_file().display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "session-node member {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_promoted_and_removed_at_runtime() {
    let mut set = ProcessSet::start(3, &[]);
    let leader = set.wait_leader(&[], Duration::from_secs(15)).await;
    let leader_addr = set.nodes[leader].addr.clone();
    let client = Client::connect(client_config(&set.addrs())).await.unwrap();
    let (id, mut t) = client.create_tracked(Cart::new(1)).await.unwrap();
    t.edit().note().push_str("kept");
    client.commit(id, &mut t).await.unwrap();

    // --- a fourth node joins as a learner and catches up
    let d = free_addr();
    let peers: Vec<(u64, String)> = set.nodes.iter().map(|n| (n.id, n.addr.clone())).collect();
    let fourth = NodeProcess::spawn(4, &d, &peers, &["--as-learner"]);
    member(&[
        "add-learner",
        "--addr",
        &leader_addr,
        "--id",
        "4",
        "--node-addr",
        &d,
    ]);
    wait_for(
        "the learner holds the session",
        Duration::from_secs(15),
        || async {
            node_stats(&d)
                .await
                .is_some_and(|s| s.role == Role::Learner && s.sessions == 1)
        },
    )
    .await;

    // --- it replaces the third voter, which leaves the set
    let gone = (leader + 1) % 3;
    let voters: Vec<String> = set
        .nodes
        .iter()
        .filter(|n| n.id != set.nodes[gone].id)
        .map(|n| n.id.to_string())
        .chain(["4".to_string()])
        .collect();
    member(&[
        "set-voters",
        "--addr",
        &leader_addr,
        "--voters",
        &voters.join(","),
        "--remove",
    ]);
    let s = node_stats(&leader_addr).await.unwrap();
    let mut expected: Vec<u64> = voters.iter().map(|v| v.parse().unwrap()).collect();
    expected.sort_unstable();
    assert_eq!((s.voters, s.learners), (expected, vec![]));
    wait_for("the new voter follows", Duration::from_secs(15), || async {
        node_stats(&d)
            .await
            .is_some_and(|s| s.role == Role::Follower)
    })
    .await;

    // --- the removed node is no longer needed: kill it, writes go on
    set.nodes[gone].kill();
    let mut addrs = set.addrs();
    addrs.push(d.clone());
    let client = Client::connect(client_config(&addrs)).await.unwrap();
    let mut t: Tracked<Cart> = client.load(id).await.unwrap();
    t.edit().note().push_str(", and more");
    client.commit(id, &mut t).await.unwrap();
    wait_for(
        "the new voter holds the write",
        Duration::from_secs(10),
        || async { node_dump(&d).await == node_dump(&leader_addr).await },
    )
    .await;
    drop(fourth);
}
