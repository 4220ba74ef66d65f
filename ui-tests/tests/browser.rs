//! The web UI in real headless Chromium, against `weave serve`'s router over a store made by
//! the real codegen pipeline (and synthetic large and hostile data): what a person sees on
//! each page, and that the console stays free of errors.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use serde_json::{json, Value};
use weave_server::testing::Background;
use weave_store::TraceStore;
use weave_types::{CallsFilter, CallsQueryReq};
use weave_ui_tests::browser::Browser;
use weave_ui_tests::fixture::{self, Fixture, PROJECT};
use weave_ui_tests::synth;

/// `/ui/<entity>/<project>`.
fn base(project: &str) -> String {
    let (e, p) = project.split_once('/').expect("entity/project");
    format!("/ui/{e}/{p}")
}

/// The fixture, a server over it, and a browser.
async fn setup() -> Result<(Fixture, Background, Browser)> {
    let fx = fixture::load().await?;
    let store = fx.store()?;
    let server = tokio::task::spawn_blocking(move || {
        Background::store(store, "127.0.0.1:0".parse().expect("addr"))
    })
    .await?;
    let browser = Browser::start().await?;
    Ok((fx, server, browser))
}

async fn teardown(server: Background, browser: Browser) -> Result<()> {
    let errors = browser.console_errors().await;
    browser.close().await?;
    tokio::task::spawn_blocking(move || server.stop()).await?;
    let errors = errors?;
    ensure!(errors.is_empty(), "console errors: {errors:#?}");
    Ok(())
}

/// Scrolls a virtual list from top to bottom, collecting `attr` of the rows matching `rows`.
async fn scroll_collect(
    b: &Browser,
    scroller: &str,
    rows: &str,
    attr: &str,
) -> Result<Vec<String>> {
    let v = b
        .js_with(
            "const [scroller, sel, attr] = arguments;
             const el = document.querySelector(scroller);
             const seen = new Map();
             el.scrollTop = 0;
             const grab = () => el.querySelectorAll(sel).forEach(r => {
               const top = parseFloat((r.style.transform.match(/translateY\\(([-\\d.]+)px\\)/) || [0, 0])[1]);
               seen.set(top, r.getAttribute(attr));
             });
             return new Promise(resolve => {
               const step = () => {
                 grab();
                 if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1) {
                   resolve([...seen.entries()].sort((a, b) => a[0] - b[0]).map(e => e[1]));
                   return;
                 }
                 el.scrollTop += Math.max(50, el.clientHeight - 60);
                 requestAnimationFrame(() => requestAnimationFrame(step));
               };
               requestAnimationFrame(step);
             });",
            vec![json!(scroller), json!(rows), json!(attr)],
        )
        .await?;
    Ok(serde_json::from_value(v)?)
}

async fn passed_by_task(store: &dyn TraceStore, run: &str) -> Result<Vec<(String, bool)>> {
    let rows = store
        .calls_query_vec(CallsQueryReq {
            project_id: PROJECT.into(),
            filter: Some(CallsFilter {
                parent_ids: Some(vec![run.to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    for c in rows {
        if c.op_display_name() != "Evaluation.predict_and_score" {
            continue;
        }
        // The example is a row ref; its task id is in the dataset row.
        let example = &c.inputs["example"];
        let task = match example.as_str() {
            Some(r) => {
                let v = store
                    .refs_read_batch(weave_types::RefsReadBatchReq {
                        refs: vec![r.to_string()],
                    })
                    .await?;
                v.vals[0]["task_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }
            None => example["task_id"].as_str().unwrap_or_default().to_string(),
        };
        let out_v = c.output.clone().unwrap_or(Value::Null);
        let passed = out_v["scores"]["score_humaneval_test"]["passed"] == json!(true);
        out.push((task, passed));
    }
    Ok(out)
}

/// Rows of `run` that have a `passed` verdict (their predict did not fail).
async fn scored_rows(store: &dyn TraceStore, run: &str) -> Result<usize> {
    let rows = store
        .calls_query_vec(CallsQueryReq {
            project_id: PROJECT.into(),
            filter: Some(CallsFilter {
                parent_ids: Some(vec![run.to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    Ok(rows
        .iter()
        .filter(|c| c.op_display_name() == "Evaluation.predict_and_score")
        .filter(|c| {
            c.output
                .as_ref()
                .is_some_and(|o| o["scores"]["score_humaneval_test"]["passed"].is_boolean())
        })
        .count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_list_the_evaluation_and_its_tree_has_164_rows_with_details() -> Result<()> {
    let (fx, server, b) = setup().await?;
    let url = server.url();
    // The landing page lists both projects (there is more than one).
    b.open(&format!("{url}/"), "home").await?;
    let projects = b.texts(".project-link").await?;
    ensure!(
        projects.contains(&PROJECT.to_string()) && projects.contains(&synth::PROJECT.to_string()),
        "{projects:?}"
    );
    b.click(&format!(".project-link[href='{}/traces']", base(PROJECT)))
        .await?;
    b.wait_ready("traces").await?;
    // Newest first: the three runs, all Evaluation.evaluate.
    let ops = b.texts(".calls-table .op-link").await?;
    ensure!(
        ops.iter().filter(|o| *o == "Evaluation.evaluate").count() == 3,
        "{ops:?}"
    );
    let ids: Vec<String> = serde_json::from_value(
        b.js("return [...document.querySelectorAll('.calls-table tr.call-row')].map(r => r.dataset.callId)")
            .await?,
    )?;
    ensure!(
        ids == [
            fx.trials_run.clone(),
            fx.errors_run.clone(),
            fx.reference_run.clone()
        ],
        "{ids:?}"
    );
    let picker: String = serde_json::from_value(
        b.js("return document.getElementById('project').value")
            .await?,
    )?;
    ensure!(picker == PROJECT, "{picker}");

    // Clicking the reference run opens its tree: 164 rows, and the summarize call.
    b.click(&format!("tr[data-call-id='{}'] .op-link", fx.reference_run))
        .await?;
    b.wait_ready("trace").await?;
    let path: String = serde_json::from_value(b.js("return location.pathname").await?)?;
    ensure!(
        path == format!("{}/calls/{}", base(PROJECT), fx.reference_run),
        "{path}"
    );
    let ops = scroll_collect(&b, ".tree-scroll", ".tree-row", "data-op").await?;
    let rows = ops
        .iter()
        .filter(|o| *o == "Evaluation.predict_and_score")
        .count();
    ensure!(
        rows == 164,
        "tree shows {rows} predict_and_score rows: {:?}",
        &ops[..ops.len().min(5)]
    );
    ensure!(ops[0] == "Evaluation.evaluate" && ops.iter().any(|o| o == "Evaluation.summarize"));
    // Only what is in view is in the page.
    let in_dom: u64 = serde_json::from_value(
        b.js("return document.querySelectorAll('.tree-row').length")
            .await?,
    )?;
    ensure!(in_dom < 100, "{in_dom} tree rows in the DOM");
    // The root's detail: the summary as output.
    let detail = b.texts(".detail").await?.join("\n");
    // (Section titles are upper-cased by CSS, which innerText follows.)
    let lower = detail.to_lowercase();
    ensure!(
        lower.contains("inputs") && lower.contains("output"),
        "{detail}"
    );
    ensure!(detail.contains("score_humaneval_test"), "{detail}");

    // Open a row, then its model call: inputs (the problem) and output (the code).
    b.js("document.querySelector('.tree-scroll').scrollTop = 0; return null")
        .await?;
    b.wait_js("return !!document.querySelector(\".tree-row[data-op='Evaluation.predict_and_score'] .caret\")", "a row caret")
        .await?;
    b.click(".tree-row[data-op='Evaluation.predict_and_score'] .caret")
        .await?;
    b.wait_js(
        "return !!document.querySelector(\".tree-row[data-op='CodeGenerationPipeline.predict']\")",
        "the predict call",
    )
    .await?;
    b.click(".tree-row[data-op='CodeGenerationPipeline.predict']")
        .await?;
    b.wait_js(
        "const d = document.querySelector('.detail-inner'); return !!d && d.innerText.includes('HumanEval/') && d.innerText.includes('def ')",
        "the predict call's inputs and output",
    )
    .await?;
    let title = b.texts(".detail-title").await?;
    ensure!(title == ["CodeGenerationPipeline.predict"], "{title:?}");
    // The URL names the selected call, and the code is highlighted.
    let (path, call): (String, String) = serde_json::from_value(
        b.js("return [location.pathname, document.querySelector('.detail-inner').dataset.callId]")
            .await?,
    )?;
    ensure!(path.ends_with(&call), "{path} vs {call}");
    let kw: u64 = serde_json::from_value(
        b.js("return document.querySelectorAll('.detail .code .tok-kw').length")
            .await?,
    )?;
    ensure!(kw > 0, "the output code is not highlighted");
    // Deep link: reloading the URL selects the same call.
    b.open(&format!("{url}{path}"), "trace").await?;
    let selected: Vec<String> = serde_json::from_value(
        b.js("return [...document.querySelectorAll('.tree-row.selected')].map(r => r.dataset.callId)").await?,
    )?;
    ensure!(selected == [call.clone()], "{selected:?}");
    teardown(server, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_shows_deltas_and_the_rows_whose_verdicts_differ() -> Result<()> {
    let (fx, server, b) = setup().await?;
    let store = fx.store()?;
    let reference = passed_by_task(store.as_ref(), &fx.reference_run).await?;
    let errors = passed_by_task(store.as_ref(), &fx.errors_run).await?;
    ensure!(reference.len() == 164 && errors.len() == 164);
    let ref_pass: std::collections::HashMap<_, _> = reference.into_iter().collect();
    let regressions: BTreeSet<String> = errors
        .iter()
        .filter(|(t, p)| ref_pass[t] && !p)
        .map(|(t, _)| t.clone())
        .collect();
    let improvements: BTreeSet<String> = errors
        .iter()
        .filter(|(t, p)| !ref_pass[t] && *p)
        .map(|(t, _)| t.clone())
        .collect();
    ensure!(
        regressions.len() > 20,
        "the stand-in should make many rows fail: {regressions:?}"
    );
    let differ: BTreeSet<String> = regressions.union(&improvements).cloned().collect();

    let url = server.url();
    // From the evaluations list: pick the two runs and compare.
    b.open(
        &format!("{url}{}/evaluations", base(PROJECT)),
        "evaluations",
    )
    .await?;
    let runs = b.texts(".evals-table tbody tr").await?;
    ensure!(runs.len() == 3, "{runs:?}");
    for id in [&fx.reference_run, &fx.errors_run] {
        b.click(&format!("tr[data-run-id='{id}'] input[type=checkbox]"))
            .await?;
    }
    b.click(".page-head .btn-primary").await?;
    b.wait_ready("compare").await?;
    let search: String = serde_json::from_value(b.js("return location.search").await?)?;
    ensure!(
        search == format!("?runs={}%2C{}", fx.reference_run, fx.errors_run),
        "the older run is the baseline: {search}"
    );

    // Metrics side by side with the delta of the pass rate.
    let cells: Vec<String> = serde_json::from_value(
        b.js("const r = document.querySelector(\"tr[data-metric='score_humaneval_test.passed.true_fraction']\"); return r ? [...r.cells].map(c => c.innerText) : []")
            .await?,
    )?;
    // Weave's summary: a row whose predict failed has no `passed` and is left out.
    let ref_frac = ref_pass.values().filter(|p| **p).count() as f64
        / scored_rows(store.as_ref(), &fx.reference_run).await? as f64;
    let err_frac = errors.iter().filter(|(_, p)| *p).count() as f64
        / scored_rows(store.as_ref(), &fx.errors_run).await? as f64;
    ensure!(cells.len() == 3, "{cells:?}");
    ensure!(cells[0] == "passed", "{cells:?}");
    ensure!(
        cells[1].contains(&format!("{:.1}%", ref_frac * 100.0))
            || ref_frac == 1.0 && cells[1].contains("100%"),
        "{cells:?}"
    );
    let delta = format!("−{:.1} pt", (ref_frac - err_frac) * 100.0);
    ensure!(cells[2].contains(&delta), "expected {delta} in {cells:?}");
    let bad: u64 = serde_json::from_value(b.js("return document.querySelectorAll(\"tr[data-metric='score_humaneval_test.passed.true_fraction'] .delta-bad\").length").await?)?;
    ensure!(bad == 1, "the drop is marked worse");

    // The default tab: rows whose verdicts differ, regressions first.
    let tab: String = serde_json::from_value(
        b.js("return document.querySelector('.tab.active').dataset.tab")
            .await?,
    )?;
    ensure!(tab == "differ", "{tab}");
    let labels = scroll_collect(&b, ".rows-scroll", ".grid-row", "data-label").await?;
    let verdicts = scroll_collect(&b, ".rows-scroll", ".grid-row", "data-verdict").await?;
    let shown: BTreeSet<String> = labels.iter().cloned().collect();
    ensure!(shown == differ, "shown {shown:?}\nexpected {differ:?}");
    let first_other = verdicts
        .iter()
        .position(|v| v != "regression")
        .unwrap_or(verdicts.len());
    ensure!(
        verdicts[first_other..].iter().all(|v| v != "regression"),
        "regressions first: {verdicts:?}"
    );
    let counts = b.texts(".tab .tab-count").await?;
    ensure!(counts[0] == differ.len().to_string(), "{counts:?}");

    // A row opens to both outputs, with a link to each trial's trace.
    let first = labels[0].clone();
    b.js("document.querySelector('.rows-scroll').scrollTop = 0; return null")
        .await?;
    b.wait_js(
        &format!("return !!document.querySelector(\".grid-row[data-label='{first}']\")"),
        "the first row back in view",
    )
    .await?;
    b.click(&format!(".grid-row[data-label='{first}']")).await?;
    b.wait_js(
        "return !!document.querySelector('.row-detail-inner')",
        "the row detail",
    )
    .await?;
    let head = b.texts(".row-detail-head h2").await?;
    ensure!(head == [first.clone()], "{head:?}");
    let links: u64 = serde_json::from_value(
        b.js("return document.querySelectorAll('.row-detail a.btn[href*=\"/calls/\"]').length")
            .await?,
    )?;
    ensure!(links == 2, "{links} trace links");
    b.click(".row-detail a.btn[href*='/calls/']").await?;
    b.wait_ready("trace").await?;
    let title = b.texts(".detail-title").await?;
    ensure!(title == ["Evaluation.predict_and_score"], "{title:?}");

    // What changed between the two models: one click to their diff.
    b.client.back().await?;
    b.wait_ready("compare").await?;
    b.click(".diff-links a[data-diff='model']").await?;
    b.wait_ready("diff").await?;
    let lines = b
        .texts(".diff-line.diff-delete .diff-text, .diff-line.diff-insert .diff-text")
        .await?;
    ensure!(
        lines
            .iter()
            .any(|l| l.contains("\"model_name\": \"reference\""))
            && lines
                .iter()
                .any(|l| l.contains("\"model_name\": \"test-model\"")),
        "{lines:?}"
    );

    // "All rows" shows every problem.
    b.client.back().await?;
    b.wait_ready("compare").await?;
    b.click(".tab[data-tab='all']").await?;
    let all = scroll_collect(&b, ".rows-scroll", ".grid-row", "data-label").await?;
    ensure!(all.len() == 164, "{} rows", all.len());
    teardown(server, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_render_as_text() -> Result<()> {
    let (fx, server, b) = setup().await?;
    let url = server.url();
    // In the traces table (search finds it).
    b.open(
        &format!("{url}{}/traces?q=broken%20table", base(synth::PROJECT)),
        "traces",
    )
    .await?;
    let rows = b.texts(".calls-table tbody tr").await?;
    ensure!(rows.len() == 1, "{rows:?}");
    ensure!(rows[0].contains(synth::HOSTILE_NAME), "{rows:?}");
    ensure!(
        rows[0].contains("<script>window.__pwned = 4</script>"),
        "{rows:?}"
    );
    ensure!(rows[0].contains(synth::HOSTILE_OUTPUT), "{rows:?}");
    // In the call's detail.
    b.click(".calls-table .op-link").await?;
    b.wait_ready("trace").await?;
    let detail = b.texts(".detail").await?.join("\n");
    for text in [
        synth::HOSTILE_NAME,
        synth::HOSTILE_INPUT,
        synth::HOSTILE_OUTPUT,
    ] {
        ensure!(
            detail.contains(text),
            "{text} is not shown as text:\n{detail}"
        );
    }
    // In an evaluation row (the LLM stand-in's comment in problem 0's code).
    b.open(
        &format!(
            "{url}{}/compare?runs={},{}&rows=all",
            base(PROJECT),
            fx.reference_run,
            fx.errors_run
        ),
        "compare",
    )
    .await?;
    b.click(".rows-toolbar input[type=search]").await?;
    b.client
        .find(fantoccini::Locator::Css(".rows-toolbar input[type=search]"))
        .await?
        .send_keys("HumanEval/0")
        .await?;
    b.wait_js(
        "return document.querySelectorAll('.grid-row[data-label]').length === 1",
        "one row",
    )
    .await?;
    b.click(".grid-row[data-label='HumanEval/0']").await?;
    b.wait_js(
        "return !!document.querySelector('.row-detail-inner')",
        "the row detail",
    )
    .await?;
    let detail = b.texts(".row-detail").await?.join("\n");
    ensure!(
        detail.contains("<script>window.__pwned = 1</script>"),
        "{detail}"
    );
    // Nothing ran and no element came from the data.
    let (pwned, injected): (Value, u64) = serde_json::from_value(
        b.js("return [window.__pwned ?? null, document.querySelectorAll('main script, main img, main b, main i, main iframe').length]")
            .await?,
    )?;
    ensure!(
        pwned.is_null() && injected == 0,
        "pwned={pwned} injected={injected}"
    );
    teardown(server, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10k_call_trace_renders_only_what_is_visible() -> Result<()> {
    let (fx, server, b) = setup().await?;
    let url = server.url();
    let s = &fx.synth;
    b.open(
        &format!("{url}{}/calls/{}", base(synth::PROJECT), s.big_trace_root),
        "trace",
    )
    .await?;
    let info = b.texts(".tree-toolbar .muted").await?;
    ensure!(
        info == [format!("{} calls", fmt_int(s.big_trace_calls))],
        "{info:?}"
    );
    // The root and its 50 steps show; the 9,950 leaves wait behind their carets.
    ensure!(tree_rows(&b).await? <= 51);
    b.click(".tree-toolbar .btn:nth-of-type(1)").await?; // Expand all
    b.wait_js(
        "return document.querySelector('.vlist-spacer').style.height === '300030px'",
        "all 10,001 rows laid out",
    )
    .await?;
    ensure!(
        tree_rows(&b).await? < 100,
        "{} rows in the DOM",
        tree_rows(&b).await?
    );
    // The failed leaf is findable and marked.
    let input = b
        .client
        .find(fantoccini::Locator::Css(".tree-toolbar input"))
        .await?;
    input.send_keys("leaf").await?;
    b.wait_js(
        "return document.querySelector('.tree-toolbar .muted').innerText === '9,950 matching'",
        "the filter",
    )
    .await?;
    b.js("const el = document.querySelector('.tree-scroll'); el.scrollTop = el.scrollHeight; return null").await?;
    b.wait_js("return [...document.querySelectorAll('.tree-row')].some(r => r.querySelector('.name').innerText === 'leaf')", "leaves at the bottom").await?;
    // The failed leaf is marked.
    b.reset_ready().await?;
    let input = b
        .client
        .find(fantoccini::Locator::Css(".tree-toolbar input"))
        .await?;
    input.clear().await?;
    b.js("const i = document.querySelector('.tree-toolbar input'); i.value = ''; i.dispatchEvent(new Event('input')); return null").await?;
    b.wait_js(
        "return document.querySelector('.tree-toolbar .muted').innerText === '10,001 calls'",
        "the filter cleared",
    )
    .await?;
    b.js("const el = document.querySelector('.tree-scroll'); el.scrollTop = (2 + 7 * 200 + 100) * 30 - 100; return null").await?;
    b.wait_js(
        "return [...document.querySelectorAll('.tree-row.row-error')].length === 1",
        "the failed leaf, marked",
    )
    .await?;
    teardown(server, b).await
}

/// Tree rows in the page (not in the trace).
async fn tree_rows(b: &Browser) -> Result<u64> {
    Ok(serde_json::from_value(
        b.js("return document.querySelectorAll('.tree-row').length")
            .await?,
    )?)
}

fn fmt_int(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_values_are_cut_with_show_more() -> Result<()> {
    let (fx, server, b) = setup().await?;
    let url = server.url();
    // The table previews it in one line.
    b.open(
        &format!("{url}{}/traces?q=long%20document", base(synth::PROJECT)),
        "traces",
    )
    .await?;
    let previews = b.texts(".calls-table td.preview").await?;
    ensure!(
        previews.len() == 2 && previews.iter().all(|p| p.chars().count() <= 161),
        "{previews:?}"
    );
    // The detail shows the start and offers more.
    b.open(
        &format!("{url}{}/calls/{}", base(synth::PROJECT), fx.synth.huge_call),
        "trace",
    )
    .await?;
    let shown: u64 = serde_json::from_value(
        b.js("return Math.max(...[...document.querySelectorAll('.detail .j-long pre')].map(p => p.textContent.length))").await?,
    )?;
    ensure!(shown <= 2001, "{shown} characters shown at first");
    let page_chars: u64 =
        serde_json::from_value(b.js("return document.body.textContent.length").await?)?;
    ensure!(
        page_chars < 50_000,
        "the page holds {page_chars} characters"
    );
    b.click(".detail .j-long .show-more:nth-of-type(2)").await?; // Show all (the input)
    b.wait_js(
        &format!("return [...document.querySelectorAll('.detail .j-long pre')].some(p => p.textContent.length === {})", synth::HUGE),
        "the whole value after Show all",
    )
    .await?;
    teardown(server, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1000_row_evaluation_compares_quickly() -> Result<()> {
    let (fx, server, b) = setup().await?;
    let url = server.url();
    let s = &fx.synth;
    b.open(
        &format!(
            "{url}{}/compare?runs={},{}",
            base(synth::PROJECT),
            s.eval_runs[0],
            s.eval_runs[1]
        ),
        "compare",
    )
    .await?;
    let counts = b.texts(".tab .tab-count").await?;
    let differ = s.regressions.len() + s.improvements.len();
    ensure!(
        counts
            == [
                differ.to_string(),
                s.regressions.len().to_string(),
                s.improvements.len().to_string(),
                "1,000".to_string()
            ],
        "{counts:?}"
    );
    let in_dom: u64 = serde_json::from_value(
        b.js("return document.querySelectorAll('.rows-scroll .grid-row').length")
            .await?,
    )?;
    ensure!(in_dom < 60, "{in_dom} rows in the DOM");
    b.click(".tab[data-tab='regression']").await?;
    let labels = scroll_collect(&b, ".rows-scroll", ".grid-row", "data-label").await?;
    ensure!(labels == s.regressions, "{labels:?}");
    // The model versions are named and the run cards say which is the baseline.
    let cards = b.texts(".run-card .run-model").await?;
    ensure!(cards == ["QAModel:v0", "QAModel:v1"], "{cards:?}");
    teardown(server, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trials_show_pass_at_k_and_partial_rows() -> Result<()> {
    let (fx, server, b) = setup().await?;
    let url = server.url();
    b.open(
        &format!("{url}{}/evaluations/{}", base(PROJECT), fx.trials_run),
        "run",
    )
    .await?;
    let metrics = b.texts(".metrics-table .metric-name").await?;
    ensure!(
        metrics.iter().any(|m| m == "passed pass@1") && metrics.iter().any(|m| m == "passed"),
        "{metrics:?}"
    );
    let marks = b.texts(".grid-row .mark").await?;
    ensure!(marks.iter().any(|m| m == "1/2"), "{marks:?}");
    ensure!(
        marks.iter().any(|m| m == "2/2") && marks.iter().any(|m| m == "0/2"),
        "{marks:?}"
    );
    let rows = scroll_collect(&b, ".rows-scroll", ".grid-row", "data-label").await?;
    ensure!(rows.len() == fixture::TRIAL_PROBLEMS, "{rows:?}");
    teardown(server, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_objects_versions_code_diff_and_dataset_rows() -> Result<()> {
    let (_fx, server, b) = setup().await?;
    let url = server.url();
    b.open(&format!("{url}{}/objects", base(PROJECT)), "objects")
        .await?;
    let names = b.texts(".objects-table tbody tr td:first-child").await?;
    for n in [
        "HumanEval",
        "CodeGenerationPipeline",
        "humaneval",
        "CodeGenerationPipeline.predict",
    ] {
        ensure!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    // The model has a version per model name; the diff of the latest two shows the change.
    b.click(".objects-table a[href$='/objects/CodeGenerationPipeline']")
        .await?;
    b.wait_ready("object").await?;
    let versions = b.texts(".versions-table tbody tr").await?;
    ensure!(versions.len() == 3, "{versions:?}");
    b.click(".panel-title .btn").await?;
    b.wait_ready("diff").await?;
    let lines = b
        .texts(".diff-line.diff-delete .diff-text, .diff-line.diff-insert .diff-text")
        .await?;
    // (The two latest versions are preselected.)
    ensure!(
        lines
            .iter()
            .any(|l| l.contains("\"model_name\": \"test-model\""))
            && lines
                .iter()
                .any(|l| l.contains("\"model_name\": \"flaky-model\"")),
        "{lines:?}"
    );
    // An op's code, highlighted.
    b.open(
        &format!(
            "{url}{}/objects/CodeGenerationPipeline.predict",
            base(PROJECT)
        ),
        "object",
    )
    .await?;
    let code = b.texts(".version-content .code").await?.join("\n");
    ensure!(
        code.contains("fn predict") || code.contains("predict"),
        "{code}"
    );
    // The dataset's rows as a table, paged (v0: all 164; v1 is the two-trial subset).
    b.open(
        &format!("{url}{}/objects/HumanEval/versions/v0", base(PROJECT)),
        "object",
    )
    .await?;
    b.wait_js(
        "return document.querySelectorAll('.rows-table tbody tr').length === 50",
        "50 rows",
    )
    .await?;
    let pager = b.texts(".dataset-rows .pager .muted").await?;
    ensure!(pager == ["1–50 of 164 rows"], "{pager:?}");
    b.click(".dataset-rows .pager .btn:last-child").await?;
    b.wait_js("return document.querySelector('.dataset-rows .pager .muted').innerText === '51–100 of 164 rows'", "page 2").await?;
    // A synthetic op with two versions: the code diff.
    b.open(
        &format!("{url}{}/objects/leaf/diff?a=v0&b=v1", base(synth::PROJECT)),
        "diff",
    )
    .await?;
    let changed = b.texts(".diff-insert .diff-text").await?;
    ensure!(changed.iter().any(|l| l.contains("x * 2")), "{changed:?}");
    teardown(server, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_filter_sort_page_and_switch_projects() -> Result<()> {
    let (_fx, server, b) = setup().await?;
    let url = server.url();
    let p = base(synth::PROJECT);
    b.open(&format!("{url}{p}/traces"), "traces").await?;
    let all = b.texts(".calls-table .op-link").await?;
    ensure!(all.len() == 6, "roots of the synthetic project: {all:?}");
    // Status: running.
    b.reset_ready().await?;
    b.client
        .find(fantoccini::Locator::Css(
            ".filters select[aria-label='Status']",
        ))
        .await?
        .select_by_value("running")
        .await?;
    b.wait_ready("traces").await?;
    let running = b.texts(".calls-table .op-link").await?;
    ensure!(running == ["long_job"], "{running:?}");
    let q: String = serde_json::from_value(b.js("return location.search").await?)?;
    ensure!(q == "?status=running", "{q}");
    // Op filter and every call (not only roots).
    b.open(&format!("{url}{p}/traces?op=leaf&all=1&size=25"), "traces")
        .await?;
    let total = b.texts(".page-head .count").await?;
    ensure!(total == ["9,950"], "{total:?}");
    let pager = b.texts(".pager .muted").await?;
    ensure!(pager == ["1–25 of 9,950"], "{pager:?}");
    b.reset_ready().await?;
    b.click(".pager .btn:nth-of-type(2)").await?;
    b.wait_ready("traces").await?;
    let pager = b.texts(".pager .muted").await?;
    ensure!(pager == ["26–50 of 9,950"], "{pager:?}");
    // Sort by latency, slowest first: the two 100 s evaluation runs, then the 60 s pipeline.
    b.open(&format!("{url}{p}/traces?sort=latency:desc"), "traces")
        .await?;
    let ops = b.texts(".calls-table .op-link").await?;
    ensure!(
        ops[..3] == ["Evaluation.evaluate", "Evaluation.evaluate", "pipeline"],
        "{ops:?}"
    );
    // Time range: only what started before the big trace ended.
    b.open(
        &format!("{url}{p}/traces?to=2026-05-04T09%3A00%3A30"),
        "traces",
    )
    .await?;
    let early = b.texts(".calls-table .op-link").await?;
    ensure!(early == ["pipeline"], "{early:?}");
    // The project picker switches project.
    b.reset_ready().await?;
    b.client
        .find(fantoccini::Locator::Css("#project"))
        .await?
        .select_by_value(PROJECT)
        .await?;
    b.wait_ready("traces").await?;
    let path: String = serde_json::from_value(b.js("return location.pathname").await?)?;
    ensure!(path == format!("{}/traces", base(PROJECT)), "{path}");
    teardown(server, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csp_forbids_inline_script_and_html_sinks() -> Result<()> {
    let (_fx, server, b) = setup().await?;
    let url = server.url();
    let res = reqwest::get(format!("{url}/ui/")).await?;
    let csp = res
        .headers()
        .get("content-security-policy")
        .context("no CSP")?
        .to_str()?
        .to_string();
    ensure!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    b.open(&format!("{url}{}/traces", base(PROJECT)), "traces")
        .await?;
    let v = b
        .js("const out = {};
             try { document.body.innerHTML = '<b>x</b>'; out.html = 'assigned'; } catch (e) { out.html = e.name; }
             const s = document.createElement('script');
             try { s.textContent = 'window.__inline = 1'; document.body.append(s); out.script = 'appended'; } catch (e) { out.script = e.name; }
             out.ran = window.__inline ?? null;
             return out;")
        .await?;
    ensure!(v["html"] == "TypeError" && v["ran"].is_null(), "{v}");
    // The violations were reported (as errors) and nothing else went wrong.
    let errors = b.console_errors().await?;
    ensure!(
        errors.iter().any(|e| e.contains("requires 'TrustedHTML'"))
            && errors.iter().all(|e| e.contains("requires 'Trusted")),
        "{errors:#?}"
    );
    teardown(server, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_evaluation_updates_as_rows_finish() -> Result<()> {
    use weave_types::*;
    let t = weave_server::testing::fresh_store();
    let store = t.store.clone();
    let p = "live/eval";
    // An evaluation of 6 rows: objects first, then the run's eager start.
    let rows: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("r{i}"), "x": i}))
        .collect();
    let table = store
        .table_create(TableCreateReq {
            table: TableSchemaForInsert {
                project_id: p.into(),
                rows,
                expected_digest: None,
            },
        })
        .await?;
    let obj = |name: &str, val: Value| ObjCreateReq {
        obj: ObjSchemaForInsert {
            project_id: p.into(),
            object_id: name.into(),
            val,
            ..Default::default()
        },
    };
    let ds = store.obj_create(obj("rows", json!({"_class_name": "Dataset", "_bases": ["Object", "BaseModel"], "rows": format!("weave:///{p}/table/{}", table.digest)}))).await?;
    let ds_ref = format!("weave:///{p}/object/rows:{}", ds.digest);
    let ev = store.obj_create(obj("live", json!({"_class_name": "Evaluation", "_bases": ["Evaluation", "Object", "BaseModel"], "name": "live", "dataset": ds_ref, "scorers": ["ok"], "trials": 1}))).await?;
    let model = store
        .obj_create(obj(
            "M",
            json!({"_class_name": "M", "_bases": ["Model", "Object", "BaseModel"], "name": "M"}),
        ))
        .await?;
    let inputs = json!({"self": format!("weave:///{p}/object/live:{}", ev.digest), "model": format!("weave:///{p}/object/M:{}", model.digest)});
    let now = || {
        weave_types::time::format_micros(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as i64,
        )
    };
    store
        .call_start(CallStartReq {
            start: StartedCallSchemaForInsert {
                project_id: p.into(),
                id: Some("run".into()),
                trace_id: Some("trace".into()),
                op_name: "Evaluation.evaluate".into(),
                started_at: now(),
                inputs: inputs.as_object().cloned().unwrap_or_default(),
                ..Default::default()
            },
        })
        .await?;
    let server = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            Background::store(store, "127.0.0.1:0".parse().expect("addr"))
        })
        .await?
    };
    let b = Browser::start().await?;
    b.open(
        &format!("{}/ui/live/eval/evaluations/run", server.url()),
        "run",
    )
    .await?;
    let progress = b.texts(".run-card .progress-text").await?;
    ensure!(progress == ["0 / 6"], "{progress:?}");
    ensure!(!b.texts(".live").await?.is_empty());
    // Rows finish one batch at a time; the page follows.
    let row = |i: usize, ok: bool| {
        CompleteCallSchemaForInsert {
        project_id: p.into(),
        id: format!("row{i}"),
        trace_id: "trace".into(),
        parent_id: Some("run".into()),
        op_name: "Evaluation.predict_and_score".into(),
        started_at: now(),
        ended_at: now(),
        inputs: json!({"self": inputs["self"], "model": inputs["model"], "example": format!("{ds_ref}/attr/rows/id/{}", table.row_digests[i])}).as_object().cloned().unwrap_or_default(),
        output: json!({"output": i, "scores": {"ok": ok}, "model_latency": 0.01}),
        ..Default::default()
    }
    };
    store
        .calls_complete(CallsCompleteReq {
            batch: vec![row(0, true), row(1, false), row(2, true)],
        })
        .await?;
    b.wait_js(
        "return document.querySelector('.run-card .progress-text')?.innerText === '3 / 6'",
        "3 of 6 rows",
    )
    .await?;
    b.wait_js(
        "return document.querySelectorAll('.rows-scroll .grid-row').length === 3",
        "3 rows listed",
    )
    .await?;
    let live = b
        .texts(".metrics-table tr[data-metric='ok.true_fraction'] .metric-value")
        .await?;
    ensure!(live == ["66.7%"], "live pass rate {live:?}");
    store
        .calls_complete(CallsCompleteReq {
            batch: (3..6).map(|i| row(i, true)).collect(),
        })
        .await?;
    store
        .call_end(CallEndReq {
            end: EndedCallSchemaForInsert {
                project_id: p.into(),
                id: "run".into(),
                ended_at: now(),
                output: json!({"ok": {"true_count": 5, "true_fraction": 5.0 / 6.0}}),
                ..Default::default()
            },
        })
        .await?;
    b.wait_js(
        "return document.querySelector('.run-card .status')?.innerText === 'Success'",
        "the run to finish",
    )
    .await?;
    b.wait_js(
        "return document.querySelectorAll('.rows-scroll .grid-row').length === 6",
        "6 rows",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    ensure!(b.texts(".live").await?.is_empty(), "still live");
    teardown(server, b).await?;
    drop(t);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_keys_asks_for_one() -> Result<()> {
    let fx = fixture::load().await?;
    let store: Arc<dyn TraceStore> = fx.store()?;
    let server = tokio::task::spawn_blocking(move || {
        let state = weave_server::AppState::new(store).with_api_keys(["s3cret"]);
        Background::serve(
            weave_server::router(state),
            "127.0.0.1:0".parse().expect("addr"),
        )
    })
    .await?;
    let b = Browser::start().await?;
    b.client
        .goto(&format!("{}{}/traces", server.url(), base(PROJECT)))
        .await?;
    b.wait_js(
        "return !!document.querySelector('.key-form input')",
        "the key prompt",
    )
    .await?;
    b.client
        .find(fantoccini::Locator::Css(".key-form input"))
        .await?
        .send_keys("s3cret")
        .await?;
    b.click(".key-form button").await?;
    b.wait_ready("traces").await?;
    let ops = b.texts(".calls-table .op-link").await?;
    ensure!(ops.len() == 3, "{ops:?}");
    // A 401 was the first answer: that is the one console error expected.
    let errors = b.console_errors().await?;
    ensure!(errors.iter().all(|e| e.contains("401")), "{errors:#?}");
    b.close().await?;
    tokio::task::spawn_blocking(move || server.stop()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_logged_from_python_render_too() -> Result<()> {
    use weave_ui_tests::python;
    let (fx, server, b) = setup().await?;
    let url = server.url();
    let p = base(python::PROJECT);
    // The traces: the renamed call shows its new name; the raising op is an error.
    b.open(&format!("{url}{p}/traces"), "traces").await?;
    let ops = b.texts(".calls-table .op-link").await?;
    ensure!(ops.iter().any(|o| o == "renamed outer call"), "{ops:?}");
    ensure!(
        ops.iter().any(|o| o == "eval-2026-11-29-unique-forest"),
        "{ops:?}"
    );
    // The exception with its Python traceback (a list of frames).
    b.open(
        &format!("{url}{p}/calls/{}", fx.python.failing_call),
        "trace",
    )
    .await?;
    let exc = b.texts(".detail .exception").await?.join("\n");
    ensure!(
        exc.contains("ValueError") && exc.contains("failing_op refused: bad input"),
        "{exc}"
    );
    ensure!(exc.contains("line 380, in failing_op"), "{exc}");
    // The op's code is its obj.py file, highlighted as Python.
    b.click(".detail-head a.btn").await?;
    b.wait_ready("object").await?;
    let code = b.texts(".version-content .code").await?.join("\n");
    ensure!(code.contains("def failing_op"), "{code}");
    let lang: String = serde_json::from_value(
        b.js("return document.querySelector('.version-content .code').dataset.lang")
            .await?,
    )?;
    ensure!(lang == "python", "{lang}");
    // The evaluation: rows from the dataset's row refs, named by their question, with scores.
    b.open(
        &format!("{url}{p}/evaluations/{}", fx.python.eval_run),
        "run",
    )
    .await?;
    let labels = b.texts(".grid-row .row-label").await?;
    ensure!(labels == ["hi", "yo", "abc"], "{labels:?}");
    let marks = b.texts(".grid-row .mark").await?;
    ensure!(marks == ["✓", "✕", "✓"], "{marks:?}");
    let metric = b
        .texts(".metrics-table tr[data-metric='exact_match.correct.true_fraction'] .metric-value")
        .await?;
    ensure!(metric == ["66.7%"], "{metric:?}");
    let model = b.texts(".run-card .run-model").await?;
    ensure!(model == ["qa-model:v0"], "{model:?}");
    teardown(server, b).await
}
