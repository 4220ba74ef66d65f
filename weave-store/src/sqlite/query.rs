//! Weave's `$expr` queries, filters and sort keys compiled to SQLite SQL. Every value is a
//! bound parameter; field names are checked against a table's allow-list and dotted paths
//! against a small grammar, so no request text reaches the SQL.

use rusqlite::types::Value as SqlValue;
use serde_json::Value;
use weave_types::query::{CastTo, Expr, SortBy, SortDirection};

use crate::error::{Result, StoreError};

/// SQL text under construction with its numbered parameters.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) params: Vec<SqlValue>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter, returning its placeholder (`?N`).
    pub(crate) fn param(&mut self, v: impl Into<SqlValue>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    /// Appends text.
    pub(crate) fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Appends ` AND <col> IN (<values>)` with the values as one JSON-array parameter.
    pub(crate) fn and_in(&mut self, col: &str, values: &[String]) {
        let p = self.param(serde_json::to_string(values).unwrap_or_else(|_| "[]".into()));
        self.text
            .push_str(&format!(" AND {col} IN (SELECT value FROM json_each({p}))"));
    }
}

/// A JSON literal as an SQL value: booleans as 1/0 (as `json_extract` returns them),
/// objects and arrays as their JSON text.
pub(crate) fn literal(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(*b as i64),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

/// Where query fields come from: maps a `$getField` path to an SQL expression.
pub(crate) trait Fields {
    /// The SQL expression for `path`, or an `InvalidRequest` naming it.
    fn field(&self, path: &str, sql: &mut Sql, at: &str) -> Result<String>;
}

/// Checks a dotted path's segments and returns the SQLite JSON path (`$."a"."b"`).
pub(crate) fn json_path(segments: &[&str], full: &str, at: &str) -> Result<String> {
    let mut p = String::from("$");
    for s in segments {
        let ok = !s.is_empty()
            && s.len() <= 256
            && !s.chars().any(|c| c == '"' || c == '\\' || c.is_control());
        if !ok {
            return Err(StoreError::invalid(
                at,
                format!(
                    "field `{full}`: path segments must be non-empty and hold no quotes, \
                     backslashes or control characters"
                ),
            ));
        }
        p.push_str(&format!(".\"{s}\""));
    }
    Ok(p)
}

/// Compiles a query expression.
pub(crate) fn compile(expr: &Expr, f: &dyn Fields, sql: &mut Sql, at: &str) -> Result<String> {
    let bin = |op: &str, a: &Expr, b: &Expr, sql: &mut Sql| -> Result<String> {
        let a = compile(a, f, sql, at)?;
        let b = compile(b, f, sql, at)?;
        Ok(format!("(({a}) {op} ({b}))"))
    };
    Ok(match expr {
        Expr::And(items) | Expr::Or(items) => {
            let is_and = matches!(expr, Expr::And(_));
            if items.is_empty() {
                return Ok(if is_and { "1" } else { "0" }.into());
            }
            let parts = items
                .iter()
                .map(|e| compile(e, f, sql, at))
                .collect::<Result<Vec<_>>>()?;
            format!("({})", parts.join(if is_and { " AND " } else { " OR " }))
        }
        Expr::Not((x,)) => format!("(NOT ({}))", compile(x, f, sql, at)?),
        Expr::Eq(ab) => bin("IS", &ab.0, &ab.1, sql)?,
        Expr::Gt(ab) => bin(">", &ab.0, &ab.1, sql)?,
        Expr::Gte(ab) => bin(">=", &ab.0, &ab.1, sql)?,
        Expr::Lt(ab) => bin("<", &ab.0, &ab.1, sql)?,
        Expr::Lte(ab) => bin("<=", &ab.0, &ab.1, sql)?,
        Expr::In(b) => {
            let (a, list) = &**b;
            if list.is_empty() {
                return Ok("0".into());
            }
            let a = compile(a, f, sql, at)?;
            let items = list
                .iter()
                .map(|e| compile(e, f, sql, at))
                .collect::<Result<Vec<_>>>()?;
            format!("(({a}) IN ({}))", items.join(", "))
        }
        Expr::Contains(c) => {
            let a = compile(&c.input, f, sql, at)?;
            let b = compile(&c.substr, f, sql, at)?;
            if c.case_insensitive {
                format!("(instr(lower(CAST(({a}) AS TEXT)), lower(CAST(({b}) AS TEXT))) > 0)")
            } else {
                format!("(instr(CAST(({a}) AS TEXT), CAST(({b}) AS TEXT)) > 0)")
            }
        }
        Expr::Literal(v) => sql.param(literal(v)),
        Expr::GetField(path) => f.field(path, sql, at)?,
        Expr::Convert(c) => {
            let a = compile(&c.input, f, sql, at)?;
            match c.to {
                CastTo::Double => format!("CAST(({a}) AS REAL)"),
                CastTo::Int => format!("CAST(({a}) AS INTEGER)"),
                CastTo::String => format!("CAST(({a}) AS TEXT)"),
                CastTo::Bool => format!(
                    "(CASE WHEN ({a}) IS NULL THEN NULL WHEN ({a}) IN (0, '0', 'false', '') THEN 0 ELSE 1 END)"
                ),
                CastTo::Exists => format!("(({a}) IS NOT NULL)"),
            }
        }
    })
}

/// `ORDER BY ...` for sort keys (empty text for an empty list), with `id` as the last
/// tie-breaker, in the direction of the last key.
pub(crate) fn order_by(sort: &[SortBy], f: &dyn Fields, sql: &mut Sql, at: &str) -> Result<String> {
    if sort.is_empty() {
        return Ok(String::new());
    }
    let mut keys = Vec::new();
    for (i, s) in sort.iter().enumerate() {
        let e = f.field(&s.field, sql, &format!("{at}[{i}].field"))?;
        let dir = match s.direction {
            SortDirection::Asc => "ASC",
            SortDirection::Desc => "DESC",
        };
        keys.push(format!("{e} {dir}"));
    }
    // The tie-breaker runs the way the last key does, so that a descending list is the
    // ascending one reversed.
    if let Some(last) = sort.last().filter(|s| s.field != "id") {
        keys.push(match last.direction {
            SortDirection::Asc => "id ASC".into(),
            SortDirection::Desc => "id DESC".into(),
        });
    }
    Ok(format!(" ORDER BY {}", keys.join(", ")))
}

/// ` LIMIT ?n OFFSET ?m` (an offset without a limit reads to the end).
pub(crate) fn limit_offset(limit: Option<u64>, offset: Option<u64>, sql: &mut Sql) {
    if limit.is_none() && offset.unwrap_or(0) == 0 {
        return;
    }
    let l = sql.param(limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64));
    let o = sql.param(offset.unwrap_or(0).min(i64::MAX as u64) as i64);
    sql.push(&format!(" LIMIT {l} OFFSET {o}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cols;
    impl Fields for Cols {
        fn field(&self, path: &str, sql: &mut Sql, at: &str) -> Result<String> {
            match path {
                "a" | "b" => Ok(path.to_string()),
                p if p.starts_with("j.") => {
                    let segs: Vec<&str> = p[2..].split('.').collect();
                    let jp = json_path(&segs, p, at)?;
                    Ok(format!("json_extract(j, {})", sql.param(jp)))
                }
                other => Err(StoreError::invalid(at, format!("unknown field `{other}`"))),
            }
        }
    }

    fn c(q: serde_json::Value) -> Result<(String, Vec<SqlValue>)> {
        let e: Expr = serde_json::from_value(q).unwrap();
        let mut sql = Sql::default();
        let t = compile(&e, &Cols, &mut sql, "query")?;
        Ok((t, sql.params))
    }

    #[test]
    fn values_are_parameters_and_fields_are_checked() {
        let (t, p) = c(serde_json::json!({"$and": [
            {"$eq": [{"$getField": "a"}, {"$literal": "x'; DROP TABLE calls; --"}]},
            {"$gt": [{"$getField": "j.k.l"}, {"$literal": 3}]},
            {"$in": [{"$getField": "b"}, [{"$literal": true}, {"$literal": null}]]}
        ]}))
        .unwrap();
        assert_eq!(
            t,
            "(((a) IS (?1)) AND ((json_extract(j, ?2)) > (?3)) AND ((b) IN (?4, ?5)))"
        );
        assert_eq!(p[0], SqlValue::Text("x'; DROP TABLE calls; --".into()));
        assert_eq!(p[1], SqlValue::Text("$.\"k\".\"l\"".into()));
        assert_eq!(p[3], SqlValue::Integer(1));
        let e =
            c(serde_json::json!({"$eq": [{"$getField": "nope"}, {"$literal": 1}]})).unwrap_err();
        assert!(e.to_string().contains("unknown field `nope`"), "{e}");
        let e =
            c(serde_json::json!({"$eq": [{"$getField": "j.a\"b"}, {"$literal": 1}]})).unwrap_err();
        assert!(e.to_string().contains("quotes"), "{e}");
    }
}
