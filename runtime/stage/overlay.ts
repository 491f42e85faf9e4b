/**
 * Staged workdirs on Linux: an overlay over the person's own folder, so a task works on a copy that
 * costs nothing until it writes (bench/README.md, "Staging a task's folder"). The folder is the
 * lower layer and is never written; what the task writes lands in `upper/` under
 * NIGHTSHIFT_HOME/state/stages/<id>/. bubblewrap 0.8 cannot mount an overlay, so a holder process
 * in its own user and mount namespace (`unshare -Urm`) mounts it and keeps it: commands enter that
 * namespace (`nsenter`) before bwrap binds the merged view at the folder's own path, and the file
 * tools reach the view through `/proc/<holder>/root`. The holder reads its stdin and exits when it
 * closes, so the mount dies with the process that started it (a daemon killed with -9 included);
 * the upper folder stays on disk and the next start mounts it again.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { lstatSync, type Stats, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, sep } from "node:path";
import { SandboxUnavailable } from "../errors.ts";
import { lineDiff } from "../line-diff.ts";
import { sessionLocked } from "../session-lock.ts";

export interface StageInfo {
  id: string;
  /** The person's folder, a real path: the overlay's lower layer. */
  original: string;
  createdAt: number;
  /** Wall-clock time of the copy: a file of the folder whose ctime is later was changed meanwhile. */
  snapshotAt: number;
  /** In a git repository, the working tree as it was (`git stash create`, or HEAD): the base of three-way merges. */
  base?: string;
}

export interface StageMount {
  readonly info: StageInfo;
  /** The holder's PID: `nsenter --target` it to see the view at `merged`. */
  readonly pid: number;
  /** The merged view's path inside the holder's namespace. */
  readonly merged: string;
  /** The same view from this process: `/proc/<holder>/root<merged>`. */
  readonly view: string;
  /** Maps a path inside the original folder to the same path in the view; other paths are returned as they are. */
  toView(path: string): string;
  close(): Promise<void>;
}

export const stageDir = (home: string, id: string) => join(home, "state", "stages", id);

/** Makes the stage's folders and records it; the overlay is mounted by `mountStage`. */
export function createStage(home: string, id: string, original: string, now: number): StageInfo {
  const dir = stageDir(home, id);
  for (const sub of ["upper", "work", "merged"]) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  const real = realpathSync(original);
  const snapshotAt = Date.now();
  const base = recordBase(real);
  const info: StageInfo = { id, original: real, createdAt: now, snapshotAt, ...(base ? { base } : {}) };
  const temp = join(dir, `stage.json.${process.pid}.tmp`);
  writeFileSync(temp, JSON.stringify(info, null, 2) + "\n", { mode: 0o600 });
  renameSync(temp, join(dir, "stage.json"));
  return info;
}

/** `git stash create` in the folder's repository: the working tree as it is (HEAD when clean), or undefined outside git. */
function recordBase(original: string): string | undefined {
  const inside = spawnSync("git", ["-C", original, "rev-parse", "--is-inside-work-tree"], { encoding: "utf8" });
  if (inside.status !== 0 || inside.stdout.trim() !== "true") return undefined;
  const stash = spawnSync("git", ["-C", original, "stash", "create"], { encoding: "utf8" });
  if (stash.status !== 0) return undefined;
  const commit = stash.stdout.trim();
  if (commit) return commit;
  const head = spawnSync("git", ["-C", original, "rev-parse", "HEAD"], { encoding: "utf8" });
  return head.status === 0 ? head.stdout.trim() : undefined;
}

export function readStage(home: string, id: string): StageInfo | undefined {
  try {
    return JSON.parse(readFileSync(join(stageDir(home, id), "stage.json"), "utf8")) as StageInfo;
  } catch {
    return undefined;
  }
}

/**
 * Staged copies left unapplied for longer than `keepMs` since their task last ran (its session
 * log's last write, else the copy's making), skipping those whose task runs now.
 */
export function expiredStages(home: string, keepMs: number, now: number): StageInfo[] {
  let ids: string[];
  try {
    ids = readdirSync(join(home, "state", "stages"));
  } catch {
    return [];
  }
  return ids.flatMap((id) => {
    const info = readStage(home, id);
    if (!info) return [];
    const log = join(home, "sessions", `${id}.jsonl`);
    if (sessionLocked(log)) return []; // its task runs now
    const last = Math.max(info.createdAt, lstatOrUndefined(log)?.mtimeMs ?? 0);
    return now - last > keepMs ? [info] : [];
  });
}

/** Forgets the stage: its upper folder (what the task wrote) is deleted; the original was never touched. */
export function discardStage(home: string, id: string): void {
  rmSync(stageDir(home, id), { recursive: true, force: true });
}

/** Mounts the stage's overlay in a holder process; resolves once the view is ready. */
export async function mountStage(home: string, id: string, options: { timeoutMs?: number } = {}): Promise<StageMount> {
  const info = readStage(home, id);
  if (!info) throw new SandboxUnavailable(`there is no staged copy ${id} (state/stages/${id}/stage.json is missing)`);
  const dir = realpathSync(stageDir(home, id));
  const merged = join(dir, "merged");
  // Options are passed as arguments, never spliced into the script: a folder's name can hold anything.
  const script = 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3,userxattr" "$4" || exit 3; echo ready; read _';
  const holder = spawn("unshare", ["--user", "--map-root-user", "--mount", "--propagation", "private", "sh", "-c", script, "holder", escapeOption(info.original), escapeOption(join(dir, "upper")), escapeOption(join(dir, "work")), merged], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let said = "";
  holder.stderr!.on("data", (chunk: Buffer) => (said = (said + chunk.toString()).slice(-2000)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      holder.kill("SIGKILL");
      reject(new SandboxUnavailable(`the staged copy of ${info.original} could not be mounted in time`));
    }, options.timeoutMs ?? 10_000);
    holder.stdout!.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
    holder.once("error", (error) => {
      clearTimeout(timer);
      reject(new SandboxUnavailable(`the staged copy could not be mounted: ${error.message} (needs util-linux's unshare)`));
    });
    holder.once("exit", (code) => {
      clearTimeout(timer);
      reject(new SandboxUnavailable(`the staged copy of ${info.original} could not be mounted (exit ${code}): ${said.trim() || "no message"}. It needs overlayfs in user namespaces (Linux 5.11 or later); without it, set tasks.stage: off in config.yaml (or stage: false in the task)`));
    });
  });
  const view = `/proc/${holder.pid}/root${merged}`;
  return {
    info,
    pid: holder.pid!,
    merged,
    view,
    toView(path) {
      if (path !== info.original && !path.startsWith(info.original + sep)) return path;
      return view + path.slice(info.original.length);
    },
    close: () => closeHolder(holder),
  };
}

/** lowerdir and friends split on `,` and `:`; a backslash escapes them. */
function escapeOption(path: string): string {
  return path.replace(/[\\,:]/g, (char) => `\\${char}`);
}

function closeHolder(holder: ChildProcess): Promise<void> {
  if (holder.exitCode !== null || holder.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    holder.once("exit", () => resolve());
    holder.stdin!.end(); // `read` sees the end and the shell exits: the mount goes with its namespace
    setTimeout(() => holder.kill("SIGKILL"), 2000).unref();
  });
}

export type ChangeKind = "added" | "modified" | "deleted" | "renamed";

export interface Change {
  kind: ChangeKind;
  /** Relative to the folder, with `/`. */
  path: string;
  /** For a rename: where it was. */
  from?: string;
  type: "file" | "symlink" | "dir";
  binary?: boolean;
  /** Lines added and removed (text files). */
  added?: number;
  removed?: number;
}

/**
 * What the task changed, against the folder as it is now: every entry the upper layer holds is a
 * candidate; for a folder it holds, what the original has and the view lacks was deleted (by a
 * whiteout, or by an opaque folder that replaced it). A file deleted and one added with the same
 * content make a rename.
 */
export function stageChanges(home: string, mount: StageMount): Change[] {
  const upper = join(stageDir(home, mount.info.id), "upper");
  const changes: Change[] = [];
  const walk = (rel: string) => {
    const entries = readdirSync(join(upper, rel), { withFileTypes: true });
    const original = join(mount.info.original, rel);
    const view = join(mount.view, rel);
    const inView = new Set(safeList(view));
    for (const name of safeList(original)) {
      if (!inView.has(name)) collectDeleted(join(mount.info.original, rel, name), join(rel, name), changes);
    }
    for (const entry of entries) {
      const path = join(rel, entry.name);
      if (entry.isCharacterDevice()) continue; // a whiteout: counted above, from the original's listing
      const before = lstatOrUndefined(join(mount.info.original, path));
      const after = lstatOrUndefined(join(mount.view, path));
      if (!after) continue;
      if (after.isDirectory()) {
        if (before && !before.isDirectory()) changes.push({ kind: "deleted", path: slash(path), type: before.isSymbolicLink() ? "symlink" : "file", ...counts(join(mount.info.original, path), undefined, before.isSymbolicLink() ? "symlink" : "file") });
        if (!before || !before.isDirectory()) collectAdded(join(mount.view, path), path, changes);
        else walk(path);
        continue;
      }
      const type = after.isSymbolicLink() ? "symlink" : "file";
      if (before?.isDirectory()) {
        collectDeleted(join(mount.info.original, path), path, changes); // a folder replaced by a file
        changes.push({ kind: "added", path: slash(path), type, ...counts(undefined, join(mount.view, path), type) });
      } else if (!before) changes.push({ kind: "added", path: slash(path), type, ...counts(undefined, join(mount.view, path), type) });
      else if (differs(join(mount.info.original, path), join(mount.view, path), before, after)) {
        changes.push({ kind: "modified", path: slash(path), type, ...counts(join(mount.info.original, path), join(mount.view, path), type) });
      }
    }
  };
  walk("");
  return pairRenames(changes, mount);
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

const slash = (path: string) => path.split(sep).join("/");

function collectDeleted(full: string, rel: string, changes: Change[]): void {
  const stat = lstatOrUndefined(full);
  if (!stat) return;
  if (stat.isDirectory()) {
    for (const name of safeList(full)) collectDeleted(join(full, name), join(rel, name), changes);
    return;
  }
  const type = stat.isSymbolicLink() ? "symlink" : "file";
  changes.push({ kind: "deleted", path: slash(rel), type, ...counts(full, undefined, type) });
}

function collectAdded(full: string, rel: string, changes: Change[]): void {
  const stat = lstatOrUndefined(full);
  if (!stat) return;
  if (stat.isDirectory()) {
    const names = safeList(full);
    if (names.length === 0) changes.push({ kind: "added", path: slash(rel), type: "dir" });
    for (const name of names) collectAdded(join(full, name), join(rel, name), changes);
    return;
  }
  const type = stat.isSymbolicLink() ? "symlink" : "file";
  changes.push({ kind: "added", path: slash(rel), type, ...counts(undefined, full, type) });
}

function differs(a: string, b: string, before: Stats, after: Stats): boolean {
  if (before.isSymbolicLink() !== after.isSymbolicLink()) return true;
  if (after.isSymbolicLink()) return readlinkSync(a) !== readlinkSync(b);
  if ((before.mode & 0o111) !== (after.mode & 0o111)) return true;
  if (before.size !== after.size) return true;
  return !readFileSync(a).equals(readFileSync(b));
}

const isBinary = (content: Buffer) => content.subarray(0, 8000).includes(0);

function counts(before: string | undefined, after: string | undefined, type: "file" | "symlink"): Pick<Change, "binary" | "added" | "removed"> {
  if (type === "symlink") return {};
  const a = before ? readFileSync(before) : Buffer.alloc(0);
  const b = after ? readFileSync(after) : Buffer.alloc(0);
  if (isBinary(a) || isBinary(b)) return { binary: true };
  const lines = (text: Buffer) => (text.length === 0 ? [] : text.toString("utf8").replace(/\n$/, "").split("\n"));
  const left = lines(a);
  const right = lines(b);
  // Counted as multisets: exact for additions and deletions, a close bound for edits, and linear.
  const pool = new Map<string, number>();
  for (const line of left) pool.set(line, (pool.get(line) ?? 0) + 1);
  let kept = 0;
  for (const line of right) {
    const left = pool.get(line) ?? 0;
    if (left > 0) {
      pool.set(line, left - 1);
      kept++;
    }
  }
  return { added: right.length - kept, removed: left.length - kept };
}

/** A deleted file and an added one with the same bytes become one rename. */
function pairRenames(changes: Change[], mount: StageMount): Change[] {
  const deleted = changes.filter((change) => change.kind === "deleted" && change.type === "file");
  const out: Change[] = [];
  const used = new Set<Change>();
  for (const change of changes) {
    if (change.kind !== "added" || change.type !== "file") continue;
    const content = readFileSync(join(mount.view, change.path));
    const match = deleted.find((candidate) => !used.has(candidate) && readFileSync(join(mount.info.original, candidate.path)).equals(content));
    if (match) {
      used.add(match);
      used.add(change);
      out.push({ kind: "renamed", path: change.path, from: match.path, type: "file", added: 0, removed: 0 });
    }
  }
  return [...changes.filter((change) => !used.has(change)), ...out].sort((a, b) => a.path.localeCompare(b.path));
}

/** One line per change: `M src/app.js (+3 −1)`, `R old → new`, `D gone.txt`, `A new.txt (+12)`. */
export function changeLines(changes: readonly Change[]): string[] {
  const letter = { added: "A", modified: "M", deleted: "D", renamed: "R" } as const;
  return changes.map((change) => {
    const counts = change.binary ? " (binary)" : change.added || change.removed ? ` (+${change.added ?? 0} −${change.removed ?? 0})` : "";
    const what = change.type === "symlink" ? " (link)" : change.type === "dir" ? "/" : "";
    return `${letter[change.kind]} ${change.from ? `${change.from} → ` : ""}${change.path}${what}${counts}`;
  });
}

/** A unified diff of the changes, three lines of context, for a person to read (and `git apply` to take). */
export function unifiedDiff(mount: StageMount, changes: readonly Change[]): string {
  const out: string[] = [];
  const read = (path: string | undefined) => (path === undefined ? "" : readFileSync(path, "utf8"));
  for (const change of changes) {
    if (change.type !== "file") {
      out.push(`diff --nightshift a/${change.path} b/${change.path}`, `(${change.kind} ${change.type})`);
      continue;
    }
    const before = change.kind === "added" ? undefined : join(mount.info.original, change.from ?? change.path);
    const after = change.kind === "deleted" ? undefined : join(mount.view, change.path);
    out.push(`diff --git a/${change.from ?? change.path} b/${change.path}`);
    if (change.kind === "renamed") out.push(`rename from ${change.from}`, `rename to ${change.path}`);
    if (change.binary) {
      out.push("Binary files differ");
      continue;
    }
    const lines = lineDiff(read(before), read(after));
    if (!lines) {
      out.push("(too long to show line by line)");
      continue;
    }
    if (!lines.some((line) => line.op !== "same")) continue;
    out.push(`--- ${before ? `a/${change.from ?? change.path}` : "/dev/null"}`, `+++ ${after ? `b/${change.path}` : "/dev/null"}`);
    out.push(...hunks(lines));
  }
  return out.join("\n") + (out.length ? "\n" : "");
}

function hunks(lines: NonNullable<ReturnType<typeof lineDiff>>): string[] {
  const out: string[] = [];
  const changed = lines.map((line, index) => (line.op === "same" ? -1 : index)).filter((index) => index >= 0);
  let i = 0;
  while (i < changed.length) {
    let start = Math.max(0, changed[i]! - 3);
    let end = Math.min(lines.length, changed[i]! + 4);
    while (i + 1 < changed.length && changed[i + 1]! - 3 <= end) end = Math.min(lines.length, changed[++i]! + 4);
    i++;
    const slice = lines.slice(start, end);
    const oldStart = lines.slice(0, start).filter((line) => line.op !== "add").length + 1;
    const newStart = lines.slice(0, start).filter((line) => line.op !== "remove").length + 1;
    const oldCount = slice.filter((line) => line.op !== "add").length;
    const newCount = slice.filter((line) => line.op !== "remove").length;
    out.push(`@@ -${oldCount ? oldStart : oldStart - 1},${oldCount} +${newCount ? newStart : newStart - 1},${newCount} @@`);
    for (const line of slice) out.push(`${line.op === "same" ? " " : line.op === "add" ? "+" : "-"}${line.text}`);
    start = end;
  }
  return out;
}

/** What a copy holds, as results, the CLI and the dashboard show it: one line per change and the unified diff (cut at `maxDiff`). */
export function summarizeStage(home: string, mount: StageMount, maxDiff = Infinity): { original: string; changes: string[]; diff: string } {
  const changes = stageChanges(home, mount);
  const diff = unifiedDiff(mount, changes);
  return { original: mount.info.original, changes: changeLines(changes), diff: diff.length > maxDiff ? `${diff.slice(0, maxDiff)}\n[cut at ${maxDiff.toLocaleString("en-US")} bytes: nightshift changes shows it all]\n` : diff };
}
