//! Typed web sessions, replicated as deltas of the fields that changed.
//!
//! ```
//! use session_runtime::{Delta, Session, Tracked};
//! use std::collections::BTreeMap;
//!
//! #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Item {
//!     sku: String,
//!     qty: u32,
//! }
//!
//! #[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Shop {
//!     #[immutable]
//!     user_id: u64,
//!     cart: Vec<Item>,
//!     prefs: BTreeMap<String, String>,
//! }
//!
//! let created = Shop { user_id: 1, cart: vec![], prefs: BTreeMap::new() };
//! let mut primary = Tracked::new(created.clone());
//! primary.edit().cart().push(Item { sku: "tea".into(), qty: 2 });
//!
//! // Only the pushed item travels.
//! let bytes = primary.take_delta().to_bytes();
//! let mut backup = created;
//! backup.apply(&Delta::from_bytes(&bytes)?)?;
//! assert_eq!(backup, *primary);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Finding changes
//!
//! `#[derive(Session)]` implements [`Session`] for a struct with named
//! fields. Fields are mutable unless marked `#[immutable]`; `#[mutable]`
//! says so explicitly; `#[session(id = N)]` pins a field's stable id (by
//! default, a field's id is its declaration position, from 0). Three
//! detectors, tested against each other:
//!
//! - [`Tracked`]: dirty bits set by a generated write proxy, and a benchmark
//!   copy taken on a field's first write. [`Tracked::take_delta`] costs time
//!   in proportion to the fields written, not to the session.
//! - [`Session::diff`]: object-graph differencing, recursing into nested
//!   sessions, `Vec`/`VecDeque` (element patches, insert, remove, push,
//!   truncate), `HashMap`/`BTreeMap` (insert, remove, patch value),
//!   `HashSet`/`BTreeSet` (insert, remove) and `Option`. `Vec<u8>` is a byte
//!   string diffed by runs. Any other serde type is replaced whole.
//! - [`Session::binary_diff`]: the encoding of each mutable field compared
//!   with one recorded by [`Session::binary_benchmark`]; ships changed byte
//!   runs, or the field when that is not larger.
//!
//! # The tree
//!
//! A store node keeps sessions as [`Value`] trees and applies deltas with
//! [`Value::apply`], without knowing the Rust type; the typed
//! [`Session::apply`] and the tree agree byte for byte. Both apply
//! all-or-nothing and reject bad input with an [`ApplyError`] or a
//! [`DecodeError`], never a panic.
//!
//! # Replication and the web
//!
//! Store nodes (`node`, feature `node`) keep sessions in memory, replicated
//! by a Raft group (openraft) whose log lives on disk; application servers
//! reach them with a [`Client`].
//! The [`SessionStore`] trait is implemented by the [`Client`], by
//! [`MemoryStore`] and (feature `redis`) by `RedisStore`; the `web` module
//! (feature `axum`) is a tower layer and extractor on top of any of them.
//!
//! # Layout
//!
//! - `session.rs`: the [`Session`] trait; `tracked.rs`: [`Tracked`].
//! - `schema.rs`: [`Schema`], [`FieldInfo`], fingerprints.
//! - `value.rs`, `patch.rs`, `delta.rs`: the tree, patches and deltas, and
//!   their wire format (`wire.rs` holds the shared header and varint code).
//! - `tree.rs`: structural apply on the tree.
//! - `strategy/`: how each kind of field is encoded, diffed and patched.
//! - `binary.rs`: binary differencing.
//! - `codec.rs`: every use of bincode (leaf values, map keys, messages).
//! - `error.rs`: [`DecodeError`], [`ApplyError`].
//! - `id.rs`: [`SessionId`].
//! - `store.rs`: the schema-agnostic session store of a node (versions,
//!   field-level merge, TTL, limits): the state machine every replica
//!   applies the log to.
//! - `net/`: frames, messages, counters and the authenticated handshake.
//! - `raft/` (feature `node`): openraft glue: type configuration, the
//!   durable log, the store as state machine, snapshots, the network.
//! - `node/` (feature `node`): a running node: serving clients and peers,
//!   first start of a set, expiry, configuration.
//! - `client.rs`: [`Client`]; `backend/`: [`SessionStore`] and its stores;
//!   `web/`: the axum layer.
#![deny(missing_docs)]

pub mod backend;
mod binary;
mod client;
pub mod codec;
mod delta;
mod error;
mod id;
pub mod net;
#[cfg(feature = "node")]
pub mod node;
mod patch;
#[cfg(feature = "node")]
pub mod raft;
mod schema;
mod session;
pub mod store;
mod strategy;
mod tracked;
mod tree;
mod value;
#[cfg(feature = "axum")]
pub mod web;
mod wire;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use backend::{MemoryStore, SessionStore};
pub use binary::BinaryBenchmark;
pub use client::{Client, ClientConfig, ClientError};
pub use delta::Delta;
pub use error::{ApplyError, ApplyErrorKind, DecodeError, PathStep};
pub use id::{ParseSessionIdError, SessionId};
pub use patch::{Edit, MapOp, Patch, SeqOp};
pub use schema::{FieldInfo, Schema};
pub use session::Session;
pub use tracked::Tracked;
pub use value::Value;

/// Implements [`Session`] for a struct with named fields.
///
/// Field attributes: `#[mutable]` (the default), `#[immutable]`,
/// `#[session(id = N)]`.
pub use session_derive::Session;

/// The README's examples, compiled as doctests.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
