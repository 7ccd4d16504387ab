//! Structural apply of patches to the schema-agnostic tree.
//!
//! A store node applies deltas here without knowing the session's Rust type.
//! Apply is all-or-nothing: every operation is checked against the tree
//! first (indices, keys, shapes, byte runs), and only then is the tree
//! changed, by a pass that cannot fail.

use std::collections::BTreeSet;

use crate::error::{ApplyError, ApplyErrorKind, PathStep};
use crate::patch::{overwrites, splice, MapOp, Patch, SeqOp};
use crate::value::Value;
use crate::wire;

impl Value {
    /// Applies a patch to this node. On error the node is unchanged.
    pub fn apply(&mut self, patch: &Patch) -> Result<(), ApplyError> {
        let mut spliced = Vec::new();
        check(self, patch, &mut spliced)?;
        commit(self, patch, &mut spliced.into_iter());
        Ok(())
    }

    /// Applies field patches (a delta's) to this record node. On error the
    /// node is unchanged.
    pub fn apply_fields(&mut self, fields: &[(u16, Patch)]) -> Result<(), ApplyError> {
        let Value::Record(own) = self else {
            return Err(ApplyError::shape("record", self.shape()));
        };
        let mut spliced = Vec::new();
        check_record(own, fields, &mut spliced)?;
        commit_record(own, fields, &mut spliced.into_iter());
        Ok(())
    }
}

/// Where an element of a sequence came from, while a patch is checked.
#[derive(Clone, Copy)]
enum Slot {
    /// The element at this index before the patch.
    Old(usize),
    /// An element inserted by this patch.
    New,
}

impl Slot {
    /// The slots of a sequence of `len` elements when only pushes have
    /// followed its first `old` (unshifted) elements.
    fn initial(old: usize, len: u64) -> Vec<Slot> {
        // `len` counts elements in memory (old ones and pushed values).
        (0..len as usize)
            .map(|i| if i < old { Slot::Old(i) } else { Slot::New })
            .collect()
    }
}

/// Whether a splice only overwrites bytes of a leaf's body, so that it can
/// be applied in place rather than by re-encoding a large leaf twice.
fn in_place(edits: &[crate::patch::Edit], bytes: &[u8]) -> bool {
    overwrites(edits, wire::header_len(bytes.len() as u64), bytes.len()).is_some()
}

/// Checks `patch` against `node`, collecting the results of byte splices
/// (which must be decoded to be checked) in the order [`commit`] meets them.
fn check(node: &Value, patch: &Patch, spliced: &mut Vec<Value>) -> Result<(), ApplyError> {
    match (patch, node) {
        (Patch::Set(_), _) => Ok(()),
        (Patch::Splice(edits), Value::Leaf(bytes)) if in_place(edits, bytes) => Ok(()),
        (Patch::Splice(edits), _) => {
            let old = node.to_bytes();
            let new = splice(&old, edits).map_err(|(end, len)| {
                ApplyError::new(ApplyErrorKind::SpliceOutOfRange { end, len })
            })?;
            spliced.push(Value::from_bytes(&new)?);
            Ok(())
        }
        (Patch::Record(fields), Value::Record(own)) => check_record(own, fields, spliced),
        (Patch::Seq(ops), Value::Seq(items)) => check_seq(items, ops, spliced),
        (Patch::Map(ops), Value::Map(entries)) => {
            for op in ops {
                let found = entries.binary_search_by(|(k, _)| k.as_slice().cmp(op.key()));
                let at = || PathStep::Key(op.key().to_vec());
                match (op, found) {
                    (MapOp::Put { .. }, _) => {}
                    (MapOp::Patch { patch, .. }, Ok(i)) => {
                        check(&entries[i].1, patch, spliced).map_err(|e| e.within(at()))?
                    }
                    (MapOp::Remove { .. }, Ok(_)) => {}
                    (_, Err(_)) => {
                        return Err(ApplyError::new(ApplyErrorKind::MissingKey).within(at()))
                    }
                }
            }
            Ok(())
        }
        (Patch::Some(inner), Value::Option(Some(v))) => {
            check(v, inner, spliced).map_err(|e| e.within(PathStep::Some))
        }
        (Patch::Some(_), Value::Option(None)) => Err(ApplyError::shape("some", "none")),
        (Patch::Record(_), _) => Err(ApplyError::shape("record", node.shape())),
        (Patch::Seq(_), _) => Err(ApplyError::shape("sequence", node.shape())),
        (Patch::Map(_), _) => Err(ApplyError::shape("map", node.shape())),
        (Patch::Some(_), _) => Err(ApplyError::shape("option", node.shape())),
    }
}

fn check_record(
    own: &[(u16, Value)],
    fields: &[(u16, Patch)],
    spliced: &mut Vec<Value>,
) -> Result<(), ApplyError> {
    for (id, p) in fields {
        let i = own
            .binary_search_by_key(id, |(i, _)| *i)
            .map_err(|_| ApplyError::new(ApplyErrorKind::UnknownField { id: *id }))?;
        check(&own[i].1, p, spliced).map_err(|e| e.within(PathStep::Field(*id)))?;
    }
    Ok(())
}

/// Checks sequence operations by simulating the sequence's length, and,
/// once an insert or remove shifted positions, which old element sits at
/// each position.
fn check_seq(items: &[Value], ops: &[SeqOp], spliced: &mut Vec<Value>) -> Result<(), ApplyError> {
    let mut len = items.len() as u64;
    let mut slots: Option<Vec<Slot>> = None;
    let mut patched = BTreeSet::new();
    let out_of_range =
        |index: u64, len: u64| ApplyError::new(ApplyErrorKind::IndexOutOfRange { index, len });
    for op in ops {
        match op {
            SeqOp::Set { index, patch } => {
                if *index >= len {
                    return Err(out_of_range(*index, len));
                }
                // `index < len`, and `len` counts elements in memory. Until
                // an insert or remove shifts positions, the old elements keep
                // theirs and only pushed ones lie past them.
                let at = *index as usize;
                let slot = match &slots {
                    Some(s) => s[at],
                    None if at < items.len() => Slot::Old(at),
                    None => Slot::New,
                };
                let Slot::Old(old) = slot else {
                    return Err(ApplyError::new(ApplyErrorKind::Conflict(
                        "patch of an element inserted by the same patch",
                    ))
                    .within(PathStep::Index(*index)));
                };
                if !patched.insert(old) {
                    return Err(
                        ApplyError::new(ApplyErrorKind::Conflict("element patched twice"))
                            .within(PathStep::Index(*index)),
                    );
                }
                check(&items[old], patch, spliced)
                    .map_err(|e| e.within(PathStep::Index(*index)))?;
            }
            SeqOp::Insert { index, values } => {
                if *index > len {
                    return Err(out_of_range(*index, len));
                }
                let s = slots.get_or_insert_with(|| Slot::initial(items.len(), len));
                let at = *index as usize;
                s.splice(at..at, values.iter().map(|_| Slot::New));
                len += values.len() as u64;
            }
            SeqOp::Remove { index, count } => {
                let end = index.checked_add(*count).filter(|end| *end <= len);
                let Some(end) = end else {
                    return Err(out_of_range(index.saturating_add(*count), len));
                };
                let s = slots.get_or_insert_with(|| Slot::initial(items.len(), len));
                s.drain(*index as usize..end as usize);
                len -= count;
            }
            SeqOp::Push(values) => {
                if let Some(s) = slots.as_mut() {
                    s.extend(values.iter().map(|_| Slot::New));
                }
                len += values.len() as u64;
            }
        }
    }
    Ok(())
}

/// Applies a patch that [`check`] accepted. It cannot fail; the guards only
/// keep it from panicking should the two ever disagree.
fn commit(node: &mut Value, patch: &Patch, spliced: &mut impl Iterator<Item = Value>) {
    match (patch, node) {
        (Patch::Set(v), node) => *node = v.clone(),
        (Patch::Splice(edits), Value::Leaf(bytes)) if in_place(edits, bytes) => {
            let header = wire::header_len(bytes.len() as u64);
            for (at, run) in overwrites(edits, header, bytes.len()).unwrap_or_default() {
                if let Some(dst) = bytes.get_mut(at..at + run.len()) {
                    dst.copy_from_slice(run);
                }
            }
        }
        (Patch::Splice(_), node) => {
            if let Some(v) = spliced.next() {
                *node = v;
            }
        }
        (Patch::Record(fields), Value::Record(own)) => commit_record(own, fields, spliced),
        (Patch::Seq(ops), Value::Seq(items)) => {
            for op in ops {
                match op {
                    SeqOp::Set { index, patch } => {
                        if let Some(item) =
                            usize::try_from(*index).ok().and_then(|i| items.get_mut(i))
                        {
                            commit(item, patch, spliced);
                        }
                    }
                    SeqOp::Insert { index, values } => {
                        if let Some(at) = usize::try_from(*index).ok().filter(|i| *i <= items.len())
                        {
                            items.splice(at..at, values.iter().cloned());
                        }
                    }
                    SeqOp::Remove { index, count } => {
                        let range = usize::try_from(*index)
                            .ok()
                            .zip(usize::try_from(*count).ok())
                            .and_then(|(i, n)| Some(i..i.checked_add(n)?))
                            .filter(|r| r.end <= items.len());
                        if let Some(range) = range {
                            items.drain(range);
                        }
                    }
                    SeqOp::Push(values) => items.extend(values.iter().cloned()),
                }
            }
        }
        (Patch::Map(ops), Value::Map(entries)) => {
            for op in ops {
                let found = entries.binary_search_by(|(k, _)| k.as_slice().cmp(op.key()));
                match (op, found) {
                    (MapOp::Put { value, .. }, Ok(i)) => entries[i].1 = value.clone(),
                    (MapOp::Put { key, value }, Err(i)) => {
                        entries.insert(i, (key.clone(), value.clone()))
                    }
                    (MapOp::Patch { patch, .. }, Ok(i)) => {
                        commit(&mut entries[i].1, patch, spliced)
                    }
                    (MapOp::Remove { .. }, Ok(i)) => {
                        entries.remove(i);
                    }
                    (_, Err(_)) => {}
                }
            }
        }
        (Patch::Some(inner), Value::Option(Some(v))) => commit(v, inner, spliced),
        _ => {}
    }
}

fn commit_record(
    own: &mut [(u16, Value)],
    fields: &[(u16, Patch)],
    spliced: &mut impl Iterator<Item = Value>,
) {
    for (id, p) in fields {
        if let Ok(i) = own.binary_search_by_key(id, |(i, _)| *i) {
            commit(&mut own[i].1, p, spliced);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::Edit;

    fn leaf(b: u8) -> Value {
        Value::Leaf(vec![b])
    }

    #[test]
    fn sequence_operations_follow_each_other() {
        let mut v = Value::Seq((0..5).map(leaf).collect());
        let patch = Patch::Seq(vec![
            SeqOp::Remove { index: 1, count: 2 },
            SeqOp::Set {
                index: 1,
                patch: Patch::Set(leaf(30)),
            },
            SeqOp::Insert {
                index: 0,
                values: vec![leaf(9)],
            },
            SeqOp::Push(vec![leaf(7)]),
        ]);
        v.apply(&patch).expect("valid patch");
        assert_eq!(
            v,
            Value::Seq(vec![leaf(9), leaf(0), leaf(30), leaf(4), leaf(7)])
        );
    }

    #[test]
    fn a_failing_operation_leaves_the_tree_unchanged() {
        let original = Value::Record(vec![
            (0, Value::Seq(vec![leaf(1)])),
            (1, Value::Map(vec![(b"k".to_vec(), leaf(2))])),
        ]);
        let bad = [
            Patch::Record(vec![(
                0,
                Patch::Seq(vec![
                    SeqOp::Push(vec![leaf(5)]),
                    SeqOp::Remove { index: 0, count: 3 },
                ]),
            )]),
            Patch::Record(vec![
                (0, Patch::Set(leaf(1))),
                (1, Patch::Map(vec![MapOp::Remove { key: b"x".to_vec() }])),
            ]),
            Patch::Record(vec![(0, Patch::Set(leaf(1))), (5, Patch::Set(leaf(1)))]),
            Patch::Record(vec![(
                0,
                Patch::Splice(vec![Edit {
                    skip: 0,
                    delete: 99,
                    insert: vec![],
                }]),
            )]),
            Patch::Record(vec![(
                0,
                Patch::Splice(vec![Edit {
                    skip: 0,
                    delete: 1,
                    insert: vec![0xff],
                }]),
            )]),
            Patch::Record(vec![(1, Patch::Seq(vec![]))]),
            Patch::Record(vec![(
                0,
                Patch::Seq(vec![
                    SeqOp::Insert {
                        index: 0,
                        values: vec![leaf(3)],
                    },
                    SeqOp::Set {
                        index: 0,
                        patch: Patch::Set(leaf(4)),
                    },
                ]),
            )]),
            Patch::Record(vec![(
                0,
                Patch::Seq(vec![
                    SeqOp::Push(vec![leaf(3)]),
                    SeqOp::Set {
                        index: 1,
                        patch: Patch::Set(leaf(4)),
                    },
                ]),
            )]),
            Patch::Record(vec![(
                0,
                Patch::Seq(vec![
                    SeqOp::Push(vec![leaf(3)]),
                    SeqOp::Remove { index: 0, count: 2 },
                    SeqOp::Remove { index: 0, count: 1 },
                ]),
            )]),
        ];
        for p in &bad {
            let mut v = original.clone();
            assert!(v.apply(p).is_err(), "{p:?}");
            assert_eq!(v, original, "{p:?}");
        }
    }

    #[test]
    fn errors_name_the_path() {
        let mut v = Value::Record(vec![(3, Value::Seq(vec![leaf(1)]))]);
        let p = Patch::Record(vec![(
            3,
            Patch::Seq(vec![SeqOp::Set {
                index: 4,
                patch: Patch::Set(leaf(0)),
            }]),
        )]);
        let e = v.apply(&p).expect_err("index 4 is out of range");
        assert_eq!(e.path(), &[PathStep::Field(3)]);
        assert_eq!(
            e.to_string(),
            "cannot apply delta at field 3: index 4 out of range for length 1"
        );
    }

    #[test]
    fn splices_rewrite_the_encoding() {
        let mut v = Value::Leaf(b"hello".to_vec());
        // Header byte, then "hello": replace "ell" by "ipp".
        v.apply(&Patch::Splice(vec![Edit {
            skip: 2,
            delete: 3,
            insert: b"ipp".to_vec(),
        }]))
        .expect("in range");
        assert_eq!(v, Value::Leaf(b"hippo".to_vec()));
    }
}
