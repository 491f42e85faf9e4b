/**
 * Builtins that evaluate a string the splitter only sees as text: bash runs the `$(…)` in an array
 * subscript when it reads a name or an arithmetic expression (`test -v 'a[$(cmd)]'`, `printf -v`,
 * `x='a[$(cmd)]'; (( x ))`), and some names make bash run code later or under another name.
 * Each check gives the reason to ask, or undefined.
 */

import { CODE_VARIABLES, DECLARATIONS, SCRIPT_VARIABLES } from "./shell-tables.ts";

/** A subscript holding a substitution, in text bash may later read as a name or arithmetic. */
export const SUBSCRIPT_CODE = /\[[^\]]*(?:\$\(|`)/;
/** Builtins that read their arguments as variable names or arithmetic. */
const EVALUATING = new Set(["test", "[", "[[", "unset", "printf", "read", "declare", "typeset", "local", "export", "readonly", "let", "mapfile", "readarray", "wait", "getopts", "eval"]);
/** Variables that make bash run code: prompts (PS4 under `set -x`, `${x@P}`) and the command and alias tables. */
const EVALUATED_VARIABLES = /^(?:PS[0-4]|BASH_CMDS|BASH_ALIASES)$/;
/** Of those, the ones whose every setting asks (a prompt asks only when it holds a substitution: see checkAssignment). */
const RENAMING_VARIABLES = /^(?:BASH_CMDS|BASH_ALIASES)$/;

/** Why a command's arguments may run code bash evaluates out of sight, or undefined. */
export function evaluatesCode(name: string, values: readonly string[]): string | undefined {
  if (name === "hash" && values.slice(1).some((value) => /^-[^-]*p/.test(value))) return "hash -p gives a command another program's name";
  if (EVALUATING.has(name) && values.slice(1).some((value) => SUBSCRIPT_CODE.test(value))) return `${name} evaluates an array subscript that runs a command`;
  const target = assignedName(name, values);
  if (target !== undefined && codeVariable(target)) return `${name} sets ${target}, which runs code`;
  return undefined;
}

/** An assignment (`target` is what precedes `=`, subscript included) that runs code now or when evaluated later (`x='a[$(cmd)]'`, `BASH_CMDS[x]=…`), or undefined. */
export function assignmentEvaluates(name: string, target: string, value: string): string | undefined {
  if (RENAMING_VARIABLES.test(name)) return `setting ${name} gives a command another program or an alias`;
  if (SUBSCRIPT_CODE.test(target)) return `${target} has an array subscript that runs a command`;
  if (SUBSCRIPT_CODE.test(value)) return `${name} holds an array subscript that runs a command when it is evaluated`;
  return undefined;
}

/** A variable whose value runs as code or a command. */
function codeVariable(name: string): boolean {
  const bare = name.replace(/\[.*$/, "");
  return CODE_VARIABLES.test(bare) || EVALUATED_VARIABLES.test(bare) || SCRIPT_VARIABLES.has(bare);
}

/** The variable `printf -v NAME`, `read NAME…`, `mapfile NAME`, `getopts SPEC NAME` or `wait -p NAME` sets (the first one that runs code, for read). */
function assignedName(name: string, values: readonly string[]): string | undefined {
  const args = values.slice(1);
  if (name === "printf" || name === "wait") {
    const at = args.findIndex((value) => /^-[^-]*[vp]$/.test(value));
    return at >= 0 ? args[at + 1] : undefined;
  }
  if (name === "read" || name === "mapfile" || name === "readarray") return args.filter((value) => !value.startsWith("-")).find(codeVariable);
  if (name === "getopts") return args[1];
  return undefined;
}

/** Options of `read` and `mapfile` that take a value (`read -p PROMPT`), which is no variable name. */
const VALUED = { read: "dinNptu", mapfile: "dnOsuCc" };

/**
 * A variable set from input at run time (`read x`, `mapfile x`) and used where bash evaluates text
 * as arithmetic (`(( x ))`, `$((x))`, `let`, `[[ x -eq 1 ]]`, a subscript, `${s:x}`, an integer
 * variable): the input's `a[$(cmd)]` would run cmd. Found by name in the line's text, which is
 * cheap and errs toward asking. Returns the reason to ask, or undefined.
 */
export function readIntoArithmetic(commands: readonly { words: string[] }[], line: string): string | undefined {
  const names = new Set<string>();
  for (const { words } of commands) {
    const kind = words[0] === "read" ? "read" : words[0] === "mapfile" || words[0] === "readarray" ? "mapfile" : undefined;
    if (kind === undefined) continue;
    const read: string[] = [];
    for (let at = 1; at < words.length; at++) {
      const word = words[at]!;
      const option = /^-([A-Za-z]+)$/.exec(word)?.[1];
      if (option === undefined) read.push(word);
      else if (option.endsWith("a") && kind === "read") read.push(words[++at] ?? "");
      else if (VALUED[kind].includes(option.at(-1)!)) at++;
    }
    const targets = kind === "mapfile" ? [read.at(-1) ?? "MAPFILE"] : read.length === 0 ? ["REPLY"] : read;
    for (const name of targets) if (/^[A-Za-z_]\w*$/.test(name)) names.add(name);
  }
  if (names.size === 0) return undefined;
  if (commands.some(({ words }) => DECLARATIONS.has(words[0]!) && words.some((word) => /^-[A-Za-z]*i/.test(word)))) return "input is read into an integer variable (bash evaluates it as arithmetic, where a $(…) runs)";
  const contexts = [
    ...[...line.matchAll(/\(\(([\s\S]*?)\)\)|\$\[([^\]]*)\]|[A-Za-z_]\w*\[([^\]]*)\]|\$\{[A-Za-z_]\w*:([^}]*)\}/g)].map((match) => match.slice(1).filter((group) => group !== undefined).join(" ")),
    ...commands.filter(({ words }) => words[0] === "let" || (words[0] === "[[" && words.some((word) => /^-(?:eq|ne|lt|le|gt|ge)$/.test(word)))).map(({ words }) => words.join(" ")),
  ];
  const used = [...names].find((name) => contexts.some((text) => new RegExp(`(?<![\\w])${name}(?![\\w])`).test(text)));
  return used === undefined ? undefined : `${used} is read from input and then evaluated as arithmetic (where a $(…) in it runs)`;
}
