//! The code text and version digest of an op, computed identically by `#[op]` and `#[ops]`.

/// Pretty-printed source of the function, as stored with the op object.
pub(crate) fn code_text(item: &syn::ItemFn) -> String {
    let file = syn::File {
        shebang: None,
        attrs: Vec::new(),
        items: vec![syn::Item::Fn(item.clone())],
    };
    prettyplease::unparse(&file)
}

/// The digest of the op's code: Weave's file digest of its text (the same function the
/// runtime and the store use).
pub(crate) fn digest(text: &str) -> String {
    weave_types::digest::digest_str(text)
}

/// The op's version digest: Weave's object digest of the op value naming the code file (the
/// same function the runtime uses when it publishes the op).
pub(crate) fn version(code_digest: &str) -> String {
    weave_types::obj::rust_op_version(code_digest)
}

/// True for attributes that are `#[op]`, `#[weave::op]` or `#[::weave::op]`, with or
/// without arguments.
pub(crate) fn is_op_attr(attr: &syn::Attribute) -> bool {
    let path = attr.path();
    let segs: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    matches!(
        segs.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["op"] | ["weave", "op"]
    )
}
