//! Tables on the wire (spec §10): rows stored by digest, a table is its list of row digests.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::query::SortBy;

/// A table to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableSchemaForInsert {
    /// `entity/project`.
    pub project_id: String,
    /// Rows; each must be a JSON object.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub rows: Vec<Value>,
    /// When given, the server's digest must equal it.
    #[serde(default)]
    pub expected_digest: Option<String>,
}

/// `POST /table/create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableCreateReq {
    /// The table.
    pub table: TableSchemaForInsert,
}

/// Answer to [`TableCreateReq`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCreateRes {
    /// Table digest (hex).
    pub digest: String,
    /// Row digests, in row order.
    pub row_digests: Vec<String>,
}

/// Which rows `table/query` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRowFilter {
    /// Only rows with these digests.
    #[serde(default)]
    pub row_digests: Option<Vec<String>>,
}

/// `POST /table/query`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableQueryReq {
    /// `entity/project`.
    pub project_id: String,
    /// Table digest.
    pub digest: String,
    /// Filter.
    #[serde(default)]
    pub filter: Option<TableRowFilter>,
    /// At most this many.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Skip this many.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Accepted; rows come in table order (sorting by row content is not implemented).
    #[serde(default)]
    pub sort_by: Option<Vec<SortBy>>,
}

/// One row of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRowSchema {
    /// Row digest.
    pub digest: String,
    /// The row.
    pub val: Value,
    /// 0-based position in the table.
    #[serde(default)]
    pub original_index: Option<u64>,
}

/// Answer to [`TableQueryReq`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableQueryRes {
    /// Rows in table order.
    pub rows: Vec<TableRowSchema>,
}

/// `POST /table/query_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableQueryStatsReq {
    /// `entity/project`.
    pub project_id: String,
    /// Table digest.
    pub digest: String,
}

/// Answer to [`TableQueryStatsReq`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableQueryStatsRes {
    /// Rows in the table.
    pub count: u64,
}

/// `POST /table/create_from_digests`: a table made of rows uploaded earlier (by
/// `table/create` in chunks). The Python client probes it once with no row digests; a 404 means
/// the server does not support it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCreateFromDigestsReq {
    /// `entity/project`.
    pub project_id: String,
    /// Row digests, in table order.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub row_digests: Vec<String>,
    /// When given, the server's digest must equal it.
    #[serde(default)]
    pub expected_digest: Option<String>,
}

/// Answer to [`TableCreateFromDigestsReq`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCreateFromDigestsRes {
    /// Table digest (hex).
    pub digest: String,
}

/// One change of `table/update`, applied in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableUpdateSpec {
    /// Adds a row at the end.
    Append {
        /// The row (a JSON object).
        row: Value,
    },
    /// Inserts a row before position `index` (`index` = the length appends).
    Insert {
        /// 0-based position.
        index: u64,
        /// The row (a JSON object).
        row: Value,
    },
    /// Removes the row at position `index`.
    Pop {
        /// 0-based position.
        index: u64,
    },
}

/// `POST /table/update`: a new table made from `base_digest`'s rows with `updates` applied
/// (tables are immutable; the base stays).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableUpdateReq {
    /// `entity/project`.
    pub project_id: String,
    /// The table to start from.
    pub base_digest: String,
    /// Changes, applied in order.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub updates: Vec<TableUpdateSpec>,
}

/// Answer to [`TableUpdateReq`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableUpdateRes {
    /// The new table's digest.
    pub digest: String,
    /// Digests of the appended and inserted rows, in the order of `updates`.
    pub updated_row_digests: Vec<String>,
}
