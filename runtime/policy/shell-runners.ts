/**
 * Commands that run other commands, as the shell splitter reads them: a wrapper (`sudo`, `xargs`,
 * `flock`, …) gives the command it runs; a shell, `eval`, `su -c`, `flock -c`, `parallel`, `git
 * rebase -x`, … give scripts to split. What cannot be read statically throws Unparseable.
 */

import { ONE_WORD } from "./patterns.ts";
import { abbreviates, descriptorOf, FIND_EXEC, GLOBAL_OPTIONS, SCRIPT_OPTIONS, SHELLS, skipOptions, WRAPPERS, xargsReplace } from "./shell-tables.ts";
import { Unparseable, type Stdin, type Word } from "./shell-word.ts";

/**
 * The command a wrapper runs (empty when none), or null when `name` is no wrapper. `tail` on the
 * answer: xargs adds arguments; `tail` given: an outer xargs adds this command's last words, so a
 * wrapper left without a command gets it from the input. `assignment` sees each NAME=value set.
 */
export function wrappedCommand(name: string, words: Word[], assignment: (word: Word) => void, tail: boolean): { words: Word[]; tail: boolean } | null {
  const spec = WRAPPERS.get(name);
  if (spec === undefined) return null;
  const values = words.map((word) => word.value);
  if (name === "runuser" && !values.some((value) => /^-u|^--user/.test(value))) return null; // runuser -c: a script
  if (scriptOption(name, words) !== undefined) return null; // flock -c, script -c: a script
  let next = skipOptions(values, spec.short, spec.long ?? []);
  const options = values.slice(1, next);
  if (name === "command" && options.some((option) => /^-\w*[vV]/.test(option))) return null; // a lookup, not a run
  if (name === "env" && options.some((option) => /^-\w*S/.test(option) || abbreviates(option, "split-string", 1))) throw new Unparseable("env -S (split string) is not supported");
  const skippable = name === "env" ? /^[^=-][^=]*=|^-$/ : /^[^=-][^=]*=/; // `env -` is `env -i`
  for (; spec.assignments && next < values.length && skippable.test(values[next]!); next++) {
    if (values[next] !== "-") assignment(words[next]!);
  }
  next += spec.operands ?? 0;
  if (spec.optionsAfterOperands && next < values.length) next += skipOptions(["", ...values.slice(next)], spec.short, spec.long ?? []) - 1; // setarch ARCH -R cmd
  const inner = words.slice(next);
  if (inner.length === 0 && tail) throw new Unparseable(`xargs gives ${name} the command it runs from its input`);
  if (name !== "xargs") return { words: inner, tail: false };
  const replace = xargsReplace(options);
  if (replace === undefined) return { words: inner, tail: true };
  if (inner[0]?.value.includes(replace)) throw new Unparseable("xargs builds the command name from its input");
  return { words: inner.map((word) => (word.value.includes(replace) ? { ...word, dynamic: true, loose: true } : word)), tail: false };
}

/** The commands of `find … -exec CMD … ;` (also -execdir, -ok, -okdir; ended by `;` or `{} +`); `{}` becomes file names. An unended one reads to the end. */
export function findExecs(words: Word[]): Word[][] {
  const found: Word[][] = [];
  for (let i = 0; i < words.length; i++) {
    if (!FIND_EXEC.has(words[i]!.value)) continue;
    let end = i + 1;
    while (end < words.length && words[end]!.value !== ";" && !(words[end]!.value === "+" && words[end - 1]!.value === "{}")) end++;
    // `… {} ;` gets one file name per run (one word); `… {} +` as many as fit.
    const many = words[end]?.value !== ";";
    const fill = (word: Word): Word => (many ? { ...word, loose: true } : { ...word, dynamic: true, template: word.template.replaceAll("{}", ONE_WORD) });
    if (end > i + 1) found.push(words.slice(i + 1, end).map((word) => (word.value.includes("{}") ? fill(word) : word)));
    i = end;
  }
  return found;
}

/** The texts a command runs as shell code (bash -c, eval, watch, su -c, flock -c, parallel, source /dev/stdin, a shell's stdin); none when it runs none. `tail`: xargs adds the last words. */
export function shellScripts(name: string, words: Word[], stdin: Stdin | null, tail: boolean): string[] {
  const values = words.map((word) => word.value);
  if (name === "eval") return staticScript(words.slice(values[1] === "--" ? 2 : 1), "eval");
  if (name === "watch") return staticScript(words.slice(skipOptions(values, "nq", ["interval", "equexit"])), "watch");
  if (name === "parallel") return parallelScripts(words);
  if (name === "git") return gitScripts(words);
  const runner = packageRunner(name, words);
  if (runner !== undefined) {
    const call = scriptOption("npx", words.slice(0, runner)); // options after the command are the command's
    return call ? staticScript([call], `${name} --call`) : [];
  }
  if (name === "sg") return sgScript(words);
  if (SCRIPT_OPTIONS.has(name)) {
    const script = scriptOption(name, words);
    if (script === null && tail) throw new Unparseable(`xargs gives ${name} its script from its input`);
    return script ? staticScript([script], `${name} -c`) : [];
  }
  if (name === "source" || name === ".") {
    if (words[1]?.dynamic) throw new Unparseable(`${name} reads a script from a variable or substitution`);
    return words[1] && descriptorOf(words[1].value) !== undefined ? [stdinScript(words[1].value, stdin, name)] : [];
  }
  return SHELLS.has(name) ? shellInvocation(words, stdin, tail) : [];
}

/**
 * The word an option such as `su -c`, `su --comm=…`, `su -lc`, `flock FILE -c` gives as a script:
 * undefined when the command has no such option, null when it is the last word (no script yet).
 */
function scriptOption(name: string, words: Word[]): Word | null | undefined {
  const spec = SCRIPT_OPTIONS.get(name);
  if (spec === undefined) return undefined;
  if (name === "flock") {
    // flock's options stop at the lock file; only the word right after it can be -c.
    const file = skipOptions(words.map((word) => word.value), spec.valued, ["timeout", "wait", "conflict-exit-code"]);
    return ["-c", "--command"].includes(words[file + 1]?.value ?? "") ? (words[file + 2] ?? null) : undefined;
  }
  for (let at = 1; at < words.length; at++) {
    const value = words[at]!.value;
    if (value === "--") return undefined;
    if (value.startsWith("--")) {
      const long = spec.long.find((option) => abbreviates(value, option, 3));
      const equals = value.indexOf("=");
      if (long !== undefined) return equals > 0 ? { ...words[at]!, value: value.slice(equals + 1) } : (words[at + 1] ?? null);
      continue;
    }
    if (!value.startsWith("-") || value === "-") continue;
    for (let letter = 1; letter < value.length; letter++) {
      const rest = value.slice(letter + 1);
      if (value[letter] === spec.short) return rest ? { ...words[at]!, value: rest } : (words[at + 1] ?? null);
      if (spec.valued.includes(value[letter]!)) {
        if (!rest) at++; // the value is the next word
        break;
      }
    }
  }
  return undefined;
}

/** Where a tool's subcommand is, after its global options (`git -C dir rebase`): its index, or -1. */
function subcommandAt(name: string, values: readonly string[]): number {
  const valued = GLOBAL_OPTIONS.get(name)?.valued ?? [];
  for (let at = 1; at < values.length; at++) {
    const value = values[at]!;
    if (!value.startsWith("-")) return at;
    if (valued.includes(value)) at++;
  }
  return -1;
}

/** Scripts git runs through the shell: `git submodule foreach CMD`, `git rebase -x CMD` / `--exec`. */
function gitScripts(words: Word[]): string[] {
  const values = words.map((word) => word.value);
  const at = subcommandAt("git", values);
  if (values[at] === "submodule") {
    const each = values.indexOf("foreach", at);
    if (each < 0) return [];
    let start = each + 1;
    while (values[start]?.startsWith("-")) start++; // --recursive
    return staticScript(words.slice(start), "git submodule foreach");
  }
  if (values[at] !== "rebase") return [];
  const scripts: string[] = [];
  for (let i = at + 1; i < words.length; i++) {
    const value = values[i]!;
    if (value === "--") break;
    const long = /^--(\w[\w-]*)(?:=([\s\S]*))?$/.exec(value);
    if (long && abbreviates(`--${long[1]}`, "exec", 2)) scripts.push(...staticScript(long[2] !== undefined ? [{ ...words[i]!, value: long[2] }] : words.slice(i + 1, i + 2), "git rebase --exec"));
    const short = /^-[^-]*?x([\s\S]*)$/.exec(value);
    if (!long && short) scripts.push(...staticScript(short[1] ? [{ ...words[i]!, value: short[1] }] : words.slice(i + 1, i + 2), "git rebase -x"));
  }
  return scripts;
}

/**
 * The index where a package runner's command starts (`npx CMD`, `npm exec -- CMD`, `pnpm dlx`,
 * `yarn exec`, `bunx`), or undefined when `name` is none. The command may be a package's or any
 * program on the PATH, so it is checked as a command.
 */
function packageRunner(name: string, words: Word[]): number | undefined {
  const values = words.map((word) => word.value);
  let at = 1;
  if (name === "npm" || name === "pnpm" || name === "yarn" || name === "bun") {
    at = subcommandAt(name, values);
    const sub = values[at] ?? "";
    const runs = name === "npm" ? ["exec", "exe", "x"].includes(sub) : name === "bun" ? sub === "x" : ["exec", "dlx"].includes(sub);
    if (!runs) return undefined;
    at++;
  } else if (name !== "npx" && name !== "bunx" && name !== "pnpx") return undefined;
  return at - 1 + skipOptions(["", ...values.slice(at)], "pcw", ["package", "call", "workspace", "node-options"]);
}

/** The command a package runner runs, or null. */
export function toolCommand(name: string, words: Word[]): Word[] | null {
  if (name === "git") {
    const values = words.map((word) => word.value);
    const at = subcommandAt("git", values);
    return values[at] === "bisect" && values[at + 1] === "run" ? words.slice(at + 2) : null;
  }
  const at = packageRunner(name, words);
  return at === undefined ? null : words.slice(at);
}

/** `sg GROUP [-c] COMMAND`: the command is a script for /bin/sh. */
function sgScript(words: Word[]): string[] {
  let at = words[1]?.value === "-" ? 2 : 1;
  at++; // the group
  if (words[at]?.value === "-c") at++;
  return staticScript(words.slice(at, at + 1), "sg");
}

/** GNU parallel joins its command words into a script run by a shell, once per argument. */
function parallelScripts(words: Word[]): string[] {
  const values = words.map((word) => word.value);
  const start = skipOptions(values, "adEIjLnNPsS", ["arg-file", "delimiter", "jobs", "sshlogin", "colsep", "results", "joblog", "workdir", "wd", "env", "tmpdir", "timeout", "delay", "memfree", "load", "tag-string", "max-args", "max-replace-args", "basefile", "return", "transferfile"]);
  const separator = values.findIndex((value, index) => index >= start && /^:{3,4}\+?$/.test(value));
  const command = words.slice(start, separator < 0 ? undefined : separator);
  if (command.length === 0 && separator < 0) throw new Unparseable("parallel runs the commands it reads from its input");
  if (command.length === 0) return words.slice(separator + 1).filter((word) => !/^:{3,4}\+?$/.test(word.value)).flatMap((word) => staticScript([word], "parallel"));
  // Each argument fills `{}` (and `{.}`, `{/}`, …) or is appended: a value computed at run time.
  const [script = ""] = staticScript(command, "parallel");
  const argument = "$PARALLEL_ARGUMENT";
  const filled = script.replace(/\{(?:\d*[./#%]*|\/\/|\/\.)\}/g, argument);
  return [filled === script ? `${script} ${argument}` : filled];
}

function shellInvocation(words: Word[], stdin: Stdin | null, tail: boolean): string[] {
  const shell = words[0]!.value;
  const scripts: string[] = [];
  let i = 1;
  let command = false;
  let fromStdin = false;
  for (; i < words.length; i++) {
    const option = words[i]!.value;
    if (option === "--" || option === "-") {
      i++;
      break;
    }
    if (option === "--version" || option === "--help") return [];
    if (!/^[-+]./.test(option)) break;
    const long = /^--(command|init-command)(?:=([\s\S]*))?$/.exec(option); // fish
    command ||= long?.[1] === "command";
    if (long?.[2] !== undefined) scripts.push(...staticScript([{ ...words[i]!, value: long[2] }], shell));
    else if (long) {
      scripts.push(...staticScript(words.slice(i + 1, i + 2), shell));
      i++;
    }
    else if (/^--(?:rcfile|init-file)$/.test(option)) i++;
    else if (!option.startsWith("--")) {
      const letters = option.slice(1);
      command ||= option[0] === "-" && letters.includes("c");
      fromStdin ||= option[0] === "-" && letters.includes("s");
      const valued = [...letters].filter((letter) => letter === "o" || letter === "O" || (letter === "C" && shell.endsWith("fish"))).length;
      if (shell.endsWith("fish") && letters.includes("C")) scripts.push(...staticScript(words.slice(i + 1, i + 2), shell));
      i += valued; // `-oc pipefail 'script'`: each o takes the next word
    }
  }
  const operand = words[i];
  if (command && operand === undefined && tail) throw new Unparseable(`xargs gives ${shell} -c its script from its input`);
  if (command) return [...scripts, ...(operand ? staticScript([operand], `${shell} -c`) : [])];
  if (operand?.dynamic && !fromStdin) throw new Unparseable("a shell runs a script from a variable or substitution");
  if (operand && !fromStdin && descriptorOf(operand.value) !== undefined) return [...scripts, stdinScript(operand.value, stdin, shell)];
  if (operand && !fromStdin) return scripts; // a script file: its content is not ours to check
  if (stdin === null || stdin.dynamic || stdin.text === null) throw new Unparseable("a shell reads its script from standard input (a pipe or an unknown stream)");
  return [...scripts, stdin.text];
}

/** The script of `bash /dev/stdin` or `source /dev/fd/0`: the heredoc or here-string, when known. */
function stdinScript(path: string, stdin: Stdin | null, what: string): string {
  if (descriptorOf(path) !== 0) throw new Unparseable(`${what} reads its script from file descriptor ${path}`);
  if (stdin === null || stdin.dynamic || stdin.text === null) throw new Unparseable(`${what} reads its script from standard input (a pipe, a file or an unknown stream)`);
  return stdin.text;
}

/** The words joined as one script; refused when any is computed at run time (a variable, a substitution, what xargs fills in). */
function staticScript(words: Word[], what: string): string[] {
  if (words.some((word) => word.dynamic)) throw new Unparseable(`${what} runs code built from a variable or substitution`);
  return words.length === 0 ? [] : [words.map((word) => word.value).join(" ")];
}
