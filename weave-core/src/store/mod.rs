//! The embedded trace store: one SQLite file (WAL), written by the background writer and read
//! by the library's read API, the CLI and evaluations.

mod read;
mod schema;
pub(crate) mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use read::{CallFilter, CallRecord, CallStatus, ObjectVersion};

use crate::error::Error;

/// Page cache of the writer's connection, in KiB (negative `cache_size`: a size, not pages).
const WRITER_CACHE_KIB: i64 = -32 * 1024;

/// A connection to a trace store file.
#[derive(Debug)]
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl Store {
    /// Opens an existing store for reading. Safe while another process writes to it.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, Error> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(Error::NotFound(format!(
                "no trace store at {} (run a traced program first, or pass --db / set {})",
                path.display(),
                crate::client::DB_ENV
            )));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .or_else(|_| {
            Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        })
        .map_err(|source| Error::Store {
            path: path.clone(),
            source,
        })?;
        let store = Store { conn, path };
        store.configure(false)?;
        schema::check_readable(&store)?;
        Ok(store)
    }

    /// Opens (creating if needed) a store for writing and brings its schema up to date.
    pub(crate) fn open_writer(path: &Path) -> Result<Store, Error> {
        let conn = Connection::open(path).map_err(|source| Error::Store {
            path: path.to_path_buf(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        // Refuse foreign or corrupt files before changing anything in them (journal mode).
        store.configure(false)?;
        schema::check_writable(&store)?;
        store.configure(true)?;
        schema::migrate(&mut store)?;
        Ok(store)
    }

    fn configure(&self, writer: bool) -> Result<(), Error> {
        self.conn
            .busy_timeout(Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        if writer {
            self.conn
                .pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| self.err(e))?;
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| self.err(e))?;
            // The writer walks the calls' indexes on every insert: keep them in memory rather
            // than re-reading their pages from the OS (default cache: 2 MiB).
            self.conn
                .pragma_update(None, "cache_size", WRITER_CACHE_KIB)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> Error {
        Error::Store {
            path: self.path.clone(),
            source,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
