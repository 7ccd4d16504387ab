//! Low-level reading and writing of the compact tree format.
//!
//! Every node, whether a [`Value`](crate::Value) or a [`Patch`](crate::Patch),
//! starts with one header byte: the high nibble is the node's kind, the low
//! nibble an argument (a length or a count). Arguments up to 14 are stored
//! inline; 15 means "the argument minus 15 follows as a varint".
//!
//! ```text
//!  7      4 3      0
//! +--------+--------+-----------------------+
//! |  kind  |  arg   | [varint(arg - 15)]    |   header
//! +--------+--------+-----------------------+
//! ```
//!
//! Varints are unsigned LEB128, at most ten bytes, minimal form only.
//!
//! The reader never trusts a length: it checks every claimed length or count
//! against the bytes that remain before it allocates, and it limits nesting so
//! a hostile input cannot exhaust memory or the stack.

use crate::error::DecodeError;

/// Kinds of nodes. Values and patches share one space, so that a value
/// written where a patch is expected means "replace with this value" and
/// costs no extra byte.
pub(crate) mod kind {
    pub const LEAF: u8 = 0;
    pub const RECORD: u8 = 1;
    pub const SEQ: u8 = 2;
    pub const MAP: u8 = 3;
    pub const NONE: u8 = 4;
    pub const SOME: u8 = 5;
    pub const PATCH_RECORD: u8 = 6;
    pub const PATCH_SEQ: u8 = 7;
    pub const PATCH_MAP: u8 = 8;
    pub const PATCH_SOME: u8 = 9;
    pub const SPLICE: u8 = 10;
    pub const REMOVE: u8 = 11;

    /// Whether a header of this kind starts a value (and not a patch).
    pub fn is_value(kind: u8) -> bool {
        kind <= SOME
    }

    /// Whether headers of this kind carry an argument; those of the kinds
    /// that do not must have 0 there, so that each node has one encoding.
    pub fn takes_argument(kind: u8) -> bool {
        !matches!(kind, NONE | SOME | PATCH_SOME | REMOVE)
    }
}

/// Sequence operation codes: the low two bits of an operation's header; the
/// high six bits carry an argument (62 at most inline, 63 means a varint of
/// `arg - 63` follows).
pub(crate) mod seq_op {
    pub const SET: u8 = 0;
    pub const INSERT: u8 = 1;
    pub const REMOVE: u8 = 2;
    pub const PUSH: u8 = 3;
}

const INLINE_MAX: u64 = 14;
const SEQ_INLINE_MAX: u64 = 62;

/// Deepest nesting a reader accepts.
pub(crate) const MAX_DEPTH: usize = 128;

/// Appends `value` as an unsigned LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Length of `value` as a varint.
pub(crate) fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends a node header.
pub(crate) fn put_header(out: &mut Vec<u8>, kind: u8, arg: u64) {
    if arg <= INLINE_MAX {
        out.push(kind << 4 | arg as u8);
    } else {
        out.push(kind << 4 | 0x0f);
        put_varint(out, arg - INLINE_MAX - 1);
    }
}

/// Length of a node header.
pub(crate) fn header_len(arg: u64) -> usize {
    if arg <= INLINE_MAX {
        1
    } else {
        1 + varint_len(arg - INLINE_MAX - 1)
    }
}

/// Appends a sequence operation header.
pub(crate) fn put_seq_op(out: &mut Vec<u8>, op: u8, arg: u64) {
    if arg <= SEQ_INLINE_MAX {
        out.push(op | (arg as u8) << 2);
    } else {
        out.push(op | 63 << 2);
        put_varint(out, arg - SEQ_INLINE_MAX - 1);
    }
}

/// Length of a sequence operation header.
pub(crate) fn seq_op_len(arg: u64) -> usize {
    if arg <= SEQ_INLINE_MAX {
        1
    } else {
        1 + varint_len(arg - SEQ_INLINE_MAX - 1)
    }
}

/// Appends a length-prefixed byte string.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over untrusted input.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { offset: self.pos })
        }
    }

    /// Enters one level of nesting; pair with [`Reader::leave`].
    pub(crate) fn enter(&mut self) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep { max: MAX_DEPTH });
        }
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth -= 1;
    }

    pub(crate) fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(DecodeError::Truncated { offset: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn peek(&self) -> Result<u8, DecodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated { offset: self.pos })
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError::BadVarint { offset: start });
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    // Overlong form: only the minimal encoding is accepted, so
                    // that equal values have equal bytes.
                    return Err(DecodeError::BadVarint { offset: start });
                }
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint { offset: start })
    }

    /// Reads a node header as `(kind, arg)`.
    pub(crate) fn header(&mut self) -> Result<(u8, u64), DecodeError> {
        let start = self.pos;
        let b = self.byte()?;
        let (kind, low) = (b >> 4, u64::from(b & 0x0f));
        if low != 0 && !kind::takes_argument(kind) {
            return Err(DecodeError::BadKind {
                kind,
                offset: start,
                expected: "a header with argument 0 (this kind takes none)",
            });
        }
        let arg = if low <= INLINE_MAX {
            low
        } else {
            let offset = self.pos;
            self.varint()?
                .checked_add(INLINE_MAX + 1)
                .ok_or(DecodeError::BadVarint { offset })?
        };
        Ok((kind, arg))
    }

    /// Reads a sequence operation header as `(op, arg)`.
    pub(crate) fn seq_op(&mut self) -> Result<(u8, u64), DecodeError> {
        let b = self.byte()?;
        let (op, low) = (b & 0x03, u64::from(b >> 2));
        let arg = if low <= SEQ_INLINE_MAX {
            low
        } else {
            let offset = self.pos;
            self.varint()?
                .checked_add(SEQ_INLINE_MAX + 1)
                .ok_or(DecodeError::BadVarint { offset })?
        };
        Ok((op, arg))
    }

    /// Checks a claimed count of items, each at least `min_item` bytes long,
    /// against the input left, and returns it as a `usize` fit for
    /// `Vec::with_capacity`.
    pub(crate) fn count(&self, claimed: u64, min_item: usize) -> Result<usize, DecodeError> {
        let fits = usize::try_from(claimed)
            .ok()
            .and_then(|n| n.checked_mul(min_item))
            .is_some_and(|need| need <= self.remaining());
        if fits {
            // `fits` proved that the conversion succeeds.
            Ok(claimed as usize)
        } else {
            Err(DecodeError::Truncated { offset: self.pos })
        }
    }

    pub(crate) fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let n = self.count(len, 1)?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Reads a length-prefixed byte string.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overlong_forms() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut r = Reader::new(&out);
            assert_eq!(r.varint().ok(), Some(v));
            assert!(r.finish().is_ok());
        }
        assert!(Reader::new(&[0x80, 0x00]).varint().is_err());
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        assert!(Reader::new(&[0x80]).varint().is_err());
    }

    #[test]
    fn headers_inline_small_arguments() {
        for arg in [0u64, 14, 15, 16, 300, 1 << 40] {
            let mut out = Vec::new();
            put_header(&mut out, kind::SEQ, arg);
            assert_eq!(out.len(), header_len(arg));
            assert_eq!(Reader::new(&out).header().ok(), Some((kind::SEQ, arg)));
            let mut op = Vec::new();
            put_seq_op(&mut op, seq_op::PUSH, arg);
            assert_eq!(op.len(), seq_op_len(arg));
            assert_eq!(Reader::new(&op).seq_op().ok(), Some((seq_op::PUSH, arg)));
        }
    }

    #[test]
    fn kinds_without_an_argument_reject_one() {
        for k in [kind::NONE, kind::SOME, kind::PATCH_SOME, kind::REMOVE] {
            assert_eq!(Reader::new(&[k << 4]).header().ok(), Some((k, 0)));
            for low in [1, 14, 15] {
                assert!(
                    Reader::new(&[k << 4 | low, 0]).header().is_err(),
                    "{k} {low}"
                );
            }
        }
    }

    #[test]
    fn counts_larger_than_the_input_are_rejected_before_allocation() {
        let r = Reader::new(&[1, 2, 3]);
        assert!(r.count(3, 1).is_ok());
        assert!(r.count(4, 1).is_err());
        assert!(r.count(u64::MAX, 1).is_err());
        assert!(r.count(2, 2).is_err());
    }
}
