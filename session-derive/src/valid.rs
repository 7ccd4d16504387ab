//! Rules that span more than one attribute or field.

use std::collections::BTreeMap;

use syn::spanned::Spanned;
use syn::{Error, GenericParam};

use crate::ast::Input;
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
        if let (Some(_), Some(second)) = (f.attrs.mutable, f.attrs.immutable) {
            errors.push(Error::new_spanned(
                second,
                "#[mutable] and #[immutable] cannot both be applied to one field; keep one",
            ));
        }
    }
}

/// Default ids are declaration positions, which must fit the 16-bit id.
fn ids_fit(input: &Input, errors: &mut Errors) {
    if input.fields.len() > usize::from(u16::MAX) + 1 {
        errors.push(Error::new_spanned(
            input.ident,
            "a session struct can have at most 65536 fields",
        ));
    }
}

/// Ids address fields in deltas: two fields with one id would receive each
/// other's patches.
fn ids_are_unique(input: &Input, errors: &mut Errors) {
    let mut seen = BTreeMap::new();
    for f in &input.fields {
        let id = f.id();
        if let Some(first) = seen.insert(id, f.ident) {
            let span = f.attrs.id.map_or(f.ident.span(), |(_, s)| s);
            errors.push(Error::new(
                span,
                format!("duplicate session field id {id}: field `{first}` already has it; pin a free id with #[session(id = N)]"),
            ));
        }
    }
}

/// Sessions outlive requests and cross threads and processes, so they own
/// their data.
fn no_lifetimes(input: &Input, errors: &mut Errors) {
    for p in &input.generics.params {
        if let GenericParam::Lifetime(l) = p {
            errors.push(Error::new(
                l.span(),
                "session structs cannot borrow: remove the lifetime parameter and own the data",
            ));
        }
    }
}
