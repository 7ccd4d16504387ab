//! Which runtime strategy diffs a field, read from the field's type.
//!
//! std collections and `Option` are recognised by name (the last path
//! segment), so `std::collections::BTreeMap<K, V>` and `BTreeMap<K, V>` are
//! the same; a type alias of one is not recognised and is replaced whole.
//! Whether any other type is a nested session or an opaque value is left to
//! the compiler (autoref specialization in the runtime's `Probe`).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericArgument, Generics, PathArguments, Type};

/// The strategy of a field of type `ty`, its type hidden by `__p::erase`
/// (see there), spanned on `ty`.
pub fn expr(ty: &Type, generics: &Generics) -> TokenStream {
    let inner = build(ty, generics);
    quote_spanned!(ty.span()=> __p::erase::<#ty, _>(#inner))
}

fn build(ty: &Type, generics: &Generics) -> TokenStream {
    let span = ty.span();
    match ty {
        Type::Paren(p) => return build(&p.elem, generics),
        Type::Group(g) => return build(&g.elem, generics),
        Type::Path(tp) if tp.qself.is_none() => {
            if is_type_param(ty, generics) {
                return quote_spanned!(span=> __p::Opaque::<#ty>::new());
            }
            if let Some(last) = tp.path.segments.last() {
                let args = type_args(&last.arguments);
                match (last.ident.to_string().as_str(), args.as_slice()) {
                    ("Vec", [elem]) if is_u8(elem) => return quote_spanned!(span=> __p::Bytes),
                    ("Vec" | "VecDeque", [elem]) => {
                        let inner = build(elem, generics);
                        return quote_spanned!(span=> __p::SeqOf::new(#inner));
                    }
                    ("HashMap", [key, val] | [key, val, _]) | ("BTreeMap", [key, val]) => {
                        let inner = build(val, generics);
                        return quote_spanned!(span=> __p::MapOf::<#key, _>::new(#inner));
                    }
                    ("HashSet", [elem] | [elem, _]) | ("BTreeSet", [elem]) => {
                        return quote_spanned!(span=> __p::SetOf::<#elem>::new());
                    }
                    ("Option", [inner]) => {
                        let inner = build(inner, generics);
                        return quote_spanned!(span=> __p::OptionOf::new(#inner));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    // Erased here too, so that an element type without a strategy is
    // reported on itself and not again on the collection around it.
    quote_spanned!(span=> __p::erase::<#ty, _>((&&__p::Probe::<#ty>::new()).strategy()))
}

fn type_args(args: &PathArguments) -> Vec<&Type> {
    match args {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_u8(ty: &Type) -> bool {
    match ty {
        Type::Paren(p) => is_u8(&p.elem),
        Type::Group(g) => is_u8(&g.elem),
        Type::Path(p) => p.qself.is_none() && p.path.is_ident("u8"),
        _ => false,
    }
}

fn is_type_param(ty: &Type, generics: &Generics) -> bool {
    let Type::Path(p) = ty else { return false };
    generics.type_params().any(|tp| p.path.is_ident(&tp.ident))
}

/// The type as the user wrote it, without the spaces `to_string` adds
/// around punctuation.
pub fn type_name(ty: &Type) -> String {
    let raw = quote!(#ty).to_string();
    let chars: Vec<char> = raw.chars().collect();
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    let mut out = String::with_capacity(raw.len());
    for (i, c) in chars.iter().enumerate() {
        let keep = *c != ' ' || (word(chars.get(i.wrapping_sub(1))) && word(chars.get(i + 1)));
        if keep {
            out.push(*c);
        }
    }
    out
}
