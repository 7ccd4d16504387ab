//! Maps and sets, keyed by the canonical encoding of their keys.
//!
//! Entries are kept in the tree in bytewise order of the encoded keys, which
//! makes the encoding of a `HashMap` independent of its iteration order: two
//! equal maps always have equal bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{replacement, smaller, Strategy};
use crate::codec;
use crate::error::{ApplyError, ApplyErrorKind, PathStep};
use crate::patch::{MapOp, Patch};
use crate::value::Value;
use crate::wire::{self, kind};

/// The map types handled by [`MapOf`].
pub trait MapLike: Default {
    /// Key type.
    type Key;
    /// Value type.
    type Val;
    /// Number of entries.
    fn len(&self) -> usize;
    /// The value of a key.
    fn lookup(&self, key: &Self::Key) -> Option<&Self::Val>;
    /// The value of a key, mutably.
    fn lookup_mut(&mut self, key: &Self::Key) -> Option<&mut Self::Val>;
    /// Inserts or replaces.
    fn put(&mut self, key: Self::Key, val: Self::Val);
    /// Removes.
    fn take(&mut self, key: &Self::Key);
    /// Every entry, in any order.
    fn entries(&self) -> impl Iterator<Item = (&Self::Key, &Self::Val)>;
}

impl<K: Hash + Eq, V, H: BuildHasher + Default> MapLike for HashMap<K, V, H> {
    type Key = K;
    type Val = V;
    fn len(&self) -> usize {
        HashMap::len(self)
    }
    fn lookup(&self, key: &K) -> Option<&V> {
        self.get(key)
    }
    fn lookup_mut(&mut self, key: &K) -> Option<&mut V> {
        self.get_mut(key)
    }
    fn put(&mut self, key: K, val: V) {
        self.insert(key, val);
    }
    fn take(&mut self, key: &K) {
        self.remove(key);
    }
    fn entries(&self) -> impl Iterator<Item = (&K, &V)> {
        self.iter()
    }
}

impl<K: Ord, V> MapLike for BTreeMap<K, V> {
    type Key = K;
    type Val = V;
    fn len(&self) -> usize {
        BTreeMap::len(self)
    }
    fn lookup(&self, key: &K) -> Option<&V> {
        self.get(key)
    }
    fn lookup_mut(&mut self, key: &K) -> Option<&mut V> {
        self.get_mut(key)
    }
    fn put(&mut self, key: K, val: V) {
        self.insert(key, val);
    }
    fn take(&mut self, key: &K) {
        self.remove(key);
    }
    fn entries(&self) -> impl Iterator<Item = (&K, &V)> {
        self.iter()
    }
}

/// A lower bound of the encoded length of a whole map of `len` entries,
/// from a patch of it: its header, the entries the patch carries whole, and
/// two bytes (key length and value) for every other entry.
fn whole_bound(ops: &[MapOp], len: usize) -> usize {
    let (carried, count) = ops.iter().fold((0, 0), |(bytes, n), op| match op {
        MapOp::Put { key, value } => (
            bytes + wire::varint_len(key.len() as u64) + key.len() + value.encoded_len(),
            n + 1,
        ),
        _ => (bytes, n),
    });
    wire::header_len(len as u64) + carried + 2 * len.saturating_sub(count)
}

/// Decodes a key, which must be in canonical form, so that distinct key
/// bytes always mean distinct keys.
fn decode_key<K: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<K, ApplyError> {
    Ok(codec::decode_canonical(bytes)?)
}

fn missing(key: &[u8]) -> ApplyError {
    ApplyError::new(ApplyErrorKind::MissingKey).within(PathStep::Key(key.to_vec()))
}

/// The strategy of a map whose values use strategy `S`; keys are opaque.
pub struct MapOf<K, S>(S, PhantomData<fn() -> K>);

impl<K, S> MapOf<K, S> {
    /// The strategy for maps whose values are handled by `values`.
    pub const fn new(values: S) -> Self {
        Self(values, PhantomData)
    }
}

impl<K, S: Copy> Clone for MapOf<K, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, S: Copy> Copy for MapOf<K, S> {}

impl<K, S: fmt::Debug> fmt::Debug for MapOf<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MapOf").field(&self.0).finish()
    }
}

/// A checked map patch.
#[derive(Debug)]
pub enum MapPrepared<M, K, V, P> {
    /// Replace the whole map.
    Replace(M),
    /// Change entries.
    Ops(Vec<PreparedMapOp<K, V, P>>),
}

/// A checked change of one entry.
#[derive(Debug)]
pub enum PreparedMapOp<K, V, P> {
    /// Insert or replace.
    Put(K, V),
    /// Patch an existing value.
    Patch(K, P),
    /// Remove.
    Remove(K),
}

impl<M, S> Strategy<M> for MapOf<M::Key, S>
where
    M: MapLike,
    M::Key: Serialize + DeserializeOwned,
    S: Strategy<M::Val>,
{
    type Prepared = MapPrepared<M, M::Key, M::Val, S::Prepared>;

    fn shape(self) -> u64 {
        crate::schema::shape("map", &[self.0.shape()])
    }

    fn to_value(self, value: &M) -> Value {
        let mut entries: Vec<(Vec<u8>, Value)> = value
            .entries()
            .map(|(k, v)| (codec::encode(k), self.0.to_value(v)))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Value::Map(entries)
    }

    fn decode(self, value: &Value) -> Result<M, ApplyError> {
        let Value::Map(entries) = value else {
            return Err(ApplyError::shape("map", value.shape()));
        };
        let mut out = M::default();
        for (k, v) in entries {
            let at = |e: ApplyError| e.within(PathStep::Key(k.clone()));
            out.put(decode_key(k).map_err(at)?, self.0.decode(v).map_err(at)?);
        }
        Ok(out)
    }

    fn encode(self, value: &M, out: &mut Vec<u8>) {
        let mut entries: Vec<(Vec<u8>, &M::Val)> = value
            .entries()
            .map(|(k, v)| (codec::encode(k), v))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        wire::put_header(out, kind::MAP, entries.len() as u64);
        for (k, v) in entries {
            wire::put_bytes(out, &k);
            self.0.encode(v, out);
        }
    }

    fn min_len(self, value: &M) -> usize {
        wire::header_len(value.len() as u64) + 2 * value.len()
    }

    fn eq(self, a: &M, b: &M) -> bool {
        a.len() == b.len()
            && a.entries()
                .all(|(k, v)| b.lookup(k).is_some_and(|w| self.0.eq(v, w)))
    }

    fn diff(self, current: &M, benchmark: &M) -> Option<Patch> {
        let mut ops = Vec::new();
        let mut added = 0;
        for (k, v) in current.entries() {
            match benchmark.lookup(k) {
                None => {
                    added += 1;
                    ops.push(MapOp::Put {
                        key: codec::encode(k),
                        value: self.0.to_value(v),
                    });
                }
                Some(old) => match self.0.diff(v, old) {
                    None => {}
                    Some(Patch::Set(value)) => ops.push(MapOp::Put {
                        key: codec::encode(k),
                        value,
                    }),
                    Some(patch) => ops.push(MapOp::Patch {
                        key: codec::encode(k),
                        patch,
                    }),
                },
            }
        }
        if benchmark.len() + added > current.len() {
            // Some benchmark keys are gone: only then is the benchmark larger
            // than the current keys it shares.
            for (k, _) in benchmark.entries() {
                if current.lookup(k).is_none() {
                    ops.push(MapOp::Remove {
                        key: codec::encode(k),
                    });
                }
            }
        }
        ops.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        if ops.is_empty() {
            return None;
        }
        let bound = whole_bound(&ops, current.len());
        Some(smaller(self, current, Patch::Map(ops), bound))
    }

    fn prepare(self, target: &M, patch: &Patch) -> Result<Self::Prepared, ApplyError> {
        if let Some(whole) = replacement(self, target, patch) {
            return whole.map(MapPrepared::Replace);
        }
        let Patch::Map(ops) = patch else {
            return Err(ApplyError::shape("map", "other patch"));
        };
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let at = |e: ApplyError| e.within(PathStep::Key(op.key().to_vec()));
            let key: M::Key = decode_key(op.key()).map_err(at)?;
            out.push(match op {
                MapOp::Put { value, .. } => {
                    PreparedMapOp::Put(key, self.0.decode(value).map_err(at)?)
                }
                MapOp::Patch { patch, .. } => {
                    let old = target.lookup(&key).ok_or_else(|| missing(op.key()))?;
                    PreparedMapOp::Patch(key, self.0.prepare(old, patch).map_err(at)?)
                }
                MapOp::Remove { .. } => {
                    target.lookup(&key).ok_or_else(|| missing(op.key()))?;
                    PreparedMapOp::Remove(key)
                }
            });
        }
        Ok(MapPrepared::Ops(out))
    }

    fn commit(self, target: &mut M, prepared: Self::Prepared) {
        match prepared {
            MapPrepared::Replace(m) => *target = m,
            MapPrepared::Ops(ops) => {
                for op in ops {
                    match op {
                        PreparedMapOp::Put(k, v) => target.put(k, v),
                        PreparedMapOp::Patch(k, p) => {
                            if let Some(v) = target.lookup_mut(&k) {
                                self.0.commit(v, p);
                            }
                        }
                        PreparedMapOp::Remove(k) => target.take(&k),
                    }
                }
            }
        }
    }
}

/// The set types handled by [`SetOf`].
pub trait SetLike: Default {
    /// Element type.
    type Elem;
    /// Number of elements.
    fn len(&self) -> usize;
    /// Membership.
    fn has(&self, e: &Self::Elem) -> bool;
    /// Inserts.
    fn add(&mut self, e: Self::Elem);
    /// Removes.
    fn take(&mut self, e: &Self::Elem);
    /// Every element, in any order.
    fn elems(&self) -> impl Iterator<Item = &Self::Elem>;
}

impl<E: Hash + Eq, H: BuildHasher + Default> SetLike for HashSet<E, H> {
    type Elem = E;
    fn len(&self) -> usize {
        HashSet::len(self)
    }
    fn has(&self, e: &E) -> bool {
        self.contains(e)
    }
    fn add(&mut self, e: E) {
        self.insert(e);
    }
    fn take(&mut self, e: &E) {
        self.remove(e);
    }
    fn elems(&self) -> impl Iterator<Item = &E> {
        self.iter()
    }
}

impl<E: Ord> SetLike for BTreeSet<E> {
    type Elem = E;
    fn len(&self) -> usize {
        BTreeSet::len(self)
    }
    fn has(&self, e: &E) -> bool {
        self.contains(e)
    }
    fn add(&mut self, e: E) {
        self.insert(e);
    }
    fn take(&mut self, e: &E) {
        self.remove(e);
    }
    fn elems(&self) -> impl Iterator<Item = &E> {
        self.iter()
    }
}

/// The strategy of a set: a map from encoded elements to empty leaves.
pub struct SetOf<E>(PhantomData<fn() -> E>);

impl<E> SetOf<E> {
    /// The strategy.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<E> Default for SetOf<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Clone for SetOf<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for SetOf<E> {}

impl<E> fmt::Debug for SetOf<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SetOf")
    }
}

fn member() -> Value {
    Value::Leaf(Vec::new())
}

impl<Q> Strategy<Q> for SetOf<Q::Elem>
where
    Q: SetLike,
    Q::Elem: Serialize + DeserializeOwned,
{
    /// Either the whole set, or elements to insert (`true`) or remove.
    type Prepared = Result<Q, Vec<(Q::Elem, bool)>>;

    fn shape(self) -> u64 {
        crate::schema::shape("set", &[])
    }

    fn to_value(self, value: &Q) -> Value {
        let mut keys: Vec<Vec<u8>> = value.elems().map(codec::encode).collect();
        keys.sort_unstable();
        Value::Map(keys.into_iter().map(|k| (k, member())).collect())
    }

    fn decode(self, value: &Value) -> Result<Q, ApplyError> {
        let Value::Map(entries) = value else {
            return Err(ApplyError::shape("map", value.shape()));
        };
        let mut out = Q::default();
        for (k, v) in entries {
            if *v != member() {
                return Err(
                    ApplyError::shape("empty leaf", v.shape()).within(PathStep::Key(k.clone()))
                );
            }
            out.add(decode_key(k).map_err(|e| e.within(PathStep::Key(k.clone())))?);
        }
        Ok(out)
    }

    fn encode(self, value: &Q, out: &mut Vec<u8>) {
        self.to_value(value).encode(out);
    }

    fn min_len(self, value: &Q) -> usize {
        wire::header_len(value.len() as u64) + 3 * value.len()
    }

    fn eq(self, a: &Q, b: &Q) -> bool {
        a.len() == b.len() && a.elems().all(|e| b.has(e))
    }

    fn diff(self, current: &Q, benchmark: &Q) -> Option<Patch> {
        let mut ops: Vec<MapOp> = current
            .elems()
            .filter(|e| !benchmark.has(e))
            .map(|e| MapOp::Put {
                key: codec::encode(e),
                value: member(),
            })
            .collect();
        if benchmark.len() + ops.len() > current.len() {
            ops.extend(
                benchmark
                    .elems()
                    .filter(|e| !current.has(e))
                    .map(|e| MapOp::Remove {
                        key: codec::encode(e),
                    }),
            );
        }
        ops.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        if ops.is_empty() {
            return None;
        }
        let bound = whole_bound(&ops, current.len());
        Some(smaller(self, current, Patch::Map(ops), bound))
    }

    fn prepare(self, target: &Q, patch: &Patch) -> Result<Self::Prepared, ApplyError> {
        if let Some(whole) = replacement(self, target, patch) {
            return whole.map(Ok);
        }
        let Patch::Map(ops) = patch else {
            return Err(ApplyError::shape("map", "other patch"));
        };
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let at = |e: ApplyError| e.within(PathStep::Key(op.key().to_vec()));
            let elem: Q::Elem = decode_key(op.key()).map_err(at)?;
            match op {
                MapOp::Put { value, .. } if *value == member() => out.push((elem, true)),
                MapOp::Put { value, .. } => {
                    return Err(at(ApplyError::shape("empty leaf", value.shape())))
                }
                MapOp::Patch { .. } => return Err(at(ApplyError::shape("set element", "patch"))),
                MapOp::Remove { .. } if target.has(&elem) => out.push((elem, false)),
                MapOp::Remove { key } => return Err(missing(key)),
            }
        }
        Ok(Err(out))
    }

    fn commit(self, target: &mut Q, prepared: Self::Prepared) {
        match prepared {
            Ok(q) => *target = q,
            Err(ops) => {
                for (e, insert) in ops {
                    if insert {
                        target.add(e);
                    } else {
                        target.take(&e);
                    }
                }
            }
        }
    }
}
