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

const FENCE_OPEN = /^(\s*)(`{3,}|~{3,})(.*)$/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
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

    const fence = FENCE_OPEN.exec(line);
    if (fence && !(fence[2]!.startsWith("`") && fence[3]!.includes("`"))) {
      const marker = fence[2]!;
      const lang = (fence[3]!.trim().split(/\s+/)[0] ?? "").replace(/[^\w+#.-]/g, "").slice(0, 32);
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

function isFenceClose(line: string, marker: string): boolean {
  const m = /^\s*(`{3,}|~{3,})\s*$/.exec(line);
  return m !== null && m[1]![0] === marker[0] && m[1]!.length >= marker.length;
}

/** One non-code line: heading, rule, bullet, or plain text with inline formatting. */
function renderLine(raw: string): string {
  const line = raw.trimEnd();
  if (line.trim() === "") return "";
  const heading = HEADING.exec(line);
  if (heading) return heading[2] ? `<b>${renderInline(heading[2])}</b>` : "";
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

const PUNCT = /[!-/:-@[-`{-~]/;
const WORD = /[\p{L}\p{N}]/u;
const SPACE = /\s/;

/** Inline Markdown for one line. Output is balanced by construction; all text is escaped. */
function renderInline(s: string, noLinks = false): string {
  let out = "";
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === "\\" && i + 1 < s.length && PUNCT.test(s[i + 1]!)) {
      out += escapeHtml(s[i + 1]!);
      i += 2;
      continue;
    }
    if (c === "`") {
      const span = codeSpan(s, i);
      if (span) {
        out += `<code>${escapeHtml(span.content)}</code>`;
        i = span.end;
      } else {
        const run = runLength(s, i, "`");
        out += s.slice(i, i + run);
        i += run;
      }
      continue;
    }
    if (!noLinks && (c === "[" || (c === "!" && s[i + 1] === "["))) {
      const link = parseLink(s, c === "!" ? i + 1 : i);
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
      const auto = /^<((?:https?|tg):\/\/[^\s<>]+)>/i.exec(s.slice(i));
      if (auto) {
        out += `<a href="${escapeAttr(auto[1]!)}">${escapeHtml(auto[1]!)}</a>`;
        i += auto[0].length;
        continue;
      }
    }
    if (c === "*" || c === "_" || c === "~") {
      const em = parseEmphasis(s, i, noLinks);
      if (em) {
        out += em.html;
        i = em.end;
      } else {
        const run = runLength(s, i, c);
        out += s.slice(i, i + run);
        i += run;
      }
      continue;
    }
    out += escapeHtml(c);
    i++;
  }
  return out;
}

function runLength(s: string, i: number, ch: string): number {
  let j = i;
  while (s[j] === ch) j++;
  return j - i;
}

function codeSpan(s: string, i: number): { content: string; end: number } | null {
  const n = runLength(s, i, "`");
  let j = i + n;
  while (j < s.length) {
    const k = s.indexOf("`", j);
    if (k < 0) return null;
    const r = runLength(s, k, "`");
    if (r === n) {
      let content = s.slice(i + n, k);
      if (content.length >= 2 && content.startsWith(" ") && content.endsWith(" ") && content.trim() !== "") {
        content = content.slice(1, -1);
      }
      return { content, end: k + r };
    }
    j = k + r;
  }
  return null;
}

function parseLink(s: string, i: number): { text: string; url: string; end: number } | null {
  let depth = 0;
  let j = i;
  for (; j < s.length; j++) {
    const c = s[j];
    if (c === "\\") {
      j++;
      continue;
    }
    if (c === "`") {
      const span = codeSpan(s, j);
      if (span) j = span.end - 1;
      continue;
    }
    if (c === "[") depth++;
    else if (c === "]" && --depth === 0) break;
  }
  if (j >= s.length || s[j + 1] !== "(") return null;
  const text = s.slice(i + 1, j);
  let k = j + 2;
  while (s[k] === " ") k++;
  let url: string;
  if (s[k] === "<") {
    const e = s.indexOf(">", k);
    if (e < 0) return null;
    url = s.slice(k + 1, e);
    k = e + 1;
  } else {
    const from = k;
    let parens = 0;
    while (k < s.length) {
      const c = s[k]!;
      if (SPACE.test(c)) break;
      if (c === "(") parens++;
      else if (c === ")") {
        if (parens === 0) break;
        parens--;
      }
      k++;
    }
    url = s.slice(from, k);
  }
  while (s[k] === " ") k++;
  if (s[k] === '"' || s[k] === "'") {
    const e = s.indexOf(s[k]!, k + 1);
    if (e < 0) return null;
    k = e + 1;
    while (s[k] === " ") k++;
  }
  if (s[k] !== ")") return null;
  return { text, url, end: k + 1 };
}

function parseEmphasis(s: string, i: number, noLinks: boolean): { html: string; end: number } | null {
  const ch = s[i]!;
  const run = runLength(s, i, ch);
  if (ch === "_" && i > 0 && WORD.test(s[i - 1]!)) return null; // snake_case stays text
  const lengths = ch === "~" ? (run >= 2 ? [2] : []) : [3, 2, 1].filter((n) => n <= run);
  for (const len of lengths) {
    const after = s[i + len];
    if (after === undefined || SPACE.test(after)) continue;
    const close = findClose(s, i + len, ch, len);
    if (close < 0) continue;
    const inner = renderInline(s.slice(i + len, close), noLinks);
    const html =
      ch === "~" ? `<s>${inner}</s>` : len === 3 ? `<b><i>${inner}</i></b>` : len === 2 ? `<b>${inner}</b>` : `<i>${inner}</i>`;
    return { html, end: close + len };
  }
  return null;
}

/** The next run of exactly `len` delimiters that can close, skipping escapes and code spans. */
function findClose(s: string, from: number, ch: string, len: number): number {
  let j = from;
  while (j < s.length) {
    const c = s[j]!;
    if (c === "\\") {
      j += 2;
      continue;
    }
    if (c === "`") {
      const span = codeSpan(s, j);
      j = span ? span.end : j + runLength(s, j, "`");
      continue;
    }
    if (c === ch) {
      const r = runLength(s, j, ch);
      if (r === len && j > from && !SPACE.test(s[j - 1]!) && !(ch === "_" && WORD.test(s[j + r] ?? ""))) return j;
      j += r;
      continue;
    }
    j++;
  }
  return -1;
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

interface OpenTags {
  prefix: string; // the opening tags, to reopen in the next part
  suffix: string; // the closing tags, to close this part
  depth: number;
  pre: boolean; // inside <pre> or <code>: whitespace is content, never dropped
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
  const stacks: OpenTags[] = [];
  let stack: Array<{ name: string; raw: string }> = [];
  const snapshot = (): number => {
    stacks.push({
      prefix: stack.map((t) => t.raw).join(""),
      suffix: stack.map((t) => `</${t.name}>`).reverse().join(""),
      depth: stack.length,
      pre: stack.some((t) => t.name === "pre" || t.name === "code"),
    });
    return stacks.length - 1;
  };
  let current = snapshot();
  let i = 0;
  let afterOpenTag = false;
  while (i < n) {
    const c = html[i]!;
    legal[i] = afterOpenTag ? 0 : 1;
    stackAt[i] = current;
    afterOpenTag = false;
    if (c === "<") {
      const end = html.indexOf(">", i);
      const tag = end < 0 ? null : /^<(\/?)([a-zA-Z][\w-]*)/.exec(html.slice(i, end + 1));
      if (end >= 0 && tag) {
        const closing = tag[1] === "/";
        const name = tag[2]!.toLowerCase();
        if (closing) legal[i] = 0; // cutting right before a closing tag would leave an empty element
        for (let k = i + 1; k <= end; k++) stackAt[k] = current;
        if (closing) {
          const at = stack.map((t) => t.name).lastIndexOf(name);
          if (at >= 0) {
            stack = stack.slice(0, at);
            current = snapshot();
          }
        } else if (!VOID_TAGS.has(name) && !html.slice(i, end + 1).endsWith("/>")) {
          stack = [...stack, { name, raw: html.slice(i, end + 1) }];
          current = snapshot();
          afterOpenTag = true;
        }
        i = end + 1;
        continue;
      }
    }
    if (c === "&") {
      const entity = /^&(?:#\d+|#x[0-9a-f]+|[a-z]+);/i.exec(html.slice(i, i + 12));
      if (entity) {
        for (let k = i + 1; k < i + entity[0].length; k++) stackAt[k] = current;
        i += entity[0].length;
        continue;
      }
    }
    const code = c.charCodeAt(0);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < n) {
      stackAt[i + 1] = current;
      i += 2;
      continue;
    }
    i++;
  }
  legal[n] = afterOpenTag ? 0 : 1;
  stackAt[n] = current;

  const parts: string[] = [];
  const push = (part: string): void => {
    if (part.replace(/<[^>]*>/g, "").trim() !== "") parts.push(part);
  };
  let start = skipNewlines(html, 0, stacks[stackAt[0]!]!);
  while (start < n) {
    const open = stacks[stackAt[start]!]!;
    const endTags = stacks[stackAt[n]!]!;
    if (open.prefix.length + (n - start) + endTags.suffix.length <= limit) {
      push(open.prefix + html.slice(start) + endTags.suffix);
      break;
    }
    let bestScore = -1;
    let bestEnd = -1;
    let bestNext = -1;
    for (let p = start + 1; p <= n && open.prefix.length + (p - start) <= limit; p++) {
      if (!legal[p]) continue;
      const at = stacks[stackAt[p]!]!;
      if (open.prefix.length + (p - start) + at.suffix.length > limit) continue;
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
    push(open.prefix + html.slice(start, bestEnd) + stacks[stackAt[bestEnd]!]!.suffix);
    if (parts.length > maxParts) return { document: true };
    start = bestNext;
  }
  if (parts.length > maxParts) return { document: true };
  return { parts };
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
