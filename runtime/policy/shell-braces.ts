/**
 * Bash's brace expansion, for path checks: `~/.ssh/{id_rsa,config}` names two files, each checked
 * on its own. Lists (`{a,b}`, nested, several in a row) and sequences (`{1..3}`, `{a..e}`,
 * `{01..10..2}`) as bash reads them; a `{` that is neither stays itself.
 */

/** More words than this: the caller cannot check them one by one (undefined). */
const MAX_WORDS = 256;

/** The words one word becomes, or undefined when they would be more than `limit`. Never throws. */
export function expandBraces(word: string, limit = MAX_WORDS): string[] | undefined {
  return expand(word, 0, limit);
}

/** Work stays near `limit` times the nesting: a part that grows past the limit stops everything. */
function expand(word: string, from: number, limit: number): string[] | undefined {
  for (let open = word.indexOf("{", from); open >= 0; open = word.indexOf("{", open + 1)) {
    const close = closing(word, open);
    if (close < 0) continue;
    const body = word.slice(open + 1, close);
    const parts = alternatives(body) ?? sequence(body, limit);
    if (parts === undefined) continue; // `{}` or `{x}`: itself, but braces inside it may still expand
    if (parts === null) return undefined;
    const prefix = word.slice(0, open);
    const suffix = word.slice(close + 1);
    const words: string[] = [];
    for (const part of parts) {
      // What precedes `open` has no expansion left; the part and the rest may.
      const expanded = expand(prefix + part + suffix, open, limit);
      if (expanded === undefined || words.push(...expanded) > limit) return undefined;
    }
    return words;
  }
  return [word];
}

/** Index of the `}` that closes the `{` at `open`, or -1. A backslash escapes one character. */
function closing(word: string, open: number): number {
  let depth = 0;
  for (let index = open; index < word.length; index++) {
    const char = word[index];
    if (char === "\\") index++;
    else if (char === "{") depth++;
    else if (char === "}" && --depth === 0) return index;
  }
  return -1;
}

/** `a,b,{c,d}` split at its top-level commas; undefined without one (then it is no list). */
function alternatives(body: string): string[] | undefined {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let index = 0; index < body.length; index++) {
    const char = body[index];
    if (char === "\\") index++;
    else if (char === "{") depth++;
    else if (char === "}") depth--;
    else if (char === "," && depth === 0) {
      parts.push(body.slice(start, index));
      start = index + 1;
    }
  }
  if (parts.length === 0) return undefined;
  parts.push(body.slice(start));
  return parts;
}

/** `1..5`, `05..1..2` (zero-padded to the wider end), `a..e`: undefined when it is no sequence, null when longer than `limit`. */
function sequence(body: string, limit: number): string[] | undefined | null {
  const numbers = /^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$/.exec(body);
  const letters = /^([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?\d+))?$/.exec(body);
  const match = numbers ?? letters;
  if (match === null) return undefined;
  const from = numbers ? Number(match[1]) : match[1]!.charCodeAt(0);
  const to = numbers ? Number(match[2]) : match[2]!.charCodeAt(0);
  const step = Math.abs(Number(match[3] ?? 1)) || 1;
  if (Math.abs(to - from) / step >= limit) return null;
  const padded = numbers !== null && (/^-?0\d/.test(match[1]!) || /^-?0\d/.test(match[2]!));
  const width = padded ? Math.max(match[1]!.length, match[2]!.length) : 0;
  const out: string[] = [];
  for (let value = from; from <= to ? value <= to : value >= to; value += from <= to ? step : -step) {
    out.push(numbers ? pad(value, width) : String.fromCharCode(value));
  }
  return out;
}

function pad(value: number, width: number): string {
  const digits = String(Math.abs(value)).padStart(width - (value < 0 ? 1 : 0), "0");
  return value < 0 ? `-${digits}` : digits;
}
