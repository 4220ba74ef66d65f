// @ts-check
// The single page: the header (project picker, sections), the router that maps `/ui/...`
// URLs to pages, and what every page gets (an abort signal that ends its requests and
// polling when the user moves on, a way to update the URL, the "rendered" mark the browser
// tests and timings wait for). Errors anywhere show in a banner and in the console.

import { h, fill, url, loading, errorBox, empty } from './lib/dom.js';
import { projects } from './lib/api.js';
import * as traces from './pages/traces.js';
import * as trace from './pages/trace.js';
import * as evals from './pages/evals.js';
import * as objects from './pages/objects.js';

/**
 * @typedef {{
 *   project: string,
 *   params: string[],
 *   query: URLSearchParams,
 *   main: HTMLElement,
 *   signal: AbortSignal,
 *   ready: (what: string) => void,
 *   setQuery: (q: Record<string, any>) => void,
 *   replacePath: (path: string) => void,
 *   every: (ms: number, fn: () => Promise<unknown> | unknown) => void,
 *   title: (t: string) => void,
 * }} Ctx
 */

/** @type {[RegExp, string, (ctx: Ctx) => Promise<void> | void][]} */
const ROUTES = [
  [/^\/traces$/, 'traces', traces.render],
  [/^\/calls\/([^/]+)$/, 'traces', trace.render],
  [/^\/evaluations$/, 'evaluations', evals.renderList],
  [/^\/evaluations\/([^/]+)$/, 'evaluations', evals.renderRun],
  [/^\/compare$/, 'evaluations', evals.renderCompare],
  [/^\/objects$/, 'objects', objects.renderList],
  [/^\/objects\/([^/]+)$/, 'objects', objects.renderObject],
  [/^\/objects\/([^/]+)\/versions\/([^/]+)$/, 'objects', objects.renderObject],
  [/^\/objects\/([^/]+)\/diff$/, 'objects', objects.renderDiff],
];

const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const picker = /** @type {HTMLSelectElement} */ (document.getElementById('project'));
const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
const banner = /** @type {HTMLElement} */ (document.getElementById('banner'));

/** @type {AbortController | null} */
let current = null;
/** @type {string[]} */
let knownProjects = [];
let readyCount = 0;

/** Errors the page ran into (the browser tests read this too). */
/** @type {string[]} */
const errors = [];
/** @type {any} */ (window).__weaveErrors = errors;

/** @param {string} msg */
function showError(msg) {
  errors.push(msg);
  banner.hidden = false;
  fill(banner, h('strong', { text: 'Something went wrong: ' }), msg,
    h('button', { class: 'btn btn-ghost btn-xs', type: 'button', text: 'Dismiss', on: { click: () => (banner.hidden = true) } }));
}
window.addEventListener('error', (e) => showError(e.message || String(e.error)));
window.addEventListener('unhandledrejection', (e) => {
  const r = e.reason;
  if (r && r.name === 'AbortError') {
    e.preventDefault();
    return;
  }
  showError(r instanceof Error ? r.message : String(r));
});

/** Goes to a page of the UI. @param {string} path @param {{replace?: boolean}} [opts] */
export function navigate(path, opts = {}) {
  if (opts.replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}
/** @type {any} */ (window).__weaveNavigate = navigate;

document.addEventListener('click', (e) => {
  const a = /** @type {HTMLElement | null} */ (e.target instanceof Element ? e.target.closest('a[href]') : null);
  if (!(a instanceof HTMLAnchorElement) || e.defaultPrevented) return;
  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.target) return;
  if (a.origin !== location.origin || !a.pathname.startsWith('/ui/')) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener('popstate', () => route());

/** @param {string} section @param {string | null} project */
function renderNav(section, project) {
  const items = project
    ? [
      ['traces', 'Traces', url.traces(project)],
      ['evaluations', 'Evaluations', url.evaluations(project)],
      ['objects', 'Ops & Objects', url.objects(project)],
    ]
    : [];
  fill(nav, items.map(([key, label, href]) => h('a', {
    href,
    class: ['nav-link', key === section && 'active'],
    attrs: { 'aria-current': key === section ? 'page' : null },
  }, label)));
}

/** @param {string | null} project */
async function renderPicker(project) {
  if (!knownProjects.length || (project && !knownProjects.includes(project))) {
    try {
      knownProjects = await projects();
    } catch {
      // The page shows the error.
    }
  }
  const list = [...knownProjects];
  if (project && !list.includes(project)) list.unshift(project);
  fill(picker, list.length
    ? list.map((p) => h('option', { value: p, selected: p === project, text: p }))
    : h('option', { value: '', text: 'No projects yet' }));
  if (!project) picker.insertBefore(h('option', { value: '', selected: true, text: 'Choose a project…' }), picker.firstChild);
  picker.disabled = list.length === 0;
}
picker.addEventListener('change', () => {
  const p = picker.value;
  if (!p) return;
  const section = nav.querySelector('.active')?.textContent || 'Traces';
  const to = section === 'Evaluations' ? url.evaluations(p) : section === 'Ops & Objects' ? url.objects(p) : url.traces(p);
  navigate(to);
});

/** The landing page: the projects. @param {Ctx} ctx */
async function home(ctx) {
  ctx.title('Projects');
  fill(ctx.main, loading('Loading projects'));
  const list = await projects();
  knownProjects = list;
  if (list.length === 1) {
    navigate(url.traces(list[0]), { replace: true });
    return;
  }
  if (!list.length) {
    fill(ctx.main, empty('No traces yet',
      h('p', { text: 'Log to this server and your projects appear here. From Python: set WF_TRACE_SERVER_URL to this address and call weave.init("entity/project"). From Rust: weave-remote with this URL.' })));
    ctx.ready('home');
    return;
  }
  fill(ctx.main, h('div', { class: 'page' },
    h('h1', { text: 'Projects' }),
    h('ul', { class: 'project-list' }, list.map((p) => h('li', null,
      h('a', { href: url.traces(p), class: 'project-link' }, p),
      h('span', { class: 'muted' }, ' · '),
      h('a', { href: url.evaluations(p), class: 'muted' }, 'evaluations'))))));
  ctx.ready('home');
}

/** Renders the page of the current URL. */
async function route() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const path = location.pathname.replace(/\/+$/, '');
  const m = /^\/ui\/([^/]+)\/([^/]+)(\/.*)?$/.exec(path);
  let project = null;
  let rest = '';
  if (m) {
    project = `${decodeURIComponent(m[1])}/${decodeURIComponent(m[2])}`;
    rest = m[3] || '';
    if (!rest) {
      navigate(url.traces(project), { replace: true });
      return;
    }
  }
  /** @type {Ctx} */
  const ctx = {
    project: project || '',
    params: [],
    query: new URLSearchParams(location.search),
    main,
    signal: controller.signal,
    ready(what) {
      if (controller.signal.aborted) return;
      readyCount += 1;
      document.documentElement.dataset.ready = `${what}:${readyCount}`;
      performance.mark(`weave:ready:${what}`);
    },
    setQuery(q) {
      const u = new URLSearchParams(location.search);
      for (const [k, v] of Object.entries(q)) {
        if (v == null || v === '' || v === false) u.delete(k);
        else u.set(k, String(v));
      }
      const s = u.toString();
      history.replaceState(null, '', location.pathname + (s ? `?${s}` : ''));
    },
    replacePath(p) {
      history.replaceState(null, '', p);
    },
    every(ms, fn) {
      let timer = 0;
      const tick = async () => {
        if (controller.signal.aborted) return;
        try {
          await fn();
        } catch (e) {
          if (!controller.signal.aborted && !(e instanceof DOMException && e.name === 'AbortError')) throw e;
        } finally {
          if (!controller.signal.aborted) timer = window.setTimeout(tick, ms);
        }
      };
      timer = window.setTimeout(tick, ms);
      controller.signal.addEventListener('abort', () => clearTimeout(timer));
    },
    title(t) {
      document.title = `${t} · Weave`;
    },
  };
  let section = '';
  /** @type {(ctx: Ctx) => Promise<void> | void} */
  let handler = home;
  if (project) {
    const found = ROUTES.find(([re]) => re.test(rest));
    if (!found) {
      renderNav('', project);
      fill(main, empty('No such page', h('a', { href: url.traces(project) }, 'Go to the traces')));
      return;
    }
    const [re, sec, fn] = found;
    ctx.params = (re.exec(rest) || []).slice(1).map(decodeURIComponent);
    section = sec;
    handler = fn;
  }
  renderNav(section, project);
  renderPicker(project);
  main.scrollTop = 0;
  try {
    await handler(ctx);
  } catch (e) {
    if (controller.signal.aborted || (e instanceof DOMException && e.name === 'AbortError')) return;
    console.error(e);
    fill(main, errorBox(e));
  }
}

route();
