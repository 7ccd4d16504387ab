//! Plumbing called by the code `#[derive(Session)]` generates. Not a public
//! API: names and signatures change without notice.

pub use core::option::Option;
pub use core::result::Result;
pub use serde;
pub use std::boxed::Box;
pub use std::sync::OnceLock;
pub use std::vec::Vec;

pub use crate::binary::{field_patch, BinaryBenchmark};
pub use crate::delta::Delta;
pub use crate::error::{ApplyError, ApplyErrorKind, PathStep};
pub use crate::patch::Patch;
pub use crate::schema::{FieldInfo, Schema};
pub use crate::session::Session;
pub use crate::strategy::{
    Bytes, MapOf, Nested, Opaque, OpaqueValue, OptionOf, PickNested, PickOpaque, Probe, SeqOf,
    SetOf, Strategy,
};
pub use crate::value::Value;

use crate::wire::{self, kind};

/// The second phase of an apply: the change, already checked, that cannot
/// fail.
pub type Commit<T> = Box<dyn FnOnce(&mut T)>;

/// Appends the header of a record of `fields` fields.
pub fn put_record_header(out: &mut Vec<u8>, fields: usize) {
    wire::put_header(out, kind::RECORD, fields as u64);
}

/// Appends a field id.
pub fn put_field_id(out: &mut Vec<u8>, id: u16) {
    wire::put_varint(out, u64::from(id));
}

/// The fields of a record value, which must have exactly the ids `ids`
/// (sorted).
pub fn record_fields<'v>(value: &'v Value, ids: &[u16]) -> Result<&'v [(u16, Value)], ApplyError> {
    let Value::Record(fields) = value else {
        return Err(ApplyError::shape("record", value.shape()));
    };
    for (i, want) in ids.iter().enumerate() {
        match fields.get(i) {
            Some((id, _)) if id == want => {}
            Some((id, _)) if id < want || !ids.contains(id) => {
                return Err(ApplyError::new(ApplyErrorKind::UnknownField { id: *id }))
            }
            _ => return Err(ApplyError::new(ApplyErrorKind::MissingField { id: *want })),
        }
    }
    if let Some((id, _)) = fields.get(ids.len()) {
        return Err(ApplyError::new(ApplyErrorKind::UnknownField { id: *id }));
    }
    Ok(fields)
}

/// The error for a patch of field `id`, which the type does not have (or
/// has, immutable).
pub fn bad_field(id: u16, immutable: bool) -> ApplyError {
    ApplyError::new(if immutable {
        ApplyErrorKind::ImmutableField { id }
    } else {
        ApplyErrorKind::UnknownField { id }
    })
}

/// The type of a mutable field: its first write through the tracked handle
/// keeps a copy of the old value, so it must be `Clone`. Implemented for
/// every `Clone` type; it exists for its error message.
#[diagnostic::on_unimplemented(
    message = "mutable session field type `{Self}` does not implement `Clone`",
    label = "the first write through `edit()` keeps a clone of this field's old value",
    note = "derive or implement `Clone` for `{Self}`, or mark the field `#[immutable]` if it never changes"
)]
pub trait MutableField: Clone {}

impl<T: Clone> MutableField for T {}

/// Takes the benchmark copy of a field on its first write.
pub fn snapshot<T: MutableField>(benchmark: &mut Option<T>, current: &T) {
    if benchmark.is_none() {
        *benchmark = Some(current.clone());
    }
}

/// Hides the type of a field's strategy behind `impl Strategy<T>`.
///
/// The derive builds each strategy through this (for a whole field, and for
/// each element type it leaves to [`Probe`]), so that when a type has no
/// strategy the unmet bound is reported once, on that type, and not again at
/// every generated use of the field. Costs nothing at run time.
#[inline(always)]
pub fn erase<T, S>(strategy: S) -> impl Strategy<T, Prepared: 'static>
where
    S: Strategy<T>,
    S::Prepared: 'static,
{
    strategy
}

/// The shape hash of the field a strategy handles.
pub fn shape<T, S: Strategy<T>>(strategy: S) -> u64 {
    strategy.shape()
}
