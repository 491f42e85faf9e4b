// What the phone shows: Markdown answers turned into Telegram HTML, long messages split into parts
// that each stay valid, and the one progress message edited in place. Pure functions, no I/O.
//
// Telegram's HTML parse mode accepts only a handful of tags and wants `<`, `>` and `&` escaped
// everywhere else. Everything produced here is balanced by construction: every construct emits its
// opening tag, recursively rendered (balanced) content, then its closing tag; all other text is escaped.

export function escapeHtml(text: string): string {
  return text.replace(/[&<>]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : "&gt;"));
}

function escapeAttr(text: string): string {
  return escapeHtml(text).replace(/"/g, "&quot;");
}

// ---------------------------------------------------------------------------------------------
// Markdown → Telegram HTML
// ---------------------------------------------------------------------------------------------

// Line patterns are matched in pieces, each regex anchored and free of nested backtracking: a
// single /^(\s*)(`{3,}|~{3,})(.*)$/ or /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/ backtracks
// quadratically or worse on a long line (a 3 KB heading with a U+2028 in it took 20 s).
const FENCE_OPEN = /^\s*(`{3,}|~{3,})/;
const HEADING_OPEN = /^ {0,3}#{1,6}[ \t]+/;
const LINE_BREAK = /[\n\r\u2028\u2029]/; // what `.` does not match
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const BULLET = /^(\s*)[-*+][ \t]+(.*)$/;
const QUOTE = /^ {0,3}>/;
const ALLOWED_LINK = /^(?:https?:\/\/|tg:\/\/)/i;

/** Convert the model's Markdown answer into HTML that Telegram's HTML parse mode accepts. */
export function markdownToTelegramHtml(markdown: string): string {
  const lines = markdown.replace(/\r\n?/g, "\n").split("\n");
  const out: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;

    const fence = fenceOpen(line);
    if (fence && !(fence.marker.startsWith("`") && fence.info.includes("`"))) {
      const marker = fence.marker;
      const lang = (fence.info.trim().split(/\s+/)[0] ?? "").replace(/[^\w+#.-]/g, "").slice(0, 32);
      const code: string[] = [];
      i++;
      while (i < lines.length && !isFenceClose(lines[i]!, marker)) code.push(lines[i++]!);
      i++; // the closing fence (or past the end: an unclosed fence runs to the end of the answer)
      const open = lang ? `<pre><code class="language-${lang}">` : "<pre><code>";
      out.push(`${open}${escapeHtml(code.join("\n"))}</code></pre>`);
      continue;
    }

    if (QUOTE.test(line)) {
      const quoted: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i]!)) {
        quoted.push(renderLine(lines[i]!.replace(/^ {0,3}(?:>[ \t]?)+/, "")));
        i++;
      }
      while (quoted.length > 0 && quoted[quoted.length - 1] === "") quoted.pop();
      out.push(`<blockquote>${quoted.join("\n")}</blockquote>`);
      continue;
    }

    if (line.trim() === "") {
      if (out.length > 0 && out[out.length - 1] !== "") out.push("");
      i++;
      continue;
    }

    out.push(renderLine(line));
    i++;
  }
  while (out.length > 0 && out[out.length - 1] === "") out.pop();
  return out.join("\n");
}

/** A fence's opening line: indentation, three or more backticks or tildes, then the info string. */
function fenceOpen(line: string): { marker: string; info: string } | null {
  const m = FENCE_OPEN.exec(line);
  if (!m) return null;
  const info = line.slice(m[0].length);
  return LINE_BREAK.test(info) ? null : { marker: m[1]!, info };
}

function isFenceClose(line: string, marker: string): boolean {
  const m = /^\s*(`{3,}|~{3,})\s*$/.exec(line);
  return m !== null && m[1]![0] === marker[0] && m[1]!.length >= marker.length;
}

/** One non-code line: heading, rule, bullet, or plain text with inline formatting. */
function renderLine(raw: string): string {
  const line = raw.trimEnd();
  if (line.trim() === "") return "";
  const heading = headingText(line);
  if (heading !== null) return heading ? `<b>${renderInline(heading)}</b>` : "";
  if (RULE.test(line)) return "──────────";
  const bullet = BULLET.exec(line);
  if (bullet) {
    let rest = bullet[2]!;
    let box = "";
    const task = /^\[([ xX])\][ \t]+/.exec(rest);
    if (task) {
      box = task[1] === " " ? "☐ " : "☑ ";
      rest = rest.slice(task[0].length);
    }
    return `${bullet[1]}• ${box}${renderInline(rest)}`;
  }
  return renderInline(line);
}

/** An ATX heading's text without its optional closing `#`s, or null; `line` has no trailing whitespace. */
function headingText(line: string): string | null {
  const m = HEADING_OPEN.exec(line);
  if (!m) return null;
  const rest = line.slice(m[0].length);
  if (LINE_BREAK.test(rest)) return null;
  let end = rest.length;
  while (end > 0 && rest[end - 1] === "#") end--;
  if (end === rest.length) return rest;
  let text = end;
  while (text > 0 && (rest[text - 1] === " " || rest[text - 1] === "\t")) text--;
  return text < end ? rest.slice(0, text) : rest;
}

const PUNCT = /[!-/:-@[-`{-~]/;
const WORD = /[\p{L}\p{N}]/u;
const SPACE = /\s/;
const AUTOLINK = /<((?:https?|tg):\/\/[^\s<>]+)>/iy;
const PLAIN = /[^\\`[!<*_~]+/y; // characters that start nothing: escaped and copied in one go

/** Inline Markdown for one line. Output is balanced by construction; all text is escaped. */
function renderInline(s: string, noLinks = false): string {
  const ix = new InlineIndex(s);
  let out = "";
  let i = 0;
  while (i < s.length) {
    PLAIN.lastIndex = i;
    const plain = PLAIN.exec(s);
    if (plain) {
      out += escapeHtml(plain[0]);
      i += plain[0].length;
      continue;
    }
    const c = s[i]!;
    if (c === "\\" && i + 1 < s.length && PUNCT.test(s[i + 1]!)) {
      out += escapeHtml(s[i + 1]!);
      i += 2;
      continue;
    }
    if (c === "`") {
      const end = ix.codeSpanEnd(i);
      if (end >= 0) {
        const run = ix.runEnd(i) - i;
        let content = s.slice(i + run, end - run);
        if (content.length >= 2 && content.startsWith(" ") && content.endsWith(" ") && content.trim() !== "") {
          content = content.slice(1, -1);
        }
        out += `<code>${escapeHtml(content)}</code>`;
        i = end;
      } else {
        out += s.slice(i, ix.runEnd(i));
        i = ix.runEnd(i);
      }
      continue;
    }
    if (!noLinks && (c === "[" || (c === "!" && s[i + 1] === "["))) {
      const link = parseLink(s, c === "!" ? i + 1 : i, ix);
      if (link) {
        const text = renderInline(link.text, true);
        if (ALLOWED_LINK.test(link.url)) {
          out += `<a href="${escapeAttr(link.url)}">${text.trim() === "" ? escapeHtml(link.url) : text}</a>`;
        } else {
          out += text;
        }
        i = link.end;
        continue;
      }
    }
    if (!noLinks && c === "<") {
      AUTOLINK.lastIndex = i;
      const auto = AUTOLINK.exec(s);
      if (auto) {
        out += `<a href="${escapeAttr(auto[1]!)}">${escapeHtml(auto[1]!)}</a>`;
        i += auto[0].length;
        continue;
      }
    }
    if (c === "*" || c === "_" || c === "~") {
      const em = parseEmphasis(s, i, noLinks, ix);
      if (em) {
        out += em.html;
        i = em.end;
      } else {
        out += s.slice(i, ix.runEnd(i));
        i = ix.runEnd(i);
      }
      continue;
    }
    out += escapeHtml(c);
    i++;
  }
  return out;
}

const BACKSLASH = "\\".charCodeAt(0);
const BACKTICK = "`".charCodeAt(0);
const STAR = "*".charCodeAt(0);
const UNDERSCORE = "_".charCodeAt(0);
const TILDE = "~".charCodeAt(0);
const OPEN_BRACKET = "[".charCodeAt(0);
const CLOSE_BRACKET = "]".charCodeAt(0);
const OPEN_PAREN = "(".charCodeAt(0);
const CLOSE_PAREN = ")".charCodeAt(0);

/**
 * Lookups over one line that renderInline's searches use instead of scanning ahead: where a run of
 * equal characters ends, where a code span closes, the closing delimiter run for an emphasis, the
 * `]` that ends a link's text, the end of a bare link target, the next occurrence of a character.
 *
 * A straightforward scan from each candidate opener to the end of the line is quadratic (a 60 KB
 * line of `*a ` took seconds). Each table here is built at most once per line, in linear time, the
 * first time it is needed, and answers exactly what that scan would: the scans step from position
 * to position by rules that depend only on the position (skip an escaped character, a code span, a
 * delimiter run), so "the first position on the walk from j that satisfies P" satisfies a recurrence
 * over positions that can be filled in from the end of the line backwards.
 */
class InlineIndex {
  readonly #s: string;
  readonly #n: number;
  #runEnd: Positions | undefined;
  #tickRuns: Map<number, number[]> | undefined;
  #emStep: Positions | undefined;
  readonly #closers = new Map<number, Positions>();
  #linkEnd: Positions | undefined;
  #urlStop: Positions | undefined;
  readonly #next = new Map<number, Positions>();

  constructor(s: string) {
    this.#s = s;
    this.#n = s.length;
  }

  /** The end (exclusive) of the run of characters equal to `s[i]` that starts at `i`. */
  runEnd(i: number): number {
    return this.#runEnds()[i]!;
  }

  #runEnds(): Positions {
    if (!this.#runEnd) {
      const s = this.#s;
      const n = this.#n;
      const t = positions(n);
      for (let j = n - 1; j >= 0; j--) t[j] = j + 1 < n && s.charCodeAt(j + 1) === s.charCodeAt(j) ? t[j + 1]! : j + 1;
      this.#runEnd = t;
    }
    return this.#runEnd;
  }

  /**
   * For a backtick at `i`: the end of the code span it opens, or -1. The run from `i` (to the end of
   * its run) closes at the first later maximal run of exactly as many backticks.
   */
  codeSpanEnd(i: number): number {
    const runEnd = this.#runEnds();
    if (!this.#tickRuns) {
      const runs = new Map<number, number[]>(); // run length → starts of the maximal runs, ascending
      for (let j = this.#s.indexOf("`"); j >= 0; j = this.#s.indexOf("`", runEnd[j]!)) {
        const len = runEnd[j]! - j;
        const starts = runs.get(len);
        if (starts) starts.push(j);
        else runs.set(len, [j]);
      }
      this.#tickRuns = runs;
    }
    const len = runEnd[i]! - i;
    const starts = this.#tickRuns.get(len);
    if (!starts) return -1;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! < i + len) lo = mid + 1;
      else hi = mid;
    }
    return lo < starts.length ? starts[lo]! + len : -1;
  }

  /**
   * The closing run for an emphasis whose content starts at `from`: the first run of exactly `len`
   * `ch`s after `from` that can close (not after a space; `_` not before a letter or digit), walking
   * over escaped characters, code spans and whole delimiter runs. -1 if none.
   */
  findClose(from: number, ch: string, len: number): number {
    const n = this.#n;
    const step = this.#emSteps();
    const code = ch.charCodeAt(0);
    const key = code * 8 + len;
    let t = this.#closers.get(key);
    if (!t) {
      // t[j]: the first position on the walk from j (j included) where a closing run starts.
      const s = this.#s;
      const runEnd = this.#runEnds();
      t = positions(n);
      for (let j = n - 1; j >= 0; j--) {
        const closes =
          s.charCodeAt(j) === code &&
          runEnd[j]! - j === len &&
          j > 0 &&
          !SPACE.test(s[j - 1]!) &&
          !(ch === "_" && WORD.test(s[runEnd[j]!] ?? ""));
        const next = step[j]!;
        t[j] = closes ? j : next < n ? t[next]! : -1;
      }
      this.#closers.set(key, t);
    }
    // The opener's own position never closes: start from the step after it.
    return step[from]! < n ? t[step[from]!]! : -1;
  }

  /** Where the emphasis walk goes from each position. */
  #emSteps(): Positions {
    if (!this.#emStep) {
      const s = this.#s;
      const runEnd = this.#runEnds();
      const t = positions(this.#n);
      for (let j = 0; j < this.#n; j++) {
        const c = s.charCodeAt(j);
        if (c === BACKSLASH) t[j] = j + 2;
        else if (c === BACKTICK) {
          const end = this.codeSpanEnd(j);
          t[j] = end >= 0 ? end : runEnd[j]!;
        } else if (c === STAR || c === UNDERSCORE || c === TILDE) t[j] = runEnd[j]!;
        else t[j] = j + 1;
      }
      this.#emStep = t;
    }
    return this.#emStep;
  }

  /**
   * For a `[` at `i`: the `]` that ends its text, counting nested brackets and skipping escaped
   * characters and code spans; -1 if none.
   */
  linkTextEnd(i: number): number {
    const n = this.#n;
    if (!this.#linkEnd) {
      // The walk steps like the emphasis walk, except that a run of backticks that opens no code span
      // is walked one backtick at a time. t[j]: the first position on the walk from j (j included)
      // where the bracket depth, counted from 0 before j, drops to -1; that is a `]`.
      const s = this.#s;
      const t = positions(n);
      for (let j = n - 1; j >= 0; j--) {
        const c = s.charCodeAt(j);
        if (c === CLOSE_BRACKET) {
          t[j] = j;
          continue;
        }
        let next = j + 1;
        if (c === BACKSLASH) next = j + 2;
        else if (c === BACKTICK) {
          const end = this.codeSpanEnd(j);
          if (end >= 0) next = end;
        }
        const after = next < n ? t[next]! : -1;
        // After a `[`, the walk goes on past the `]` that matches it.
        t[j] = c !== OPEN_BRACKET ? after : after >= 0 && after + 1 < n ? t[after + 1]! : -1;
      }
      this.#linkEnd = t;
    }
    return i + 1 < n ? this.#linkEnd[i + 1]! : -1;
  }

  /** A bare link target starting at `k` ends at the first whitespace or unbalanced `)`, or the end. */
  urlEnd(k: number): number {
    if (!this.#urlStop) {
      const s = this.#s;
      const n = this.#n;
      const t = positions(n + 1);
      t[n] = n;
      for (let j = n - 1; j >= 0; j--) {
        const c = s.charCodeAt(j);
        if (c === CLOSE_PAREN || ((c <= 32 || c >= 128) && SPACE.test(s[j]!))) t[j] = j;
        else if (c === OPEN_PAREN) {
          const close = t[j + 1]!;
          t[j] = close < n && s.charCodeAt(close) === CLOSE_PAREN ? t[close + 1]! : close;
        } else t[j] = t[j + 1]!;
      }
      this.#urlStop = t;
    }
    return this.#urlStop[k]!;
  }

  /** `s.indexOf(ch, from)` in constant time. */
  indexOf(ch: string, from: number): number {
    const n = this.#n;
    const code = ch.charCodeAt(0);
    let t = this.#next.get(code);
    if (!t) {
      t = positions(n + 1);
      t[n] = -1;
      for (let j = n - 1; j >= 0; j--) t[j] = this.#s.charCodeAt(j) === code ? j : t[j + 1]!;
      this.#next.set(code, t);
    }
    return from >= n ? -1 : t[from]!;
  }

  /** Past the spaces starting at `k`. */
  skipSpaces(k: number): number {
    return this.#s[k] === " " ? this.runEnd(k) : k;
  }
}

type Positions = number[] | Int32Array;

/** A table with one slot per position: a typed array costs a microsecond to allocate, a long plain array far more to fill. */
function positions(n: number): Positions {
  return n > 256 ? new Int32Array(n) : new Array<number>(n).fill(0);
}

function parseLink(s: string, i: number, ix: InlineIndex): { text: string; url: string; end: number } | null {
  const j = ix.linkTextEnd(i);
  if (j < 0 || s[j + 1] !== "(") return null;
  const text = s.slice(i + 1, j);
  let k = ix.skipSpaces(j + 2);
  let url: string;
  if (s[k] === "<") {
    const e = ix.indexOf(">", k);
    if (e < 0) return null;
    url = s.slice(k + 1, e);
    k = e + 1;
  } else {
    const from = k;
    k = ix.urlEnd(k);
    url = s.slice(from, k);
  }
  k = ix.skipSpaces(k);
  if (s[k] === '"' || s[k] === "'") {
    const e = ix.indexOf(s[k]!, k + 1);
    if (e < 0) return null;
    k = ix.skipSpaces(e + 1);
  }
  if (s[k] !== ")") return null;
  return { text, url, end: k + 1 };
}

function parseEmphasis(s: string, i: number, noLinks: boolean, ix: InlineIndex): { html: string; end: number } | null {
  const ch = s[i]!;
  const run = ix.runEnd(i) - i;
  if (ch === "_" && i > 0 && WORD.test(s[i - 1]!)) return null; // snake_case stays text
  const lengths = ch === "~" ? (run >= 2 ? [2] : []) : [3, 2, 1].filter((n) => n <= run);
  for (const len of lengths) {
    const after = s[i + len];
    if (after === undefined || SPACE.test(after)) continue;
    const close = ix.findClose(i + len, ch, len);
    if (close < 0) continue;
    const inner = renderInline(s.slice(i + len, close), noLinks);
    const html =
      ch === "~" ? `<s>${inner}</s>` : len === 3 ? `<b><i>${inner}</i></b>` : len === 2 ? `<b>${inner}</b>` : `<i>${inner}</i>`;
    return { html, end: close + len };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Splitting long HTML into messages
// ---------------------------------------------------------------------------------------------

export interface SplitOptions {
  /** Maximum characters (UTF-16 code units, as Telegram counts) per part. Default 4096. */
  limit?: number;
  /** More parts than this and the caller should send a `.md` document instead. Default 4. */
  maxParts?: number;
}

/**
 * The tags open at some position: a node of a persistent stack (shared with the positions before and
 * after), so that recording the open tags at every position costs O(1) per tag however deep the
 * nesting; the strings to reopen and close them are built only for the few cuts actually made.
 */
interface OpenTags {
  parent: OpenTags | null;
  name: string;
  raw: string; // the opening tag as written
  index: number; // in the list of all stack nodes
  depth: number;
  pre: boolean; // inside <pre> or <code>: whitespace is content, never dropped
  prefixLength: number; // of the opening tags, to reopen in the next part
  suffixLength: number; // of the closing tags, to close this part
}

/** The opening tags, outermost first, to reopen in the next part. */
function prefixOf(at: OpenTags): string {
  const raws: string[] = [];
  for (let t: OpenTags | null = at; t && t.parent; t = t.parent) raws.push(t.raw);
  return raws.reverse().join("");
}

/** The closing tags, innermost first, to close this part. */
function suffixOf(at: OpenTags): string {
  let out = "";
  for (let t: OpenTags | null = at; t && t.parent; t = t.parent) out += `</${t.name}>`;
  return out;
}

const VOID_TAGS = new Set(["br", "hr", "img"]);

/**
 * Split Telegram HTML into parts of at most `limit` characters, preferring paragraph (blank line)
 * and code-block boundaries, then line breaks, then spaces, then a hard cut. Never cuts inside a
 * tag or an entity; tags open at a cut are closed at the end of the part and reopened in the next
 * (so a long code block becomes several proper `<pre><code …>` blocks). Whitespace dropped at a cut
 * is only the separator itself (never inside code). More than `maxParts` parts → `{ document: true }`.
 */
export function splitForTelegram(html: string, options: SplitOptions = {}): { parts: string[] } | { document: true } {
  const limit = options.limit ?? 4096;
  const maxParts = options.maxParts ?? 4;
  const n = html.length;

  // One pass: which cut positions are legal, and which tags are open at each position.
  const legal = new Uint8Array(n + 1);
  const stackAt = new Int32Array(n + 1);
  const root: OpenTags = { parent: null, name: "", raw: "", index: 0, depth: 0, pre: false, prefixLength: 0, suffixLength: 0 };
  const stacks: OpenTags[] = [root];
  const openCount = new Map<string, number>(); // how many of each tag the current stack holds
  let stack = root;
  let gt = html.indexOf(">"); // the first `>` at or after i (-1: none)
  const tagStart = /<(\/?)([a-zA-Z][\w-]*)/y;
  let i = 0;
  let afterOpenTag = false;
  while (i < n) {
    const c = html[i]!;
    legal[i] = afterOpenTag ? 0 : 1;
    stackAt[i] = stack.index;
    afterOpenTag = false;
    if (c === "<") {
      if (gt >= 0 && gt < i) gt = html.indexOf(">", i);
      const end = gt;
      tagStart.lastIndex = i;
      const tag = end < 0 ? null : tagStart.exec(html);
      if (end >= 0 && tag) {
        const closing = tag[1] === "/";
        const name = tag[2]!.toLowerCase();
        if (closing) legal[i] = 0; // cutting right before a closing tag would leave an empty element
        for (let k = i + 1; k <= end; k++) stackAt[k] = stack.index;
        if (closing) {
          if (openCount.get(name)) {
            // Close it and everything opened inside it.
            let closed: OpenTags;
            do {
              closed = stack;
              openCount.set(closed.name, openCount.get(closed.name)! - 1);
              stack = closed.parent!;
            } while (closed.name !== name);
          }
        } else if (!VOID_TAGS.has(name) && html[end - 1] !== "/") {
          const raw = html.slice(i, end + 1);
          stack = {
            parent: stack,
            name,
            raw,
            index: stacks.length,
            depth: stack.depth + 1,
            pre: stack.pre || name === "pre" || name === "code",
            prefixLength: stack.prefixLength + raw.length,
            suffixLength: stack.suffixLength + name.length + 3,
          };
          stacks.push(stack);
          openCount.set(name, (openCount.get(name) ?? 0) + 1);
          afterOpenTag = true;
        }
        i = end + 1;
        continue;
      }
    }
    if (c === "&") {
      const entity = /^&(?:#\d+|#x[0-9a-f]+|[a-z]+);/i.exec(html.slice(i, i + 12));
      if (entity) {
        for (let k = i + 1; k < i + entity[0].length; k++) stackAt[k] = stack.index;
        i += entity[0].length;
        continue;
      }
    }
    const code = c.charCodeAt(0);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < n) {
      stackAt[i + 1] = stack.index;
      i += 2;
      continue;
    }
    i++;
  }
  legal[n] = afterOpenTag ? 0 : 1;
  stackAt[n] = stack.index;

  const parts: string[] = [];
  const push = (part: string): void => {
    if (hasText(part)) parts.push(part);
  };
  let start = skipNewlines(html, 0, stacks[stackAt[0]!]!);
  while (start < n) {
    const open = stacks[stackAt[start]!]!;
    const endTags = stacks[stackAt[n]!]!;
    if (open.prefixLength + (n - start) + endTags.suffixLength <= limit) {
      push(prefixOf(open) + html.slice(start) + suffixOf(endTags));
      break;
    }
    let bestScore = -1;
    let bestEnd = -1;
    let bestNext = -1;
    for (let p = start + 1; p <= n && open.prefixLength + (p - start) <= limit; p++) {
      if (!legal[p]) continue;
      const at = stacks[stackAt[p]!]!;
      if (open.prefixLength + (p - start) + at.suffixLength > limit) continue;
      let score = 0;
      let next = p;
      const ch = html[p];
      if (at.pre) {
        if (html[p - 1] === "\n") score = 2;
      } else if (ch === "\n") {
        if (html[p - 1] === "\n") continue; // the first line break of a run is the cut
        const paragraph = html[p + 1] === "\n";
        const fence = html.startsWith("<pre", p + 1) || html.endsWith("</pre>", p);
        score = at.depth === 0 && (paragraph || fence) ? 4 : at.depth === 0 ? 3 : 2;
        next = skipNewlines(html, p, at);
      } else if (ch === " ") {
        score = 1;
        next = p + 1;
      }
      if (score >= bestScore) {
        bestScore = score;
        bestEnd = p;
        bestNext = next;
      }
    }
    if (bestEnd < 0) {
      // The limit is too small for the open tags: make progress anyway at the next legal cut.
      let p = start + 1;
      while (p < n && !legal[p]) p++;
      bestEnd = bestNext = p;
    }
    push(prefixOf(open) + html.slice(start, bestEnd) + suffixOf(stacks[stackAt[bestEnd]!]!));
    if (parts.length > maxParts) return { document: true };
    start = bestNext;
  }
  if (parts.length > maxParts) return { document: true };
  return { parts };
}

/** Whether a part has any text besides tags and whitespace (what `part.replace(/<[^>]*>/g, "").trim()` keeps, in linear time). */
function hasText(part: string): boolean {
  for (let i = 0; i < part.length; ) {
    if (part[i] === "<") {
      const end = part.indexOf(">", i);
      if (end < 0) return true; // a `<` that starts no tag is text
      i = end + 1;
    } else if (/\S/.test(part[i]!)) return true;
    else i++;
  }
  return false;
}

function skipNewlines(html: string, p: number, at: OpenTags): number {
  if (at.pre) return p;
  let q = p;
  while (html[q] === "\n") q++;
  // Only drop a single separator line break inside tags (a quote's blank line stays a line break).
  return at.depth === 0 ? q : Math.min(q, p + 1);
}

// ---------------------------------------------------------------------------------------------
// The progress message
// ---------------------------------------------------------------------------------------------

export interface ProgressStatus {
  title: string;
  step: number;
  tools: string[];
  tokens: number;
  costUsd: number;
  state: string;
}

/** 950 → "950", 12345 → "12.3k", 2_500_000 → "2.5M". */
export function formatTokens(tokens: number): string {
  if (!Number.isFinite(tokens) || tokens <= 0) return "0";
  if (tokens < 1000) return String(Math.round(tokens));
  if (tokens < 999_950) return `${(tokens / 1000).toFixed(1)}k`;
  return `${(tokens / 1_000_000).toFixed(1)}M`;
}

/** 0.01234 → "$0.0123"; a dollar or more → "$1.25". */
export function formatCost(costUsd: number): string {
  if (!Number.isFinite(costUsd) || costUsd <= 0) return "$0.0000";
  return costUsd < 1 ? `$${costUsd.toFixed(4)}` : `$${costUsd.toFixed(2)}`;
}

/** Cut to `chars` code points (on one line), escape, and keep the escaped text under `maxEscaped`. */
function clip(text: string, chars: number, maxEscaped: number): string {
  const points = Array.from(text.replace(/\s+/g, " ").trim());
  const kept = points.length > chars ? points.slice(0, chars - 1) : points;
  let out = "";
  for (const point of kept) {
    const piece = escapeHtml(point);
    if (out.length + piece.length > maxEscaped - 1) return `${out}…`;
    out += piece;
  }
  return kept.length < points.length ? `${out}…` : out;
}

/** The one status message edited in place while a task runs. Valid HTML, under 1,000 characters. */
export function progressText(status: ProgressStatus): string {
  const lines = [
    `<b>${clip(status.title, 100, 200) || "Task"}</b>`,
    `${clip(status.state, 40, 80)} · step ${Number.isFinite(status.step) ? Math.max(0, Math.floor(status.step)) : 0}`,
  ];
  for (const tool of status.tools.slice(-3)) lines.push(`› <code>${clip(tool, 80, 160)}</code>`);
  lines.push(`${formatTokens(status.tokens)} tokens · ${formatCost(status.costUsd)}`);
  return lines.join("\n");
}
