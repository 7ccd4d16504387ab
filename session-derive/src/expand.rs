//! Writes the `Session` impl, the write proxy and the benchmark struct.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, LitStr, Result, WherePredicate};

use crate::ast::{Field, Input};
use crate::attr::Errors;
use crate::{strategy, valid};

pub fn derive(node: &DeriveInput) -> Result<TokenStream> {
    let mut errors = Errors::default();
    let input = Input::from_syn(node, &mut errors)?;
    valid::check(&input, &mut errors);
    errors.finish()?;
    Ok(impl_session(&input))
}

/// One field's pieces of generated code.
struct Gen<'a> {
    field: &'a Field<'a>,
    id: u16,
    /// The strategy expression, spanned on the field's type.
    strategy: TokenStream,
}

impl Gen<'_> {
    /// `Strategy::<FieldType>::method(strategy, args)`, the whole call
    /// spanned on the field's type so that an unmet bound (of the method, or
    /// of the `Prepared` type it returns or takes) is reported there, not on
    /// the derive.
    fn call(&self, method: &str, args: TokenStream) -> TokenStream {
        let (ty, s) = (self.field.ty, &self.strategy);
        let method = Ident::new(method, ty.span());
        quote_spanned!(ty.span()=> <_ as __p::Strategy<#ty>>::#method(#s, #args))
    }
}

fn impl_session(input: &Input) -> TokenStream {
    let name = input.ident;
    let vis = &input.original.vis;
    let edit_name = format_ident!("{}Edit", name);
    let bench_name = format_ident!("{}Benchmark", name);

    let mut generics = input.generics.clone();
    let bounds: Vec<WherePredicate> = input
        .generics
        .type_params()
        .map(|tp| {
            let t = &tp.ident;
            syn::parse_quote!(#t: ::core::clone::Clone + ::core::cmp::PartialEq + __p::serde::Serialize
                + __p::serde::de::DeserializeOwned + ::core::marker::Send + ::core::marker::Sync + 'static)
        })
        .collect();
    generics.make_where_clause().predicates.extend(bounds);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let mut edit_generics = generics.clone();
    edit_generics.params.insert(0, syn::parse_quote!('__a));
    let (edit_impl_generics, edit_ty_generics, _) = edit_generics.split_for_impl();
    let type_params: Vec<&Ident> = input.generics.type_params().map(|tp| &tp.ident).collect();
    let phantom = quote!(::core::marker::PhantomData<fn() -> (#(#type_params,)*)>);

    let mut gens: Vec<Gen> = input
        .fields
        .iter()
        .map(|f| Gen {
            field: f,
            id: f.id(),
            strategy: strategy::expr(f.ty, input.generics),
        })
        .collect();
    gens.sort_by_key(|g| g.id);
    let mutable: Vec<&Gen> = gens.iter().filter(|g| g.field.mutable()).collect();
    let immutable: Vec<&Gen> = gens.iter().filter(|g| !g.field.mutable()).collect();

    let name_str = LitStr::new(&name.to_string(), name.span());
    let field_infos = gens.iter().map(|g| {
        let fname = LitStr::new(&g.field.ident.to_string(), g.field.ident.span());
        let tname = LitStr::new(&strategy::type_name(g.field.ty), g.field.ty.span());
        let (id, m) = (g.id, g.field.mutable());
        quote!(__p::FieldInfo::new(#fname, #id, #m, #tname))
    });
    let shapes = gens.iter().map(|g| {
        let s = &g.strategy;
        let ty = g.field.ty;
        quote_spanned!(ty.span()=> __p::shape::<#ty, _>(#s))
    });

    // Benchmark struct and write proxy.
    let bench_fields = mutable.iter().map(|g| {
        let (f, ty) = (g.field.ident, g.field.ty);
        quote!(#f: ::core::option::Option<#ty>)
    });
    let bench_defaults = mutable.iter().map(|g| {
        let f = g.field.ident;
        quote!(#f: ::core::option::Option::None)
    });
    let edit_methods = mutable.iter().map(|g| {
        let (f, ty) = (g.field.ident, g.field.ty);
        let doc = format!("Returns `{f}` for writing and marks it dirty.");
        let snapshot =
            quote_spanned!(ty.span()=> __p::snapshot(&mut self.benchmark.#f, &self.value.#f));
        quote! {
            #[doc = #doc]
            #[inline]
            pub fn #f(self) -> &'__a mut #ty {
                #snapshot;
                &mut self.value.#f
            }
        }
    });

    let dirty = mutable.iter().map(|g| {
        let f = g.field.ident;
        quote!(|| __benchmark.#f.is_some())
    });

    let take_delta = mutable.iter().map(|g| {
        let (f, id) = (g.field.ident, g.id);
        let call = g.call("diff", quote!(&self.#f, __old));
        quote! {
            if let ::core::option::Option::Some(__old) = &__benchmark.#f {
                if let ::core::option::Option::Some(__patch) = #call {
                    __out.push((#id, __patch));
                }
            }
        }
    });

    let diff = mutable.iter().map(|g| {
        let (f, id) = (g.field.ident, g.id);
        let call = g.call("diff", quote!(&self.#f, &__benchmark.#f));
        quote! {
            if let ::core::option::Option::Some(__patch) = #call {
                __out.push((#id, __patch));
            }
        }
    });

    let portions = mutable.iter().map(|g| {
        let f = g.field.ident;
        let call = g.call("encode", quote!(&self.#f, &mut __buf));
        quote! {{
            let mut __buf = __p::Vec::new();
            #call;
            __portions.push(__buf);
        }}
    });
    let mutable_count = mutable.len();

    let binary_diff = mutable.iter().enumerate().map(|(k, g)| {
        let (f, id) = (g.field.ident, g.id);
        let call = g.call("encode", quote!(&self.#f, &mut __buf));
        quote! {
            __buf.clear();
            #call;
            if let ::core::option::Option::Some(__patch) = __p::field_patch(__benchmark.portion(__fp, #k), &__buf) {
                __out.push((#id, __patch));
            }
        }
    });

    let to_value = gens.iter().map(|g| {
        let (f, id) = (g.field.ident, g.id);
        let call = g.call("to_value", quote!(&self.#f));
        quote!((#id, #call))
    });

    let all_ids: Vec<u16> = gens.iter().map(|g| g.id).collect();
    let from_value = gens.iter().enumerate().map(|(k, g)| {
        let (f, id) = (g.field.ident, g.id);
        let call = g.call("decode", quote!(&__fields[#k].1));
        quote! {
            #f: #call
                .map_err(|__e| __e.within(__p::PathStep::Field(#id)))?
        }
    });

    let encode = gens.iter().map(|g| {
        let (f, id) = (g.field.ident, g.id);
        let call = g.call("encode", quote!(&self.#f, __out));
        quote! {
            __p::put_field_id(__out, #id);
            #call;
        }
    });
    let field_count = gens.len();

    let prepared_vars: Vec<Ident> = mutable
        .iter()
        .map(|g| format_ident!("__prepared_{}", g.field.ident))
        .collect();
    // Spanned on the field's type: the variable's type is the strategy's
    // `Prepared`, whose bounds are checked where it is declared.
    let prepared_lets: Vec<TokenStream> = mutable
        .iter()
        .zip(&prepared_vars)
        .map(|(g, var)| quote_spanned!(g.field.ty.span()=> let mut #var = ::core::option::Option::None;))
        .collect();
    let prepare_arms: Vec<TokenStream> = mutable
        .iter()
        .zip(&prepared_vars)
        .map(|(g, var)| {
            let (f, id) = (g.field.ident, g.id);
            let call = g.call("prepare", quote!(&self.#f, __patch));
            quote! {
                #id => {
                    #var = ::core::option::Option::Some(
                        #call.map_err(|__e| __e.within(__p::PathStep::Field(#id)))?,
                    );
                }
            }
        })
        .collect();
    let immutable_ids: Vec<u16> = immutable.iter().map(|g| g.id).collect();
    let commits: Vec<TokenStream> = mutable
        .iter()
        .zip(&prepared_vars)
        .map(|(g, var)| {
            let f = g.field.ident;
            let call = g.call("commit", quote!(&mut __this.#f, __x));
            quote! {
                if let ::core::option::Option::Some(__x) = #var {
                    #call;
                }
            }
        })
        .collect();

    let eq_all = gens.iter().map(|g| {
        let f = g.field.ident;
        let call = g.call("eq", quote!(&self.#f, &__other.#f));
        quote!(&& #call)
    });
    let eq_immutable = immutable.iter().map(|g| {
        let f = g.field.ident;
        let call = g.call("eq", quote!(&self.#f, &__other.#f));
        quote!(&& #call)
    });

    let edit_doc = format!(
        "Write access to the mutable fields of a tracked [`{name}`], one method per field."
    );

    quote! {
        #[allow(non_local_definitions, clippy::all, clippy::pedantic)]
        const _: () = {
            use ::session_runtime::__private as __p;
            #[allow(unused_imports)]
            use __p::{PickNested as _, PickOpaque as _};

            #[doc = #edit_doc]
            #vis struct #edit_name #edit_impl_generics #where_clause {
                value: &'__a mut #name #ty_generics,
                benchmark: &'__a mut #bench_name #ty_generics,
            }

            #[doc(hidden)]
            #vis struct #bench_name #impl_generics #where_clause {
                #(#bench_fields,)*
                __marker: #phantom,
            }

            impl #impl_generics ::core::default::Default for #bench_name #ty_generics #where_clause {
                fn default() -> Self {
                    Self { #(#bench_defaults,)* __marker: ::core::marker::PhantomData }
                }
            }

            impl #edit_impl_generics #edit_name #edit_ty_generics #where_clause {
                #(#edit_methods)*
            }

            #[automatically_derived]
            impl #impl_generics __p::Session for #name #ty_generics #where_clause {
                type Edit<'__a> = #edit_name #edit_ty_generics;
                type Benchmark = #bench_name #ty_generics;

                fn schema() -> &'static __p::Schema {
                    static __SCHEMA: __p::OnceLock<__p::Schema> = __p::OnceLock::new();
                    __SCHEMA.get_or_init(|| {
                        __p::Schema::new(#name_str, __p::Vec::from([#(#field_infos),*]), &[#(#shapes),*])
                    })
                }

                fn diff(&self, __benchmark: &Self) -> __p::Delta {
                    let mut __out = __p::Vec::new();
                    #(#diff)*
                    __p::Delta::from_fields(__out)
                }

                fn binary_benchmark(&self) -> __p::BinaryBenchmark {
                    let mut __portions = __p::Vec::with_capacity(#mutable_count);
                    #(#portions)*
                    __p::BinaryBenchmark::new(<Self as __p::Session>::schema().fingerprint(), __portions)
                }

                fn binary_diff(&self, __benchmark: &__p::BinaryBenchmark) -> __p::Delta {
                    let __fp = <Self as __p::Session>::schema().fingerprint();
                    let mut __out = __p::Vec::new();
                    let mut __buf: __p::Vec<u8> = __p::Vec::new();
                    #(#binary_diff)*
                    let _ = (&mut __buf, __fp);
                    __p::Delta::from_fields(__out)
                }

                fn apply(&mut self, __delta: &__p::Delta) -> __p::Result<(), __p::ApplyError> {
                    // The same two phases as `__prepare`, without boxing the second.
                    #(#prepared_lets)*
                    for (__id, __patch) in __delta.fields() {
                        match *__id {
                            #(#prepare_arms)*
                            #(#immutable_ids => return __p::Result::Err(__p::bad_field(#immutable_ids, true)),)*
                            __other => return __p::Result::Err(__p::bad_field(__other, false)),
                        }
                    }
                    let __this = self;
                    let _ = &__this;
                    #(#commits)*
                    __p::Result::Ok(())
                }

                fn to_value(&self) -> __p::Value {
                    __p::Value::Record(__p::Vec::from([#(#to_value),*]))
                }

                fn from_value(__value: &__p::Value) -> __p::Result<Self, __p::ApplyError> {
                    let __fields = __p::record_fields(__value, &[#(#all_ids),*])?;
                    __p::Result::Ok(Self { #(#from_value,)* })
                }

                fn encode(&self, __out: &mut __p::Vec<u8>) {
                    __p::put_record_header(__out, #field_count);
                    #(#encode)*
                }

                fn __edit<'__a>(__value: &'__a mut Self, __benchmark: &'__a mut Self::Benchmark) -> Self::Edit<'__a> {
                    #edit_name { value: __value, benchmark: __benchmark }
                }

                fn __is_dirty(__benchmark: &Self::Benchmark) -> bool {
                    false #(#dirty)*
                }

                fn __pending_delta(&self, __benchmark: &Self::Benchmark) -> __p::Delta {
                    let mut __out = __p::Vec::new();
                    #(#take_delta)*
                    __p::Delta::from_fields(__out)
                }

                fn __prepare(
                    &self,
                    __fields: &[(u16, __p::Patch)],
                ) -> __p::Result<__p::Commit<Self>, __p::ApplyError> {
                    #(#prepared_lets)*
                    for (__id, __patch) in __fields {
                        match *__id {
                            #(#prepare_arms)*
                            #(#immutable_ids => return __p::Result::Err(__p::bad_field(#immutable_ids, true)),)*
                            __other => return __p::Result::Err(__p::bad_field(__other, false)),
                        }
                    }
                    __p::Result::Ok(__p::Box::new(move |__this: &mut Self| {
                        let _ = &__this;
                        #(#commits)*
                    }))
                }

                fn __eq(&self, __other: &Self) -> bool {
                    true #(#eq_all)*
                }

                fn __immutable_eq(&self, __other: &Self) -> bool {
                    true #(#eq_immutable)*
                }
            }
        };
    }
}
