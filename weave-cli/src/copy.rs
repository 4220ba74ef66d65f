//! `weave copy`: moves projects from the store the CLI reads to another store (SQLite to a
//! team's ClickHouse and back) through `weave_store::copy_project`, which copies every
//! object version, table, file, call and feedback row and then counts both sides.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use weave_server::{open_store, StoreChoice};

use crate::db::{block, Db};

/// The destination: a store URL, or a plain path taken as an SQLite file.
fn destination(to: &str) -> Result<StoreChoice> {
    if to.contains(':') && !std::path::Path::new(to).exists() {
        Ok(StoreChoice::parse_url(to)?)
    } else {
        Ok(StoreChoice::Sqlite(PathBuf::from(to)))
    }
}

/// Copies every project of `db` (or its `--project`) to `to`.
pub fn run(db: &Db, to: &str, json: bool, out: &mut dyn Write) -> Result<()> {
    let choice = destination(to)?;
    let dest = open_store(&choice).with_context(|| format!("cannot open {}", choice.describe()))?;
    let projects = db.projects()?;
    let mut reports = Vec::new();
    for p in &projects {
        let r = block(weave_store::copy_project(&**db.store(), &*dest, p))
            .with_context(|| format!("copying project {p} to {}", choice.describe()))?;
        if !json {
            writeln!(
                out,
                "{p}: {} calls, {} object versions, {} tables, {} files, {} feedback -> {}",
                r.calls,
                r.objects,
                r.tables,
                r.files,
                r.feedback,
                choice.describe()
            )?;
        }
        reports.push(r);
    }
    if json {
        serde_json::to_writer_pretty(&mut *out, &reports)?;
        writeln!(out)?;
    } else if projects.is_empty() {
        writeln!(out, "nothing to copy: the store has no projects")?;
    }
    Ok(())
}
