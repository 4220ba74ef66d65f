//! `#[weave::op]`: parses the arguments, then wraps the function body so that each call is
//! recorded through `::weave::__private`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Token, Type};

use crate::code;

/// `display_name = ...`: a string, or a function computing it from the inputs.
enum DisplayNameArg {
    Static(LitStr),
    Computed(syn::Path),
}

/// Parsed `#[weave::op(...)]` arguments.
#[derive(Default)]
pub(crate) struct OpArgs {
    pub(crate) name: Option<LitStr>,
    skip: Vec<Ident>,
    skip_all: bool,
    display_name: Option<DisplayNameArg>,
    postprocess_inputs: Option<syn::Path>,
    postprocess_output: Option<syn::Path>,
    serialize: Vec<Ident>,
    seen_serialize: bool,
}

/// Parses `= path::to::function` for a hook option.
fn parse_fn_path(input: ParseStream, key: &Ident) -> syn::Result<syn::Path> {
    input.parse::<Token![=]>()?;
    if input.peek(syn::Lit) {
        let lit: syn::Lit = input.parse()?;
        return Err(syn::Error::new(
            lit.span(),
            format!("expected a function path: `{key} = my_function`"),
        ));
    }
    input.parse()
}

/// Parses `(a, b, ...)` argument names.
fn parse_names(input: ParseStream) -> syn::Result<Vec<Ident>> {
    let content;
    syn::parenthesized!(content in input);
    let names: Punctuated<Ident, Token![,]> =
        content.parse_terminated(syn::ext::IdentExt::parse_any, Token![,])?;
    Ok(names.into_iter().collect())
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
                "display_name" => {
                    if args.display_name.is_some() {
                        return Err(syn::Error::new(
                            key.span(),
                            "duplicate `display_name` argument",
                        ));
                    }
                    input.parse::<Token![=]>()?;
                    args.display_name = Some(if input.peek(syn::Lit) {
                        match input.parse::<syn::Lit>()? {
                            syn::Lit::Str(s) if !s.value().trim().is_empty() => {
                                DisplayNameArg::Static(s)
                            }
                            syn::Lit::Str(s) => {
                                return Err(syn::Error::new(
                                    s.span(),
                                    "display name must not be empty",
                                ))
                            }
                            other => {
                                return Err(syn::Error::new(
                                    other.span(),
                                    "expected a string literal or a function path: \
                                     `display_name = \"...\"` or `display_name = my_function`",
                                ))
                            }
                        }
                    } else {
                        DisplayNameArg::Computed(input.parse()?)
                    });
                }
                "postprocess_inputs" | "postprocess_output" => {
                    let slot = if key == "postprocess_inputs" {
                        &mut args.postprocess_inputs
                    } else {
                        &mut args.postprocess_output
                    };
                    if slot.is_some() {
                        return Err(syn::Error::new(
                            key.span(),
                            format!("duplicate `{key}` argument"),
                        ));
                    }
                    *slot = Some(parse_fn_path(input, &key)?);
                }
                "serialize" => {
                    if args.seen_serialize {
                        return Err(syn::Error::new(
                            key.span(),
                            "duplicate `serialize` argument",
                        ));
                    }
                    args.seen_serialize = true;
                    args.serialize = parse_names(input)?;
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown weave::op option `{key}`; expected `name = \"...\"`, \
                             `skip(...)`, `skip_all`, `serialize(...)`, `display_name = ...`, \
                             `postprocess_inputs = ...` or `postprocess_output = ...`"
                        ),
                    ))
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        for s in &args.serialize {
            if args.skip_all || args.skip.contains(s) {
                return Err(syn::Error::new(
                    s.span(),
                    format!("`serialize({s})` names an argument that is not recorded (skipped)"),
                ));
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

/// For `serialize(args)`: makes each named argument's type `Serialize` where only its
/// declared bounds decide: `impl Trait` gets `+ Serialize`, a type mentioning a generic
/// parameter (or `self`) gets a `where` bound (on the referenced type for `&T`). Concrete
/// types need nothing: capturing them requires `Serialize` already.
fn add_serialize_bounds(sig: &mut syn::Signature, names: &[String]) -> syn::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let params: Vec<String> = sig
        .generics
        .type_params()
        .map(|p| p.ident.to_string())
        .collect();
    let mentions_param = |ty: &Type| {
        let mut found = false;
        ty.to_token_stream().into_iter().for_each(|t| {
            if let proc_macro2::TokenTree::Ident(i) = &t {
                let s = i.to_string();
                found |= s == "Self" || params.contains(&s);
            }
        });
        found
    };
    let serde = quote!(::weave::__private::Serialize);
    let mut predicates: Vec<syn::WherePredicate> = Vec::new();
    for arg in names {
        for input in sig.inputs.iter_mut() {
            match input {
                FnArg::Receiver(_) if arg == "self" => {
                    predicates.push(syn::parse_quote!(Self: #serde));
                }
                FnArg::Typed(pt) => {
                    let matches = matches!(&*pt.pat, Pat::Ident(pi) if {
                        let n = pi.ident.to_string();
                        n.strip_prefix("r#").unwrap_or(&n) == arg
                    });
                    if !matches {
                        continue;
                    }
                    let mut ty: &mut Type = &mut pt.ty;
                    let mut behind_ref = false;
                    while let Type::Reference(r) = ty {
                        ty = &mut r.elem;
                        behind_ref = true;
                    }
                    match ty {
                        Type::ImplTrait(it) => {
                            it.bounds.push(syn::parse_quote!(#serde));
                            if behind_ref {
                                // `&impl A + B` is ambiguous: `&(impl A + B)`.
                                let inner = ty.clone();
                                *ty = syn::parse_quote!((#inner));
                            }
                        }
                        other if contains_impl_trait(other) => {
                            return Err(syn::Error::new(
                                other.span(),
                                "`serialize(...)` cannot add `Serialize` to an `impl Trait` \
                                 nested in this type; add `+ serde::Serialize` to its bounds",
                            ))
                        }
                        Type::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                            let name = p.path.get_ident().map(Ident::to_string);
                            match sig
                                .generics
                                .type_params_mut()
                                .find(|tp| Some(tp.ident.to_string()) == name)
                            {
                                // `T` declared here: the bound goes with its others.
                                Some(tp) => tp.bounds.push(syn::parse_quote!(#serde)),
                                None if mentions_param(ty) => {
                                    predicates.push(syn::parse_quote!(#ty: #serde))
                                }
                                None => {}
                            }
                        }
                        other if mentions_param(other) => {
                            predicates.push(syn::parse_quote!(#other: #serde));
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }
    if !predicates.is_empty() {
        sig.generics
            .make_where_clause()
            .predicates
            .extend(predicates);
    }
    Ok(())
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
    for s in args.skip.iter().chain(&args.serialize) {
        let s_str = s.to_string();
        let s_str = s_str.strip_prefix("r#").unwrap_or(&s_str);
        if !arg_names.iter().any(|n| n == s_str) {
            return Err(syn::Error::new(
                s.span(),
                format!(
                    "`{}({s})` names no argument of `{}`; arguments are: {}",
                    if args.skip.contains(s) {
                        "skip"
                    } else {
                        "serialize"
                    },
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
    let serialized: Vec<String> = args
        .serialize
        .iter()
        .map(|s| {
            let s = s.to_string();
            s.strip_prefix("r#").unwrap_or(&s).to_string()
        })
        .collect();
    add_serialize_bounds(&mut sig, &serialized)?;
    let captured: Vec<TokenStream> = captures
        .iter()
        .filter(|(n, _, _)| !args.skip_all && !args.skip.iter().any(|s| s == n))
        .map(|(n, expr, span)| {
            if serialized.contains(n) {
                quote_spanned! {*span=>
                    __weave_inputs.push(#n, ::weave::__private::capture::serialize(#expr));
                }
            } else {
                quote_spanned! {*span=>
                    __weave_inputs.push(#n, (&&&&::weave::__private::capture::Wrap(#expr)).__weave_capture());
                }
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

    // `postprocess_output = f`: `f(&value)` (the `Ok` value of a `Result`) is recorded instead.
    let postprocess_output = match &args.postprocess_output {
        Some(path) => quote_spanned! {path.span()=>
            let __weave_post = #path(__weave_v);
            let __weave_v = &__weave_post;
        },
        None => quote!(),
    };
    // Whether the output is a `Result` is decided by the type system (`SplitResult`), so an
    // alias such as `type Fallible<T> = Result<T, E>` is recognised and a type of the user's
    // own named `Result` is not.
    let output_capture = quote! {
        |__weave_out| {
            #[allow(unused_imports)]
            use ::weave::__private::capture::{CaptureModel as _, CaptureSerialize as _, CaptureDebug as _, CaptureAny as _, ErrError as _, ErrDisplay as _, ErrDebug as _, ErrAny as _, SplitResult as _, SplitValue as _};
            match (&&::weave::__private::capture::Wrap(__weave_out)).__weave_split() {
                ::core::result::Result::Ok(__weave_v) => {
                    #postprocess_output
                    ::weave::__private::Outcome::ok(
                        (&&&&::weave::__private::capture::Wrap(__weave_v)).__weave_capture())
                }
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

    // `display_name` / `postprocess_inputs`: the call starts through `start_*_with`.
    let hooks = if args.display_name.is_some() || args.postprocess_inputs.is_some() {
        let display_name = match &args.display_name {
            None => quote!(::core::option::Option::None),
            Some(DisplayNameArg::Static(lit)) => quote! {
                ::core::option::Option::Some(::weave::__private::DisplayName::Static(#lit))
            },
            Some(DisplayNameArg::Computed(path)) => quote_spanned! {path.span()=>
                ::core::option::Option::Some(::weave::__private::DisplayName::Computed(#path))
            },
        };
        let post = match &args.postprocess_inputs {
            None => quote!(::core::option::Option::None),
            Some(path) => quote_spanned! {path.span()=> ::core::option::Option::Some(#path)},
        };
        Some(quote! {
            ::weave::__private::OpHooks {
                display_name: #display_name,
                postprocess_inputs: #post,
            }
        })
    } else {
        None
    };
    let (start_sync, start_async) = match &hooks {
        None => (
            quote!(::weave::__private::start_call(&__WEAVE_OP, #self_type, #start_inputs)),
            quote!(::weave::__private::start_async_call(&__WEAVE_OP, #self_type, #start_inputs)),
        ),
        Some(h) => (
            quote!(::weave::__private::start_call_with(&__WEAVE_OP, &#h, #self_type, #start_inputs)),
            quote!(::weave::__private::start_async_call_with(&__WEAVE_OP, &#h, #self_type, #start_inputs)),
        ),
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
            let __weave_call = #start_async;
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
            let __weave_call = #start_sync;
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
