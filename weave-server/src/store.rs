//! Which store to serve: [`StoreChoice::from_args`] is the one place that reads `--db`,
//! `--store` and `$WEAVE_DB`, and [`open_store`] opens the choice. A new backend adds a
//! variant and a URL scheme here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use weave_store::{SqliteStore, StoreError, TraceStore};

use weave_store::default_db_path;

/// A store to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreChoice {
    /// One SQLite file (created with its directory when missing).
    Sqlite(PathBuf),
}

/// Why a store could not be chosen or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreOpenError {
    /// `--db` and `--store` both given.
    #[error("give either --db PATH or --store URL, not both")]
    Conflict,
    /// A `--store` URL this build does not know.
    #[error(
        "unsupported store URL `{0}`: use sqlite:PATH (or a plain path with --db); \
         other backends are not built into this weave"
    )]
    UnknownScheme(String),
    /// The store's directory could not be made.
    #[error("cannot create the directory {dir}: {source}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store refused to open.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StoreChoice {
    /// The store from the command line: `--store URL`, else `--db PATH`, else `$WEAVE_DB`,
    /// else `./.weave/weave.db`.
    pub fn from_args(
        db: Option<&Path>,
        store: Option<&str>,
    ) -> Result<StoreChoice, StoreOpenError> {
        match (db, store) {
            (Some(_), Some(_)) => Err(StoreOpenError::Conflict),
            (Some(p), None) => Ok(StoreChoice::Sqlite(p.to_path_buf())),
            (None, Some(url)) => StoreChoice::parse_url(url),
            (None, None) => Ok(StoreChoice::Sqlite(default_db_path())),
        }
    }

    /// A store URL: `sqlite:PATH` or `sqlite://PATH`.
    pub fn parse_url(url: &str) -> Result<StoreChoice, StoreOpenError> {
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(StoreOpenError::UnknownScheme(url.to_string()));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" if !rest.is_empty() => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                Ok(StoreChoice::Sqlite(PathBuf::from(path)))
            }
            _ => Err(StoreOpenError::UnknownScheme(url.to_string())),
        }
    }

    /// For messages: what is served.
    pub fn describe(&self) -> String {
        match self {
            StoreChoice::Sqlite(p) => format!("sqlite:{}", p.display()),
        }
    }
}

/// Opens (creating when needed) the chosen store.
pub fn open_store(choice: &StoreChoice) -> Result<Arc<dyn TraceStore>, StoreOpenError> {
    match choice {
        StoreChoice::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreOpenError::Dir {
                    dir: dir.to_path_buf(),
                    source,
                })?;
            }
            Ok(Arc::new(SqliteStore::create(path)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices() {
        assert_eq!(
            StoreChoice::from_args(Some(Path::new("a.db")), None).unwrap(),
            StoreChoice::Sqlite("a.db".into())
        );
        assert_eq!(
            StoreChoice::from_args(None, Some("sqlite:///tmp/x.db")).unwrap(),
            StoreChoice::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            StoreChoice::from_args(None, Some("sqlite:rel.db")).unwrap(),
            StoreChoice::Sqlite("rel.db".into())
        );
        assert!(matches!(
            StoreChoice::from_args(Some(Path::new("a")), Some("sqlite:b")),
            Err(StoreOpenError::Conflict)
        ));
        let e = StoreChoice::parse_url("postgres://x").unwrap_err();
        assert!(e.to_string().contains("postgres://x"), "{e}");
    }
}
