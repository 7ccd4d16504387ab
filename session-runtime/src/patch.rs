//! Structural patches: what a delta says about one node of the tree.
//!
//! ```text
//! patch  := value                                 replace the node
//!         | PATCH_RECORD(n) (varint id, patch)*n  ids strictly increasing
//!         | PATCH_SEQ(n)    seq_op*n              applied in order
//!         | PATCH_MAP(n)    (varint len, key, patch | REMOVE)*n
//!                                                 keys strictly increasing
//!         | PATCH_SOME      patch                 patch the content of Some
//!         | SPLICE(n)       (varint skip, varint delete,
//!                            varint len, byte*len)*n
//!                                                 byte runs of the node's
//!                                                 encoding (binary diff)
//!
//! seq_op := SET|index     patch                   (op in the low 2 bits,
//!         | INSERT|count  varint index, value*count   argument in the
//!         | REMOVE|count  varint index                high 6 bits)
//!         | PUSH|count    value*count
//! ```
//!
//! A map entry whose patch is a value inserts or replaces that entry; one
//! whose patch is structural patches an entry that must exist; `REMOVE`
//! removes an entry that must exist. Sequence indices refer to the sequence
//! as left by the operations before them.

use crate::error::DecodeError;
use crate::value::{read_field_id, read_key, Value};
use crate::wire::{self, kind, seq_op, Reader};

/// A change to one node of a session tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch {
    /// Replace the node with this value.
    Set(Value),
    /// Patch fields of a record, by id, in increasing id order.
    Record(Vec<(u16, Patch)>),
    /// Apply operations to a sequence, in order.
    Seq(Vec<SeqOp>),
    /// Change entries of a map, in increasing key order.
    Map(Vec<MapOp>),
    /// Patch the content of an `Option` that is `Some`.
    Some(Box<Patch>),
    /// Rewrite byte runs of the node's encoding, then decode the result.
    Splice(Vec<Edit>),
}

/// One operation on a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqOp {
    /// Patch the element at `index`.
    Set {
        /// Position of the element.
        index: u64,
        /// Its patch.
        patch: Patch,
    },
    /// Insert elements before `index` (which may equal the length).
    Insert {
        /// Position of the first inserted element.
        index: u64,
        /// The elements.
        values: Vec<Value>,
    },
    /// Remove `count` elements starting at `index`.
    Remove {
        /// Position of the first removed element.
        index: u64,
        /// How many.
        count: u64,
    },
    /// Append elements.
    Push(Vec<Value>),
}

/// One change to a map or set entry, addressed by the entry's encoded key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOp {
    /// Insert the entry or replace its value.
    Put {
        /// Encoded key.
        key: Vec<u8>,
        /// New value.
        value: Value,
    },
    /// Patch the value of an existing entry. The patch is never
    /// [`Patch::Set`]; that is a [`MapOp::Put`].
    Patch {
        /// Encoded key.
        key: Vec<u8>,
        /// Patch of the value.
        patch: Patch,
    },
    /// Remove an existing entry.
    Remove {
        /// Encoded key.
        key: Vec<u8>,
    },
}

impl MapOp {
    /// The encoded key this operation addresses.
    pub fn key(&self) -> &[u8] {
        match self {
            MapOp::Put { key, .. } | MapOp::Patch { key, .. } | MapOp::Remove { key } => key,
        }
    }
}

/// One byte run of a [`Patch::Splice`]: skip `skip` bytes of the old
/// encoding (counted from the end of the previous edit), delete `delete`
/// bytes, and insert `insert` in their place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Bytes kept before this edit.
    pub skip: u64,
    /// Bytes of the old encoding removed.
    pub delete: u64,
    /// Bytes inserted.
    pub insert: Vec<u8>,
}

impl Edit {
    pub(crate) fn encoded_len(&self) -> usize {
        wire::varint_len(self.skip)
            + wire::varint_len(self.delete)
            + wire::varint_len(self.insert.len() as u64)
            + self.insert.len()
    }
}

/// Applies byte edits to `old`, returning the new encoding, or the end of the
/// first edit that runs past `old` as `Err((end, len))`.
pub(crate) fn splice(old: &[u8], edits: &[Edit]) -> Result<Vec<u8>, (u64, u64)> {
    let mut out = Vec::with_capacity(old.len());
    let mut pos: u64 = 0;
    let len = old.len() as u64;
    for e in edits {
        let start = pos.checked_add(e.skip).filter(|s| *s <= len);
        let end = start
            .and_then(|s| s.checked_add(e.delete))
            .filter(|end| *end <= len);
        let (Some(start), Some(end)) = (start, end) else {
            return Err((pos.saturating_add(e.skip).saturating_add(e.delete), len));
        };
        // Both bounds were checked against `len` above.
        out.extend_from_slice(&old[pos as usize..start as usize]);
        out.extend_from_slice(&e.insert);
        pos = end;
    }
    out.extend_from_slice(&old[pos as usize..]);
    Ok(out)
}

/// When every edit overwrites bytes in place (deletes as many as it
/// inserts) inside the body of a leaf encoded as `header` bytes of header
/// and `len` bytes of body, the body offset and bytes of each edit: such a
/// splice can be applied without rebuilding the leaf.
pub(crate) fn overwrites(edits: &[Edit], header: usize, len: usize) -> Option<Vec<(usize, &[u8])>> {
    let mut pos: usize = 0;
    let mut out = Vec::with_capacity(edits.len());
    for e in edits {
        let start = pos.checked_add(usize::try_from(e.skip).ok()?)?;
        let delete = usize::try_from(e.delete).ok()?;
        let end = start.checked_add(delete)?;
        if delete != e.insert.len() || start < header || end > header + len {
            return None;
        }
        out.push((start - header, e.insert.as_slice()));
        pos = end;
    }
    Some(out)
}

impl Patch {
    /// Appends the encoding of this patch.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Patch::Set(v) => v.encode(out),
            Patch::Record(fields) => encode_record(out, fields),
            Patch::Seq(ops) => {
                wire::put_header(out, kind::PATCH_SEQ, ops.len() as u64);
                for op in ops {
                    op.encode(out);
                }
            }
            Patch::Map(ops) => {
                wire::put_header(out, kind::PATCH_MAP, ops.len() as u64);
                for op in ops {
                    wire::put_bytes(out, op.key());
                    match op {
                        MapOp::Put { value, .. } => value.encode(out),
                        MapOp::Patch { patch, .. } => patch.encode(out),
                        MapOp::Remove { .. } => wire::put_header(out, kind::REMOVE, 0),
                    }
                }
            }
            Patch::Some(inner) => {
                wire::put_header(out, kind::PATCH_SOME, 0);
                inner.encode(out);
            }
            Patch::Splice(edits) => {
                wire::put_header(out, kind::SPLICE, edits.len() as u64);
                for e in edits {
                    wire::put_varint(out, e.skip);
                    wire::put_varint(out, e.delete);
                    wire::put_bytes(out, &e.insert);
                }
            }
        }
    }

    /// Length of the encoding of this patch, without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Patch::Set(v) => v.encoded_len(),
            Patch::Record(fields) => record_len(fields),
            Patch::Seq(ops) => {
                wire::header_len(ops.len() as u64)
                    + ops.iter().map(SeqOp::encoded_len).sum::<usize>()
            }
            Patch::Map(ops) => {
                wire::header_len(ops.len() as u64)
                    + ops
                        .iter()
                        .map(|op| {
                            let k = op.key();
                            wire::varint_len(k.len() as u64)
                                + k.len()
                                + match op {
                                    MapOp::Put { value, .. } => value.encoded_len(),
                                    MapOp::Patch { patch, .. } => patch.encoded_len(),
                                    MapOp::Remove { .. } => 1,
                                }
                        })
                        .sum::<usize>()
            }
            Patch::Some(inner) => 1 + inner.encoded_len(),
            Patch::Splice(edits) => {
                wire::header_len(edits.len() as u64)
                    + edits.iter().map(Edit::encoded_len).sum::<usize>()
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Patch, DecodeError> {
        let offset = r.position();
        let (k, arg) = r.header()?;
        if kind::is_value(k) {
            return Ok(Patch::Set(Value::decode_body(r, k, arg)?));
        }
        r.enter()?;
        let patch = match k {
            kind::PATCH_RECORD => Patch::Record(decode_record_body(r, arg)?),
            kind::PATCH_SEQ => {
                let n = r.count(arg, 1)?;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    ops.push(SeqOp::decode(r)?);
                }
                Patch::Seq(ops)
            }
            kind::PATCH_MAP => {
                let n = r.count(arg, 2)?;
                let mut ops: Vec<MapOp> = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = read_key(r, ops.last().map(MapOp::key))?;
                    let op = if r.peek()? == kind::REMOVE << 4 {
                        r.byte()?;
                        MapOp::Remove { key }
                    } else {
                        match Patch::decode(r)? {
                            Patch::Set(value) => MapOp::Put { key, value },
                            patch => MapOp::Patch { key, patch },
                        }
                    };
                    ops.push(op);
                }
                Patch::Map(ops)
            }
            kind::PATCH_SOME => Patch::Some(Box::new(Patch::decode(r)?)),
            kind::SPLICE => {
                let n = r.count(arg, 3)?;
                let mut edits = Vec::with_capacity(n);
                for _ in 0..n {
                    let skip = r.varint()?;
                    let delete = r.varint()?;
                    let insert = r.bytes()?.to_vec();
                    edits.push(Edit {
                        skip,
                        delete,
                        insert,
                    });
                }
                Patch::Splice(edits)
            }
            _ => {
                return Err(DecodeError::BadKind {
                    kind: k,
                    offset,
                    expected: "a patch",
                })
            }
        };
        r.leave();
        Ok(patch)
    }
}

pub(crate) fn encode_record(out: &mut Vec<u8>, fields: &[(u16, Patch)]) {
    wire::put_header(out, kind::PATCH_RECORD, fields.len() as u64);
    for (id, p) in fields {
        wire::put_varint(out, u64::from(*id));
        p.encode(out);
    }
}

pub(crate) fn record_len(fields: &[(u16, Patch)]) -> usize {
    wire::header_len(fields.len() as u64)
        + fields
            .iter()
            .map(|(id, p)| wire::varint_len(u64::from(*id)) + p.encoded_len())
            .sum::<usize>()
}

pub(crate) fn decode_record_body(
    r: &mut Reader<'_>,
    arg: u64,
) -> Result<Vec<(u16, Patch)>, DecodeError> {
    let n = r.count(arg, 2)?;
    let mut fields: Vec<(u16, Patch)> = Vec::with_capacity(n);
    for _ in 0..n {
        let id = read_field_id(r, fields.last().map(|(id, _)| *id))?;
        fields.push((id, Patch::decode(r)?));
    }
    Ok(fields)
}

impl SeqOp {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            SeqOp::Set { index, patch } => {
                wire::put_seq_op(out, seq_op::SET, *index);
                patch.encode(out);
            }
            SeqOp::Insert { index, values } => {
                wire::put_seq_op(out, seq_op::INSERT, values.len() as u64);
                wire::put_varint(out, *index);
                values.iter().for_each(|v| v.encode(out));
            }
            SeqOp::Remove { index, count } => {
                wire::put_seq_op(out, seq_op::REMOVE, *count);
                wire::put_varint(out, *index);
            }
            SeqOp::Push(values) => {
                wire::put_seq_op(out, seq_op::PUSH, values.len() as u64);
                values.iter().for_each(|v| v.encode(out));
            }
        }
    }

    fn encoded_len(&self) -> usize {
        let values_len = |vs: &[Value]| vs.iter().map(Value::encoded_len).sum::<usize>();
        match self {
            SeqOp::Set { index, patch } => wire::seq_op_len(*index) + patch.encoded_len(),
            SeqOp::Insert { index, values } => {
                wire::seq_op_len(values.len() as u64)
                    + wire::varint_len(*index)
                    + values_len(values)
            }
            SeqOp::Remove { index, count } => wire::seq_op_len(*count) + wire::varint_len(*index),
            SeqOp::Push(values) => wire::seq_op_len(values.len() as u64) + values_len(values),
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<SeqOp, DecodeError> {
        let (op, arg) = r.seq_op()?;
        let values = |r: &mut Reader<'_>, n: u64| -> Result<Vec<Value>, DecodeError> {
            let n = r.count(n, 1)?;
            let mut vs = Vec::with_capacity(n);
            for _ in 0..n {
                vs.push(Value::decode(r)?);
            }
            Ok(vs)
        };
        Ok(match op {
            seq_op::SET => SeqOp::Set {
                index: arg,
                patch: Patch::decode(r)?,
            },
            seq_op::INSERT => {
                let index = r.varint()?;
                SeqOp::Insert {
                    index,
                    values: values(r, arg)?,
                }
            }
            seq_op::REMOVE => SeqOp::Remove {
                index: r.varint()?,
                count: arg,
            },
            _ => SeqOp::Push(values(r, arg)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_rewrites_runs_and_rejects_runs_past_the_end() {
        let old = b"abcdefgh";
        let edits = [
            Edit {
                skip: 1,
                delete: 2,
                insert: b"XYZ".to_vec(),
            },
            Edit {
                skip: 2,
                delete: 0,
                insert: b"-".to_vec(),
            },
            Edit {
                skip: 2,
                delete: 1,
                insert: vec![],
            },
        ];
        assert_eq!(splice(old, &edits).as_deref(), Ok(&b"aXYZde-fg"[..]));
        assert!(splice(
            old,
            &[Edit {
                skip: 7,
                delete: 2,
                insert: vec![]
            }]
        )
        .is_err());
        assert!(splice(
            old,
            &[Edit {
                skip: u64::MAX,
                delete: 2,
                insert: vec![]
            }]
        )
        .is_err());
    }

    #[test]
    fn patches_round_trip_and_predict_their_length() {
        let p = Patch::Record(vec![
            (1, Patch::Set(Value::Leaf(vec![5]))),
            (
                2,
                Patch::Seq(vec![
                    SeqOp::Set {
                        index: 57,
                        patch: Patch::Set(Value::Leaf(vec![1; 20])),
                    },
                    SeqOp::Insert {
                        index: 3,
                        values: vec![Value::Leaf(vec![])],
                    },
                    SeqOp::Remove {
                        index: 100,
                        count: 70,
                    },
                    SeqOp::Push(vec![Value::Option(None)]),
                ]),
            ),
            (
                3,
                Patch::Map(vec![
                    MapOp::Put {
                        key: b"a".to_vec(),
                        value: Value::Leaf(vec![]),
                    },
                    MapOp::Patch {
                        key: b"b".to_vec(),
                        patch: Patch::Some(Box::new(Patch::Splice(vec![]))),
                    },
                    MapOp::Remove { key: b"c".to_vec() },
                ]),
            ),
            (
                4,
                Patch::Splice(vec![Edit {
                    skip: 1000,
                    delete: 64,
                    insert: vec![7; 64],
                }]),
            ),
        ]);
        let mut bytes = Vec::new();
        p.encode(&mut bytes);
        assert_eq!(bytes.len(), p.encoded_len());
        let mut r = Reader::new(&bytes);
        assert_eq!(Patch::decode(&mut r), Ok(p));
        assert!(r.finish().is_ok());
    }
}
