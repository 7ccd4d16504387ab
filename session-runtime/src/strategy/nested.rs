//! Fields whose type is itself a session: patched field by field.

use std::fmt;
use std::marker::PhantomData;

use super::{replacement, smaller, Strategy};
use crate::__private::Commit;
use crate::error::ApplyError;
use crate::patch::Patch;
use crate::session::Session;
use crate::value::Value;

/// The strategy of a nested `#[derive(Session)]` struct.
pub struct Nested<T>(PhantomData<fn() -> T>);

impl<T> Nested<T> {
    /// The strategy.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for Nested<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Nested<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Nested<T> {}

impl<T> fmt::Debug for Nested<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nested")
    }
}

/// A checked patch of a nested session.
pub enum NestedPrepared<T> {
    /// Replace it whole.
    Replace(T),
    /// Patch some of its fields.
    Fields(Commit<T>),
}

impl<T> fmt::Debug for NestedPrepared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NestedPrepared::Replace(_) => "Replace",
            NestedPrepared::Fields(_) => "Fields",
        })
    }
}

impl<T: Session> Strategy<T> for Nested<T> {
    type Prepared = NestedPrepared<T>;

    fn shape(self) -> u64 {
        T::schema().fingerprint()
    }

    fn to_value(self, value: &T) -> Value {
        value.to_value()
    }

    fn decode(self, value: &Value) -> Result<T, ApplyError> {
        T::from_value(value)
    }

    fn encode(self, value: &T, out: &mut Vec<u8>) {
        value.encode(out);
    }

    fn min_len(self, _: &T) -> usize {
        1 + T::schema().fields().len()
    }

    fn eq(self, a: &T, b: &T) -> bool {
        a.__eq(b)
    }

    /// A nested struct's immutable fields are fixed only through the tracked
    /// handle of the outermost session; if a whole new struct with other
    /// immutable values was assigned, it is shipped whole.
    fn diff(self, current: &T, benchmark: &T) -> Option<Patch> {
        if !current.__immutable_eq(benchmark) {
            return Some(Patch::Set(current.to_value()));
        }
        let delta = current.diff(benchmark);
        (!delta.is_empty()).then(|| smaller(self, current, Patch::Record(delta.into_fields()), 0))
    }

    fn prepare(self, target: &T, patch: &Patch) -> Result<Self::Prepared, ApplyError> {
        if let Some(whole) = replacement(self, target, patch) {
            return whole.map(NestedPrepared::Replace);
        }
        match patch {
            Patch::Record(fields) => target.__prepare(fields).map(NestedPrepared::Fields),
            _ => Err(ApplyError::shape("record", "other patch")),
        }
    }

    fn commit(self, target: &mut T, prepared: Self::Prepared) {
        match prepared {
            NestedPrepared::Replace(v) => *target = v,
            NestedPrepared::Fields(commit) => commit(target),
        }
    }
}
