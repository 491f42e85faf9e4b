import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";

/** One file of a skill, as pinned: its path inside the folder (with `/`), size and SHA-256. */
export interface SkillFile {
  path: string;
  size: number;
  sha256: string;
}

export const MAX_SKILL_FILES = 500;
export const MAX_SKILL_BYTES = 20 * 1024 * 1024;

/** Not part of a skill's content: a clone's history and Finder's droppings are neither copied nor pinned. */
const SKIPPED = new Set([".git", ".DS_Store"]);

/** A folder that cannot be a skill as it is (a link, a device, too big), with the fix in the message. */
export class SkillFolderProblem extends Error {
  override name = "SkillFolderProblem";
}

/**
 * Every regular file under `dir`, sorted by path, with its content hashed. Links and special files
 * are refused rather than followed: a link could point at a secret that the model would then read.
 * `shown` is how messages name the folder (`skills/pdf-forms`).
 */
export function scanSkillFolder(dir: string, shown: string): { files: SkillFile[]; contents: Map<string, Buffer> } {
  const files: SkillFile[] = [];
  const contents = new Map<string, Buffer>();
  let total = 0;
  const walk = (relative: string) => {
    const here = relative ? join(dir, relative) : dir;
    for (const entry of readdirSync(here).sort()) {
      if (SKIPPED.has(entry)) continue;
      const path = relative ? `${relative}/${entry}` : entry;
      const info = lstatSync(join(dir, path));
      if (info.isSymbolicLink()) throw new SkillFolderProblem(`${shown}/${path}: is a symbolic link; a skill holds regular files only, so replace the link with a copy of what it points to`);
      if (info.isDirectory()) {
        walk(path);
        continue;
      }
      if (!info.isFile()) throw new SkillFolderProblem(`${shown}/${path}: is not a regular file (a pipe, socket or device); remove it from the skill`);
      if (files.length >= MAX_SKILL_FILES) throw new SkillFolderProblem(`${shown}: has more than ${MAX_SKILL_FILES} files; a skill should be a few instructions and scripts, so remove what it does not need`);
      const content = readRegular(join(dir, path), `${shown}/${path}`);
      total += content.length;
      if (total > MAX_SKILL_BYTES) throw new SkillFolderProblem(`${shown}: is over ${MAX_SKILL_BYTES / 1024 / 1024} MiB; a skill should be a few instructions and scripts, so remove large data files`);
      files.push({ path, size: content.length, sha256: createHash("sha256").update(content).digest("hex") });
      contents.set(path, content);
    }
  };
  walk("");
  return { files, contents };
}

/** The hash that pins a skill: every file's path and content, in path order. */
export function skillHash(files: readonly SkillFile[]): string {
  const hash = createHash("sha256");
  for (const file of [...files].sort((a, b) => (a.path < b.path ? -1 : 1))) hash.update(`${file.path}\0${file.sha256}\n`);
  return hash.digest("hex");
}

export interface FileChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

/** What differs between the pinned files and the files now. */
export function diffFiles(pinned: readonly SkillFile[], now: readonly SkillFile[]): FileChanges {
  const before = new Map(pinned.map((file) => [file.path, file.sha256]));
  const after = new Map(now.map((file) => [file.path, file.sha256]));
  return {
    added: [...after.keys()].filter((path) => !before.has(path)),
    removed: [...before.keys()].filter((path) => !after.has(path)),
    changed: [...after.keys()].filter((path) => before.has(path) && before.get(path) !== after.get(path)),
  };
}

/** "SKILL.md changed, scripts/run.sh added": one line for messages. */
export function describeChanges(changes: FileChanges): string {
  const parts = [...changes.changed.map((path) => `${path} changed`), ...changes.added.map((path) => `${path} added`), ...changes.removed.map((path) => `${path} removed`)];
  return parts.length > 6 ? `${parts.slice(0, 6).join(", ")} and ${parts.length - 6} more` : parts.join(", ");
}

/** Opened without following links (one swapped in since lstat is refused) and without blocking on a FIFO. */
function readRegular(file: string, shown: string): Buffer {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw new SkillFolderProblem(`${shown}: cannot be read (${(error as NodeJS.ErrnoException).code ?? "unknown error"}); check its permissions`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new SkillFolderProblem(`${shown}: is not a regular file; remove it from the skill`);
    if (stat.size > MAX_SKILL_BYTES) throw new SkillFolderProblem(`${shown}: is over ${MAX_SKILL_BYTES / 1024 / 1024} MiB; remove large data files from the skill`);
    const buffer = Buffer.alloc(stat.size);
    const read = stat.size === 0 ? 0 : readSync(fd, buffer, 0, stat.size, 0);
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}
