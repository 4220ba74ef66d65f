// @ts-check
// Values as an expandable tree: objects and lists open on demand (children are built when
// opened, so a huge value costs nothing until looked at), long lists and strings show a first
// part with "show more", multi-line strings keep their lines, code is highlighted, and refs to
// objects and calls link to their pages. Everything is text.

import { h, shortRef, url, fmtInt } from './dom.js';
import { codeBlock, guessLanguage } from './code.js';

const ITEMS_STEP = 100;
const CHARS_STEP = 2000;

/**
 * @typedef {{open?: number, lang?: string | null}} ViewOpts
 *   open: nesting levels opened at first (default 1).
 */

/**
 * The view of a value.
 * @param {unknown} value
 * @param {ViewOpts} [opts]
 * @returns {HTMLElement}
 */
export function jsonView(value, opts = {}) {
  return h('div', { class: 'json' }, node(value, 0, opts.open ?? 1, opts.lang ?? null));
}

/** @param {unknown} v */
function summary(v) {
  if (Array.isArray(v)) return `[${fmtInt(v.length)} item${v.length === 1 ? '' : 's'}]`;
  const n = Object.keys(/** @type {object} */ (v)).length;
  return `{${fmtInt(n)} key${n === 1 ? '' : 's'}}`;
}

/**
 * @param {unknown} v
 * @param {number} depth
 * @param {number} open
 * @param {string | null} lang
 * @returns {HTMLElement}
 */
function node(v, depth, open, lang) {
  if (v === null || v === undefined) return h('span', { class: 'j-null', text: 'null' });
  if (typeof v === 'boolean') return h('span', { class: 'j-bool', text: String(v) });
  if (typeof v === 'number') return h('span', { class: 'j-num', text: String(v) });
  if (typeof v === 'string') return stringNode(v, lang);
  const entries = Array.isArray(v)
    ? v.map((x, i) => /** @type {[string, unknown]} */ ([String(i), x]))
    : Object.entries(/** @type {object} */ (v));
  if (entries.length === 0) return h('span', { class: 'j-punct', text: Array.isArray(v) ? '[]' : '{}' });
  const details = /** @type {HTMLDetailsElement} */ (h('details', { class: 'j-node' }));
  const sum = h('summary', { class: 'j-summary' }, h('span', { class: 'j-count', text: summary(v) }));
  const body = h('div', { class: 'j-body' });
  details.append(sum, body);
  let built = false;
  const build = () => {
    if (built) return;
    built = true;
    let shown = 0;
    const more = h('button', { class: 'btn btn-ghost btn-xs show-more', type: 'button' });
    const step = () => {
      const upto = Math.min(entries.length, shown + ITEMS_STEP);
      for (; shown < upto; shown++) {
        const [k, x] = entries[shown];
        const row = h('div', { class: 'j-row' },
          h('span', { class: Array.isArray(v) ? 'j-index' : 'j-key', text: k }),
          h('span', { class: 'j-colon', text: ': ' }));
        row.append(node(x, depth + 1, open, lang));
        body.insertBefore(row, more.isConnected ? more : null);
      }
      if (shown < entries.length) {
        more.textContent = `Show ${fmtInt(Math.min(ITEMS_STEP, entries.length - shown))} more of ${fmtInt(entries.length - shown)}`;
        if (!more.isConnected) body.append(more);
      } else {
        more.remove();
      }
    };
    more.addEventListener('click', step);
    step();
  };
  details.addEventListener('toggle', () => details.open && build());
  if (depth < open) {
    details.open = true;
    build();
  }
  return details;
}

/**
 * A string: a ref links to its page; a multi-line string keeps its lines (highlighted when it
 * is code); a long one shows its start and a button for more.
 * @param {string} s
 * @param {string | null} lang
 */
function stringNode(s, lang) {
  const target = s.startsWith('weave:///') ? url.ref(s) : null;
  if (target) {
    return h('a', { class: 'j-ref', href: target, title: s }, shortRef(s));
  }
  if (s.startsWith('weave:///')) return h('span', { class: 'j-ref', title: s, text: shortRef(s) });
  const multiline = s.includes('\n');
  const codeLang = multiline ? (lang || guessLanguage(s)) : null;
  if (codeLang && s.length <= 200_000) {
    return codeBlock(s, codeLang, { maxLines: 300 });
  }
  if (s.length <= CHARS_STEP) {
    return multiline
      ? h('pre', { class: 'j-text', text: s })
      : h('span', { class: 'j-str', text: s });
  }
  // Long text: the first part, then more on demand.
  const el = h('pre', { class: 'j-text' });
  const text = document.createTextNode('');
  el.append(text);
  let shown = 0;
  const more = h('button', { class: 'btn btn-ghost btn-xs show-more', type: 'button' });
  const all = h('button', { class: 'btn btn-ghost btn-xs show-more', type: 'button', text: 'Show all' });
  const wrap = h('div', { class: 'j-long' }, el, h('div', { class: 'j-more' }, more, all,
    h('span', { class: 'muted small', text: ` ${fmtInt(s.length)} characters` })));
  /** @param {number} upto */
  const show = (upto) => {
    shown = Math.min(s.length, upto);
    text.data = s.slice(0, shown) + (shown < s.length ? '…' : '');
    if (shown >= s.length) {
      more.remove();
      all.remove();
    } else {
      more.textContent = `Show ${fmtInt(Math.min(shown * 4, s.length - shown))} more`;
    }
  };
  more.addEventListener('click', () => show(shown * 5));
  all.addEventListener('click', () => show(s.length));
  show(CHARS_STEP);
  return wrap;
}

/**
 * A one-line preview of a value (for table cells).
 * @param {unknown} v
 * @param {number} [max]
 */
export function previewText(v, max = 120) {
  let s;
  if (typeof v === 'string') s = v.startsWith('weave:///') ? shortRef(v) : v;
  else {
    try {
      s = JSON.stringify(v, (_k, x) => (typeof x === 'string' && x.length > max ? `${x.slice(0, max)}…` : x));
    } catch {
      s = String(v);
    }
  }
  s = String(s ?? '').replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
