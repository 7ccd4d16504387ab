//! Robustness of store nodes against hostile or broken peers and requests,
//! and the limits they enforce: real in-process nodes on 127.0.0.1, raw
//! sockets where a well-behaved client cannot produce the input.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde::{Deserialize, Serialize};
use session_runtime::codec;
use session_runtime::net::auth;
use session_runtime::net::connection::encode;
use session_runtime::net::message::{
    ErrorReply, Message, PeerRole, Request, Response, PROTOCOL_VERSION,
};
use session_runtime::net::{Connection, NetError};
use session_runtime::node::{Node, NodeHandle};
use session_runtime::{
    Client, ClientConfig, ClientError, Delta, MapOp, Patch, SeqOp, Session, SessionId, Tracked,
    Value,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Bound on every single network wait.
const LIMIT: Duration = Duration::from_secs(5);

/// A session type with another schema than [`Cart`].
#[derive(Session, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    #[immutable]
    user: u64,
    name: String,
}

fn client_role() -> PeerRole {
    PeerRole::Client { schema: None }
}

fn cart_fp() -> u64 {
    Cart::schema().fingerprint()
}

/// The id of one of [`Cart`]'s fields.
fn field(name: &str) -> u16 {
    Cart::schema()
        .fields()
        .iter()
        .find(|f| f.name == name)
        .unwrap()
        .id
}

fn addrs(a: &NodeHandle, b: &NodeHandle) -> [String; 2] {
    [a.addr().to_string(), b.addr().to_string()]
}

/// Asserts that two copies of a session (as `NodeHandle::peek` gives them)
/// are equal, without printing whole encodings.
#[track_caller]
fn assert_same(a: Option<(u64, Vec<u8>)>, b: Option<(u64, Vec<u8>)>, what: &str) {
    let brief = |p: &Option<(u64, Vec<u8>)>| p.as_ref().map(|(v, t)| (*v, t.len()));
    assert!(
        a == b,
        "{what}: (version, bytes) {:?} != {:?}",
        brief(&a),
        brief(&b)
    );
}

// ---------------------------------------------------------------- raw frames

/// Writes one frame: 4-byte big-endian length, then the payload.
async fn write_frame(s: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let mut frame = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    s.write_all(&frame).await
}

async fn send_msg(s: &mut TcpStream, msg: &Message) {
    write_frame(s, &codec::encode(msg)).await.unwrap();
}

/// Whether an I/O error means that the node closed the connection (a close
/// with unread input arrives as a reset).
fn closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// Reads one frame; `None` once the node closed the connection.
async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    if let Err(e) = s.read_exact(&mut len).await {
        assert!(closed(&e), "unexpected read error: {e}");
        return None;
    }
    let n = u32::from_be_bytes(len) as usize;
    assert!(n <= 1 << 20, "the node announced a {n}-byte frame");
    let mut buf = vec![0; n];
    if let Err(e) = s.read_exact(&mut buf).await {
        assert!(closed(&e), "unexpected read error: {e}");
        return None;
    }
    Some(buf)
}

/// The next message, within [`LIMIT`]; `None` once the node closed.
async fn read_msg(s: &mut TcpStream) -> Option<Message> {
    let frame = timeout(LIMIT, read_frame(s))
        .await
        .expect("the node neither answered nor closed")?;
    Some(codec::decode::<Message>(&frame).unwrap())
}

/// Every message the node sends until it closes the connection, which it
/// must do within [`LIMIT`].
async fn until_closed(s: &mut TcpStream) -> Vec<Message> {
    let drained = timeout(LIMIT, async {
        let mut got = Vec::new();
        for _ in 0..64 {
            match read_frame(s).await {
                None => return Some(got),
                Some(f) => got.push(codec::decode::<Message>(&f).unwrap()),
            }
        }
        None
    })
    .await;
    drained
        .expect("the node did not close the connection")
        .expect("the node kept sending")
}

/// A raw connection that read the node's Challenge; returns its nonce.
async fn raw_connect(addr: &str) -> (TcpStream, [u8; 32]) {
    let mut s = timeout(LIMIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    match read_msg(&mut s).await {
        Some(Message::Challenge { protocol, nonce }) => {
            assert_eq!(protocol, PROTOCOL_VERSION);
            (s, nonce)
        }
        other => panic!("expected a Challenge first, got {other:?}"),
    }
}

/// A Hello proving `secret`, as `Connection::connect` makes it.
fn hello(secret: &[u8], server_nonce: &[u8; 32], role: PeerRole) -> Message {
    let nonce = auth::nonce();
    let role_bytes = codec::encode(&role);
    let proof = auth::prove(secret, &[b"hello", server_nonce, &nonce, &role_bytes]);
    Message::Hello {
        protocol: PROTOCOL_VERSION,
        nonce,
        role,
        proof,
    }
}

/// A raw connection past a successful handshake as a client.
async fn raw_client(addr: &str) -> TcpStream {
    let (mut s, server_nonce) = raw_connect(addr).await;
    send_msg(&mut s, &hello(SECRET, &server_nonce, client_role())).await;
    match read_msg(&mut s).await {
        Some(Message::Welcome { .. }) => s,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

/// A framed client connection, for well-formed requests.
struct Raw {
    conn: Connection,
    next: u64,
}

impl Raw {
    async fn connect(addr: &str) -> Raw {
        let (conn, _) = Connection::connect(addr, SECRET, client_role(), 1 << 20, LIMIT)
            .await
            .unwrap();
        Raw { conn, next: 0 }
    }

    async fn call(&mut self, request: Request) -> Response {
        self.next += 1;
        self.conn
            .send(&Message::Request {
                id: self.next,
                request,
            })
            .await
            .unwrap();
        match self.conn.read_within(LIMIT).await.unwrap() {
            Message::Response { id, response } => {
                assert_eq!(id, self.next, "responses come back by request id");
                response
            }
            other => panic!("expected a Response, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- 1. secret

#[tokio::test]
async fn a_wrong_secret_is_refused_and_nothing_is_served_before_the_handshake() {
    let (primary, backup) = pair().await;
    let nodes = addrs(&primary, &backup);
    let addr = nodes[0].clone();
    let good = Client::connect(client_config(&nodes)).await.unwrap();
    let (id, mut cart) = good.create_tracked(Cart::new(42)).await.unwrap();
    cart.edit().note().push_str("private");
    good.commit(id, &mut cart).await.unwrap();
    let rejected_before = primary.stats().rejected_connections;

    // A client with another secret is refused by every node, and gives up
    // within its failover timeout.
    let mut cfg = ClientConfig::new(nodes.iter().cloned(), b"another cluster secret".to_vec());
    cfg.failover_timeout = Duration::from_secs(1);
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.request_timeout = Duration::from_secs(1);
    let start = Instant::now();
    let err = timeout(LIMIT, Client::connect(cfg))
        .await
        .expect("bounded by the failover timeout")
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Unavailable(m) if m.contains("refused") && m.contains("wrong cluster secret") && m.contains(&nodes[1])),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    wait_until("rejections counted", LIMIT, || {
        primary.stats().rejected_connections > rejected_before
    })
    .await;
    let rejected_before = primary.stats().rejected_connections;
    let mut rejections = 0;

    // Hellos with a wrong proof get Refused, then the connection closes.
    let other_secret = |nonce: &[u8; 32], role| hello(b"not the secret", nonce, role);
    let node_role = || PeerRole::Node { id: 99 };
    let swapped_role = |nonce: &[u8; 32], _: PeerRole| {
        // A proof made for the client role, presented with the node role.
        let Message::Hello {
            protocol,
            nonce,
            proof,
            ..
        } = hello(SECRET, nonce, client_role())
        else {
            unreachable!()
        };
        Message::Hello {
            protocol,
            nonce,
            role: node_role(),
            proof,
        }
    };
    type MakeHello<'a> = &'a dyn Fn(&[u8; 32], PeerRole) -> Message;
    let cases: [(&str, MakeHello, PeerRole); 3] = [
        ("wrong secret, client", &other_secret, client_role()),
        ("wrong secret, node", &other_secret, node_role()),
        ("proof for another role", &swapped_role, client_role()),
    ];
    for (what, make, role) in cases {
        let (mut s, server_nonce) = raw_connect(&addr).await;
        send_msg(&mut s, &make(&server_nonce, role)).await;
        let got = until_closed(&mut s).await;
        assert!(
            matches!(got.as_slice(), [Message::Refused { reason }] if reason.contains("secret")),
            "{what}: {got:?}"
        );
        rejections += 1;
    }

    // Another protocol version is refused too.
    let (mut s, server_nonce) = raw_connect(&addr).await;
    let Message::Hello {
        nonce, role, proof, ..
    } = hello(SECRET, &server_nonce, client_role())
    else {
        unreachable!()
    };
    send_msg(
        &mut s,
        &Message::Hello {
            protocol: PROTOCOL_VERSION + 1,
            nonce,
            role,
            proof,
        },
    )
    .await;
    let got = until_closed(&mut s).await;
    assert!(
        matches!(got.as_slice(), [Message::Refused { reason }] if reason.contains("protocol")),
        "{got:?}"
    );
    rejections += 1;

    // Skipping the handshake gets nothing: not the session, not a write,
    // not the replication stream. The connection is closed.
    let intruder = SessionId::random();
    let tree = Cart::new(666).to_bytes();
    let skipping = [
        Message::Request {
            id: 1,
            request: Request::Load {
                id,
                schema: cart_fp(),
            },
        },
        Message::Request {
            id: 1,
            request: Request::Create {
                id: intruder,
                schema: cart_fp(),
                mutable: Cart::schema().mutable_ids().to_vec(),
                ttl_ms: 0,
                tree,
                commit_id: 0,
            },
        },
        Message::Request {
            id: 1,
            request: Request::Stats,
        },
        Message::Peer { rpc: vec![0; 16] },
        Message::Welcome {
            proof: [0; 32],
            status: primary.status(),
        },
    ];
    for msg in skipping {
        let (mut s, _) = raw_connect(&addr).await;
        send_msg(&mut s, &msg).await;
        let got = until_closed(&mut s).await;
        assert!(
            got.iter().all(|m| matches!(m, Message::Refused { .. })),
            "{msg:?} got {got:?}"
        );
        rejections += 1;
    }
    // Not even waiting for the Challenge helps.
    let mut s = timeout(LIMIT, TcpStream::connect(&addr))
        .await
        .unwrap()
        .unwrap();
    send_msg(
        &mut s,
        &Message::Request {
            id: 1,
            request: Request::Load {
                id,
                schema: cart_fp(),
            },
        },
    )
    .await;
    let got = until_closed(&mut s).await;
    assert!(
        got.iter()
            .all(|m| matches!(m, Message::Challenge { .. } | Message::Refused { .. })),
        "{got:?}"
    );
    rejections += 1;
    // Saying nothing, or half a Hello, holds a connection for the
    // handshake timeout only.
    for partial in [&[][..], &[0, 0, 0, 80, 1, 1][..]] {
        let (mut s, _) = raw_connect(&addr).await;
        s.write_all(partial).await.unwrap();
        let got = until_closed(&mut s).await;
        assert!(got.is_empty(), "{got:?}");
        rejections += 1;
    }

    assert_eq!(primary.peek(&intruder), None);
    assert_eq!(backup.peek(&intruder), None);
    wait_until("every rejection counted", LIMIT, || {
        primary.stats().rejected_connections >= rejected_before + rejections
    })
    .await;
    assert_eq!(
        primary.stats().term,
        backup.stats().term,
        "the fake Peer message changed no term"
    );

    // The node still serves a proper client, the session is intact.
    let loaded = timeout(LIMIT, good.load::<Cart>(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*loaded, *cart);
    let fresh = Client::connect(client_config(&nodes)).await.unwrap();
    let again = fresh.load::<Cart>(id).await.unwrap();
    assert_eq!(*again, *cart);
    fresh.create(&Cart::new(43)).await.unwrap();
    assert_same(backup.peek(&id), primary.peek(&id), "backup");
    primary.shutdown().await;
    backup.shutdown().await;
}

// ---------------------------------------------------------------- 2. frames

const MAX_FRAME: usize = 64 << 10;

/// Everything the attacks must not disturb.
struct Bystanders {
    sessions: Vec<(SessionId, Cart)>,
    client: Client,
    watched: SessionId,
    watched_cart: Tracked<Cart>,
}

impl Bystanders {
    /// The node is alive, the other sessions are intact on both nodes, and
    /// the connection opened before the attacks still commits.
    async fn check(&mut self, primary: &NodeHandle, backup: &NodeHandle, after: &str) {
        self.watched_cart.edit().items().push(after.to_string());
        let v = timeout(
            LIMIT,
            self.client.commit(self.watched, &mut self.watched_cart),
        )
        .await
        .unwrap();
        assert_eq!(v.unwrap(), self.watched_cart.version(), "after {after}");
        for (id, cart) in &self.sessions {
            let loaded = timeout(LIMIT, self.client.load::<Cart>(*id))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&*loaded, cart, "after {after}");
            assert_same(primary.peek(id), backup.peek(id), &format!("after {after}"));
        }
        let watched = self.client.load::<Cart>(self.watched).await.unwrap();
        assert_eq!(*watched, *self.watched_cart, "after {after}");
        assert_same(
            primary.peek(&self.watched),
            backup.peek(&self.watched),
            &format!("after {after}"),
        );
    }
}

#[tokio::test]
async fn malformed_frames_close_only_their_own_connection() {
    let (primary, backup) = pair_with(|c| {
        c.max_frame = MAX_FRAME;
        c.limits.max_session_bytes = MAX_FRAME / 2;
    })
    .await;
    let nodes = addrs(&primary, &backup);
    let addr = nodes[0].clone();
    let writer = Client::connect(client_config(&nodes)).await.unwrap();
    let mut sessions = Vec::new();
    for i in 0..3 {
        let (id, mut cart) = writer.create_tracked(Cart::new(i)).await.unwrap();
        cart.edit().items().push(format!("item {i}"));
        cart.edit().counts().insert(format!("k{i}"), i);
        writer.commit(id, &mut cart).await.unwrap();
        sessions.push((id, (*cart).clone()));
    }
    let client = Client::connect(client_config(&nodes)).await.unwrap();
    let (watched, watched_cart) = client.create_tracked(Cart::new(99)).await.unwrap();
    let mut by = Bystanders {
        sessions,
        client,
        watched,
        watched_cart,
    };
    by.check(&primary, &backup, "setup").await;
    let rejected_before = primary.stats().rejected_connections;
    let mut rejections = 0;

    // Undecodable payloads behind a valid length prefix.
    let load = Message::Request {
        id: 1,
        request: Request::Load {
            id: by.sessions[0].0,
            schema: cart_fp(),
        },
    };
    let mut truncated = codec::encode(&load);
    truncated.truncate(truncated.len() - 3);
    let mut trailing = codec::encode(&load);
    trailing.push(0);
    let mut huge_claim = codec::encode(&Message::Response {
        id: 1,
        response: Response::Dump(Vec::new()),
    });
    huge_claim.pop();
    huge_claim.push(253); // varint marker of a u64 length...
    huge_claim.extend_from_slice(&(u64::MAX / 2).to_le_bytes()); // ...claiming 2^63 entries
    let mut huge_bytes = codec::encode(&Message::Request {
        id: 1,
        request: Request::Commit {
            id: by.sessions[0].0,
            schema: cart_fp(),
            base: 1,
            commit_id: 1,
            delta: Vec::new(),
        },
    });
    huge_bytes.truncate(huge_bytes.len() - 1); // the empty delta's length
    huge_bytes.push(252); // varint marker of a u32 length...
    huge_bytes.extend_from_slice(&u32::MAX.to_le_bytes()); // ...claiming 4 GiB of delta
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        (
            "random bytes",
            (0..200u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("all ones", vec![0xff; 64]),
        ("empty frame", Vec::new()),
        ("truncated message", truncated.clone()),
        ("trailing bytes", trailing),
        ("huge claimed count", huge_claim),
        ("huge claimed byte string", huge_bytes),
        (
            "not a request",
            codec::encode(&Message::PeerReply { rpc: vec![9; 9] }),
        ),
        (
            "a second Hello",
            codec::encode(&hello(SECRET, &[0; 32], client_role())),
        ),
    ];
    for (what, payload) in garbage {
        let mut s = raw_client(&addr).await;
        write_frame(&mut s, &payload).await.unwrap();
        let got = until_closed(&mut s).await;
        assert!(got.is_empty(), "{what}: {got:?}");
        rejections += 1;
        by.check(&primary, &backup, what).await;
    }

    // The same through a connection made by `Connection::connect`.
    let (mut conn, _) = Connection::connect(&addr, SECRET, client_role(), 1 << 20, LIMIT)
        .await
        .unwrap();
    let frame = encode(&load);
    conn.send_encoded(frame.slice(..frame.len() - 3))
        .await
        .unwrap();
    match conn.read_within(LIMIT).await {
        Err(NetError::Closed) => {}
        Err(NetError::Io(e)) if closed(&e) => {}
        other => panic!("expected the node to close the connection, got {other:?}"),
    }
    rejections += 1;
    by.check(&primary, &backup, "garbage through Connection")
        .await;

    // A truncated frame: the length says 100, 10 bytes come, then EOF.
    let mut s = raw_client(&addr).await;
    s.write_all(&100u32.to_be_bytes()).await.unwrap();
    s.write_all(&truncated[..10]).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(until_closed(&mut s).await.is_empty());
    by.check(&primary, &backup, "truncated frame").await;

    // A frame cut short that never completes would hold only its own
    // connection: the others keep working meanwhile.
    let mut stalled = raw_client(&addr).await;
    stalled.write_all(&100u32.to_be_bytes()).await.unwrap();
    stalled.write_all(&truncated[..10]).await.unwrap();
    by.check(&primary, &backup, "stalled frame").await;
    drop(stalled);

    // Oversized frames, after the handshake and instead of the Hello.
    for (what, len) in [
        ("one byte over", MAX_FRAME + 1),
        ("4 GiB", u32::MAX as usize),
    ] {
        let mut s = raw_client(&addr).await;
        s.write_all(&u32::try_from(len).unwrap().to_be_bytes())
            .await
            .unwrap();
        // The node may close before reading the body: a failed write is fine.
        let _ = s.write_all(&vec![0u8; 4096]).await;
        assert!(until_closed(&mut s).await.is_empty(), "{what}");
        rejections += 1;
        by.check(&primary, &backup, what).await;
    }
    let (mut s, _) = raw_connect(&addr).await;
    s.write_all(&u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes())
        .await
        .unwrap();
    let _ = s.write_all(&vec![0u8; 4096]).await;
    let got = until_closed(&mut s).await;
    assert!(
        got.iter().all(|m| matches!(m, Message::Refused { .. })),
        "{got:?}"
    );
    rejections += 1;
    by.check(&primary, &backup, "oversized Hello").await;

    // A frame right at the limit is still accepted (it is answered, with
    // an error: the delta is garbage).
    let mut s = raw_client(&addr).await;
    let mut request = Request::Commit {
        id: by.sessions[0].0,
        schema: cart_fp(),
        base: 2,
        commit_id: 7,
        delta: Vec::new(),
    };
    let overhead = codec::encode(&Message::Request {
        id: 1,
        request: request.clone(),
    })
    .len();
    if let Request::Commit { delta, .. } = &mut request {
        // Two more bytes of length prefix for a delta of this size.
        *delta = vec![0xee; MAX_FRAME - overhead - 2];
    }
    let payload = codec::encode(&Message::Request { id: 1, request });
    assert_eq!(payload.len(), MAX_FRAME);
    write_frame(&mut s, &payload).await.unwrap();
    match read_msg(&mut s).await {
        Some(Message::Response {
            id: 1,
            response: Response::Error(ErrorReply::BadRequest(_)),
        }) => {}
        other => panic!("a frame at the limit is read: {other:?}"),
    }
    drop(s);
    by.check(&primary, &backup, "frame at the limit").await;

    wait_until("bad frames counted", LIMIT, || {
        primary.stats().rejected_connections >= rejected_before + rejections
    })
    .await;
    assert_eq!(by.client.stats().await.unwrap()[0].sessions, 4);
    primary.shutdown().await;
    backup.shutdown().await;
}

/// A frame limit below the snapshot chunk size: a backup that needs a full
/// resynchronisation still gets one (chunks fit in frames).
#[tokio::test]
async fn a_small_frame_limit_still_lets_a_backup_resynchronise() {
    let (primary, backup) = pair_with(|c| {
        c.max_frame = MAX_FRAME;
        c.limits.max_session_bytes = MAX_FRAME / 2;
    })
    .await;
    let client = Client::connect(client_config(&[primary.addr().to_string()]))
        .await
        .unwrap();
    for i in 0..40 {
        // 200 KB in all, each session well under the frame limit.
        let cart = Cart {
            blob: vec![i as u8; 5_000],
            ..Cart::new(i)
        };
        client.create(&cart).await.unwrap();
    }
    // A snapshot of the leader's store, and its log purged behind it.
    primary.raft().trigger().snapshot().await.unwrap();
    wait_until("snapshot built", LIMIT, || {
        primary.stats().snapshots_built == 1
    })
    .await;
    primary
        .raft()
        .trigger()
        .purge_log(primary.stats().last_applied)
        .await
        .unwrap();
    // A fresh backup at the same address and id: it holds nothing, and the
    // log no longer starts at 1, so it needs the whole store.
    let listen = backup.addr().to_string();
    let (me, leader) = (backup.stats().id, primary.stats().id);
    backup.shutdown().await;
    let mut config = node_config(me, vec![(leader, primary.addr().to_string())]);
    config.listen = listen;
    config.max_frame = MAX_FRAME;
    config.limits.max_session_bytes = MAX_FRAME / 2;
    let fresh = Node::start(config).await.unwrap();
    wait_until("the fresh backup holds every session", LIMIT, || {
        fresh.stats().sessions == 40
    })
    .await;
    assert_eq!(fresh.stats().snapshots_installed, 1);
    assert_eq!(fresh.dump(), primary.dump());
    primary.shutdown().await;
    fresh.shutdown().await;
}

// ---------------------------------------------------------------- 3. requests

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let (primary, backup) = pair().await;
    let nodes = addrs(&primary, &backup);
    let mut raw = Raw::connect(&nodes[0]).await;
    let fp = cart_fp();
    let schema = Cart::schema();
    let id = SessionId::random();
    let create = |id: SessionId, tree: Vec<u8>| Request::Create {
        id,
        schema: fp,
        mutable: schema.mutable_ids().to_vec(),
        ttl_ms: 0,
        tree,
        commit_id: 0,
    };
    assert_eq!(
        raw.call(create(id, Cart::new(5).to_bytes())).await,
        Response::Created { version: 1 }
    );
    let commit = |base: u64, delta: Vec<u8>| Request::Commit {
        id,
        schema: fp,
        base,
        commit_id: SessionId::random().route_key() | 1,
        delta,
    };
    // Version 2: the note changed.
    let mut t = Tracked::with_version(Cart::new(5), 1);
    t.edit().note().push_str("first");
    let note_delta = t.pending_delta().to_bytes();
    assert!(matches!(
        raw.call(commit(1, note_delta.clone())).await,
        Response::Committed { version: 2, .. }
    ));
    let state = primary.peek(&id).unwrap();
    assert_eq!(state.0, 2);
    assert_eq!(Cart::from_bytes(&state.1).unwrap().note, "first");

    let leaf = |v: &str| Value::Leaf(codec::encode(v));
    let user_delta = Delta::from_fields(vec![(
        field("user"),
        Patch::Set(Value::Leaf(codec::encode(&1000u64))),
    )])
    .to_bytes();
    let mut items_ok = Tracked::with_version(Cart::new(5), 2);
    items_ok.edit().items().push("sneaked in".into());
    let half_good = Delta::from_fields(vec![
        (
            field("items"),
            Patch::Seq(vec![SeqOp::Push(vec![leaf("sneaked in")])]),
        ),
        (
            field("counts"),
            Patch::Map(vec![MapOp::Remove {
                key: codec::encode("absent"),
            }]),
        ),
    ])
    .to_bytes();
    let bad_request = |m: &str| {
        let m = m.to_string();
        move |r: &Response| matches!(r, Response::Error(ErrorReply::BadRequest(text)) if text.contains(&m))
    };
    type Check = Box<dyn Fn(&Response) -> bool>;
    let other = SessionId::random();
    let profile_fp = Profile::schema().fingerprint();
    let cases: Vec<(&str, Request, Check)> = vec![
        (
            "corrupt delta",
            commit(2, vec![0xde, 0xad, 0xbe, 0xef]),
            Box::new(bad_request("delta does not decode")),
        ),
        (
            "truncated delta",
            commit(2, items_ok.pending_delta().to_bytes()[..4].to_vec()),
            Box::new(bad_request("delta does not decode")),
        ),
        (
            "empty bytes as delta",
            commit(2, Vec::new()),
            Box::new(bad_request("delta does not decode")),
        ),
        (
            "immutable field",
            commit(2, user_delta),
            Box::new(bad_request("immutable")),
        ),
        (
            "unknown field",
            commit(
                2,
                Delta::from_fields(vec![(77, Patch::Set(leaf("x")))]).to_bytes(),
            ),
            Box::new(bad_request("unknown")),
        ),
        (
            "remove past the end",
            commit(
                2,
                Delta::from_fields(vec![(
                    field("items"),
                    Patch::Seq(vec![SeqOp::Remove { index: 3, count: 1 }]),
                )])
                .to_bytes(),
            ),
            Box::new(bad_request("")),
        ),
        (
            "patch of the wrong shape",
            commit(
                2,
                Delta::from_fields(vec![(
                    field("note"),
                    Patch::Seq(vec![SeqOp::Push(vec![leaf("x")])]),
                )])
                .to_bytes(),
            ),
            Box::new(bad_request("")),
        ),
        (
            "one good field, one bad",
            commit(2, half_good),
            Box::new(bad_request("")),
        ),
        (
            "stale base, conflicting field",
            commit(1, note_delta.clone()),
            Box::new(|r: &Response| r == &Response::Error(ErrorReply::Conflict { current: 2 })),
        ),
        (
            "base from the future",
            commit(9, items_ok.pending_delta().to_bytes()),
            Box::new(|r: &Response| {
                r == &Response::Error(ErrorReply::UnknownVersion { current: 2 })
            }),
        ),
        (
            "load of an unknown session",
            Request::Load {
                id: other,
                schema: fp,
            },
            Box::new(|r: &Response| r == &Response::Error(ErrorReply::NotFound)),
        ),
        (
            "commit to an unknown session",
            Request::Commit {
                id: other,
                schema: fp,
                base: 1,
                commit_id: 3,
                delta: note_delta.clone(),
            },
            Box::new(|r: &Response| r == &Response::Error(ErrorReply::NotFound)),
        ),
        (
            "touch of an unknown session",
            Request::Touch { id: other },
            Box::new(|r: &Response| r == &Response::Error(ErrorReply::NotFound)),
        ),
        (
            "delete of an unknown session",
            Request::Delete { id: other },
            Box::new(|r: &Response| r == &Response::Error(ErrorReply::NotFound)),
        ),
        (
            "load with another schema",
            Request::Load {
                id,
                schema: profile_fp,
            },
            Box::new(move |r: &Response| {
                r == &Response::Error(ErrorReply::SchemaMismatch {
                    session: fp,
                    request: profile_fp,
                })
            }),
        ),
        (
            "commit with another schema",
            Request::Commit {
                id,
                schema: profile_fp,
                base: 2,
                commit_id: 4,
                delta: items_ok.pending_delta().to_bytes(),
            },
            Box::new(move |r: &Response| {
                r == &Response::Error(ErrorReply::SchemaMismatch {
                    session: fp,
                    request: profile_fp,
                })
            }),
        ),
        (
            "create of an existing id",
            create(id, Cart::new(6).to_bytes()),
            Box::new(|r: &Response| r == &Response::Error(ErrorReply::AlreadyExists)),
        ),
        (
            "create from garbage",
            create(other, vec![1, 2, 3]),
            Box::new(bad_request("does not decode")),
        ),
        (
            "create of a non-record",
            create(other, leaf("x").to_bytes()),
            Box::new(bad_request("record")),
        ),
    ];
    for (what, request, check) in cases {
        let response = raw.call(request).await;
        assert!(check(&response), "{what}: {response:?}");
        assert_same(
            primary.peek(&id),
            Some(state.clone()),
            &format!("{what} changed the session"),
        );
        assert_eq!(primary.peek(&other), None, "{what}");
        // The connection is still usable.
        assert_eq!(
            raw.call(Request::Load { id, schema: fp }).await,
            Response::Loaded {
                version: state.0,
                tree: state.1.clone()
            },
            "after {what}"
        );
    }
    assert_same(backup.peek(&id), Some(state.clone()), "backup");
    assert_eq!(backup.peek(&other), None);

    // The typed client maps the same refusals to clear errors.
    let client = Client::connect(client_config(&nodes)).await.unwrap();
    match client.load::<Profile>(id).await {
        Err(ClientError::SchemaMismatch { session, client }) => {
            assert_eq!((session, client), (fp, profile_fp))
        }
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
    let mut profile = Tracked::with_version(
        Profile {
            user: 5,
            name: String::new(),
        },
        2,
    );
    profile.edit().name().push_str("mallory");
    assert!(matches!(
        client.commit(id, &mut profile).await,
        Err(ClientError::SchemaMismatch { .. })
    ));
    assert!(matches!(
        client.load::<Cart>(other).await,
        Err(ClientError::NotFound)
    ));
    let mut stale = Tracked::with_version(Cart::new(5), 1);
    stale.edit().note().push_str("second");
    assert!(matches!(
        client.commit(id, &mut stale).await,
        Err(ClientError::Conflict { current: 2 })
    ));
    assert!(stale.is_dirty(), "a refused commit keeps the changes");
    let mut future = Tracked::with_version(Cart::new(5), 9);
    future.edit().items().push("x".into());
    assert!(matches!(
        client.commit(id, &mut future).await,
        Err(ClientError::Refused(_))
    ));
    assert_same(
        primary.peek(&id),
        Some(state.clone()),
        "typed client errors",
    );

    // A good commit on the same raw connection still works, and replicates.
    let response = raw
        .call(commit(2, items_ok.pending_delta().to_bytes()))
        .await;
    assert!(
        matches!(response, Response::Committed { version: 3, .. }),
        "{response:?}"
    );
    let loaded = client.load::<Cart>(id).await.unwrap();
    assert_eq!(loaded.items, vec!["sneaked in".to_string()]);
    assert_eq!(loaded.note, "first");
    assert_same(backup.peek(&id), primary.peek(&id), "backup");
    assert_eq!(
        primary.stats().rejected_connections,
        0,
        "bad requests do not close connections"
    );
    primary.shutdown().await;
    backup.shutdown().await;
}

// ---------------------------------------------------------------- 4. expiry

#[tokio::test]
async fn idle_sessions_expire_on_the_primary_and_the_backup() {
    const TTL: Duration = Duration::from_millis(300);
    let (primary, backup) = pair().await;
    let nodes = addrs(&primary, &backup);
    let mut cfg = client_config(&nodes);
    cfg.ttl = Some(TTL);
    let client = Client::connect(cfg).await.unwrap();
    let long_lived = Client::connect(client_config(&nodes)).await.unwrap();
    let durable = long_lived.create(&Cart::new(3)).await.unwrap();

    let created = Instant::now();
    let idle = client.create(&Cart::new(1)).await.unwrap();
    let kept = client.create(&Cart::new(2)).await.unwrap();
    assert!(backup.peek(&idle).is_some() && backup.peek(&kept).is_some());

    // Touch one session well within its TTL until the other is gone.
    let mut gone = false;
    for _ in 0..200 {
        timeout(LIMIT, client.touch(kept)).await.unwrap().unwrap();
        if primary.peek(&idle).is_none() && backup.peek(&idle).is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "the idle session did not expire on both nodes");
    assert!(
        created.elapsed() >= TTL,
        "expired after {:?}, before its TTL",
        created.elapsed()
    );
    // Keep touching for over two more TTLs: it stays.
    let until = Instant::now() + 2 * TTL + Duration::from_millis(100);
    for _ in 0..200 {
        if Instant::now() >= until {
            break;
        }
        timeout(LIMIT, client.touch(kept)).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(primary.peek(&kept).is_some() && backup.peek(&kept).is_some());
    assert_eq!(client.load::<Cart>(kept).await.unwrap().user, 2);
    assert!(matches!(
        client.load::<Cart>(idle).await,
        Err(ClientError::NotFound)
    ));
    assert!(matches!(
        client.touch(idle).await,
        Err(ClientError::NotFound)
    ));
    assert_eq!(primary.stats().expired, 1);
    assert_eq!(primary.stats().sessions, 2);
    assert_eq!(backup.stats().sessions, 2);

    // Left alone, it expires too; the session with the default TTL does not.
    wait_until("the touched session expires once left alone", LIMIT, || {
        primary.peek(&kept).is_none() && backup.peek(&kept).is_none()
    })
    .await;
    assert_eq!(primary.stats().expired, 2);
    assert!(primary.peek(&durable).is_some() && backup.peek(&durable).is_some());
    assert_same(backup.peek(&durable), primary.peek(&durable), "default TTL");
    primary.shutdown().await;
    backup.shutdown().await;
}

// ---------------------------------------------------------------- 5. limits

#[tokio::test]
async fn sessions_over_the_size_limit_are_refused_and_nothing_changes() {
    const MAX: usize = 4096;
    let (primary, backup) = pair_with(|c| c.limits.max_session_bytes = MAX).await;
    let nodes = addrs(&primary, &backup);
    let client = Client::connect(client_config(&nodes)).await.unwrap();
    let with_blob = |user: u64, len: usize| Cart {
        blob: vec![7; len],
        ..Cart::new(user)
    };
    // The blob length that makes a session of exactly the limit.
    let exact = (MAX - 64..MAX)
        .find(|len| with_blob(0, *len).to_bytes().len() == MAX)
        .unwrap();

    // Creation: one byte over is refused, the limit itself is accepted.
    for len in [exact + 1, 8_000, 100_000] {
        match client.create(&with_blob(1, len)).await {
            Err(ClientError::Refused(m)) => assert!(m.contains("limit"), "{m}"),
            other => panic!("a {len}-byte blob: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!((primary.stats().sessions, backup.stats().sessions), (0, 0));
    let full = client.create(&with_blob(2, exact)).await.unwrap();
    assert_eq!(primary.peek(&full).unwrap().1.len(), MAX);

    // Commits that would grow a session over the limit.
    let (id, _) = client.create_tracked(with_blob(3, 3000)).await.unwrap();
    let before = primary.peek(&id).unwrap();
    let bytes_before = primary.stats().session_bytes;
    for (what, grow) in [
        ("just over", MAX - before.1.len() + 1),
        ("somewhat over", 1500),
        ("far over", 20_000),
    ] {
        let mut cart = client.load::<Cart>(id).await.unwrap();
        cart.edit().blob().extend(std::iter::repeat_n(1u8, grow));
        match client.commit(id, &mut cart).await {
            Err(ClientError::Refused(m)) => assert!(m.contains("limit"), "{what}: {m}"),
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
        assert!(
            cart.is_dirty(),
            "{what}: a refused commit keeps the changes"
        );
        assert_same(
            primary.peek(&id),
            Some(before.clone()),
            &format!("{what}: primary"),
        );
        assert_same(
            backup.peek(&id),
            Some(before.clone()),
            &format!("{what}: backup"),
        );
        assert_eq!(primary.stats().session_bytes, bytes_before, "{what}");
    }
    let mut cart = client.load::<Cart>(full).await.unwrap();
    cart.edit().note().push('!');
    assert!(matches!(
        client.commit(full, &mut cart).await,
        Err(ClientError::Refused(_))
    ));
    assert_eq!(primary.peek(&full).unwrap().0, 1);

    // Growth within the limit is fine.
    let mut cart = client.load::<Cart>(id).await.unwrap();
    assert_eq!(cart.version(), 1);
    cart.edit().blob().extend(std::iter::repeat_n(1u8, 500));
    assert_eq!(client.commit(id, &mut cart).await.unwrap(), 2);
    assert_same(
        primary.peek(&id),
        backup.peek(&id),
        "growth within the limit",
    );
    let (p, b) = (primary.stats(), backup.stats());
    assert_eq!(p.session_bytes, b.session_bytes);
    let held: usize = [full, id]
        .iter()
        .map(|i| primary.peek(i).unwrap().1.len())
        .sum();
    assert_eq!(p.session_bytes, held as u64);
    primary.shutdown().await;
    backup.shutdown().await;
}

// ---------------------------------------------------------------- 5. credentials and budgets

#[tokio::test]
async fn a_client_secret_cannot_speak_for_a_node() {
    const CLIENT_SECRET: &[u8] = b"the application servers' own secret";
    let (primary, backup) = pair_with(|c| c.client_secret = Some(CLIENT_SECRET.to_vec())).await;
    let addr = primary.addr().to_string();
    // Application servers prove the client secret...
    let mut cfg = ClientConfig::new([addr.clone()], CLIENT_SECRET.to_vec());
    cfg.failover_timeout = Duration::from_secs(2);
    let client = Client::connect(cfg).await.unwrap();
    client.create(&Cart::new(1)).await.unwrap();
    // ...which does not open a node connection (votes, log entries,
    // membership changes).
    let as_node = Connection::connect(
        &addr,
        CLIENT_SECRET,
        PeerRole::Node { id: 9 },
        1 << 20,
        LIMIT,
    )
    .await;
    assert!(
        matches!(&as_node, Err(NetError::Refused(m)) if m.contains("cluster secret")),
        "{as_node:?}"
    );
    // And the cluster secret is no client secret.
    let with_cluster_secret =
        Connection::connect(&addr, SECRET, client_role(), 1 << 20, LIMIT).await;
    assert!(
        matches!(&with_cluster_secret, Err(NetError::Refused(m)) if m.contains("client secret")),
        "{with_cluster_secret:?}"
    );
    primary.shutdown().await;
    backup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_keep_neither_clients_nor_peers_out() {
    let set = ProcessSet::start(3, &[]);
    let leader = set.wait_leader(&[], Duration::from_secs(15)).await;
    let addr = set.nodes[leader].addr.clone();
    // --- 10,000 connections that never say Hello (or their first byte)
    let mut idle = Vec::new();
    for _ in 0..10_000 {
        match TcpStream::connect(&addr).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect {} failed: {e}", idle.len()),
        }
    }
    // --- an authenticated client is served at once, and the set still
    // replicates (its peers' connections are not crowded out)
    let client = Client::connect(client_config(&set.addrs())).await.unwrap();
    let started = Instant::now();
    let (id, mut t) = client.create_tracked(Cart::new(5)).await.unwrap();
    t.edit().note().push_str("served");
    client.commit(id, &mut t).await.unwrap();
    assert!(started.elapsed() < LIMIT, "took {:?}", started.elapsed());
    let s = node_stats(&addr).await.unwrap();
    assert!(s.rejected_connections > 9_000, "{s:?}");
    assert_eq!(s.role, session_runtime::net::message::Role::Leader);
    drop(idle);
}
