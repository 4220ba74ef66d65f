//! `#[weave::op]`: parses the arguments, then wraps the function body so that each call is
//! recorded through `::weave::__private`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Token, Type};

use crate::code;

/// Parsed `#[weave::op(...)]` arguments.
#[derive(Default)]
pub(crate) struct OpArgs {
    pub(crate) name: Option<LitStr>,
    skip: Vec<Ident>,
    skip_all: bool,
}

impl Parse for OpArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = OpArgs::default();
        let mut seen_skip = false;
        while !input.is_empty() {
            let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            match key.to_string().as_str() {
                "name" => {
                    if args.name.is_some() {
                        return Err(syn::Error::new(key.span(), "duplicate `name` argument"));
                    }
                    input.parse::<Token![=]>()?;
                    let lit: syn::Lit = input.parse()?;
                    match lit {
                        syn::Lit::Str(s) if !s.value().trim().is_empty() => args.name = Some(s),
                        syn::Lit::Str(s) => {
                            return Err(syn::Error::new(s.span(), "op name must not be empty"))
                        }
                        other => {
                            return Err(syn::Error::new(
                                other.span(),
                                "expected a string literal: `name = \"...\"`",
                            ))
                        }
                    }
                }
                "skip" => {
                    if seen_skip {
                        return Err(syn::Error::new(key.span(), "duplicate `skip` argument"));
                    }
                    seen_skip = true;
                    let content;
                    syn::parenthesized!(content in input);
                    let names: Punctuated<Ident, Token![,]> =
                        content.parse_terminated(syn::ext::IdentExt::parse_any, Token![,])?;
                    args.skip.extend(names);
                }
                "skip_all" => {
                    if args.skip_all {
                        return Err(syn::Error::new(key.span(), "duplicate `skip_all` argument"));
                    }
                    args.skip_all = true;
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown weave::op option `{key}`; expected `name = \"...\"`, \
                             `skip(...)` or `skip_all`"
                        ),
                    ))
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        if args.skip_all && !args.skip.is_empty() {
            return Err(syn::Error::new(
                args.skip[0].span(),
                "`skip(...)` is redundant with `skip_all`",
            ));
        }
        Ok(args)
    }
}

fn is_impl_trait(ret: &ReturnType) -> bool {
    matches!(ret, ReturnType::Type(_, ty) if contains_impl_trait(ty))
}

fn contains_impl_trait(ty: &Type) -> bool {
    let mut found = false;
    ty.to_token_stream().into_iter().for_each(|t| {
        if let proc_macro2::TokenTree::Ident(i) = t {
            if i == "impl" {
                found = true;
            }
        }
    });
    found || matches!(ty, Type::ImplTrait(_))
}

/// The span of an item's keyword (`struct`, `impl`, ...): the first token after its attributes
/// and visibility.
fn item_keyword_span(item: &TokenStream) -> Span {
    use proc_macro2::TokenTree;
    let mut tokens = item.clone().into_iter().peekable();
    while let Some(t) = tokens.next() {
        match &t {
            // `#[...]`
            TokenTree::Punct(p) if p.as_char() == '#' => {
                tokens.next();
            }
            // `pub`, `pub(crate)`
            TokenTree::Ident(i) if i == "pub" => {
                if matches!(tokens.peek(), Some(TokenTree::Group(g))
                    if g.delimiter() == proc_macro2::Delimiter::Parenthesis)
                {
                    tokens.next();
                }
            }
            other => return other.span(),
        }
    }
    Span::call_site()
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args: OpArgs = syn::parse2(args)?;
    let item: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            return Err(syn::Error::new(
                item_keyword_span(&item),
                "#[weave::op] applies to functions and methods; for an impl block use \
                 #[weave::ops]",
            ))
        }
    };
    if let Some(c) = &item.sig.constness {
        return Err(syn::Error::new(
            c.span(),
            "#[weave::op] cannot be used on a `const fn`: recording a call is not a const operation",
        ));
    }
    if let Some(v) = &item.sig.variadic {
        return Err(syn::Error::new(
            v.span(),
            "#[weave::op] does not support variadic functions",
        ));
    }

    let code = code::code_text(&item);
    let digest = code::digest(&code);
    let version = code::version(&digest);
    let explicit_name = args.name.is_some();
    let name = args
        .name
        .as_ref()
        .map(LitStr::value)
        .unwrap_or_else(|| item.sig.ident.to_string());

    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = item;

    // Inputs: names, capture expressions, and `let` rebinding for non-identifier patterns.
    let mut captures = Vec::new();
    let mut rebinds = Vec::new();
    let mut arg_names: Vec<String> = Vec::new();
    let mut has_receiver = false;
    for (i, arg) in sig.inputs.iter_mut().enumerate() {
        match arg {
            FnArg::Receiver(r) => {
                has_receiver = true;
                arg_names.push("self".into());
                let expr = if r.reference.is_some() || r.colon_token.is_some() {
                    quote!(&*self)
                } else {
                    quote!(&self)
                };
                captures.push(("self".to_string(), expr, r.self_token.span()));
            }
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) if pi.subpat.is_none() => {
                    let ident = &pi.ident;
                    let n = ident.to_string();
                    let n = n.strip_prefix("r#").unwrap_or(&n).to_string();
                    arg_names.push(n.clone());
                    captures.push((n, quote!(&#ident), ident.span()));
                }
                other => {
                    let new = format_ident!("__weave_arg{}", i);
                    let pat = other.clone();
                    rebinds.push(quote!(let #pat = #new;));
                    let n = format!("arg{i}");
                    arg_names.push(n.clone());
                    captures.push((n, quote!(&#new), other.span()));
                    *pt.pat = syn::parse_quote!(#new);
                }
            },
        }
    }
    for s in &args.skip {
        let s_str = s.to_string();
        let s_str = s_str.strip_prefix("r#").unwrap_or(&s_str);
        if !arg_names.iter().any(|n| n == s_str) {
            return Err(syn::Error::new(
                s.span(),
                format!(
                    "`skip({s})` names no argument of `{}`; arguments are: {}",
                    sig.ident,
                    if arg_names.is_empty() {
                        "(none)".to_string()
                    } else {
                        arg_names.join(", ")
                    }
                ),
            ));
        }
    }
    let captured: Vec<TokenStream> = captures
        .iter()
        .filter(|(n, _, _)| !args.skip_all && !args.skip.iter().any(|s| s == n))
        .map(|(n, expr, span)| {
            quote_spanned! {*span=>
                __weave_inputs.push(#n, (&&&&::weave::__private::capture::Wrap(#expr)).__weave_capture());
            }
        })
        .collect();

    let self_type = if has_receiver {
        quote!(::core::option::Option::Some(
            ::core::any::type_name::<Self>()
        ))
    } else {
        quote!(::core::option::Option::None)
    };

    // Whether the output is a `Result` is decided by the type system (`SplitResult`), so an
    // alias such as `type Fallible<T> = Result<T, E>` is recognised and a type of the user's
    // own named `Result` is not.
    let output_capture = quote! {
        |__weave_out| {
            #[allow(unused_imports)]
            use ::weave::__private::capture::{CaptureModel as _, CaptureSerialize as _, CaptureDebug as _, CaptureAny as _, ErrError as _, ErrDisplay as _, ErrDebug as _, ErrAny as _, SplitResult as _, SplitValue as _};
            match (&&::weave::__private::capture::Wrap(__weave_out)).__weave_split() {
                ::core::result::Result::Ok(__weave_v) => ::weave::__private::Outcome::ok(
                    (&&&&::weave::__private::capture::Wrap(__weave_v)).__weave_capture()),
                ::core::result::Result::Err(__weave_e) => ::weave::__private::Outcome::err(
                    (&&&&::weave::__private::capture::Wrap(__weave_e)).__weave_error()),
            }
        }
    };

    let ret_ty = match &sig.output {
        ReturnType::Type(_, ty) => quote!(#ty),
        ReturnType::Default => quote!(()),
    };
    let impl_trait = is_impl_trait(&sig.output);

    let prelude = quote! {
        static __WEAVE_OP: ::weave::__private::OpInfo = ::weave::__private::OpInfo {
            name: #name,
            explicit_name: #explicit_name,
            digest: #digest,
            version: #version,
            code: #code,
            module_path: ::core::module_path!(),
            file: ::core::file!(),
            line: ::core::line!(),
        };
        ::weave::__private::inventory::submit! {
            ::weave::__private::RegisteredOp(&__WEAVE_OP)
        }
    };
    let start_inputs = quote! {
        |__weave_inputs: &mut ::weave::__private::Inputs| {
            #[allow(unused_imports)]
            use ::weave::__private::capture::{CaptureModel as _, CaptureSerialize as _, CaptureDebug as _, CaptureAny as _};
            #(#captured)*
        }
    };

    let body = if sig.asyncness.is_some() {
        let fake_return = if impl_trait {
            quote!()
        } else {
            quote! {
                #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return)]
                if false {
                    let __weave_fake: #ret_ty = loop {};
                    return __weave_fake;
                }
            }
        };
        quote! {
            #prelude
            let __weave_call = ::weave::__private::start_async_call(&__WEAVE_OP, #self_type, #start_inputs);
            let __weave_fut = async move {
                #fake_return
                #(#rebinds)*
                #block
            };
            match __weave_call {
                ::core::option::Option::None => __weave_fut.await,
                ::core::option::Option::Some(__weave_call) => __weave_call.run(__weave_fut, #output_capture).await,
            }
        }
    } else {
        let annot = if impl_trait {
            quote!()
        } else {
            quote!(-> #ret_ty)
        };
        quote! {
            #prelude
            let __weave_call = ::weave::__private::start_call(&__WEAVE_OP, #self_type, #start_inputs);
            #[allow(clippy::redundant_closure_call, unused_mut)]
            let mut __weave_body = move || #annot {
                #(#rebinds)*
                #block
            };
            match __weave_call {
                ::core::option::Option::None => __weave_body(),
                ::core::option::Option::Some(__weave_call) => __weave_call.run(__weave_body, #output_capture),
            }
        }
    };

    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}
