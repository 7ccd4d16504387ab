//! A framed, authenticated TCP connection.
//!
//! Frames are length-prefixed (tokio-util's `LengthDelimitedCodec`, 4-byte
//! big-endian length) with a hard maximum size. A frame over the limit, or
//! one that does not decode, is an error for this connection only: the
//! caller logs it and closes the connection.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::auth;
use super::message::{Message, PeerRole, Status, PROTOCOL_VERSION};
use crate::codec;
use crate::error::DecodeError;

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent a frame over the size limit.
    #[error("frame over the {limit}-byte limit")]
    FrameTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A frame did not decode.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The peer does not know the cluster secret, or spoke another protocol
    /// version.
    #[error("handshake refused: {0}")]
    Refused(String),
    /// The peer sent a message that makes no sense at this point.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// Encodes a message once, so that it can be sent on several connections.
///
/// The encoder writes byte by byte into a growing buffer; encoding into a
/// per-thread scratch buffer and copying the result out costs one exact
/// allocation per message instead of a `Vec` grown from empty (several
/// reallocations for a small message, and up to twice its size kept alive
/// while it sits in the replication backlog).
pub fn encode(msg: &Message) -> Bytes {
    /// A scratch buffer that grew past this is not kept.
    const KEEP: usize = 64 << 10;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
    }
    SCRATCH.with(|scratch| {
        // A message being encoded never encodes another, so the buffer is
        // free; `try_borrow_mut` keeps that an assumption, not a panic.
        let Ok(mut buf) = scratch.try_borrow_mut() else {
            return Bytes::from(codec::encode(msg));
        };
        buf.clear();
        codec::encode_into(msg, &mut buf);
        let frame = Bytes::copy_from_slice(&buf);
        if buf.capacity() > KEEP {
            *buf = Vec::with_capacity(1024);
        }
        frame
    })
}

/// Largest frame read before the peer has proved a secret (the handshake's
/// frames are a few hundred bytes).
pub const HANDSHAKE_FRAME_LIMIT: usize = 4 << 10;

/// The secrets a node checks peers against: nodes prove the cluster secret,
/// clients the client secret (the cluster secret too, when none is set).
#[derive(Clone)]
pub struct Secrets {
    /// The cluster secret, shared by the nodes of a set.
    pub cluster: Vec<u8>,
    /// The secret of application servers, if separate.
    pub client: Option<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("client_secret_set", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

/// A framed connection.
#[derive(Debug)]
pub struct Connection {
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    max_frame: usize,
}

impl Connection {
    /// Wraps a connected socket. Until the handshake succeeds, frames are
    /// limited to [`HANDSHAKE_FRAME_LIMIT`] bytes, so that a peer that has
    /// not proved a secret cannot make the node buffer a large frame.
    pub fn new(stream: TcpStream, max_frame: usize) -> Self {
        // Small frames matter more than throughput here.
        let _ = stream.set_nodelay(true);
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(max_frame.min(HANDSHAKE_FRAME_LIMIT))
            .new_codec();
        Self {
            framed: Framed::new(stream, codec),
            max_frame,
        }
    }

    /// The next message; `Ok(None)` when the peer closed cleanly.
    pub async fn read(&mut self) -> Result<Option<Message>, NetError> {
        match self.framed.next().await {
            None => Ok(None),
            Some(Ok(frame)) => Ok(Some(codec::decode(&frame)?)),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                Err(NetError::FrameTooLarge {
                    limit: self.max_frame,
                })
            }
            Some(Err(e)) => Err(e.into()),
        }
    }

    /// The handshake succeeded: frames up to the configured limit are read
    /// from now on.
    fn authenticated(&mut self) {
        self.framed.codec_mut().set_max_frame_length(self.max_frame);
    }

    /// Splits into a reading and a writing half, to serve pipelined
    /// requests.
    pub fn split(self) -> (Writer, Reader) {
        let (sink, stream) = self.framed.split();
        (
            Writer { sink },
            Reader {
                stream,
                max_frame: self.max_frame,
            },
        )
    }

    /// The next message, which must come within `limit`.
    pub async fn read_within(&mut self, limit: Duration) -> Result<Message, NetError> {
        match tokio::time::timeout(limit, self.read()).await {
            Err(_) => Err(NetError::Timeout(limit)),
            Ok(r) => r?.ok_or(NetError::Closed),
        }
    }

    /// Sends one message and flushes.
    pub async fn send(&mut self, msg: &Message) -> Result<(), NetError> {
        self.send_encoded(encode(msg)).await
    }

    /// Sends an encoded message and flushes.
    pub async fn send_encoded(&mut self, frame: Bytes) -> Result<(), NetError> {
        self.framed.send(frame).await.map_err(NetError::from)
    }

    /// Queues an encoded message without flushing.
    pub async fn feed_encoded(&mut self, frame: Bytes) -> Result<(), NetError> {
        self.framed.feed(frame).await.map_err(NetError::from)
    }

    /// Flushes queued messages.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        SinkExt::<Bytes>::flush(&mut self.framed)
            .await
            .map_err(NetError::from)
    }

    /// Server side of the handshake: challenge, check the proof, check a
    /// client's declared schema against `schema` (when the node serves one
    /// type only), prove ourselves. Returns who connected.
    pub async fn accept(
        &mut self,
        secrets: &Secrets,
        status: Status,
        schema: Option<u64>,
        limit: Duration,
    ) -> Result<PeerRole, NetError> {
        let server_nonce = auth::nonce();
        self.send(&Message::Challenge {
            protocol: PROTOCOL_VERSION,
            nonce: server_nonce,
        })
        .await?;
        let Message::Hello {
            protocol,
            nonce,
            role,
            proof,
        } = self.read_within(limit).await?
        else {
            return Err(NetError::Protocol("expected Hello".into()));
        };
        if protocol != PROTOCOL_VERSION {
            let reason = format!("protocol version {protocol} is not supported (this node speaks {PROTOCOL_VERSION})");
            let _ = self
                .send(&Message::Refused {
                    reason: reason.clone(),
                })
                .await;
            return Err(NetError::Refused(reason));
        }
        let role_bytes = codec::encode(&role);
        let secret = match (&role, &secrets.client) {
            (PeerRole::Client { .. }, Some(client)) => client.as_slice(),
            _ => secrets.cluster.as_slice(),
        };
        if !auth::verify(
            secret,
            &[b"hello", &server_nonce, &nonce, &role_bytes],
            &proof,
        ) {
            let reason = match role {
                PeerRole::Client { .. } if secrets.client.is_some() => "wrong client secret",
                PeerRole::Client { .. } => "wrong cluster secret",
                PeerRole::Node { .. } => {
                    "wrong cluster secret (node connections prove the cluster secret)"
                }
            }
            .to_string();
            let _ = self
                .send(&Message::Refused {
                    reason: reason.clone(),
                })
                .await;
            return Err(NetError::Refused(reason));
        }
        if let (Some(expected), PeerRole::Client { schema: declared }) = (schema, &role) {
            if *declared != Some(expected) {
                let reason = match declared {
                    Some(d) => format!(
                        "schema mismatch: this replica set serves sessions of schema {expected:016x}, \
                         the client's session type has {d:016x}"
                    ),
                    None => format!(
                        "this replica set serves sessions of schema {expected:016x} only; \
                         declare the client's session type (ClientConfig::schema)"
                    ),
                };
                let _ = self
                    .send(&Message::Refused {
                        reason: reason.clone(),
                    })
                    .await;
                return Err(NetError::Refused(reason));
            }
        }
        let proof = auth::prove(secret, &[b"welcome", &nonce, &server_nonce]);
        self.send(&Message::Welcome { proof, status }).await?;
        self.authenticated();
        Ok(role)
    }

    /// Connects to `addr` and runs the client side of the handshake.
    pub async fn connect(
        addr: &str,
        secret: &[u8],
        role: PeerRole,
        max_frame: usize,
        limit: Duration,
    ) -> Result<(Connection, Status), NetError> {
        let stream = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Err(_) => return Err(NetError::Timeout(limit)),
            Ok(s) => s?,
        };
        let mut conn = Connection::new(stream, max_frame);
        let Message::Challenge {
            protocol,
            nonce: server_nonce,
        } = conn.read_within(limit).await?
        else {
            return Err(NetError::Protocol("expected Challenge".into()));
        };
        if protocol != PROTOCOL_VERSION {
            return Err(NetError::Refused(format!(
                "node speaks protocol version {protocol}, this client {PROTOCOL_VERSION}"
            )));
        }
        let nonce = auth::nonce();
        let role_bytes = codec::encode(&role);
        let proof = auth::prove(secret, &[b"hello", &server_nonce, &nonce, &role_bytes]);
        conn.send(&Message::Hello {
            protocol: PROTOCOL_VERSION,
            nonce,
            role,
            proof,
        })
        .await?;
        match conn.read_within(limit).await? {
            Message::Welcome { proof, status } => {
                if !auth::verify(secret, &[b"welcome", &nonce, &server_nonce], &proof) {
                    return Err(NetError::Refused(
                        "the node does not know the secret".into(),
                    ));
                }
                conn.authenticated();
                Ok((conn, status))
            }
            Message::Refused { reason } => Err(NetError::Refused(reason)),
            other => Err(NetError::Protocol(format!(
                "expected Welcome, got {}",
                kind(&other)
            ))),
        }
    }
}

type Frames = Framed<TcpStream, LengthDelimitedCodec>;

fn raw(
    frame: Option<Result<bytes::BytesMut, std::io::Error>>,
    max_frame: usize,
) -> Result<Option<(Bytes, Message)>, NetError> {
    match frame {
        None => Ok(None),
        Some(Ok(frame)) => {
            let frame = frame.freeze();
            let msg = codec::decode(&frame)?;
            Ok(Some((frame, msg)))
        }
        Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(NetError::FrameTooLarge { limit: max_frame })
        }
        Some(Err(e)) => Err(e.into()),
    }
}

/// The reading half of a connection.
#[derive(Debug)]
pub struct Reader {
    stream: SplitStream<Frames>,
    max_frame: usize,
}

impl Reader {
    /// The next message; `Ok(None)` when the peer closed cleanly.
    pub async fn read(&mut self) -> Result<Option<Message>, NetError> {
        let frame = self.stream.next().await;
        Ok(raw(frame, self.max_frame)?.map(|(_, m)| m))
    }
}

/// The writing half of a connection.
#[derive(Debug)]
pub struct Writer {
    sink: SplitSink<Frames, Bytes>,
}

impl Writer {
    /// Queues an encoded message without flushing.
    pub async fn feed(&mut self, frame: Bytes) -> Result<(), NetError> {
        self.sink.feed(frame).await.map_err(NetError::from)
    }

    /// Flushes queued messages.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        self.sink.flush().await.map_err(NetError::from)
    }
}

/// The name of a message's variant, for logs.
pub fn kind(msg: &Message) -> &'static str {
    match msg {
        Message::Challenge { .. } => "Challenge",
        Message::Hello { .. } => "Hello",
        Message::Welcome { .. } => "Welcome",
        Message::Refused { .. } => "Refused",
        Message::Request { .. } => "Request",
        Message::Response { .. } => "Response",
        Message::Peer { .. } => "Peer",
        Message::PeerReply { .. } => "PeerReply",
    }
}
