import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import type { SharedFiles } from "../runtime/store/pg-files.ts";
import { serialized } from "../runtime/serialized.ts";

/**
 * Several machines on one store hold the same identity, memory, specialists and skills: each
 * machine keeps them as files in its home, as on a single machine (sessions read them there), and
 * `sync` makes its files and the shared store agree. A file changed here is written to the store;
 * one changed on another machine is written here. Both changed since they last agreed: the other
 * machine's stands (it was written first) and this machine's is kept under
 * state/shared-conflicts/, and said. Nothing is lost either way. Run on every heartbeat and when
 * another machine writes, so a change reaches the others within seconds.
 */

/** What is shared: these files, and every file under these folders. */
export const SHARED_FILES = ["IDENTITY.md", "MEMORY.md"];
export const SHARED_FOLDERS = ["agents", "skills"];
/** Larger files are not shared (said once each): a skill's data belongs in its own repository. */
export const MAX_SHARED_BYTES = 1024 * 1024;

interface Synced {
  version: number;
  /** sha256 of what both held, or "" for a file both agree is gone. */
  hash: string;
  size: number;
  mtimeMs: number;
}

export interface SyncReport {
  sent: string[];
  received: string[];
  /** Both changed: the store's version was taken and this machine's kept at `keptAt`. */
  conflicts: Array<{ path: string; keptAt: string; from: string }>;
  /** Files over MAX_SHARED_BYTES, left out. */
  tooLarge: string[];
}

export interface FileSync {
  sync(): Promise<SyncReport>;
}

/**
 * `defaults`: what `nightshift init` writes (path → text). A machine that joins with a default
 * file takes the store's without keeping a conflict copy.
 */
export function createFileSync(options: { home: string; files: SharedFiles; machine: string; now: () => number; defaults?: ReadonlyMap<string, string> }): FileSync {
  const { home, files } = options;
  const stateFile = join(home, "state", "shared-files.json");
  let synced = readSynced(stateFile);
  const saidTooLarge = new Set<string>();
  // One sync at a time (the heartbeat's, a consolidation's): each compares against what the last one left.
  return { sync: serialized(syncOnce) };

  async function syncOnce(): Promise<SyncReport> {
    const report: SyncReport = { sent: [], received: [], conflicts: [], tooLarge: [] };
    // Only paths this machine would share itself: another machine's row can name nothing outside them.
    const remote = new Map([...(await files.versions())].filter(([path]) => isSharedPath(path)));
    const local = scan(home);
    const downloads: string[] = [];
    const uploads: string[] = [];
    for (const path of new Set([...remote.keys(), ...local.keys(), ...Object.keys(synced)])) {
      const here = local.get(path);
      if (here && here.size > MAX_SHARED_BYTES) {
        if (!saidTooLarge.has(path)) report.tooLarge.push(path);
        saidTooLarge.add(path);
        continue;
      }
      const known = synced[path];
      const remoteChanged = remote.has(path) && remote.get(path) !== known?.version;
      if (remoteChanged) downloads.push(path);
      else if (changedHere(path, here, known)) uploads.push(path);
    }
    let changed = false;
    for (const file of await files.read(downloads)) {
      const path = join(home, file.path);
      const known = synced[file.path];
      const hereHash = existsSync(path) ? hashOf(readFileSync(path)) : "";
      const theirs = file.content ? hashOf(file.content) : "";
      // Changed here too (or here before this machine ever agreed with the store), and not the same: kept aside.
      const mineToo = existsSync(path) && (known ? changedHere(file.path, local.get(file.path), known) : true);
      if (hereHash !== theirs && mineToo && !isDefault(file.path, path)) {
        const keptAt = join(home, "state", "shared-conflicts", `${file.path}.${options.machine}-${options.now()}`);
        mkdirSync(dirname(keptAt), { recursive: true });
        renameSync(path, keptAt);
        report.conflicts.push({ path: file.path, keptAt, from: file.machine });
      }
      if (hereHash !== theirs) {
        if (file.content) writeAtomically(path, file.content);
        else if (existsSync(path)) unlinkSync(path);
        report.received.push(file.path);
      }
      synced[file.path] = record(path, file.version, theirs);
      changed = true;
    }
    /** Written by another machine first, with the hash of what this one tried to write. */
    const lost = new Map<string, string>();
    for (const relativePath of uploads) {
      const path = join(home, relativePath);
      const content = existsSync(path) ? readFileSync(path) : undefined;
      const version = await files.put(relativePath, content, synced[relativePath]?.version ?? 0);
      if (version === undefined) {
        lost.set(relativePath, content ? hashOf(content) : "");
        continue;
      }
      synced[relativePath] = record(path, version, content ? hashOf(content) : "");
      report.sent.push(relativePath);
      changed = true;
    }
    // Another machine wrote the same content first (two machines joining at once with init's files):
    // that is agreement, settled now. Left unsettled, an edit made here before the next sync would
    // look like a change on both sides and be put aside as a conflict. Different content: the next
    // sync takes theirs and keeps this one aside.
    for (const file of await files.read([...lost.keys()])) {
      const path = join(home, file.path);
      const theirs = file.content ? hashOf(file.content) : "";
      const hereNow = existsSync(path) ? hashOf(readFileSync(path)) : "";
      if (theirs !== lost.get(file.path) || hereNow !== theirs) continue;
      synced[file.path] = record(path, file.version, theirs);
      changed = true;
    }
    if (changed) saveSynced(stateFile, synced);
    return report;
  }

  function isDefault(relativePath: string, path: string): boolean {
    const text = options.defaults?.get(relativePath);
    return text !== undefined && existsSync(path) && readFileSync(path, "utf8") === text;
  }

  /** Changed here since the last agreement: its size or time moved and its content with them, or it appeared or went. */
  function changedHere(path: string, here: { size: number; mtimeMs: number } | undefined, known: Synced | undefined): boolean {
    if (!here) return known !== undefined && known.hash !== "";
    if (!known) return true;
    if (here.size === known.size && here.mtimeMs === known.mtimeMs) return false;
    return hashOf(readFileSync(join(home, path))) !== known.hash;
  }
}

/** Two writes this close together can leave the same size and time (the kernel's clock ticks coarsely). */
const RACY_MS = 2000;

function record(path: string, version: number, hash: string): Synced {
  if (!hash) return { version, hash, size: 0, mtimeMs: 0 };
  const stats = statSync(path);
  // Written too recently for its time to tell a second write apart: its content is compared next time.
  // File times come from the system's clock, so it is compared with the same.
  return { version, hash, size: stats.size, mtimeMs: Date.now() - stats.mtimeMs < RACY_MS ? -1 : stats.mtimeMs };
}

/** The shared files in this home, by path relative to it (with `/`), with their size and time. */
function scan(home: string): Map<string, { size: number; mtimeMs: number }> {
  const found = new Map<string, { size: number; mtimeMs: number }>();
  const add = (path: string) => {
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats?.isFile()) found.set(relative(home, path).split(sep).join("/"), { size: stats.size, mtimeMs: stats.mtimeMs });
  };
  for (const name of SHARED_FILES) add(join(home, name));
  for (const folder of SHARED_FOLDERS) {
    const root = join(home, folder);
    if (!existsSync(root)) continue;
    for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
      // Hidden files (editor swap files, our own temp files) stay on the machine.
      if (!entry.isFile() || relative(root, join(entry.parentPath, entry.name)).split(sep).some((part) => part.startsWith("."))) continue;
      add(join(entry.parentPath, entry.name));
    }
  }
  return found;
}

/** IDENTITY.md, MEMORY.md, or a file under agents/ or skills/, with no `..`, `.` or empty part and no hidden one. */
export function isSharedPath(path: string): boolean {
  if (SHARED_FILES.includes(path)) return true;
  const parts = path.split("/");
  return parts.length > 1 && SHARED_FOLDERS.includes(parts[0]!) && parts.every((part) => part !== "" && !part.startsWith("."));
}

function hashOf(content: Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

function readSynced(file: string): Record<string, Synced> {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, Synced>;
  } catch {
    return {}; // none yet, or unreadable: the next sync compares contents again and loses nothing
  }
}

function saveSynced(file: string, synced: Record<string, Synced>): void {
  writeAtomically(file, Buffer.from(JSON.stringify(synced)));
}

function writeAtomically(path: string, content: Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = join(dirname(path), `.${process.pid}.shared.tmp`);
  writeFileSync(temp, content);
  renameSync(temp, path);
}
