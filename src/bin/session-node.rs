//! `session-node`: a store node of a replica set.
//!
//! ```text
//! session-node serve --listen 127.0.0.1:7000 --peer 127.0.0.1:7001 --secret-file secret
//! session-node stats --addr 127.0.0.1:7000 --secret-file secret
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use session_runtime::net::message::{Message, PeerRole, Request, Response};
use session_runtime::net::Connection;
use session_runtime::node::{Node, NodeConfig};
use session_runtime::store::Limits;
use session_runtime::Durability;

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
    Serve(Serve),
    /// Prints a node's counters as `name=value` lines.
    Stats {
        /// Address of the node.
        #[arg(long)]
        addr: String,
        #[command(flatten)]
        secret: Secret,
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
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: String,
    /// Address other members and clients use for this node (default: the
    /// listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// Another member of the replica set (repeat for each).
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<String>,
    #[command(flatten)]
    secret: Secret,
    /// Whether this node may lead at start-up when no primary exists
    /// (default: the member with the smallest address).
    #[arg(long)]
    bootstrap: Option<bool>,
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
    /// Bytes of recent changes kept for partial resynchronisation.
    #[arg(long, default_value_t = 64 << 20)]
    backlog_bytes: usize,
    /// Most connections served at once.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Heartbeat interval of the primary, in milliseconds.
    #[arg(long, default_value_t = 100)]
    heartbeat_ms: u64,
    /// Silence after which a backup takes over from its primary, in
    /// milliseconds.
    #[arg(long, default_value_t = 1000)]
    failover_ms: u64,
    /// How long a Sync write waits for backups, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    sync_timeout_ms: u64,
    /// Serve only sessions of this schema fingerprint (16 hex digits):
    /// clients of another session type are refused at the handshake.
    #[arg(long, value_name = "HEX", value_parser = parse_fingerprint)]
    schema: Option<u64>,
    /// Backups a write waits for by default (0: acknowledge once applied on
    /// the primary). Default: 1 when peers are given, else 0.
    #[arg(long)]
    sync: Option<u8>,
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
    }
}

async fn serve(args: Serve) -> anyhow::Result<()> {
    let mut config = NodeConfig::new(args.listen.clone(), args.secret.read()?).peers(args.peers);
    config.advertise = args.advertise;
    config.bootstrap = args.bootstrap;
    config.default_ttl = Duration::from_secs(args.ttl_secs);
    config.limits = Limits {
        max_session_bytes: args.max_session_bytes,
        max_sessions: args.max_sessions,
    };
    config.max_frame = args.max_frame_bytes;
    config.backlog_bytes = args.backlog_bytes;
    config.max_connections = args.max_connections;
    config.heartbeat = Duration::from_millis(args.heartbeat_ms);
    config.failover_timeout = Duration::from_millis(args.failover_ms);
    config.sync_timeout = Duration::from_millis(args.sync_timeout_ms);
    config.schema = args.schema;
    config.default_durability = args.sync.map(|n| {
        if n == 0 {
            Durability::Async
        } else {
            Durability::Sync(n)
        }
    });
    let node = Node::start(config)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    println!("session-node listening on {}", node.addr());
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

async fn stats(addr: &str, secret: &[u8]) -> anyhow::Result<()> {
    let limit = Duration::from_secs(3);
    let (mut conn, _) = Connection::connect(
        addr,
        secret,
        PeerRole::Client { schema: None },
        16 << 20,
        limit,
    )
    .await
    .with_context(|| format!("connecting to {addr}"))?;
    conn.send(&Message::Request {
        id: 1,
        request: Request::Stats,
    })
    .await?;
    let Message::Response {
        response: Response::Stats(s),
        ..
    } = conn.read_within(limit).await?
    else {
        bail!("{addr} did not answer with stats");
    };
    println!(
        "node={}\nrole={:?}\nepoch={}\noffset={}",
        s.node, s.role, s.epoch, s.offset
    );
    println!(
        "sessions={}\nsession_bytes={}\ncommits={}",
        s.sessions, s.session_bytes, s.commits
    );
    println!(
        "deltas_shipped={}\nbytes_shipped={}\nfull_state_bytes={}",
        s.deltas_shipped, s.bytes_shipped, s.full_state_bytes
    );
    println!(
        "partial_resyncs_served={}\nfull_resyncs_served={}",
        s.partial_resyncs_served, s.full_resyncs_served
    );
    println!(
        "partial_resyncs={}\nfull_resyncs={}\nfailovers={}",
        s.partial_resyncs, s.full_resyncs, s.failovers
    );
    println!(
        "expired={}\nrejected_connections={}\nbackups={}",
        s.expired,
        s.rejected_connections,
        s.backups.len()
    );
    conn.send(&Message::Request {
        id: 2,
        request: Request::Digest,
    })
    .await?;
    if let Message::Response {
        response: Response::Digest(d),
        ..
    } = conn.read_within(limit).await?
    {
        println!("digest={d:016x}");
    }
    for (i, b) in s.backups.iter().enumerate() {
        println!("backup{i}_acked={}\nbackup{i}_lag={}", b.acked, b.lag);
    }
    Ok(())
}
