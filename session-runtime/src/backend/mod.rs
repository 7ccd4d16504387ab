//! Where application servers keep sessions: one interface, several stores.
//!
//! [`SessionStore`] is what the web layer and applications program
//! against. It is implemented by:
//!
//! - [`Client`]: replica sets of store nodes (the default; survives the
//!   loss of a node);
//! - [`MemoryStore`]: this process's memory (tests, single-server apps);
//! - `RedisStore` (feature `redis`): one Redis hash per session.
//!
//! All three follow the same rules, checked by one behaviour suite run
//! against each: a commit ships only the changed fields; a commit made
//! against an older version is applied when none of its fields changed
//! since, else it fails with [`ClientError::Conflict`] and nothing is lost;
//! sessions expire after their idle TTL.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::future::Future;

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;

use crate::client::{Client, ClientError};
use crate::id::SessionId;
use crate::session::Session;
use crate::tracked::Tracked;

/// A store of typed sessions, as seen by an application server.
///
/// Implementations must keep these invariants (the behaviour suite in
/// `tests/backends.rs` checks them):
///
/// - `load` after `create` or a successful `commit` returns the value as
///   committed, with the version `commit` returned;
/// - `commit` with nothing changed sends nothing and returns the current
///   version; on success the tracked changes become its benchmark;
/// - a `commit` whose base version is stale succeeds only if none of its
///   fields changed since the base (and then brings the tracked value up to
///   date); otherwise it returns [`ClientError::Conflict`] and leaves the
///   tracked value, and its pending changes, as they were;
/// - a session idle past its TTL, or deleted, is [`ClientError::NotFound`];
/// - every call returns within a bounded time.
pub trait SessionStore: Clone + Send + Sync + 'static {
    /// Stores a new session under a fresh random id.
    fn create<T: Session>(
        &self,
        value: &T,
    ) -> impl Future<Output = Result<SessionId, ClientError>> + Send;

    /// Reads a session, tracked at its current version; counts as an access.
    fn load<T: Session>(
        &self,
        id: SessionId,
    ) -> impl Future<Output = Result<Tracked<T>, ClientError>> + Send;

    /// Ships the tracked changes; returns the new version.
    fn commit<T: Session>(
        &self,
        id: SessionId,
        tracked: &mut Tracked<T>,
    ) -> impl Future<Output = Result<u64, ClientError>> + Send;

    /// Removes a session.
    fn delete(&self, id: SessionId) -> impl Future<Output = Result<(), ClientError>> + Send;

    /// Restarts a session's idle TTL.
    fn touch(&self, id: SessionId) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// Decodes the refresh a store returns with a merged commit (empty: none).
pub(crate) fn refresh(bytes: &[u8]) -> Result<Option<crate::Delta>, crate::ApplyError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    Ok(Some(crate::Delta::from_bytes(bytes)?))
}

impl SessionStore for Client {
    fn create<T: Session>(
        &self,
        value: &T,
    ) -> impl Future<Output = Result<SessionId, ClientError>> + Send {
        Client::create(self, value)
    }

    fn load<T: Session>(
        &self,
        id: SessionId,
    ) -> impl Future<Output = Result<Tracked<T>, ClientError>> + Send {
        Client::load(self, id)
    }

    fn commit<T: Session>(
        &self,
        id: SessionId,
        tracked: &mut Tracked<T>,
    ) -> impl Future<Output = Result<u64, ClientError>> + Send {
        Client::commit(self, id, tracked)
    }

    fn delete(&self, id: SessionId) -> impl Future<Output = Result<(), ClientError>> + Send {
        Client::delete(self, id)
    }

    fn touch(&self, id: SessionId) -> impl Future<Output = Result<(), ClientError>> + Send {
        Client::touch(self, id)
    }
}
