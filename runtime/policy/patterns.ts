/**
 * The three pattern languages of permission rules. Hand-written because the built-in
 * `path.matchesGlob` skips dotfiles under `**`, which would let `.env` slip past a deny rule.
 */

import { isIP } from "node:net";
import { posix } from "node:path";
import { domainToASCII } from "node:url";

/** Brace groups nest at most this deep; a deeper `{` is read as itself. */
const MAX_BRACE_DEPTH = 16;

/**
 * Path globs: `**` any depth (dotfiles included), `*` and `?` within one segment, `{a,*.b}` either
 * (alternatives are globs too), `[ab]` / `[!ab]` one character. `dir/**` also matches `dir`. The
 * pattern is normalized first (`..`, `//`), and a trailing slash means the folder and its contents.
 */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${convert(normalizeGlob(glob), 0)}$`);
}

/** `path.posix.normalize` for a pattern; `dir/` becomes `dir/**`. */
export function normalizeGlob(glob: string): string {
  if (glob === "") return glob;
  const folder = glob.length > 1 && glob.endsWith("/");
  let normal = posix.normalize(glob);
  if (normal.length > 1 && normal.endsWith("/")) normal = normal.slice(0, -1);
  return folder && normal !== "/" ? `${normal}/**` : normal;
}

function convert(glob: string, depth: number): string {
  let source = "";
  for (let index = 0; index < glob.length; index++) {
    const char = glob[index]!;
    if (char === "*" && glob[index + 1] === "*") {
      const slashBefore = index === 0 || glob[index - 1] === "/";
      const next = glob[index + 2];
      if (slashBefore && next === "/") {
        source += "(?:.*/)?"; // "a/**/b" matches "a/b"
        index += 2;
      } else if (slashBefore && next === undefined && source.endsWith("/")) {
        source = `${source.slice(0, -1)}(?:/.*)?`; // "a/**" matches "a" itself
        index += 1;
      } else {
        source += ".*";
        index += 1;
      }
    } else if (char === "*") source += "[^/]*";
    else if (char === "?") source += "[^/]";
    else if (char === "{" && depth < MAX_BRACE_DEPTH && braceEnd(glob, index) >= 0) {
      const close = braceEnd(glob, index);
      source += `(?:${splitAlternatives(glob.slice(index + 1, close)).map((alternative) => convert(alternative, depth + 1)).join("|")})`;
      index = close;
    } else if (char === "[" && bracketClass(glob, index) !== null) {
      const bracket = bracketClass(glob, index)!;
      source += bracket.source;
      index = bracket.end;
    } else source += escape(char);
  }
  return source;
}

/** Index of the `}` closing the `{` at `open`, or -1. */
function braceEnd(glob: string, open: number): number {
  let depth = 0;
  for (let index = open; index < glob.length; index++) {
    if (glob[index] === "{") depth++;
    else if (glob[index] === "}" && --depth === 0) return index;
  }
  return -1;
}

/** Splits a brace body at its top-level commas. */
function splitAlternatives(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let index = 0; index < body.length; index++) {
    const char = body[index];
    if (char === "{") depth++;
    else if (char === "}") depth--;
    else if (char === "," && depth === 0) {
      parts.push(body.slice(start, index));
      start = index + 1;
    }
  }
  parts.push(body.slice(start));
  return parts;
}

/** `[abc]`, `[a-z]`, `[!x]` (or `[^x]`) at `open` as a regular-expression class that never matches `/`; null when it is no valid class (then `[` is literal). */
function bracketClass(glob: string, open: number): { source: string; end: number } | null {
  let start = open + 1;
  const negated = glob[start] === "!" || glob[start] === "^";
  if (negated) start++;
  const close = glob.indexOf("]", glob[start] === "]" ? start + 1 : start);
  if (close < 0) return null;
  const body = glob.slice(start, close);
  for (let index = 0; index + 2 < body.length; index++) {
    if (body[index + 1] === "-" && body.charCodeAt(index) > body.charCodeAt(index + 2)) return null; // [z-a]
  }
  const escaped = body.replace(/[\\\]\[^]/g, "\\$&");
  return { source: negated ? `[^${escaped}/]` : `(?!/)[${escaped}]`, end: close };
}

/** A problem with a path glob's syntax (that `globToRegExp` would work around by reading characters literally), or undefined. */
export function globProblem(glob: string): string | undefined {
  for (let index = 0; index < glob.length; index++) {
    if (glob[index] === "{" && braceEnd(glob, index) < 0) return `has a '{' without its '}'`;
    if (glob[index] === "[" && glob.includes("]", index + 1) && bracketClass(glob, index) === null) return "has an invalid [...] character class";
  }
  let depth = 0;
  for (const char of glob) {
    depth += char === "{" ? 1 : char === "}" ? -1 : 0;
    if (depth > MAX_BRACE_DEPTH) return `nests '{' more than ${MAX_BRACE_DEPTH} deep`;
  }
  return undefined;
}

export function matchesPath(path: string, glob: string): boolean {
  return globToRegExp(glob).test(path);
}

/** The folder a glob starts from: its part before the first wildcard, e.g. `~/code/app` for `~/code/app/**`. */
export function globBase(glob: string): string {
  const normal = normalizeGlob(glob);
  const wildcard = normal.search(/[*?{[]/);
  const prefix = wildcard < 0 ? normal : normal.slice(0, wildcard);
  return wildcard < 0 ? prefix : prefix.slice(0, prefix.lastIndexOf("/")) || "/";
}

/**
 * Command patterns, matched against one simple command such as `git push origin main`. `*` matches
 * anything (spaces too). A pattern without `*` matches the command itself or the command followed by
 * more words: `git push` matches `git push --force`, not `git pushy`. Options are a set written in
 * any order and spelling (`rm -fr --verbose -- /` matches `rm -rf /`; see `OPTION_SPELLINGS`).
 */
export function matchesCommand(command: string, pattern: string): boolean {
  const trimmed = pattern.trim();
  if (!trimmed.includes("*")) return command === trimmed || command.startsWith(trimmed + " ") || optionsMatch(command.split(" "), trimmed.split(" "));
  return wildcard(command, trimmed) || wildcard(respell(command), respell(trimmed));
}

/**
 * Options another spelling means, per command or subcommand: long names (getopt takes any unique
 * prefix) and letters. `-R` is `-r` for rm; `-f` is `--force` for git push.
 */
const OPTION_SPELLINGS = new Map<string, { long: Record<string, string>; short: Record<string, string> }>([
  ["rm", { long: { recursive: "-r", force: "-f", dir: "-d", verbose: "-v", interactive: "--interactive", "one-file-system": "--one-file-system", "no-preserve-root": "--no-preserve-root", "preserve-root": "--preserve-root", help: "--help", version: "--version" }, short: { R: "r" } }],
  ["git push", { long: {}, short: { f: "--force" } }],
]);

/** Options as a set of single options (`-r`, `--force`, `--tag=x`) and the other words in order; nothing after `--` is an option. */
function parseOptions(words: readonly string[]): { options: Set<string>; operands: string[] } {
  const spelling = OPTION_SPELLINGS.get(`${words[0]} ${words[1]}`) ?? OPTION_SPELLINGS.get(words[0] ?? "");
  const options = new Set<string>();
  const operands: string[] = [];
  let ended = false;
  for (const word of words) {
    if (ended || !word.startsWith("-") || word === "-") operands.push(normalizeOperand(word));
    else if (word === "--") ended = true;
    else for (const option of spellOption(word, spelling)) options.add(option);
  }
  return { options, operands };
}

function spellOption(word: string, spelling: { long: Record<string, string>; short: Record<string, string> } | undefined): string[] {
  if (/^-[A-Za-z]+$/.test(word)) {
    return [...word.slice(1)].map((letter) => {
      const same = spelling?.short[letter] ?? letter;
      return same.startsWith("-") ? same : `-${same}`;
    });
  }
  if (!word.startsWith("--") || spelling === undefined) return [word];
  const [name, ...value] = word.slice(2).split("=");
  const names = Object.keys(spelling.long).filter((long) => long.startsWith(name!));
  const full = names.includes(name!) ? name! : names.length === 1 ? names[0]! : undefined;
  if (full === undefined) return [word];
  return [`${spelling.long[full]}${value.length > 0 ? `=${value.join("=")}` : ""}`];
}

/** `//` is `/`, `~/` is `~`: a path written with extra slashes names the same folder. */
function normalizeOperand(word: string): string {
  if (!/^[/~]/.test(word)) return word;
  const collapsed = word.replace(/\/+/g, "/");
  return collapsed.length > 1 && collapsed.endsWith("/") ? collapsed.slice(0, -1) : collapsed;
}

/** The pattern's options are among the command's, and its other words start the command's. */
function optionsMatch(command: readonly string[], pattern: readonly string[]): boolean {
  if (command[0] !== pattern[0]) return false; // most pairs: no need to read the options
  const given = parseOptions(command);
  const wanted = parseOptions(pattern);
  if (wanted.operands.length > given.operands.length) return false;
  return [...wanted.options].every((option) => given.options.has(option)) && wanted.operands.every((word, index) => given.operands[index] === word);
}

/**
 * The text of a command or template with options spelled one way where they stand: single letters
 * merged into sorted clusters, long names as letters where one exists, `--` dropped. For `*`
 * patterns and templates, which are matched as text.
 */
export function respell(text: string): string {
  const tokens = text.split(/ |(?=\uE000)|(?<=\uE000)/).filter((token) => token !== "");
  const words = tokens.filter((token) => token !== ANY_TEXT);
  const spelling = OPTION_SPELLINGS.get(`${words[0]} ${words[1]}`) ?? OPTION_SPELLINGS.get(words[0] ?? "");
  const out: string[] = [];
  let ended = false;
  for (const token of tokens) {
    const previous = out.at(-1);
    if (ended || !/^--?[A-Za-z]/.test(token)) {
      if (token === "--") ended = true;
      else out.push(token);
      continue;
    }
    const spelled = spellOption(token, spelling);
    const letters = spelled.every((option) => /^-[A-Za-z]$/.test(option)) ? spelled.map((option) => option[1]).join("") : undefined;
    if (letters === undefined) out.push(...spelled);
    else if (previous !== undefined && /^-[A-Za-z]+$/.test(previous) && out.length > 1) out[out.length - 1] = cluster(previous + letters);
    else out.push(cluster(`-${letters}`));
  }
  // A computed part is a word of its own here (it may still vanish: a pattern is also tried with ` *`).
  return out.map((token, index) => (index === 0 ? token : ` ${token}`)).join("");
}

function cluster(word: string): string {
  return `-${[...new Set(word.slice(1))].sort().join("")}`;
}

/**
 * `*` matches any run of characters. Greedy with one backtrack point, so time stays linear-ish in
 * the text (a regular expression with several `.*` can take seconds on a long command line).
 */
function wildcard(text: string, pattern: string): boolean {
  let t = 0;
  let p = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== "*" && pattern[p] === text[t]) {
      t++;
      p++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else return false;
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/** In a command template: a part computed at run time that may become any text (any number of words, or none). */
export const ANY_TEXT = "\uE000";
/** In a command template: a part computed at run time that stays inside one word (a quoted expansion): any text without a space. */
export const ONE_WORD = "\uE001";
/** Templates and patterns longer than this together are not compared: the answer is "could match". */
const MAX_STATES = 4_000_000;

/**
 * Whether some run-time value of a command's computed parts could make it match a command pattern.
 * `template` is the command's text with those parts replaced by ANY_TEXT or ONE_WORD.
 */
export function couldMatchCommand(template: string, pattern: string): boolean {
  const trimmed = pattern.trim();
  if (couldMatchAsWritten(template, trimmed)) return true;
  return trimmed.includes("*") ? couldMatchAsWritten(respell(template), respell(trimmed)) : couldMatchOptions(template, trimmed);
}

/**
 * Options as a set for a template: the pattern's options are among the command's static ones (a
 * computed part is not counted as supplying them, or `rm -f $x` would match `rm -rf /`), and the
 * other words could match.
 */
function couldMatchOptions(template: string, pattern: string): boolean {
  const given = parseOptions(template.split(/ |(?=\uE000)|(?<=\uE000)/).filter((token) => token !== ""));
  const wanted = parseOptions(pattern.split(" "));
  if (![...wanted.options].every((option) => given.options.has(option))) return false;
  const text = given.operands.map((word, index) => (index === 0 || word === ANY_TEXT ? word : ` ${word}`)).join("");
  return couldMatchAsWritten(text, wanted.operands.join(" "));
}

function couldMatchAsWritten(template: string, pattern: string): boolean {
  if (pattern.includes("*")) return intersects(template, pattern);
  return intersects(template, pattern) || intersects(template, `${pattern} *`);
}

/** Whether some text is both in the template's language and the `*` pattern's: a search over pairs of positions. */
function intersects(template: string, pattern: string): boolean {
  const fixed = Math.min(template.search(/[\uE000\uE001]/) >>> 0, pattern.indexOf("*") >>> 0, template.length, pattern.length);
  if (template.slice(0, fixed) !== pattern.slice(0, fixed)) return false; // the literal starts differ: quick no
  const width = pattern.length + 1;
  const states = (template.length + 1) * width;
  if (states > MAX_STATES) return true;
  const seen = new Uint8Array(states);
  const stack = [0];
  seen[0] = 1;
  const visit = (i: number, j: number) => {
    const state = i * width + j;
    if (seen[state] === 0) {
      seen[state] = 1;
      stack.push(state);
    }
  };
  while (stack.length > 0) {
    const state = stack.pop()!;
    const i = Math.floor(state / width);
    const j = state % width;
    if (i === template.length && j === pattern.length) return true;
    const t = template[i];
    const p = pattern[j];
    const computed = t === ANY_TEXT || t === ONE_WORD;
    if (computed) visit(i + 1, j); // the computed part ends here
    if (p === "*") visit(i, j + 1); // the star ends here
    if (t === undefined || p === undefined) continue;
    if (!computed && p !== "*" && t === p) visit(i + 1, j + 1);
    else if (!computed && p === "*") visit(i + 1, j); // the star takes a literal character
    else if (computed && p !== "*" && (t === ANY_TEXT || p !== " ")) visit(i, j + 1); // the computed part takes a pattern character
  }
  return false;
}

/**
 * A host name as the policy compares it: lower case, without a trailing dot, international names
 * in punycode (`bücher.de` is `xn--bcher-kva.de`). A leading `*.` of a pattern is kept.
 */
export function normalizeDomain(host: string): string {
  const lower = host.trim().toLowerCase().replace(/\.$/, "");
  if (isIP(lower) !== 0) return lower;
  const star = lower.startsWith("*.") ? "*." : "";
  const name = lower.slice(star.length);
  if (/^[\x00-\x7f]*$/.test(name)) return lower;
  const ascii = domainToASCII(name);
  return ascii === "" ? lower : star + ascii;
}

/** A normalized host: an IP address or dot-separated labels of letters, digits, `-` and `_`. */
export function isValidHost(host: string): boolean {
  if (isIP(host) !== 0) return true;
  return host.length > 0 && host.length <= 253 && host.split(".").every((label) => /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label));
}

/** Domain patterns: `example.com` exactly, `*.example.com` its subdomains (not itself), `*` any host. Both sides are normalized. */
export function matchesDomain(host: string, pattern: string): boolean {
  const h = normalizeDomain(host);
  const p = normalizeDomain(pattern);
  if (p === "*") return true;
  if (p.startsWith("*.")) return h.endsWith(p.slice(1));
  return h === p;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
