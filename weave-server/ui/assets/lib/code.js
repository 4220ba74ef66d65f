// @ts-check
// Source code shown readably: a small tokenizer for Python (and Rust, the language of ops
// logged from Rust) that wraps keywords, strings, comments, numbers and names in spans. The
// code is data: every token becomes a text node.

import { h } from './dom.js';

const PY_KW = new Set(('False None True and as assert async await break class continue def del elif else except ' +
  'finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case').split(' '));
const PY_BUILTIN = new Set(('abs all any bool bytes chr dict dir divmod enumerate filter float format frozenset ' +
  'getattr hasattr hash hex id int isinstance issubclass iter len list map max min next object oct open ord pow ' +
  'print range repr reversed round set setattr slice sorted str sum super tuple type zip self cls').split(' '));
const RS_KW = new Set(('as async await break const continue crate dyn else enum extern false fn for if impl in let ' +
  'loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while').split(' '));
const RS_TYPES = new Set(('bool char f32 f64 i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize str String Vec ' +
  'Option Result Some None Ok Err Box Arc HashMap BTreeMap').split(' '));

/**
 * Splits code into `[class, text]` tokens (class '' for plain text).
 * @param {string} code
 * @param {string} lang
 * @returns {[string, string][]}
 */
export function tokenize(code, lang) {
  const rust = lang === 'rust';
  const kw = rust ? RS_KW : PY_KW;
  const builtin = rust ? RS_TYPES : PY_BUILTIN;
  /** @type {[string, string][]} */
  const out = [];
  let i = 0;
  let prevWord = '';
  const n = code.length;
  /** @param {string} cls @param {number} end */
  const push = (cls, end) => {
    out.push([cls, code.slice(i, end)]);
    i = end;
  };
  while (i < n) {
    const c = code[i];
    const rest2 = code.slice(i, i + 2);
    if ((!rust && c === '#') || (rust && rest2 === '//')) {
      const end = code.indexOf('\n', i);
      push('tok-comment', end < 0 ? n : end);
    } else if (rust && rest2 === '/*') {
      const end = code.indexOf('*/', i + 2);
      push('tok-comment', end < 0 ? n : end + 2);
    } else if (c === '"' || c === "'" || (!rust && /[rbfuRBFU]/.test(c) && /^[rbfuRBFU]{1,2}['"]/.test(code.slice(i, i + 3)))) {
      let j = i;
      while (code[j] !== '"' && code[j] !== "'") j++;
      const q = code[j];
      if (rust && q === "'") {
        // A char literal or a lifetime.
        const m = /^'(\\.|[^'\\])'/.exec(code.slice(j));
        if (m) {
          push('tok-string', j + m[0].length);
        } else {
          const lt = /^'[A-Za-z_]\w*/.exec(code.slice(j));
          push('tok-builtin', j + (lt ? lt[0].length : 1));
        }
        continue;
      }
      const triple = !rust && code.slice(j, j + 3) === q.repeat(3);
      let k = j + (triple ? 3 : 1);
      for (; k < n; k++) {
        if (code[k] === '\\') {
          k++;
          continue;
        }
        if (triple ? code.slice(k, k + 3) === q.repeat(3) : code[k] === q) {
          k += triple ? 3 : 1;
          break;
        }
        if (!triple && !rust && code[k] === '\n') break;
      }
      push(triple && prevWord === '' ? 'tok-doc' : 'tok-string', Math.min(k, n));
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(code[i + 1] || ''))) {
      const m = /^(0[xob][0-9a-fA-F_]+|[0-9][0-9_]*\.?[0-9_]*(e[+-]?[0-9]+)?|\.[0-9]+)[a-zA-Z0-9]*/.exec(code.slice(i));
      push('tok-number', i + (m ? m[0].length : 1));
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(code.slice(i));
      const w = m ? m[0] : c;
      let cls = '';
      if (kw.has(w)) cls = 'tok-kw';
      else if (prevWord === 'def' || prevWord === 'fn' || prevWord === 'class' || prevWord === 'struct' || prevWord === 'enum' || prevWord === 'trait') cls = 'tok-def';
      else if (builtin.has(w)) cls = 'tok-builtin';
      else if (rust && code[i + w.length] === '!') cls = 'tok-macro';
      else if (code[i + w.length] === '(') cls = 'tok-call';
      push(cls, i + w.length);
      prevWord = w;
      continue;
    } else if (c === '@' && !rust) {
      const m = /^@[A-Za-z_][\w.]*/.exec(code.slice(i));
      push('tok-decorator', i + (m ? m[0].length : 1));
    } else if (c === '\n') {
      push('', i + 1);
      prevWord = '';
      continue;
    } else if (/\s/.test(c)) {
      const m = /^[ \t\r]+/.exec(code.slice(i));
      push('', i + (m ? m[0].length : 1));
      continue;
    } else {
      push(/[=<>!+\-*/%&|^~]/.test(c) ? 'tok-op' : 'tok-punct', i + 1);
    }
    prevWord = '-';
  }
  return out;
}

/** Guesses whether a string is code, and which language. @param {string} s @returns {string | null} */
export function guessLanguage(s) {
  if (!s.includes('\n')) return null;
  if (/^\s*(def |class |import |from \S+ import |async def |@\w)/m.test(s) && /:\s*$/m.test(s)) return 'python';
  if (/^\s*(pub |fn |impl |use |struct |let )/m.test(s) && /[{};]\s*$/m.test(s)) return 'rust';
  return null;
}

/**
 * A highlighted code block with line numbers; long code shows its first lines and a button
 * for the rest.
 * @param {string} code
 * @param {string | null} lang
 * @param {{maxLines?: number, className?: string}} [opts]
 */
export function codeBlock(code, lang, opts = {}) {
  const maxLines = opts.maxLines ?? 400;
  const lines = code.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  const pre = h('pre', { class: ['code', opts.className], dataset: { lang: lang || 'text' } });
  const body = h('code', null);
  pre.append(body);
  /** @param {number} upto */
  const render = (upto) => {
    while (body.firstChild) body.firstChild.remove();
    const shown = lines.slice(0, upto).join('\n');
    const tokens = lang ? tokenize(shown, lang) : [['', shown]];
    let line = h('span', { class: 'line' });
    body.append(line);
    for (const [cls, text] of tokens) {
      const parts = text.split('\n');
      parts.forEach((part, k) => {
        if (k > 0) {
          line = h('span', { class: 'line' });
          body.append(line);
        }
        if (part) line.append(cls ? h('span', { class: cls, text: part }) : document.createTextNode(part));
      });
    }
  };
  if (lines.length > maxLines) {
    render(maxLines);
    const more = h('button', {
      class: 'btn btn-ghost btn-xs show-more',
      type: 'button',
      text: `Show all ${lines.length.toLocaleString('en-US')} lines`,
      on: {
        click: () => {
          render(lines.length);
          more.remove();
        },
      },
    });
    return h('div', { class: 'code-wrap' }, pre, more);
  }
  render(lines.length);
  return h('div', { class: 'code-wrap' }, pre);
}
