/**
 * The files a command line names, as permission requests, so the policy's secret rules answer
 * `cat ~/.ssh/id_rsa`, `cat < ~/.ssh/id_rsa` or `echo x > .env` with a reason before anything runs
 * (the sandbox hides those files anyway). Symlinks and `..` are resolved like the file tools do,
 * and also as the kernel does (`link/..` is where the link points, up one). Where a path cannot be
 * told (`~bob/…`, a relative path after `cd "$dir"`, `~` after the line sets HOME, a glob after
 * `shopt -s dotglob`), the request is marked unsure and asks.
 */

import { globSync, lstatSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import type { PermissionRequest } from "../policy/policy.ts";
import { expandBraces } from "../policy/shell-braces.ts";
import { splitCommands, type Redirect, type SimpleCommand } from "../policy/shell.ts";
import { abbreviates, descriptorOf } from "../policy/shell-tables.ts";
import { lineSettings, type LineSettings } from "./command-settings.ts";
import { realPath, within } from "./paths.ts";

/**
 * Where the command's relative paths may point: the workdir and every folder a literal `cd` in the
 * line may go to, in any order (a function or a loop can run a command after a `cd` written later).
 */
interface Folders {
  workdir: string;
  known: string[];
  /** Why some `cd` goes where the line cannot tell, if one does. */
  unknown: string | undefined;
  /**
   * The unknown folder may be one the line aims at (a HOME it set, a link followed before `..`):
   * every argument may name a file there, not only those that look like paths.
   */
  aimed: boolean;
  home: string;
  settings: LineSettings;
}

/** The sandbox gives every command its own empty /tmp and /dev: a redirection there writes nothing that stays. */
const SCRATCH = ["/tmp", "/dev"];
/** More folders than this from `cd`s: the line is read as going somewhere unknown. */
const MAX_FOLDERS = 32;

export function pathArguments(command: string, workdir: string, userHome: string | undefined): PermissionRequest[] {
  const split = splitCommands(command);
  if (!split.ok) return [];
  const folders = workingFolders(split.commands, workdir, userHome ?? "", command.includes("CDPATH"), lineSettings(split));
  const requests = new Map<string, PermissionRequest>();
  const add = (request: PermissionRequest) => {
    const key = `${request.kind} ${"path" in request ? request.path : ""}`;
    if (!requests.has(key)) requests.set(key, request);
  };
  for (const { words, globs, tildes } of split.commands) {
    words.forEach((word, index) => {
      if (index > 0) for (const request of argumentPaths(word, globs?.includes(index) === true, tildes?.includes(index) === true, folders)) add(request);
    });
  }
  for (const redirect of split.redirects) for (const request of redirectPaths(redirect, folders)) add(request);
  return [...requests.values()];
}

/** An argument that looks like a path (`/`, `./`, `.env`) or is a symlink; after a `cd` elsewhere, any argument. */
function argumentPaths(word: string, glob: boolean, tilde: boolean, folders: Folders): PermissionRequest[] {
  const value = word.includes("=") && !word.startsWith("/") ? word.slice(word.indexOf("=") + 1) : word;
  if (value.includes("://") || value.startsWith("-")) return [];
  // A quoted '.*' is text; an unquoted `{a,b}` is two words.
  const words = glob ? expandBraces(value) : [value];
  if (words === undefined) return [{ kind: "read", path: value, unsure: `${value} names too many files to check one by one` }];
  return words.flatMap((one) => {
    const expanded = expandStart(one, folders, tilde);
    if ("unsure" in expanded) return [{ kind: "read", path: one, unsure: expanded.unsure }];
    return expanded.paths.flatMap((path) => {
      if (path.includes("$")) return []; // computed at run time: the command rules judge it
      const isGlob = glob && /[*?[]/.test(path);
      if (isGlob && folders.settings.globs !== undefined) return [{ kind: "read", path, unsure: `${path} may match files Nightshift cannot list (${folders.settings.globs})` }];
      if (isAbsolute(path)) return reads(isGlob ? aimedMatches(path, "/") : [path], "/");
      const requests: PermissionRequest[] = [];
      for (const folder of folders.known) {
        if (folder === folders.workdir && !isGlob && !looksLikePath(path) && !isSymlink(join(folder, path))) continue;
        requests.push(...reads(isGlob ? aimedMatches(path, folder) : [path], folder));
      }
      if (folders.unknown !== undefined && (looksLikePath(path) || path.startsWith(".") || folders.aimed)) requests.push({ kind: "read", path, unsure: `${path} is relative to a folder this line cannot tell (${folders.unknown})` });
      return requests;
    });
  });
}

/** `< file` reads, `> file` and `>> file` write, `<> file` both; a glob opens the one file it matches. */
function redirectPaths(redirect: Redirect, folders: Folders): PermissionRequest[] {
  const expanded = expandStart(redirect.target, folders);
  if ("unsure" in expanded) return [{ kind: redirect.writes ? "write" : "read", path: redirect.target, unsure: expanded.unsure }];
  const targets = expanded.paths.filter((path) => !path.includes("$") && descriptorOf(path) === undefined);
  const requests: PermissionRequest[] = [];
  for (const target of targets) {
    if (redirect.glob && /[*?[]/.test(target) && folders.settings.globs !== undefined) {
      requests.push({ kind: redirect.writes ? "write" : "read", path: target, unsure: `${target} may match files Nightshift cannot list (${folders.settings.globs})` });
      continue;
    }
    const bases = isAbsolute(target) ? ["/"] : folders.known;
    for (const base of bases) {
      const paths = redirect.glob && /[*?[]/.test(target) ? [target, ...globMatches(target, base)] : [target];
      // A write lands in the folder a `cd` went to (or the workdir without one); in the others it is
      // unlikely, so there it is checked only against the secret rules, which deny reads too.
      const likely = base === "/" || folders.known.length === 1 || base !== folders.workdir;
      for (const path of paths.flatMap((one) => realPaths(base, one))) {
        const scratch = SCRATCH.some((folder) => within(path, folder) && !within(path, folders.workdir));
        if (redirect.reads || (redirect.writes && !likely)) requests.push({ kind: "read", path });
        if (redirect.writes && likely && !scratch) requests.push({ kind: "write", path });
      }
    }
    if (!isAbsolute(target) && folders.unknown !== undefined) requests.push({ kind: redirect.writes ? "write" : "read", path: target, unsure: `${target} is relative to a folder this line cannot tell (${folders.unknown})` });
  }
  return requests;
}

/**
 * A word's start as bash expands it: `~` and `$HOME` the user's home, `~+` and `$PWD` the folder
 * the command runs in. `~bob`, `~-` and `$OLDPWD` (the previous folder), `~2` (the folder stack),
 * `${HOME:-/}` (computed) and a home the line changes are unsure.
 * `expandsTilde` false: the `~` was quoted (or follows an option's `=`), so it is text.
 */
function expandStart(word: string, folders: Folders, expandsTilde = true): { paths: string[] } | { unsure: string } {
  const home = folders.settings.home;
  if (home !== undefined && ((expandsTilde && /^~(?=\/|$)/.test(word)) || /\$\{?HOME(?!\w)/.test(word))) return { unsure: `${word} is in a home folder this line may change (${home})` };
  const operator = /\$\{(HOME|PWD)[^\w}]/.exec(word)?.[1];
  if (operator !== undefined) return { unsure: `${word} is computed from $${operator} at run time` };
  if (/\$\{?OLDPWD(?!\w)/.test(word)) return { unsure: `${word} names a folder from before this line` };
  return expandKnown(word, folders, expandsTilde);
}

function expandKnown(word: string, folders: Folders, expandsTilde: boolean): { paths: string[] } | { unsure: string } {
  const home = (expandsTilde ? word.replace(/^~(?=\/|$)/, folders.home) : word).replace(/\$\{?HOME\}?(?=\/|$)/g, folders.home);
  const tilde = expandsTilde ? /^~([^/]*)/.exec(home) : null;
  if (/^\$\{?PWD\}?(?=\/|$)/.test(home) || tilde?.[1] === "+") {
    const rest = home.replace(/^(?:\$\{?PWD\}?|~\+)/, "");
    if (folders.unknown !== undefined) return { unsure: `${word} is in a folder this line cannot tell (${folders.unknown})` };
    return { paths: folders.known.map((folder) => folder + rest) };
  }
  if (tilde !== null) return { unsure: tilde[1] === "-" || /^[+-]?\d+$/.test(tilde[1]!) ? `${word} names a folder from before this line` : `${word} is in another user's home` };
  return { paths: [home] };
}

/** The folders relative paths may be read from: the workdir, and where each literal `cd`, `pushd` or `env -C` goes. */
function workingFolders(commands: readonly SimpleCommand[], workdir: string, home: string, cdpath: boolean, settings: LineSettings): Folders {
  const folders: Folders = { workdir, known: [workdir], unknown: undefined, aimed: false, home, settings };
  const targets: string[] = [];
  let physical = settings.physical;
  for (const command of commands) {
    const target = folderTarget(command);
    if (target === undefined) continue;
    if (target.physical) physical ??= `\`${command.text}\` follows links before ..`;
    if (target.dynamic) folders.unknown = `\`${command.text}\` goes to a folder computed at run time`;
    else if (target.path === "-") folders.unknown = `\`${command.text}\` goes back to a folder from before this line`;
    else targets.push(target.path === "" ? "~" : target.path);
  }
  // A link the line itself makes is not on the disk yet to be followed: the folder cannot be told.
  if (physical !== undefined && targets.some((target) => target.split("/").includes(".."))) {
    folders.unknown = physical;
    folders.aimed = true;
  }
  const relative: string[] = [];
  for (const target of targets) {
    const expanded = expandStart(target, folders);
    if ("unsure" in expanded) {
      folders.unknown = expanded.unsure;
      folders.aimed ||= settings.home !== undefined; // a bare `cd` to the HOME the line set
    } else if (/[*?[]/.test(target)) folders.unknown = `cd ${target} goes to a folder a glob picks`;
    else for (const path of expanded.paths) isAbsolute(path) ? folders.known.push(...new Set([resolve(path), physicalPath("/", path)])) : relative.push(path);
  }
  if (relative.length > 0 && cdpath) folders.unknown = "CDPATH decides where a relative cd goes";
  // `cd ~; cd .ssh` goes to ~/.ssh: each relative target from every folder found, as many rounds
  // as there are targets. A loop may repeat a `cd ..`, so one that climbs counts every ancestor.
  let last = folders.known;
  for (let round = 0; round < relative.length && last.length > 0; round++) {
    const next: string[] = [];
    for (const folder of last) {
      for (const path of relative) {
        let at = resolve(folder, path);
        const found = [at];
        if (path.split("/").includes("..")) {
          // Bash's cd goes by the physical path when the one by text does not exist (`cd link/../x`).
          found.push(physicalPath(folder, path));
          while (at !== "/") found.push((at = resolve(at, "..")));
        }
        for (const one of found) if (!folders.known.includes(one) && !next.includes(one)) next.push(one);
      }
    }
    if (folders.known.length + next.length > MAX_FOLDERS) return { ...folders, unknown: "its cd commands go to too many folders" };
    folders.known.push(...next);
    last = next;
  }
  return folders;
}

/**
 * Where `cd DIR`, `pushd DIR` or `env -C DIR …` goes: "" for home, undefined when the command
 * changes no folder. `physical`: it follows links before `..` (`cd -P`, and env's chdir(2)).
 */
function folderTarget(command: SimpleCommand): { path: string; dynamic: boolean; physical: boolean } | undefined {
  const { words, pieces } = command;
  const computed = (at: number) => pieces !== undefined && pieces[at] !== ` ${words[at]}`;
  if (words[0] === "cd" || words[0] === "pushd") {
    let at = 1;
    let physical = false;
    for (; at < words.length && /^-[LPe@n]+$/.test(words[at]!); at++) physical ||= words[at]!.includes("P");
    if (words[at] === "--") at++;
    const word = words[at];
    if (word === undefined) return words[0] === "cd" ? { path: "", dynamic: false, physical } : undefined; // pushd alone swaps folders already counted
    if (words[0] === "pushd" && /^[+-]\d+$/.test(word)) return undefined; // rotates the stack of folders already counted
    return { path: word, dynamic: computed(at), physical };
  }
  if (words[0] === "env") {
    for (let at = 1; at < words.length && words[at]!.startsWith("-"); at++) {
      const word = words[at]!;
      const long = word.startsWith("--") && abbreviates(word, "chdir", 3);
      const short = /^-[i0v]*C(.*)$/.exec(word);
      if (long && word.includes("=")) return { path: word.slice(word.indexOf("=") + 1), dynamic: computed(at), physical: true };
      if (short?.[1]) return { path: short[1], dynamic: computed(at), physical: true };
      if ((long || short) && words[at + 1] !== undefined) return { path: words[at + 1]!, dynamic: computed(at + 1), physical: true };
      if (/^-[^-]*[uS]$|^--(?:u|s)/.test(word)) at++; // -u NAME, -S STRING
    }
  }
  return undefined;
}

/** A word read as a path in the workdir without checking the disk: it has a slash, or is a `.env` file. */
function looksLikePath(word: string): boolean {
  return /^(\.{0,2}\/)|\/|^\.env/.test(word);
}

function reads(paths: readonly string[], folder: string): PermissionRequest[] {
  return paths.flatMap((path) => realPaths(folder, path)).map((path) => ({ kind: "read", path }));
}

/** The real path as the file tools resolve it (`..` by text), and as the kernel opens it when they differ. */
function realPaths(folder: string, path: string): string[] {
  const byText = realPath(folder, path);
  return path.split("/").includes("..") ? [...new Set([byText, realPath("/", physicalPath(folder, path))])] : [byText];
}

/** Where the kernel finds `path` from `folder`: each `..` leaves the real folder reached so far, links followed. */
function physicalPath(folder: string, path: string): string {
  let at = isAbsolute(path) ? "/" : folder;
  for (const part of path.split("/")) {
    if (part === "..") at = dirname(realPath(at, "."));
    else if (part !== "" && part !== ".") at = join(at, part);
  }
  return at;
}

/**
 * What a glob names: the folder before its first wildcard (`~/.ssh/*` names ~/.ssh), and the files
 * it matches now when its last part aims at names (`.e*`, `id_*`: two letters or more besides the
 * wildcards). A broad listing (`du -ah .[^.]* *`) is not read as naming the `.env` it may match:
 * the sandbox hides those files from commands anyway.
 */
function aimedMatches(pattern: string, folder: string): string[] {
  const wildcard = pattern.search(/[*?[]/);
  const slash = pattern.lastIndexOf("/", wildcard);
  const base = slash > 0 ? [pattern.slice(0, slash)] : [];
  const last = pattern.slice(pattern.lastIndexOf("/") + 1);
  const literal = last.replace(/\[[^\]]*\]|[*?]/g, "");
  return literal.length >= 2 ? [...base, ...globMatches(pattern, folder)] : base;
}

function globMatches(pattern: string, folder: string): string[] {
  try {
    return globSync(pattern, { cwd: folder }).slice(0, 200);
  } catch {
    return [];
  }
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
