/**
 * What a command line changes in how bash finds files, so `command-paths.ts` does not resolve a
 * path the way it would have before: a new HOME (`~`, `$HOME`, a bare `cd`), glob options
 * (dot-files and case in `*`), and `cd` following links before `..`. Found by name, cheaply, and
 * erring toward unsure: each is the reason its paths ask instead of being allowed.
 */

import type { SplitResult } from "../policy/shell.ts";
import { DECLARATIONS, SHELLS } from "../policy/shell-tables.ts";

export interface LineSettings {
  /** Why `~` and `$HOME` may not be the user's home, if they may not. */
  home: string | undefined;
  /** Why a glob may match otherwise than Node's globSync does (dot-files, case, GLOBIGNORE). */
  globs: string | undefined;
  /** Why `cd` may follow links before `..` (`cd -P`, `set -P`, `set -o physical`). */
  physical: string | undefined;
}

/** Builtins that set the variables their arguments name (`read HOME`, `export HOME=…`). */
const SETTERS = new Set([...DECLARATIONS, "read", "mapfile", "readarray", "getopts", "let", "unset"]);

export function lineSettings(split: SplitResult): LineSettings {
  return { home: homeChange(split), globs: globChange(split), physical: physicalChange(split) };
}

function homeChange({ commands, assigns }: SplitResult): string | undefined {
  if (assigns?.includes("HOME")) return "the line sets HOME";
  for (const { words, text } of commands) {
    const name = words[0]!.slice(words[0]!.lastIndexOf("/") + 1);
    const args = words.slice(1);
    // Any word naming HOME but reading it (`env HOME=x`, `printf -v HOME`, `declare -n h=HOME`).
    const names = args.some((word) => /(?<![\w$])HOME(?!\w)/.test(word.replace(/\$\{HOME(?!\w)/g, "")));
    // A setter whose variable is computed (`read $v`, `export "$v=…"`) or a reference (`declare -n`) may set it too.
    const computed = SETTERS.has(name) && args.some((word) => /[$`]/.test(word.split("=")[0]!) || (DECLARATIONS.has(name) && /^-[A-Za-z]*n/.test(word)));
    const printed = name === "printf" && args.some((word, at) => /^-[A-Za-z]*v$/.test(word) && /[$`]/.test(args[at + 1] ?? ""));
    if (names || computed || printed) return `\`${text}\` may set HOME`;
  }
  return undefined;
}

/**
 * `shopt` (dotglob, nocaseglob, globstar, extglob, …), GLOBIGNORE (turns on dot-files), BASHOPTS
 * or `bash -O` for a nested shell. `set -o` has no option that widens a glob (noglob narrows), so
 * `set -euo pipefail` changes nothing here.
 */
function globChange({ commands, assigns }: SplitResult): string | undefined {
  if (assigns?.some((name) => name === "GLOBIGNORE" || name === "BASHOPTS")) return "the line sets GLOBIGNORE or BASHOPTS";
  for (const { words, text } of commands) {
    const name = words[0]!.slice(words[0]!.lastIndexOf("/") + 1);
    if (name === "shopt" || words.some((word) => /\b(?:GLOBIGNORE|BASHOPTS)\b/.test(word)) || (SHELLS.has(name) && words.some((word) => /^[-+][A-Za-z]*O/.test(word)))) {
      return `\`${text}\` changes how globs match`;
    }
  }
  return undefined;
}

/** `set -P`, `set -o physical`, SHELLOPTS or a nested shell's `-P`; `cd -P` and `env -C` are found where their folder is. */
function physicalChange({ commands, assigns }: SplitResult): string | undefined {
  if (assigns?.includes("SHELLOPTS")) return "the line sets SHELLOPTS";
  for (const { words, text } of commands) {
    const name = words[0]!.slice(words[0]!.lastIndexOf("/") + 1);
    const setter = name === "set" || SHELLS.has(name);
    if ((setter && words.some((word) => /^-[A-Za-z]*P/.test(word) || word === "physical")) || words.some((word) => /\bSHELLOPTS\b/.test(word))) {
      return `\`${text}\` makes cd follow links before ..`;
    }
  }
  return undefined;
}
