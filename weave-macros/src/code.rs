//! The code text and version digest of an op, computed identically by `#[op]` and `#[ops]`.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// Pretty-printed source of the function, as stored with the op object.
pub(crate) fn code_text(item: &syn::ItemFn) -> String {
    let file = syn::File {
        shebang: None,
        attrs: Vec::new(),
        items: vec![syn::Item::Fn(item.clone())],
    };
    prettyplease::unparse(&file)
}

/// Weave's digest encoding of a sha256: URL-safe base64 without padding, `-`->`X`, `_`->`Y`.
pub(crate) fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(hash)
        .replace('-', "X")
        .replace('_', "Y")
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
