// @ts-check
// Building the page: elements are made with `h`, and every value from the store goes in as a
// text node or an attribute value, never as markup. Also: formatting of times, durations and
// numbers, and the URLs of the pages.

/**
 * @typedef {{
 *   class?: string | (string | false | null | undefined)[],
 *   text?: unknown,
 *   on?: Record<string, (e: any) => void>,
 *   dataset?: Record<string, unknown>,
 *   style?: Record<string, string | number>,
 *   attrs?: Record<string, unknown>,
 *   [prop: string]: unknown,
 * }} Props
 */

/** @typedef {Node | string | number | null | undefined | false | any[]} Child */

/**
 * Makes an element. Children that are not nodes become text nodes.
 * @param {string} tag
 * @param {Props | null} [props]
 * @param {...Child} children
 * @returns {HTMLElement}
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') {
      el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : String(v);
    } else if (k === 'text') {
      el.textContent = String(v);
    } else if (k === 'on') {
      for (const [ev, fn] of Object.entries(/** @type {Record<string, any>} */ (v))) el.addEventListener(ev, fn);
    } else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(/** @type {Record<string, unknown>} */ (v))) {
        if (dv != null) el.dataset[dk] = String(dv);
      }
    } else if (k === 'style') {
      for (const [sk, sv] of Object.entries(/** @type {Record<string, unknown>} */ (v))) el.style.setProperty(sk, String(sv));
    } else if (k === 'attrs') {
      for (const [ak, av] of Object.entries(/** @type {Record<string, unknown>} */ (v))) {
        if (av != null && av !== false) el.setAttribute(ak, av === true ? '' : String(av));
      }
    } else if (k === 'href') {
      el.setAttribute('href', safeHref(String(v)));
    } else {
      /** @type {any} */ (el)[k] = v;
    }
  }
  append(el, children);
  return el;
}

/**
 * Only this UI's own paths are links; anything else (a `javascript:` URL from data...) is not.
 * @param {string} href
 */
export function safeHref(href) {
  return href.startsWith('/ui/') || href === '/ui' ? href : '#';
}

/**
 * @param {Element} el
 * @param {Child[]} children
 */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** @param {Element} el */
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/**
 * Replaces an element's children.
 * @param {Element} el
 * @param {...Child} children
 */
export function fill(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** A link inside the UI. @param {string} path @param {...Child} children */
export function link(path, ...children) {
  return h('a', { href: path }, ...children);
}

const nf = new Intl.NumberFormat('en-US');
/** @param {number | null | undefined} n */
export function fmtInt(n) {
  return n == null ? '–' : nf.format(n);
}

/** @param {number | null | undefined} x @param {number} [digits] */
export function fmtNum(x, digits = 3) {
  if (x == null || Number.isNaN(x)) return '–';
  if (Number.isInteger(x)) return nf.format(x);
  const abs = Math.abs(x);
  if (abs >= 1000) return nf.format(Math.round(x));
  return String(Number(x.toPrecision(digits)));
}

/** @param {number | null | undefined} f fraction 0..1 */
export function fmtPct(f, digits = 1) {
  if (f == null || Number.isNaN(f)) return '–';
  const p = f * 100;
  return `${p.toFixed(Number.isInteger(p) ? 0 : digits)}%`;
}

/** @param {number | null | undefined} ms */
export function fmtDuration(ms) {
  if (ms == null) return '–';
  if (ms < 1) return '<1 ms';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

/** @param {number | null | undefined} s seconds */
export function fmtSeconds(s) {
  return s == null ? '–' : fmtDuration(s * 1000);
}

/** @param {string | null | undefined} iso */
export function parseTime(iso) {
  if (!iso) return NaN;
  // Microseconds are more than Date keeps: cut to milliseconds.
  return Date.parse(iso.replace(/(\.\d{3})\d+/, '$1'));
}

/** @param {number} n */
const two = (n) => String(n).padStart(2, '0');

/** Local date and time, `2026-11-29 14:09:12`. @param {string | null | undefined} iso */
export function fmtTime(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return iso || '–';
  const d = new Date(t);
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** `3 min ago`. @param {string | null | undefined} iso */
export function fmtAgo(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** A UTC timestamp as the store writes them (microseconds, `Z`). @param {Date} d */
export function isoMicros(d) {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** `name` of an op ref `weave:///e/p/op/name:digest`, else the name itself. @param {string} op */
export function opName(op) {
  const m = /^weave:\/\/\/[^/]+\/[^/]+\/op\/([^:]+):/.exec(op);
  return m ? m[1] : op;
}

/**
 * A parsed `weave:///entity/project/kind/name:digest/...` ref.
 * @param {string} uri
 * @returns {{project: string, kind: string, name: string, digest: string, extra: string[]} | null}
 */
export function parseRef(uri) {
  const m = /^weave:\/\/\/([^/]+)\/([^/]+)\/(object|op|table|call)\/([^/]+)(?:\/(.*))?$/.exec(uri);
  if (!m) return null;
  const [, e, p, kind, tail, extra] = m;
  let name = '';
  let digest = tail;
  if (kind === 'object' || kind === 'op') {
    const i = tail.lastIndexOf(':');
    if (i < 0) return null;
    name = tail.slice(0, i);
    digest = tail.slice(i + 1);
  }
  return { project: `${e}/${p}`, kind, name, digest, extra: extra ? extra.split('/') : [] };
}

/** `name:digest8` of a ref. @param {string} uri */
export function shortRef(uri) {
  const r = parseRef(uri);
  if (!r) return uri;
  const d = r.digest.slice(0, 8);
  const base = r.name ? `${r.name}:${d}` : `${r.kind}:${d}`;
  return r.extra.length ? `${base}/…/${r.extra[r.extra.length - 1].slice(0, 8)}` : base;
}

/** @param {string} s */
const enc = (s) => encodeURIComponent(s);

/** @param {string} project `entity/project` */
function base(project) {
  const [e, p] = project.split('/');
  return `/ui/${enc(e)}/${enc(p)}`;
}

/** @param {Record<string, string | number | boolean | null | undefined>} [q] */
export function qs(q) {
  if (!q) return '';
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v != null && v !== '' && v !== false) u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

/** The URLs of the pages. */
export const url = {
  /** @param {string} p @param {Record<string, any>} [q] */
  traces: (p, q) => `${base(p)}/traces${qs(q)}`,
  /** @param {string} p @param {string} id */
  call: (p, id) => `${base(p)}/calls/${enc(id)}`,
  /** @param {string} p */
  evaluations: (p) => `${base(p)}/evaluations`,
  /** @param {string} p @param {string} id */
  evaluation: (p, id) => `${base(p)}/evaluations/${enc(id)}`,
  /** @param {string} p @param {string[]} ids */
  compare: (p, ids) => `${base(p)}/compare${qs({ runs: ids.join(',') })}`,
  /** @param {string} p @param {Record<string, any>} [q] */
  objects: (p, q) => `${base(p)}/objects${qs(q)}`,
  /** @param {string} p @param {string} name */
  object: (p, name) => `${base(p)}/objects/${enc(name)}`,
  /** @param {string} p @param {string} name @param {string} v */
  version: (p, name, v) => `${base(p)}/objects/${enc(name)}/versions/${enc(v)}`,
  /** @param {string} p @param {string} name @param {string} a @param {string} b */
  diff: (p, name, a, b) => `${base(p)}/objects/${enc(name)}/diff${qs({ a, b })}`,
  /**
   * The page of what a ref points at.
   * @param {string} uri
   */
  ref(uri) {
    const r = parseRef(uri);
    if (!r) return null;
    if (r.kind === 'object' || r.kind === 'op') return url.version(r.project, r.name, r.digest);
    if (r.kind === 'call') return url.call(r.project, r.digest);
    return null;
  },
};

/** A status dot and word. @param {string} status */
export function statusBadge(status) {
  const label = {
    success: 'Success',
    error: 'Error',
    running: 'Running',
    descendant_error: 'Child error',
  }[status] || status;
  return h('span', { class: ['status', `status-${status}`], title: label }, h('span', { class: 'dot' }), label);
}

/** A compact loading line. @param {string} [what] */
export function loading(what = 'Loading') {
  return h('div', { class: 'loading' }, h('span', { class: 'spinner' }), `${what}…`);
}

/** An error box for a failed load. @param {unknown} err */
export function errorBox(err) {
  const msg = err instanceof Error ? err.message : String(err);
  return h('div', { class: 'error-box', attrs: { role: 'alert' } }, h('strong', { text: 'Could not load: ' }), msg);
}

/** An empty state. @param {string} title @param {...Child} more */
export function empty(title, ...more) {
  return h('div', { class: 'empty' }, h('div', { class: 'empty-title', text: title }), ...more);
}

/**
 * Copies text, showing a short confirmation on the button.
 * @param {string} text
 * @param {string} [label]
 */
export function copyButton(text, label = 'Copy') {
  const b = h('button', {
    class: 'btn btn-ghost btn-xs',
    type: 'button',
    title: `Copy ${text}`,
    text: label,
    on: {
      click: async () => {
        try {
          await navigator.clipboard.writeText(text);
          b.textContent = 'Copied';
        } catch {
          b.textContent = 'Select it';
        }
        setTimeout(() => (b.textContent = label), 1200);
      },
    },
  });
  return b;
}
