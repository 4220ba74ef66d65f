//! Shared helpers for the integration tests: each test gets its own store in a temp dir and a
//! client of its own, scoped to the test's thread (so tests run in parallel even under plain
//! `cargo test`), or the global client for tests about process-wide behaviour.

use std::sync::{Mutex, MutexGuard};

use weave::store::{SqliteStore, TraceStore};
use weave::types::query::SortBy;
use weave::types::{
    CallSchema, CallsFilter, CallsQueryReq, ObjQueryReq, ObjSchema, ObjectVersionFilter,
};
use weave::{DefaultGuard, WeaveClient};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the lock that global clients take, for tests that start their own.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A traced test: a fresh store and a client logging to it.
pub struct Traced {
    // Dropped in this order: the scope, then the client (flushes), then the directory.
    _scope: Option<DefaultGuard>,
    /// The client; drop it to flush and stop tracing.
    pub client: WeaveClient,
    /// Holds the store.
    pub dir: tempfile::TempDir,
    _serial: Option<MutexGuard<'static, ()>>,
}

impl Traced {
    /// Traces `project` into a new temp store, with a client that is this thread's default
    /// (calls carried to other threads with their context follow it).
    pub fn new(project: &str) -> Traced {
        let dir = tempfile::tempdir().expect("tempdir");
        let client = weave::Settings::new(project)
            .db_path(dir.path().join("weave.db"))
            .quiet()
            .build()
            .expect("build");
        let scope = client.set_default();
        Traced {
            _scope: Some(scope),
            client,
            dir,
            _serial: None,
        }
    }

    /// Traces `project` into a new temp store with the process-wide client (for tests about
    /// work that starts on other threads without a call context). Takes a lock, so that such
    /// tests sharing a process run one at a time.
    pub fn global(project: &str) -> Traced {
        let serial = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let client = weave::Settings::new(project)
            .db_path(dir.path().join("weave.db"))
            .quiet()
            .init()
            .expect("init");
        Traced {
            _scope: None,
            client,
            dir,
            _serial: Some(serial),
        }
    }

    /// Flushes and opens the store for reading.
    pub fn store(&self) -> Store {
        Store {
            inner: self.client.store().expect("open store"),
            project: self.client.project_id(),
        }
    }

    /// All calls, oldest first.
    pub fn calls(&self) -> Vec<CallSchema> {
        self.store().calls(None)
    }

    /// The single call of op `name`; panics when there is not exactly one.
    pub fn only(&self, name: &str) -> CallSchema {
        let calls: Vec<_> = self
            .calls()
            .into_iter()
            .filter(|c| c.op_display_name() == name)
            .collect();
        assert_eq!(
            calls.len(),
            1,
            "expected one call of {name}, got {calls:#?}"
        );
        calls.into_iter().next().expect("one call")
    }
}

/// A store read synchronously, through `TraceStore`, in one project.
pub struct Store {
    /// The store.
    pub inner: SqliteStore,
    /// `entity/project` read.
    pub project: String,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

impl Store {
    /// Opens a store file for reading `project`.
    pub fn open(path: &std::path::Path, project: &str) -> Store {
        Store {
            inner: SqliteStore::open(path).expect("open store"),
            project: project.to_string(),
        }
    }

    /// Calls matching `filter` (all without one), oldest first.
    pub fn calls(&self, filter: Option<CallsFilter>) -> Vec<CallSchema> {
        self.query(CallsQueryReq {
            project_id: self.project.clone(),
            filter,
            ..Default::default()
        })
    }

    /// Runs a query.
    pub fn query(&self, req: CallsQueryReq) -> Vec<CallSchema> {
        block_on(self.inner.calls_query_vec(req)).expect("calls query")
    }

    /// Calls, newest first.
    pub fn newest_first(&self) -> Vec<CallSchema> {
        self.query(CallsQueryReq {
            project_id: self.project.clone(),
            sort_by: Some(vec![SortBy::desc("started_at")]),
            ..Default::default()
        })
    }

    /// Direct children of a call, oldest first.
    pub fn children(&self, id: &str) -> Vec<CallSchema> {
        self.calls(Some(CallsFilter {
            parent_ids: Some(vec![id.to_string()]),
            ..Default::default()
        }))
    }

    /// The calls of a trace, oldest first.
    pub fn trace(&self, trace_id: &str) -> Vec<CallSchema> {
        self.calls(Some(CallsFilter {
            trace_ids: Some(vec![trace_id.to_string()]),
            ..Default::default()
        }))
    }

    /// Number of calls.
    pub fn call_count(&self) -> u64 {
        block_on(
            self.inner
                .calls_query_stats(weave::types::CallsQueryStatsReq {
                    project_id: self.project.clone(),
                    ..Default::default()
                }),
        )
        .expect("stats")
        .count
    }

    /// Every version of an object, oldest first.
    pub fn versions(&self, name: &str) -> Vec<ObjSchema> {
        block_on(self.inner.objs_query(ObjQueryReq {
            project_id: self.project.clone(),
            filter: Some(ObjectVersionFilter {
                object_ids: Some(vec![name.to_string()]),
                ..Default::default()
            }),
            sort_by: Some(vec![SortBy::asc("version_index")]),
            ..Default::default()
        }))
        .expect("objs query")
        .objs
    }

    /// The latest version of every object (ops included unless `ops` is false; only ops when
    /// true), optionally of one base class, by name.
    pub fn latest(&self, base_object_class: Option<&str>, is_op: Option<bool>) -> Vec<ObjSchema> {
        block_on(self.inner.objs_query(ObjQueryReq {
            project_id: self.project.clone(),
            filter: Some(ObjectVersionFilter {
                base_object_classes: base_object_class.map(|c| vec![c.to_string()]),
                is_op,
                latest_only: Some(true),
                ..Default::default()
            }),
            sort_by: Some(vec![SortBy::asc("object_id")]),
            ..Default::default()
        }))
        .expect("objs query")
        .objs
    }

    /// One object version by digest, `latest` or `v<N>`.
    pub fn object(&self, name: &str, version: &str) -> Option<ObjSchema> {
        match block_on(self.inner.obj_read(weave::types::ObjReadReq {
            project_id: self.project.clone(),
            object_id: name.to_string(),
            digest: version.to_string(),
            ..Default::default()
        })) {
            Ok(r) => Some(r.obj),
            Err(weave::store::StoreError::NotFound { .. }) => None,
            Err(e) => panic!("obj read: {e}"),
        }
    }

    /// The object a `weave:///` ref names.
    pub fn resolve(&self, uri: &str) -> Option<ObjSchema> {
        let r = weave::types::WeaveRef::parse(uri).expect("ref");
        let s = Store {
            inner: self.inner.clone(),
            project: r.project_id(),
        };
        s.object(&r.name, &r.digest)
    }

    /// The rows of a table, in order.
    pub fn table_rows(&self, digest: &str) -> Vec<(String, serde_json::Value)> {
        block_on(self.inner.table_query(weave::types::TableQueryReq {
            project_id: self.project.clone(),
            digest: digest.to_string(),
            ..Default::default()
        }))
        .expect("table query")
        .rows
        .into_iter()
        .map(|r| (r.digest, r.val))
        .collect()
    }

    /// A file's text.
    pub fn file_text(&self, digest: &str) -> String {
        let c = block_on(
            self.inner
                .file_content_read(weave::types::FileContentReadReq {
                    project_id: self.project.clone(),
                    digest: digest.to_string(),
                }),
        )
        .expect("file");
        String::from_utf8(c.content).expect("utf-8")
    }

    /// The code of an op version.
    pub fn op_code(&self, op: &ObjSchema) -> String {
        let digest = op.val["files"]["obj.rs"]
            .as_str()
            .expect("an op with a code file");
        self.file_text(digest)
    }
}
