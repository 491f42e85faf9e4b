/**
 * Applying a staged copy to the person's folder, and never over what the person changed meanwhile.
 *
 * The plan is made from the copy's changes and written whole, fsynced, to
 * state/stages/<id>/apply.json before the folder is touched; then each step (a file written to a
 * temporary name and renamed into place, a link made the same way, a file removed) is idempotent
 * and recorded as done. A kill at any point leaves a plan that `resumeApply` rolls forward, so the
 * folder ends fully applied; until the plan exists, it is untouched.
 *
 * A file the person changed since the copy was made (its ctime is later: nothing else moves it)
 * is merged three-way when a base is known (a git repository: the working tree as it was,
 * recorded with `git stash create`), with `git merge-file`; a merge with conflicts, or a change
 * without a base, is left out, reported, and kept in the copy. `.git`'s control files are never
 * applied: git would run what they say.
 */

import { spawnSync } from "node:child_process";
import { closeSync, copyFileSync, readdirSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync, chmodSync } from "node:fs";
import { dirname, join, sep } from "node:path";
import { stageChanges, stageDir, type Change, type StageMount } from "./overlay.ts";

export interface ApplyStep {
  path: string;
  op: "write" | "symlink" | "delete";
  /** write: the file to copy (the copy's upper layer, or a merge result under apply/). */
  source?: string;
  /** write: the file's mode bits. */
  mode?: number;
  /** symlink: where it points. */
  target?: string;
}

export interface ApplyConflict {
  path: string;
  reason: string;
}

export interface ApplyPlan {
  id: string;
  original: string;
  steps: ApplyStep[];
  /** Steps done so far (a prefix of `steps`). */
  done: number;
  conflicts: ApplyConflict[];
  /** Changes merged with the person's own edits. */
  merged: string[];
}

const planFile = (home: string, id: string) => join(stageDir(home, id), "apply.json");

function fsyncFile(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeDurably(path: string, content: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, content, { mode: 0o600 });
  fsyncFile(temp);
  renameSync(temp, path);
}

function baseContent(original: string, base: string | undefined, path: string): Buffer | undefined {
  if (!base) return undefined;
  const shown = spawnSync("git", ["-C", original, "show", `${base}:./${path}`], { maxBuffer: 64 * 1024 * 1024 });
  return shown.status === 0 ? shown.stdout : undefined;
}

const isGitControl = (path: string) => /(^|\/)\.git\/(config|hooks\/|info\/attributes|config\.worktree|commondir|modules\/[^/]+\/(config|hooks\/))/.test(path) || /(^|\/)\.git\/worktrees\//.test(path);

/**
 * The plan for the copy's changes against the folder as it is now. Written down before anything is
 * applied; `runApply` carries it out.
 */
export function planApply(home: string, mount: StageMount): ApplyPlan {
  const options = { base: mount.info.base, createdAt: mount.info.snapshotAt };
  const { original, id } = mount.info;
  const upper = join(stageDir(home, id), "upper");
  const work = join(stageDir(home, id), "apply");
  mkdirSync(work, { recursive: true });
  const plan: ApplyPlan = { id, original, steps: [], done: 0, conflicts: [], merged: [] };
  const changed = (path: string) => {
    const info = lstatOrUndefined(join(original, path));
    // By the millisecond the copy was made in: a file the folder held then has a ctime within or before it (a ctime carries
    // sub-millisecond digits the snapshot's Date.now() does not, which made a file written just before it look changed).
    return info !== undefined && Math.floor(info.ctimeMs) > options.createdAt;
  };
  const existsNow = (path: string) => lstatOrUndefined(join(original, path)) !== undefined;
  const sameAsStaged = (path: string) => {
    const now = lstatOrUndefined(join(original, path));
    const staged = lstatOrUndefined(join(mount.view, path));
    if (!now || !staged || now.isSymbolicLink() !== staged.isSymbolicLink()) return false;
    if (now.isSymbolicLink()) return readlinkSync(join(original, path)) === readlinkSync(join(mount.view, path));
    return now.isFile() && staged.isFile() && (now.mode & 0o111) === (staged.mode & 0o111) && readFileSync(join(original, path)).equals(readFileSync(join(mount.view, path)));
  };
  const stepFor = (path: string, source?: string): ApplyStep => {
    const staged = lstatSync(join(mount.view, path));
    if (staged.isSymbolicLink()) return { path, op: "symlink", target: readlinkSync(join(mount.view, path)) };
    return { path, op: "write", source: source ?? join(upper, path), mode: staged.mode & 0o777 };
  };
  const entries: { path: string; kind: Change["kind"] | "deleted-by-rename"; type: Change["type"] }[] = [];
  for (const change of stageChanges(home, mount)) {
    if (change.kind === "renamed") {
      entries.push({ path: change.from!, kind: "deleted-by-rename", type: "file" }, { path: change.path, kind: "added", type: change.type });
    } else entries.push(change);
  }
  for (const entry of entries) {
    const { path } = entry;
    if (isGitControl(path)) {
      plan.conflicts.push({ path, reason: "a git control file (git runs what it says): never applied; copy it by hand if you mean it" });
      continue;
    }
    if (entry.type === "dir") continue; // an empty folder added: made with the first file, or left out
    if (entry.kind === "deleted" || entry.kind === "deleted-by-rename") {
      if (changed(path)) plan.conflicts.push({ path, reason: "the task deleted it and you changed it since; your version is kept" });
      else plan.steps.push({ path, op: "delete" });
      continue;
    }
    // Added or modified: does the folder's version still match what the copy started from?
    const personTouched = entry.kind === "added" ? existsNow(path) : changed(path);
    const alreadyThere = sameAsStaged(path); // the person made the same change: nothing to do
    if (!personTouched || alreadyThere) {
      if (!alreadyThere) plan.steps.push(stepFor(path));
      continue;
    }
    const merged = entry.kind === "modified" && entry.type === "file" ? mergeThreeWay(original, options.base, path, join(mount.view, path), join(work, `${plan.merged.length + plan.conflicts.length}.merged`)) : undefined;
    if (merged?.ok) {
      plan.steps.push(stepFor(path, merged.file));
      plan.merged.push(path);
    } else {
      plan.conflicts.push({ path, reason: merged?.reason ?? (entry.kind === "added" ? "you made a file at the same path meanwhile" : "you changed it meanwhile") });
    }
  }
  // Folders the copy removed go once their files have: deepest first.
  for (const folder of removedFolders(entries.filter((entry) => entry.kind === "deleted" || entry.kind === "deleted-by-rename").map((entry) => entry.path), mount)) plan.steps.push({ path: folder, op: "delete" });
  writeDurably(planFile(home, id), JSON.stringify(plan, null, 2) + "\n");
  return plan;
}

function removedFolders(deleted: string[], mount: StageMount): string[] {
  const folders = new Set<string>();
  for (const path of deleted) for (let dir = dirname(path); dir !== "." && dir !== ""; dir = dirname(dir)) folders.add(dir);
  return [...folders].filter((dir) => lstatOrUndefined(join(mount.view, dir)) === undefined).sort((a, b) => b.split("/").length - a.split("/").length);
}

function mergeThreeWay(original: string, base: string | undefined, path: string, staged: string, out: string): { ok: true; file: string } | { ok: false; reason: string } {
  const ancestor = baseContent(original, base, path);
  if (!ancestor) return { ok: false, reason: "you changed it meanwhile, and there is no common version to merge from (not a file git knew)" };
  const ancestorFile = `${out}.base`;
  const mine = `${out}.mine`;
  writeFileSync(ancestorFile, ancestor);
  copyFileSync(join(original, path), mine);
  const result = spawnSync("git", ["merge-file", "-p", "-L", "yours", "-L", "as it was", "-L", "the task's", mine, ancestorFile, staged], { maxBuffer: 64 * 1024 * 1024 });
  rmSync(ancestorFile, { force: true });
  rmSync(mine, { force: true });
  if (result.status !== 0) return { ok: false, reason: `you changed it meanwhile and the changes overlap (${result.status! > 0 ? `${result.status} conflicting hunks` : "merge failed"})` };
  writeFileSync(out, result.stdout);
  return { ok: true, file: out };
}

export function readPlan(home: string, id: string): ApplyPlan | undefined {
  try {
    return JSON.parse(readFileSync(planFile(home, id), "utf8")) as ApplyPlan;
  } catch {
    return undefined;
  }
}

/**
 * Carries out a written plan from where it stopped; each step can run twice safely. Refuses a step
 * whose folder leads out of the person's folder through a link.
 */
export function runApply(home: string, id: string, hooks: { afterStep?(index: number): void } = {}): ApplyPlan {
  const plan = readPlan(home, id);
  if (!plan) throw new Error(`there is no apply in progress for ${id}`);
  const root = realpathSync(plan.original);
  for (let index = plan.done; index < plan.steps.length; index++) {
    const step = plan.steps[index]!;
    const target = join(plan.original, step.path);
    const parent = dirname(target);
    if (step.op !== "delete") mkdirSync(parent, { recursive: true });
    const realParent = realOrUndefined(parent);
    if (realParent !== undefined && realParent !== root && !realParent.startsWith(root + sep)) throw new Error(`${step.path}: its folder leads outside ${plan.original} through a link; nothing more was applied`);
    if (step.op === "delete") {
      const info = lstatOrUndefined(target);
      if (info?.isDirectory()) {
        try {
          rmdirSync(target);
        } catch {
          // not empty: the person added something there meanwhile; it stays
        }
      } else if (info) unlinkSync(target);
    } else {
      const temp = join(parent, `.nightshift-apply-${id}-${index}`);
      rmSync(temp, { force: true });
      if (step.op === "symlink") symlinkSync(step.target!, temp);
      else {
        copyFileSync(step.source!, temp);
        chmodSync(temp, step.mode ?? 0o644);
        fsyncFile(temp);
      }
      renameSync(temp, target);
    }
    plan.done = index + 1;
    writeDurably(planFile(home, id), JSON.stringify(plan, null, 2) + "\n");
    hooks.afterStep?.(index);
  }
  return plan;
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function realOrUndefined(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * At a start: applies a kill interrupted are finished (their plans were written whole before the
 * first step). Returns what each one did, or why it could not go on.
 */
export function finishInterruptedApplies(home: string): { id: string; plan?: ApplyPlan; problem?: string }[] {
  const root = join(home, "state", "stages");
  let ids: string[];
  try {
    ids = readdirSync(root);
  } catch {
    return [];
  }
  const out: { id: string; plan?: ApplyPlan; problem?: string }[] = [];
  for (const id of ids) {
    const plan = readPlan(home, id);
    if (!plan || plan.done >= plan.steps.length) continue;
    try {
      out.push({ id, plan: runApply(home, id) });
    } catch (error) {
      out.push({ id, problem: (error as Error).message });
    }
  }
  return out;
}
