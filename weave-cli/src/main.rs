//! `weave`: inspect the calls, objects and evaluations a traced program recorded.
//!
//! Reads the same SQLite store the library writes (`--db`, else `$WEAVE_DB`, else
//! `./.weave/weave.db`), and is safe to run while a traced program is still writing. Every
//! read goes through `weave_store::TraceStore`; nothing here knows SQL or the tracing runtime.
//! `weave serve` serves that store over W&B Weave's trace-server API.

mod calls;
mod db;
mod evals;
mod evalshape;
mod fmt;
mod objects;
mod serve;

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::calls::{ExportFormat, FilterArgs};
use crate::db::{Kind, PROJECT_ENV};
use crate::fmt::{ColorChoice, Style};

#[derive(Debug, Parser)]
#[command(
    name = "weave",
    version,
    about = "Inspect the calls, objects and evaluations recorded by weave",
    after_help = "Ids and refs may be abbreviated to a unique prefix.\n\
                  Refs: weave:///entity/project/op/name:digest, name:digestprefix, name:latest,\n\
                  name:vN, or name (latest version)."
)]
struct Cli {
    /// The trace store [default: $WEAVE_DB, else ./.weave/weave.db]
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Only this project (`entity/project`, or `project` for entity `local`, as given to
    /// `weave::init`): calls, evaluations and object names [default: $WEAVE_PROJECT, else
    /// every project; an object name two projects use is then an error]
    #[arg(long, global = true, value_name = "ENTITY/PROJECT")]
    project: Option<String>,
    /// When to colour the output (NO_COLOR is honoured in `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Recent calls, newest first.
    Calls {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON (an array of calls in W&B Weave's call schema).
        #[arg(long)]
        json: bool,
    },
    /// One call whole: inputs, output, exception, summary, attributes, children.
    Call {
        /// Call id or a unique prefix of one.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Do not shorten long strings.
        #[arg(long)]
        full: bool,
    },
    /// The call tree of a trace.
    Trace {
        /// A trace id or any call id in the trace (or a unique prefix).
        id: String,
        /// Print JSON (nested calls).
        #[arg(long)]
        json: bool,
    },
    /// Ops and their versions.
    Ops {
        /// List every version.
        #[arg(short, long)]
        versions: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Models and their versions.
    Models {
        /// List every version.
        #[arg(short, long)]
        versions: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an object version (an op shows its code).
    Show {
        /// A ref: weave:///..., name:digestprefix, name:latest, name:vN, or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Do not shorten long values.
        #[arg(long)]
        full: bool,
    },
    /// What changed between two versions of a model or op.
    Diff {
        /// The old version.
        a: String,
        /// The new version.
        b: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluation runs, newest first.
    Evals {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One evaluation run: its summary and its rows.
    Eval {
        /// The run's call id (or a unique prefix).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Two evaluation runs side by side, then the rows whose scores differ.
    Compare {
        /// The baseline run.
        a: String,
        /// The run to compare with it.
        b: String,
        /// Show at most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write calls as JSON lines in W&B Weave's call schema, oldest first.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Write to this file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Serve the store over W&B Weave's trace-server API (for Python and Rust clients).
    Serve(serve::ServeArgs),
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let cmd = match cli.cmd {
        Cmd::Serve(args) => return serve::run(cli.db.as_deref(), args, out),
        cmd => cmd,
    };
    let st = Style::new(cli.color);
    let path = cli.db.clone().unwrap_or_else(weave_store::default_db_path);
    let project = cli
        .project
        .clone()
        .or_else(|| std::env::var(PROJECT_ENV).ok().filter(|p| !p.is_empty()))
        .map(|p| {
            if p.contains('/') {
                p
            } else {
                format!("local/{p}")
            }
        });
    let db = db::Db::open(&path, project)?;
    match cmd {
        Cmd::Calls {
            filter,
            limit,
            json,
        } => calls::list(&db, &st, out, &filter, limit, json),
        Cmd::Call { id, json, full } => calls::show(&db, &st, out, &id, json, full),
        Cmd::Trace { id, json } => calls::trace(&db, &st, out, &id, json),
        Cmd::Ops { versions, json } => objects::list(&db, &st, out, Kind::Op, versions, json),
        Cmd::Models { versions, json } => objects::list(&db, &st, out, Kind::Model, versions, json),
        Cmd::Show {
            reference,
            json,
            full,
        } => objects::show(&db, &st, out, &reference, json, full),
        Cmd::Diff { a, b, json } => objects::diff(&db, &st, out, &a, &b, json),
        Cmd::Evals { limit, json } => evals::list(&db, &st, out, limit, json),
        Cmd::Eval { id, json } => evals::show(&db, &st, out, &id, json),
        Cmd::Compare { a, b, limit, json } => evals::compare(&db, &st, out, &a, &b, limit, json),
        Cmd::Export {
            format,
            filter,
            limit,
            output,
        } => match output {
            Some(file) => {
                let f = std::fs::File::create(&file)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                let mut w = BufWriter::new(f);
                let n = calls::export(&db, &mut w, &filter, limit, format)?;
                w.flush()
                    .with_context(|| format!("cannot write {}", file.display()))?;
                eprintln!("weave: wrote {n} calls to {}", file.display());
                Ok(())
            }
            None => calls::export(&db, out, &filter, limit, format).map(|_| ()),
        },
        Cmd::Serve(_) => unreachable!("handled above"),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                .is_some_and(|k| k == io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(cli, &mut out).and_then(|()| out.flush().map_err(Into::into));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `weave calls | head`: the reader left; not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("weave: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
