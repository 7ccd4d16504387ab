//! Dirty tracking: a session value plus copies of the fields written since
//! the last delta.

use std::fmt;
use std::ops::Deref;

use crate::delta::Delta;
use crate::session::Session;

/// A session whose writes are tracked field by field.
///
/// Reading is plain field access through `Deref`. Writing goes through
/// [`Tracked::edit`], whose generated proxy has one method per mutable field;
/// the first write to a field after a delta keeps a copy of its old value
/// (the benchmark), so [`Tracked::take_delta`] diffs only the fields that
/// were written, against exactly what the other side has. There is no
/// `DerefMut`: a write that bypassed the proxy would be missed.
///
/// ```
/// use session_runtime::{Session, Tracked};
///
/// #[derive(Session, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Visit {
///     #[immutable]
///     user: u64,
///     pages: Vec<String>,
/// }
///
/// let mut s = Tracked::new(Visit { user: 7, pages: vec![] });
/// s.edit().pages().push("/cart".into());
/// assert!(s.is_dirty());
/// let delta = s.take_delta();
/// let mut backup = Visit { user: 7, pages: vec![] };
/// backup.apply(&delta).unwrap();
/// assert_eq!(backup, *s);
/// ```
pub struct Tracked<T: Session> {
    value: T,
    benchmark: T::Benchmark,
    version: u64,
}

impl<T: Session> Tracked<T> {
    /// Starts tracking; the benchmark is the value as given.
    pub fn new(value: T) -> Self {
        Self::with_version(value, 0)
    }

    /// Starts tracking a value that is `version` of a stored session.
    pub fn with_version(value: T, version: u64) -> Self {
        Self {
            value,
            benchmark: T::Benchmark::default(),
            version,
        }
    }

    /// The version of the stored session this value was loaded or last
    /// committed as (0 for a value never stored).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The write proxy: `tracked.edit().field()` returns `&mut` to a mutable
    /// field and marks it dirty.
    pub fn edit(&mut self) -> T::Edit<'_> {
        T::__edit(&mut self.value, &mut self.benchmark)
    }

    /// Whether any field was written since the last delta (a write that
    /// restored the old value still counts; its delta is empty).
    pub fn is_dirty(&self) -> bool {
        T::__is_dirty(&self.benchmark)
    }

    /// The changes to the written fields since the last call, compared with
    /// their benchmarks. Resets dirtiness: the current value becomes the
    /// benchmark.
    pub fn take_delta(&mut self) -> Delta {
        let delta = self.pending_delta();
        self.benchmark = T::Benchmark::default();
        delta
    }

    /// The changes to the written fields, without resetting anything: what
    /// a commit ships, kept until the store accepted it.
    pub fn pending_delta(&self) -> Delta {
        self.value.__pending_delta(&self.benchmark)
    }

    /// The store accepted the pending changes as `version`: they become the
    /// benchmark.
    pub fn mark_committed(&mut self, version: u64) {
        self.benchmark = T::Benchmark::default();
        self.version = version;
    }

    /// Applies changes that are already stored (the refresh of a merged
    /// commit) to the value, without marking anything dirty.
    pub fn apply_stored(&mut self, delta: &Delta) -> Result<(), crate::ApplyError> {
        self.value.apply(delta)
    }

    /// Starts a commit, for [`SessionStore`](crate::SessionStore)
    /// implementations: the delta to ship, or `None` when nothing changed
    /// (the commit is then already complete at the current version).
    pub fn begin_commit(&mut self) -> Option<Delta> {
        let delta = self.pending_delta();
        if delta.is_empty() {
            self.mark_committed(self.version);
            None
        } else {
            Some(delta)
        }
    }

    /// Completes a commit the store accepted as `version`; `others` holds
    /// the fields other writers changed since the base version, as stored.
    pub fn finish_commit(
        &mut self,
        version: u64,
        others: Option<&Delta>,
    ) -> Result<(), crate::ApplyError> {
        self.mark_committed(version);
        match others {
            Some(d) => self.apply_stored(d),
            None => Ok(()),
        }
    }

    /// Stops tracking, returning the value (unsent changes are forgotten).
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: Session> Deref for Tracked<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Session + fmt::Debug> fmt::Debug for Tracked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("value", &self.value)
            .field("version", &self.version)
            .field("dirty", &self.is_dirty())
            .finish()
    }
}
