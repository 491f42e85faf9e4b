// Long Telegram HTML split into messages that each stay valid on their own. Pure, no I/O.
//
// Telegram's limit of 4,096 characters per message counts the text it shows: after the tags are
// parsed and the entities decoded, in UTF-16 code units. Tags and link targets cost nothing, so a
// link-heavy answer whose HTML is four times its text still fits in one message.

export interface SplitOptions {
  /** Maximum visible characters per part: text after tags and entities, in UTF-16 code units, as Telegram counts. Default 4096. */
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
const TAG_START = /<(\/?)([a-zA-Z][\w-]*)/y; // a tag, if a `>` follows
const ENTITY = /^&(?:#\d+|#x[0-9a-f]+|[a-z]+);/i;

/**
 * Split Telegram HTML into parts of at most `limit` visible characters, preferring paragraph (blank line)
 * and code-block boundaries, then line breaks, then spaces, then a hard cut. Never cuts inside a
 * tag, an entity or a surrogate pair; tags open at a cut are closed at the end of the part and reopened in the next
 * (so a long code block becomes several proper `<pre><code …>` blocks). Whitespace dropped at a cut
 * is only the separator itself (never inside code). More than `maxParts` parts → `{ document: true }`.
 */
export function splitForTelegram(html: string, options: SplitOptions = {}): { parts: string[] } | { document: true } {
  const limit = options.limit ?? 4096;
  const maxParts = options.maxParts ?? 4;
  const n = html.length;
  if (visibleExceeds(html, maxParts * limit)) return { document: true }; // in time linear in what fits, however long the rest

  // One pass: which cut positions are legal, which tags are open and how much text is visible at each position.
  const legal = new Uint8Array(n + 1);
  const visible = new Int32Array(n + 1); // visible UTF-16 units before each position
  const stackAt = new Int32Array(n + 1);
  const root: OpenTags = { parent: null, name: "", raw: "", index: 0, depth: 0, pre: false };
  const stacks: OpenTags[] = [root];
  const openCount = new Map<string, number>(); // how many of each tag the current stack holds
  let stack = root;
  let gt = html.indexOf(">"); // the first `>` at or after i (-1: none)
  let i = 0;
  let afterOpenTag = false;
  let units = 0;
  while (i < n) {
    const c = html[i]!;
    legal[i] = afterOpenTag ? 0 : 1;
    stackAt[i] = stack.index;
    visible[i] = units;
    afterOpenTag = false;
    if (c === "<") {
      if (gt >= 0 && gt < i) gt = html.indexOf(">", i);
      const end = gt;
      TAG_START.lastIndex = i;
      const tag = end < 0 ? null : TAG_START.exec(html);
      if (end >= 0 && tag) {
        const closing = tag[1] === "/";
        const name = tag[2]!.toLowerCase();
        if (closing) legal[i] = 0; // cutting right before a closing tag would leave an empty element
        for (let k = i + 1; k <= end; k++) {
          stackAt[k] = stack.index;
          visible[k] = units;
        }
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
      const entity = ENTITY.exec(html.slice(i, i + 12));
      if (entity) {
        for (let k = i + 1; k < i + entity[0].length; k++) {
          stackAt[k] = stack.index;
          visible[k] = units;
        }
        units += entityUnits(entity[0]);
        i += entity[0].length;
        continue;
      }
    }
    const code = c.charCodeAt(0);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < n) {
      stackAt[i + 1] = stack.index;
      visible[i + 1] = units + 1;
      units += 2;
      i += 2;
      continue;
    }
    units++;
    i++;
  }
  legal[n] = afterOpenTag ? 0 : 1;
  stackAt[n] = stack.index;
  visible[n] = units;

  const parts: string[] = [];
  const push = (part: string): void => {
    if (hasText(part)) parts.push(part);
  };
  let start = skipNewlines(html, 0, stacks[stackAt[0]!]!);
  while (start < n) {
    const open = stacks[stackAt[start]!]!;
    if (visible[n]! - visible[start]! <= limit) {
      push(prefixOf(open) + html.slice(start) + suffixOf(stacks[stackAt[n]!]!));
      break;
    }
    let bestScore = -1;
    let bestEnd = -1;
    let bestNext = -1;
    for (let p = start + 1; p <= n && visible[p]! - visible[start]! <= limit; p++) {
      if (!legal[p]) continue;
      const at = stacks[stackAt[p]!]!;
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
      // No legal cut within the limit (a limit below one character): make progress at the next one.
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


/** Whether the visible text is longer than `max` units, reading tags and entities as the main pass does; stops as soon as it is. */
function visibleExceeds(html: string, max: number): boolean {
  let units = 0;
  let gt = html.indexOf(">");
  for (let i = 0; i < html.length; ) {
    const c = html[i];
    if (c === "<") {
      if (gt >= 0 && gt < i) gt = html.indexOf(">", i);
      TAG_START.lastIndex = i;
      if (gt >= 0 && TAG_START.test(html)) {
        i = gt + 1;
        continue;
      }
    } else if (c === "&") {
      const entity = ENTITY.exec(html.slice(i, i + 12));
      if (entity) {
        units += entityUnits(entity[0]);
        i += entity[0].length;
        if (units > max) return true;
        continue;
      }
    }
    units++; // each half of a surrogate pair counts one
    i++;
    if (units > max) return true;
  }
  return false;
}

/** What an entity counts for Telegram: one UTF-16 unit, or two for a numeric one past U+FFFF. */
function entityUnits(entity: string): number {
  if (entity[1] !== "#") return 1;
  const point = entity[2] === "x" || entity[2] === "X" ? parseInt(entity.slice(3), 16) : parseInt(entity.slice(2), 10);
  return point > 0xffff ? 2 : 1;
}
