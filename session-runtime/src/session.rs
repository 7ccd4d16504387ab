//! The trait `#[derive(Session)]` implements.

use crate::binary::BinaryBenchmark;
use crate::delta::Delta;
use crate::error::{ApplyError, DecodeError};
use crate::patch::Patch;
use crate::schema::Schema;
use crate::value::Value;

/// A struct whose changes can be found, shipped and applied field by field.
///
/// Implement it with `#[derive(Session)]`; the derive writes every method.
/// Fields are mutable unless marked `#[immutable]`; immutable fields are
/// written when the session is created ([`Session::to_value`]) and never
/// compared or shipped again.
///
/// Three ways to find what changed, which agree with each other:
///
/// - [`Tracked`](crate::Tracked) marks fields dirty as they are written, and
///   diffs only those: cost proportional to what was touched.
/// - [`Session::diff`] compares every mutable field with a benchmark value,
///   recursing into nested sessions and std collections.
/// - [`Session::binary_diff`] compares the encoding of every mutable field
///   with one recorded earlier, and ships changed byte runs. It needs no
///   `PartialEq` and sees writes that bypassed the tracked handle.
///
/// For all three, applying the delta to the benchmark yields the current
/// value, and an unchanged value yields an empty delta.
pub trait Session: Sized + Send + Sync + 'static {
    /// The proxy [`Tracked::edit`](crate::Tracked::edit) returns: one method
    /// per mutable field, returning `&mut` to it and marking it dirty.
    type Edit<'a>;

    /// Benchmark copies of the fields written since the last delta (taken on
    /// first write, so untouched fields cost nothing).
    #[doc(hidden)]
    type Benchmark: Default + Send + Sync;

    /// The fields, their ids and the type's fingerprint.
    fn schema() -> &'static Schema;

    /// Object-graph differencing against a benchmark value.
    fn diff(&self, benchmark: &Self) -> Delta;

    /// Records the encoding of every mutable field, for
    /// [`Session::binary_diff`].
    fn binary_benchmark(&self) -> BinaryBenchmark;

    /// Binary differencing against encodings recorded by
    /// [`Session::binary_benchmark`].
    fn binary_diff(&self, benchmark: &BinaryBenchmark) -> Delta;

    /// Applies a delta. All-or-nothing: on error, `self` is unchanged.
    fn apply(&mut self, delta: &Delta) -> Result<(), ApplyError>;

    /// The whole session (immutable fields included) as a tree.
    fn to_value(&self) -> Value;

    /// Rebuilds a session from its tree.
    fn from_value(value: &Value) -> Result<Self, ApplyError>;

    /// Appends the encoding of the whole session; equal to encoding
    /// [`Session::to_value`], without building the tree.
    fn encode(&self, out: &mut Vec<u8>);

    /// The full encoding of the session (what creation and snapshots ship).
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes a full encoding made by [`Session::to_bytes`] (or by a store
    /// node's tree).
    fn from_bytes(bytes: &[u8]) -> Result<Self, ApplyError> {
        let value = Value::from_bytes(bytes).map_err(|e: DecodeError| ApplyError::from(e))?;
        Self::from_value(&value)
    }

    #[doc(hidden)]
    fn __edit<'a>(value: &'a mut Self, benchmark: &'a mut Self::Benchmark) -> Self::Edit<'a>;

    #[doc(hidden)]
    fn __is_dirty(benchmark: &Self::Benchmark) -> bool;

    /// The delta of the written fields against their benchmarks.
    #[doc(hidden)]
    fn __pending_delta(&self, benchmark: &Self::Benchmark) -> Delta;

    /// Checks field patches against `self` and returns the change to make,
    /// which cannot fail.
    #[doc(hidden)]
    fn __prepare(
        &self,
        fields: &[(u16, Patch)],
    ) -> Result<crate::__private::Commit<Self>, ApplyError>;

    /// Whether every field of `self` and `other` (immutable ones too) is
    /// equal.
    #[doc(hidden)]
    fn __eq(&self, other: &Self) -> bool;

    /// Whether the immutable fields of `self` and `other` are equal.
    #[doc(hidden)]
    fn __immutable_eq(&self, other: &Self) -> bool;
}
