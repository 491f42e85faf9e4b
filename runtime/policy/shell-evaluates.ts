/**
 * Builtins that evaluate a string the splitter only sees as text: bash runs the `$(…)` in an array
 * subscript when it reads a name or an arithmetic expression (`test -v 'a[$(cmd)]'`, `printf -v`,
 * `x='a[$(cmd)]'; (( x ))`), and some names make bash run code later or under another name.
 * Each check gives the reason to ask, or undefined.
 */

import { CODE_VARIABLES, SCRIPT_VARIABLES } from "./shell-tables.ts";

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
