//! `#[derive(Session)]`: see the `session_runtime` crate for what it
//! generates and how to use it.
//!
//! Phases, one file each: `ast` reads syn's tree into a small model,
//! `attr` parses field attributes, `valid` checks rules that span several
//! fields, `strategy` maps a field type to the runtime strategy that diffs
//! it, and `expand` writes the code.

#![deny(missing_docs)]

mod ast;
mod attr;
mod expand;
mod strategy;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Implements `session_runtime::Session`.
#[proc_macro_derive(Session, attributes(mutable, immutable, session))]
pub fn derive_session(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
