// @ts-check
// Ops and objects: every op, model, dataset and evaluation of a project with its versions; a
// version's code (ops) or attributes (objects); a dataset's rows as a paged table; and the
// diff between two versions, which answers "what changed between the run that scored well
// and the one that did not".

import { h, fill, url, fmtTime, fmtAgo, fmtInt, loading, empty, copyButton, parseRef } from '../lib/dom.js';
import { post, postText } from '../lib/api.js';
import { jsonView, previewText } from '../lib/json.js';
import { codeBlock } from '../lib/code.js';

const KINDS = [
  ['', 'All'],
  ['op', 'Ops'],
  ['Model', 'Models'],
  ['Dataset', 'Datasets'],
  ['Evaluation', 'Evaluations'],
  ['other', 'Other'],
];

/** @param {any} o */
function kindOf(o) {
  if (o.kind === 'op') return 'op';
  const b = o.base_object_class;
  return b === 'Model' || b === 'Dataset' || b === 'Evaluation' ? b : 'other';
}

/** @param {any} o */
function kindLabel(o) {
  if (o.kind === 'op') return 'Op';
  return o.leaf_object_class && o.leaf_object_class !== o.base_object_class
    ? `${o.base_object_class || 'Object'} · ${o.leaf_object_class}`
    : (o.base_object_class || o.leaf_object_class || 'Object');
}

/** @param {import('../app.js').Ctx} ctx */
export async function renderList(ctx) {
  const p = ctx.project;
  ctx.title(`Ops & Objects · ${p}`);
  fill(ctx.main, loading('Loading ops and objects'));
  const res = await post('/objs/query', {
    project_id: p,
    filter: { latest_only: true },
    metadata_only: true,
    sort_by: [{ field: 'created_at', direction: 'desc' }],
  }, ctx.signal);
  /** @type {any[]} */
  const objs = res.objs;
  let kind = ctx.query.get('kind') || '';
  const tabs = h('div', { class: 'tabs', attrs: { role: 'tablist' } });
  const body = h('div', { class: 'table-wrap' });
  const draw = () => {
    fill(tabs, KINDS.map(([k, label]) => {
      const n = k ? objs.filter((o) => kindOf(o) === k).length : objs.length;
      return h('button', {
        type: 'button', class: ['tab', kind === k && 'active'], dataset: { tab: k || 'all' },
        attrs: { role: 'tab', 'aria-selected': String(kind === k) },
        on: {
          click: () => {
            kind = k;
            ctx.setQuery({ kind: k });
            draw();
          },
        },
      }, label, h('span', { class: 'tab-count', text: fmtInt(n) }));
    }));
    const rows = objs.filter((o) => !kind || kindOf(o) === kind);
    if (!rows.length) {
      fill(body, empty(objs.length ? 'None of this kind' : 'No ops or objects yet'));
      return;
    }
    fill(body, h('table', { class: 'table objects-table' },
      h('thead', null, h('tr', null, ['Name', 'Kind', 'Versions', 'Latest', 'Updated'].map((t) => h('th', { text: t })))),
      h('tbody', null, rows.map((o) => h('tr', { dataset: { object: o.object_id } },
        h('td', null, h('a', { href: url.object(p, o.object_id), class: 'strong', text: o.object_id })),
        h('td', null, h('span', { class: ['kind-chip', `kind-${kindOf(o)}`], text: kindLabel(o) })),
        h('td', { class: 'num', text: fmtInt(o.version_index + 1) }),
        h('td', { class: 'mono small', text: `v${o.version_index} · ${o.digest.slice(0, 8)}` }),
        h('td', null, h('span', { text: fmtAgo(o.created_at), title: fmtTime(o.created_at) })))))));
  };
  fill(ctx.main, h('div', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Ops & Objects ', h('span', { class: 'count', text: fmtInt(objs.length) }))),
    tabs, body));
  draw();
  ctx.ready('objects');
}

/**
 * An object's versions, and one version's content (latest unless the URL names one).
 * @param {import('../app.js').Ctx} ctx
 */
export async function renderObject(ctx) {
  const p = ctx.project;
  const [name, want] = ctx.params;
  ctx.title(`${name} · ${p}`);
  fill(ctx.main, loading(`Loading ${name}`));
  const [versions, chosen] = await Promise.all([
    post('/objs/query', {
      project_id: p,
      filter: { object_ids: [name] },
      metadata_only: true,
      sort_by: [{ field: 'version_index', direction: 'desc' }],
    }, ctx.signal),
    post('/obj/read', { project_id: p, object_id: name, digest: want || 'latest' }, ctx.signal),
  ]);
  /** @type {any[]} */
  const vs = versions.objs;
  const obj = chosen.obj;
  /** @type {[string, string]} */
  const pair = [vs[1]?.digest || '', vs[0]?.digest || ''];
  const diffBtn = /** @type {HTMLButtonElement} */ (h('button', { class: 'btn', type: 'button', text: 'Diff selected' }));
  const syncDiff = () => {
    diffBtn.disabled = !pair[0] || !pair[1] || pair[0] === pair[1];
  };
  diffBtn.addEventListener('click', () => {
    const [a, b] = [...pair].sort((x, y) => vs.findIndex((v) => v.digest === y) - vs.findIndex((v) => v.digest === x));
    /** @type {any} */ (window).__weaveNavigate(url.diff(p, name, a, b));
  });
  const versionList = h('table', { class: 'table table-sm versions-table' },
    h('thead', null, h('tr', null, h('th', { text: 'A', title: 'older side of a diff' }), h('th', { text: 'B', title: 'newer side of a diff' }),
      h('th', { text: 'Version' }), h('th', { text: 'Created' }))),
    h('tbody', null, vs.map((v) => h('tr', { class: v.digest === obj.digest ? 'selected' : '', dataset: { digest: v.digest } },
      [0, 1].map((side) => h('td', null, h('input', {
        type: 'radio', name: `side${side}`, checked: pair[side] === v.digest, attrs: { 'aria-label': `${side ? 'B' : 'A'}: v${v.version_index}` },
        on: {
          change: () => {
            pair[side] = v.digest;
            syncDiff();
          },
        },
      }))),
      h('td', null, h('a', { href: url.version(p, name, v.digest) }, `v${v.version_index}`),
        v.is_latest ? h('span', { class: 'tag', text: 'latest' }) : null,
        h('div', { class: 'mono small muted', text: v.digest.slice(0, 12) })),
      h('td', { class: 'small', text: fmtTime(v.created_at) })))));
  syncDiff();

  const content = h('div', { class: 'version-content' });
  fill(ctx.main, h('div', { class: 'page' },
    h('div', { class: 'crumbs' }, h('a', { href: url.objects(p), text: 'Ops & Objects' }), ' / ', name),
    h('div', { class: 'page-head' },
      h('h1', null, name, ' ', h('span', { class: 'muted', text: `v${obj.version_index}` })),
      h('span', { class: ['kind-chip', `kind-${kindOf(obj)}`], text: kindLabel(obj) }),
      h('div', { class: 'spacer' }),
      obj.kind === 'op' ? h('a', { class: 'btn', href: url.traces(p, { op: name, all: '1' }) }, 'Calls of this op →') : null),
    h('div', { class: 'object-layout' },
      h('aside', { class: 'versions-panel' }, h('div', { class: 'panel-title' }, `${fmtInt(vs.length)} version${vs.length === 1 ? '' : 's'}`, diffBtn), versionList),
      content)));
  await renderVersion(ctx, obj, content);
  ctx.ready('object');
}

/**
 * @param {import('../app.js').Ctx} ctx
 * @param {any} obj
 * @param {HTMLElement} el
 */
async function renderVersion(ctx, obj, el) {
  const p = ctx.project;
  const uri = `weave:///${p}/${obj.kind === 'op' ? 'op' : 'object'}/${obj.object_id}:${obj.digest}`;
  const meta = h('dl', { class: 'meta' },
    h('dt', { text: 'Ref' }), h('dd', null, h('span', { class: 'mono small', text: uri }), copyButton(uri)),
    h('dt', { text: 'Created' }), h('dd', { text: fmtTime(obj.created_at) }));
  const parts = [meta];
  const val = obj.val || {};
  if (obj.kind === 'op') {
    const code = await opCode(ctx, val);
    // Where the code is: the version's metadata (Rust ops), or older clients' value.
    const src = obj.metadata && obj.metadata.file ? obj.metadata : val;
    if (src.file) parts.push(h('p', { class: 'muted small mono', text: `${src.module ? `${src.module} · ` : ''}${src.file}${src.line ? `:${src.line}` : ''}` }));
    parts.push(code ? codeBlock(code.text, code.lang, { maxLines: 2000 }) : h('p', { class: 'muted', text: 'No code recorded for this op.' }));
  } else {
    const rowsRef = typeof val.rows === 'string' ? parseRef(val.rows) : null;
    if (rowsRef && rowsRef.kind === 'table') {
      const box = h('div', { class: 'dataset-rows' });
      parts.push(h('h2', { class: 'section-h', text: 'Rows' }), box);
      await datasetRows(ctx, rowsRef.project, rowsRef.digest, box);
    }
    parts.push(h('h2', { class: 'section-h', text: 'Attributes' }), jsonView(val, { open: 2 }));
  }
  fill(el, parts);
}

/** The language of a source file, by its extension. @param {string} name */
function languageOf(name) {
  if (name.endsWith('.py')) return 'python';
  if (name.endsWith('.rs')) return 'rust';
  return null;
}

/**
 * An op's code: its files (`obj.py` of Python ops, `obj.rs` of Rust ones) or, from older Rust
 * clients, inline `code`.
 * @param {import('../app.js').Ctx} ctx
 * @param {any} val
 */
async function opCode(ctx, val) {
  if (typeof val.code === 'string') return { text: val.code, lang: val.language || 'rust' };
  const files = val.files && typeof val.files === 'object' ? val.files : null;
  if (!files) return null;
  const names = Object.keys(files).sort();
  let text = '';
  for (const n of names) {
    const body = await postText('/file/content', { project_id: ctx.project, digest: files[n] }, ctx.signal);
    text += names.length > 1 ? `# --- ${n} ---\n${body}` : body;
  }
  const langs = [...new Set(names.map(languageOf))];
  return { text, lang: langs.length === 1 ? langs[0] : null };
}

/**
 * A dataset's rows as a paged table; a row opens in full below.
 * @param {import('../app.js').Ctx} ctx
 * @param {string} project
 * @param {string} digest
 * @param {HTMLElement} box
 */
async function datasetRows(ctx, project, digest, box) {
  const size = 50;
  let offset = 0;
  const { count } = await post('/table/query_stats', { project_id: project, digest }, ctx.signal);
  const table = h('div', { class: 'table-wrap' });
  const pager = h('div', { class: 'pager' });
  const full = h('div', { class: 'row-full' });
  fill(box, table, pager, full);
  const load = async () => {
    const res = await post('/table/query', { project_id: project, digest, limit: size, offset }, ctx.signal);
    /** @type {any[]} */
    const rows = res.rows;
    /** @type {string[]} */
    const cols = [];
    for (const r of rows) {
      if (r.val && typeof r.val === 'object' && !Array.isArray(r.val)) {
        for (const k of Object.keys(r.val)) if (!cols.includes(k) && cols.length < 8) cols.push(k);
      }
    }
    fill(table, h('table', { class: 'table table-sm rows-table' },
      h('thead', null, h('tr', null, h('th', { class: 'num', text: '#' }), cols.length ? cols.map((c) => h('th', { text: c })) : h('th', { text: 'Value' }))),
      h('tbody', null, rows.map((r, i) => h('tr', {
        class: 'clickable',
        dataset: { row: r.digest },
        on: { click: () => fill(full, h('h3', { text: `Row ${fmtInt(r.original_index ?? offset + i)}` }), jsonView(r.val, { open: 2 })) },
      },
      h('td', { class: 'num muted', text: fmtInt(r.original_index ?? offset + i) }),
      cols.length
        ? cols.map((c) => h('td', { class: 'preview', text: previewText(r.val?.[c], 100) }))
        : h('td', { class: 'preview', text: previewText(r.val, 160) }))))));
    fill(pager,
      h('button', { class: 'btn', type: 'button', text: '← Previous', disabled: offset === 0, on: { click: () => { offset = Math.max(0, offset - size); load(); } } }),
      h('span', { class: 'muted', text: `${fmtInt(count ? offset + 1 : 0)}–${fmtInt(Math.min(count, offset + rows.length))} of ${fmtInt(count)} rows` }),
      h('button', { class: 'btn', type: 'button', text: 'Next →', disabled: offset + size >= count, on: { click: () => { offset += size; load(); } } }));
  };
  await load();
}

/** The diff between two versions. @param {import('../app.js').Ctx} ctx */
export async function renderDiff(ctx) {
  const p = ctx.project;
  const [name] = ctx.params;
  const a = ctx.query.get('a') || 'v0';
  const b = ctx.query.get('b') || 'latest';
  ctx.title(`Diff ${name}`);
  fill(ctx.main, loading('Comparing versions'));
  const d = await post('/ext/ui/diff', { project_id: p, object_id: name, a, b }, ctx.signal);
  const body = d.hunks.length
    ? h('div', { class: 'diff' }, d.hunks.map((/** @type {any[]} */ hunk) => h('div', { class: 'hunk' },
      h('div', { class: 'hunk-head', text: `@@ line ${hunk[0].old ?? hunk[0].new} @@` }),
      hunk.map((l) => h('div', { class: ['diff-line', `diff-${l.tag}`] },
        h('span', { class: 'ln', text: l.old ?? '' }),
        h('span', { class: 'ln', text: l.new ?? '' }),
        h('span', { class: 'sign', text: l.tag === 'insert' ? '+' : l.tag === 'delete' ? '−' : ' ' }),
        h('span', { class: 'diff-text', text: l.text }))))))
    : empty('These versions are the same');
  fill(ctx.main, h('div', { class: 'page' },
    h('div', { class: 'crumbs' }, h('a', { href: url.objects(p), text: 'Ops & Objects' }), ' / ',
      h('a', { href: url.object(p, name), text: name }), ' / diff'),
    h('div', { class: 'page-head' },
      h('h1', null, name, ': ',
        h('a', { href: url.version(p, name, d.a.digest), text: `v${d.a.version_index}` }), ' → ',
        h('a', { href: url.version(p, name, d.b.digest), text: `v${d.b.version_index}` })),
      h('span', { class: 'diff-stat' }, h('span', { class: 'added', text: `+${fmtInt(d.added)}` }), ' ', h('span', { class: 'removed', text: `−${fmtInt(d.removed)}` })),
      h('span', { class: 'muted', text: d.kind === 'code' ? `code${d.language ? ` (${d.language})` : ''}` : 'attributes' })),
    d.truncated ? h('p', { class: 'muted', text: 'The diff is long; only its first 20,000 lines are shown.' }) : null,
    body));
  ctx.ready('diff');
}

