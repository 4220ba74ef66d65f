//! Reading the value a ref points at (`refs/read_batch`): what every store does the same way
//! around its own reads of objects and table rows. A walk starts at an object or op version,
//! then takes the ref's extra path one step at a time; a ref met on the way is followed (an
//! object or op ref read whole, a table ref kept for the next `id` step), at most
//! [`MAX_DEPTH`] refs deep, so a stored ref that leads back to itself is a clear error.

use serde_json::Value;
use weave_types::refs::{Edge, RefKind, WeaveRef};

use crate::error::{Result, StoreError};

/// How deep refs met along a path may nest.
pub(crate) const MAX_DEPTH: usize = 32;

/// `uri` parsed as a ref a client may read (an object or op version), `depth` refs deep.
pub(crate) fn readable(uri: &str, field: &str, depth: usize) -> Result<WeaveRef> {
    if depth > MAX_DEPTH {
        return Err(StoreError::invalid(
            field,
            format!("`{uri}`: refs nest more than {MAX_DEPTH} deep"),
        ));
    }
    let r = WeaveRef::parse(uri).map_err(|e| StoreError::invalid(field, e.to_string()))?;
    if !matches!(r.kind, RefKind::Object | RefKind::Op) {
        return Err(StoreError::invalid(
            field,
            format!(
                "`{uri}`: only object and op refs can be read (not {} refs)",
                r.kind.as_str()
            ),
        ));
    }
    Ok(r)
}

/// A value met on the path, before the next step.
pub(crate) enum Met {
    /// An object or op ref: the step applies to its value.
    Ref(String),
    /// A table ref (project, digest): the next step picks one of its rows by digest.
    Table(String, String),
    /// Anything else.
    Value,
}

/// What `cur` is.
pub(crate) fn met(cur: &Value, field: &str) -> Result<Met> {
    match cur {
        Value::String(s) if s.starts_with(weave_types::refs::REF_SCHEME) => {
            let r = WeaveRef::parse(s).map_err(|e| StoreError::invalid(field, e.to_string()))?;
            Ok(if r.kind == RefKind::Table {
                Met::Table(r.project_id(), r.digest.clone())
            } else {
                Met::Ref(r.to_string())
            })
        }
        _ => Ok(Met::Value),
    }
}

/// Step `i` (0-based) of `uri`'s extra path found nothing.
pub(crate) fn missing(uri: &str, i: usize, edge: &Edge, key: &str) -> StoreError {
    StoreError::not_found(format!(
        "`{uri}`: step {} ({}/{key}) of the extra path",
        i + 1,
        edge.as_str()
    ))
}

/// An `attr`, `key` or `index` step into `cur` (an `id` step reads the store instead).
pub(crate) fn step_into(
    cur: &Value,
    (edge, key): (&Edge, &str),
    uri: &str,
    i: usize,
    field: &str,
) -> Result<Value> {
    let found = match edge {
        Edge::Index => {
            let idx: usize = key.parse().map_err(|_| {
                StoreError::invalid(field, format!("`{uri}`: index `{key}` is not a number"))
            })?;
            cur.get(idx)
        }
        _ => cur.get(key),
    };
    found.cloned().ok_or_else(|| missing(uri, i, edge, key))
}
