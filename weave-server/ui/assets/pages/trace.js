// @ts-check
// One trace: the call tree (collapsible; per call its status, duration, tokens and a bar on
// the trace's time axis) beside the selected call's detail (inputs, output, exception with
// traceback, attributes, summary with usage, the op and a link to its code). The URL names
// the selected call, so every call has a link. The tree loads without inputs and outputs
// (`/ext/ui/trace` sends ids, ops, times, status and tokens only) and draws only the rows in
// view, so a 10,000-call trace stays quick; the detail loads the one call shown. A running
// trace refreshes itself.

import { h, fill, url, fmtTime, fmtDuration, fmtInt, parseTime, opName, statusBadge, loading, errorBox, empty, copyButton } from '../lib/dom.js';
import { post } from '../lib/api.js';
import { jsonView } from '../lib/json.js';
import { VirtualList } from '../lib/vlist.js';

const ROW_HEIGHT = 30;
/** Traces up to this many calls open fully; larger ones open the first level only. */
const OPEN_ALL_BELOW = 200;

/**
 * @typedef {{
 *   c: any, kids: TreeNode[], depth: number, open: boolean, parent: TreeNode | null,
 *   start: number, end: number, size: number,
 * }} TreeNode
 */

/** Total tokens of a summary's usage. @param {any} summary */
export function tokensOf(summary) {
  const usage = summary && summary.usage;
  if (!usage || typeof usage !== 'object') return null;
  let total = null;
  for (const u of Object.values(usage)) {
    if (!u || typeof u !== 'object') continue;
    const t = u.total_tokens ?? ((u.prompt_tokens ?? u.input_tokens ?? 0) + (u.completion_tokens ?? u.output_tokens ?? 0));
    if (typeof t === 'number') total = (total ?? 0) + t;
  }
  return total;
}

/** The status of a call (a tree node's, or a full call's from its summary). @param {any} c */
function statusOf(c) {
  return c.status || (c.summary && c.summary.weave && c.summary.weave.status) ||
    (c.exception ? 'error' : c.ended_at ? 'success' : 'running');
}

/** The op's short name of a tree node or a full call. @param {any} c */
function opOf(c) {
  return c.op || opName(c.op_name);
}

/** @param {import('../app.js').Ctx} ctx */
export async function render(ctx) {
  const p = ctx.project;
  const [callId] = ctx.params;
  ctx.title('Trace');
  fill(ctx.main, loading('Loading the trace'));
  const first = await post('/call/read', { project_id: p, id: callId }, ctx.signal);
  if (!first.call) {
    fill(ctx.main, empty(`No call ${callId} in ${p}`, h('a', { href: url.traces(p) }, 'Back to the traces')));
    ctx.ready('trace');
    return;
  }
  const traceId = first.call.trace_id;

  /** @type {Map<string, TreeNode>} */
  let byId = new Map();
  /** @type {TreeNode[]} */
  let roots = [];
  /** @type {TreeNode[]} */
  let visible = [];
  let t0 = 0;
  let t1 = 1;
  let selected = callId;
  let filterText = '';
  let anyRunning = false;

  const header = h('div', { class: 'trace-head' });
  const treeInfo = h('span', { class: 'muted small' });
  const filterInput = /** @type {HTMLInputElement} */ (h('input', {
    class: 'input input-sm', type: 'search', placeholder: 'Find op…', attrs: { 'aria-label': 'Find op in the tree' },
  }));
  const scroller = h('div', { class: 'tree-scroll', attrs: { role: 'tree', tabindex: '0', 'aria-label': 'Call tree' } });
  const detail = h('section', { class: 'detail', attrs: { 'aria-label': 'Call detail' } });
  fill(ctx.main, h('div', { class: 'trace-page' },
    header,
    h('div', { class: 'split' },
      h('section', { class: 'tree-panel', attrs: { 'aria-label': 'Call tree' } },
        h('div', { class: 'tree-toolbar' },
          filterInput,
          h('button', { class: 'btn btn-ghost btn-xs', type: 'button', text: 'Expand all', on: { click: () => setAll(true) } }),
          h('button', { class: 'btn btn-ghost btn-xs', type: 'button', text: 'Collapse', on: { click: () => setAll(false) } }),
          treeInfo),
        h('div', { class: 'tree-axis' }, h('span', { text: 'Call' }), h('span', { class: 'axis-label', text: 'Timeline' })),
        scroller),
      detail)));

  /** @type {VirtualList<TreeNode>} */
  const list = new VirtualList(scroller, { rowHeight: ROW_HEIGHT, render: (n) => treeRow(n) });
  ctx.signal.addEventListener('abort', () => list.destroy());

  /** @param {any[]} calls @param {boolean} initial */
  const build = (calls, initial) => {
    const old = byId;
    byId = new Map();
    roots = [];
    anyRunning = false;
    for (const c of calls) {
      const prev = old.get(c.id);
      const start = parseTime(c.started_at);
      byId.set(c.id, {
        c, kids: [], depth: 0, parent: null, open: prev ? prev.open : false,
        start, end: c.ended_at ? parseTime(c.ended_at) : NaN, size: 1,
      });
      if (!c.ended_at) anyRunning = true;
    }
    for (const n of byId.values()) {
      const parent = n.c.parent_id ? byId.get(n.c.parent_id) : null;
      if (parent) {
        parent.kids.push(n);
        n.parent = parent;
      } else {
        roots.push(n);
      }
    }
    // Depths and subtree sizes, without recursion (traces can be deep).
    const order = [];
    const stack = [...roots];
    while (stack.length) {
      const n = /** @type {TreeNode} */ (stack.pop());
      order.push(n);
      for (const k of n.kids) {
        k.depth = n.depth + 1;
        stack.push(k);
      }
    }
    for (let i = order.length - 1; i >= 0; i--) {
      const n = order[i];
      if (n.parent) n.parent.size += n.size;
    }
    const now = Date.now();
    t0 = Infinity;
    for (const n of byId.values()) if (n.start < t0) t0 = n.start;
    if (!Number.isFinite(t0)) t0 = now;
    let end = t0 + 1;
    for (const n of byId.values()) end = Math.max(end, Number.isNaN(n.end) ? (n.c.ended_at ? n.start : now) : n.end);
    t1 = end;
    if (initial) {
      const openAll = byId.size <= OPEN_ALL_BELOW;
      for (const n of byId.values()) n.open = openAll || n.depth === 0;
    }
    // The selected call's ancestors are open.
    for (let n = byId.get(selected)?.parent; n; n = n.parent) n.open = true;
  };

  const flatten = () => {
    /** @type {TreeNode[]} */
    const out = [];
    const needle = filterText.toLowerCase();
    /** @type {Set<TreeNode> | null} */
    let keep = null;
    if (needle) {
      keep = new Set();
      for (const n of byId.values()) {
        const name = (n.c.display_name || opOf(n.c)).toLowerCase();
        if (name.includes(needle)) for (let a = /** @type {TreeNode | null} */ (n); a && !keep.has(a); a = a.parent) keep.add(a);
      }
    }
    const stack = [...roots].reverse();
    while (stack.length) {
      const n = /** @type {TreeNode} */ (stack.pop());
      if (keep && !keep.has(n)) continue;
      out.push(n);
      if (n.open || keep) for (let i = n.kids.length - 1; i >= 0; i--) stack.push(n.kids[i]);
    }
    visible = out;
    const matches = keep ? [...keep].filter((n) => (n.c.display_name || opOf(n.c)).toLowerCase().includes(needle)).length : 0;
    treeInfo.textContent = keep
      ? `${fmtInt(matches)} matching`
      : `${fmtInt(byId.size)} calls${truncated ? ' (the first; the trace has more)' : ''}`;
    list.setItems(visible);
  };

  /** @param {boolean} open */
  const setAll = (open) => {
    for (const n of byId.values()) n.open = open || n.depth === 0;
    flatten();
  };

  /** @param {TreeNode} n */
  const treeRow = (n) => {
    const c = n.c;
    const status = statusOf(c);
    const name = c.display_name || opOf(c);
    const span = Math.max(1, t1 - t0);
    const end = Number.isNaN(n.end) ? (c.ended_at ? n.start : Date.now()) : n.end;
    const left = ((n.start - t0) / span) * 100;
    const width = Math.max(0.4, ((end - n.start) / span) * 100);
    const tokens = c.tokens ?? null;
    const latency = Number.isNaN(n.end) ? null : n.end - n.start;
    const caret = n.kids.length
      ? h('button', {
        class: ['caret', n.open && 'open'], type: 'button',
        attrs: { 'aria-label': n.open ? 'Collapse' : 'Expand', tabindex: '-1' },
        on: {
          click: (/** @type {Event} */ e) => {
            e.stopPropagation();
            n.open = !n.open;
            flatten();
          },
        },
      })
      : h('span', { class: 'caret-space' });
    return h('div', {
      class: ['tree-row', `row-${status}`, c.id === selected && 'selected'],
      dataset: { callId: c.id, op: opOf(c), depth: n.depth },
      attrs: { role: 'treeitem', 'aria-selected': c.id === selected ? 'true' : 'false', 'aria-expanded': n.kids.length ? String(n.open) : null },
      on: { click: () => select(c.id) },
    },
    h('div', { class: 'tree-name', style: { 'padding-left': `${n.depth * 14 + 4}px` } },
      caret,
      h('span', { class: ['dot', `dot-${status}`], title: status }),
      h('span', { class: 'name', title: opOf(c), text: name }),
      n.kids.length && !n.open ? h('span', { class: 'kids', text: `${fmtInt(n.size - 1)}` }) : null),
    h('div', { class: 'tree-metrics' },
      tokens != null ? h('span', { class: 'chip', title: 'tokens', text: `${fmtInt(tokens)} tok` }) : null,
      h('span', { class: 'dur', text: latency == null ? '…' : fmtDuration(latency) })),
    h('div', { class: 'bar-track', title: `${fmtDuration(latency)} from +${fmtDuration(n.start - t0)}` },
      h('div', { class: ['bar', `bar-${status}`], style: { left: `${left}%`, width: `${Math.min(width, 100 - left)}%` } })));
  };

  let detailSeq = 0;
  let detailRunning = false;
  let useFirst = true;
  /** @param {string} id */
  const select = (id) => {
    selected = id;
    ctx.replacePath(url.call(p, id));
    list.refresh();
    const i = visible.findIndex((n) => n.c.id === id);
    if (i >= 0) list.scrollToIndex(i);
    loadDetail(id).catch((e) => {
      if (!ctx.signal.aborted) fill(detail, errorBox(e));
    });
  };

  /** @param {string} id */
  const loadDetail = async (id) => {
    const mine = ++detailSeq;
    const res = useFirst && id === first.call.id ? first : await post('/call/read', { project_id: p, id }, ctx.signal);
    useFirst = false;
    if (mine !== detailSeq) return;
    detailRunning = !!res.call && !res.call.ended_at;
    if (!res.call) {
      fill(detail, empty('No such call'));
      return;
    }
    fill(detail, callDetail(p, res.call, byId.get(id)));
  };

  scroller.addEventListener('keydown', (e) => {
    const i = visible.findIndex((n) => n.c.id === selected);
    const n = visible[i];
    if (e.key === 'ArrowDown' && i < visible.length - 1) select(visible[i + 1].c.id);
    else if (e.key === 'ArrowUp' && i > 0) select(visible[i - 1].c.id);
    else if (e.key === 'ArrowRight' && n && n.kids.length && !n.open) {
      n.open = true;
      flatten();
    } else if (e.key === 'ArrowLeft' && n) {
      if (n.open && n.kids.length) {
        n.open = false;
        flatten();
      } else if (n.parent) select(n.parent.c.id);
    } else return;
    e.preventDefault();
  });
  let typing = 0;
  filterInput.addEventListener('input', () => {
    clearTimeout(typing);
    typing = window.setTimeout(() => {
      filterText = filterInput.value.trim();
      flatten();
    }, 150);
  });

  // What the tree shows of every call (no inputs or outputs): a 10,000-call trace is ~2 MB.
  let truncated = false;
  const fetchTrace = async () => {
    const res = await post('/ext/ui/trace', { project_id: p, trace_id: traceId }, ctx.signal);
    truncated = res.truncated;
    return res.calls;
  };

  const renderHeader = () => {
    const root = roots[0]?.c || first.call;
    const status = statusOf(root);
    const isEval = opOf(root) === 'Evaluation.evaluate';
    let tokens = null;
    for (const r of roots) {
      const t = r.c.tokens;
      if (t != null) tokens = (tokens ?? 0) + t;
    }
    fill(header,
      h('div', { class: 'crumbs' }, h('a', { href: url.traces(p), text: 'Traces' }), ' / ',
        h('span', { class: 'mono', text: traceId.slice(-12), title: traceId })),
      h('div', { class: 'trace-title' },
        h('h1', { text: root.display_name || opOf(root) }),
        statusBadge(status),
        isEval ? h('a', { class: 'btn btn-sm', href: url.evaluation(p, root.id) }, 'Open as evaluation →') : null),
      h('div', { class: 'stats' },
        stat('Started', fmtTime(root.started_at)),
        stat('Duration', root.ended_at ? fmtDuration(parseTime(root.ended_at) - parseTime(root.started_at)) : 'running'),
        stat('Calls', fmtInt(byId.size)),
        tokens != null ? stat('Tokens', fmtInt(tokens)) : null,
        anyRunning ? h('span', { class: 'live' }, h('span', { class: 'pulse' }), 'Live') : null));
  };

  build(await fetchTrace(), true);
  renderHeader();
  flatten();
  const i = visible.findIndex((n) => n.c.id === selected);
  if (i >= 0) list.scrollToIndex(i);
  await loadDetail(selected);
  ctx.ready('trace');

  if (anyRunning) {
    ctx.every(2000, async () => {
      if (!anyRunning) return;
      build(await fetchTrace(), false);
      renderHeader();
      flatten();
      if (detailRunning) await loadDetail(selected);
    });
  }
}

/** @param {string} label @param {string} value */
function stat(label, value) {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-label', text: label }), h('div', { class: 'stat-value', text: value }));
}

/**
 * A section with a title (collapsible).
 * @param {string} title
 * @param {Node} content
 * @param {{open?: boolean, extra?: Node | null}} [opts]
 */
function section(title, content, opts = {}) {
  const d = /** @type {HTMLDetailsElement} */ (h('details', { class: 'section', open: opts.open ?? true },
    h('summary', { class: 'section-title' }, title, opts.extra || null), h('div', { class: 'section-body' }, content)));
  return d;
}

/** The exception of a call, parsed when it is Weave's JSON. @param {string} raw */
function exceptionView(raw) {
  /** @type {any} */
  let e = null;
  try {
    e = JSON.parse(raw);
  } catch {
    // plain text
  }
  if (!e || typeof e !== 'object') return h('pre', { class: 'traceback', text: raw });
  let tb = e.traceback;
  if (Array.isArray(tb)) {
    tb = tb.map((f) => (f && typeof f === 'object'
      ? `  File "${f.filename ?? '?'}", line ${f.line_number ?? '?'}, in ${f.function_name ?? '?'}${f.text ? `\n    ${String(f.text).trim()}` : ''}`
      : String(f))).join('\n');
  }
  return h('div', { class: 'exception' },
    h('div', { class: 'exc-head' }, h('span', { class: 'exc-type', text: e.type || 'Error' }), h('span', { class: 'exc-msg', text: e.message || '' })),
    tb ? h('pre', { class: 'traceback', text: String(tb) }) : null);
}

/** Usage per model as a small table. @param {any} usage */
function usageTable(usage) {
  const rows = Object.entries(usage || {}).filter(([, u]) => u && typeof u === 'object');
  if (!rows.length) return null;
  return h('table', { class: 'table table-sm' },
    h('thead', null, h('tr', null, ['Model', 'Requests', 'Prompt', 'Completion', 'Total'].map((t) => h('th', { text: t })))),
    h('tbody', null, rows.map(([m, u]) => h('tr', null,
      h('td', { class: 'mono', text: m }),
      h('td', { class: 'num', text: fmtInt(u.requests) }),
      h('td', { class: 'num', text: fmtInt(u.prompt_tokens ?? u.input_tokens) }),
      h('td', { class: 'num', text: fmtInt(u.completion_tokens ?? u.output_tokens) }),
      h('td', { class: 'num', text: fmtInt(u.total_tokens ?? ((u.prompt_tokens ?? 0) + (u.completion_tokens ?? 0))) })))));
}

/**
 * The detail of one call.
 * @param {string} p
 * @param {any} c
 * @param {TreeNode | undefined} node
 */
function callDetail(p, c, node) {
  const status = statusOf(c);
  const name = c.display_name || opName(c.op_name);
  const opHref = c.op_name.startsWith('weave:///') ? url.ref(c.op_name) : null;
  const digest = c.op_name.startsWith('weave:///') ? c.op_name.split(':').pop() : '';
  const latency = c.ended_at ? parseTime(c.ended_at) - parseTime(c.started_at) : null;
  const summary = { ...(c.summary || {}) };
  const usage = summary.usage;
  delete summary.weave;
  const tokens = tokensOf(c.summary);
  const parts = [];
  parts.push(h('div', { class: 'detail-head' },
    h('h2', { class: 'detail-title', text: name }),
    statusBadge(status),
    opHref ? h('a', { class: 'btn btn-sm', href: opHref, title: c.op_name }, `Op ${opName(c.op_name)}:${digest.slice(0, 8)} · code →`) : null));
  parts.push(h('dl', { class: 'meta' },
    h('dt', { text: 'Call' }), h('dd', null, h('span', { class: 'mono', text: c.id }), copyButton(c.id)),
    h('dt', { text: 'Started' }), h('dd', { text: fmtTime(c.started_at) }),
    h('dt', { text: 'Latency' }), h('dd', { text: latency == null ? 'running' : fmtDuration(latency) }),
    tokens != null ? [h('dt', { text: 'Tokens' }), h('dd', { text: fmtInt(tokens) })] : null,
    c.parent_id ? [h('dt', { text: 'Parent' }), h('dd', null, h('a', { class: 'mono', href: url.call(p, c.parent_id), text: c.parent_id.slice(-12) }))] : null,
    node && node.kids.length ? [h('dt', { text: 'Children' }), h('dd', { text: fmtInt(node.kids.length) })] : null));
  if (c.exception) parts.push(section('Exception', exceptionView(c.exception)));
  parts.push(section('Inputs', Object.keys(c.inputs || {}).length ? jsonView(c.inputs, { open: 2 }) : h('p', { class: 'muted', text: 'No inputs' })));
  if (!c.exception || c.output != null) {
    parts.push(section('Output', c.ended_at ? jsonView(c.output, { open: 2 }) : h('p', { class: 'muted', text: 'Running…' })));
  }
  if (c.attributes && Object.keys(c.attributes).length) parts.push(section('Attributes', jsonView(c.attributes, { open: 1 }), { open: false }));
  const ut = usageTable(usage);
  if (ut) parts.push(section('Usage', ut));
  delete summary.usage;
  if (Object.keys(summary).length) parts.push(section('Summary', jsonView(summary, { open: 1 }), { open: false }));
  const el = h('div', { class: 'detail-inner', dataset: { callId: c.id } }, parts);
  return el;
}
