//! The sessions a node holds, as schema-agnostic trees.
//!
//! Each session keeps its tree, its version (+1 per committed change), the
//! version that last changed each top-level field, its idle TTL and last
//! access. A commit made against an older version is still applied when
//! none of the fields it patches changed since that version (field-level
//! merge); otherwise it is refused with the current version and nothing
//! changes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::delta::Delta;
use crate::id::SessionId;
use crate::net::message::{Applied, ErrorReply, Op, SnapshotEntry, Target};
use crate::patch::Patch;
use crate::value::Value;

/// Size limits of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded session.
    pub max_session_bytes: usize,
    /// Most sessions held.
    pub max_sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_session_bytes: 4 << 20,
            max_sessions: 1_000_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// Short number the replication stream refers to the session by.
    slot: u64,
    tree: Value,
    schema: u64,
    mutable: Vec<u16>,
    version: u64,
    field_versions: Vec<(u16, u64)>,
    ttl: Duration,
    last_access: Instant,
    size: usize,
    /// Recent commit ids and the versions they produced, so that a retried
    /// commit is recognised even after other writers committed.
    recent_commits: VecDeque<(u64, u64)>,
}

/// Commit ids remembered per session.
const RECENT_COMMITS: usize = 16;

impl Entry {
    fn field_version(&self, id: u16) -> u64 {
        self.field_versions
            .iter()
            .find(|(f, _)| *f == id)
            .map_or(0, |(_, v)| *v)
    }

    fn set_field_version(&mut self, id: u16, version: u64) {
        match self.field_versions.iter_mut().find(|(f, _)| *f == id) {
            Some(slot) => slot.1 = version,
            None => self.field_versions.push((id, version)),
        }
    }
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The new version.
    pub version: u64,
    /// Fields changed by others since the commit's base, as a delta (empty
    /// when the base was current).
    pub refresh: Vec<u8>,
    /// The commit was a retry of one already applied: nothing changed and
    /// nothing is to be replicated.
    pub replayed: bool,
    /// The session's slot, which the replicated change refers to it by.
    pub slot: u64,
}

/// The sessions of one node.
///
/// Sessions live in a persistent hash map (`imbl`) of shared entries, so
/// that [`Store::view`] takes a consistent copy of the whole store in O(1)
/// for a snapshot, while writes go on: a write copies only the entry it
/// changes, and only while a snapshot still holds it.
#[derive(Debug, Clone)]
pub struct Store {
    sessions: imbl::HashMap<SessionId, Arc<Entry>>,
    slots: HashMap<u64, SessionId>,
    next_slot: u64,
    limits: Limits,
    default_ttl: Duration,
    bytes: usize,
}

fn bad(msg: impl Into<String>) -> ErrorReply {
    ErrorReply::BadRequest(msg.into())
}

impl Store {
    /// An empty store.
    pub fn new(limits: Limits, default_ttl: Duration) -> Self {
        Self {
            sessions: imbl::HashMap::new(),
            slots: HashMap::new(),
            next_slot: 0,
            limits,
            default_ttl,
            bytes: 0,
        }
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Encoded bytes of every session held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// A session's version and encoding, without touching it.
    pub fn peek(&self, id: &SessionId) -> Option<(u64, Vec<u8>)> {
        self.sessions
            .get(id)
            .map(|e| (e.version, e.tree.to_bytes()))
    }

    fn ttl(&self, ttl_ms: u64) -> Duration {
        if ttl_ms == 0 {
            self.default_ttl
        } else {
            Duration::from_millis(ttl_ms)
        }
    }

    /// Creates a session; returns the slot the replication stream will
    /// refer to it by.
    pub fn create(
        &mut self,
        id: SessionId,
        schema: u64,
        mutable: &[u16],
        ttl_ms: u64,
        tree: &[u8],
        now: Instant,
    ) -> Result<u64, ErrorReply> {
        let slot = self.next_slot;
        self.create_at(id, slot, schema, mutable, ttl_ms, tree, now)?;
        Ok(slot)
    }

    /// Creates a session in a given slot (as a replicated create does).
    #[allow(clippy::too_many_arguments)]
    fn create_at(
        &mut self,
        id: SessionId,
        slot: u64,
        schema: u64,
        mutable: &[u16],
        ttl_ms: u64,
        tree: &[u8],
        now: Instant,
    ) -> Result<(), ErrorReply> {
        if self.slots.contains_key(&slot) {
            return Err(bad(format!("slot {slot} is taken")));
        }
        if self.sessions.contains_key(&id) {
            return Err(ErrorReply::AlreadyExists);
        }
        if self.sessions.len() >= self.limits.max_sessions {
            return Err(ErrorReply::TooLarge(format!(
                "node holds its limit of {} sessions",
                self.limits.max_sessions
            )));
        }
        if tree.len() > self.limits.max_session_bytes {
            return Err(ErrorReply::TooLarge(format!(
                "session of {} bytes exceeds the {}-byte limit",
                tree.len(),
                self.limits.max_session_bytes
            )));
        }
        let value =
            Value::from_bytes(tree).map_err(|e| bad(format!("session does not decode: {e}")))?;
        if !matches!(value, Value::Record(_)) {
            return Err(bad("a session must be a record"));
        }
        let mut mutable = mutable.to_vec();
        mutable.sort_unstable();
        mutable.dedup();
        self.bytes += tree.len();
        let entry = Entry {
            slot,
            tree: value,
            schema,
            mutable,
            version: 1,
            field_versions: Vec::new(),
            ttl: self.ttl(ttl_ms),
            last_access: now,
            size: tree.len(),
            recent_commits: VecDeque::new(),
        };
        self.sessions.insert(id, Arc::new(entry));
        self.slots.insert(slot, id);
        self.next_slot = self.next_slot.max(slot + 1);
        Ok(())
    }

    /// The slot of a session, if held.
    pub fn slot(&self, id: &SessionId) -> Option<u64> {
        self.sessions.get(id).map(|e| e.slot)
    }

    fn entry(&mut self, id: &SessionId, schema: Option<u64>) -> Result<&mut Entry, ErrorReply> {
        let e = Arc::make_mut(self.sessions.get_mut(id).ok_or(ErrorReply::NotFound)?);
        match schema {
            Some(s) if s != e.schema => Err(ErrorReply::SchemaMismatch {
                session: e.schema,
                request: s,
            }),
            _ => Ok(e),
        }
    }

    /// Reads a session, counting it as an access.
    pub fn load(
        &mut self,
        id: &SessionId,
        schema: u64,
        now: Instant,
    ) -> Result<(u64, Vec<u8>), ErrorReply> {
        let e = self.entry(id, Some(schema))?;
        e.last_access = now;
        Ok((e.version, e.tree.to_bytes()))
    }

    /// Marks a session as accessed.
    pub fn touch(&mut self, id: &SessionId, now: Instant) -> Result<(), ErrorReply> {
        self.entry(id, None)?.last_access = now;
        Ok(())
    }

    /// Removes a session.
    pub fn delete(&mut self, id: &SessionId) -> Result<(), ErrorReply> {
        let e = self.sessions.remove(id).ok_or(ErrorReply::NotFound)?;
        self.slots.remove(&e.slot);
        self.bytes -= e.size;
        Ok(())
    }

    /// Applies a client's delta, made against version `base`.
    pub fn commit(
        &mut self,
        id: &SessionId,
        schema: u64,
        base: u64,
        commit_id: u64,
        delta: &[u8],
        now: Instant,
    ) -> Result<Committed, ErrorReply> {
        self.commit_checked(id, Some(schema), base, commit_id, delta, now)
    }

    fn commit_checked(
        &mut self,
        id: &SessionId,
        schema: Option<u64>,
        base: u64,
        commit_id: u64,
        delta: &[u8],
        now: Instant,
    ) -> Result<Committed, ErrorReply> {
        let max_bytes = self.limits.max_session_bytes;
        let e = self.entry(id, schema)?;
        e.last_access = now;
        if let Some((_, version)) = e
            .recent_commits
            .iter()
            .find(|(c, _)| commit_id != 0 && *c == commit_id)
        {
            return Ok(Committed {
                slot: e.slot,
                version: *version,
                refresh: Vec::new(),
                replayed: true,
            });
        }
        if base > e.version {
            return Err(ErrorReply::UnknownVersion { current: e.version });
        }
        let delta =
            Delta::from_bytes(delta).map_err(|err| bad(format!("delta does not decode: {err}")))?;
        if let Some(id) = delta
            .field_ids()
            .find(|f| e.mutable.binary_search(f).is_err())
        {
            return Err(bad(format!("field {id} is immutable or unknown")));
        }
        if base < e.version && delta.field_ids().any(|f| e.field_version(f) > base) {
            return Err(ErrorReply::Conflict { current: e.version });
        }
        // A delta cannot grow the tree by much more than its own length.
        if e.size + 2 * delta.encoded_len() > max_bytes + max_bytes / 2 {
            return Err(ErrorReply::TooLarge(format!(
                "session would exceed the {max_bytes}-byte limit"
            )));
        }
        let before = e.size;
        // Only the size after applying tells whether the result fits: keep
        // what the delta replaces (its top-level fields, not the whole
        // session), to put it back if it does not.
        let undo = Undo::of(e, &delta);
        apply(e, &delta, e.version + 1, commit_id)?;
        if e.size > max_bytes {
            undo.restore(e);
            return Err(ErrorReply::TooLarge(format!(
                "session would exceed the {max_bytes}-byte limit"
            )));
        }
        let refresh = if base < e.version - 1 {
            refresh(e, base, &delta)
        } else {
            Vec::new()
        };
        let (version, size, slot) = (e.version, e.size, e.slot);
        self.bytes = self.bytes + size - before;
        Ok(Committed {
            slot,
            version,
            refresh,
            replayed: false,
        })
    }

    /// The slot and schema of a session, if held: the leader names a
    /// session by its slot in the log once it has checked the schema.
    pub fn slot_and_schema(&self, id: &SessionId) -> Option<(u64, u64)> {
        self.sessions.get(id).map(|e| (e.slot, e.schema))
    }

    /// A session's version, if held.
    pub fn version(&self, id: &SessionId) -> Option<u64> {
        self.sessions.get(id).map(|e| e.version)
    }

    /// Applies one entry of the replicated log. Deterministic: every
    /// replica that applies the same entries in the same order reaches the
    /// same sessions and gives the same answer (only `now`, the local
    /// last-access time, differs). A refused op changes nothing.
    pub fn apply_op(&mut self, op: &Op, now: Instant) -> Result<Applied, ErrorReply> {
        match op {
            Op::Create {
                id,
                schema,
                mutable,
                ttl_ms,
                tree,
                commit_id,
            } => {
                if let Some(e) = self.sessions.get(id) {
                    // A retried create whose first attempt was applied.
                    return if *commit_id != 0 && e.recent_commits.contains(&(*commit_id, 1)) {
                        Ok(Applied::Created)
                    } else {
                        Err(ErrorReply::AlreadyExists)
                    };
                }
                let slot = self.next_slot;
                self.create_at(*id, slot, *schema, mutable, *ttl_ms, tree, now)?;
                if *commit_id != 0 {
                    if let Some(e) = self.sessions.get_mut(id) {
                        Arc::make_mut(e).recent_commits.push_back((*commit_id, 1));
                    }
                }
                Ok(Applied::Created)
            }
            Op::Commit {
                target,
                base,
                commit_id,
                delta,
            } => {
                let (id, schema) = match target {
                    Target::Slot(slot) => {
                        (*self.slots.get(slot).ok_or(ErrorReply::NotFound)?, None)
                    }
                    Target::Id { id, schema } => (*id, Some(*schema)),
                };
                let c = self.commit_checked(&id, schema, *base, *commit_id, delta, now)?;
                Ok(Applied::Committed {
                    version: c.version,
                    refresh: c.refresh,
                })
            }
            Op::Delete { id } => self.delete(id).map(|()| Applied::Removed),
            Op::Expire { id, version } => {
                if self.version(id) == Some(*version) {
                    self.delete(id)?;
                    Ok(Applied::Removed)
                } else {
                    Ok(Applied::Nothing)
                }
            }
        }
    }

    /// Whether a session is held and idle past its TTL at `now`.
    pub fn is_expired(&self, id: &SessionId, now: Instant) -> bool {
        self.sessions
            .get(id)
            .is_some_and(|e| now.saturating_duration_since(e.last_access) > e.ttl)
    }

    /// Sessions idle past their TTL at `now`.
    pub fn expired(&self, now: Instant) -> Vec<SessionId> {
        self.sessions
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.last_access) > e.ttl)
            .map(|(id, _)| *id)
            .collect()
    }

    /// An order-independent digest of every session's id, version and
    /// bytes: equal on two nodes exactly when they hold the same sessions
    /// (up to hash collisions). Costs a pass over the store.
    pub fn digest(&self) -> u64 {
        self.sessions.iter().fold(0, |acc, (id, e)| {
            let mut fp = crate::schema::Fingerprint::new();
            fp.write(id.as_bytes());
            fp.write(&e.version.to_le_bytes());
            fp.write(&e.tree.to_bytes());
            acc ^ fp.finish()
        })
    }

    /// Restarts every session's idle clock (a new primary does not know
    /// when sessions were last read on the old one).
    pub fn touch_all(&mut self, now: Instant) {
        for e in self.sessions.iter_mut() {
            Arc::make_mut(e.1).last_access = now;
        }
    }

    /// A consistent copy of every session, taken in O(1) (see [`Store`]),
    /// to write a snapshot from without holding the store.
    pub fn view(&self) -> StoreView {
        StoreView {
            sessions: self.sessions.clone(),
            next_slot: self.next_slot,
        }
    }

    /// Every session as `(id, version, encoding)`, sorted by id: two
    /// replicas hold the same sessions exactly when their dumps are equal.
    pub fn dump(&self) -> Vec<(SessionId, u64, Vec<u8>)> {
        let mut all: Vec<_> = self
            .sessions
            .iter()
            .map(|(id, e)| (*id, e.version, e.tree.to_bytes()))
            .collect();
        all.sort_unstable_by_key(|e| e.0);
        all
    }

    /// The slot the next created session takes.
    pub fn next_slot(&self) -> u64 {
        self.next_slot
    }

    /// Sets the slot the next created session takes (restoring a snapshot:
    /// slots of deleted sessions are never reused).
    pub fn set_next_slot(&mut self, slot: u64) {
        self.next_slot = self.next_slot.max(slot);
    }

    /// Adds a session from a snapshot.
    pub fn restore(&mut self, s: SnapshotEntry, now: Instant) -> Result<(), String> {
        let tree = Value::from_bytes(&s.tree).map_err(|e| format!("snapshot of {}: {e}", s.id))?;
        if !matches!(tree, Value::Record(_)) {
            return Err(format!("snapshot of {}: a session must be a record", s.id));
        }
        if self.sessions.len() >= self.limits.max_sessions && !self.sessions.contains_key(&s.id) {
            return Err(format!(
                "snapshot holds more than this node's limit of {} sessions",
                self.limits.max_sessions
            ));
        }
        if let Some(old) = self.sessions.remove(&s.id) {
            self.slots.remove(&old.slot);
            self.bytes -= old.size;
        }
        if let Some(other) = self.slots.insert(s.slot, s.id) {
            if other != s.id {
                return Err(format!(
                    "snapshot puts {} and {other} in slot {}",
                    s.id, s.slot
                ));
            }
        }
        self.next_slot = self.next_slot.max(s.slot + 1);
        self.bytes += s.tree.len();
        self.sessions.insert(
            s.id,
            Arc::new(Entry {
                slot: s.slot,
                tree,
                schema: s.schema,
                mutable: s.mutable,
                version: s.version,
                field_versions: s.field_versions,
                ttl: Duration::from_millis(s.ttl_ms),
                last_access: now,
                size: s.tree.len(),
                recent_commits: s
                    .recent_commits
                    .into_iter()
                    .rev()
                    .take(RECENT_COMMITS)
                    .rev()
                    .collect(),
            }),
        );
        Ok(())
    }
}

/// A consistent copy of a [`Store`]'s sessions (see [`Store::view`]).
#[derive(Debug, Clone)]
pub struct StoreView {
    sessions: imbl::HashMap<SessionId, Arc<Entry>>,
    next_slot: u64,
}

impl StoreView {
    /// Sessions in the copy.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the copy holds no session.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The slot the next created session takes.
    pub fn next_slot(&self) -> u64 {
        self.next_slot
    }

    /// Every session, one at a time (the snapshot writer encodes each as it
    /// goes: never the whole store in one buffer).
    pub fn entries(&self) -> impl Iterator<Item = SnapshotEntry> + '_ {
        self.sessions.iter().map(|(id, e)| SnapshotEntry {
            id: *id,
            slot: e.slot,
            schema: e.schema,
            mutable: e.mutable.clone(),
            version: e.version,
            ttl_ms: u64::try_from(e.ttl.as_millis()).unwrap_or(u64::MAX),
            field_versions: e.field_versions.clone(),
            recent_commits: e.recent_commits.iter().copied().collect(),
            tree: e.tree.to_bytes(),
        })
    }
}

/// What [`apply`] changes in an entry, to restore it.
struct Undo {
    fields: Vec<(u16, Value)>,
    version: u64,
    field_versions: Vec<(u16, u64)>,
    recent_commits: VecDeque<(u64, u64)>,
    size: usize,
}

impl Undo {
    /// Saves the top-level fields `delta` patches, and the entry's metadata.
    fn of(e: &Entry, delta: &Delta) -> Undo {
        let fields = match &e.tree {
            Value::Record(fields) => fields
                .iter()
                .filter(|(id, _)| delta.field(*id).is_some())
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        Undo {
            fields,
            version: e.version,
            field_versions: e.field_versions.clone(),
            recent_commits: e.recent_commits.clone(),
            size: e.size,
        }
    }

    fn restore(self, e: &mut Entry) {
        if let Value::Record(own) = &mut e.tree {
            for (id, value) in self.fields {
                if let Ok(i) = own.binary_search_by_key(&id, |(i, _)| *i) {
                    own[i].1 = value;
                }
            }
        }
        e.version = self.version;
        e.field_versions = self.field_versions;
        e.recent_commits = self.recent_commits;
        e.size = self.size;
    }
}

/// Applies a delta to an entry as version `version`.
fn apply(e: &mut Entry, delta: &Delta, version: u64, commit_id: u64) -> Result<(), ErrorReply> {
    e.tree
        .apply_fields(delta.fields())
        .map_err(|err| bad(err.to_string()))?;
    e.version = version;
    for f in delta.field_ids() {
        e.set_field_version(f, version);
    }
    if commit_id != 0 {
        if e.recent_commits.len() == RECENT_COMMITS {
            e.recent_commits.pop_front();
        }
        e.recent_commits.push_back((commit_id, version));
    }
    e.size = e.tree.encoded_len();
    Ok(())
}

/// The fields changed since `base` by other commits than `own`, as a delta
/// of whole values.
fn refresh(e: &Entry, base: u64, own: &Delta) -> Vec<u8> {
    let Value::Record(fields) = &e.tree else {
        return Vec::new();
    };
    let changed: Vec<(u16, Patch)> = fields
        .iter()
        .filter(|(id, _)| e.field_version(*id) > base && own.field(*id).is_none())
        .map(|(id, v)| (*id, Patch::Set(v.clone())))
        .collect();
    if changed.is_empty() {
        Vec::new()
    } else {
        Delta::from_fields(changed).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(a: u8, b: u8) -> Vec<u8> {
        Value::Record(vec![
            (0, Value::Leaf(vec![9])),
            (1, Value::Leaf(vec![a])),
            (2, Value::Leaf(vec![b])),
        ])
        .to_bytes()
    }

    fn set(field: u16, v: u8) -> Vec<u8> {
        Delta::from_fields(vec![(field, Patch::Set(Value::Leaf(vec![v])))]).to_bytes()
    }

    fn store_with_one() -> (Store, SessionId, Instant) {
        let mut s = Store::new(Limits::default(), Duration::from_secs(60));
        let id = SessionId::random();
        let now = Instant::now();
        s.create(id, 7, &[1, 2], 0, &tree(0, 0), now)
            .expect("fresh id");
        (s, id, now)
    }

    #[test]
    fn stale_commits_merge_when_their_fields_did_not_change() {
        let (mut s, id, now) = store_with_one();
        let a = s
            .commit(&id, 7, 1, 11, &set(1, 5), now)
            .expect("current base");
        assert_eq!((a.version, a.refresh.is_empty()), (2, true));
        // Based on version 1, touching only field 2: merged, and told about field 1.
        let b = s
            .commit(&id, 7, 1, 12, &set(2, 6), now)
            .expect("disjoint fields merge");
        assert_eq!(b.version, 3);
        let refresh = Delta::from_bytes(&b.refresh).expect("refresh is a delta");
        assert_eq!(refresh.field_ids().collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.peek(&id).map(|p| p.1), Some(tree(5, 6)));
        // Based on version 1, touching field 1 again: conflict, nothing changes.
        assert_eq!(
            s.commit(&id, 7, 1, 13, &set(1, 8), now),
            Err(ErrorReply::Conflict { current: 3 })
        );
        assert_eq!(s.peek(&id), Some((3, tree(5, 6))));
    }

    #[test]
    fn a_retried_commit_is_not_applied_twice_even_after_other_commits() {
        let (mut s, id, now) = store_with_one();
        let first = s.commit(&id, 7, 1, 42, &set(1, 5), now).expect("applies");
        s.commit(&id, 7, 2, 43, &set(2, 5), now)
            .expect("another writer");
        let again = s.commit(&id, 7, 1, 42, &set(1, 5), now).expect("replays");
        assert!(again.replayed);
        assert_eq!((first.version, again.version), (2, 2));
        assert_eq!(s.peek(&id).map(|p| p.0), Some(3));
    }

    #[test]
    fn bad_commits_are_refused_and_change_nothing() {
        let (mut s, id, now) = store_with_one();
        let cases = [
            (s.commit(&id, 8, 1, 0, &set(1, 1), now), "schema"),
            (s.commit(&id, 7, 5, 0, &set(1, 1), now), "future base"),
            (s.commit(&id, 7, 1, 0, &[0xff, 0x00], now), "garbage"),
            (s.commit(&id, 7, 1, 0, &set(0, 1), now), "immutable field"),
            (s.commit(&id, 7, 1, 0, &set(9, 1), now), "unknown field"),
            (
                s.commit(&SessionId::random(), 7, 1, 0, &set(1, 1), now),
                "unknown session",
            ),
        ];
        for (result, what) in cases {
            assert!(result.is_err(), "{what}");
        }
        assert_eq!(s.peek(&id), Some((1, tree(0, 0))));
    }

    #[test]
    fn limits_are_enforced() {
        let mut s = Store::new(
            Limits {
                max_session_bytes: 16,
                max_sessions: 1,
            },
            Duration::from_secs(1),
        );
        let now = Instant::now();
        assert!(matches!(
            s.create(
                SessionId::random(),
                1,
                &[],
                0,
                &Value::Record(vec![(0, Value::Leaf(vec![0; 32]))]).to_bytes(),
                now
            ),
            Err(ErrorReply::TooLarge(_))
        ));
        s.create(SessionId::random(), 1, &[], 0, &tree(1, 1), now)
            .expect("fits");
        assert!(matches!(
            s.create(SessionId::random(), 1, &[], 0, &tree(1, 1), now),
            Err(ErrorReply::TooLarge(_))
        ));
    }

    #[test]
    fn a_commit_over_the_size_limit_changes_nothing() {
        let mut s = Store::new(
            Limits {
                max_session_bytes: 100,
                max_sessions: 10,
            },
            Duration::from_secs(60),
        );
        let now = Instant::now();
        let id = SessionId::random();
        let tree = Value::Record(vec![
            (1, Value::Leaf(vec![1])),
            (2, Value::Leaf(vec![2; 75])),
        ])
        .to_bytes();
        s.create(id, 7, &[1, 2], 0, &tree, now).expect("fits");
        let delta = Delta::from_fields(vec![(1, Patch::Set(Value::Leaf(vec![3; 30])))]).to_bytes();
        // Passes the early estimate: only applying shows that it does not fit.
        assert!(tree.len() + 2 * delta.len() <= 150);
        assert!(matches!(
            s.commit(&id, 7, 1, 9, &delta, now),
            Err(ErrorReply::TooLarge(_))
        ));
        assert_eq!(s.peek(&id), Some((1, tree.clone())));
        assert_eq!(s.bytes(), tree.len());
        // The same commit id is not taken for a replay, and a commit that fits applies.
        let small = Delta::from_fields(vec![(1, Patch::Set(Value::Leaf(vec![3; 5])))]).to_bytes();
        let c = s.commit(&id, 7, 1, 9, &small, now).expect("fits");
        assert_eq!((c.version, c.replayed), (2, false));
    }

    #[test]
    fn replicas_applying_the_same_log_agree_in_every_answer_and_byte() {
        let now = Instant::now();
        let (mut a, mut b) = (
            Store::new(Limits::default(), Duration::from_secs(60)),
            Store::new(Limits::default(), Duration::from_secs(60)),
        );
        let (id, other) = (SessionId::random(), SessionId::random());
        let create = |id, commit_id| Op::Create {
            id,
            schema: 7,
            mutable: vec![1, 2],
            ttl_ms: 0,
            tree: tree(0, 0),
            commit_id,
        };
        let commit = |target, base, commit_id, delta| Op::Commit {
            target,
            base,
            commit_id,
            delta,
        };
        let log: Vec<(Op, Result<Applied, ErrorReply>)> = vec![
            (create(id, 5), Ok(Applied::Created)),
            // A retried create is recognised; another create of the id is not.
            (create(id, 5), Ok(Applied::Created)),
            (create(id, 6), Err(ErrorReply::AlreadyExists)),
            (
                commit(Target::Slot(0), 1, 11, set(1, 5)),
                Ok(Applied::Committed {
                    version: 2,
                    refresh: Vec::new(),
                }),
            ),
            (
                commit(Target::Id { id, schema: 7 }, 1, 12, set(2, 6)),
                Ok(Applied::Committed {
                    version: 3,
                    refresh: Delta::from_fields(vec![(1, Patch::Set(Value::Leaf(vec![5])))])
                        .to_bytes(),
                }),
            ),
            // Field 1 changed at version 2: a base of 1 conflicts, a base
            // of 2 (the version that changed it) merges.
            (
                commit(Target::Slot(0), 1, 13, set(1, 8)),
                Err(ErrorReply::Conflict { current: 3 }),
            ),
            (
                commit(Target::Slot(0), 2, 14, set(1, 8)),
                Ok(Applied::Committed {
                    version: 4,
                    refresh: set(2, 6),
                }),
            ),
            (
                commit(Target::Slot(9), 1, 15, set(1, 1)),
                Err(ErrorReply::NotFound),
            ),
            (
                commit(Target::Id { id, schema: 8 }, 4, 16, set(1, 1)),
                Err(ErrorReply::SchemaMismatch {
                    session: 7,
                    request: 8,
                }),
            ),
            (
                commit(Target::Slot(0), 9, 17, set(1, 1)),
                Err(ErrorReply::UnknownVersion { current: 4 }),
            ),
            (create(other, 0), Ok(Applied::Created)),
            // An expiry the leader decided at version 3 is overtaken by the
            // commit that made version 4; at version 4 it applies.
            (Op::Expire { id, version: 3 }, Ok(Applied::Nothing)),
            (Op::Expire { id, version: 4 }, Ok(Applied::Removed)),
            (Op::Delete { id }, Err(ErrorReply::NotFound)),
            (Op::Delete { id: other }, Ok(Applied::Removed)),
        ];
        for (i, (op, expected)) in log.iter().enumerate() {
            let (ra, rb) = (a.apply_op(op, now), b.apply_op(op, now));
            assert_eq!(&ra, expected, "entry {i}: {op:?}");
            assert_eq!(ra, rb, "entry {i}");
            assert_eq!(a.dump(), b.dump(), "entry {i}");
        }
        assert!(a.is_empty());
        // Slots of deleted sessions are never reused.
        assert_eq!(a.next_slot(), 2);
        let third = SessionId::random();
        a.apply_op(&create(third, 0), now).expect("creates");
        assert_eq!(a.slot(&third), Some(2));
    }

    #[test]
    fn a_snapshot_view_restores_to_the_same_store_while_writes_go_on() {
        let (mut s, id, now) = store_with_one();
        s.commit(&id, 7, 1, 3, &set(1, 4), now).expect("applies");
        let view = s.view();
        let before = s.dump();
        // Writes after the view do not change it.
        s.commit(&id, 7, 2, 4, &set(2, 9), now).expect("applies");
        let mut copy = Store::new(Limits::default(), Duration::from_secs(60));
        for e in view.entries() {
            copy.restore(e, now).expect("restores");
        }
        copy.set_next_slot(view.next_slot());
        assert_eq!(copy.dump(), before);
        assert_ne!(copy.dump(), s.dump());
        // Recent commit ids travel with the snapshot: a retry is recognised.
        let replay = copy.commit(&id, 7, 1, 3, &set(1, 4), now).expect("replays");
        assert!(replay.replayed);
    }

    #[test]
    fn counts_bytes_loads_and_touches_follow_the_sessions() {
        let mut s = Store::new(
            Limits {
                max_session_bytes: tree(0, 0).len(),
                max_sessions: 10,
            },
            Duration::from_secs(60),
        );
        let now = Instant::now();
        assert!(s.is_empty());
        let (a, b) = (SessionId::random(), SessionId::random());
        // A session of exactly the limit fits.
        s.create(a, 7, &[1, 2], 0, &tree(0, 0), now).expect("fits");
        s.create(b, 7, &[1, 2], 0, &tree(1, 1), now).expect("fits");
        assert_eq!((s.len(), s.is_empty()), (2, false));
        assert_eq!(s.bytes(), 2 * tree(0, 0).len());
        // A load returns the version and the encoding, and counts as an access.
        let later = now + Duration::from_secs(50);
        assert_eq!(s.load(&a, 7, later), Ok((1, tree(0, 0))));
        assert_eq!(
            s.load(&a, 8, later).map(|_| ()),
            Err(ErrorReply::SchemaMismatch {
                session: 7,
                request: 8
            })
        );
        s.touch(&b, later).expect("held");
        assert_eq!(
            s.touch(&SessionId::random(), later),
            Err(ErrorReply::NotFound)
        );
        let after_ttl = now + Duration::from_secs(61);
        assert!(
            s.expired(after_ttl).is_empty(),
            "both were accessed at +50s"
        );
        s.delete(&a).expect("held");
        assert_eq!((s.len(), s.bytes()), (1, tree(1, 1).len()));
        assert_eq!(s.load(&a, 7, later), Err(ErrorReply::NotFound));
        s.delete(&b).expect("held");
        assert_eq!((s.len(), s.bytes(), s.is_empty()), (0, 0, true));
    }

    #[test]
    fn sessions_expire_strictly_after_their_ttl() {
        let (s, id, now) = store_with_one();
        let ttl = Duration::from_secs(60);
        assert!(s.expired(now + ttl).is_empty(), "idle exactly the TTL");
        assert!(!s.is_expired(&id, now + ttl));
        assert_eq!(s.expired(now + ttl + Duration::from_millis(1)), vec![id]);
        assert!(s.is_expired(&id, now + ttl + Duration::from_millis(1)));
    }

    #[test]
    fn the_digest_and_dump_tell_different_stores_apart() {
        let (mut a, id, now) = store_with_one();
        let mut b = a.clone();
        assert_eq!((a.digest(), a.dump()), (b.digest(), b.dump()));
        a.commit(&id, 7, 1, 3, &set(1, 4), now).expect("applies");
        assert_ne!(a.digest(), b.digest());
        assert_ne!(a.dump(), b.dump());
        b.commit(&id, 7, 1, 3, &set(1, 4), now).expect("applies");
        assert_eq!((a.digest(), a.dump()), (b.digest(), b.dump()));
    }
}
