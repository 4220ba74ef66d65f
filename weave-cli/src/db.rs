//! The store as the CLI reads it: weave-core's read API plus a few look-ups that API lacks
//! (id prefixes through the primary-key index, shortest unique id prefix). Those use a second,
//! read-only connection; they belong in `weave::store::Store` eventually.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags};
use weave::refs::ObjectRef;
use weave::store::{CallRecord, ObjectVersion, Store};

/// How many candidates an ambiguity error lists.
const CANDIDATES: usize = 10;

/// An open trace store.
pub struct Db {
    pub store: Store,
    /// `entity/project` that object names are looked up in (`--project`); `None`: the
    /// only project that has the name.
    pub project: Option<String>,
    conn: Connection,
    op_versions: RefCell<HashMap<String, Option<i64>>>,
    ref_labels: RefCell<HashMap<String, String>>,
}

impl Db {
    /// Opens the store; clear errors for a missing, corrupt or foreign file.
    pub fn open(path: &Path, project: Option<String>) -> Result<Db> {
        let store = Store::open(path)?;
        let conn = open_reader(path)
            .with_context(|| format!("trace store {}: cannot open", path.display()))?;
        Ok(Db {
            store,
            project,
            conn,
            op_versions: RefCell::new(HashMap::new()),
            ref_labels: RefCell::new(HashMap::new()),
        })
    }

    /// The call whose id is `prefix` or starts with it; an error listing candidates when
    /// there are several, or when there is none.
    pub fn resolve_call(&self, prefix: &str) -> Result<CallRecord> {
        let prefix = prefix.trim().to_ascii_lowercase();
        if prefix.is_empty() {
            bail!("empty call id");
        }
        let ids = self.ids_with_prefix(&prefix, CANDIDATES + 1)?;
        let id = match ids.len() {
            0 => bail!("no call with id `{prefix}` (see `weave calls`)"),
            1 => ids[0].clone(),
            _ if ids.contains(&prefix) => prefix.clone(),
            n => {
                let mut msg = format!(
                    "call id `{prefix}` is ambiguous: it matches {}{} calls:",
                    if n > CANDIDATES { "more than " } else { "" },
                    n.min(CANDIDATES)
                );
                for id in ids.iter().take(CANDIDATES) {
                    let what = match self.store.call(id)? {
                        Some(c) => {
                            format!("{}  {}", crate::fmt::time(&c.started_at), c.op_short_name())
                        }
                        None => String::new(),
                    };
                    msg.push_str(&format!("\n  {id}  {what}"));
                }
                bail!(msg)
            }
        };
        self.store
            .call(&id)?
            .with_context(|| format!("call {id} vanished while reading"))
    }

    fn ids_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let upper = format!("{prefix}\u{7f}");
        let mut st = self.conn.prepare_cached(
            "SELECT id FROM calls WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = st
            .query_map(rusqlite::params![prefix, upper, limit as i64], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rows)
    }

    /// Length of the shortest prefix of `id` that no other call id shares (at least 8).
    pub fn unique_prefix_len(&self, id: &str) -> Result<usize> {
        let neighbour = |sql: &str| -> Result<Option<String>> {
            let mut st = self.conn.prepare_cached(sql)?;
            let mut rows = st.query([id])?;
            Ok(match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            })
        };
        let prev = neighbour("SELECT id FROM calls WHERE id < ?1 ORDER BY id DESC LIMIT 1")?;
        let next = neighbour("SELECT id FROM calls WHERE id > ?1 ORDER BY id ASC LIMIT 1")?;
        let common = |o: &Option<String>| {
            o.as_deref().map_or(0, |o| {
                id.bytes()
                    .zip(o.bytes())
                    .take_while(|(a, b)| a == b)
                    .count()
            })
        };
        let mut n = (common(&prev).max(common(&next)) + 1).max(8);
        // Do not end on a dash.
        while n < id.len() && id.as_bytes()[n - 1] == b'-' {
            n += 1;
        }
        Ok(n.min(id.len()))
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
    pub fn op_version(&self, call: &CallRecord) -> Option<i64> {
        if let Some(v) = self.op_versions.borrow().get(&call.op_name) {
            return *v;
        }
        let v = self
            .store
            .object_in(
                Some(&call.project_id),
                call.op_short_name(),
                call.op_digest(),
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
    pub fn op_label(&self, call: &CallRecord) -> String {
        match self.op_version(call) {
            Some(v) => format!("{}:v{v}", call.op_short_name()),
            None => call.op_short_name().to_string(),
        }
    }

    /// `name:vN` of a ref when the store has it, else `name:digest8`.
    pub fn ref_label(&self, uri: &str) -> String {
        if let Some(l) = self.ref_labels.borrow().get(uri) {
            return l.clone();
        }
        let l = match self.store.resolve_ref(uri) {
            Ok(Some(o)) => format!("{}:v{}", o.object_id, o.version_index),
            _ => crate::calls::short_ref(uri).unwrap_or_else(|| uri.to_string()),
        };
        self.ref_labels
            .borrow_mut()
            .insert(uri.to_string(), l.clone());
        l
    }

    /// An object version from a full ref, `name:digestprefix`, `name:latest`, `name:vN` or
    /// `name` (latest); names may be abbreviated to a unique prefix.
    pub fn resolve_object(&self, spec: &str) -> Result<ObjectVersion> {
        let spec = spec.trim();
        if spec.starts_with("weave:///") {
            let r = ObjectRef::parse(spec)?;
            let project = format!("{}/{}", r.entity, r.project);
            return self
                .store
                .object_in(Some(&project), &r.name, &r.digest)?
                .with_context(|| format!("no object `{spec}` in the store"));
        }
        let (name, version) = {
            match spec.rsplit_once(':') {
                Some((n, v)) if !n.is_empty() && !v.is_empty() => {
                    (self.resolve_name(n)?, v.to_string())
                }
                Some(_) => {
                    bail!("invalid ref `{spec}`: expected name, name:version or a weave:/// ref")
                }
                None => (self.resolve_name(spec)?, "latest".to_string()),
            }
        };
        let found = self
            .store
            .object_in(self.project(), &name, &version)
            .map_err(|e| match e {
                weave::Error::NotFound(m) if m.contains("several projects") => {
                    anyhow::anyhow!("{m} with --project ENTITY/PROJECT (or $WEAVE_PROJECT)")
                }
                e => e.into(),
            })?;
        if let Some(o) = found {
            return Ok(o);
        }
        let versions = self.store.object_versions_in(self.project(), &name)?;
        if versions.is_empty() {
            bail!("no object named `{name}` (see `weave ops` and `weave models`)");
        }
        let mut msg = format!("`{name}` has no version `{version}`; its versions:");
        for v in versions.iter().rev().take(CANDIDATES) {
            msg.push_str(&format!(
                "\n  {name}:v{}  {}  {}",
                v.version_index,
                &v.digest[..v.digest.len().min(12)],
                crate::fmt::time(&v.created_at)
            ));
        }
        bail!(msg)
    }

    /// The `--project` scope, if any.
    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// An object name, exact or a unique prefix of one.
    pub fn resolve_name(&self, name: &str) -> Result<String> {
        if !self
            .store
            .object_versions_in(self.project(), name)?
            .is_empty()
        {
            return Ok(name.to_string());
        }
        let mut names: Vec<String> = self
            .store
            .objects_in(self.project(), None)?
            .into_iter()
            .map(|o| o.object_id)
            .collect();
        names.dedup();
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
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let probe = |conn: Connection| -> rusqlite::Result<Connection> {
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.query_row("SELECT count(*) FROM calls WHERE 0", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(conn)
    };
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(probe)
    .or_else(|_| {
        // A WAL database may need its shared-memory file created first.
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(probe)
    })
}
