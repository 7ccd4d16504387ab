//! Replication: our primary + backup against a Redis primary + replica, on
//! loopback, both started by this benchmark.
//!
//! Run with `cargo bench --bench replication`; `BENCH_QUICK=1` (or
//! `-- --quick`) runs each case for about 0.5 s instead of 3 s, and
//! `BENCH_SECS=<seconds>` sets the duration of every case. Redis needs
//! `redis-server` on `PATH`; without it the Redis columns show `-`.
//!
//! Our side is a primary and one backup started in-process with
//! `Node::start` on 127.0.0.1 (sharing this process's tokio runtime with the
//! clients); the Redis side is `redis-server --save '' --appendonly no` and a
//! replica of it (`--replicaof`), spoken to over a small hand-written RESP
//! client (no client library, so the client adds as little as it can to
//! Redis's numbers).
//!
//! Cases, each printed as one line:
//!
//! - `sync_1`: one writer, one session, sequential commits of one small
//!   field (a `u32` counter) with `Durability::Sync(1)`; Redis: `HSET key
//!   counter <n>` and `WAIT 1 1000`, written together and both answers
//!   awaited, sequentially.
//! - `sync_50`: 50 writers, each with its own session, `Sync(1)`; ours is
//!   run once with one shared `Client` and once with one `Client` per
//!   writer, and the faster is reported (`client=` says which); Redis: 50
//!   connections doing `HSET` + `WAIT 1 1000`.
//! - `async_pipelined`: `BENCH_INFLIGHT` (default 512) commits in flight
//!   through one `Client` (one connection to the primary), each writer on
//!   its own session, `Durability::Async`; Redis: the same number of `HSET`s
//!   in flight on one pipelined connection.
//!
//! `ops` is completed commits per second, `p50_us`/`p99_us` the latency of
//! one commit in microseconds (for pipelined cases: from the moment the
//! request was handed to the client until its answer). `bytes_per_update`
//! is the primary's `bytes_shipped / deltas_shipped` over the case: the
//! encoded replication entry, without the 4-byte frame length. For Redis,
//! the comparable figure is the growth of `master_repl_offset` per command
//! (printed on a separate line; for the `WAIT` cases it includes the
//! `REPLCONF GETACK` that `WAIT` puts into the stream). A `# case=...
//! cpu_us_per_op` line gives the CPU time per operation of every process
//! involved (from `/proc`), which stays meaningful when other work shares
//! the machine and makes the rates and latencies noisy.
//!
//! The run ends with one PASS/FAIL line per target: `sync_1` p50 <= 70 us,
//! p99 <= 120 us, and not slower than Redis `HSET`+`WAIT` (at least its
//! rate and at most its p50); `sync_50` at least Redis's rate;
//! `async_pipelined` >= 1M commits/s; <= 30 replicated bytes per update.
//!
//! Other knobs: `BENCH_CASES=sync_1,sync_50` runs only these cases,
//! `BENCH_REDIS=0` leaves Redis out, `BENCH_INFLIGHT=<n>` sets the
//! pipelined window, `RUST_LOG=warn` shows the nodes' logs.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use session_runtime::node::{Node, NodeConfig, NodeHandle};
use session_runtime::{Client, ClientConfig, Durability, Session, SessionId, Tracked};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

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

#[derive(Debug, Clone)]
struct Settings {
    run: Duration,
    warmup: Duration,
    inflight: usize,
    writers: usize,
    /// `BENCH_CASES=sync_1,async_pipelined`: run only these.
    cases: Option<Vec<String>>,
    /// `BENCH_REDIS=0`: leave Redis out.
    redis: bool,
}

impl Settings {
    fn from_env() -> Self {
        let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
            || std::env::args().any(|a| a == "--quick");
        let secs = std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .unwrap_or(if quick { 0.5 } else { 3.0 });
        let run = Duration::from_secs_f64(secs);
        let inflight = std::env::var("BENCH_INFLIGHT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(512);
        let cases = std::env::var("BENCH_CASES")
            .ok()
            .map(|c| c.split(',').map(|c| c.trim().to_string()).collect());
        let redis = std::env::var("BENCH_REDIS").map_or(true, |v| v != "0");
        Self {
            run,
            warmup: (run / 5).min(Duration::from_millis(300)),
            inflight,
            writers: 50,
            cases,
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

#[derive(Debug, Clone, Copy)]
struct Measured {
    ops: f64,
    p50_us: f64,
    p99_us: f64,
    /// Operations run in all, warm-up included.
    total: u64,
    /// CPU time per operation (warm-up included) of every process involved.
    cpu_us_per_op: f64,
}

fn summarize(mut s: Samples, w: &Window, finished: Instant) -> Measured {
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
        cpu_us_per_op: 0.0,
    }
}

// ---------------------------------------------------------------------------
// Our side
// ---------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Ours {
    primary: NodeHandle,
    backup: NodeHandle,
    nodes: Vec<String>,
}

async fn start_ours() -> Ours {
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let config = |me: &str, peer: &str, bootstrap: bool| {
        let mut c = NodeConfig::new(me, SECRET).peers([peer]);
        c.bootstrap = Some(bootstrap);
        c.failover_timeout = Duration::from_secs(5);
        c
    };
    let primary = Node::start(config(&a, &b, true)).await.unwrap();
    let backup = Node::start(config(&b, &a, false)).await.unwrap();
    let start = Instant::now();
    while primary.stats().backups.len() != 1 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the backup did not link up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ours {
        primary,
        backup,
        nodes: vec![a, b],
    }
}

impl Ours {
    async fn client(&self, durability: Durability) -> Client {
        let mut c = ClientConfig::new(self.nodes.iter().cloned(), SECRET);
        c.durability = Some(durability);
        Client::connect(c).await.unwrap()
    }

    /// `(bytes_shipped, deltas_shipped)` of the primary.
    fn shipped(&self) -> (u64, u64) {
        let s = self.primary.stats();
        (s.bytes_shipped, s.deltas_shipped)
    }
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

/// Commits on `writers` sessions at once, each writer sequentially, writer
/// `i` through `clients[i % clients.len()]`.
async fn ours_writers(clients: &[Client], writers: usize, s: &Settings) -> Measured {
    let mut per_client: Vec<Vec<(SessionId, Tracked<Visit>)>> = Vec::new();
    for (k, c) in clients.iter().enumerate() {
        let mine = (0..writers).filter(|i| i % clients.len() == k).count();
        per_client.push(sessions(c, mine).await);
    }
    let w = Window::new(s);
    let mut tasks = Vec::new();
    for (k, list) in per_client.into_iter().enumerate() {
        for (id, mut t) in list {
            let client = clients[k].clone();
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
    }
    let mut parts = Vec::new();
    for t in tasks {
        parts.push(t.await.unwrap());
    }
    summarize(Samples::merge(parts), &w, Instant::now())
}

// ---------------------------------------------------------------------------
// Redis side
// ---------------------------------------------------------------------------

/// A Redis primary and replica, killed when dropped (also on a panic).
struct RedisPair {
    primary: Child,
    replica: Child,
    primary_port: u16,
    dir: PathBuf,
}

impl Drop for RedisPair {
    fn drop(&mut self) {
        for child in [&mut self.replica, &mut self.primary] {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_redis() -> RedisPair {
    let dir = std::env::temp_dir().join(format!("replication-bench-redis-{}", std::process::id()));
    let spawn = |port: u16, name: &str, extra: &[String]| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args([
                "--dir",
                d.to_str().unwrap(),
                "--logfile",
                "",
                "--daemonize",
                "no",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (pp, rp) = (free_port(), free_port());
    let primary = spawn(pp, "primary", &[]);
    // The guard owns the primary from here on, whatever happens next.
    let replica = spawn(
        rp,
        "replica",
        &["--replicaof".into(), "127.0.0.1".into(), pp.to_string()],
    );
    let pair = RedisPair {
        primary,
        replica,
        primary_port: pp,
        dir,
    };
    let start = Instant::now();
    loop {
        let p = blocking_info(pp);
        let r = blocking_info(rp);
        let linked = p
            .as_deref()
            .is_some_and(|i| i.contains("connected_slaves:1"))
            && r.as_deref()
                .is_some_and(|i| i.contains("master_link_status:up"));
        if linked {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the Redis replica did not connect: {p:?} {r:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    pair
}

/// `INFO replication` over a blocking socket; `None` while not reachable.
fn blocking_info(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(&command(&[b"INFO", b"replication"])).ok()?;
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

/// `writers` connections, each doing `HSET key counter n` + `WAIT 1 1000`
/// sequentially (both written at once, both answers awaited).
async fn redis_sync(port: u16, writers: usize, s: &Settings) -> Measured {
    let mut conns = Vec::new();
    for _ in 0..writers {
        conns.push((redis_connect(port).await, redis_key()));
    }
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
                assert_eq!(
                    read_reply(&mut c, &mut line).await,
                    Reply::Int(1),
                    "WAIT timed out"
                );
                samples.record(&w, started, Instant::now());
            }
            samples
        }));
    }
    let mut parts = Vec::new();
    for t in tasks {
        parts.push(t.await.unwrap());
    }
    summarize(Samples::merge(parts), &w, Instant::now())
}

/// One connection with up to `inflight` `HSET`s in flight: a writer sends
/// whatever the window allows in one write, a reader matches answers in
/// order.
async fn redis_pipelined(port: u16, s: &Settings) -> Measured {
    let (read, mut write) = redis_connect(port).await.into_inner().into_split();
    let keys: Vec<Vec<u8>> = (0..s.inflight).map(|_| redis_key()).collect();
    let window = Arc::new(Semaphore::new(s.inflight));
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, usize)>();
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
            samples.record(&w, started, Instant::now());
        }
        window.add_permits(batch);
    }
    writer.await.unwrap();
    summarize(samples, &w, Instant::now())
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

struct Row {
    case: &'static str,
    ours: Measured,
    redis: Option<Measured>,
    bytes_per_update: f64,
    redis_bytes_per_update: Option<f64>,
    extra: String,
}

impl Row {
    /// A row, printed as soon as it is made.
    fn new(
        case: &'static str,
        ours: Measured,
        redis: Option<(Measured, f64)>,
        bytes: f64,
        extra: String,
    ) -> Self {
        let row = Row {
            case,
            ours,
            redis: redis.map(|r| r.0),
            bytes_per_update: bytes,
            redis_bytes_per_update: redis.map(|r| r.1),
            extra,
        };
        row.print();
        row
    }

    fn print(&self) {
        let (ro, r50, r99) = match &self.redis {
            Some(r) => (
                format!("{:.0}", r.ops),
                format!("{:.1}", r.p50_us),
                format!("{:.1}", r.p99_us),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "case={} ours_ops={:.0} ours_p50_us={:.1} ours_p99_us={:.1} redis_ops={ro} redis_p50_us={r50} redis_p99_us={r99} bytes_per_update={:.1}{}",
            self.case, self.ours.ops, self.ours.p50_us, self.ours.p99_us, self.bytes_per_update, self.extra
        );
        println!(
            "# case={} cpu_us_per_op ours={:.1} redis={} (ours: this whole process = client + primary + backup; \
             redis: this process's RESP client + both redis-server processes)",
            self.case,
            self.ours.cpu_us_per_op,
            self.redis.map_or("-".to_string(), |r| format!("{:.1}", r.cpu_us_per_op)),
        );
        let _ = std::io::stdout().flush();
    }
}

/// Runs `ours` and measures the bytes the primary shipped per entry.
async fn ours_case<F: std::future::Future<Output = Measured>>(
    ours: &Ours,
    run: F,
) -> (Measured, f64) {
    let before = ours.shipped();
    let cpu = cpu_secs(&[None]);
    let mut m = run.await;
    m.cpu_us_per_op = (cpu_secs(&[None]) - cpu) * 1e6 / m.total.max(1) as f64;
    let after = ours.shipped();
    let deltas = (after.1 - before.1).max(1);
    (m, (after.0 - before.0) as f64 / deltas as f64)
}

/// Runs a Redis case and measures the replication stream bytes per command.
async fn redis_case<F: std::future::Future<Output = Measured>>(
    redis: &RedisSide,
    run: F,
) -> (Measured, f64) {
    let procs = [None, Some(redis.pids[0]), Some(redis.pids[1])];
    let before = repl_offset(redis.port).await;
    let cpu = cpu_secs(&procs);
    let mut m = run.await;
    m.cpu_us_per_op = (cpu_secs(&procs) - cpu) * 1e6 / m.total.max(1) as f64;
    let after = repl_offset(redis.port).await;
    (m, (after - before) as f64 / m.total.max(1) as f64)
}

/// CPU time (user + system) used so far by these processes (`None`: this
/// one), from `/proc`; 0 where that is not readable.
fn cpu_secs(pids: &[Option<u32>]) -> f64 {
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
    pids.iter()
        .map(|pid| {
            let path = match pid {
                Some(p) => format!("/proc/{p}/stat"),
                None => "/proc/self/stat".to_string(),
            };
            let Ok(stat) = std::fs::read_to_string(path) else {
                return 0.0;
            };
            // Fields after the command name (which may hold spaces): state is
            // field 3, utime 14, stime 15.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            (tick(11) + tick(12)) / ticks
        })
        .sum()
}

/// What the cases need of the Redis pair.
#[derive(Debug, Clone, Copy)]
struct RedisSide {
    port: u16,
    pids: [u32; 2],
}

async fn run_all(s: Settings, redis: Option<RedisSide>) -> Vec<Row> {
    let ours = start_ours().await;
    let mut rows = Vec::new();

    if s.wants("sync_1") {
        let client = ours.client(Durability::Sync(1)).await;
        let (m, bytes) = ours_case(&ours, ours_writers(std::slice::from_ref(&client), 1, &s)).await;
        let r = match redis {
            Some(r) => Some(redis_case(&r, redis_sync(r.port, 1, &s)).await),
            None => None,
        };
        rows.push(Row::new("sync_1", m, r, bytes, String::new()));
    }

    if s.wants("sync_50") {
        // One shared client, then one client per writer.
        let client = ours.client(Durability::Sync(1)).await;
        let (shared, bytes_shared) = ours_case(
            &ours,
            ours_writers(std::slice::from_ref(&client), s.writers, &s),
        )
        .await;
        let mut own = Vec::new();
        for _ in 0..s.writers {
            own.push(ours.client(Durability::Sync(1)).await);
        }
        let (per_writer, bytes_own) = ours_case(&ours, ours_writers(&own, s.writers, &s)).await;
        drop(own);
        println!(
            "# sync_50 variants: shared_client ops={:.0} p50_us={:.1} p99_us={:.1}; \
             client_per_writer ops={:.0} p50_us={:.1} p99_us={:.1}",
            shared.ops,
            shared.p50_us,
            shared.p99_us,
            per_writer.ops,
            per_writer.p50_us,
            per_writer.p99_us
        );
        let (m, bytes, which) = if shared.ops >= per_writer.ops {
            (shared, bytes_shared, "shared")
        } else {
            (per_writer, bytes_own, "per_writer")
        };
        let r = match redis {
            Some(r) => Some(redis_case(&r, redis_sync(r.port, s.writers, &s)).await),
            None => None,
        };
        rows.push(Row::new("sync_50", m, r, bytes, format!(" client={which}")));
    }

    if s.wants("async_pipelined") {
        let client = ours.client(Durability::Async).await;
        let (m, bytes) = ours_case(
            &ours,
            ours_writers(std::slice::from_ref(&client), s.inflight, &s),
        )
        .await;
        // Let the backup catch up before Redis runs.
        let start = Instant::now();
        while ours
            .primary
            .stats()
            .backups
            .first()
            .is_some_and(|b| b.lag > 0)
            && start.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = match redis {
            Some(r) => Some(redis_case(&r, redis_pipelined(r.port, &s)).await),
            None => None,
        };
        rows.push(Row::new(
            "async_pipelined",
            m,
            r,
            bytes,
            format!(" inflight={}", s.inflight),
        ));
    }

    let stats = ours.primary.stats();
    let backup = ours.backup.stats();
    println!(
        "# ours: primary commits={} deltas_shipped={} full_resyncs_served={} backup_lag={:?}; \
         backup offset={} role={:?}",
        stats.commits,
        stats.deltas_shipped,
        stats.full_resyncs_served,
        stats.backups.iter().map(|b| b.lag).collect::<Vec<_>>(),
        backup.offset,
        backup.role,
    );
    ours.primary.shutdown().await;
    ours.backup.shutdown().await;
    rows
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn report(rows: &[Row]) {
    let get = |c: &str| rows.iter().find(|r| r.case == c);
    for r in rows {
        if let Some(b) = r.redis_bytes_per_update {
            println!(
                "# redis case={} repl_stream_bytes_per_command={b:.1} (master_repl_offset growth / commands{})",
                r.case,
                if r.case.starts_with("sync") { ", WAIT's REPLCONF GETACK included" } else { "" }
            );
        }
    }
    if let Some(sync1) = get("sync_1") {
        println!(
            "{} sync_1 p50 {:.1} us <= 70 us",
            verdict(sync1.ours.p50_us <= 70.0),
            sync1.ours.p50_us
        );
        println!(
            "{} sync_1 p99 {:.1} us <= 120 us",
            verdict(sync1.ours.p99_us <= 120.0),
            sync1.ours.p99_us
        );
        match &sync1.redis {
            Some(r) => println!(
                "{} sync_1 not slower than Redis HSET+WAIT: ours {:.0} ops p50 {:.1} us p99 {:.1} us, \
                 Redis {:.0} ops p50 {:.1} us p99 {:.1} us",
                verdict(sync1.ours.ops >= r.ops && sync1.ours.p50_us <= r.p50_us),
                sync1.ours.ops,
                sync1.ours.p50_us,
                sync1.ours.p99_us,
                r.ops,
                r.p50_us,
                r.p99_us
            ),
            None => println!("SKIP sync_1 not slower than Redis (no redis-server)"),
        }
    }
    if let Some(sync50) = get("sync_50") {
        match &sync50.redis {
            Some(r) => {
                println!(
                    "{} sync_50 ops {:.0} >= Redis {:.0}",
                    verdict(sync50.ours.ops >= r.ops),
                    sync50.ours.ops,
                    r.ops
                )
            }
            None => println!("SKIP sync_50 ops >= Redis (no redis-server)"),
        }
    }
    if let Some(pipe) = get("async_pipelined") {
        println!(
            "{} async_pipelined {:.0} deltas/s >= 1000000",
            verdict(pipe.ours.ops >= 1e6),
            pipe.ours.ops
        );
    }
    let worst = rows.iter().map(|r| r.bytes_per_update).fold(0.0, f64::max);
    println!(
        "{} bytes_per_update {worst:.1} <= 30 (Redis: see the # redis lines)",
        verdict(worst <= 30.0)
    );
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let s = Settings::from_env();
    // Started outside the runtime, so that the guard is dropped (and the
    // servers killed) however `main` ends, a panic included.
    let redis = if !s.redis {
        println!("redis: skipped (BENCH_REDIS=0)");
        None
    } else if redis_installed() {
        Some(start_redis())
    } else {
        println!("redis: skipped (redis-server not installed; apt-get install redis-server)");
        None
    };
    let side = redis.as_ref().map(|r| RedisSide {
        port: r.primary_port,
        pids: [r.primary.id(), r.replica.id()],
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# replication bench: {:?} per case after {:?} warm-up, {} cores, tokio workers = cores",
        s.run,
        s.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let rows = runtime.block_on(run_all(s, side));
    report(&rows);
    drop(runtime);
    drop(redis);
}
