//! Parsing of `#[mutable]`, `#[immutable]` and `#[session(...)]`.
//!
//! Messages follow rustc's style: lowercase, no trailing period, the
//! attribute quoted as written, and what to write instead.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Attribute, Error, LitInt, Meta, Result, Token};

/// What a field's attributes say.
pub struct FieldAttrs<'a> {
    pub mutable: Option<&'a Attribute>,
    pub immutable: Option<&'a Attribute>,
    /// `#[mutable]` and `#[immutable]` both present: the tokens from the
    /// first to the second, to span the error on both.
    pub conflict: Option<TokenStream>,
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
            format!("`#[{name}]` takes no arguments; write `#[{name}]`"),
        ));
    } else if slot.is_some() {
        errors.push(Error::new_spanned(
            attr,
            format!("duplicate `#[{name}]` on this field; remove this one"),
        ));
    } else {
        *slot = Some(attr);
    }
}

pub fn field_attrs<'a>(attrs: &'a [Attribute], errors: &mut Errors) -> FieldAttrs<'a> {
    let mut out = FieldAttrs {
        mutable: None,
        immutable: None,
        conflict: None,
        id: None,
    };
    for attr in attrs {
        if attr.path().is_ident("mutable") {
            flag(attr, &mut out.mutable, "mutable", errors);
            if let (Some(first), None) = (out.immutable, &out.conflict) {
                out.conflict = Some(quote!(#first #attr));
            }
        } else if attr.path().is_ident("immutable") {
            flag(attr, &mut out.immutable, "immutable", errors);
            if let (Some(first), None) = (out.mutable, &out.conflict) {
                out.conflict = Some(quote!(#first #attr));
            }
        } else if attr.path().is_ident("session") {
            if let Err(e) = session_attr(attr, &mut out.id) {
                errors.push(e);
            }
        }
    }
    out
}

const WRITE_ID: &str = "write `#[session(id = N)]` with N from 0 to 65535";

fn session_attr(attr: &Attribute, id: &mut Option<(u16, Span)>) -> Result<()> {
    let list = match &attr.meta {
        Meta::List(list) => list,
        Meta::Path(_) | Meta::NameValue(_) => {
            return Err(Error::new_spanned(
                attr,
                format!("`#[session]` needs a field id; {WRITE_ID}"),
            ))
        }
    };
    if list.tokens.is_empty() {
        return Err(Error::new_spanned(
            attr,
            format!("empty `#[session()]`; {WRITE_ID}, or remove it"),
        ));
    }
    attr.parse_nested_meta(|meta| {
        if !meta.path.is_ident("id") {
            let path = &meta.path;
            let key = quote!(#path).to_string().replace(' ', "");
            return Err(meta.error(format_args!(
                "unknown key `{key}` in `#[session(...)]`; the only key is `id`, as in `#[session(id = 3)]`"
            )));
        }
        if !meta.input.peek(Token![=]) {
            return Err(meta.error(format!("`id` needs a value; {WRITE_ID}")));
        }
        let eq: Token![=] = meta.input.parse()?;
        let lit: LitInt = meta.input.parse().map_err(|e| {
            Error::new(
                e.span(),
                format!("the field id must be an integer literal; {WRITE_ID}"),
            )
        })?;
        let value = lit.base10_parse::<u16>().map_err(|_| {
            Error::new_spanned(
                &lit,
                format!(
                    "field id {} is out of range; pick an id from 0 to 65535",
                    lit.base10_digits()
                ),
            )
        })?;
        if id.is_some() {
            let path = &meta.path;
            return Err(Error::new_spanned(
                quote!(#path #eq #lit),
                "duplicate `id` on this field; a field has one id, so remove this one",
            ));
        }
        *id = Some((value, lit.span()));
        Ok(())
    })
}

/// Attributes of ours on the struct itself are mistakes: they belong on
/// fields.
pub fn container_attrs(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs {
        let message = if attr.path().is_ident("mutable") {
            "`#[mutable]` belongs on a field, not on the struct; fields are mutable by default, so remove it"
        } else if attr.path().is_ident("immutable") {
            "`#[immutable]` belongs on a field, not on the struct; put it on each field that never changes"
        } else if attr.path().is_ident("session") {
            "`#[session(...)]` belongs on a field, not on the struct; put `#[session(id = N)]` on the field whose id it pins"
        } else {
            continue;
        };
        errors.push(Error::new_spanned(attr, message));
    }
}
