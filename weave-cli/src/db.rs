//! The trace store as the CLI reads it: everything goes through `TraceStore` (no SQL here),
//! scoped to `--project` or spanning every project of the store, with the CLI's look-ups on
//! top (abbreviated ids and refs, `name:vN`, shortest unique id prefixes).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use weave_server::{open_store, StoreChoice};
use weave_store::{CallIdPrefixReq, SqliteStore, StoreError, TraceStore};
use weave_types::query::{Expr, Query, SortBy};
use weave_types::refs::{RefKind, WeaveRef};
use weave_types::*;

use crate::fmt;

/// Environment variable naming the project the CLI looks at (like `--project`).
pub const PROJECT_ENV: &str = "WEAVE_PROJECT";

/// Opens an SQLite store that must exist, read-only (nothing is left next to the file).
fn open_existing(path: &Path) -> Result<Arc<dyn TraceStore>> {
    match SqliteStore::open_read_only(path) {
        Ok(s) => Ok(Arc::new(s)),
        Err(StoreError::NotFound { .. }) => bail!(
            "no trace store at {} (run a traced program first, or pass --db / set {})",
            path.display(),
            weave_store::DB_ENV
        ),
        Err(e) => Err(e.into()),
    }
}

/// How many candidates an ambiguity error lists.
const CANDIDATES: usize = 10;

/// Runs a store future to completion, on a runtime of the CLI's own (the ClickHouse store
/// talks HTTP through tokio; the SQLite store needs none but runs on it alike).
pub(crate) fn block<F: Future>(f: F) -> F::Output {
    static RT: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    match RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
    }) {
        Some(rt) => rt.block_on(f),
        None => futures::executor::block_on(f),
    }
}

/// Which calls to list.
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    /// Only calls of these ops: stored op names (every version) or op refs (that version);
    /// empty: every op.
    pub ops: Vec<String>,
    /// Only this trace.
    pub trace_id: Option<String>,
    /// Only children of this call.
    pub parent_id: Option<String>,
    /// Only roots.
    pub roots: bool,
    /// Only calls that failed.
    pub errors: bool,
    /// Only calls started at or after this RFC 3339 time.
    pub since: Option<String>,
    /// At most this many.
    pub limit: Option<usize>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

/// What kind of objects to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ops.
    Op,
    /// Models.
    Model,
}

/// An open trace store.
pub struct Db {
    store: Arc<dyn TraceStore>,
    /// `entity/project` the CLI looks at (`--project`); `None`: every project.
    pub project: Option<String>,
    op_versions: RefCell<HashMap<String, Option<i64>>>,
    ref_labels: RefCell<HashMap<String, String>>,
}

impl Db {
    /// Opens the store; clear errors for a missing, corrupt or foreign file.
    pub fn open(path: &Path, project: Option<String>) -> Result<Db> {
        Ok(Db::with_store(open_existing(path)?, project))
    }

    /// Opens the chosen store (an SQLite file must exist; a ClickHouse database is made
    /// when missing, as `weave serve` does).
    pub fn open_choice(choice: &StoreChoice, project: Option<String>) -> Result<Db> {
        let store = match choice {
            StoreChoice::Sqlite(path) => open_existing(path)?,
            other => {
                open_store(other).with_context(|| format!("cannot open {}", other.describe()))?
            }
        };
        Ok(Db::with_store(store, project))
    }

    /// The store itself.
    pub fn store(&self) -> &Arc<dyn TraceStore> {
        &self.store
    }

    fn with_store(store: Arc<dyn TraceStore>, project: Option<String>) -> Db {
        Db {
            store,
            project,
            op_versions: RefCell::new(HashMap::new()),
            ref_labels: RefCell::new(HashMap::new()),
        }
    }

    /// The projects looked at: the `--project` one, or every project of the store.
    pub fn projects(&self) -> Result<Vec<String>> {
        Ok(match &self.project {
            Some(p) => vec![p.clone()],
            None => block(self.store.projects())?,
        })
    }

    // --- calls ---------------------------------------------------------------------------

    /// Calls matching `q`, across the projects looked at.
    pub fn calls(&self, q: &CallQuery) -> Result<Vec<CallSchema>> {
        let mut all = Vec::new();
        for p in self.projects()? {
            all.extend(self.calls_in(&p, q)?);
        }
        all.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        if !q.oldest_first {
            all.reverse();
        }
        if let Some(l) = q.limit {
            all.truncate(l);
        }
        Ok(all)
    }

    fn calls_in(&self, project: &str, q: &CallQuery) -> Result<Vec<CallSchema>> {
        let mut filter = CallsFilter::default();
        if !q.ops.is_empty() {
            filter.op_names = Some(
                q.ops
                    .iter()
                    .map(|op| {
                        if op.starts_with(weave_types::refs::REF_SCHEME) {
                            op.clone()
                        } else {
                            format!("weave:///{project}/op/{op}:*")
                        }
                    })
                    .collect(),
            );
        }
        filter.trace_ids = q.trace_id.clone().map(|t| vec![t]);
        filter.parent_ids = q.parent_id.clone().map(|p| vec![p]);
        if q.roots {
            filter.trace_roots_only = Some(true);
        }
        let mut conds = Vec::new();
        if q.errors {
            conds.push(Expr::eq(
                Expr::field("summary.weave.status"),
                Expr::literal("error"),
            ));
        }
        if let Some(since) = &q.since {
            conds.push(Expr::gte(
                Expr::field("started_at"),
                Expr::literal(since.clone()),
            ));
        }
        let sort = if q.oldest_first {
            SortBy::asc("started_at")
        } else {
            SortBy::desc("started_at")
        };
        let req = CallsQueryReq {
            project_id: project.to_string(),
            filter: Some(filter),
            query: (!conds.is_empty()).then(|| Query {
                expr: Expr::And(conds),
            }),
            sort_by: Some(vec![sort]),
            limit: q.limit.map(|l| l as u64),
            ..Default::default()
        };
        Ok(block(self.store.calls_query_vec(req))?)
    }

    /// One call by exact id, in its project.
    pub fn call(&self, key: &weave_store::CallKey) -> Result<Option<CallSchema>> {
        Ok(block(self.store.call_read(CallReadReq {
            project_id: key.project_id.clone(),
            id: key.id.clone(),
            ..Default::default()
        }))?
        .call)
    }

    /// The call whose id is `prefix` or starts with it; an error listing candidates when
    /// there are several, or when there is none.
    pub fn resolve_call(&self, prefix: &str) -> Result<CallSchema> {
        let prefix = prefix.trim().to_ascii_lowercase();
        if prefix.is_empty() {
            bail!("empty call id");
        }
        let keys = block(self.store.call_ids_by_prefix(CallIdPrefixReq {
            project_id: self.project.clone(),
            prefix: prefix.clone(),
            limit: CANDIDATES as u64 + 1,
        }))?;
        let key = match keys.iter().find(|k| k.id == prefix) {
            Some(exact) => exact.clone(),
            None => match keys.len() {
                0 => bail!("no call with id `{prefix}` (see `weave calls`)"),
                1 => keys[0].clone(),
                n => {
                    let mut msg = format!(
                        "call id `{prefix}` is ambiguous: it matches {}{} calls:",
                        if n > CANDIDATES { "more than " } else { "" },
                        n.min(CANDIDATES)
                    );
                    for k in keys.iter().take(CANDIDATES) {
                        let what = match self.call(k)? {
                            Some(c) => {
                                format!("{}  {}", fmt::time(&c.started_at), c.op_display_name())
                            }
                            None => String::new(),
                        };
                        msg.push_str(&format!("\n  {}  {what}", k.id));
                    }
                    bail!(msg)
                }
            },
        };
        self.call(&key)?
            .with_context(|| format!("call {} vanished while reading", key.id))
    }

    /// Direct children of a call, oldest first.
    pub fn children(&self, c: &CallSchema) -> Result<Vec<CallSchema>> {
        let q = CallQuery {
            parent_id: Some(c.id.clone()),
            oldest_first: true,
            ..Default::default()
        };
        self.calls_in(&c.project_id, &q)
    }

    /// Every call of a call's trace, oldest first.
    pub fn trace(&self, c: &CallSchema) -> Result<Vec<CallSchema>> {
        let q = CallQuery {
            trace_id: Some(c.trace_id.clone()),
            oldest_first: true,
            ..Default::default()
        };
        self.calls_in(&c.project_id, &q)
    }

    /// Length of the shortest prefix of `id` that no other call id shares (at least 8).
    pub fn unique_prefix_len(&self, id: &str) -> Result<usize> {
        let n = block(
            self.store
                .call_id_neighbors(self.project.clone(), id.to_string()),
        )?;
        let common = |o: &Option<String>| {
            o.as_deref().map_or(0, |o| {
                id.bytes()
                    .zip(o.bytes())
                    .take_while(|(a, b)| a == b)
                    .count()
            })
        };
        let mut len = (common(&n.before).max(common(&n.after)) + 1).max(8);
        // Do not end on a dash.
        while len < id.len() && id.as_bytes()[len - 1] == b'-' {
            len += 1;
        }
        Ok(len.min(id.len()))
    }

    /// One length that abbreviates all of `ids` uniquely.
    pub fn short_len<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Result<usize> {
        let mut n = 8;
        for id in ids {
            n = n.max(self.unique_prefix_len(id)?);
        }
        Ok(n)
    }

    /// Version index of the op a call ran.
    pub fn op_version(&self, call: &CallSchema) -> Option<i64> {
        if let Some(v) = self.op_versions.borrow().get(&call.op_name) {
            return *v;
        }
        let v = self
            .object_in(
                &call.project_id,
                call.op_display_name(),
                call.op_digest(),
                true,
            )
            .ok()
            .flatten()
            .map(|o| o.version_index);
        self.op_versions
            .borrow_mut()
            .insert(call.op_name.clone(), v);
        v
    }

    /// `name:vN` of the op a call ran.
    pub fn op_label(&self, call: &CallSchema) -> String {
        match self.op_version(call) {
            Some(v) => format!("{}:v{v}", call.op_display_name()),
            None => call.op_display_name().to_string(),
        }
    }

    // --- objects -------------------------------------------------------------------------

    fn object_in(
        &self,
        project: &str,
        name: &str,
        version: &str,
        metadata_only: bool,
    ) -> Result<Option<ObjSchema>> {
        match block(self.store.obj_read(ObjReadReq {
            project_id: project.to_string(),
            object_id: name.to_string(),
            digest: version.to_string(),
            metadata_only,
            ..Default::default()
        })) {
            Ok(r) => Ok(Some(r.obj)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every version of `name` in `project`, oldest first.
    pub fn versions(&self, project: &str, name: &str) -> Result<Vec<ObjSchema>> {
        let mut objs = block(self.store.objs_query(ObjQueryReq {
            project_id: project.to_string(),
            filter: Some(ObjectVersionFilter {
                object_ids: Some(vec![name.to_string()]),
                ..Default::default()
            }),
            sort_by: Some(vec![SortBy::asc("version_index")]),
            ..Default::default()
        }))?
        .objs;
        objs.sort_by_key(|o| o.version_index);
        Ok(objs)
    }

    /// The latest version of every op or model in the projects looked at, by name.
    pub fn latest(&self, kind: Kind) -> Result<Vec<ObjSchema>> {
        let mut all = Vec::new();
        for p in self.projects()? {
            let filter = match kind {
                Kind::Op => ObjectVersionFilter {
                    is_op: Some(true),
                    latest_only: Some(true),
                    ..Default::default()
                },
                Kind::Model => ObjectVersionFilter {
                    base_object_classes: Some(vec!["Model".into()]),
                    latest_only: Some(true),
                    ..Default::default()
                },
            };
            all.extend(
                block(self.store.objs_query(ObjQueryReq {
                    project_id: p,
                    filter: Some(filter),
                    ..Default::default()
                }))?
                .objs,
            );
        }
        all.sort_by(|a, b| {
            a.object_id
                .cmp(&b.object_id)
                .then(a.project_id.cmp(&b.project_id))
        });
        Ok(all)
    }

    /// The stored op names that `name` means, as users write op names: the op named exactly
    /// `name`; else every op whose last `.`-separated part is `name` (`predict` finds
    /// `Model.predict`); else the same two rules ignoring ASCII case. No match is an error
    /// that lists the ops there are.
    pub fn match_op_names(&self, name: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .latest(Kind::Op)?
            .into_iter()
            .map(|o| o.object_id)
            .collect();
        names.dedup();
        let last = |n: &str| n.rsplit('.').next().unwrap_or(n).to_string();
        let rules: [&dyn Fn(&str) -> bool; 4] = [
            &|n| n == name,
            &|n| last(n) == name,
            &|n| n.eq_ignore_ascii_case(name),
            &|n| last(n).eq_ignore_ascii_case(name),
        ];
        for rule in rules {
            let found: Vec<String> = names.iter().filter(|n| rule(n)).cloned().collect();
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
        bail!(
            "no op matches `{name}` ({})",
            if names.is_empty() {
                "the store has no ops".to_string()
            } else {
                format!(
                    "ops: {}{}",
                    shown.join(", "),
                    if names.len() > shown.len() {
                        ", ..."
                    } else {
                        ""
                    }
                )
            }
        )
    }

    /// Names of every object (latest versions) in the projects looked at.
    fn object_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for p in self.projects()? {
            names.extend(
                block(self.store.objs_query(ObjQueryReq {
                    project_id: p,
                    filter: Some(ObjectVersionFilter {
                        latest_only: Some(true),
                        ..Default::default()
                    }),
                    metadata_only: true,
                    ..Default::default()
                }))?
                .objs
                .into_iter()
                .map(|o| o.object_id),
            );
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The object version a `weave:///` ref names (a digest prefix is accepted).
    pub fn resolve_ref(&self, uri: &str) -> Result<Option<ObjSchema>> {
        let r = WeaveRef::parse(uri)?;
        if !matches!(r.kind, RefKind::Object | RefKind::Op) {
            return Ok(None);
        }
        let project = r.project_id();
        if let Some(o) = self.object_in(&project, &r.name, &r.digest, false)? {
            return Ok(Some(o));
        }
        let versions = self.versions(&project, &r.name)?;
        let matching: Vec<_> = versions
            .into_iter()
            .filter(|v| v.digest.starts_with(&r.digest))
            .collect();
        Ok(if matching.len() == 1 {
            matching.into_iter().next()
        } else {
            None
        })
    }

    /// `name:vN` of a ref when the store has it, else `name:digest8`.
    pub fn ref_label(&self, uri: &str) -> String {
        if let Some(l) = self.ref_labels.borrow().get(uri) {
            return l.clone();
        }
        let l = match WeaveRef::parse(uri) {
            Ok(r) if matches!(r.kind, RefKind::Object | RefKind::Op) => {
                match self.object_in(&r.project_id(), &r.name, &r.digest, true) {
                    Ok(Some(o)) => fmt::label(&o),
                    _ => fmt::short_ref(uri).unwrap_or_else(|| uri.to_string()),
                }
            }
            _ => fmt::short_ref(uri).unwrap_or_else(|| uri.to_string()),
        };
        self.ref_labels
            .borrow_mut()
            .insert(uri.to_string(), l.clone());
        l
    }

    /// An object version from a full ref, `name:digestprefix`, `name:latest`, `name:vN` or
    /// `name` (latest); names may be abbreviated to a unique prefix.
    pub fn resolve_object(&self, spec: &str) -> Result<ObjSchema> {
        let spec = spec.trim();
        if spec.starts_with("weave:") {
            return self
                .resolve_ref(spec)?
                .with_context(|| format!("no object `{spec}` in the store"));
        }
        let (name, version) = match spec.rsplit_once(':') {
            Some((n, v)) if !n.is_empty() && !v.is_empty() => {
                (self.resolve_name(n)?, v.to_string())
            }
            Some(_) => {
                bail!("invalid ref `{spec}`: expected name, name:version or a weave:/// ref")
            }
            None => (self.resolve_name(spec)?, "latest".to_string()),
        };
        let mut holders = Vec::new();
        for p in self.projects()? {
            let versions = self.versions(&p, &name)?;
            if !versions.is_empty() {
                holders.push((p, versions));
            }
        }
        let (project, versions) = match holders.len() {
            0 => bail!("no object named `{name}` (see `weave ops` and `weave models`)"),
            1 => holders.remove(0),
            _ => bail!(
                "`{name}` exists in several projects ({}): name the project with --project \
                 ENTITY/PROJECT (or ${})",
                holders
                    .iter()
                    .map(|(p, _)| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                PROJECT_ENV
            ),
        };
        if let Some(o) = self.object_in(&project, &name, &version, false)? {
            return Ok(o);
        }
        let matching: Vec<&ObjSchema> = versions
            .iter()
            .filter(|v| v.digest.starts_with(&version))
            .collect();
        match matching.len() {
            1 => return Ok(matching[0].clone()),
            0 => {}
            _ => bail!(
                "`{name}:{version}` is ambiguous: {}",
                matching
                    .iter()
                    .map(|v| v.digest.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        let mut msg = format!("`{name}` has no version `{version}`; its versions:");
        for v in versions.iter().rev().take(CANDIDATES) {
            msg.push_str(&format!(
                "\n  {name}:v{}  {}  {}",
                v.version_index,
                &v.digest[..v.digest.len().min(12)],
                fmt::time(&v.created_at)
            ));
        }
        bail!(msg)
    }

    /// An object name, exact or a unique prefix of one.
    pub fn resolve_name(&self, name: &str) -> Result<String> {
        let names = self.object_names()?;
        if names.iter().any(|n| n == name) {
            return Ok(name.to_string());
        }
        let matching: Vec<&String> = names.iter().filter(|n| n.starts_with(name)).collect();
        match matching.len() {
            1 => Ok(matching[0].clone()),
            0 => {
                let mut msg = format!("no object named `{name}`");
                if names.is_empty() {
                    msg.push_str(" (the store has no objects yet)");
                } else {
                    msg.push_str("; known names:");
                    for n in names.iter().take(CANDIDATES * 2) {
                        msg.push_str(&format!("\n  {n}"));
                    }
                }
                bail!(msg)
            }
            n => {
                let mut msg = format!("`{name}` is ambiguous: it starts {n} object names:");
                for n in matching.iter().take(CANDIDATES) {
                    msg.push_str(&format!("\n  {n}"));
                }
                bail!(msg)
            }
        }
    }

    /// The rows of a table of `project`, in order.
    pub fn table_rows(&self, project: &str, digest: &str) -> Result<Vec<serde_json::Value>> {
        Ok(block(self.store.table_query(TableQueryReq {
            project_id: project.to_string(),
            digest: digest.to_string(),
            ..Default::default()
        }))?
        .rows
        .into_iter()
        .map(|r| r.val)
        .collect())
    }

    /// An op's source code: its code file (or, in stores written before Weave's op shape,
    /// the `code` field of its value).
    pub fn op_code(&self, o: &ObjSchema) -> Option<String> {
        if let Some(code) = o.val.get("code").and_then(|c| c.as_str()) {
            return Some(code.to_string());
        }
        let files = o.val.get("files")?.as_object()?;
        let digest = files
            .get(weave_types::obj::RUST_OP_FILE)
            .or_else(|| files.values().next())?
            .as_str()?;
        let content = block(self.store.file_content_read(FileContentReadReq {
            project_id: o.project_id.clone(),
            digest: digest.to_string(),
        }))
        .ok()?
        .content;
        String::from_utf8(content).ok()
    }
}
