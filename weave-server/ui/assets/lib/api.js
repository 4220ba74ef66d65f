// @ts-check
// Talking to this server: the same HTTP API the Weave clients use (JSON, JSONL for calls, raw
// bytes for files) plus the UI's `/ext/ui/...` routes. When the server wants an API key, the
// page asks for it once and keeps it for this browser tab (sessionStorage).

import { h } from './dom.js';

const KEY = 'weave.apiKey';

/** A failed request, with the server's reason. */
export class ApiError extends Error {
  /** @param {number} status @param {string} reason @param {string} path */
  constructor(status, reason, path) {
    super(`${reason} (${status} from ${path})`);
    this.status = status;
    this.reason = reason;
    this.path = path;
  }
}

/** @returns {Record<string, string>} */
function authHeaders() {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** @type {Promise<void> | null} */
let asking = null;

/** Asks for an API key (once, however many requests are waiting). @param {string} why */
function askForKey(why) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const input = /** @type {HTMLInputElement} */ (h('input', {
      type: 'password',
      class: 'input',
      placeholder: 'API key',
      autocomplete: 'current-password',
      attrs: { 'aria-label': 'API key' },
    }));
    const form = h('form', { class: 'key-form' },
      h('h2', { text: 'This server needs an API key' }),
      h('p', { class: 'muted', text: why }),
      input,
      h('button', { class: 'btn btn-primary', type: 'submit', text: 'Continue' }));
    const overlay = h('div', { class: 'overlay' }, form);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      overlay.remove();
      asking = null;
      resolve();
    });
    document.body.append(overlay);
    input.focus();
  });
  return asking;
}

/**
 * POSTs JSON and returns the raw response (after a key prompt on 401).
 * @param {string} path
 * @param {unknown} body
 * @param {AbortSignal} [signal]
 */
async function send(path, body, signal) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeaders() },
      body: JSON.stringify(body ?? {}),
      signal,
    });
    if (res.status === 401 && attempt < 3) {
      let reason = 'The server refused the request without a valid key.';
      try {
        reason = (await res.json()).reason || reason;
      } catch {
        // keep the default
      }
      await askForKey(reason);
      continue;
    }
    if (!res.ok) {
      let reason = res.statusText || 'request failed';
      try {
        const j = await res.json();
        reason = j.reason || j.detail || reason;
      } catch {
        // not JSON
      }
      throw new ApiError(res.status, String(reason), path);
    }
    return res;
  }
}

/**
 * POST returning JSON.
 * @param {string} path
 * @param {unknown} body
 * @param {AbortSignal} [signal]
 * @returns {Promise<any>}
 */
export async function post(path, body, signal) {
  return (await send(path, body, signal)).json();
}

/**
 * POST to a JSONL route (`/calls/stream_query`), returning the objects.
 * @param {string} path
 * @param {unknown} body
 * @param {AbortSignal} [signal]
 * @returns {Promise<any[]>}
 */
export async function postJsonl(path, body, signal) {
  const text = await (await send(path, body, signal)).text();
  const out = [];
  for (const line of text.split('\n')) {
    if (line) out.push(JSON.parse(line));
  }
  return out;
}

/**
 * POST returning text (`/file/content`).
 * @param {string} path
 * @param {unknown} body
 * @param {AbortSignal} [signal]
 */
export async function postText(path, body, signal) {
  return (await send(path, body, signal)).text();
}

/** The projects in the store. @returns {Promise<string[]>} */
export async function projects() {
  return (await post('/ext/projects', {})).projects;
}

/** Op-name filter for an op in any version, ref or plain name. @param {string} project @param {string} op */
export function opFilter(project, op) {
  return [`weave:///${project}/op/${op}:*`, op];
}
