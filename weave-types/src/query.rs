//! Weave's Mongo-style query language (`{"$expr": ...}`) as a typed tree, and sorting.
//!
//! ```
//! # use weave_types::query::{Expr, Query};
//! let q: Query = serde_json::from_str(
//!     r#"{"$expr": {"$contains": {"input": {"$getField": "op_name"}, "substr": {"$literal": "predict"}}}}"#,
//! ).unwrap();
//! assert!(matches!(q.expr, Expr::Contains(_)));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A query: one boolean expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// The expression.
    #[serde(rename = "$expr")]
    pub expr: Expr,
}

/// One node of a query: an operation or an operand. Each is a JSON object with one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// All of them.
    #[serde(rename = "$and")]
    And(Vec<Expr>),
    /// Any of them.
    #[serde(rename = "$or")]
    Or(Vec<Expr>),
    /// Negation: `{"$not": [x]}`.
    #[serde(rename = "$not")]
    Not((Box<Expr>,)),
    /// Equality: `{"$eq": [a, b]}`.
    #[serde(rename = "$eq")]
    Eq(Box<(Expr, Expr)>),
    /// `a > b`.
    #[serde(rename = "$gt")]
    Gt(Box<(Expr, Expr)>),
    /// `a >= b`.
    #[serde(rename = "$gte")]
    Gte(Box<(Expr, Expr)>),
    /// `a < b`.
    #[serde(rename = "$lt")]
    Lt(Box<(Expr, Expr)>),
    /// `a <= b`.
    #[serde(rename = "$lte")]
    Lte(Box<(Expr, Expr)>),
    /// Membership: `{"$in": [a, [b, c]]}`.
    #[serde(rename = "$in")]
    In(Box<(Expr, Vec<Expr>)>),
    /// Substring test.
    #[serde(rename = "$contains")]
    Contains(Box<Contains>),
    /// A constant.
    #[serde(rename = "$literal")]
    Literal(Value),
    /// A column or a dotted path into one (`inputs.x.y`, `summary.weave.status`).
    #[serde(rename = "$getField")]
    GetField(String),
    /// A type conversion.
    #[serde(rename = "$convert")]
    Convert(Box<Convert>),
}

/// `{"$contains": {"input": a, "substr": b, "case_insensitive": false}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contains {
    /// The text searched.
    pub input: Expr,
    /// The text searched for.
    pub substr: Expr,
    /// Ignore case.
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    pub case_insensitive: bool,
}

/// `{"$convert": {"input": a, "to": "double"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Convert {
    /// The value converted.
    pub input: Expr,
    /// The target type.
    pub to: CastTo,
}

/// Target of a `$convert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CastTo {
    /// A floating-point number.
    Double,
    /// Text.
    String,
    /// An integer.
    Int,
    /// A boolean.
    Bool,
    /// Whether the value is present (not null).
    Exists,
}

impl Expr {
    /// `{"$getField": path}`.
    pub fn field(path: impl Into<String>) -> Expr {
        Expr::GetField(path.into())
    }
    /// `{"$literal": value}`.
    pub fn literal(value: impl Into<Value>) -> Expr {
        Expr::Literal(value.into())
    }
    /// `{"$eq": [a, b]}`.
    pub fn eq(a: Expr, b: Expr) -> Expr {
        Expr::Eq(Box::new((a, b)))
    }
    /// `{"$gte": [a, b]}`.
    pub fn gte(a: Expr, b: Expr) -> Expr {
        Expr::Gte(Box::new((a, b)))
    }
    /// `{"$not": [x]}`.
    pub fn negate(x: Expr) -> Expr {
        Expr::Not((Box::new(x),))
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortDirection {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// One sort key: a column or dotted path, and a direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortBy {
    /// Column or dotted path (`started_at`, `summary.weave.latency_ms`, `inputs.x`).
    pub field: String,
    /// Direction.
    #[serde(default)]
    pub direction: SortDirection,
}

impl SortBy {
    /// Ascending on `field`.
    pub fn asc(field: impl Into<String>) -> SortBy {
        SortBy {
            field: field.into(),
            direction: SortDirection::Asc,
        }
    }
    /// Descending on `field`.
    pub fn desc(field: impl Into<String>) -> SortBy {
        SortBy {
            field: field.into(),
            direction: SortDirection::Desc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_operator_round_trips() {
        let q = json!({"$expr": {"$and": [
            {"$or": [
                {"$eq": [{"$getField": "summary.weave.status"}, {"$literal": "error"}]},
                {"$not": [{"$gt": [{"$getField": "summary.weave.latency_ms"}, {"$literal": 10}]}]}
            ]},
            {"$gte": [{"$convert": {"input": {"$getField": "inputs.n"}, "to": "double"}}, {"$literal": 1.5}]},
            {"$lt": [{"$getField": "started_at"}, {"$literal": "2030-01-01"}]},
            {"$lte": [{"$literal": 1}, {"$literal": 2}]},
            {"$in": [{"$getField": "op_name"}, [{"$literal": "a"}, {"$literal": "b"}]]},
            {"$contains": {"input": {"$getField": "output"}, "substr": {"$literal": "x"}, "case_insensitive": true}}
        ]}});
        let parsed: Query = serde_json::from_value(q.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), q);
    }

    #[test]
    fn unknown_operators_are_named() {
        let e = serde_json::from_value::<Query>(json!({"$expr": {"$regex": ["a", "b"]}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("$regex"), "{e}");
        let c: Query = serde_json::from_value(json!({"$expr": {"$contains": {"input": {"$literal": "a"}, "substr": {"$literal": "b"}, "case_insensitive": null}}})).unwrap();
        assert!(matches!(c.expr, Expr::Contains(ref c) if !c.case_insensitive));
    }
}
