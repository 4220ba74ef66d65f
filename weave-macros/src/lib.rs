//! Procedural macros for `weave`. Use them through the `weave-core` crate (`weave::op`,
//! `weave::ops`, `weave::Model`); the expansions refer to `::weave::__private`.

extern crate proc_macro;

mod code;
mod model;
mod op;
mod ops_impl;

use proc_macro::TokenStream;

/// Records every call of the function as a weave *call*. See `weave::op` for the full docs.
#[proc_macro_attribute]
pub fn op(args: TokenStream, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    op::expand(args.into(), item.clone())
        .unwrap_or_else(|e| with_item(e, item))
        .into()
}

/// On a usage error, the item is kept as written so that only the macro's error is reported,
/// not a cascade of errors from code that uses the item.
fn with_item(e: syn::Error, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let mut out = e.into_compile_error();
    out.extend(item);
    out
}

/// Links the `#[weave::op]` methods of an `impl` block to the type's model version. See
/// `weave::ops`.
#[proc_macro_attribute]
pub fn ops(args: TokenStream, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    ops_impl::expand(args.into(), item.clone())
        .unwrap_or_else(|e| with_item(e, item))
        .into()
}

/// Derives `weave::Model`. See `weave::Model`.
#[proc_macro_derive(Model, attributes(weave))]
pub fn derive_model(item: TokenStream) -> TokenStream {
    model::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
