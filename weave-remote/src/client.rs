//! [`RemoteClient`]: the bounded buffer the caller pushes records into, and the sender thread
//! that delivers them (in order, batching finished calls, retrying, splitting refused
//! batches); [`RemoteClient::flush`] waits for delivery.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weave_types::digest::{digest_bytes, object_digest, row_digest, table_digest};
use weave_types::obj::{object_kind, KIND_OP};
use weave_types::StartedCallSchemaForInsert;

use crate::config::RemoteConfig;
use crate::http::{v2_prefix, Outcome, Transport};
use crate::record::{merge, Record};
use crate::rewrite::Rewrites;

/// Counters of a remote client, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Records delivered.
    pub delivered: u64,
    /// Requests that succeeded.
    pub requests: u64,
    /// Requests retried.
    pub retries: u64,
    /// Records dropped because the buffer was full.
    pub dropped: u64,
    /// Records the server refused (not retried).
    pub refused: u64,
    /// Records held now (buffered, waiting for their end, or being sent).
    pub pending: usize,
}

/// What a flush could not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "trace server {url}: {pending} record(s) not delivered yet, {dropped} dropped (buffer full) \
     and {refused} refused since the last flush{}",
    last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default()
)]
pub struct Undelivered {
    /// The server.
    pub url: String,
    /// Records still held when the flush gave up.
    pub pending: usize,
    /// Records dropped since the last flush.
    pub dropped: u64,
    /// Records refused since the last flush.
    pub refused: u64,
    /// The last failure.
    pub last_error: Option<String>,
}

struct State {
    queue: VecDeque<Record>,
    /// Starts waiting for their end (merged into one complete call when it comes).
    held: HashMap<String, (StartedCallSchemaForInsert, Instant)>,
    in_flight: usize,
    stats: RemoteStats,
    /// Dropped and refused at the last flush.
    reported: (u64, u64),
    last_error: Option<String>,
    /// Stop once the queue is empty or this instant has passed.
    stop: Option<Instant>,
    /// The sender thread has exited.
    exited: bool,
}

impl State {
    fn pending(&self) -> usize {
        self.queue.len() + self.held.len() + self.in_flight
    }

    /// Moves every held start to the queue (sent as starts: they are still running).
    fn release_held(&mut self) {
        let mut held: Vec<_> = self.held.drain().map(|(_, v)| v).collect();
        held.sort_by_key(|(_, since)| *since);
        self.queue
            .extend(held.into_iter().map(|(s, _)| Record::Start(s)));
    }

    /// Moves starts held longer than `after` to the queue; the time until the next one is due.
    fn release_aged(&mut self, after: Duration) -> Option<Duration> {
        let now = Instant::now();
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, (_, since))| now.duration_since(*since) >= after)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some((s, _)) = self.held.remove(&id) {
                self.queue.push_back(Record::Start(s));
            }
        }
        self.held
            .values()
            .map(|(_, since)| after.saturating_sub(now.duration_since(*since)))
            .min()
    }

    /// Drops the oldest records (calls first) until at most `cap` are held.
    fn enforce_cap(&mut self, cap: usize, url: &str) {
        let mut dropped = 0;
        while self.pending() > cap {
            if let Some(i) = self.queue.iter().position(Record::is_call) {
                self.queue.remove(i);
            } else if self.queue.pop_front().is_none() {
                let oldest = self
                    .held
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(id, _)| id.clone());
                match oldest {
                    Some(id) => {
                        self.held.remove(&id);
                    }
                    None => break, // only records being sent: they finish first
                }
            }
            dropped += 1;
        }
        if dropped > 0 {
            if self.stats.dropped == 0
                || (self.stats.dropped + dropped) / 10_000 > self.stats.dropped / 10_000
            {
                tracing::warn!(
                    url,
                    cap,
                    dropped_total = self.stats.dropped + dropped,
                    "weave: trace buffer full; dropping the oldest calls"
                );
            }
            self.stats.dropped += dropped;
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the sender: records arrived, a flush or a stop.
    wake: Condvar,
    /// Wakes flushers: the sender made progress or exited.
    progress: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A client of a Weave trace server: [`push`](RemoteClient::push) never waits for the
/// network; a background thread delivers. Dropping it flushes (up to
/// [`RemoteClient::DROP_TIMEOUT`]) and logs what was not delivered.
pub struct RemoteClient {
    shared: Arc<Shared>,
    config: Arc<RemoteConfig>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClient")
            .field("url", &self.config.url)
            .field("stats", &self.stats())
            .finish()
    }
}

impl RemoteClient {
    /// How long dropping a client waits for delivery.
    pub const DROP_TIMEOUT: Duration = Duration::from_secs(30);

    /// Starts the sender thread. Nothing is sent until records are pushed; a server that is
    /// not up yet is retried then.
    pub fn start(config: RemoteConfig) -> Result<RemoteClient, std::io::Error> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                held: HashMap::new(),
                in_flight: 0,
                stats: RemoteStats::default(),
                reported: (0, 0),
                last_error: None,
                stop: None,
                exited: false,
            }),
            wake: Condvar::new(),
            progress: Condvar::new(),
        });
        let config = Arc::new(config);
        let thread = {
            let shared = shared.clone();
            let config = config.clone();
            std::thread::Builder::new()
                .name("weave-remote".into())
                .spawn(move || {
                    // Made here, not by the caller: the blocking HTTP client runs a runtime
                    // of its own, which must not be made or dropped inside the caller's
                    // async runtime (`weave::init` in `#[tokio::main]`).
                    match Transport::new(&config) {
                        Ok(transport) => Sender {
                            shared: shared.clone(),
                            config,
                            transport,
                            rewrites: Rewrites::default(),
                            attempt: 0,
                            split_limit: None,
                        }
                        .run(),
                        Err(e) => {
                            tracing::error!(error = %e, "weave: cannot make an HTTP client");
                            shared.lock().last_error =
                                Some(format!("cannot make an HTTP client: {e}"));
                        }
                    }
                    shared.lock().exited = true;
                    shared.progress.notify_all();
                })?
        };
        Ok(RemoteClient {
            shared,
            config,
            thread: Some(thread),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Hands records over for delivery, in order. Returns at once; when the buffer is full
    /// the oldest calls are dropped (and counted).
    pub fn push(&self, records: impl IntoIterator<Item = Record>) {
        let eager = |s: &StartedCallSchemaForInsert| {
            let name = weave_types::refs::op_display_name(&s.op_name);
            self.config.eager_ops.iter().any(|o| o == name)
        };
        let mut st = self.shared.lock();
        for r in records {
            match r {
                Record::Start(s) if s.id.is_some() && !eager(&s) => {
                    let id = s.id.clone().unwrap_or_default();
                    st.held.insert(id, (s, Instant::now()));
                }
                Record::End(e) => match st.held.remove(&e.id) {
                    Some((s, _)) => st.queue.push_back(merge(s, e)),
                    None => st.queue.push_back(Record::End(e)),
                },
                other => st.queue.push_back(other),
            }
        }
        st.enforce_cap(self.config.max_buffered, &self.config.url);
        st.stats.pending = st.pending();
        drop(st);
        self.shared.wake.notify_one();
    }

    /// Counters.
    pub fn stats(&self) -> RemoteStats {
        let st = self.shared.lock();
        RemoteStats {
            pending: st.pending(),
            ..st.stats
        }
    }

    /// Sends every record held (calls still running go as starts) and waits up to `timeout`
    /// for delivery. `Err` tells what is still pending, and what was dropped or refused
    /// since the last flush.
    pub fn flush(&self, timeout: Duration) -> Result<(), Undelivered> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        st.release_held();
        self.shared.wake.notify_one();
        while st.pending() > 0 && !st.exited {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .shared
                .progress
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let (dropped, refused) = (
            st.stats.dropped - st.reported.0,
            st.stats.refused - st.reported.1,
        );
        st.reported = (st.stats.dropped, st.stats.refused);
        let pending = st.pending();
        if pending == 0 && dropped == 0 && refused == 0 {
            return Ok(());
        }
        Err(Undelivered {
            url: self.config.url.clone(),
            pending,
            dropped,
            refused,
            last_error: st.last_error.clone(),
        })
    }

    /// Flushes (up to `timeout`), then stops the sender thread.
    pub fn shutdown(mut self, timeout: Duration) -> Result<(), Undelivered> {
        self.stop(timeout)
    }

    fn stop(&mut self, timeout: Duration) -> Result<(), Undelivered> {
        let r = self.flush(timeout);
        {
            let mut st = self.shared.lock();
            st.stop = Some(Instant::now());
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            // The sender finishes its current request (bounded by the request timeout).
            let _ = t.join();
        }
        r
    }
}

impl Drop for RemoteClient {
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.stop(Self::DROP_TIMEOUT) {
                tracing::error!("weave: {e}");
            }
        }
    }
}

/// The sender thread's state.
struct Sender {
    shared: Arc<Shared>,
    config: Arc<RemoteConfig>,
    transport: Transport,
    rewrites: Rewrites,
    /// Consecutive failures (for the backoff).
    attempt: u32,
    /// After a refused batch: take at most this many calls (bisecting to the refused one).
    split_limit: Option<usize>,
}

impl Sender {
    fn run(mut self) {
        loop {
            let unit = {
                let mut st = self.shared.lock();
                loop {
                    let next_due = st.release_aged(self.config.eager_after);
                    if st.stop.is_some_and(|t| Instant::now() >= t) {
                        return;
                    }
                    if !st.queue.is_empty() {
                        break self.take_unit(&mut st);
                    }
                    let wait = next_due.unwrap_or(Duration::from_secs(1));
                    st = self
                        .shared
                        .wake
                        .wait_timeout(st, wait.max(Duration::from_millis(5)))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            };
            self.deliver(unit);
        }
    }

    /// Takes the next request's records off the queue: a run of finished calls of one
    /// project (up to the batch size), or a single record.
    fn take_unit(&self, st: &mut State) -> Vec<Record> {
        let mut unit = Vec::new();
        if let Some(Record::Complete(first)) = st.queue.front() {
            let project = first.project_id.clone();
            let limit = self
                .split_limit
                .unwrap_or(usize::MAX)
                .min(self.config.batch_max_calls)
                .max(1);
            while unit.len() < limit {
                match st.queue.front() {
                    Some(Record::Complete(c)) if c.project_id == project => {
                        unit.extend(st.queue.pop_front());
                    }
                    _ => break,
                }
            }
        } else {
            unit.extend(st.queue.pop_front());
        }
        st.in_flight += unit.len();
        unit
    }

    /// Sends one unit, then records the outcome.
    fn deliver(&mut self, mut unit: Vec<Record>) {
        let outcome = match self.transport.probe() {
            Some(o) => o,
            None => self.send(&mut unit),
        };
        let n = unit.len();
        let mut st = self.shared.lock();
        st.in_flight -= n;
        let backoff = match outcome {
            Outcome::Done(_) => {
                st.stats.delivered += n as u64;
                st.stats.requests += 1;
                self.attempt = 0;
                self.split_limit = None;
                None
            }
            Outcome::Retry { reason, after } => {
                st.stats.retries += 1;
                if self.attempt == 0 {
                    tracing::warn!(url = %self.config.url, %reason, "weave: trace server unavailable; retrying");
                }
                st.last_error = Some(reason);
                for r in unit.into_iter().rev() {
                    st.queue.push_front(r);
                }
                let d = after.unwrap_or_else(|| self.config.retry.delay(self.attempt));
                self.attempt = self.attempt.saturating_add(1);
                Some(d)
            }
            Outcome::Split { reason } if n > 1 => {
                // Halves go back in order; a refused record ends up alone and is refused.
                tracing::debug!(%reason, n, "weave: splitting a refused batch");
                for r in unit.into_iter().rev() {
                    st.queue.push_front(r);
                }
                st.stats.retries += 1;
                self.split_limit = Some(n / 2);
                None
            }
            Outcome::Split { reason } | Outcome::Refused { reason } => {
                tracing::error!(url = %self.config.url, %reason, n, "weave: the trace server refused record(s)");
                st.stats.refused += n as u64;
                st.last_error = Some(reason);
                None
            }
        };
        st.stats.pending = st.pending();
        drop(st);
        self.shared.progress.notify_all();
        if let Some(d) = backoff {
            let until = Instant::now() + d;
            let mut st = self.shared.lock();
            while Instant::now() < until && st.stop.is_none_or(|t| Instant::now() < t) {
                st = self
                    .shared
                    .wake
                    .wait_timeout(st, until - Instant::now())
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}

impl Sender {
    /// Sends one unit (refs rewritten for the server when it digests differently).
    fn send(&mut self, unit: &mut [Record]) -> Outcome {
        if !self.rewrites.is_empty() {
            for r in unit.iter_mut() {
                self.rewrite(r);
            }
        }
        let batch = unit.len() > 1;
        match unit {
            [Record::File(f)] => {
                let digest = f
                    .expected_digest
                    .clone()
                    .unwrap_or_else(|| digest_bytes(&f.content));
                self.transport
                    .post_file(&f.project_id, &digest, &f.name, &f.content)
            }
            [Record::Obj(o)] => {
                // The digest the caller's refs use: ours, computed before any rewriting.
                let ours = object_digest(&o.val);
                let kind = if object_kind(&o.val) == KIND_OP {
                    "op"
                } else {
                    "object"
                };
                let body = serde_json::json!({ "obj": o });
                let out = self.post("/obj/create", &body, &[], false);
                if let Outcome::Done(b) = &out {
                    if let Some(theirs) = answer_digest(b) {
                        let base = format!("weave:///{}/{kind}/{}:", o.project_id, o.object_id);
                        self.rewrites
                            .insert(format!("{base}{ours}"), format!("{base}{theirs}"));
                    }
                }
                out
            }
            [Record::Table(t)] => {
                let rows: Vec<String> = t.rows.iter().map(row_digest).collect();
                let ours = table_digest(&rows);
                let body = serde_json::json!({ "table": t });
                let out = self.post("/table/create", &body, &[], false);
                if let Outcome::Done(b) = &out {
                    if let Some(theirs) = answer_digest(b) {
                        let base = format!("weave:///{}/table/", t.project_id);
                        self.rewrites
                            .insert(format!("{base}{ours}"), format!("{base}{theirs}"));
                    }
                }
                out
            }
            [Record::Start(s)] => {
                let path = format!("{}/call/start", v2_prefix(&s.project_id));
                let trace = s.trace_id.clone().unwrap_or_default();
                let body = serde_json::json!({ "start": s });
                self.post(&path, &body, &[("x-weave-trace-id", trace)], false)
            }
            [Record::End(e)] => {
                let path = format!("{}/call/end", v2_prefix(&e.project_id));
                let trace = e.trace_id.clone().unwrap_or_default();
                let body = serde_json::json!({ "end": e });
                self.post(&path, &body, &[("x-weave-trace-id", trace)], false)
            }
            [Record::Update(u)] => {
                let body = serde_json::json!(u);
                self.post("/call/update", &body, &[], false)
            }
            calls => {
                #[derive(serde::Serialize)]
                struct Batch<'a> {
                    batch: Vec<&'a weave_types::CompleteCallSchemaForInsert>,
                }
                let items: Vec<_> = calls
                    .iter()
                    .filter_map(|r| match r {
                        Record::Complete(c) => Some(c),
                        _ => None,
                    })
                    .collect();
                let Some(first) = items.first() else {
                    return Outcome::Done(Vec::new());
                };
                let path = format!("{}/calls/complete", v2_prefix(&first.project_id));
                let body = match serde_json::to_vec(&Batch { batch: items }) {
                    Ok(b) => b,
                    Err(e) => {
                        return Outcome::Refused {
                            reason: format!("cannot encode calls: {e}"),
                        }
                    }
                };
                if body.len() > self.config.batch_max_bytes && calls.len() > 1 {
                    return Outcome::Split {
                        reason: format!("{} bytes is over the batch limit", body.len()),
                    };
                }
                self.transport.post_json(&path, &body, &[], batch)
            }
        }
    }

    fn post(
        &mut self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&'static str, String)],
        batch: bool,
    ) -> Outcome {
        match serde_json::to_vec(body) {
            Ok(b) => self.transport.post_json(path, &b, headers, batch),
            Err(e) => Outcome::Refused {
                reason: format!("cannot encode {path}: {e}"),
            },
        }
    }

    fn rewrite(&self, r: &mut Record) {
        let w = &self.rewrites;
        match r {
            Record::Obj(o) => w.apply(&mut o.val),
            Record::Table(t) => t.rows.iter_mut().for_each(|row| w.apply(row)),
            Record::Complete(c) => {
                w.apply_str(&mut c.op_name);
                c.inputs.values_mut().for_each(|v| w.apply(v));
                c.attributes.values_mut().for_each(|v| w.apply(v));
                w.apply(&mut c.output);
            }
            Record::Start(s) => {
                w.apply_str(&mut s.op_name);
                s.inputs.values_mut().for_each(|v| w.apply(v));
                s.attributes.values_mut().for_each(|v| w.apply(v));
            }
            Record::End(e) => w.apply(&mut e.output),
            Record::File(_) | Record::Update(_) => {}
        }
    }
}

/// `digest` of an `obj/create` or `table/create` answer.
fn answer_digest(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("digest")?
        .as_str()
        .map(str::to_string)
}
