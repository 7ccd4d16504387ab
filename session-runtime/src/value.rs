//! The schema-agnostic tree a session is stored as.
//!
//! A store node does not know the application's Rust types. It keeps each
//! session as a [`Value`]: records of fields addressed by id, sequences, maps
//! keyed by encoded keys, options, and leaves holding the encoding of an
//! opaque value. Deltas are addressed in the same terms, so a node applies
//! them structurally ([`Value::apply`]) and ends up with the same bytes as an
//! application server that applied them to the typed value.
//!
//! ```text
//! value  := LEAF(len)   byte*len                  an opaque encoded value
//!         | RECORD(n)   (varint id, value)*n      ids strictly increasing
//!         | SEQ(n)      value*n
//!         | MAP(n)      (varint len, key, value)*n   keys strictly increasing
//!         | NONE
//!         | SOME        value
//! ```
//!
//! The encoding is canonical: equal trees have equal bytes, and the decoder
//! rejects anything else (unordered entries, overlong varints), which is what
//! lets binary differencing compare encodings byte for byte.

use crate::error::DecodeError;
use crate::wire::{self, kind, Reader};

/// A session, or a part of one, as a tree of encoded values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// The encoding of an opaque value (or the raw bytes of a `Vec<u8>`).
    Leaf(Vec<u8>),
    /// Fields of a session struct, by id, in increasing id order.
    Record(Vec<(u16, Value)>),
    /// Elements of a `Vec` or `VecDeque`.
    Seq(Vec<Value>),
    /// Entries of a map or set, keyed by the encoded key, in increasing
    /// bytewise key order (set elements map to an empty leaf).
    Map(Vec<(Vec<u8>, Value)>),
    /// An `Option`.
    Option(Option<Box<Value>>),
}

impl Value {
    /// Name of this node's shape, for error messages.
    pub fn shape(&self) -> &'static str {
        match self {
            Value::Leaf(_) => "leaf",
            Value::Record(_) => "record",
            Value::Seq(_) => "sequence",
            Value::Map(_) => "map",
            Value::Option(_) => "option",
        }
    }

    /// The canonical encoding of this tree.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// Appends the canonical encoding of this tree to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Leaf(bytes) => {
                wire::put_header(out, kind::LEAF, bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
            Value::Record(fields) => {
                wire::put_header(out, kind::RECORD, fields.len() as u64);
                for (id, v) in fields {
                    wire::put_varint(out, u64::from(*id));
                    v.encode(out);
                }
            }
            Value::Seq(items) => {
                wire::put_header(out, kind::SEQ, items.len() as u64);
                for v in items {
                    v.encode(out);
                }
            }
            Value::Map(entries) => {
                wire::put_header(out, kind::MAP, entries.len() as u64);
                for (k, v) in entries {
                    wire::put_bytes(out, k);
                    v.encode(out);
                }
            }
            Value::Option(None) => wire::put_header(out, kind::NONE, 0),
            Value::Option(Some(v)) => {
                wire::put_header(out, kind::SOME, 0);
                v.encode(out);
            }
        }
    }

    /// Length of [`Value::to_bytes`], without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Value::Leaf(bytes) => wire::header_len(bytes.len() as u64) + bytes.len(),
            Value::Record(fields) => {
                wire::header_len(fields.len() as u64)
                    + fields
                        .iter()
                        .map(|(id, v)| wire::varint_len(u64::from(*id)) + v.encoded_len())
                        .sum::<usize>()
            }
            Value::Seq(items) => {
                wire::header_len(items.len() as u64)
                    + items.iter().map(Value::encoded_len).sum::<usize>()
            }
            Value::Map(entries) => {
                wire::header_len(entries.len() as u64)
                    + entries
                        .iter()
                        .map(|(k, v)| wire::varint_len(k.len() as u64) + k.len() + v.encoded_len())
                        .sum::<usize>()
            }
            Value::Option(None) => 1,
            Value::Option(Some(v)) => 1 + v.encoded_len(),
        }
    }

    /// Decodes a tree, rejecting anything that is not its canonical encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Value, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Value::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
        let offset = r.position();
        let (k, arg) = r.header()?;
        if !kind::is_value(k) {
            return Err(DecodeError::BadKind {
                kind: k,
                offset,
                expected: "a value",
            });
        }
        Value::decode_body(r, k, arg)
    }

    /// Decodes the rest of a value whose header was already read.
    pub(crate) fn decode_body(r: &mut Reader<'_>, k: u8, arg: u64) -> Result<Value, DecodeError> {
        r.enter()?;
        let v = match k {
            kind::LEAF => Value::Leaf(r.take(arg)?.to_vec()),
            kind::RECORD => {
                let n = r.count(arg, 2)?;
                let mut fields = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = read_field_id(r, fields.last().map(|(id, _)| *id))?;
                    fields.push((id, Value::decode(r)?));
                }
                Value::Record(fields)
            }
            kind::SEQ => {
                let n = r.count(arg, 1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(Value::decode(r)?);
                }
                Value::Seq(items)
            }
            kind::MAP => {
                let n = r.count(arg, 2)?;
                let mut entries: Vec<(Vec<u8>, Value)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = read_key(r, entries.last().map(|(k, _)| k.as_slice()))?;
                    entries.push((key, Value::decode(r)?));
                }
                Value::Map(entries)
            }
            kind::NONE => Value::Option(None),
            kind::SOME => Value::Option(Some(Box::new(Value::decode(r)?))),
            _ => {
                return Err(DecodeError::BadKind {
                    kind: k,
                    offset: r.position(),
                    expected: "a value",
                });
            }
        };
        r.leave();
        Ok(v)
    }
}

/// Reads a field id and checks it follows `previous` in strictly increasing
/// order (ids are unique and sorted, so each field appears once).
pub(crate) fn read_field_id(r: &mut Reader<'_>, previous: Option<u16>) -> Result<u16, DecodeError> {
    let offset = r.position();
    let raw = r.varint()?;
    let id = u16::try_from(raw).map_err(|_| DecodeError::BadFieldId { id: raw, offset })?;
    if previous.is_some_and(|p| p >= id) {
        return Err(DecodeError::Unordered { offset });
    }
    Ok(id)
}

/// Reads a map key and checks it follows `previous` in strictly increasing
/// bytewise order.
pub(crate) fn read_key(
    r: &mut Reader<'_>,
    previous: Option<&[u8]>,
) -> Result<Vec<u8>, DecodeError> {
    let offset = r.position();
    let key = r.bytes()?;
    if previous.is_some_and(|p| p >= key) {
        return Err(DecodeError::Unordered { offset });
    }
    Ok(key.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        Value::Record(vec![
            (0, Value::Leaf(vec![1, 2, 3])),
            (
                1,
                Value::Seq(vec![Value::Leaf(vec![]), Value::Leaf(vec![9; 40])]),
            ),
            (
                7,
                Value::Map(vec![
                    (b"a".to_vec(), Value::Leaf(vec![1])),
                    (b"b".to_vec(), Value::Option(None)),
                ]),
            ),
            (300, Value::Option(Some(Box::new(Value::Leaf(vec![4]))))),
        ])
    }

    #[test]
    fn round_trips_and_predicts_its_length() {
        let v = sample();
        let bytes = v.to_bytes();
        assert_eq!(bytes.len(), v.encoded_len());
        assert_eq!(Value::from_bytes(&bytes), Ok(v));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample().to_bytes();
        for cut in 0..bytes.len() {
            assert!(Value::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(matches!(
            Value::from_bytes(&extra),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn unordered_entries_are_rejected() {
        let v = Value::Record(vec![(2, Value::Leaf(vec![])), (1, Value::Leaf(vec![]))]);
        assert!(matches!(
            Value::from_bytes(&v.to_bytes()),
            Err(DecodeError::Unordered { .. })
        ));
        let m = Value::Map(vec![
            (b"b".to_vec(), Value::Leaf(vec![])),
            (b"a".to_vec(), Value::Leaf(vec![])),
        ]);
        assert!(matches!(
            Value::from_bytes(&m.to_bytes()),
            Err(DecodeError::Unordered { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflowing_the_stack() {
        let mut bytes = vec![kind::SOME << 4; 100_000];
        bytes.push(kind::NONE << 4);
        assert!(matches!(
            Value::from_bytes(&bytes),
            Err(DecodeError::TooDeep { .. })
        ));
    }
}
