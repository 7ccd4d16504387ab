//! `session-node`: a store node of a replica set (one openraft group).
//!
//! ```text
//! session-node serve --id 1 --listen 127.0.0.1:7001 --data-dir /var/lib/session/1 \
//!     --secret-file secret --peer 2=127.0.0.1:7002 --peer 3=127.0.0.1:7003
//! session-node stats --addr 127.0.0.1:7001 --secret-file secret
//! session-node member add-learner --addr 127.0.0.1:7001 --secret-file secret --id 4 --node-addr 127.0.0.1:7004
//! session-node member set-voters --addr 127.0.0.1:7001 --secret-file secret --voters 1,2,4
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use session_runtime::net::message::{Message, PeerRole, Request, Response};
use session_runtime::net::Connection;
use session_runtime::node::{Node, NodeConfig};
use session_runtime::raft::Fsync;
use session_runtime::store::Limits;

/// A store node for replicated typed sessions.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a node until SIGTERM or Ctrl-C.
    Serve(Box<Serve>),
    /// Prints a node's state and counters as `name=value` lines.
    Stats {
        /// Address of the node.
        #[arg(long)]
        addr: String,
        #[command(flatten)]
        secret: Secret,
    },
    /// Changes the members of a running set (sent to its leader).
    #[command(subcommand)]
    Member(Member),
}

#[derive(Subcommand, Debug)]
enum Member {
    /// Adds a non-voting member; it catches up from the leader.
    AddLearner {
        /// Address of the set's leader.
        #[arg(long)]
        addr: String,
        #[command(flatten)]
        secret: Secret,
        /// The new member's id.
        #[arg(long)]
        id: u64,
        /// The new member's address.
        #[arg(long)]
        node_addr: String,
    },
    /// Makes exactly these members voters (members must be learners or
    /// voters already); with `--remove`, members not listed leave the set,
    /// otherwise they stay as learners.
    SetVoters {
        /// Address of the set's leader.
        #[arg(long)]
        addr: String,
        #[command(flatten)]
        secret: Secret,
        /// Voter ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        voters: Vec<u64>,
        /// Remove members that are not voters.
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Args, Debug)]
struct Secret {
    /// File holding the shared cluster secret (surrounding whitespace is
    /// ignored). Nodes and clients must use the same one.
    #[arg(long, value_name = "PATH")]
    secret_file: PathBuf,
}

impl Secret {
    fn read(&self) -> anyhow::Result<Vec<u8>> {
        let raw = std::fs::read(&self.secret_file)
            .with_context(|| format!("reading the secret file {}", self.secret_file.display()))?;
        let secret = raw.trim_ascii().to_vec();
        if secret.len() < 16 {
            bail!(
                "the cluster secret in {} is shorter than 16 bytes",
                self.secret_file.display()
            );
        }
        Ok(secret)
    }
}

#[derive(Args, Debug)]
struct Serve {
    /// This node's id in the set (a number, unique in the set).
    #[arg(long)]
    id: u64,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: String,
    /// Address other members and clients use for this node (default: the
    /// listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// Directory of the Raft log, the vote and snapshots (created if
    /// missing). A node restarted on it recovers everything it had.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Another voting member as ID=ADDR (repeat for each).
    #[arg(long = "peer", value_name = "ID=ADDR", value_parser = session_runtime::node::parse_member)]
    peers: Vec<(u64, String)>,
    /// A non-voting member as ID=ADDR (repeat for each); added by the
    /// first leader.
    #[arg(long = "learner", value_name = "ID=ADDR", value_parser = session_runtime::node::parse_member)]
    learners: Vec<(u64, String)>,
    /// This node is itself a learner (it never votes or leads).
    #[arg(long)]
    as_learner: bool,
    #[command(flatten)]
    secret: Secret,
    /// File holding the secret application servers prove (default: they
    /// prove the cluster secret). With its own secret, an application
    /// server cannot pose as a node.
    #[arg(long, value_name = "PATH")]
    client_secret_file: Option<PathBuf>,
    /// Most connections in their handshake at once.
    #[arg(long, default_value_t = 256)]
    max_handshakes: usize,
    /// When log entries are fsync'd: `always` (before each acknowledgement),
    /// `everysec` (about once a second), `no` (when the OS decides).
    /// Entries reach the OS before acknowledgement in every mode.
    #[arg(long, default_value = "everysec", value_parser = parse_fsync)]
    fsync: Fsync,
    /// Idle time-to-live of sessions, in seconds.
    #[arg(long, default_value_t = 1800)]
    ttl_secs: u64,
    /// Largest encoded session, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_session_bytes: usize,
    /// Most sessions this node holds.
    #[arg(long, default_value_t = 1_000_000)]
    max_sessions: usize,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_frame_bytes: usize,
    /// Most connections served at once.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Heartbeat interval of the leader, in milliseconds.
    #[arg(long, default_value_t = 100)]
    heartbeat_ms: u64,
    /// Silence after which a follower stands for election, in milliseconds
    /// (randomised up to twice this).
    #[arg(long, default_value_t = 1000)]
    election_ms: u64,
    /// How long a request may wait for the set, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    request_timeout_ms: u64,
    /// Build a snapshot after this many log entries.
    #[arg(long, default_value_t = 20_000)]
    snapshot_every: u64,
    /// Log entries kept behind a snapshot for backups that fell behind.
    #[arg(long, default_value_t = 10_000)]
    log_keep: u64,
    /// Serve only sessions of this schema fingerprint (16 hex digits):
    /// clients of another session type are refused at the handshake.
    #[arg(long, value_name = "HEX", value_parser = parse_fingerprint)]
    schema: Option<u64>,
}

fn parse_fsync(s: &str) -> Result<Fsync, String> {
    s.parse()
        .map_err(|e: session_runtime::raft::ParseFsyncError| e.to_string())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Stats { addr, secret } => runtime.block_on(stats(&addr, &secret.read()?)),
        Command::Member(Member::AddLearner {
            addr,
            secret,
            id,
            node_addr,
        }) => runtime.block_on(admin(
            &addr,
            &secret.read()?,
            Request::AddLearner {
                id,
                addr: node_addr,
            },
        )),
        Command::Member(Member::SetVoters {
            addr,
            secret,
            voters,
            remove,
        }) => runtime.block_on(admin(
            &addr,
            &secret.read()?,
            Request::ChangeVoters { voters, remove },
        )),
    }
}

async fn serve(args: Box<Serve>) -> anyhow::Result<()> {
    let mut config = NodeConfig::new(
        args.id,
        args.listen.clone(),
        args.data_dir.clone(),
        args.secret.read()?,
    )
    .peers(args.peers.clone());
    config.learners = args.learners.clone();
    config.learner = args.as_learner;
    config.advertise = args.advertise.clone();
    config.fsync = args.fsync;
    config.default_ttl = Duration::from_secs(args.ttl_secs);
    config.limits = Limits {
        max_session_bytes: args.max_session_bytes,
        max_sessions: args.max_sessions,
    };
    config.max_frame = args.max_frame_bytes;
    config.max_connections = args.max_connections;
    config.max_handshakes = args.max_handshakes;
    if let Some(path) = &args.client_secret_file {
        config.client_secret = Some(
            Secret {
                secret_file: path.clone(),
            }
            .read()?,
        );
    }
    config.heartbeat = Duration::from_millis(args.heartbeat_ms);
    config.election_timeout = Duration::from_millis(args.election_ms);
    config.request_timeout = Duration::from_millis(args.request_timeout_ms);
    config.snapshot_every = args.snapshot_every;
    config.log_keep = args.log_keep;
    config.schema = args.schema;
    let node = Node::start(config).await.with_context(|| {
        format!(
            "starting node {} on {} with data in {}",
            args.id,
            args.listen,
            args.data_dir.display()
        )
    })?;
    println!("session-node {} listening on {}", args.id, node.addr());
    shutdown_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

fn parse_fingerprint(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|e| format!("not a hex fingerprint: {e}"))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn request(
    addr: &str,
    role: PeerRole,
    secret: &[u8],
    request: Request,
) -> anyhow::Result<Response> {
    let limit = Duration::from_secs(5);
    let (mut conn, _) = Connection::connect(addr, secret, role, 16 << 20, limit)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    conn.send(&Message::Request { id: 1, request }).await?;
    match conn.read_within(limit).await? {
        Message::Response { response, .. } => Ok(response),
        _ => bail!("{addr} did not answer"),
    }
}

async fn admin(addr: &str, secret: &[u8], req: Request) -> anyhow::Result<()> {
    match request(addr, PeerRole::Node { id: 0 }, secret, req).await? {
        Response::Done => {
            println!("done");
            Ok(())
        }
        Response::Error(e) => bail!("{addr} refused: {e:?}"),
        other => bail!("{addr} answered {other:?}"),
    }
}

fn ids(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

async fn stats(addr: &str, secret: &[u8]) -> anyhow::Result<()> {
    let client = PeerRole::Client { schema: None };
    let Response::Stats(s) = request(addr, client.clone(), secret, Request::Stats).await? else {
        bail!("{addr} did not answer with stats");
    };
    println!(
        "id={}\nnode={}\nrole={}\nterm={}",
        s.id,
        s.node,
        s.role.name(),
        s.term
    );
    println!(
        "leader={}\nlast_applied={}\nlast_log={}",
        s.leader.map(|l| l.to_string()).unwrap_or_default(),
        s.last_applied,
        s.last_log
    );
    println!("voters={}\nlearners={}", ids(&s.voters), ids(&s.learners));
    println!(
        "sessions={}\nsession_bytes={}\nops_applied={}",
        s.sessions, s.session_bytes, s.ops_applied
    );
    println!(
        "entries_shipped={}\nbytes_shipped={}",
        s.entries_shipped, s.bytes_shipped
    );
    println!(
        "snapshots_built={}\nsnapshots_installed={}",
        s.snapshots_built, s.snapshots_installed
    );
    println!(
        "expired={}\nrejected_connections={}",
        s.expired, s.rejected_connections
    );
    if let Response::Digest(d) = request(addr, client, secret, Request::Digest).await? {
        println!("digest={d:016x}");
    }
    Ok(())
}
