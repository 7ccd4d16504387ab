//! Leaves: opaque serde values, and byte strings.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{replacement, Strategy};
use crate::binary;
use crate::codec;
use crate::error::ApplyError;
use crate::patch::{overwrites, Edit, Patch};
use crate::value::Value;
use crate::wire::{self, kind};

/// A value replaced whole when it changes; stored as its bincode encoding.
pub struct Opaque<T>(PhantomData<fn() -> T>);

impl<T> Opaque<T> {
    /// The strategy.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for Opaque<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Opaque<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Opaque<T> {}

impl<T> fmt::Debug for Opaque<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Opaque")
    }
}

/// Appends a leaf header and the encoding of `value`, encoding once.
pub(crate) fn put_leaf<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(0);
    codec::encode_into(value, out);
    let len = (out.len() - start - 1) as u64;
    if wire::header_len(len) == 1 {
        out[start] = kind::LEAF << 4 | len as u8;
    } else {
        let mut header = Vec::with_capacity(11);
        wire::put_header(&mut header, kind::LEAF, len);
        out.splice(start..start + 1, header);
    }
}

impl<T> Strategy<T> for Opaque<T>
where
    T: Serialize + DeserializeOwned + PartialEq,
{
    type Prepared = T;

    fn shape(self) -> u64 {
        crate::schema::shape("leaf", &[])
    }

    fn to_value(self, value: &T) -> Value {
        Value::Leaf(codec::encode(value))
    }

    fn decode(self, value: &Value) -> Result<T, ApplyError> {
        match value {
            Value::Leaf(bytes) => Ok(codec::decode_canonical(bytes)?),
            other => Err(ApplyError::shape("leaf", other.shape())),
        }
    }

    fn encode(self, value: &T, out: &mut Vec<u8>) {
        put_leaf(value, out);
    }

    fn min_len(self, _: &T) -> usize {
        1
    }

    fn eq(self, a: &T, b: &T) -> bool {
        a == b
    }

    fn diff(self, current: &T, benchmark: &T) -> Option<Patch> {
        (current != benchmark).then(|| Patch::Set(self.to_value(current)))
    }

    fn prepare(self, target: &T, patch: &Patch) -> Result<T, ApplyError> {
        replacement(self, target, patch)
            .unwrap_or_else(|| Err(ApplyError::shape("leaf", "structural patch")))
    }

    fn commit(self, target: &mut T, prepared: T) {
        *target = prepared;
    }
}

/// A `Vec<u8>` stored as raw bytes and diffed by byte runs, so that a small
/// change in a large blob ships only the bytes that changed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bytes;

/// A checked patch of a byte string.
#[derive(Debug)]
pub enum BytesPrepared {
    /// Replace the bytes.
    Replace(Vec<u8>),
    /// Overwrite runs in place, at these offsets.
    Overwrite(Vec<(usize, Vec<u8>)>),
}

fn header(len: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(11);
    wire::put_header(&mut h, kind::LEAF, len as u64);
    h
}

impl Strategy<Vec<u8>> for Bytes {
    type Prepared = BytesPrepared;

    fn shape(self) -> u64 {
        crate::schema::shape("bytes", &[])
    }

    fn to_value(self, value: &Vec<u8>) -> Value {
        Value::Leaf(value.clone())
    }

    fn decode(self, value: &Value) -> Result<Vec<u8>, ApplyError> {
        match value {
            Value::Leaf(bytes) => Ok(bytes.clone()),
            other => Err(ApplyError::shape("leaf", other.shape())),
        }
    }

    fn encode(self, value: &Vec<u8>, out: &mut Vec<u8>) {
        wire::put_header(out, kind::LEAF, value.len() as u64);
        out.extend_from_slice(value);
    }

    fn min_len(self, value: &Vec<u8>) -> usize {
        wire::header_len(value.len() as u64) + value.len()
    }

    fn eq(self, a: &Vec<u8>, b: &Vec<u8>) -> bool {
        a == b
    }

    /// Byte runs of the encoding, computed on the bytes themselves (no copy
    /// of either side); a change of length also rewrites the header.
    fn diff(self, current: &Vec<u8>, benchmark: &Vec<u8>) -> Option<Patch> {
        if current == benchmark {
            return None;
        }
        let (old_header, new_header) = (header(benchmark.len()), header(current.len()));
        let mut edits = binary::edits(benchmark, current);
        if old_header == new_header {
            if let Some(first) = edits.first_mut() {
                first.skip += old_header.len() as u64;
            }
        } else {
            edits.insert(
                0,
                Edit {
                    skip: 0,
                    delete: old_header.len() as u64,
                    insert: new_header.clone(),
                },
            );
        }
        let runs = Patch::Splice(edits);
        Some(if runs.encoded_len() < new_header.len() + current.len() {
            runs
        } else {
            Patch::Set(Value::Leaf(current.clone()))
        })
    }

    fn prepare(self, target: &Vec<u8>, patch: &Patch) -> Result<BytesPrepared, ApplyError> {
        if let Patch::Splice(edits) = patch {
            let h = wire::header_len(target.len() as u64);
            if let Some(runs) = overwrites(edits, h, target.len()) {
                return Ok(BytesPrepared::Overwrite(
                    runs.into_iter().map(|(at, b)| (at, b.to_vec())).collect(),
                ));
            }
        }
        match replacement(self, target, patch) {
            Some(whole) => whole.map(BytesPrepared::Replace),
            None => Err(ApplyError::shape("leaf", "structural patch")),
        }
    }

    fn commit(self, target: &mut Vec<u8>, prepared: BytesPrepared) {
        match prepared {
            BytesPrepared::Replace(bytes) => *target = bytes,
            BytesPrepared::Overwrite(runs) => {
                for (at, bytes) in runs {
                    if let Some(dst) = target.get_mut(at..at + bytes.len()) {
                        dst.copy_from_slice(&bytes);
                    }
                }
            }
        }
    }
}
