//! [`Checkpointer`]: copies the WAL back into the database file on a thread of its own, so
//! that the writer's commits never wait for a checkpoint (page copies and an `fsync`, often
//! tens of milliseconds). The writer's connection runs with `wal_autocheckpoint = 0` and
//! tells the checkpointer after each commit; the checkpointer runs a `PASSIVE` checkpoint
//! (it never blocks the writer or readers) once [`MIN_COMMITS`] commits have come since the
//! last one, or every [`MAX_WAIT`] while commits come at all. A writer that commits back to
//! back may never find the WAL fully copied, and so never start it over: once it has grown
//! past [`MAX_WAL_FRAMES`], the writer runs one `RESTART` checkpoint itself between two
//! transactions, which bounds the WAL's size.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Location, BUSY_TIMEOUT};

/// Commits that make a checkpoint due.
const MIN_COMMITS: u64 = 2;
/// WAL frames (pages) past which a checkpoint makes the writer wait until the WAL can start
/// over (about 32 MiB with 4 KiB pages).
const MAX_WAL_FRAMES: i64 = 8_192;
/// A checkpoint runs at least this often while commits come.
const MAX_WAIT: Duration = Duration::from_millis(200);

#[derive(Default)]
struct State {
    /// Commits since the last checkpoint.
    commits: u64,
    stop: bool,
    /// The WAL has grown past [`MAX_WAL_FRAMES`].
    over: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The checkpoint thread of one store; stops (after a last checkpoint) when dropped.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread with its own connection to `path`; `None` (the writer then keeps
    /// SQLite's automatic checkpoints) if either cannot be had.
    pub(crate) fn start(path: &Path, at: &Location) -> Option<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| c.busy_timeout(BUSY_TIMEOUT).map(|()| c));
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("weave: {at}: no checkpoint thread ({e}); checkpoints inline");
                return None;
            }
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let at = at.clone();
        let thread = std::thread::Builder::new()
            .name("weave-checkpoint".into())
            .spawn(move || run(&conn, &s, &at))
            .ok()?;
        Some(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// The writer committed a transaction. True when the WAL is too long: the writer should
    /// run a `RESTART` checkpoint now, so that its next transaction starts the WAL over.
    pub(crate) fn committed(&self) -> bool {
        let mut st = self.shared.lock();
        st.commits += 1;
        if st.commits >= MIN_COMMITS {
            self.shared.wake.notify_one();
        }
        std::mem::take(&mut st.over)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, shared: &Shared, at: &Location) {
    loop {
        let stop = {
            let mut st = shared.lock();
            while st.commits < MIN_COMMITS && !st.stop {
                let (next, timeout) = shared
                    .wake
                    .wait_timeout(st, MAX_WAIT)
                    .unwrap_or_else(|e| e.into_inner());
                st = next;
                if timeout.timed_out() && st.commits > 0 {
                    break;
                }
            }
            st.commits = 0;
            st.stop
        };
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
            // The writer never found the WAL fully copied, so it could not start it over:
            // it checkpoints once itself, between two transactions.
            Ok(frames) => shared.lock().over = frames > MAX_WAL_FRAMES,
            Err(e) => tracing::warn!("weave: {at}: checkpoint failed: {e}"),
        }
        if stop {
            return;
        }
    }
}
