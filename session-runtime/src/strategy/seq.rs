//! `Vec<T>` and `VecDeque<T>`: element patches, inserts, removes, pushes.

use std::collections::VecDeque;

use super::{replacement, smaller, Strategy};
use crate::error::{ApplyError, ApplyErrorKind, PathStep};
use crate::patch::{Patch, SeqOp};
use crate::value::Value;
use crate::wire::{self, kind};

/// The strategy of a sequence whose elements use strategy `S`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqOf<S>(S);

impl<S> SeqOf<S> {
    /// The strategy for sequences of elements handled by `elements`.
    pub const fn new(elements: S) -> Self {
        Self(elements)
    }
}

/// The sequence types handled by [`SeqOf`].
pub trait SeqLike: Sized {
    /// Element type.
    type Elem;
    /// Number of elements.
    fn len(&self) -> usize;
    /// Element at `i < len`.
    fn at(&self, i: usize) -> &Self::Elem;
    /// Element at `i`, if any.
    fn at_mut(&mut self, i: usize) -> Option<&mut Self::Elem>;
    /// Inserts elements before `i <= len`.
    fn insert_all(&mut self, i: usize, elems: Vec<Self::Elem>);
    /// Removes `i..end`, `end <= len`.
    fn remove_range(&mut self, i: usize, end: usize);
    /// Appends elements.
    fn push_all(&mut self, elems: Vec<Self::Elem>);
    /// Builds a sequence.
    fn from_vec(elems: Vec<Self::Elem>) -> Self;
}

impl<E> SeqLike for Vec<E> {
    type Elem = E;
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn at(&self, i: usize) -> &E {
        &self[i]
    }
    fn at_mut(&mut self, i: usize) -> Option<&mut E> {
        self.get_mut(i)
    }
    fn insert_all(&mut self, i: usize, elems: Vec<E>) {
        self.splice(i..i, elems);
    }
    fn remove_range(&mut self, i: usize, end: usize) {
        self.drain(i..end);
    }
    fn push_all(&mut self, elems: Vec<E>) {
        self.extend(elems);
    }
    fn from_vec(elems: Vec<E>) -> Self {
        elems
    }
}

impl<E> SeqLike for VecDeque<E> {
    type Elem = E;
    fn len(&self) -> usize {
        VecDeque::len(self)
    }
    fn at(&self, i: usize) -> &E {
        &self[i]
    }
    fn at_mut(&mut self, i: usize) -> Option<&mut E> {
        self.get_mut(i)
    }
    fn insert_all(&mut self, i: usize, elems: Vec<E>) {
        for (k, e) in elems.into_iter().enumerate() {
            self.insert(i + k, e);
        }
    }
    fn remove_range(&mut self, i: usize, end: usize) {
        self.drain(i..end);
    }
    fn push_all(&mut self, elems: Vec<E>) {
        self.extend(elems);
    }
    fn from_vec(elems: Vec<E>) -> Self {
        elems.into()
    }
}

/// A checked sequence patch.
#[derive(Debug)]
pub enum SeqPrepared<Q, E, P> {
    /// Replace the whole sequence.
    Replace(Q),
    /// Apply operations in order.
    Ops(Vec<PreparedOp<E, P>>),
}

/// A checked sequence operation.
#[derive(Debug)]
pub enum PreparedOp<E, P> {
    /// Patch the element at this index.
    Set(usize, P),
    /// Insert before this index.
    Insert(usize, Vec<E>),
    /// Remove this range.
    Remove(usize, usize),
    /// Append.
    Push(Vec<E>),
}

/// Where each element of a sequence of `len` elements comes from when only
/// pushes have followed its first `old` (unshifted) elements: `Some(i)` for
/// the old element at `i`, `None` for a pushed one.
fn initial_slots(old: usize, len: usize) -> Vec<Option<usize>> {
    (0..len).map(|i| (i < old).then_some(i)).collect()
}

impl<S> SeqOf<S> {
    fn decode_all<Q: SeqLike>(self, values: &[Value]) -> Result<Vec<Q::Elem>, ApplyError>
    where
        S: Strategy<Q::Elem>,
    {
        values.iter().map(|v| self.0.decode(v)).collect()
    }
}

impl<Q, S> Strategy<Q> for SeqOf<S>
where
    Q: SeqLike,
    S: Strategy<Q::Elem>,
{
    type Prepared = SeqPrepared<Q, Q::Elem, S::Prepared>;

    fn shape(self) -> u64 {
        crate::schema::shape("seq", &[self.0.shape()])
    }

    fn to_value(self, value: &Q) -> Value {
        Value::Seq(
            (0..value.len())
                .map(|i| self.0.to_value(value.at(i)))
                .collect(),
        )
    }

    fn decode(self, value: &Value) -> Result<Q, ApplyError> {
        let Value::Seq(items) = value else {
            return Err(ApplyError::shape("sequence", value.shape()));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(
                self.0
                    .decode(item)
                    .map_err(|e| e.within(PathStep::Index(i as u64)))?,
            );
        }
        Ok(Q::from_vec(out))
    }

    fn encode(self, value: &Q, out: &mut Vec<u8>) {
        wire::put_header(out, kind::SEQ, value.len() as u64);
        for i in 0..value.len() {
            self.0.encode(value.at(i), out);
        }
    }

    fn min_len(self, value: &Q) -> usize {
        wire::header_len(value.len() as u64) + value.len()
    }

    fn eq(self, a: &Q, b: &Q) -> bool {
        a.len() == b.len() && (0..a.len()).all(|i| self.0.eq(a.at(i), b.at(i)))
    }

    /// Trims the common prefix and suffix; what is left in the middle is
    /// patched element by element where both sides have one, then removed or
    /// inserted (pushed, at the end). So a push ships one element, a remove
    /// from the middle ships an index and a count, and scattered edits ship
    /// one patch each.
    fn diff(self, current: &Q, benchmark: &Q) -> Option<Patch> {
        let (old, new) = (benchmark.len(), current.len());
        let shorter = old.min(new);
        let prefix = (0..shorter)
            .take_while(|&i| self.0.eq(current.at(i), benchmark.at(i)))
            .count();
        let suffix = (0..shorter - prefix)
            .take_while(|&k| {
                self.0
                    .eq(current.at(new - 1 - k), benchmark.at(old - 1 - k))
            })
            .count();
        let (mid_old, mid_new) = (old - prefix - suffix, new - prefix - suffix);
        let paired = mid_old.min(mid_new);
        let mut ops = Vec::new();
        for i in prefix..prefix + paired {
            if let Some(patch) = self.0.diff(current.at(i), benchmark.at(i)) {
                ops.push(SeqOp::Set {
                    index: i as u64,
                    patch,
                });
            }
        }
        let at = prefix + paired;
        if mid_old > mid_new {
            ops.push(SeqOp::Remove {
                index: at as u64,
                count: (mid_old - mid_new) as u64,
            });
        } else if mid_new > mid_old {
            let values = (at..prefix + mid_new)
                .map(|i| self.0.to_value(current.at(i)))
                .collect();
            ops.push(if at == old {
                SeqOp::Push(values)
            } else {
                SeqOp::Insert {
                    index: at as u64,
                    values,
                }
            });
        }
        if ops.is_empty() {
            return None;
        }
        // The whole sequence is at least its header, the elements the patch
        // carries whole, and a byte for every other element.
        let (carried, count) = ops.iter().fold((0, 0), |(bytes, n), op| match op {
            SeqOp::Set {
                patch: Patch::Set(v),
                ..
            } => (bytes + v.encoded_len(), n + 1),
            SeqOp::Insert { values, .. } | SeqOp::Push(values) => (
                bytes + values.iter().map(Value::encoded_len).sum::<usize>(),
                n + values.len(),
            ),
            _ => (bytes, n),
        });
        let bound = wire::header_len(new as u64) + carried + new.saturating_sub(count);
        Some(smaller(self, current, Patch::Seq(ops), bound))
    }

    fn prepare(self, target: &Q, patch: &Patch) -> Result<Self::Prepared, ApplyError> {
        if let Some(whole) = replacement(self, target, patch) {
            return whole.map(SeqPrepared::Replace);
        }
        let Patch::Seq(ops) = patch else {
            return Err(ApplyError::shape("sequence", "other patch"));
        };
        // As in the tree's check: track the length, and which old element
        // sits at each position once positions have shifted.
        let mut len = target.len();
        let mut slots: Option<Vec<Option<usize>>> = None;
        let mut patched = Patched::default();
        let mut out = Vec::with_capacity(ops.len());
        let out_of_range = |index: u64, len: usize| {
            ApplyError::new(ApplyErrorKind::IndexOutOfRange {
                index,
                len: len as u64,
            })
        };
        for op in ops {
            match op {
                SeqOp::Set { index, patch } => {
                    let i = usize::try_from(*index)
                        .ok()
                        .filter(|i| *i < len)
                        .ok_or_else(|| out_of_range(*index, len))?;
                    let at = |e: ApplyError| e.within(PathStep::Index(*index));
                    // Until an insert or remove shifts positions, the old
                    // elements keep theirs and only pushed ones lie past them.
                    let slot = match &slots {
                        Some(s) => s[i],
                        None => (i < target.len()).then_some(i),
                    };
                    let Some(old) = slot else {
                        return Err(at(ApplyError::new(ApplyErrorKind::Conflict(
                            "patch of an element inserted by the same patch",
                        ))));
                    };
                    if !patched.add(old) {
                        return Err(at(ApplyError::new(ApplyErrorKind::Conflict(
                            "element patched twice",
                        ))));
                    }
                    out.push(PreparedOp::Set(
                        i,
                        self.0.prepare(target.at(old), patch).map_err(at)?,
                    ));
                }
                SeqOp::Insert { index, values } => {
                    let i = usize::try_from(*index)
                        .ok()
                        .filter(|i| *i <= len)
                        .ok_or_else(|| out_of_range(*index, len))?;
                    let elems = self
                        .decode_all::<Q>(values)
                        .map_err(|e| e.within(PathStep::Index(*index)))?;
                    let s = slots.get_or_insert_with(|| initial_slots(target.len(), len));
                    s.splice(i..i, elems.iter().map(|_| None));
                    len += elems.len();
                    out.push(PreparedOp::Insert(i, elems));
                }
                SeqOp::Remove { index, count } => {
                    let range = usize::try_from(*index)
                        .ok()
                        .zip(usize::try_from(*count).ok())
                        .and_then(|(i, n)| Some((i, i.checked_add(n)?)))
                        .filter(|(_, end)| *end <= len);
                    let (i, end) =
                        range.ok_or_else(|| out_of_range(index.saturating_add(*count), len))?;
                    let s = slots.get_or_insert_with(|| initial_slots(target.len(), len));
                    s.drain(i..end);
                    len -= end - i;
                    out.push(PreparedOp::Remove(i, end));
                }
                SeqOp::Push(values) => {
                    let elems = self
                        .decode_all::<Q>(values)
                        .map_err(|e| e.within(PathStep::Index(len as u64)))?;
                    if let Some(s) = slots.as_mut() {
                        s.extend(elems.iter().map(|_| None));
                    }
                    len += elems.len();
                    out.push(PreparedOp::Push(elems));
                }
            }
        }
        Ok(SeqPrepared::Ops(out))
    }

    fn commit(self, target: &mut Q, prepared: Self::Prepared) {
        match prepared {
            SeqPrepared::Replace(q) => *target = q,
            SeqPrepared::Ops(ops) => {
                for op in ops {
                    match op {
                        PreparedOp::Set(i, p) => {
                            if let Some(e) = target.at_mut(i) {
                                self.0.commit(e, p);
                            }
                        }
                        PreparedOp::Insert(i, elems) if i <= target.len() => {
                            target.insert_all(i, elems)
                        }
                        PreparedOp::Remove(i, end) if end <= target.len() => {
                            target.remove_range(i, end)
                        }
                        PreparedOp::Push(elems) => target.push_all(elems),
                        // Unreachable after `prepare`; ignored rather than panicking.
                        PreparedOp::Insert(..) | PreparedOp::Remove(..) => {}
                    }
                }
            }
        }
    }
}

/// The old elements a sequence patch already patched. Our differ emits
/// them in increasing order, which is checked without allocating; any other
/// order falls back to a list.
#[derive(Debug, Default)]
struct Patched {
    last: Option<usize>,
    earlier: Vec<usize>,
}

impl Patched {
    /// Records `i`; false if it was already recorded.
    fn add(&mut self, i: usize) -> bool {
        match self.last {
            Some(last) if i == last => return false,
            Some(last) if i < last && self.earlier.contains(&i) => return false,
            Some(last) => self.earlier.push(last),
            None => {}
        }
        self.last = Some(i);
        true
    }
}
