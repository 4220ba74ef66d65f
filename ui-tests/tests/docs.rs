//! Commands, not checks (ignored by default):
//!
//! - `ui_screenshots` writes the README's screenshots to `docs/ui/*.png`;
//! - `ui_timings` prints the time to first render of the traces page and of a 10,000-call
//!   trace, measured in Chromium, against baselines measured in the same run (BENCHMARKS.md).
//!
//! `cargo nextest run -p weave-ui-tests --run-ignored only --no-capture -E 'test(ui_screenshots)'`

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use weave_server::testing::Background;
use weave_ui_tests::browser::Browser;
use weave_ui_tests::fixture::{self, PROJECT};
use weave_ui_tests::synth;

fn base(project: &str) -> String {
    let (e, p) = project.split_once('/').expect("entity/project");
    format!("/ui/{e}/{p}")
}

async fn serve() -> Result<(fixture::Fixture, Background)> {
    let fx = fixture::load().await?;
    let store = fx.store()?;
    let server = tokio::task::spawn_blocking(move || {
        Background::store(store, "127.0.0.1:0".parse().expect("addr"))
    })
    .await?;
    Ok((fx, server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/ui/*.png; run on purpose"]
async fn ui_screenshots() -> Result<()> {
    let (fx, server) = serve().await?;
    let url = server.url();
    let b = Browser::start().await?;
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/ui");
    std::fs::create_dir_all(&out)?;
    let shot = |name: &'static str| {
        let out = out.clone();
        let b = &b;
        async move {
            // Let transitions settle.
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            let png = b.screenshot().await?;
            std::fs::write(out.join(name), png).with_context(|| format!("writing {name}"))?;
            println!("wrote docs/ui/{name}");
            anyhow::Ok(())
        }
    };

    // The traces page: the model's calls in the pipeline's project (filtered by op).
    b.open(
        &format!(
            "{url}{}/traces?all=1&op=CodeGenerationPipeline.predict&size=25",
            base(PROJECT)
        ),
        "traces",
    )
    .await?;
    shot("traces.png").await?;

    // A trace: the reference run, one row open, its model call selected.
    b.open(
        &format!("{url}{}/calls/{}", base(PROJECT), fx.errors_run),
        "trace",
    )
    .await?;
    b.js("const rows = [...document.querySelectorAll(\".tree-row[data-op='Evaluation.predict_and_score']\")]; rows[2].querySelector('.caret').click(); return null").await?;
    b.wait_js(
        "return !!document.querySelector(\".tree-row[data-op='CodeGenerationPipeline.predict']\")",
        "the predict call",
    )
    .await?;
    b.reset_ready().await?;
    b.click(".tree-row[data-op='CodeGenerationPipeline.predict']")
        .await?;
    b.wait_js(
        "return !!document.querySelector('.detail .code')",
        "the code",
    )
    .await?;
    shot("trace.png").await?;

    // Comparing the reference run with the stand-in LLM's: regressions first.
    b.open(
        &format!(
            "{url}{}/compare?runs={},{}",
            base(PROJECT),
            fx.reference_run,
            fx.errors_run
        ),
        "compare",
    )
    .await?;
    shot("compare.png").await?;
    b.js("document.querySelector('.grid-row[data-verdict=regression]').click(); return null")
        .await?;
    b.wait_js(
        "return !!document.querySelector('.row-detail-inner')",
        "the row detail",
    )
    .await?;
    b.js("document.querySelector('.row-detail').scrollIntoView(); return null")
        .await?;
    shot("compare-row.png").await?;

    // An op's code, and the evaluations list and a diff.
    b.open(
        &format!(
            "{url}{}/objects/CodeGenerationPipeline.predict",
            base(PROJECT)
        ),
        "object",
    )
    .await?;
    shot("op.png").await?;
    b.open(&format!("{url}{}/objects", base(PROJECT)), "objects")
        .await?;
    shot("objects.png").await?;
    b.open(
        &format!("{url}{}/evaluations", base(PROJECT)),
        "evaluations",
    )
    .await?;
    shot("evaluations.png").await?;
    b.open(
        &format!("{url}{}/objects/leaf/diff?a=v0&b=v1", base(synth::PROJECT)),
        "diff",
    )
    .await?;
    shot("diff.png").await?;
    b.open(
        &format!(
            "{url}{}/compare?runs={},{}",
            base(synth::PROJECT),
            fx.synth.eval_runs[0],
            fx.synth.eval_runs[1]
        ),
        "compare",
    )
    .await?;
    b.assert_no_console_errors().await?;
    b.close().await?;
    tokio::task::spawn_blocking(move || server.stop()).await?;
    Ok(())
}

/// Milliseconds from navigation start to the page's "rendered" mark, over `n` fresh loads.
async fn ttfr(b: &Browser, url: &str, what: &str, n: usize) -> Result<Vec<f64>> {
    Ok(ttfr_split(b, url, what, n, "").await?.0)
}

/// [`ttfr`], and the time of the requests whose URL contains `api` (request start to
/// response end, summed), sorted.
async fn ttfr_split(
    b: &Browser,
    url: &str,
    what: &str,
    n: usize,
    api: &str,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut out = Vec::new();
    let mut api_ms = Vec::new();
    // The first load warms the server's and the browser's caches; it is not counted.
    for i in 0..=n {
        b.client.goto("about:blank").await?;
        b.client.goto(url).await?;
        b.wait_ready(what).await?;
        let v = b
            .js(&format!(
                "const e = performance.getEntriesByName('weave:ready:{what}'); return e.length ? e[0].startTime : null"
            ))
            .await?;
        if i > 0 {
            out.push(v.as_f64().context("no ready mark")?);
            if !api.is_empty() {
                let t = b
                    .js_with(
                        "return performance.getEntriesByType('resource').filter(e => e.name.includes(arguments[0])).reduce((s, e) => s + (e.responseEnd - e.requestStart), 0)",
                        vec![serde_json::json!(api)],
                    )
                    .await?;
                api_ms.push(t.as_f64().unwrap_or(0.0));
            }
        }
    }
    out.sort_by(f64::total_cmp);
    api_ms.sort_by(f64::total_cmp);
    Ok((out, api_ms))
}

fn median(v: &[f64]) -> f64 {
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run on purpose"]
async fn ui_timings() -> Result<()> {
    let (fx, server) = serve().await?;
    let url = server.url();
    let b = Browser::start().await?;
    let n = 7;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let empty = ttfr(&b, &format!("{url}/ui/nobody/empty/traces"), "traces", n).await?;
    let traces = ttfr(&b, &format!("{url}{}/traces", base(PROJECT)), "traces", n).await?;
    let all_calls = ttfr(
        &b,
        &format!("{url}{}/traces?all=1", base(PROJECT)),
        "traces",
        n,
    )
    .await?;
    let one = ttfr(
        &b,
        &format!(
            "{url}{}/calls/{}",
            base(synth::PROJECT),
            fx.synth.hostile_call
        ),
        "trace",
        n,
    )
    .await?;
    let eval = ttfr(
        &b,
        &format!("{url}{}/calls/{}", base(PROJECT), fx.reference_run),
        "trace",
        n,
    )
    .await?;
    let (big, big_api) = ttfr_split(
        &b,
        &format!(
            "{url}{}/calls/{}",
            base(synth::PROJECT),
            fx.synth.big_trace_root
        ),
        "trace",
        n,
        "/ext/ui/trace",
    )
    .await?;
    let cmp = ttfr(
        &b,
        &format!(
            "{url}{}/compare?runs={},{}",
            base(synth::PROJECT),
            fx.synth.eval_runs[0],
            fx.synth.eval_runs[1]
        ),
        "compare",
        n,
    )
    .await?;
    println!("load average at start: {}", load.trim());
    println!("time to first render, Chromium headless, median of {n} fresh loads (min–max), ms:");
    let row = |name: &str, v: &[f64], base: &[f64]| {
        println!(
            "| {name} | {:.0} | {:.0}–{:.0} | {:.1}x |",
            median(v),
            v[0],
            v[v.len() - 1],
            median(v) / median(base)
        );
    };
    println!("| page | median ms | min–max | ratio |");
    row("traces page, empty project (baseline)", &empty, &empty);
    row("traces page, 3 roots (codegen project)", &traces, &empty);
    row(
        "traces page, all calls, first 50 of ~3.6k",
        &all_calls,
        &empty,
    );
    row("trace of 1 call (baseline)", &one, &one);
    row("trace of an evaluation, 164 rows", &eval, &one);
    row("trace of 10,001 calls", &big, &one);
    row("compare 2 x 1,000 rows", &cmp, &one);
    println!(
        "10,001-call trace: its /ext/ui/trace answer took {:.0} ms (median) of the {:.0} ms",
        median(&big_api),
        median(&big)
    );
    println!(
        "load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    b.close().await?;
    tokio::task::spawn_blocking(move || server.stop()).await?;
    Ok(())
}
