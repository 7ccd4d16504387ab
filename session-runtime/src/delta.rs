//! The unit of replication: patches of the fields that changed.

use std::fmt;

use crate::error::DecodeError;
use crate::patch::{self, Patch};
use crate::wire::{kind, Reader};

/// The changes between two versions of a session: one [`Patch`] per changed
/// mutable field, addressed by the field's stable id.
///
/// On the wire a delta is a record patch (see [`Patch`]); an empty delta is
/// one byte.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Delta {
    fields: Vec<(u16, Patch)>,
}

impl Delta {
    /// A delta that changes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A delta from field patches, which must be in strictly increasing id
    /// order (the order the derive emits them in).
    ///
    /// # Panics
    ///
    /// If the ids are not strictly increasing: that is a bug in the caller,
    /// and a delta with unordered ids would not decode on the other side.
    pub fn from_fields(fields: Vec<(u16, Patch)>) -> Self {
        assert!(
            fields.windows(2).all(|w| w[0].0 < w[1].0),
            "delta field ids must be strictly increasing"
        );
        Self { fields }
    }

    /// Whether applying this delta would change nothing.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The field patches, in increasing id order.
    pub fn fields(&self) -> &[(u16, Patch)] {
        &self.fields
    }

    /// The patch of one field, if the delta changes it.
    pub fn field(&self, id: u16) -> Option<&Patch> {
        self.fields
            .binary_search_by_key(&id, |(i, _)| *i)
            .ok()
            .map(|i| &self.fields[i].1)
    }

    /// Ids of the fields this delta changes, in increasing order.
    pub fn field_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.fields.iter().map(|(id, _)| *id)
    }

    /// The wire encoding of this delta.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// Appends the wire encoding of this delta to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        patch::encode_record(out, &self.fields);
    }

    /// Length of [`Delta::to_bytes`], without encoding.
    pub fn encoded_len(&self) -> usize {
        patch::record_len(&self.fields)
    }

    /// Decodes a delta. Malformed, truncated or oversized input is an error;
    /// nothing is allocated beyond what the input could justify.
    pub fn from_bytes(bytes: &[u8]) -> Result<Delta, DecodeError> {
        let mut r = Reader::new(bytes);
        let (k, arg) = r.header()?;
        if k != kind::PATCH_RECORD {
            return Err(DecodeError::BadKind {
                kind: k,
                offset: 0,
                expected: "a delta (record patch)",
            });
        }
        r.enter()?;
        let fields = patch::decode_record_body(&mut r, arg)?;
        r.leave();
        r.finish()?;
        Ok(Delta { fields })
    }

    /// Consumes the delta, returning its field patches.
    pub fn into_fields(self) -> Vec<(u16, Patch)> {
        self.fields
    }
}

impl fmt::Debug for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.fields.iter().map(|(id, p)| (id, p)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    #[test]
    fn an_empty_delta_is_one_byte() {
        let d = Delta::new();
        assert!(d.is_empty());
        assert_eq!(d.to_bytes().len(), 1);
        assert_eq!(Delta::from_bytes(&d.to_bytes()), Ok(d));
    }

    #[test]
    fn a_value_is_not_a_delta() {
        let bytes = Value::Leaf(vec![]).to_bytes();
        assert!(matches!(
            Delta::from_bytes(&bytes),
            Err(DecodeError::BadKind { .. })
        ));
        assert!(Delta::from_bytes(&[]).is_err());
    }

    #[test]
    fn field_lookup_uses_ids() {
        let d = Delta::from_fields(vec![
            (3, Patch::Set(Value::Leaf(vec![1]))),
            (9, Patch::Splice(vec![])),
        ]);
        assert!(d.field(3).is_some());
        assert!(d.field(4).is_none());
        assert_eq!(d.field_ids().collect::<Vec<_>>(), vec![3, 9]);
    }
}
