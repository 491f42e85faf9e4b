/**
 * Splits a bash line into the simple commands a permission policy must check, so that chaining,
 * substitution, wrappers (`sudo`, `xargs`, …) and nested shells (`bash -c`, `eval`, `bash <<EOF`)
 * cannot smuggle a command past a rule. Global options before a subcommand (`git -C . push`) are
 * removed in an extra form of the command. Hand-written and deliberately conservative: whatever it
 * cannot read statically (a command name from a variable, a script piped into a shell, an alias, a
 * trap, …) is refused with a reason, so the caller asks a human instead of guessing; arguments
 * computed at run time are marked (`dynamic`) for the policy to judge.
 */

import { ANY_TEXT, ONE_WORD } from "./patterns.ts";
import { assignmentEvaluates, evaluatesCode, readIntoArithmetic, SUBSCRIPT_CODE } from "./shell-evaluates.ts";
import { findExecs, shellScripts, toolCommand, wrappedCommand } from "./shell-runners.ts";
import { respelledSubcommand } from "./shell-spelling.ts";
import { CODE_VARIABLES, DECLARATIONS, decodeAnsiC, descriptorOf, GIT_SAFE_CONFIG, GIT_SCRIPT_CONFIG, GLOBAL_OPTIONS, NEVER_RUNS, SCRIPT_VARIABLES, SHELLS, subcommandStarts, WRAPPERS } from "./shell-tables.ts";
import { Unparseable, type Stdin, type Word } from "./shell-word.ts";

export interface SimpleCommand {
  /** The command words after removing leading assignments (FOO=1) and wrappers, joined by single spaces, with quotes removed: e.g. "git push origin main". */
  text: string;
  /** The words, unquoted. */
  words: string[];
  /**
   * Some argument is computed at run time (`$x`, `$(…)`, a glob or brace pattern, what xargs or
   * find add), so `text` shows it as written, not as it will run.
   */
  dynamic: boolean;
  /**
   * When dynamic: `text` with each computed part replaced by ANY_TEXT (may become any words, or
   * none) or ONE_WORD (a quoted expansion: text within one word), for `couldMatchCommand`.
   */
  template?: string;
  /**
   * When dynamic: the template's piece for each word (`pieces[0]` is the name, then " word" or
   * ANY_TEXT), and one more ANY_TEXT when a wrapper (xargs) adds arguments at run time. Lets the
   * policy build the template of a suffix (`commandSuffixes`).
   */
  pieces?: string[];
  /** Indices into `words` of unquoted glob patterns (`*.ts`, `.[^.]*`), absent when none; a quoted `'.*'` is text. */
  globs?: number[];
  /**
   * Indices into `words` of words whose leading `~` bash expands: unquoted at the word's start, or
   * right after an assignment's `=` (`x=~/a`, not `--file=~/a`); absent when none. Any other `~` is
   * text (`'~> 1.0'`, `'$a =~ b'`).
   */
  tildes?: number[];
}

/**
 * A redirection to or from a file (`< in`, `> out`, `2>> log`, `&> all`, `<> both`), for the path
 * rules; not heredocs, here-strings or copies of a descriptor (`2>&1`, `>&-`).
 */
export interface Redirect {
  reads: boolean;
  writes: boolean;
  /** The target, unquoted; `$x` and `$(…)` as written. */
  target: string;
  dynamic: boolean;
  /** Holds an unquoted glob character: bash opens the one file it matches. */
  glob: boolean;
}

/**
 * `commands` and `redirects` of a refusal: those read before it, for the policy's deny rules (a deny is final).
 * `assigns`, absent when none: variables the line sets where no command's words show it (a bare
 * `x=1`, `for x in`), and a prefix `x=1 cmd` whose cmd may use it (`cd`, a function the line
 * defines, a command that runs others), so the path rules know `~` or the glob options may change.
 */
export type SplitResult = ({ ok: true } | { ok: false; reason: string }) & { commands: SimpleCommand[]; redirects: Redirect[]; assigns?: string[] };

/** What a line was found to run, open and set, in the order read. */
interface Found {
  commands: SimpleCommand[];
  redirects: Redirect[];
  assigns: Set<string>;
}

/** Never throws for any input string; a line it cannot read safely gives `ok: false`. */
export function splitCommands(line: string): SplitResult {
  const found: Found = { commands: [], redirects: [], assigns: new Set() };
  const result = () => ({ commands: found.commands, redirects: found.redirects, ...(found.assigns.size > 0 ? { assigns: [...found.assigns] } : {}) });
  try {
    collect(line, found, 0);
    const evaluated = readIntoArithmetic(found.commands, line);
    if (evaluated !== undefined) throw new Unparseable(`${evaluated}, which cannot be checked`);
    return { ok: true, ...result() };
  } catch (error) {
    if (error instanceof Unparseable) return { ok: false, reason: error.message, ...result() };
    throw error;
  }
}

type Builder = Omit<Word, "raw">;
type Heredoc = { delimiter: string; stripTabs: boolean; quoted: boolean; stdin: Stdin };
/** A simple command as read; `stdin` null means inherited (a pipe, the terminal, …). */
type RawCommand = { words: Word[]; stdin: Stdin | null; redirects: Redirect[] };

const MAX_DEPTH = 64;
const KEYWORD =
  /\{(?=\s)|(?:[}!]|if|then|elif|else|fi|do|done|while|until|for|select|case|function|coproc)(?=[\s;&|()<>]|$)|time(?:[ \t]+-p)?(?=[ \t]+[({])/y;
const OPERATOR = /&&|\|\||;;|\|&|[;&|]/y;
const REDIRECT = /(?:\d+|\{[A-Za-z_]\w*\})?(?:<<<|<<-|<<|<>|<&|>>|>&|>\||&>>|&>|<(?!\()|>(?!\())/y;
const NAME = /[A-Za-z_]\w*/y;
const FUNCTION_PARENS = /\([ \t]*\)/y;
const ASSIGNMENT = /^[A-Za-z_]\w*(?:\[[^\]]*\])?\+?=/;
/** `{a,b}` or `{1..3}`: bash makes several words of one. */
const BRACE_EXPANSION = /\{[^{}]*(?:,|\.\.)[^{}]*\}/;

function collect(script: string, out: Found, depth: number): void {
  if (depth > MAX_DEPTH) throw new Unparseable("commands are nested too deeply");
  const records: RawCommand[] = [];
  new Parser(script, records, depth).parseScript();
  // Cheap and errs toward counting: `()` or `function` anywhere may define one.
  const definesFunctions = /\(\s*\)|(?:^|\s)function\s/.test(script);
  for (const record of records) {
    out.redirects.push(...record.redirects);
    const first = record.words.findIndex((word) => !ASSIGNMENT.test(word.raw));
    const prefix = first < 0 ? record.words : record.words.slice(0, first);
    for (const word of prefix) checkAssignment(word, out, depth);
    const before = out.commands.length;
    if (first >= 0) emitCommand(record.words.slice(first), record.stdin, out, depth);
    // Bash expands a command's own words before its prefix takes effect: `HOME=x cat ~/f` reads the old home.
    const name = first < 0 ? "" : record.words[first]!.value;
    const lasting = first < 0 || definesFunctions || PREFIX_READERS.has(name) || out.commands.length - before > 1;
    if (lasting) for (const word of prefix) out.assigns.add(/^[A-Za-z_]\w*/.exec(word.raw)![0]);
  }
}

/** Builtins that read a variable set in their prefix: `HOME=x cd` goes to x. */
const PREFIX_READERS = new Set(["cd", "pushd"]);

/** Reads one script, appending every simple command it meets (nested ones first) to `records`. */
class Parser {
  private readonly src: string;
  private readonly records: RawCommand[];
  private readonly heredocs: Heredoc[] = [];
  /** Where `$((` turned out not to be arithmetic: remembered so nesting cannot go exponential. */
  private readonly notArithmetic = new Set<number>();
  private pos = 0;
  private nesting: number;

  constructor(src: string, records: RawCommand[], nesting: number) {
    if (nesting > MAX_DEPTH) throw new Unparseable("commands are nested too deeply");
    this.src = src;
    this.records = records;
    this.nesting = nesting;
  }

  parseScript(): void {
    this.parseList(null);
    this.checkHeredocsRead();
  }

  /** Reads an unquoted heredoc body: like double-quoted text without a closing quote. */
  expandBody(): Builder {
    const body = blank();
    this.readDouble(body, null);
    this.checkHeredocsRead();
    return body;
  }

  private checkHeredocsRead(): void {
    const open = this.heredocs[0];
    if (open) throw new Unparseable(`unterminated heredoc (no line "${open.delimiter}")`);
  }

  private match(pattern: RegExp): string | null {
    pattern.lastIndex = this.pos;
    return pattern.exec(this.src)?.[0] ?? null;
  }

  /** Every recursive read goes through here, so hostile nesting is refused instead of overflowing the stack. */
  private nested(read: () => void): void {
    if (++this.nesting > MAX_DEPTH) throw new Unparseable("commands are nested too deeply");
    read();
    this.nesting--;
  }

  private parseList(close: ")" | "}" | null): void {
    for (;;) {
      this.skipBlanks();
      const c = this.src[this.pos];
      if (c === undefined && close !== null) throw new Unparseable(`unbalanced: missing '${close}'`);
      if (c === undefined) break;
      if (c === ")" && close !== ")") throw new Unparseable("unbalanced ')'");
      const op = c === "\n" || c === ")" || c === "(" ? c : this.match(OPERATOR);
      if (op === ";;") throw new Unparseable("';;' outside a case statement");
      if (op !== null) this.pos += op.length;
      if (op === "\n") this.readHeredocBodies();
      else if (op === ")") break;
      else if (op === "(" && this.arithmeticCommand()) continue;
      else if (op === "(") this.nested(() => this.parseList(")"));
      else if (op === null && this.parseKeyword(close) === "closed") break;
    }
  }

  /** Reserved words count only at a command start; returns "closed" when `}` ends the group. */
  private parseKeyword(close: ")" | "}" | null): "closed" | "read" {
    const word = this.match(KEYWORD);
    if (word === null) {
      this.parseSimpleCommand(true);
      return "read";
    }
    this.pos += word.length;
    if (word === "}" && close !== "}") throw new Unparseable("unbalanced '}'");
    if (word === "}") return "closed";
    if (word === "{") this.nested(() => this.parseList("}"));
    if (word === "case") throw new Unparseable("case statements are not supported");
    if (word === "function") {
      this.skipBlanks();
      this.readWord();
    }
    if (word === "for" || word === "select") {
      this.skipBlanks();
      if (this.src.startsWith("((", this.pos)) throw new Unparseable("arithmetic for loops are not supported");
      const variable = this.readWord();
      // Read as the assignment it is: `for HOME in …` sets HOME for the loop's body and after.
      if (/^[A-Za-z_]\w*$/.test(variable.raw)) this.records.push({ words: [literal(`${variable.raw}=`)], stdin: null, redirects: [] });
      this.skipBlanks();
      // `for x in …;` has a word list whose substitutions count; `for x do …` has none.
      if (/^in(?=[\s;&|()<>]|$)/.test(this.src.slice(this.pos, this.pos + 3))) this.parseSimpleCommand(false);
    }
    return "read";
  }

  private parseSimpleCommand(record: boolean): void {
    const command: RawCommand = { words: [], stdin: null, redirects: [] };
    for (;;) {
      this.skipBlanks();
      const redirect = this.match(REDIRECT);
      if (redirect !== null) {
        this.pos += redirect.length;
        this.readRedirect(redirect, command);
        continue;
      }
      const c = this.src[this.pos];
      if (c === undefined || "\n;&|)".includes(c)) break;
      if (c === "(") {
        const parens = command.words.length === 1 ? this.match(FUNCTION_PARENS) : null;
        if (parens === null) throw new Unparseable("unexpected '('");
        this.pos += parens.length; // a function definition; its body follows as a group
        return;
      }
      const word = this.readWord();
      if (word.raw === "") throw new Unparseable(`unexpected '${c}'`);
      command.words.push(word);
    }
    if (record) this.records.push(command);
  }

  private readRedirect(op: string, command: RawCommand): void {
    const fd = /^(?:\d+|\{\w+\})/.exec(op)?.[0];
    const kind = op.slice(fd?.length ?? 0);
    this.skipBlanks();
    const target = this.readWord();
    if (target.raw === "") throw new Unparseable(`redirection '${kind}' has no target`);
    const file = fileRedirect(kind, target);
    if (file !== undefined) command.redirects.push(file);
    let stdin: Stdin = { text: null, dynamic: target.dynamic || kind === "<&" };
    if (kind === "<<<") stdin = { text: target.value, dynamic: target.dynamic };
    const descriptor = kind === "<" && !target.dynamic ? descriptorOf(target.value) : undefined;
    if (descriptor === 0) return; // `< /dev/stdin` keeps what standard input already was
    if (descriptor !== undefined) stdin = { text: null, dynamic: true };
    if (kind === "<<" || kind === "<<-") {
      stdin = { text: null, dynamic: false }; // filled in when the body is read
      const quoted = /['"\\]/.test(target.raw.replaceAll("\\\n", "")); // a line continuation quotes nothing
      this.heredocs.push({ delimiter: target.value, stripTabs: kind === "<<-", quoted, stdin });
    }
    if (kind.startsWith("<") && (fd === undefined || fd === "0")) command.stdin = stdin;
  }

  /** Heredoc bodies start on the line after the command that opened them. */
  private readHeredocBodies(): void {
    for (const doc of this.heredocs.splice(0)) {
      const lines: string[] = [];
      for (;;) {
        if (this.pos >= this.src.length) throw new Unparseable(`unterminated heredoc (no line "${doc.delimiter}")`);
        const newline = this.src.indexOf("\n", this.pos);
        const end = newline < 0 ? this.src.length : newline;
        const raw = this.src.slice(this.pos, end);
        const line = doc.stripTabs ? raw.replace(/^\t+/, "") : raw;
        this.pos = Math.min(end + 1, this.src.length);
        if (line === doc.delimiter) break;
        lines.push(line);
      }
      const body = lines.join("\n");
      const expanded = doc.quoted ? { value: body, dynamic: false } : new Parser(body, this.records, this.nesting + 1).expandBody();
      doc.stdin.text = expanded.value;
      doc.stdin.dynamic = expanded.dynamic;
    }
  }

  /** Skips blanks, line continuations and a comment (`#` at a word start). */
  private skipBlanks(): void {
    for (;;) {
      const c = this.src[this.pos];
      if (c === " " || c === "\t") this.pos++;
      else if (c === "\\" && this.src[this.pos + 1] === "\n") this.pos += 2;
      else if (c !== "#") return;
      else {
        const end = this.src.indexOf("\n", this.pos);
        this.pos = end < 0 ? this.src.length : end;
      }
    }
  }

  private readWord(): Word {
    const start = this.pos;
    const word = blank();
    for (;;) {
      const c = this.src[this.pos];
      const next = this.src[this.pos + 1];
      if (c === undefined) break;
      if ((c === "<" || c === ">") && next === "(") {
        const from = this.pos; // process substitution
        this.pos += 2;
        this.nested(() => this.parseList(")"));
        this.expansion(word, from, true); // one word: a path such as /dev/fd/63
        continue;
      }
      if (c === "(" && /^[A-Za-z_]\w*\+?=$/.test(this.src.slice(start, this.pos))) this.nested(() => this.readArray(word));
      else if (" \t\n;&|()<>".includes(c)) break;
      else if (c === "\\") {
        this.pos += next === undefined ? 1 : 2; // backslash-newline is a line continuation
        if (next !== "\n") append(word, next ?? "\\");
      } else {
        this.pos++;
        if (c === "'") this.readSingle(word);
        else if (c === '"') this.readDouble(word, '"');
        else if (c === "$") this.readDollar(word, false);
        else if (c === "`") this.readBacktick(word, false);
        else append(word, c);
        word.glob ||= "*?[{".includes(c);
        word.loose ||= "*?[".includes(c);
      }
    }
    const raw = this.src.slice(start, this.pos);
    if (word.glob && BRACE_EXPANSION.test(raw)) word.loose = true;
    return { ...word, raw };
  }

  /**
   * Appends the source text of an expansion starting at `from`; its result is unknown until run
   * time. Unquoted, it may become any number of words (split, globbed); quoted, one word, except "$@".
   */
  private expansion(word: Builder, from: number, quoted: boolean): void {
    const source = this.src.slice(from, this.pos);
    word.value += source;
    word.template += ONE_WORD;
    word.dynamic = true;
    word.loose ||= !quoted || /^\$(?:@|\{[^}]*@)/.test(source);
  }

  private readSingle(word: Builder): void {
    const end = this.src.indexOf("'", this.pos);
    if (end < 0) throw new Unparseable("unbalanced single quote");
    append(word, this.src.slice(this.pos, end));
    this.pos = end + 1;
  }

  /** Double-quoted text after the opening quote; `close` null reads a heredoc body to the end. */
  private readDouble(word: Builder, close: '"' | null): void {
    const escapable = close === null ? "\\$`\n" : '"\\$`\n';
    for (;;) {
      const c = this.src[this.pos++];
      const next = this.src[this.pos];
      if (c === undefined && close !== null) throw new Unparseable("unbalanced double quote");
      if (c === undefined || c === close) return;
      if (c === "\\" && next !== undefined && escapable.includes(next)) {
        this.pos++;
        if (next !== "\n") append(word, next);
      } else if (c === "$") this.readDollar(word, true);
      else if (c === "`") this.readBacktick(word, true);
      else append(word, c);
    }
  }

  /** After a `$`. An expansion keeps its source text as value and marks the word dynamic. */
  private readDollar(word: Builder, quoted: boolean): void {
    const from = this.pos - 1;
    const c = this.src[this.pos] ?? "";
    if (!quoted && (c === "'" || c === '"')) {
      this.pos++;
      if (c === "'") append(word, this.readAnsiC());
      else this.readDouble(word, '"');
      return;
    }
    if (c === "(") this.nested(() => this.readParenthesised());
    else if (c === "{") {
      this.pos++;
      this.nested(() => this.readParameter(quoted));
    } else if (/[A-Za-z_]/.test(c)) this.pos += this.match(NAME)!.length;
    else if (/[\d@*#?$!-]/.test(c)) this.pos++;
    else if (c !== "(") {
      append(word, "$");
      return;
    }
    this.expansion(word, from, quoted);
  }

  private readParenthesised(): void {
    if (this.readArithmetic()) return;
    this.pos++;
    this.parseList(")");
  }

  /** After a `(` at a command start: `(( … ))` is arithmetic (no redirections or heredocs inside), else a subshell follows. */
  private arithmeticCommand(): boolean {
    const start = this.pos - 1;
    if (this.src[this.pos] !== "(") return false;
    if (this.readArithmetic(start, true)) return true;
    this.pos = start + 1;
    return false;
  }

  /** At the `(` after `$`: reads `(( … ))` and returns true, or returns false when bash would
   * read a command substitution instead (no `((`, or `))` does not close it). */
  private readArithmetic(from = this.pos, command = false): boolean {
    const mark = { pos: from, records: this.records.length };
    if (!this.src.startsWith("((", from) || this.notArithmetic.has(mark.pos)) return false;
    this.pos = from;
    const scratch = blank();
    let depth = 0;
    this.pos += 2;
    for (;;) {
      const c = this.src[this.pos++];
      if (c === undefined && command) break; // then it was a subshell, or is unbalanced anyway
      if (c === undefined) throw new Unparseable("unbalanced '$(('");
      if (c === ")" && depth === 0) break;
      if (c === "(" || c === ")") depth += c === "(" ? 1 : -1;
      else if (c === "$") this.readDollar(scratch, true);
      else if (c === "`") this.readBacktick(scratch, true);
    }
    if (this.src[this.pos] === ")") {
      this.pos++;
      const expression = this.src.slice(mark.pos + 2, this.pos - 2);
      if (SUBSCRIPT_CODE.test(expression)) throw new Unparseable("arithmetic with an array subscript holding a substitution runs it, which cannot be checked");
      return true;
    }
    this.notArithmetic.add(mark.pos);
    this.pos = mark.pos;
    this.records.length = mark.records; // forget what the failed attempt recorded
    return false;
  }

  /** After `${`, up to the matching `}`; nested quotes and substitutions are read too. */
  private readParameter(quoted: boolean): void {
    const scratch = blank();
    const start = this.pos;
    for (;;) {
      const c = this.src[this.pos++];
      if (c === undefined) throw new Unparseable("unbalanced '${'");
      if (c === "}") return checkParameter(this.src.slice(start, this.pos - 1));
      // Bash counts no bare `{` here (`${x:-{}` ends at the first `}`), and inside double quotes
      // a `'` is a character, so `"${x:-'$(cmd)'}"` runs cmd.
      if (c === "\\") this.pos++;
      else if (c === "'" && !quoted) this.readSingle(scratch);
      else if (c === '"') this.readDouble(scratch, '"');
      else if (c === "$") this.readDollar(scratch, true);
      else if (c === "`") this.readBacktick(scratch, true);
    }
  }

  /** The old-style substitution: its body, unescaped, is parsed as a script of its own. */
  private readBacktick(word: Builder, quoted: boolean): void {
    const from = this.pos - 1;
    let body = "";
    for (;;) {
      const c = this.src[this.pos++];
      const next = this.src[this.pos] ?? "";
      if (c === undefined) throw new Unparseable("unbalanced backquote");
      if (c === "`") break;
      const escaped = c === "\\" && next !== "" && (quoted ? '`\\$"' : "`\\$").includes(next);
      body += escaped ? next : c;
      if (escaped) this.pos++;
    }
    new Parser(body, this.records, this.nesting + 1).parseScript();
    this.expansion(word, from, quoted);
  }

  private readAnsiC(): string {
    let body = "";
    for (;;) {
      const c = this.src[this.pos++];
      if (c === undefined) throw new Unparseable("unbalanced $'…' quote");
      if (c === "'") return decodeAnsiC(body);
      body += c;
      if (c === "\\" && this.pos < this.src.length) body += this.src[this.pos++];
    }
  }

  /** After `NAME=`: a `( … )` array literal, whose words may hold substitutions. */
  private readArray(word: Builder): void {
    this.pos++;
    for (;;) {
      this.skipBlanks();
      const c = this.src[this.pos];
      if (c === undefined) throw new Unparseable("unbalanced: missing ')'");
      if (c === ")" || c === "\n") this.pos++;
      if (c === ")") return;
      if (c === "\n") continue;
      const item = this.readWord();
      if (item.raw === "") throw new Unparseable(`unexpected '${c}'`);
      word.value += `${item.value} `;
      word.template += `${item.template} `;
      word.dynamic ||= item.dynamic;
      word.loose ||= item.loose;
    }
  }
}

/** `${x@P}` expands a prompt (running its substitutions); `${!x}` reads the variable x names, subscript and all. */
function checkParameter(text: string): void {
  if (/@P$/.test(text)) throw new Unparseable("${…@P} expands a prompt, which may run commands that cannot be checked");
  if (text.startsWith("!") && !/^![A-Za-z_]\w*(?:\[[@*]\]|[@*])$/.test(text)) throw new Unparseable("${!…} reads a variable named at run time, which may run commands that cannot be checked");
}

/** The file a redirection opens, if it opens one: `>&2`, `<&0` and `>&-` copy or close a descriptor. */
function fileRedirect(kind: string, target: Word): Redirect | undefined {
  if (kind.startsWith("<<")) return undefined; // a heredoc or here-string is text
  if ((kind === ">&" || kind === "<&") && (target.dynamic || /^(?:\d+-?|-)$/.test(target.value))) return undefined;
  if (kind === "<&") return undefined; // bash refuses a file name here
  const reads = kind === "<" || kind === "<>";
  return { reads, writes: kind !== "<", target: target.value, dynamic: target.dynamic, glob: target.glob };
}

function literal(value: string): Word {
  return { value, raw: value, dynamic: false, glob: false, template: value, loose: false };
}

function blank(): Builder {
  return { value: "", dynamic: false, glob: false, template: "", loose: false };
}

function append(word: Builder, text: string): void {
  word.value += text;
  word.template += text;
}

/** Emits the command, its basename form, its forms without global options, and whatever it runs in turn. `tail`: more arguments come at run time (xargs). */
function emitCommand(words: Word[], stdin: Stdin | null, out: Found, depth: number, tail = false): void {
  if (depth > MAX_DEPTH) throw new Unparseable("commands are nested too deeply");
  const head = words[0]!;
  if (head.dynamic) throw new Unparseable(`the command name ${head.raw} comes from a variable or substitution`);
  if (head.glob && head.value !== "[" && head.value !== "[[") throw new Unparseable(`the command name ${head.raw} uses a glob or brace pattern`);
  const name = head.value.slice(head.value.lastIndexOf("/") + 1);
  out.commands.push(simple(head.value, words.slice(1), tail));
  if (name !== head.value && name !== "") out.commands.push(simple(name, words.slice(1), tail));
  for (const start of subcommandStarts(name, words.map((word) => word.value))) {
    if (start < words.length || tail) out.commands.push(simple(name, words.slice(start), tail));
  }
  for (const start of [1, ...subcommandStarts(name, words.map((word) => word.value))]) {
    const from = words.slice(start);
    const respelled = from[0]?.dynamic || from[0]?.glob ? undefined : respelledSubcommand(name, from.map((word) => word.value));
    if (respelled !== undefined) out.commands.push(simple(name, [...respelled.words.map(literal), ...from.slice(respelled.replaces)], tail));
  }
  refuseHidden(name, words, out, depth);
  if (name === "find") {
    for (const inner of findExecs(words)) emitCommand(inner, null, out, depth);
    return;
  }
  const inner = wrappedCommand(name, words, (word) => checkAssignment(word, out, depth), tail);
  if (inner !== null) {
    if (inner.words.length > 0) emitCommand(inner.words, stdin, out, depth, tail || inner.tail);
    return;
  }
  const scripts = shellScripts(name, words, stdin, tail);
  for (const script of scripts) collect(script, out, depth + 1);
  const runs = toolCommand(name, words);
  if (runs !== null && runs.length > 0) emitCommand(runs, null, out, depth + 1);
  if (scripts.length === 0 && !SHELLS.has(name) && !NEVER_RUNS.has(name)) emitHiddenRunner(words, out, depth);
}

/**
 * An unknown command may be a wrapper: if a later word names a known wrapper or a shell given a
 * script (`flock /tmp/x sudo …`, `taskset 1 bash -c '…'`), that part is read as the command it
 * would be. Only the first such word: the rest is read from there, so this stays linear.
 */
/** Wrappers that only the shell runs (a program cannot run a builtin), or common words (`docker exec`). */
const BUILTIN_WRAPPERS = new Set(["exec", "command", "builtin", "time"]);

function emitHiddenRunner(words: Word[], out: Found, depth: number): void {
  const at = words.findIndex((word, index) => {
    if (index === 0 || word.dynamic || word.glob) return false;
    const base = word.value.slice(word.value.lastIndexOf("/") + 1);
    if (WRAPPERS.has(base)) return !BUILTIN_WRAPPERS.has(base);
    return SHELLS.has(base) && words.slice(index + 1).some((next) => /^-[^-]*c/.test(next.value));
  });
  if (at > 0) emitCommand(words.slice(at), null, out, depth + 1);
}

function simple(name: string, args: readonly Word[], tail: boolean): SimpleCommand {
  const words = [name, ...args.map((word) => word.value)];
  const text = words.join(" ");
  const globs = args.flatMap((word, index) => (word.glob && word.loose && !word.dynamic ? [index + 1] : []));
  // A brace expansion comes first and may put a `~` at a word's start (`{~/a,b}`): counted too.
  const tildes = args.flatMap((word, index) => (/^(?:[A-Za-z_]\w*=)?~/.test(word.raw) || (word.glob && word.raw.includes("~")) ? [index + 1] : []));
  const extra = { ...(globs.length > 0 ? { globs } : {}), ...(tildes.length > 0 ? { tildes } : {}) };
  if (!tail && !args.some((word) => word.dynamic || word.loose)) return { text, words, dynamic: false, ...extra };
  const pieces = [name, ...args.map((word) => (word.loose ? ANY_TEXT : ` ${word.template}`))]; // a loose word may vanish, with its space
  if (tail) pieces.push(ANY_TEXT);
  return { text, words, dynamic: true, template: pieces.join(""), pieces, ...extra };
}

/**
 * The commands a simple command may run with its own words: every suffix that starts at a word
 * that could be a command name (static, no option, no assignment), also by basename. An unknown
 * wrapper (`flock /tmp/x git push`, `taskset 1 rm -rf /`) cannot hide the command it runs this
 * way. Commands known never to run their arguments (`echo`, `grep`, …) have none.
 */
export function commandSuffixes(command: SimpleCommand): SimpleCommand[] {
  const { words, pieces } = command;
  const name = words[0]!.slice(words[0]!.lastIndexOf("/") + 1);
  if (NEVER_RUNS.has(name)) return [];
  const found: SimpleCommand[] = [];
  for (let at = 1; at < words.length; at++) {
    const head = words[at]!;
    const rest = words.slice(at + 1);
    if (head.startsWith("-") || head.includes("=")) continue;
    if (pieces !== undefined && pieces[at] !== ` ${head}`) {
      // A computed name (`flock x $(echo git) push`) followed by a static word: one word, then the words as written.
      if (rest.length > 0 && pieces[at + 1] === ` ${rest[0]}`) found.push({ text: [head, ...rest].join(" "), words: [head, ...rest], dynamic: true, template: ONE_WORD + pieces.slice(at + 1).join(""), pieces: [ONE_WORD, ...pieces.slice(at + 1)] });
      continue;
    }
    if (head === "" || /\s/.test(head)) continue;
    for (const form of new Set([head, head.slice(head.lastIndexOf("/") + 1)])) {
      if (form === "") continue;
      const text = [form, ...rest].join(" ");
      found.push(pieces === undefined ? { text, words: [form, ...rest], dynamic: false } : { text, words: [form, ...rest], dynamic: true, template: form + pieces.slice(at + 1).join(""), pieces: [form, ...pieces.slice(at + 1)] });
    }
  }
  return found;
}

/** Refuses commands that set up code to run later, out of sight: aliases, callbacks, traps, code in variables or git settings. */
function refuseHidden(name: string, words: Word[], out: Found, depth: number): void {
  const values = words.map((word) => word.value);
  if (name === "alias") throw new Unparseable("alias defines commands that cannot be checked");
  if (name === "shopt" && values.includes("expand_aliases")) throw new Unparseable("shopt expand_aliases turns on aliases, which cannot be checked");
  if ((name === "mapfile" || name === "readarray") && values.slice(1).some((value) => /^-[^-]*C/.test(value))) throw new Unparseable(`${name} -C runs a callback that cannot be checked`);
  if (name === "trap") {
    const at = values[1] === "--" ? 2 : 1;
    const action = values[at];
    const listing = at === 1 && action?.startsWith("-") === true; // -p, -l, or `-` (reset)
    if (values.length - at >= 2 && action !== "" && !listing) throw new Unparseable("trap sets code to run later, which cannot be checked");
  }
  const evaluated = evaluatesCode(name, values);
  if (evaluated !== undefined) throw new Unparseable(`${evaluated}, which cannot be checked`);
  if (DECLARATIONS.has(name)) for (const word of words.slice(1)) if (ASSIGNMENT.test(word.value)) checkAssignment(word, out, depth);
  if (name === "git") checkGitSettings(words, out, depth);
}

/** Variables that hold code: refused, or (pagers, editors) their command read as a script. */
function checkAssignment(word: Word, out: Found, depth: number): void {
  const name = /^[A-Za-z_]\w*/.exec(word.value)?.[0] ?? "";
  const value = word.value.slice(word.value.indexOf("=") + 1);
  if (CODE_VARIABLES.test(name)) throw new Unparseable(`setting ${name} runs code that cannot be checked`);
  const evaluated = assignmentEvaluates(name, word.value.slice(0, word.value.indexOf("=")), value);
  if (evaluated !== undefined) throw new Unparseable(`${evaluated}, which cannot be checked`);
  if (name === "PS4" && /\$\(|`/.test(value)) throw new Unparseable("PS4 with a command substitution runs code that cannot be checked");
  if (!SCRIPT_VARIABLES.has(name)) return;
  if (word.dynamic) throw new Unparseable(`${name} is a command built from a variable or substitution`);
  collect(value, out, depth + 1);
}

/** `git -c KEY=VALUE` and `--config-env` before the subcommand: an alias or a command-running setting cannot be checked. */
function checkGitSettings(words: Word[], out: Found, depth: number): void {
  const valued = GLOBAL_OPTIONS.get("git")!.valued;
  for (let at = 1; at < words.length; at++) {
    const word = words[at]!;
    if (!word.value.startsWith("-") || word.value === "--") return;
    if (word.value === "-c" || word.value === "--config-env") {
      const setting = words[++at];
      if (setting) checkGitSetting(setting.value, setting.dynamic, word.value === "--config-env", out, depth);
    } else if (word.value.startsWith("--config-env=")) checkGitSetting(word.value.slice(13), word.dynamic, true, out, depth);
    else if (valued.includes(word.value)) at++;
  }
}

function checkGitSetting(setting: string, dynamic: boolean, fromEnv: boolean, out: Found, depth: number): void {
  if (dynamic) throw new Unparseable("git -c with a computed setting can define a command that cannot be checked");
  const at = setting.indexOf("=");
  const key = at < 0 ? setting : setting.slice(0, at);
  if (/^alias\./i.test(key)) throw new Unparseable(`git -c ${key} defines a git alias on the command line, which cannot be checked`);
  if (GIT_SAFE_CONFIG.test(key)) return;
  if (!fromEnv && at >= 0 && GIT_SCRIPT_CONFIG.test(key)) return collect(setting.slice(at + 1), out, depth + 1);
  throw new Unparseable(`git -c ${key} may run a command that cannot be checked`);
}
