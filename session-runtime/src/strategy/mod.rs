//! How each kind of field is encoded, diffed and patched.
//!
//! The derive picks a strategy for every field from its type: `Vec<u8>` is
//! a byte string; `Vec`/`VecDeque`, the std maps and sets, and `Option` are
//! structural; any other type is a nested session if it derives `Session`,
//! else an opaque value replaced whole (it must be `Serialize`,
//! `DeserializeOwned` and `PartialEq`). The choice between the last two is
//! made by the compiler, through [`Probe`].

mod leaf;
mod map;
mod nested;
mod option;
mod seq;

pub use leaf::{Bytes, Opaque};
pub use map::{MapOf, SetOf};
pub use nested::Nested;
pub use option::OptionOf;
pub use seq::SeqOf;

use std::marker::PhantomData;

use crate::error::{ApplyError, ApplyErrorKind};
use crate::patch::{splice, Patch};
use crate::value::Value;

/// The operations the derive needs on a field of type `T`.
///
/// Strategies are zero-sized and `Copy`; composite ones hold the strategy of
/// their elements.
pub trait Strategy<T>: Copy {
    /// A checked patch, ready to be applied without failing.
    type Prepared;

    /// A hash of the shape of `T` as this strategy stores it.
    fn shape(self) -> u64;

    /// `T` as a tree.
    fn to_value(self, value: &T) -> Value;

    /// `T` from a tree.
    fn decode(self, value: &Value) -> Result<T, ApplyError>;

    /// Appends the encoding of `to_value(value)`.
    fn encode(self, value: &T, out: &mut Vec<u8>);

    /// A cheap lower bound of the length of that encoding.
    fn min_len(self, value: &T) -> usize;

    /// Whether two values are equal, as far as their trees are concerned.
    fn eq(self, a: &T, b: &T) -> bool;

    /// The patch that turns `benchmark` into `current`, if they differ.
    fn diff(self, current: &T, benchmark: &T) -> Option<Patch>;

    /// Checks `patch` against `target` and decodes what it carries.
    fn prepare(self, target: &T, patch: &Patch) -> Result<Self::Prepared, ApplyError>;

    /// Applies a prepared patch.
    fn commit(self, target: &mut T, prepared: Self::Prepared);
}

/// For a patch that replaces the whole node (a value, or byte runs of its
/// encoding), the new value; `None` for structural patches.
pub(crate) fn replacement<T, S: Strategy<T>>(
    s: S,
    target: &T,
    patch: &Patch,
) -> Option<Result<T, ApplyError>> {
    match patch {
        Patch::Set(v) => Some(s.decode(v)),
        Patch::Splice(edits) => Some((|| {
            let mut old = Vec::new();
            s.encode(target, &mut old);
            let new = splice(&old, edits).map_err(|(end, len)| {
                ApplyError::new(ApplyErrorKind::SpliceOutOfRange { end, len })
            })?;
            s.decode(&Value::from_bytes(&new)?)
        })()),
        _ => None,
    }
}

/// Replaces a structural patch by the whole value when that is not larger,
/// so that a patch never costs more than shipping the field.
///
/// `bound` is a lower bound of the whole value's encoded length known from
/// the patch (elements it carries whole); building the whole value to
/// measure it is the expensive path, taken only when the bound is not
/// enough.
pub(crate) fn smaller<T, S: Strategy<T>>(s: S, current: &T, patch: Patch, bound: usize) -> Patch {
    let patch_len = patch.encoded_len();
    if patch_len <= bound.max(s.min_len(current)) {
        return patch;
    }
    let whole = s.to_value(current);
    if whole.encoded_len() <= patch_len {
        Patch::Set(whole)
    } else {
        patch
    }
}

/// Chooses, at compile time, between [`Nested`] (for types that implement
/// [`Session`](crate::Session)) and [`Opaque`] (for any other type) by
/// autoref specialization: the derive writes
/// `(&&Probe::<T>::new()).strategy()`, and method resolution prefers the
/// impl on `&Probe<T>` ([`PickNested`]) when `T: Session`, else falls back to
/// the one on `Probe<T>` ([`PickOpaque`]).
///
/// The fallback applies to every type, and its method requires
/// [`OpaqueValue`]: so a type that is neither a session nor a serde value is
/// reported as an unmet `OpaqueValue` bound, with that trait's message,
/// rather than as a method that exists but cannot be called.
#[derive(Debug)]
pub struct Probe<T>(PhantomData<T>);

impl<T> Probe<T> {
    /// A probe for `T`.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Picks [`Nested`] for session types.
pub trait PickNested<T> {
    /// The strategy for `T`.
    fn strategy(&self) -> Nested<T>;
}

impl<T: crate::Session> PickNested<T> for &Probe<T> {
    fn strategy(&self) -> Nested<T> {
        Nested::new()
    }
}

/// Picks [`Opaque`] for types that are not sessions.
pub trait PickOpaque<T> {
    /// The strategy for `T`.
    fn strategy(&self) -> Opaque<T>
    where
        T: OpaqueValue;
}

impl<T> PickOpaque<T> for Probe<T> {
    fn strategy(&self) -> Opaque<T>
    where
        T: OpaqueValue,
    {
        Opaque::new()
    }
}

/// A field type that is not a session, replaced whole when it changes: it
/// must be `Serialize`, `DeserializeOwned` and `PartialEq`. Implemented for
/// every such type.
#[diagnostic::on_unimplemented(
    message = "session field type `{Self}` can be neither diffed nor replaced whole",
    label = "not a `#[derive(Session)]` struct, nor `Serialize + Deserialize + PartialEq`",
    note = "derive `Session` for `{Self}` to diff it field by field, or derive `Serialize`, `Deserialize` and `PartialEq` for it to replace it whole when it changes"
)]
pub trait OpaqueValue: serde::Serialize + serde::de::DeserializeOwned + PartialEq {}

impl<T> OpaqueValue for T where T: serde::Serialize + serde::de::DeserializeOwned + PartialEq {}
