//! What both stores check before they write an object version or a table: the project, the
//! object name or the rows' shape, and the digest the writer expected against the one the
//! store computes.

use weave_types::{ObjSchemaForInsert, TableSchemaForInsert};

use crate::error::{Result, StoreError};

/// Checks an object version to insert; its digest (Weave's object digest of `val`).
pub(crate) fn object_digest(o: &ObjSchemaForInsert, at: &str) -> Result<String> {
    crate::sqlite::check_project(&o.project_id, &format!("{at}.project_id"))?;
    if !weave_types::refs::is_valid_object_name(&o.object_id) {
        return Err(StoreError::invalid(
            format!("{at}.object_id"),
            format!(
                "`{}`: object names are 1 to 128 letters, digits, `_`, `.` or `-`",
                o.object_id
            ),
        ));
    }
    let digest = weave_types::digest::object_digest(&o.val);
    expect(o.expected_digest.as_ref(), digest)
}

/// Checks a table to insert; its rows' digests and its digest.
pub(crate) fn table_digests(t: &TableSchemaForInsert, at: &str) -> Result<(Vec<String>, String)> {
    crate::sqlite::check_project(&t.project_id, &format!("{at}.project_id"))?;
    for (i, r) in t.rows.iter().enumerate() {
        if !r.is_object() {
            return Err(StoreError::invalid(
                format!("{at}.rows[{i}]"),
                "table rows must be JSON objects",
            ));
        }
    }
    let row_digests: Vec<String> = t.rows.iter().map(weave_types::digest::row_digest).collect();
    let digest = expect(
        t.expected_digest.as_ref(),
        weave_types::digest::table_digest(&row_digests),
    )?;
    Ok((row_digests, digest))
}

/// `digest`, unless the writer expected another.
fn expect(expected: Option<&String>, digest: String) -> Result<String> {
    match expected {
        Some(e) if *e != digest => Err(StoreError::DigestMismatch {
            expected: e.clone(),
            actual: digest,
        }),
        _ => Ok(digest),
    }
}
