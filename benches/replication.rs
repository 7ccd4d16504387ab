//! Replication: a 3-node openraft replica set of `session-node` processes
//! against a Redis 7 primary with 2 replicas, on loopback, every process
//! started (and killed) by this benchmark.
//!
//! Run with `cargo bench --bench replication`; `BENCH_QUICK=1` (or
//! `-- --quick`) runs each case for about 0.5 s instead of 3 s, and
//! `BENCH_SECS=<seconds>` sets the duration of every case. Redis needs
//! `redis-server` on `PATH` (Debian: `apt-get install -y redis-server
//! redis-tools`); without it the bench says so loudly and runs our side
//! only, except under `CI=true`, where it fails.
//!
//! Our side: three `session-node serve` processes (ids 1..=3, each with the
//! other two as `--peer`, a fresh data directory each, ports picked by
//! binding 127.0.0.1:0), one `Client` in this process. A commit is
//! acknowledged once a majority (2 of 3) has it in its log and the leader
//! applied it. The binary is `SESSION_NODE_BIN` if set, else the one Cargo
//! built for this bench (`CARGO_BIN_EXE_session-node`) if it has one, else
//! `cargo build --release --bin session-node` is run and the binary next to
//! this bench's `deps` directory is used.
//!
//! Redis side: `redis-server` primary and two `--replicaof` replicas, all
//! with `--appendonly yes --save ''`, spoken to over a small hand-written
//! RESP client (no client library, so the client adds as little as it can
//! to Redis's numbers). Every write is acknowledged by a `WAIT 1 1000`
//! answering at least 1: on the primary and one replica, a majority of 3.
//!
//! Two passes, the same promise on both sides in each:
//!
//! 1. ours `--fsync everysec` against `appendfsync everysec` (on a
//!    majority, fsync'd within about a second);
//! 2. ours `--fsync always` against `appendfsync always`, case names
//!    prefixed `always_`. (Redis 7.0 has no `WAITAOF`: its replica
//!    acknowledges what it received, not what it fsync'd, so here ours
//!    promises more than Redis does: each voter fsyncs before it acks.)
//!
//! Cases, each printed as one line
//! `case=NAME ours_ops=N ours_p50_us=N ours_p99_us=N redis_ops=N redis_p50_us=N redis_p99_us=N`:
//!
//! - `sync_1`: one writer, one session, sequential commits of one small
//!   field (a `u32` counter); Redis: `HSET key counter <n>` and
//!   `WAIT 1 1000`, written together, both answers awaited, sequentially.
//! - `sync_50`: 50 writers, each on its own session, all through one shared
//!   `Client`; Redis: 50 connections, each doing `HSET` + `WAIT 1 1000`.
//! - `pipelined`: `BENCH_INFLIGHT` (default 512) commits in flight: as many
//!   tasks, each on its own session, sharing one `Client` (one multiplexed
//!   connection to the leader); Redis: one connection with as many `HSET`s
//!   in flight, pipelined: the writer sends every `HSET` the window allows
//!   in one write followed by one `WAIT 1 1000`, and each of those `HSET`s
//!   is done when that `WAIT` answers (a `WAIT` after every `HSET` would
//!   block the connection once per `HSET`; one per batch is the fastest way
//!   to give every write the same promise on one connection).
//!
//! `ops` is completed commits per second, `p50_us`/`p99_us` the latency of
//! one commit in microseconds, from the moment it was handed to the client
//! until its answer. Then two more lines per pass:
//!
//! - `case=bytes_per_update ours=N redis=N`, over the `sync_1` run: for us
//!   the leader's `bytes_shipped / entries_shipped` (`Client::stats`; the
//!   append-entries frames with their 4-byte length, Raft framing included,
//!   heartbeats without entries not counted); for Redis the growth of the
//!   primary's `master_repl_offset` per `HSET` (which includes the
//!   `REPLCONF GETACK *` that each `WAIT` puts into the stream; a `#` line
//!   gives the figure without it).
//! - `case=cpu_us_per_commit ours=N redis=N`, over the `sync_1` run: user +
//!   system CPU time (`/proc/<pid>/stat`) of every process involved, summed,
//!   divided by the commits (warm-up included) of the run: for us the three
//!   nodes and this process (the client), for Redis the three
//!   `redis-server`s and this process (the RESP client). `#` lines give it
//!   for every case and per process. CPU time stays meaningful when other
//!   work shares the machine and makes rates and latencies noisy.
//!
//! Other knobs: `BENCH_CASES=sync_1,pipelined` runs only these cases (the
//! `bytes_per_update` and `cpu_us_per_commit` lines need `sync_1`),
//! `BENCH_PASSES=everysec` (or `always`) runs one pass, `BENCH_REDIS=0`
//! leaves Redis out, `BENCH_INFLIGHT=<n>` sets the pipelined window,
//! `RUST_LOG` is handed to the nodes (default `warn`); each node's log is
//! printed if it fails to form a set.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use session_runtime::net::message::{Message, PeerRole, Request, Response, Role};
use session_runtime::net::{Connection, Stats};
use session_runtime::{Client, ClientConfig, Session, SessionId, Tracked};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// The cluster secret (at least 16 bytes), written to a file for the nodes.
const SECRET: &[u8] = b"replication-benchmark-cluster-secret";

/// A small web session; every update changes `counter` only.
#[derive(Session, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Visit {
    #[immutable]
    user: u64,
    counter: u32,
    page: String,
    roles: Vec<String>,
}

impl Visit {
    fn new(user: u64) -> Self {
        Self {
            user,
            counter: 0,
            page: "/cart".into(),
            roles: vec!["customer".into()],
        }
    }
}

// ---------------------------------------------------------------------------
// Settings and measurement
// ---------------------------------------------------------------------------

/// One pass: the fsync policy of both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    EverySec,
    Always,
}

impl Pass {
    /// The `--fsync` of our nodes and the `appendfsync` of Redis.
    fn policy(self) -> &'static str {
        match self {
            Pass::EverySec => "everysec",
            Pass::Always => "always",
        }
    }

    /// Prefix of the case names.
    fn prefix(self) -> &'static str {
        match self {
            Pass::EverySec => "",
            Pass::Always => "always_",
        }
    }
}

#[derive(Debug, Clone)]
struct Settings {
    run: Duration,
    warmup: Duration,
    inflight: usize,
    writers: usize,
    /// `BENCH_CASES=sync_1,pipelined`: run only these.
    cases: Option<Vec<String>>,
    passes: Vec<Pass>,
    /// `BENCH_REDIS=0`: leave Redis out.
    redis: bool,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        let v = v.trim();
        !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
    })
}

impl Settings {
    fn from_env() -> Self {
        let quick = env_flag("BENCH_QUICK") || std::env::args().any(|a| a == "--quick");
        let secs = std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .unwrap_or(if quick { 0.5 } else { 3.0 });
        let run = Duration::from_secs_f64(secs);
        let inflight = std::env::var("BENCH_INFLIGHT")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(512);
        let list = |name: &str| {
            std::env::var(name).ok().map(|c| {
                c.split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        let passes = match list("BENCH_PASSES") {
            None => vec![Pass::EverySec, Pass::Always],
            Some(p) => {
                let passes: Vec<Pass> = [Pass::EverySec, Pass::Always]
                    .into_iter()
                    .filter(|pass| p.iter().any(|x| x == pass.policy()))
                    .collect();
                assert!(
                    !passes.is_empty(),
                    "BENCH_PASSES names no pass (everysec, always): {p:?}"
                );
                passes
            }
        };
        let redis = std::env::var("BENCH_REDIS").map_or(true, |v| v != "0");
        Self {
            run,
            warmup: (run / 5).min(Duration::from_millis(300)),
            inflight,
            writers: 50,
            cases: list("BENCH_CASES"),
            passes,
            redis,
        }
    }

    fn wants(&self, case: &str) -> bool {
        self.cases
            .as_ref()
            .is_none_or(|c| c.iter().any(|c| c == case))
    }
}

/// The timed window of a case: operations started before `measure` are
/// warm-up; no operation starts after `end`.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure: Instant,
    end: Instant,
}

impl Window {
    fn new(s: &Settings) -> Self {
        let now = Instant::now();
        Self {
            measure: now + s.warmup,
            end: now + s.warmup + s.run,
        }
    }
}

/// Latencies (ns) of the measured operations of one worker, and how many
/// operations it ran in all (warm-up included).
#[derive(Debug, Default)]
struct Samples {
    lat: Vec<u64>,
    total: u64,
}

impl Samples {
    fn record(&mut self, w: &Window, started: Instant, done: Instant) {
        self.total += 1;
        if started >= w.measure {
            self.lat
                .push(u64::try_from((done - started).as_nanos()).unwrap_or(u64::MAX));
        }
    }

    fn merge(parts: Vec<Samples>) -> Samples {
        let mut all = Samples::default();
        for p in parts {
            all.total += p.total;
            all.lat.extend(p.lat);
        }
        all
    }
}

#[derive(Debug, Clone)]
struct Measured {
    ops: f64,
    p50_us: f64,
    p99_us: f64,
    /// Operations run in all, warm-up included.
    total: u64,
    /// CPU time (s) of each process involved over the whole run (warm-up
    /// included), by label.
    cpu: Vec<(String, f64)>,
}

impl Measured {
    /// CPU µs per operation, all processes together.
    fn cpu_us_per_op(&self) -> f64 {
        self.cpu.iter().map(|c| c.1).sum::<f64>() * 1e6 / self.total.max(1) as f64
    }

    /// `label=µs/op,...`, per process.
    fn cpu_detail(&self) -> String {
        self.cpu
            .iter()
            .map(|(l, c)| format!("{l}:{:.1}", c * 1e6 / self.total.max(1) as f64))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn summarize(mut s: Samples, w: &Window, finished: Instant, cpu: Vec<(String, f64)>) -> Measured {
    assert!(
        !s.lat.is_empty(),
        "no operation completed in the measured window"
    );
    s.lat.sort_unstable();
    let q =
        |p: f64| s.lat[((s.lat.len() as f64 * p) as usize).min(s.lat.len() - 1)] as f64 / 1000.0;
    // Operations started in the window, over the time from its start until
    // the last of them finished.
    let secs = (finished.max(w.end) - w.measure).as_secs_f64();
    Measured {
        ops: s.lat.len() as f64 / secs,
        p50_us: q(0.50),
        p99_us: q(0.99),
        total: s.total,
        cpu,
    }
}

/// The processes whose CPU time a case counts: `None` is this process.
type Procs = Vec<(String, Option<u32>)>;

/// CPU time of `procs` from `start()` until `stop()`.
struct CpuMeter<'a> {
    procs: &'a Procs,
    start: Vec<f64>,
}

impl<'a> CpuMeter<'a> {
    fn start(procs: &'a Procs) -> Self {
        Self {
            procs,
            start: procs.iter().map(|p| cpu_secs(p.1)).collect(),
        }
    }

    fn stop(self) -> Vec<(String, f64)> {
        self.procs
            .iter()
            .zip(self.start)
            .map(|((label, pid), start)| (label.clone(), (cpu_secs(*pid) - start).max(0.0)))
            .collect()
    }
}

/// CPU time (user + system, s) used so far by a process (`None`: this
/// one), from `/proc`; 0 where that is not readable.
fn cpu_secs(pid: Option<u32>) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    });
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is field
    // 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / ticks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills a child and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------
// Our side: three `session-node` processes
// ---------------------------------------------------------------------------

/// The `session-node` binary (see the module documentation).
fn session_node_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SESSION_NODE_BIN") {
        return p.into();
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_session-node") {
        if Path::new(p).is_file() {
            return p.into();
        }
    }
    // This bench runs as <target>/release/deps/replication-<hash>; the
    // release binary lands in <target>/release.
    let exe = std::env::current_exe().unwrap();
    let release = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release"));
    let bin = release.join("session-node");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("# building session-node: cargo build --release --bin session-node");
    let built = Command::new(cargo)
        .args(["build", "--release", "--bin", "session-node"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        built || bin.is_file(),
        "cannot build session-node and there is none at {}",
        bin.display()
    );
    if !built {
        eprintln!(
            "# warning: cargo build failed; using the existing {}",
            bin.display()
        );
    }
    bin
}

/// One `session-node` process; killed when dropped.
struct NodeProc {
    id: u64,
    addr: String,
    child: Child,
    log: PathBuf,
}

/// Three voting `session-node` processes on fresh data directories under
/// `root`, killed when dropped (also on a panic).
struct NodeSet {
    nodes: Vec<NodeProc>,
}

impl Drop for NodeSet {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            kill(&mut n.child);
        }
    }
}

impl NodeSet {
    fn start(bin: &Path, root: &Path, secret_file: &Path, fsync: &str) -> Self {
        let addrs: Vec<String> = (0..3)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let mut set = NodeSet { nodes: Vec::new() };
        for (i, addr) in addrs.iter().enumerate() {
            let id = i as u64 + 1;
            let data = root.join(format!("node-{fsync}-{id}"));
            let log = root.join(format!("node-{fsync}-{id}.log"));
            let mut cmd = Command::new(bin);
            cmd.args(["serve", "--id", &id.to_string(), "--listen", addr])
                .arg("--data-dir")
                .arg(&data)
                .arg("--secret-file")
                .arg(secret_file)
                .args(["--fsync", fsync]);
            for (j, peer) in addrs.iter().enumerate() {
                if j != i {
                    cmd.arg("--peer").arg(format!("{}={peer}", j + 1));
                }
            }
            let child = cmd
                .env("RUST_LOG", &rust_log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            set.nodes.push(NodeProc {
                id,
                addr: addr.clone(),
                child,
                log,
            });
        }
        set
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "---- node {} ({}):\n{}",
                    n.id,
                    n.addr,
                    std::fs::read_to_string(&n.log).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every node's stats (`None` where unreachable).
    async fn stats(&self) -> Vec<Option<Stats>> {
        let mut out = Vec::new();
        for n in &self.nodes {
            out.push(node_stats(&n.addr).await);
        }
        out
    }

    /// Waits until one node leads in a term the other two follow it in;
    /// returns the leader's id.
    async fn wait_leader(&mut self, limit: Duration) -> u64 {
        let start = Instant::now();
        loop {
            let exited = self
                .nodes
                .iter_mut()
                .find_map(|n| Some((n.id, n.child.try_wait().ok()??)));
            if let Some((id, status)) = exited {
                panic!("session-node {id} exited with {status}\n{}", self.logs());
            }
            let stats = self.stats().await;
            let leader = stats
                .iter()
                .flatten()
                .find(|s| s.role == Role::Leader)
                .map(|s| (s.id, s.term));
            if let Some((id, term)) = leader {
                if stats.iter().all(|s| {
                    s.as_ref()
                        .is_some_and(|s| s.leader == Some(id) && s.term == term)
                }) {
                    return id;
                }
            }
            if start.elapsed() > limit {
                panic!("no leader within {limit:?}: {stats:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits (bounded) until every node applied everything the leader
    /// logged, so that one case's backlog does not spill into the next.
    async fn settle(&self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            let stats = self.stats().await;
            let last = stats.iter().flatten().map(|s| s.last_log).max();
            if let Some(last) = last {
                if stats
                    .iter()
                    .all(|s| s.as_ref().is_some_and(|s| s.last_applied >= last))
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("# warning: the replica set did not settle within {limit:?}");
    }

    /// The processes a case of ours counts, leader first.
    fn procs(&self, leader: u64) -> Procs {
        let mut procs: Procs = Vec::new();
        let mut followers = 0;
        let mut nodes: Vec<&NodeProc> = self.nodes.iter().collect();
        nodes.sort_by_key(|n| n.id != leader);
        for n in nodes {
            let label = if n.id == leader {
                "leader".to_string()
            } else {
                followers += 1;
                format!("follower{followers}")
            };
            procs.push((label, Some(n.child.id())));
        }
        procs.push(("client".into(), None));
        procs
    }
}

/// One node's counters, as a client; `None` if unreachable.
async fn node_stats(addr: &str) -> Option<Stats> {
    let limit = Duration::from_millis(500);
    let (mut conn, _) = Connection::connect(
        addr,
        SECRET,
        PeerRole::Client { schema: None },
        16 << 20,
        limit,
    )
    .await
    .ok()?;
    conn.send(&Message::Request {
        id: 1,
        request: Request::Stats,
    })
    .await
    .ok()?;
    match conn.read_within(limit).await.ok()? {
        Message::Response {
            response: Response::Stats(s),
            ..
        } => Some(s),
        _ => None,
    }
}

/// The leader's stats, through the client.
async fn leader_stats(client: &Client) -> Stats {
    client.stats().await.unwrap().remove(0)
}

async fn sessions(client: &Client, n: usize) -> Vec<(SessionId, Tracked<Visit>)> {
    let creates = (0..n).map(|i| {
        let client = client.clone();
        async move { client.create_tracked(Visit::new(i as u64)).await.unwrap() }
    });
    join_all(creates).await
}

/// Runs futures concurrently (as tasks) and collects their outputs.
async fn join_all<F>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// `writers` tasks committing at once through one shared client, each on
/// its own session, each sequentially.
async fn ours_writers(client: &Client, writers: usize, s: &Settings, procs: &Procs) -> Measured {
    let list = sessions(client, writers).await;
    let cpu = CpuMeter::start(procs);
    let w = Window::new(s);
    let mut tasks = Vec::new();
    for (id, mut t) in list {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            loop {
                *t.edit().counter() += 1;
                let started = Instant::now();
                if started >= w.end {
                    break;
                }
                client.commit(id, &mut t).await.unwrap();
                samples.record(&w, started, Instant::now());
            }
            samples
        }));
    }
    let mut parts = Vec::new();
    for t in tasks {
        parts.push(t.await.unwrap());
    }
    let finished = Instant::now();
    summarize(Samples::merge(parts), &w, finished, cpu.stop())
}

// ---------------------------------------------------------------------------
// Redis side
// ---------------------------------------------------------------------------

/// A Redis primary and two replicas, killed when dropped (also on a panic).
struct RedisSet {
    /// Primary first.
    servers: Vec<(Child, u16, PathBuf)>,
}

impl Drop for RedisSet {
    fn drop(&mut self) {
        for (child, _, _) in self.servers.iter_mut().rev() {
            kill(child);
        }
    }
}

/// `redis-server --version`, if it runs.
fn redis_version() -> Option<String> {
    let out = Command::new("redis-server")
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl RedisSet {
    fn start(root: &Path, appendfsync: &str) -> Self {
        let mut set = RedisSet {
            servers: Vec::new(),
        };
        let primary = free_port();
        for (i, name) in ["primary", "replica1", "replica2"].iter().enumerate() {
            let port = if i == 0 { primary } else { free_port() };
            let dir = root.join(format!("redis-{appendfsync}-{name}"));
            std::fs::create_dir_all(&dir).unwrap();
            let log = dir.join("redis.log");
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "yes"])
                .args(["--appendfsync", appendfsync])
                .args(["--repl-diskless-sync-delay", "0"])
                .args(["--daemonize", "no"])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(&log);
            if i > 0 {
                cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            set.servers.push((child, port, log));
        }
        set
    }

    fn port(&self) -> u16 {
        self.servers[0].1
    }

    fn logs(&self) -> String {
        self.servers
            .iter()
            .map(|(_, port, log)| {
                format!(
                    "---- redis :{port}:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until both replicas are linked and in sync and no AOF rewrite
    /// (replicas start one after their first sync) is pending.
    fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            let infos: Vec<Option<String>> = self
                .servers
                .iter()
                .map(|(_, port, _)| blocking_info(*port, "all"))
                .collect();
            let field = |info: &str, name: &str| -> Option<String> {
                info.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            };
            let ready = infos.iter().enumerate().all(|(i, info)| {
                info.as_deref().is_some_and(|info| {
                    let linked = if i == 0 {
                        field(info, "connected_slaves").as_deref() == Some("2")
                    } else {
                        field(info, "master_link_status").as_deref() == Some("up")
                            && field(info, "master_sync_in_progress").as_deref() == Some("0")
                    };
                    linked
                        && field(info, "aof_enabled").as_deref() == Some("1")
                        && field(info, "aof_rewrite_in_progress").as_deref() == Some("0")
                        && field(info, "aof_rewrite_scheduled").as_deref() == Some("0")
                        && field(info, "rdb_bgsave_in_progress").as_deref() == Some("0")
                })
            });
            if ready {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "the Redis replicas did not sync within {limit:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The processes a Redis case counts, primary first.
    fn procs(&self) -> Procs {
        let mut procs: Procs = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, (c, _, _))| {
                let label = if i == 0 {
                    "primary".to_string()
                } else {
                    format!("replica{i}")
                };
                (label, Some(c.id()))
            })
            .collect();
        procs.push(("client".into(), None));
        procs
    }
}

/// `INFO <section>` over a blocking socket; `None` while not reachable.
fn blocking_info(port: u16, section: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(&command(&[b"INFO", section.as_bytes()])).ok()?;
    let mut r = std::io::BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let len: usize = line.strip_prefix('$')?.trim().parse().ok()?;
    let mut body = vec![0u8; len + 2];
    std::io::Read::read_exact(&mut r, &mut body).ok()?;
    String::from_utf8(body).ok()
}

/// Appends one RESP command.
fn command_into(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    command_into(&mut out, args);
    out
}

/// One RESP reply, as far as this benchmark needs them.
#[derive(Debug, PartialEq)]
enum Reply {
    Int(i64),
    Status(String),
    Bulk(Option<Vec<u8>>),
}

/// Reads one reply; an error reply panics.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, line: &mut Vec<u8>) -> Reply {
    line.clear();
    let n = r.read_until(b'\n', line).await.unwrap();
    assert!(n >= 3, "Redis closed the connection");
    let body = std::str::from_utf8(&line[1..n - 2]).unwrap();
    match line[0] {
        b':' => Reply::Int(body.parse().unwrap()),
        b'+' => Reply::Status(body.to_string()),
        b'$' => {
            let len: i64 = body.parse().unwrap();
            if len < 0 {
                return Reply::Bulk(None);
            }
            let mut data = vec![0u8; usize::try_from(len).unwrap() + 2];
            r.read_exact(&mut data).await.unwrap();
            data.truncate(data.len() - 2);
            Reply::Bulk(Some(data))
        }
        b'-' => panic!("Redis error: {body}"),
        other => panic!("unexpected RESP reply type {:?}", other as char),
    }
}

/// Reads a `WAIT` answer and checks that a replica acknowledged.
async fn read_wait<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, line: &mut Vec<u8>) {
    match read_reply(r, line).await {
        Reply::Int(n) if n >= 1 => {}
        other => panic!("WAIT 1 timed out: {other:?}"),
    }
}

async fn redis_connect(port: u16) -> BufReader<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.set_nodelay(true).unwrap();
    BufReader::new(s)
}

/// The primary's `master_repl_offset`.
async fn repl_offset(port: u16) -> u64 {
    let mut c = redis_connect(port).await;
    c.get_mut()
        .write_all(&command(&[b"INFO", b"replication"]))
        .await
        .unwrap();
    let Reply::Bulk(Some(info)) = read_reply(&mut c, &mut Vec::new()).await else {
        panic!("INFO gave no text")
    };
    let info = String::from_utf8(info).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// A key per session: its 128-bit random id in hex, as an application
/// would name a session hash.
fn redis_key() -> Vec<u8> {
    SessionId::random().to_string().into_bytes()
}

/// Bytes `WAIT` adds to the replication stream: `REPLCONF GETACK *`.
fn getack_bytes() -> usize {
    command(&[b"REPLCONF", b"GETACK", b"*"]).len()
}

/// `writers` connections, each doing `HSET key counter n` + `WAIT 1 1000`
/// sequentially (both written at once, both answers awaited).
async fn redis_sync(port: u16, writers: usize, s: &Settings, procs: &Procs) -> Measured {
    let mut conns = Vec::new();
    for _ in 0..writers {
        conns.push((redis_connect(port).await, redis_key()));
    }
    let cpu = CpuMeter::start(procs);
    let w = Window::new(s);
    let mut tasks = Vec::new();
    for (mut c, key) in conns {
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let (mut buf, mut line) = (Vec::new(), Vec::new());
            for n in 1u64.. {
                let started = Instant::now();
                if started >= w.end {
                    break;
                }
                buf.clear();
                command_into(
                    &mut buf,
                    &[b"HSET", &key, b"counter", n.to_string().as_bytes()],
                );
                command_into(&mut buf, &[b"WAIT", b"1", b"1000"]);
                c.get_mut().write_all(&buf).await.unwrap();
                assert!(matches!(read_reply(&mut c, &mut line).await, Reply::Int(_)));
                read_wait(&mut c, &mut line).await;
                samples.record(&w, started, Instant::now());
            }
            samples
        }));
    }
    let mut parts = Vec::new();
    for t in tasks {
        parts.push(t.await.unwrap());
    }
    let finished = Instant::now();
    summarize(Samples::merge(parts), &w, finished, cpu.stop())
}

/// One connection with up to `inflight` `HSET`s in flight: a writer sends
/// whatever the window allows in one write, closed by one `WAIT 1 1000`; a
/// reader matches answers in order, and every `HSET` of a batch is done when
/// its `WAIT` answers.
async fn redis_pipelined(port: u16, s: &Settings, procs: &Procs) -> Measured {
    let (read, mut write) = redis_connect(port).await.into_inner().into_split();
    let keys: Vec<Vec<u8>> = (0..s.inflight).map(|_| redis_key()).collect();
    let window = Arc::new(Semaphore::new(s.inflight));
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, usize)>();
    let cpu = CpuMeter::start(procs);
    let w = Window::new(s);
    let writer = {
        let window = window.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut n = 0u64;
            loop {
                window.acquire().await.unwrap().forget();
                let mut batch = 1;
                while let Ok(p) = window.try_acquire() {
                    p.forget();
                    batch += 1;
                }
                let started = Instant::now();
                if started >= w.end {
                    break;
                }
                buf.clear();
                for _ in 0..batch {
                    n += 1;
                    let key = &keys[(n as usize) % keys.len()];
                    command_into(
                        &mut buf,
                        &[b"HSET", key, b"counter", n.to_string().as_bytes()],
                    );
                }
                command_into(&mut buf, &[b"WAIT", b"1", b"1000"]);
                write.write_all(&buf).await.unwrap();
                sent_tx.send((started, batch)).unwrap();
            }
        })
    };
    let mut r = BufReader::with_capacity(64 << 10, read);
    let mut samples = Samples::default();
    let mut line = Vec::new();
    while let Some((started, batch)) = sent_rx.recv().await {
        for _ in 0..batch {
            assert!(matches!(read_reply(&mut r, &mut line).await, Reply::Int(_)));
        }
        read_wait(&mut r, &mut line).await;
        let done = Instant::now();
        for _ in 0..batch {
            samples.record(&w, started, done);
        }
        window.add_permits(batch);
    }
    writer.await.unwrap();
    let finished = Instant::now();
    summarize(samples, &w, finished, cpu.stop())
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

fn print_case(name: &str, ours: &Measured, redis: Option<&Measured>) {
    let (ro, r50, r99) = match redis {
        Some(r) => (
            format!("{:.0}", r.ops),
            format!("{:.0}", r.p50_us),
            format!("{:.0}", r.p99_us),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    println!(
        "case={name} ours_ops={:.0} ours_p50_us={:.0} ours_p99_us={:.0} redis_ops={ro} redis_p50_us={r50} redis_p99_us={r99}",
        ours.ops, ours.p50_us, ours.p99_us
    );
    println!(
        "# case={name} cpu_us_per_commit ours={:.1} ({}; {} commits) redis={}",
        ours.cpu_us_per_op(),
        ours.cpu_detail(),
        ours.total,
        redis.map_or("-".to_string(), |r| format!(
            "{:.1} ({}; {} commits)",
            r.cpu_us_per_op(),
            r.cpu_detail(),
            r.total
        )),
    );
    let _ = std::io::stdout().flush();
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// One pass: both sides at one fsync policy, every case.
async fn run_pass(s: &Settings, pass: Pass, nodes: &mut NodeSet, redis: Option<&RedisSet>) {
    let p = pass.prefix();
    let leader = nodes.wait_leader(Duration::from_secs(30)).await;
    let client = Client::connect(ClientConfig::new(nodes.addrs(), SECRET))
        .await
        .unwrap();
    let ours_procs = nodes.procs(leader);
    let redis_procs = redis.map(RedisSet::procs);
    let start_stats = leader_stats(&client).await;
    println!(
        "# pass {}: ours --fsync {} (leader node {leader}, term {}), redis appendfsync {}",
        pass.policy(),
        pass.policy(),
        start_stats.term,
        if redis.is_some() { pass.policy() } else { "-" },
    );

    if s.wants("sync_1") {
        let before = leader_stats(&client).await;
        let ours = ours_writers(&client, 1, s, &ours_procs).await;
        let after = leader_stats(&client).await;
        nodes.settle(Duration::from_secs(10)).await;
        let entries = after.entries_shipped.saturating_sub(before.entries_shipped);
        let bytes = after.bytes_shipped.saturating_sub(before.bytes_shipped);
        let ours_bytes =
            (after.id == before.id && entries > 0).then(|| bytes as f64 / entries as f64);
        let r = match (redis, &redis_procs) {
            (Some(r), Some(procs)) => {
                let before = repl_offset(r.port()).await;
                let m = redis_sync(r.port(), 1, s, procs).await;
                let after = repl_offset(r.port()).await;
                let per = (after - before) as f64 / m.total.max(1) as f64;
                Some((m, per))
            }
            _ => None,
        };
        print_case(&format!("{p}sync_1"), &ours, r.as_ref().map(|r| &r.0));
        println!(
            "case={p}bytes_per_update ours={} redis={}",
            fmt_opt(ours_bytes),
            fmt_opt(r.as_ref().map(|r| r.1))
        );
        println!(
            "# case={p}bytes_per_update ours: {bytes} bytes / {entries} entries shipped by the leader \
             for {} commits (2 followers: each entry is shipped twice); redis: master_repl_offset \
             growth per HSET, {} without WAIT's {}-byte REPLCONF GETACK",
            ours.total,
            fmt_opt(r.as_ref().map(|r| r.1 - getack_bytes() as f64)),
            getack_bytes(),
        );
        println!(
            "case={p}cpu_us_per_commit ours={:.1} redis={}",
            ours.cpu_us_per_op(),
            fmt_opt(r.as_ref().map(|r| r.0.cpu_us_per_op()))
        );
        let _ = std::io::stdout().flush();
    }

    if s.wants("sync_50") {
        let ours = ours_writers(&client, s.writers, s, &ours_procs).await;
        nodes.settle(Duration::from_secs(10)).await;
        let r = match (redis, &redis_procs) {
            (Some(r), Some(procs)) => Some(redis_sync(r.port(), s.writers, s, procs).await),
            _ => None,
        };
        print_case(&format!("{p}sync_50"), &ours, r.as_ref());
    }

    if s.wants("pipelined") {
        let ours = ours_writers(&client, s.inflight, s, &ours_procs).await;
        nodes.settle(Duration::from_secs(10)).await;
        let r = match (redis, &redis_procs) {
            (Some(r), Some(procs)) => Some(redis_pipelined(r.port(), s, procs).await),
            _ => None,
        };
        print_case(&format!("{p}pipelined"), &ours, r.as_ref());
        println!("# case={p}pipelined inflight={}", s.inflight);
    }

    let end = leader_stats(&client).await;
    println!(
        "# pass {}: leader node {} term {} (start: node {} term {}{}), last_log={} ops_applied={} \
         entries_shipped={} snapshots_built={}",
        pass.policy(),
        end.id,
        end.term,
        start_stats.id,
        start_stats.term,
        if end.term != start_stats.term {
            "; WARNING: an election happened during the pass"
        } else {
            ""
        },
        end.last_log,
        end.ops_applied,
        end.entries_shipped,
        end.snapshots_built,
    );
    let _ = std::io::stdout().flush();
}

fn main() {
    let s = Settings::from_env();
    let ci = env_flag("CI");
    let redis_version = if s.redis { redis_version() } else { None };
    if !s.redis {
        println!("# redis: left out (BENCH_REDIS=0)");
    } else if let Some(v) = &redis_version {
        println!("# redis: {v}");
        if !v.contains("v=7.") {
            println!("# warning: this benchmark is meant for Redis 7, found {v}");
        }
    } else {
        let install = "install it with `apt-get install -y redis-server redis-tools`";
        assert!(
            !ci,
            "redis-server NOT FOUND and CI is set: failing instead of running our side only; {install}"
        );
        let msg = format!(
            "redis-server NOT FOUND: running OUR SIDE ONLY, the Redis columns show `-`; {install}"
        );
        println!("########## {msg} ##########");
        eprintln!("########## {msg} ##########");
    }

    let root = tempfile::Builder::new()
        .prefix("replication-bench-")
        .tempdir()
        .unwrap();
    let secret_file = root.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let bin = session_node_bin();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# replication bench: {:?} per case after {:?} warm-up, {} cores, 3 nodes ({}), data in {}",
        s.run,
        s.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        bin.display(),
        root.path().display(),
    );
    for &pass in &s.passes {
        // Both guards kill their processes however the pass ends, a panic
        // included; the data directories go with `root`.
        let mut nodes = NodeSet::start(&bin, root.path(), &secret_file, pass.policy());
        let redis = redis_version.as_ref().map(|_| {
            let r = RedisSet::start(root.path(), pass.policy());
            r.wait_ready(Duration::from_secs(30));
            r
        });
        runtime.block_on(run_pass(&s, pass, &mut nodes, redis.as_ref()));
        drop(redis);
        drop(nodes);
    }
    drop(runtime);
}
