//! Parsing of `#[mutable]`, `#[immutable]` and `#[session(...)]`.

use proc_macro2::Span;
use syn::{Attribute, Error, LitInt, Meta, Result};

/// What a field's attributes say.
pub struct FieldAttrs<'a> {
    pub mutable: Option<&'a Attribute>,
    pub immutable: Option<&'a Attribute>,
    /// A pinned id and the span of its literal.
    pub id: Option<(u16, Span)>,
}

/// Collects every error instead of stopping at the first, so one compile
/// shows every mistake.
#[derive(Default)]
pub struct Errors(Option<Error>);

impl Errors {
    pub fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub fn finish(self) -> Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// A mutability flag must be a bare path: `#[mutable]`.
fn flag<'a>(
    attr: &'a Attribute,
    slot: &mut Option<&'a Attribute>,
    name: &str,
    errors: &mut Errors,
) {
    if !matches!(attr.meta, Meta::Path(_)) {
        errors.push(Error::new_spanned(
            &attr.meta,
            format!("#[{name}] takes no arguments; write `#[{name}]`"),
        ));
    } else if slot.is_some() {
        errors.push(Error::new_spanned(
            attr,
            format!("duplicate #[{name}] attribute"),
        ));
    } else {
        *slot = Some(attr);
    }
}

pub fn field_attrs<'a>(attrs: &'a [Attribute], errors: &mut Errors) -> FieldAttrs<'a> {
    let mut out = FieldAttrs {
        mutable: None,
        immutable: None,
        id: None,
    };
    for attr in attrs {
        if attr.path().is_ident("mutable") {
            flag(attr, &mut out.mutable, "mutable", errors);
        } else if attr.path().is_ident("immutable") {
            flag(attr, &mut out.immutable, "immutable", errors);
        } else if attr.path().is_ident("session") {
            if let Err(e) = session_attr(attr, &mut out.id) {
                errors.push(e);
            }
        }
    }
    out
}

fn session_attr(attr: &Attribute, id: &mut Option<(u16, Span)>) -> Result<()> {
    if !matches!(attr.meta, Meta::List(_)) {
        return Err(Error::new_spanned(attr, "expected #[session(id = N)]"));
    }
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("id") {
            let lit: LitInt = meta
                .value()
                .and_then(|v| v.parse())
                .map_err(|e| Error::new(e.span(), "expected an integer: #[session(id = N)]"))?;
            let value = lit.base10_parse::<u16>().map_err(|_| {
                Error::new_spanned(&lit, "session field id must be an integer from 0 to 65535")
            })?;
            if id.is_some() {
                return Err(Error::new_spanned(
                    &meta.path,
                    "duplicate #[session(id)] on one field",
                ));
            }
            *id = Some((value, lit.span()));
            Ok(())
        } else {
            Err(meta
                .error("unknown #[session] key; the only key is `id`, as in #[session(id = 3)]"))
        }
    })
}

/// Attributes of ours on the struct itself are mistakes: they belong on
/// fields.
pub fn container_attrs(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs {
        for name in ["mutable", "immutable", "session"] {
            if attr.path().is_ident(name) {
                errors.push(Error::new_spanned(
                    attr,
                    format!("#[{name}] belongs on a field, not on the struct"),
                ));
            }
        }
    }
}
