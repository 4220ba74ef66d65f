//! `table/update`'s edits (append, insert, pop) applied to a table's rows, for every store.

use serde_json::Value;
use weave_types::TableUpdateSpec;

use crate::error::{Result, StoreError};

/// Applies `updates` in order to `rows`; returns the new rows and the digests of the appended
/// and inserted rows, in the order of `updates`. An index past the end or a row that is not a
/// JSON object is an invalid request naming the update.
pub(crate) fn apply(
    mut rows: Vec<Value>,
    updates: Vec<TableUpdateSpec>,
) -> Result<(Vec<Value>, Vec<String>)> {
    let mut added = Vec::new();
    for (i, u) in updates.into_iter().enumerate() {
        let object = |row: &Value, kind: &str| {
            if row.is_object() {
                Ok(())
            } else {
                Err(StoreError::invalid(
                    format!("updates[{i}].{kind}.row"),
                    "table rows must be JSON objects",
                ))
            }
        };
        let index = |index: u64, len: usize, kind: &str| {
            usize::try_from(index)
                .ok()
                .filter(|&x| x <= len)
                .ok_or_else(|| {
                    StoreError::invalid(
                        format!("updates[{i}].{kind}.index"),
                        format!("{index} is out of range for a table of {len} rows"),
                    )
                })
        };
        match u {
            TableUpdateSpec::Append { row } => {
                object(&row, "append")?;
                added.push(weave_types::digest::row_digest(&row));
                rows.push(row);
            }
            TableUpdateSpec::Insert { index: at, row } => {
                object(&row, "insert")?;
                let at = index(at, rows.len(), "insert")?;
                added.push(weave_types::digest::row_digest(&row));
                rows.insert(at, row);
            }
            TableUpdateSpec::Pop { index: at } => {
                let at = index(at, rows.len(), "pop")?;
                if at == rows.len() {
                    return Err(StoreError::invalid(
                        format!("updates[{i}].pop.index"),
                        format!("{at} is out of range for a table of {} rows", rows.len()),
                    ));
                }
                rows.remove(at);
            }
        }
    }
    Ok((rows, added))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(n: u64) -> Vec<Value> {
        (0..n).map(|i| json!({ "i": i })).collect()
    }

    #[test]
    fn edits_apply_in_order() {
        let updates = vec![
            TableUpdateSpec::Append {
                row: json!({"i": 9}),
            },
            TableUpdateSpec::Insert {
                index: 0,
                row: json!({"i": -1}),
            },
            TableUpdateSpec::Pop { index: 2 },
        ];
        let (out, added) = apply(rows(3), updates).unwrap();
        assert_eq!(
            out,
            vec![
                json!({"i": -1}),
                json!({"i": 0}),
                json!({"i": 2}),
                json!({"i": 9})
            ]
        );
        assert_eq!(
            added,
            vec![
                weave_types::digest::row_digest(&json!({"i": 9})),
                weave_types::digest::row_digest(&json!({"i": -1})),
            ]
        );
    }

    #[test]
    fn bad_edits_name_the_update() {
        let e = apply(
            rows(2),
            vec![
                TableUpdateSpec::Append { row: json!({}) },
                TableUpdateSpec::Pop { index: 3 },
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("updates[1].pop.index"), "{e}");
        let e = apply(rows(2), vec![TableUpdateSpec::Pop { index: 2 }]).unwrap_err();
        assert!(
            e.to_string().contains("out of range for a table of 2 rows"),
            "{e}"
        );
        let e = apply(
            rows(2),
            vec![TableUpdateSpec::Insert {
                index: 0,
                row: json!(1),
            }],
        )
        .unwrap_err();
        assert!(e.to_string().contains("updates[0].insert.row"), "{e}");
        // Inserting at the length appends.
        let (out, _) = apply(
            rows(2),
            vec![TableUpdateSpec::Insert {
                index: 2,
                row: json!({"i": 5}),
            }],
        )
        .unwrap();
        assert_eq!(out[2], json!({"i": 5}));
    }
}
