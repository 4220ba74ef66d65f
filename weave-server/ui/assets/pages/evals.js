// @ts-check
// Evaluations: the runs of a project (model, dataset, date, headline scores, progress while
// running), one run's rows, and the comparison of runs: summary metrics side by side with
// deltas against the first (baseline) run, and every dataset row with each run's outputs and
// scores, filterable to the rows whose verdicts differ (regressions first). A row opens to
// its outputs in full and links to each trial's trace. Running runs update as rows finish.

import { h, fill, url, fmtTime, fmtAgo, fmtDuration, fmtInt, fmtNum, fmtPct, fmtSeconds, statusBadge, loading, errorBox, empty } from '../lib/dom.js';
import { post } from '../lib/api.js';
import { jsonView, previewText } from '../lib/json.js';
import { codeBlock, guessLanguage } from '../lib/code.js';
import { VirtualList } from '../lib/vlist.js';

const RUN_LETTERS = 'ABCDEFGH';
const ROW_HEIGHT = 58;

/**
 * A metric's name for people: without `.true_fraction`/`.mean`, and without the scorer's
 * name when the run has one scorer.
 * @param {string} path
 * @param {string[]} scorers
 */
export function metricLabel(path, scorers) {
  let p = path.replace(/\.(true_fraction|mean)$/, '');
  if (scorers.length === 1 && p.startsWith(`${scorers[0]}.`)) p = p.slice(scorers[0].length + 1);
  return p.replace(/\.pass@/, ' pass@');
}

/** @param {string} kind @param {number | null | undefined} v */
function fmtMetric(kind, v) {
  if (v == null) return '–';
  if (kind === 'fraction') return fmtPct(v);
  if (kind === 'seconds') return fmtSeconds(v);
  if (kind === 'count') return fmtInt(Math.round(v));
  return fmtNum(v);
}

/** @param {string} kind @param {number} d */
function fmtDelta(kind, d) {
  const sign = d > 0 ? '+' : d < 0 ? '−' : '±';
  const a = Math.abs(d);
  if (kind === 'fraction') return `${sign}${(a * 100).toFixed(1)} pt`;
  if (kind === 'seconds') return `${sign}${fmtSeconds(a)}`;
  if (kind === 'count') return `${sign}${fmtInt(Math.round(a))}`;
  return `${sign}${fmtNum(a)}`;
}

/** Headline metrics of a run: scores (fractions, pass@k, means). @param {any} run */
function headline(run) {
  return run.metrics.filter(isHeadline);
}

/** A progress bar. @param {number} done @param {number | null} total */
function progress(done, total) {
  const frac = total ? Math.min(1, done / total) : 0;
  return h('div', { class: 'progress', title: `${fmtInt(done)} of ${total == null ? '?' : fmtInt(total)} rows` },
    h('div', { class: 'progress-bar', style: { width: `${(frac * 100).toFixed(1)}%` } }),
    h('span', { class: 'progress-text', text: `${fmtInt(done)} / ${total == null ? '?' : fmtInt(total)}` }));
}

/** @param {any} label */
function objLink(p, label) {
  if (!label) return h('span', { class: 'muted', text: '–' });
  const href = label.uri ? url.ref(label.uri) : null;
  return href ? h('a', { href, title: label.uri, text: label.label }) : h('span', { text: label.label });
}

/** @param {import('../app.js').Ctx} ctx */
export async function renderList(ctx) {
  const p = ctx.project;
  ctx.title(`Evaluations · ${p}`);
  fill(ctx.main, loading('Loading evaluations'));
  /** @type {Set<string>} */
  const chosen = new Set();
  const compareBtn = /** @type {HTMLButtonElement} */ (h('button', { class: 'btn btn-primary', type: 'button', disabled: true }));
  const count = h('span', { class: 'count' });
  const body = h('div', { class: 'table-wrap' });
  /** @type {any[]} */
  let runs = [];
  const updateButton = () => {
    compareBtn.textContent = chosen.size ? `Compare ${chosen.size} selected` : 'Select runs to compare';
    compareBtn.disabled = chosen.size < 2;
  };
  compareBtn.addEventListener('click', () => {
    // The oldest selected run is the baseline.
    const ids = runs.filter((r) => chosen.has(r.id)).reverse().map((r) => r.id);
    /** @type {any} */ (window).__weaveNavigate(url.compare(p, ids));
  });
  fill(ctx.main, h('div', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Evaluations ', count), h('div', { class: 'spacer' }), compareBtn),
    body));
  updateButton();

  let polling = false;
  const load = async () => {
    const res = await post('/ext/ui/evaluations', { project_id: p, limit: 200 }, ctx.signal);
    runs = res.runs;
    count.textContent = fmtInt(res.total);
    if (!runs.length) {
      fill(body, empty('No evaluation runs in this project',
        h('p', { class: 'muted', text: 'Runs of Evaluation.evaluate (weave::eval::Evaluation in Rust, weave.Evaluation in Python) appear here.' })));
      ctx.ready('evaluations');
      return;
    }
    fill(body, h('table', { class: 'table evals-table' },
      h('thead', null, h('tr', null,
        h('th', { class: 'check-col' }), h('th', { text: 'Started' }), h('th', { text: 'Evaluation' }), h('th', { text: 'Model' }),
        h('th', { text: 'Dataset' }), h('th', { text: 'Rows' }), h('th', { text: 'Scores' }),
        h('th', { class: 'num', text: 'Latency' }), h('th', { text: 'Status' }))),
      h('tbody', null, runs.map((r) => {
        const box = /** @type {HTMLInputElement} */ (h('input', {
          type: 'checkbox', checked: chosen.has(r.id), attrs: { 'aria-label': `Select run ${r.id}` },
          on: {
            change: () => {
              if (box.checked) chosen.add(r.id);
              else chosen.delete(r.id);
              updateButton();
            },
          },
        }));
        const lat = r.metrics.find((/** @type {any} */ m) => m.path === 'model_latency.mean');
        return h('tr', { class: ['run-row', `row-${r.status}`], dataset: { runId: r.id } },
          h('td', { class: 'check-col' }, box),
          h('td', null, h('a', { href: url.evaluation(p, r.id), text: fmtTime(r.started_at) }), h('div', { class: 'muted small', text: fmtAgo(r.started_at) })),
          h('td', null, objLink(p, r.evaluation)),
          h('td', { class: 'model-cell' }, objLink(p, r.model), modelNote(r.model)),
          h('td', null, objLink(p, r.dataset)),
          h('td', null, r.status === 'running'
            ? progress(r.rows_done, r.rows_expected)
            : h('span', { text: `${fmtInt(r.rows_started)}${r.trials > 1 ? ` (${r.trials} trials)` : ''}` })),
          h('td', null, h('div', { class: 'score-chips' }, headline(r).slice(0, 4).map((/** @type {any} */ m) => h('span', { class: 'score-chip' },
            h('span', { class: 'muted', text: `${metricLabel(m.path, r.scorers)} ` }), fmtMetric(m.kind, m.value))))),
          h('td', { class: 'num', text: lat ? fmtSeconds(lat.value) : '' }),
          h('td', null, statusBadge(r.status)));
      }))));
    ctx.ready('evaluations');
    if (!polling && runs.some((r) => r.status === 'running')) {
      polling = true;
      ctx.every(3000, load);
    }
  };
  await load();
}

/** A model's distinguishing attribute (e.g. `model_name`). @param {any} model */
function modelNote(model) {
  const attrs = model?.attributes || {};
  const key = ['model_name', 'model', 'name'].find((k) => typeof attrs[k] === 'string' && attrs[k] !== model.name);
  return key ? h('div', { class: 'muted small', text: `${key}: ${attrs[key]}` }) : null;
}

/** @param {import('../app.js').Ctx} ctx */
export async function renderRun(ctx) {
  return compareView(ctx, [ctx.params[0]]);
}

/** @param {import('../app.js').Ctx} ctx */
export async function renderCompare(ctx) {
  const ids = (ctx.query.get('runs') || '').split(',').map((s) => s.trim()).filter(Boolean);
  if (!ids.length) {
    fill(ctx.main, empty('No runs chosen', h('a', { href: url.evaluations(ctx.project) }, 'Choose runs to compare')));
    ctx.ready('compare');
    return;
  }
  return compareView(ctx, ids);
}

/**
 * The primary score of a cell: the first boolean score path (else the first numeric one).
 * @param {any[]} scores
 */
function primaryPath(scores) {
  return (scores.find((s) => s.boolean) || scores[0] || null);
}

/** @param {any} cell @param {any} primary @param {number} trials */
function passMark(cell, primary, trials) {
  if (!cell) return h('span', { class: 'mark mark-missing', title: 'no result', text: '—' });
  const errored = cell.trials.some((/** @type {any} */ t) => t.error);
  if (!primary) return h('span', { class: 'mark', text: errored ? '!' : '·' });
  const v = cell.values[primary.path];
  if (primary.boolean) {
    const n = cell.trials.length;
    if (n > 1 || trials > 1) {
      const k = Math.round((v ?? 0) * n);
      return h('span', { class: ['mark', k === n ? 'mark-pass' : k === 0 ? 'mark-fail' : 'mark-partial'], title: `${k} of ${n} trials passed`, text: `${k}/${n}` });
    }
    return v >= 0.5
      ? h('span', { class: 'mark mark-pass', title: 'passed', text: '✓' })
      : h('span', { class: ['mark mark-fail', errored && 'mark-error'], title: errored ? 'error' : 'failed', text: errored ? '!' : '✕' });
  }
  return h('span', { class: 'mark', text: fmtNum(v) });
}

/** Two lines of an output for a table cell: for code, its `def` line and its last line. @param {any} trial */
function outputPreview(trial) {
  if (!trial) return '';
  if (trial.error && trial.output == null) return trial.error;
  const o = trial.output;
  if (typeof o === 'string') {
    const lines = o.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim());
    const def = lines.findIndex((l) => /^\s*(async\s+)?def\s/.test(l));
    if (def >= 0 && lines.length > def + 1) return `${lines[def]}\n${lines[lines.length - 1]}`;
    return lines.slice(0, 2).join('\n') || o.slice(0, 200);
  }
  return previewText(o, 160);
}

/** What identifies an example besides its label: its first other text field. @param {any} ex @param {string} label */
function exampleSubtitle(ex, label) {
  if (ex && typeof ex === 'object' && !Array.isArray(ex)) {
    for (const [k, v] of Object.entries(ex)) {
      if (v === label || v == null) continue;
      return `${k}: ${previewText(v, 90)}`;
    }
  }
  return previewText(ex, 90);
}

/** Whether a metric is a headline score (a pass rate or a mean score). @param {any} m */
function isHeadline(m) {
  return (m.kind === 'fraction' || m.kind === 'number') && !m.lower_is_better;
}

/**
 * The comparison (or, with one id, a run's page).
 * @param {import('../app.js').Ctx} ctx
 * @param {string[]} ids
 */
async function compareView(ctx, ids) {
  const p = ctx.project;
  const single = ids.length === 1;
  ctx.title(single ? 'Evaluation run' : `Compare ${ids.length} runs`);
  fill(ctx.main, loading(single ? 'Loading the run' : 'Comparing runs'));

  const head = h('div', { class: 'compare-head' });
  const metricsBox = h('div', { class: 'metrics-box' });
  const tabs = h('div', { class: 'tabs', attrs: { role: 'tablist' } });
  const find = /** @type {HTMLInputElement} */ (h('input', { class: 'input input-sm', type: 'search', placeholder: 'Find row…', attrs: { 'aria-label': 'Find row' } }));
  const rowsHead = h('div', { class: 'rows-head' });
  const scroller = h('div', { class: 'rows-scroll', attrs: { role: 'grid', 'aria-label': 'Rows' } });
  const detailBox = h('section', { class: 'row-detail', attrs: { 'aria-label': 'Row detail' } });
  fill(ctx.main, h('div', { class: 'page compare-page' },
    head,
    metricsBox,
    h('div', { class: 'rows-section' },
      h('div', { class: 'rows-toolbar' }, tabs, h('div', { class: 'spacer' }), find),
      rowsHead, scroller),
    detailBox));

  /** @type {any} */
  let data = null;
  let tab = '';
  let selectedKey = '';
  let findText = '';
  /** @type {any[]} */
  let shown = [];
  /** @type {VirtualList<any>} */
  const list = new VirtualList(scroller, { rowHeight: ROW_HEIGHT, render: (r) => rowEl(r) });
  ctx.signal.addEventListener('abort', () => list.destroy());

  const cols = () => `minmax(140px, 1.1fr) ${single ? '' : '110px '}${data.runs.map(() => 'minmax(180px, 2fr)').join(' ')}`;

  /** @param {any} r */
  const rowEl = (r) => {
    const primary = primaryPath(data.scores);
    const el = h('div', {
      class: ['grid-row', `verdict-${r.verdict}`, r.key === selectedKey && 'selected'],
      dataset: { rowKey: r.key, verdict: r.verdict, label: r.label },
      attrs: { role: 'row', tabindex: '-1' },
      style: { 'grid-template-columns': cols() },
      on: { click: () => selectRow(r.key) },
    },
    h('div', { class: 'cell label-cell', attrs: { role: 'gridcell' } },
      h('div', { class: 'row-label', text: r.label, title: r.label }),
      h('div', { class: 'muted small', text: exampleSubtitle(r.example, r.label) })),
    single ? null : h('div', { class: 'cell', attrs: { role: 'gridcell' } }, verdictBadge(r.verdict)),
    r.cells.map((/** @type {any} */ cell, /** @type {number} */ i) => h('div', { class: 'cell run-cell', attrs: { role: 'gridcell' }, dataset: { run: RUN_LETTERS[i] } },
      passMark(cell, primary, data.runs[i].trials),
      h('pre', { class: 'out-preview', text: cell ? outputPreview(cell.trials[0]) : '' }))));
    return el;
  };

  /** @param {string} key */
  const selectRow = (key) => {
    selectedKey = key;
    list.refresh();
    const r = data.rows.find((/** @type {any} */ x) => x.key === key);
    fill(detailBox, r ? rowDetail(p, r, data) : null);
    if (r) detailBox.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  };

  const applyFilter = () => {
    const needle = findText.toLowerCase();
    shown = data.rows.filter((/** @type {any} */ r) => {
      if (needle && !r.label.toLowerCase().includes(needle)) return false;
      switch (tab) {
        case 'differ': return r.verdict === 'regression' || r.verdict === 'improvement' || r.verdict === 'changed';
        case 'regression': return r.verdict === 'regression';
        case 'improvement': return r.verdict === 'improvement';
        case 'failed': {
          const primary = primaryPath(data.scores);
          const c = r.cells[0];
          return c && primary && (c.values[primary.path] ?? 0) < 1;
        }
        case 'errors': return r.cells.some((/** @type {any} */ c) => c && c.trials.some((/** @type {any} */ t) => t.error));
        default: return true;
      }
    });
    scroller.style.setProperty('height', `${Math.max(3 * ROW_HEIGHT, Math.min(shown.length * ROW_HEIGHT + 2, Math.round(window.innerHeight * 0.62)))}px`);
    list.setItems(shown);
    renderTabs();
  };

  const renderTabs = () => {
    const c = data.counts;
    const primary = primaryPath(data.scores);
    const failed = single && primary ? data.rows.filter((/** @type {any} */ r) => r.cells[0] && (r.cells[0].values[primary.path] ?? 0) < 1).length : 0;
    const errors = data.rows.filter((/** @type {any} */ r) => r.cells.some((/** @type {any} */ x) => x && x.trials.some((/** @type {any} */ t) => t.error))).length;
    const items = single
      ? [['all', 'All rows', c.rows], ['failed', 'Not passed', failed], ['errors', 'Errors', errors]]
      : [['differ', 'Verdicts differ', c.differ], ['regression', 'Regressions', c.regressions], ['improvement', 'Improvements', c.improvements], ['all', 'All rows', c.rows]];
    fill(tabs, items.map(([key, label, n]) => h('button', {
      type: 'button',
      class: ['tab', tab === key && 'active'],
      dataset: { tab: key },
      attrs: { role: 'tab', 'aria-selected': String(tab === key) },
      on: {
        click: () => {
          tab = String(key);
          ctx.setQuery({ rows: tab });
          applyFilter();
        },
      },
    }, label, h('span', { class: 'tab-count', text: fmtInt(Number(n)) }))));
  };

  const renderHead = () => {
    const anyRunning = data.runs.some((/** @type {any} */ r) => r.status === 'running');
    fill(head,
      h('div', { class: 'crumbs' }, h('a', { href: url.evaluations(p), text: 'Evaluations' }), ' / ', single ? 'Run' : 'Compare'),
      h('div', { class: 'run-cards' }, data.runs.map((/** @type {any} */ r, /** @type {number} */ i) => h('div', { class: ['run-card', `run-${RUN_LETTERS[i]}`], dataset: { runId: r.id } },
        h('div', { class: 'run-card-top' },
          single ? null : h('span', { class: 'run-letter', text: RUN_LETTERS[i], title: i === 0 ? 'baseline' : '' }),
          h('span', { class: 'run-model' }, objLink(p, r.model)),
          statusBadge(r.status)),
        modelNote(r.model),
        h('div', { class: 'run-meta' },
          h('span', null, 'Evaluation ', objLink(p, r.evaluation)),
          r.dataset ? h('span', null, 'Dataset ', objLink(p, r.dataset)) : null,
          h('span', { text: fmtTime(r.started_at) }),
          r.latency_ms != null ? h('span', { text: fmtDuration(r.latency_ms) }) : null,
          r.trials > 1 ? h('span', { text: `${r.trials} trials` }) : null),
        h('div', { class: 'run-headline' }, r.metrics.filter(isHeadline).slice(0, 3).map((/** @type {any} */ m) => h('span', { class: 'headline-metric' },
          h('span', { class: 'headline-value', text: fmtMetric(m.kind, m.value) }),
          h('span', { class: 'headline-label', text: metricLabel(m.path, r.scorers) })))),
        r.status === 'running' ? progress(r.rows_done, r.rows_expected) : null,
        r.exception ? h('div', { class: 'error-text small', text: r.exception }) : null,
        h('div', { class: 'run-links' },
          h('a', { href: url.call(p, r.id) }, 'Trace →'),
          single ? null : h('a', { href: url.evaluation(p, r.id) }, 'Run →'))))),
      diffLinks(p, data.runs),
      anyRunning ? h('div', { class: 'live' }, h('span', { class: 'pulse' }), 'Live: updating as rows finish') : null);
  };

  const renderMetrics = () => {
    if (!data.metrics.length) {
      fill(metricsBox);
      return;
    }
    const scorers = data.runs[0].scorers;
    fill(metricsBox, h('table', { class: 'table metrics-table' },
      h('thead', null, h('tr', null, h('th', { text: 'Metric' }),
        data.runs.map((/** @type {any} */ r, /** @type {number} */ i) => h('th', { class: ['num', !single && 'no-caps'] }, single ? 'Value' : `${RUN_LETTERS[i]} · ${r.model.label}`)))),
      h('tbody', null, data.metrics.map((/** @type {any} */ m) => h('tr', { class: isHeadline(m) ? 'headline' : 'secondary', dataset: { metric: m.path } },
        h('td', { class: 'metric-name', title: m.path, text: metricLabel(m.path, scorers) }),
        m.values.map((/** @type {number | null} */ v, /** @type {number} */ i) => h('td', { class: 'num' },
          h('span', { class: 'metric-value', text: fmtMetric(m.kind, v) }),
          m.deltas[i] != null && Math.abs(m.deltas[i]) > 1e-12
            ? h('span', { class: ['delta', m.better[i] === true ? 'delta-good' : m.better[i] === false ? 'delta-bad' : ''], text: fmtDelta(m.kind, m.deltas[i]) })
            : (i > 0 && m.deltas[i] != null ? h('span', { class: 'delta', text: '±0' }) : null))))))));
  };

  const renderRowsHead = () => {
    fill(rowsHead, h('div', { class: 'grid-row grid-head', style: { 'grid-template-columns': cols() } },
      h('div', { class: 'cell', text: 'Row' }),
      single ? null : h('div', { class: 'cell', text: 'Verdict' }),
      data.runs.map((/** @type {any} */ r, /** @type {number} */ i) => h('div', { class: ['cell', !single && 'no-caps'] },
        single ? 'Output' : `${RUN_LETTERS[i]} · ${r.model.label}`))));
  };

  const load = async () => {
    data = await post('/ext/ui/compare', { project_id: p, call_ids: ids }, ctx.signal);
    if (!tab) tab = ctx.query.get('rows') || (single || !data.counts.differ ? 'all' : 'differ');
    renderHead();
    renderMetrics();
    renderRowsHead();
    applyFilter();
    if (selectedKey) {
      const r = data.rows.find((/** @type {any} */ x) => x.key === selectedKey);
      if (r) fill(detailBox, rowDetail(p, r, data));
    }
  };
  await load();
  ctx.ready(single ? 'run' : 'compare');
  if (data.runs.some((/** @type {any} */ r) => r.status === 'running')) {
    ctx.every(2000, async () => {
      if (!data.runs.some((/** @type {any} */ r) => r.status === 'running')) return;
      await load();
    });
  }
  let typing = 0;
  find.addEventListener('input', () => {
    clearTimeout(typing);
    typing = window.setTimeout(() => {
      findText = find.value.trim();
      applyFilter();
    }, 150);
  });
}

/**
 * Links to what changed between the baseline and each other run: the diff of their models
 * (and evaluations, datasets) when they are versions of one object.
 * @param {string} p
 * @param {any[]} runs
 */
function diffLinks(p, runs) {
  const links = [];
  const base = runs[0];
  runs.slice(1).forEach((r, k) => {
    for (const [what, a, b] of [['model', base.model, r.model], ['evaluation', base.evaluation, r.evaluation], ['dataset', base.dataset, r.dataset]]) {
      if (a && b && a.name === b.name && a.digest && b.digest && a.digest !== b.digest) {
        links.push(h('a', { class: 'btn btn-sm', href: url.diff(p, a.name, a.digest, b.digest), dataset: { diff: what } },
          `What changed in the ${what}: ${a.label} → ${b.label}${runs.length > 2 ? ` (${RUN_LETTERS[k + 1]})` : ''}`));
      }
    }
  });
  return links.length ? h('div', { class: 'diff-links' }, links) : null;
}

/** @param {string} v */
function verdictBadge(v) {
  const label = { regression: 'Regression', improvement: 'Improvement', changed: 'Changed', missing: 'Missing', same: 'Same' }[v] || v;
  return h('span', { class: ['verdict', `verdict-badge-${v}`], text: label });
}

/**
 * A row in full: the example, and per run each trial's output, scores and error, with a link
 * to its trace.
 * @param {string} p
 * @param {any} r
 * @param {any} data
 */
function rowDetail(p, r, data) {
  const single = data.runs.length === 1;
  return h('div', { class: 'row-detail-inner', dataset: { rowKey: r.key } },
    h('div', { class: 'row-detail-head' },
      h('h2', { text: r.label }),
      single ? null : verdictBadge(r.verdict),
      r.index != null ? h('span', { class: 'muted', text: `dataset row ${fmtInt(r.index)}` }) : null),
    h('details', { class: 'section', open: false },
      h('summary', { class: 'section-title', text: 'Example' }),
      h('div', { class: 'section-body' }, jsonView(r.example, { open: 1 }))),
    h('div', { class: 'row-runs', style: { 'grid-template-columns': `repeat(${data.runs.length}, minmax(0, 1fr))` } },
      r.cells.map((/** @type {any} */ cell, /** @type {number} */ i) => h('div', { class: ['row-run', `run-${RUN_LETTERS[i]}`] },
        h('div', { class: 'row-run-head' },
          single ? null : h('span', { class: 'run-letter', text: RUN_LETTERS[i] }),
          h('strong', { text: data.runs[i].model.label })),
        cell ? cell.trials.map((/** @type {any} */ t, /** @type {number} */ k) => h('div', { class: 'trial' },
          h('div', { class: 'trial-head' },
            cell.trials.length > 1 ? h('span', { class: 'muted', text: `Trial ${k + 1}` }) : null,
            statusBadge(t.error ? 'error' : t.status),
            t.latency_s != null ? h('span', { class: 'muted small', text: fmtSeconds(t.latency_s) }) : null,
            h('a', { class: 'btn btn-sm', href: url.call(p, t.call_id) }, 'Open trace →')),
          t.error ? h('div', { class: 'error-text trial-error', text: t.error }) : null,
          h('div', { class: 'trial-scores' }, jsonView(t.scores, { open: 2 })),
          typeof t.output === 'string' && t.output.includes('\n')
            ? codeBlock(t.output, guessLanguage(t.output) || 'python', { maxLines: 200 })
            : jsonView(t.output, { open: 2 }),
          t.truncated ? h('div', { class: 'muted small', text: 'Output shortened here; the trace has it in full.' }) : null))
          : h('p', { class: 'muted', text: 'No result for this row in this run.' })))));
}
