//! Rules that span more than one attribute or field.

use std::collections::{BTreeMap, BTreeSet};

use syn::spanned::Spanned;
use syn::{Error, GenericParam};

use crate::ast::{Field, Input};
use crate::attr::Errors;

pub fn check(input: &Input, errors: &mut Errors) {
    mutability_is_unambiguous(input, errors);
    ids_fit(input, errors);
    ids_are_unique(input, errors);
    no_lifetimes(input, errors);
}

/// A field is either mutable or immutable; saying both is a mistake that
/// must not be resolved silently either way.
fn mutability_is_unambiguous(input: &Input, errors: &mut Errors) {
    for f in &input.fields {
        if let Some(both) = &f.attrs.conflict {
            errors.push(Error::new_spanned(
                both,
                "a field cannot be both `#[mutable]` and `#[immutable]`; keep one (fields are mutable by default)",
            ));
        }
    }
}

/// Default ids are declaration positions, which must fit the 16-bit id.
fn ids_fit(input: &Input, errors: &mut Errors) {
    if input.fields.len() > usize::from(u16::MAX) + 1 {
        errors.push(Error::new_spanned(
            input.ident,
            "a session struct can have at most 65536 fields; group fields into nested session structs",
        ));
    }
}

/// Ids address fields in deltas: two fields with one id would receive each
/// other's patches.
///
/// The error goes on a pinned id (`#[session(id = N)]`), the explicit act:
/// on the later one when both are pinned, on the only one when the other id
/// is a declaration position.
fn ids_are_unique(input: &Input, errors: &mut Errors) {
    let taken: BTreeSet<u16> = input.fields.iter().map(Field::id).collect();
    let free = (0..=u16::MAX).find(|id| !taken.contains(id));
    let suggestion = free.map_or(String::new(), |id| format!(", such as {id}"));
    let mut seen: BTreeMap<u16, &Field> = BTreeMap::new();
    for f in &input.fields {
        let id = f.id();
        let Some(first) = seen.get(&id).copied() else {
            seen.insert(id, f);
            continue;
        };
        let (span, message) = match (first.attrs.id, f.attrs.id) {
            (_, Some((_, span))) => {
                let how = if first.attrs.id.is_some() {
                    "pinned on"
                } else {
                    "the default id (the declaration position, from 0) of"
                };
                (
                    span,
                    format!(
                        "session field id {id} is already {how} field `{}`; pick an id no other field has{suggestion}",
                        first.ident
                    ),
                )
            }
            (Some((_, span)), None) => (
                span,
                format!(
                    "session field id {id} is also the default id (the declaration position, from 0) of field `{}`; pick an id no other field has{suggestion}",
                    f.ident
                ),
            ),
            // Two declaration positions never collide; kept total anyway.
            (None, None) => (
                f.ident.span(),
                format!("duplicate session field id {id}; pin a free one with `#[session(id = N)]`"),
            ),
        };
        errors.push(Error::new(span, message));
    }
}

/// Sessions outlive requests and cross threads and processes, so they own
/// their data.
fn no_lifetimes(input: &Input, errors: &mut Errors) {
    for p in &input.generics.params {
        if let GenericParam::Lifetime(l) = p {
            errors.push(Error::new(
                l.span(),
                format!(
                    "session structs cannot borrow; remove the lifetime parameter `{}` and own the data (`String` for `&str`, `Vec<T>` for `&[T]`)",
                    l.lifetime
                ),
            ));
        }
    }
}
