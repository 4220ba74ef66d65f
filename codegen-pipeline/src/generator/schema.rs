//! JSON schemas in OpenAI's strict structured-output subset, generated with `schemars`.
//!
//! Strict mode requires, for every object, all properties to be listed in `required` and
//! `additionalProperties: false`; it does not support many validation keywords. This module
//! inlines every `$ref`, rewrites `oneOf` to `anyOf`, flattens single-element `allOf`, fills in
//! `required`/`additionalProperties` and strips the unsupported keywords (the model output is
//! still checked against the Rust type when it is deserialised).

use schemars::gen::SchemaSettings;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::GeneratorError;

/// Keywords that are removed from every (sub)schema.
const UNSUPPORTED_KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "format",
    "default",
    "examples",
    "readOnly",
    "writeOnly",
    "deprecated",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "contains",
    "minProperties",
    "maxProperties",
    "patternProperties",
    "propertyNames",
];

/// A `response_format` request field asking for JSON that conforms to a strict schema:
/// `{"type": "json_schema", "json_schema": {"name": .., "strict": true, "schema": ..}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ResponseFormat(Value);

impl ResponseFormat {
    /// Builds the response format for `T`'s strict schema under `name` (`[a-zA-Z0-9_-]{1,64}`).
    pub fn json_schema<T: JsonSchema>(name: &str) -> Result<Self, GeneratorError> {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(GeneratorError::Schema(format!(
                "schema name {name:?} must match [a-zA-Z0-9_-]{{1,64}}"
            )));
        }
        Ok(Self(json!({
            "type": "json_schema",
            "json_schema": {
                "name": name,
                "strict": true,
                "schema": strict_schema_for::<T>()?,
            },
        })))
    }

    /// The whole `response_format` value.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The strict schema inside it.
    pub fn schema(&self) -> &Value {
        &self.0["json_schema"]["schema"]
    }
}

/// Generates `T`'s JSON schema with `schemars` and converts it to OpenAI's strict subset
/// (see [`make_strict`]).
pub fn strict_schema_for<T: JsonSchema>() -> Result<Value, GeneratorError> {
    let settings = SchemaSettings::draft07().with(|s| {
        s.option_add_null_type = true;
        s.option_nullable = false;
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let root = settings.into_generator().into_root_schema_for::<T>();
    let value = serde_json::to_value(root)
        .map_err(|e| GeneratorError::Schema(format!("cannot serialise schema: {e}")))?;
    make_strict(value)
}

/// Converts a JSON schema to OpenAI's strict structured-output subset: inlines `$ref`s into
/// `definitions`/`$defs` (recursive types are rejected), removes the root `title`, rewrites
/// `oneOf` to `anyOf`, flattens single-element `allOf`, lists every property in `required`,
/// sets `additionalProperties: false` on every object and strips unsupported keywords.
///
/// The root must be an object schema; free-form maps, `true` schemas and tuple arrays are
/// rejected because strict mode cannot express them.
pub fn make_strict(schema: Value) -> Result<Value, GeneratorError> {
    let Value::Object(mut root) = schema else {
        return Err(GeneratorError::Schema(
            "root schema is not an object".into(),
        ));
    };
    let mut defs = Map::new();
    for key in ["definitions", "$defs"] {
        if let Some(Value::Object(d)) = root.remove(key) {
            defs.extend(d);
        }
    }
    root.remove("title");
    let strict = Strictifier {
        defs: &defs,
        stack: Vec::new(),
    }
    .convert(Value::Object(root), "#")?;
    if strict.get("type") != Some(&Value::String("object".into())) {
        return Err(GeneratorError::Schema(
            "the root schema must be a plain object (`\"type\": \"object\"`)".into(),
        ));
    }
    Ok(strict)
}

struct Strictifier<'a> {
    defs: &'a Map<String, Value>,
    /// Definitions being inlined, to detect recursion.
    stack: Vec<String>,
}

impl Strictifier<'_> {
    fn convert(&mut self, schema: Value, path: &str) -> Result<Value, GeneratorError> {
        let mut obj = match schema {
            Value::Object(obj) => obj,
            Value::Bool(true) => {
                return Err(GeneratorError::Schema(format!(
                    "{path}: unconstrained values (`true` schema) are not supported in strict mode"
                )))
            }
            other => {
                return Err(GeneratorError::Schema(format!(
                    "{path}: expected a schema object, found {other}"
                )))
            }
        };
        for key in UNSUPPORTED_KEYWORDS {
            obj.remove(*key);
        }

        // References and single-element `allOf` are merged into this schema; this schema's
        // own keywords (e.g. a field's `description`) take precedence.
        let mut base: Option<Map<String, Value>> = None;
        if let Some(reference) = obj.remove("$ref") {
            base = Some(self.resolve(&reference, path)?);
        }
        if let Some(all_of) = obj.remove("allOf") {
            let mut items = match all_of {
                Value::Array(items) if items.len() == 1 => items,
                _ => {
                    return Err(GeneratorError::Schema(format!(
                        "{path}: `allOf` with several schemas is not supported in strict mode"
                    )))
                }
            };
            let inner = self.convert(items.remove(0), &format!("{path}/allOf/0"))?;
            let mut merged = base.unwrap_or_default();
            merged.extend(into_map(inner));
            base = Some(merged);
        }

        if let Some(one_of) = obj.remove("oneOf") {
            obj.insert("anyOf".into(), one_of);
        }
        if let Some(any_of) = obj.get_mut("anyOf") {
            let Value::Array(variants) = any_of.take() else {
                return Err(GeneratorError::Schema(format!(
                    "{path}: `anyOf` is not an array"
                )));
            };
            let variants = variants
                .into_iter()
                .enumerate()
                .map(|(i, v)| self.convert(v, &format!("{path}/anyOf/{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            *any_of = Value::Array(variants);
        }

        if let Some(items) = obj.get_mut("items") {
            if !items.is_object() {
                return Err(GeneratorError::Schema(format!(
                    "{path}: tuple-style `items` are not supported in strict mode"
                )));
            }
            *items = self.convert(items.take(), &format!("{path}/items"))?;
        }
        obj.remove("additionalItems");

        let is_object = obj.contains_key("properties") || has_type(&obj, "object");
        if is_object {
            if let Some(extra) = obj.get("additionalProperties") {
                if extra != &Value::Bool(false) && !obj.contains_key("properties") {
                    return Err(GeneratorError::Schema(format!(
                        "{path}: maps (objects with arbitrary keys) are not supported in strict mode"
                    )));
                }
            }
            let properties = match obj.remove("properties") {
                Some(Value::Object(props)) => props,
                None => Map::new(),
                Some(_) => {
                    return Err(GeneratorError::Schema(format!(
                        "{path}: `properties` is not an object"
                    )))
                }
            };
            let mut converted = Map::new();
            for (name, prop) in properties {
                let prop = self.convert(prop, &format!("{path}/properties/{name}"))?;
                converted.insert(name, prop);
            }
            let required = converted.keys().cloned().map(Value::String).collect();
            obj.insert("properties".into(), Value::Object(converted));
            obj.insert("required".into(), Value::Array(required));
            obj.insert("additionalProperties".into(), Value::Bool(false));
        }

        Ok(match base {
            Some(mut merged) => {
                merged.extend(obj);
                Value::Object(merged)
            }
            None => Value::Object(obj),
        })
    }

    fn resolve(
        &mut self,
        reference: &Value,
        path: &str,
    ) -> Result<Map<String, Value>, GeneratorError> {
        let name = reference
            .as_str()
            .and_then(|r| {
                r.strip_prefix("#/definitions/")
                    .or_else(|| r.strip_prefix("#/$defs/"))
            })
            .ok_or_else(|| {
                GeneratorError::Schema(format!("{path}: unsupported $ref {reference}"))
            })?;
        if self.stack.iter().any(|n| n == name) {
            return Err(GeneratorError::Schema(format!(
                "{path}: recursive type {name:?} cannot be inlined"
            )));
        }
        let target = self.defs.get(name).cloned().ok_or_else(|| {
            GeneratorError::Schema(format!("{path}: unknown definition {name:?}"))
        })?;
        self.stack.push(name.to_owned());
        let resolved = self.convert(target, &format!("#/definitions/{name}"));
        self.stack.pop();
        Ok(into_map(resolved?))
    }
}

fn has_type(obj: &Map<String, Value>, wanted: &str) -> bool {
    match obj.get("type") {
        Some(Value::String(t)) => t == wanted,
        Some(Value::Array(types)) => types.iter().any(|t| t == wanted),
        _ => false,
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        // `convert` only ever returns objects.
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Inner type.
    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        /// A count.
        count: u32,
        #[serde(default)]
        label: Option<String>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    enum Kind {
        A,
        B,
    }

    /// Outer type.
    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Outer {
        /// The inner value.
        inner: Inner,
        maybe: Option<Inner>,
        list: Vec<Inner>,
        kind: Kind,
        format: String,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Recursive {
        children: Vec<Recursive>,
    }

    fn assert_strict(schema: &Value) {
        match schema {
            Value::Object(obj) => {
                assert!(!obj.contains_key("$ref"), "{schema}");
                assert!(!obj.contains_key("format"), "{schema}");
                assert!(!obj.contains_key("oneOf"), "{schema}");
                assert!(!obj.contains_key("allOf"), "{schema}");
                if let Some(Value::Object(props)) = obj.get("properties") {
                    let required: Vec<&str> = obj["required"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    let names: Vec<&str> = props.keys().map(String::as_str).collect();
                    assert_eq!(required, names);
                    assert_eq!(obj["additionalProperties"], Value::Bool(false));
                    props.values().for_each(assert_strict);
                }
                for key in ["items"] {
                    if let Some(v) = obj.get(key) {
                        assert_strict(v);
                    }
                }
                if let Some(Value::Array(vs)) = obj.get("anyOf") {
                    vs.iter().for_each(assert_strict);
                }
            }
            other => panic!("not a schema object: {other}"),
        }
    }

    #[test]
    fn nested_types_are_inlined_and_strict() {
        let schema = strict_schema_for::<Outer>().unwrap();
        assert_strict(&schema);
        assert!(schema.get("definitions").is_none());
        assert!(schema.get("title").is_none());
        assert!(schema.get("$schema").is_none());
        // Field names that look like keywords are kept.
        assert_eq!(schema["properties"]["format"]["type"], "string");
        // The field's description wins over the type's.
        assert_eq!(
            schema["properties"]["inner"]["description"],
            "The inner value."
        );
        assert_eq!(
            schema["properties"]["inner"]["properties"]["count"]["type"],
            "integer"
        );
        // Optional fields are required but nullable.
        let label = &schema["properties"]["inner"]["properties"]["label"];
        assert_eq!(label["type"], json!(["string", "null"]));
        assert_eq!(schema["properties"]["kind"]["enum"], json!(["A", "B"]));
        assert_eq!(schema["properties"]["list"]["items"]["type"], "object");
    }

    #[test]
    fn recursive_types_are_rejected() {
        let err = strict_schema_for::<Recursive>().unwrap_err();
        assert!(err.to_string().contains("recursive"), "{err}");
    }

    #[test]
    fn maps_are_rejected() {
        let err = strict_schema_for::<std::collections::HashMap<String, u32>>().unwrap_err();
        assert!(matches!(err, GeneratorError::Schema(_)), "{err}");
    }

    #[test]
    fn invalid_schema_names_are_rejected() {
        assert!(ResponseFormat::json_schema::<Outer>("has space").is_err());
        assert!(ResponseFormat::json_schema::<Outer>("").is_err());
        let rf = ResponseFormat::json_schema::<Outer>("outer_v1").unwrap();
        assert_eq!(rf.as_value()["json_schema"]["strict"], true);
        assert_eq!(rf.schema()["type"], "object");
    }
}
