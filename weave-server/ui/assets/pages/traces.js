// @ts-check
// The traces page: a project's calls (trace roots by default), newest first, one server page
// at a time, filtered by op, status, time range and a text search over inputs and outputs,
// sortable by time, latency and op. The filters live in the URL, so a view can be shared.
// While a listed call runs, the page refreshes itself.

import { h, fill, url, fmtTime, fmtAgo, fmtDuration, fmtInt, fmtNum, isoMicros, statusBadge, loading, errorBox, empty } from '../lib/dom.js';
import { post, opFilter } from '../lib/api.js';

const SORTS = {
  started: 'started_at',
  latency: 'summary.weave.latency_ms',
  op: 'summary.weave.trace_name',
};

/** @param {string} local `datetime-local` value */
function toIso(local) {
  const t = Date.parse(local);
  return Number.isNaN(t) ? null : isoMicros(new Date(t));
}

/** @param {import('../app.js').Ctx} ctx */
export async function render(ctx) {
  const p = ctx.project;
  const q = ctx.query;
  ctx.title(`Traces · ${p}`);
  const state = {
    op: q.get('op') || '',
    status: q.get('status') || '',
    from: q.get('from') || '',
    to: q.get('to') || '',
    search: q.get('q') || '',
    all: q.get('all') === '1',
    sort: q.get('sort') || 'started:desc',
    offset: Math.max(0, Number(q.get('offset')) || 0),
    size: [25, 50, 100, 200].includes(Number(q.get('size'))) ? Number(q.get('size')) : 50,
  };

  const opSelect = /** @type {HTMLSelectElement} */ (h('select', { class: 'select', attrs: { 'aria-label': 'Op' } },
    h('option', { value: '', text: 'All ops' })));
  const statusSelect = /** @type {HTMLSelectElement} */ (h('select', { class: 'select', attrs: { 'aria-label': 'Status' } },
    [['', 'Any status'], ['success', 'Success'], ['error', 'Error'], ['descendant_error', 'Child error'], ['running', 'Running']]
      .map(([v, l]) => h('option', { value: v, text: l, selected: v === state.status }))));
  const from = /** @type {HTMLInputElement} */ (h('input', { class: 'input', type: 'datetime-local', value: state.from, attrs: { 'aria-label': 'Started after' } }));
  const to = /** @type {HTMLInputElement} */ (h('input', { class: 'input', type: 'datetime-local', value: state.to, attrs: { 'aria-label': 'Started before' } }));
  const search = /** @type {HTMLInputElement} */ (h('input', {
    class: 'input search', type: 'search', value: state.search, placeholder: 'Search inputs and outputs…',
    attrs: { 'aria-label': 'Search inputs and outputs' },
  }));
  const all = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', checked: state.all }));
  const clearBtn = h('button', { class: 'btn btn-ghost', type: 'button', text: 'Clear' });
  const total = h('span', { class: 'count' });
  const table = h('table', { class: 'table calls-table' });
  const body = h('div', { class: 'table-wrap' }, loading('Loading calls'));
  const pager = h('div', { class: 'pager' });

  fill(ctx.main, h('div', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Traces ', total)),
    h('div', { class: 'filters' },
      opSelect, statusSelect,
      h('label', { class: 'field' }, h('span', { text: 'From' }), from),
      h('label', { class: 'field' }, h('span', { text: 'To' }), to),
      search,
      h('label', { class: 'check', title: 'Show every call, not only trace roots' }, all, ' All calls'),
      clearBtn),
    body, pager));

  // Ops for the filter (published op versions, latest of each).
  post('/objs/query', {
    project_id: p,
    filter: { is_op: true, latest_only: true },
    metadata_only: true,
    sort_by: [{ field: 'object_id', direction: 'asc' }],
  }, ctx.signal).then((res) => {
    const names = [...new Set(res.objs.map((/** @type {any} */ o) => o.object_id))];
    if (state.op && !names.includes(state.op)) names.unshift(state.op);
    for (const n of names) opSelect.append(h('option', { value: n, text: n, selected: n === state.op }));
  }).catch(() => {});

  let polling = false;
  let seq = 0;

  const load = async (/** @type {boolean} */ quiet) => {
    const mine = ++seq;
    if (!quiet) body.classList.add('stale');
    /** @type {any[]} */
    const exprs = [];
    if (state.status) exprs.push({ $eq: [{ $getField: 'summary.weave.status' }, { $literal: state.status }] });
    const fromIso = state.from && toIso(state.from);
    const toIsoV = state.to && toIso(state.to);
    if (fromIso) exprs.push({ $gte: [{ $getField: 'started_at' }, { $literal: fromIso }] });
    if (toIsoV) exprs.push({ $lt: [{ $getField: 'started_at' }, { $literal: toIsoV }] });
    const [sortKey, dir] = state.sort.split(':');
    const res = await post('/ext/ui/calls', {
      project_id: p,
      filter: {
        trace_roots_only: state.all ? null : true,
        op_names: state.op ? opFilter(p, state.op) : null,
      },
      query: exprs.length ? { $expr: exprs.length === 1 ? exprs[0] : { $and: exprs } } : null,
      search: state.search || null,
      sort_by: [{ field: SORTS[/** @type {keyof SORTS} */ (sortKey)] || 'started_at', direction: dir === 'asc' ? 'asc' : 'desc' }],
      limit: state.size,
      offset: state.offset,
    }, ctx.signal);
    if (mine !== seq) return;
    body.classList.remove('stale');
    renderTable(res);
    if (!polling && res.calls.some((/** @type {any} */ c) => c.status === 'running')) {
      polling = true;
      ctx.every(3000, () => load(true));
    }
  };

  /** @param {any} res */
  const renderTable = (res) => {
    total.textContent = fmtInt(res.total);
    const hasCost = res.calls.some((/** @type {any} */ c) => c.cost != null);
    const hasTokens = res.calls.some((/** @type {any} */ c) => c.tokens != null);
    const [sortKey, dir] = state.sort.split(':');
    /** @param {string} key @param {string} label */
    const sortable = (key, label) => {
      const active = sortKey === key;
      const next = active && dir === 'desc' ? 'asc' : 'desc';
      return h('th', { class: ['sortable', active && 'sorted'], attrs: { 'aria-sort': active ? (dir === 'asc' ? 'ascending' : 'descending') : null } },
        h('button', {
          type: 'button',
          class: 'th-btn',
          on: { click: () => update({ sort: `${key}:${next}`, offset: 0 }) },
        }, label, active ? (dir === 'asc' ? ' ↑' : ' ↓') : ''));
    };
    if (!res.calls.length) {
      fill(body, empty(res.total || state.offset ? 'No calls on this page' : 'No calls match',
        h('p', { class: 'muted', text: state.op || state.status || state.search || state.from || state.to ? 'Try clearing the filters.' : 'Nothing has been logged to this project yet.' })));
      fill(pager);
      ctx.ready('traces');
      return;
    }
    fill(table,
      h('thead', null, h('tr', null,
        h('th', { text: 'Status' }),
        sortable('op', 'Op'),
        sortable('started', 'Started'),
        sortable('latency', 'Latency'),
        hasTokens && h('th', { class: 'num', text: 'Tokens' }),
        hasCost && h('th', { class: 'num', text: 'Cost' }),
        h('th', { text: 'Inputs' }),
        h('th', { text: 'Output' }))),
      h('tbody', null, res.calls.map((/** @type {any} */ c) => {
        const href = url.call(p, c.id);
        const name = c.display_name || c.op;
        return h('tr', {
          class: ['call-row', `row-${c.status}`],
          dataset: { callId: c.id },
          on: {
            click: (/** @type {MouseEvent} */ e) => {
              if (e.target instanceof Element && e.target.closest('a, button')) return;
              /** @type {HTMLAnchorElement | null} */ (/** @type {HTMLElement} */ (e.currentTarget).querySelector('a.op-link'))?.click();
            },
          },
        },
        h('td', null, statusBadge(c.status)),
        h('td', { class: 'op-cell' },
          h('a', { href, class: 'op-link', title: c.op_name }, name),
          h('div', { class: 'muted mono small', text: c.id.slice(-12) })),
        h('td', { class: 'time-cell', title: c.started_at }, h('div', { text: fmtTime(c.started_at) }), h('div', { class: 'muted small', text: fmtAgo(c.started_at) })),
        h('td', { class: 'num' }, c.status === 'running' ? h('span', { class: 'muted', text: 'running' }) : fmtDuration(c.latency_ms)),
        hasTokens && h('td', { class: 'num', text: c.tokens == null ? '' : fmtInt(c.tokens) }),
        hasCost && h('td', { class: 'num', text: c.cost == null ? '' : `$${fmtNum(c.cost, 3)}` }),
        h('td', { class: 'preview', title: c.inputs, text: c.inputs }),
        h('td', { class: ['preview', c.exception && 'error-text'], title: c.output, text: c.output }));
      })));
    fill(body, table);
    const first = res.total ? state.offset + 1 : 0;
    const last = state.offset + res.calls.length;
    const sizeSelect = /** @type {HTMLSelectElement} */ (h('select', {
      class: 'select select-sm', attrs: { 'aria-label': 'Rows per page' },
      on: { change: () => update({ size: Number(sizeSelect.value), offset: 0 }) },
    }, [25, 50, 100, 200].map((n) => h('option', { value: n, text: `${n} / page`, selected: n === state.size }))));
    fill(pager,
      h('button', {
        class: 'btn', type: 'button', text: '← Newer', disabled: state.offset === 0,
        on: { click: () => update({ offset: Math.max(0, state.offset - state.size) }) },
      }),
      h('span', { class: 'muted', text: `${fmtInt(first)}–${fmtInt(last)} of ${fmtInt(res.total)}` }),
      h('button', {
        class: 'btn', type: 'button', text: 'Older →', disabled: last >= res.total,
        on: { click: () => update({ offset: state.offset + state.size }) },
      }),
      sizeSelect);
    ctx.ready('traces');
  };

  /** @param {Partial<typeof state>} changes */
  const update = (changes) => {
    Object.assign(state, changes);
    ctx.setQuery({
      op: state.op, status: state.status, from: state.from, to: state.to, q: state.search,
      all: state.all ? '1' : '', sort: state.sort === 'started:desc' ? '' : state.sort,
      offset: state.offset || '', size: state.size === 50 ? '' : state.size,
    });
    load(false).catch((e) => {
      if (!ctx.signal.aborted) fill(body, errorBox(e));
    });
  };

  opSelect.addEventListener('change', () => update({ op: opSelect.value, offset: 0 }));
  statusSelect.addEventListener('change', () => update({ status: statusSelect.value, offset: 0 }));
  from.addEventListener('change', () => update({ from: from.value, offset: 0 }));
  to.addEventListener('change', () => update({ to: to.value, offset: 0 }));
  all.addEventListener('change', () => update({ all: all.checked, offset: 0 }));
  let typing = 0;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = window.setTimeout(() => update({ search: search.value.trim(), offset: 0 }), 250);
  });
  clearBtn.addEventListener('click', () => {
    opSelect.value = '';
    statusSelect.value = '';
    from.value = '';
    to.value = '';
    search.value = '';
    all.checked = false;
    update({ op: '', status: '', from: '', to: '', search: '', all: false, offset: 0 });
  });

  await load(false);
}
