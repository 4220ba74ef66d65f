//! `#[weave::ops]` on an `impl` block: registers the digests of its `#[weave::op]` methods so
//! that the type's model version covers the code of its ops.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ImplItem, ItemFn, ItemImpl, Type};

use crate::code;
use crate::op::OpArgs;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !args.is_empty() {
        return Err(syn::Error::new_spanned(
            args,
            "#[weave::ops] takes no arguments",
        ));
    }
    let imp: ItemImpl = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[weave::ops] applies to an inherent `impl` block",
        )
    })?;
    if let Some((_, path, _)) = &imp.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "#[weave::ops] applies to an inherent `impl` block, not a trait impl",
        ));
    }
    let type_name = match &*imp.self_ty {
        Type::Path(p) => match p.path.segments.last() {
            Some(seg) => seg.ident.to_string(),
            None => {
                return Err(syn::Error::new_spanned(
                    &imp.self_ty,
                    "unsupported self type",
                ))
            }
        },
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "#[weave::ops] needs a named type (struct or enum)",
            ))
        }
    };

    let mut entries = Vec::new();
    for it in &imp.items {
        let ImplItem::Fn(f) = it else { continue };
        let Some(pos) = f.attrs.iter().position(code::is_op_attr) else {
            continue;
        };
        let attr = &f.attrs[pos];
        // Malformed arguments are reported once, by the method's own `#[weave::op]`.
        let op_args: OpArgs = match &attr.meta {
            syn::Meta::Path(_) => OpArgs::default(),
            syn::Meta::List(l) => match syn::parse2(l.tokens.clone()) {
                Ok(a) => a,
                Err(_) => continue,
            },
            syn::Meta::NameValue(_) => continue,
        };
        let mut attrs = f.attrs.clone();
        attrs.remove(pos);
        let item = ItemFn {
            attrs,
            vis: f.vis.clone(),
            sig: f.sig.clone(),
            block: Box::new(f.block.clone()),
        };
        let digest = code::digest(&code::code_text(&item));
        let version = code::version(&digest);
        let name = match op_args.name {
            Some(n) => {
                let n = n.value();
                quote!(::core::option::Option::Some(#n))
            }
            None => quote!(::core::option::Option::None),
        };
        let attr_name = f.sig.ident.to_string();
        entries.push(quote! {
            ::weave::__private::MethodOp { attribute: #attr_name, name: #name, digest: #digest, version: #version }
        });
    }

    // Only 'static, non-generic types have a TypeId to register under.
    let registration = if imp.generics.params.is_empty() {
        let self_ty = &imp.self_ty;
        quote! {
            const _: () = {
                fn __weave_type_id() -> ::core::any::TypeId {
                    ::core::any::TypeId::of::<#self_ty>()
                }
                ::weave::__private::inventory::submit! {
                    ::weave::__private::ModelOps {
                        type_id: __weave_type_id,
                        type_name: #type_name,
                        ops: &[#(#entries),*],
                    }
                }
            };
        }
    } else {
        quote!()
    };

    Ok(quote! {
        #imp
        #registration
    })
}
