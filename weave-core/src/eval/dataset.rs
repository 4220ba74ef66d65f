//! Datasets: named, versioned lists of rows, stored as a table with per-row digests.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::context;
use crate::error::Error;
use crate::model::{ref_prefix, Model};
use crate::record::{Msg, TableRecord};
use crate::redact::RedactKeys;

/// A named list of JSON rows. Publishing stores the rows in a table (one digest per row) and
/// the dataset as a versioned object: identical rows give identical digests, a changed row a
/// new dataset version.
#[derive(Debug)]
pub struct Dataset {
    name: String,
    rows: Vec<Value>,
    table: OnceLock<Table>,
}

/// Digests of the rows as stored: redacted with the keys of rule `keys`.
#[derive(Debug, Clone)]
struct Table {
    keys: u64,
    digest: String,
    rows: Vec<String>,
}

impl Clone for Dataset {
    fn clone(&self) -> Self {
        Dataset::new(self.name.clone(), self.rows.clone())
    }
}

impl Dataset {
    /// A dataset from JSON rows. Rows should be JSON objects (Weave stores tables of
    /// objects; a store refuses other rows when the dataset is published). The loaders check
    /// this and name the offending row.
    pub fn new(name: impl Into<String>, rows: Vec<Value>) -> Dataset {
        Dataset {
            name: name.into(),
            rows,
            table: OnceLock::new(),
        }
    }

    /// A dataset from typed rows.
    pub fn from_rows<T: Serialize>(name: impl Into<String>, rows: &[T]) -> Result<Dataset, Error> {
        let name = name.into();
        let rows = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                serde_json::to_value(r).map_err(|e| Error::DatasetRow {
                    path: format!("<dataset {name}>").into(),
                    line: i + 1,
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let path = std::path::PathBuf::from(format!("<dataset {name}>"));
        check_objects(&rows, &path)?;
        Ok(Dataset::new(name, rows))
    }

    /// Loads `.jsonl`, `.jsonl.gz` or `.json` (an array of objects), by file name.
    pub fn from_path(name: impl Into<String>, path: impl AsRef<Path>) -> Result<Dataset, Error> {
        let path = path.as_ref();
        let file_name = path
            .file_name()
            .map(|f| f.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if file_name.ends_with(".json") {
            Self::from_json_array(name, path)
        } else {
            Self::from_jsonl(name, path)
        }
    }

    /// Loads a JSON-lines file, gzipped when the name ends in `.gz`. Blank lines are skipped.
    pub fn from_jsonl(name: impl Into<String>, path: impl AsRef<Path>) -> Result<Dataset, Error> {
        let path = path.as_ref();
        let reader = open(path)?;
        let mut rows = Vec::new();
        for (i, line) in BufReader::new(reader).lines().enumerate() {
            let line = line.map_err(|e| Error::DatasetRow {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("cannot read: {e}"),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line).map_err(|e| Error::DatasetRow {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("invalid JSON: {e}"),
            })?;
            if !v.is_object() {
                return Err(not_an_object(path, i + 1));
            }
            rows.push(v);
        }
        Ok(Dataset::new(name, rows))
    }

    /// Loads a file holding one JSON array of rows.
    pub fn from_json_array(
        name: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Result<Dataset, Error> {
        let path = path.as_ref();
        let mut text = String::new();
        open(path)?
            .read_to_string(&mut text)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::DatasetRow {
            path: path.to_path_buf(),
            line: e.line(),
            message: format!("invalid JSON: {e}"),
        })?;
        match v {
            Value::Array(rows) => {
                check_objects(&rows, path)?;
                Ok(Dataset::new(name, rows))
            }
            _ => Err(Error::DatasetRow {
                path: path.to_path_buf(),
                line: 1,
                message: "expected a JSON array of rows".into(),
            }),
        }
    }

    /// Loads a file (as [`from_path`](Self::from_path)) and checks every row against `T`,
    /// naming the file, line and field of the first bad row.
    pub fn load_typed<T: DeserializeOwned>(
        name: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Result<(Dataset, Vec<T>), Error> {
        let path = path.as_ref();
        let ds = Self::from_path(name, path)?;
        let typed = ds.rows_as_at(path)?;
        Ok((ds, typed))
    }

    /// The rows decoded as `T`; the error names the row (1-based) and the field.
    pub fn rows_as<T: DeserializeOwned>(&self) -> Result<Vec<T>, Error> {
        self.rows_as_at(Path::new(&format!("<dataset {}>", self.name)))
    }

    fn rows_as_at<T: DeserializeOwned>(&self, path: &Path) -> Result<Vec<T>, Error> {
        // Line numbers count non-blank rows; for JSONL files without blank lines they are the
        // file's line numbers.
        self.rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                T::deserialize(r).map_err(|e| Error::DatasetRow {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: format!("row does not fit {}: {e}", std::any::type_name::<T>()),
                })
            })
            .collect()
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Rows.
    pub fn rows(&self) -> &[Value] {
        &self.rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Keeps the first `n` rows.
    pub fn truncate(&mut self, n: usize) {
        self.rows.truncate(n);
        self.table = OnceLock::new();
    }

    /// Keeps the rows for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&Value) -> bool) {
        self.rows.retain(keep);
        self.table = OnceLock::new();
    }

    /// Digest of each row as stored (values of secret-looking keys redacted with the keys of
    /// the client in use when first asked), in order.
    pub fn row_digests(&self) -> &[String] {
        &self.table().rows
    }

    /// Digest of the table of rows as stored (see [`row_digests`](Self::row_digests)).
    pub fn table_digest(&self) -> &str {
        &self.table().digest
    }

    fn table(&self) -> &Table {
        self.table
            .get_or_init(|| self.compute_table(&context::redact_keys()))
    }

    /// Row digests and the table digest under `keys`, as a Weave server computes them from the
    /// rows stored.
    fn table_for(&self, keys: &RedactKeys) -> Cow<'_, Table> {
        let cached = self.table();
        if cached.keys == keys.id() {
            Cow::Borrowed(cached)
        } else {
            Cow::Owned(self.compute_table(keys))
        }
    }

    fn compute_table(&self, keys: &RedactKeys) -> Table {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| weave_types::digest::row_digest(&keys.redacted(r)))
            .collect();
        Table {
            keys: keys.id(),
            digest: weave_types::digest::table_digest(&rows),
            rows,
        }
    }

    /// Publishes the dataset (rows and object) when tracing is on; returns its ref.
    pub fn publish(&self) -> String {
        crate::model::model_ref_value(self)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn not_an_object(path: &Path, line: usize) -> Error {
    Error::DatasetRow {
        path: path.to_path_buf(),
        line,
        message: "a row must be a JSON object".into(),
    }
}

fn check_objects(rows: &[Value], path: &Path) -> Result<(), Error> {
    match rows.iter().position(|r| !r.is_object()) {
        Some(i) => Err(not_an_object(path, i + 1)),
        None => Ok(()),
    }
}

fn open(path: &Path) -> Result<Box<dyn Read>, Error> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    Ok(if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

impl Model for Dataset {
    fn weave_type_name(&self) -> &'static str {
        "Dataset"
    }
    fn __weave_object_name(&self) -> String {
        self.name.clone()
    }
    fn __weave_bases(&self) -> &'static [&'static str] {
        &["Object", "BaseModel"]
    }
    fn __weave_attributes(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("name", Value::from(self.name.clone())),
            (
                "rows",
                Value::from(format!(
                    "{}table/{}",
                    ref_prefix(),
                    self.table_for(&context::redact_keys()).digest
                )),
            ),
        ]
    }
    fn __weave_type_id(&self) -> Option<std::any::TypeId> {
        None
    }
    fn __weave_fingerprint(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name.as_bytes());
        out.push(0);
        out.extend_from_slice(self.table_for(&context::redact_keys()).digest.as_bytes());
    }
    fn __weave_before_publish(&self) {
        if let Some(d) = context::dispatch() {
            let keys = d.redact_keys();
            let table = self.table_for(keys);
            d.send(Msg::Table(Box::new(TableRecord {
                digest: table.digest.clone(),
                rows: table
                    .rows
                    .iter()
                    .cloned()
                    .zip(self.rows.iter().map(|r| keys.redacted(r).into_owned()))
                    .collect(),
            })));
        }
    }
}
