//! Where traces go when nothing else is said, and how a project is named. The store's
//! location (`WEAVE_DB`) is defined by `weave-store`, so that the CLI and a server read the
//! same default without the tracing runtime; it is re-exported here.

use crate::error::Error;

pub use weave_store::{default_db_path, DB_ENV, DEFAULT_DB};

/// Entity of a project named without one.
pub const DEFAULT_ENTITY: &str = "local";

/// Splits `entity/project` or `project` (entity `local`), rejecting malformed names.
pub fn parse_project(project: &str) -> Result<(String, String), Error> {
    let bad = |why: &str| Error::InvalidProject {
        project: project.to_string(),
        reason: why.to_string(),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let (entity, name) = match project.split_once('/') {
        Some((e, p)) => (e, p),
        None => (DEFAULT_ENTITY, project),
    };
    if name.contains('/') {
        return Err(bad("expected `project` or `entity/project`"));
    }
    if !valid(entity) || !valid(name) {
        return Err(bad(
            "names must be non-empty and use only letters, digits, `-`, `_` and `.`",
        ));
    }
    Ok((entity.to_string(), name.to_string()))
}
