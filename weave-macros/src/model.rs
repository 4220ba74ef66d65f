//! `#[derive(Model)]`: attributes from the struct's fields, version linked to its ops.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields};

fn has_skip(attrs: &[syn::Attribute]) -> syn::Result<bool> {
    let mut skip = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("weave")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(meta.error("unknown weave field option; expected `skip`"))
            }
        })?;
    }
    Ok(skip)
}

pub(crate) fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    if let Some(attr) = input.attrs.iter().find(|a| a.path().is_ident("weave")) {
        return Err(syn::Error::new_spanned(
            attr,
            "#[weave(...)] options go on fields (`#[weave(skip)]`), not on the struct",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Model)] supports structs with named fields",
        ));
    };
    let fields = match &data.fields {
        Fields::Named(n) => &n.named,
        Fields::Unit => &syn::punctuated::Punctuated::new(),
        Fields::Unnamed(u) => {
            return Err(syn::Error::new_spanned(
                u,
                "#[derive(Model)] needs named fields: they become the model's attributes",
            ))
        }
    };
    let mut pushes = Vec::new();
    let mut prints = Vec::new();
    for f in fields {
        if has_skip(&f.attrs)? {
            continue;
        }
        let Some(ident) = &f.ident else { continue };
        let key = ident.to_string();
        let key = key.strip_prefix("r#").unwrap_or(&key).to_string();
        pushes.push(quote! {
            __weave_attrs.push((#key, (&&&&::weave::__private::capture::Wrap(&self.#ident)).__weave_capture()));
        });
        prints.push(quote! {
            __weave_out.extend_from_slice(#key.as_bytes());
            __weave_out.push(0);
            (&&&&::weave::__private::capture::Wrap(&self.#ident)).__weave_fingerprint(__weave_out);
        });
    }
    let name = &input.ident;
    let type_name = name.to_string();
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let type_id = if input.generics.params.is_empty() {
        quote!(::core::option::Option::Some(
            ::core::any::TypeId::of::<Self>()
        ))
    } else {
        quote!(::core::option::Option::None)
    };
    Ok(quote! {
        impl #impl_generics ::weave::Model for #name #ty_generics #where_clause {
            fn weave_type_name(&self) -> &'static str {
                #type_name
            }
            #[doc(hidden)]
            fn __weave_attributes(&self) -> ::std::vec::Vec<(&'static str, ::weave::__private::Value)> {
                #[allow(unused_imports)]
                use ::weave::__private::capture::{CaptureModel as _, CaptureSerialize as _, CaptureDebug as _, CaptureAny as _};
                #[allow(unused_mut)]
                let mut __weave_attrs = ::std::vec::Vec::new();
                #(#pushes)*
                __weave_attrs
            }
            #[doc(hidden)]
            fn __weave_fingerprint(&self, __weave_out: &mut ::std::vec::Vec<u8>) {
                #[allow(unused_imports)]
                use ::weave::__private::capture::{FingerprintModel as _, FingerprintSerialize as _, FingerprintDebug as _, FingerprintAny as _};
                #(#prints)*
            }
            #[doc(hidden)]
            fn __weave_type_id(&self) -> ::core::option::Option<::core::any::TypeId> {
                #type_id
            }
        }
    })
}
