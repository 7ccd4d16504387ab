//! Sessions in this process's memory.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::SessionStore;
use crate::client::{refusal, ClientError};
use crate::id::{random_u64, SessionId};
use crate::session::Session;
use crate::store::{Limits, Store};
use crate::tracked::Tracked;

/// A [`SessionStore`] in this process's memory, for tests and
/// single-server applications. It uses the store nodes' own session store,
/// so versions, field-level merges, conflicts and limits behave exactly as
/// on a replica set; nothing survives the process.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    store: Arc<Mutex<Store>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(Duration::from_secs(30 * 60))
    }
}

impl MemoryStore {
    /// An empty store whose sessions expire after `ttl` idle.
    pub fn new(ttl: Duration) -> Self {
        Self::with_limits(ttl, Limits::default())
    }

    /// An empty store with size limits.
    pub fn with_limits(ttl: Duration, limits: Limits) -> Self {
        Self {
            store: Arc::new(Mutex::new(Store::new(limits, ttl))),
        }
    }

    /// Sessions held (expired ones included until next touched or swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every session idle past its TTL; returns how many.
    pub fn sweep(&self) -> usize {
        let mut store = self.lock();
        let expired = store.expired(Instant::now());
        for id in &expired {
            let _ = store.delete(id);
        }
        expired.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the store after expiring `id` if it is idle past its TTL.
    fn with<R>(&self, id: &SessionId, f: impl FnOnce(&mut Store, Instant) -> R) -> R {
        let now = Instant::now();
        let mut store = self.lock();
        if store.is_expired(id, now) {
            let _ = store.delete(id);
        }
        f(&mut store, now)
    }
}

impl SessionStore for MemoryStore {
    async fn create<T: Session>(&self, value: &T) -> Result<SessionId, ClientError> {
        let id = SessionId::random();
        let schema = T::schema();
        let tree = value.to_bytes();
        self.with(&id, |s, now| {
            s.create(
                id,
                schema.fingerprint(),
                schema.mutable_ids(),
                0,
                &tree,
                now,
            )
        })
        .map_err(refusal)?;
        Ok(id)
    }

    async fn load<T: Session>(&self, id: SessionId) -> Result<Tracked<T>, ClientError> {
        let (version, tree) = self
            .with(&id, |s, now| s.load(&id, T::schema().fingerprint(), now))
            .map_err(refusal)?;
        Ok(Tracked::with_version(T::from_bytes(&tree)?, version))
    }

    async fn commit<T: Session>(
        &self,
        id: SessionId,
        tracked: &mut Tracked<T>,
    ) -> Result<u64, ClientError> {
        let Some(delta) = tracked.begin_commit() else {
            return Ok(tracked.version());
        };
        let bytes = delta.to_bytes();
        let schema = T::schema().fingerprint();
        let base = tracked.version();
        let done = self
            .with(&id, |s, now| {
                s.commit(&id, schema, base, random_u64() | 1, &bytes, now)
            })
            .map_err(refusal)?;
        tracked.finish_commit(done.version, super::refresh(&done.refresh)?.as_ref())?;
        Ok(done.version)
    }

    async fn delete(&self, id: SessionId) -> Result<(), ClientError> {
        self.with(&id, |s, _| s.delete(&id)).map_err(refusal)
    }

    async fn touch(&self, id: SessionId) -> Result<(), ClientError> {
        self.with(&id, |s, now| s.touch(&id, now)).map_err(refusal)
    }
}
