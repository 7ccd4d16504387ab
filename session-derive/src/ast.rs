//! The small model of the input the other phases work on.

use syn::{Data, DeriveInput, Error, Fields, Generics, Ident, Result, Type};

use crate::attr::{self, Errors, FieldAttrs};

pub struct Input<'a> {
    pub original: &'a DeriveInput,
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    pub fields: Vec<Field<'a>>,
}

pub struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub attrs: FieldAttrs<'a>,
    /// Declaration position, the default id.
    pub index: usize,
}

impl Field<'_> {
    /// Fields are mutable unless marked `#[immutable]`.
    pub fn mutable(&self) -> bool {
        self.attrs.immutable.is_none()
    }

    pub fn id(&self) -> u16 {
        // `valid::ids_fit` rejected structs with more than 65 536 fields.
        self.attrs.id.map_or(self.index as u16, |(id, _)| id)
    }
}

const ONLY_NAMED: &str = "`#[derive(Session)]` supports only structs with named fields";

impl<'a> Input<'a> {
    pub fn from_syn(input: &'a DeriveInput, errors: &mut Errors) -> Result<Self> {
        let named = match &input.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(f) => {
                    return Err(Error::new_spanned(
                        f,
                        format!("{ONLY_NAMED}, not tuple structs; give each field a name, as in `struct Shop {{ name: String }}`"),
                    ))
                }
                Fields::Unit => {
                    return Err(Error::new_spanned(
                        &input.ident,
                        format!("{ONLY_NAMED}, not unit structs; add the fields the session keeps, or remove the derive"),
                    ))
                }
            },
            Data::Enum(e) => {
                return Err(Error::new_spanned(
                    e.enum_token,
                    format!("{ONLY_NAMED}, not enums; make the enum a field of a session struct, where it is replaced whole when it changes"),
                ))
            }
            Data::Union(u) => {
                return Err(Error::new_spanned(
                    u.union_token,
                    format!("{ONLY_NAMED}, not unions; use a struct with named fields"),
                ))
            }
        };
        attr::container_attrs(&input.attrs, errors);
        let fields = named
            .named
            .iter()
            .enumerate()
            .filter_map(|(index, f)| {
                Some(Field {
                    ident: f.ident.as_ref()?,
                    ty: &f.ty,
                    attrs: attr::field_attrs(&f.attrs, errors),
                    index,
                })
            })
            .collect();
        Ok(Input {
            original: input,
            ident: &input.ident,
            generics: &input.generics,
            fields,
        })
    }
}
