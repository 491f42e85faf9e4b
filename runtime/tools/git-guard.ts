import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync } from "node:fs";
import { join, relative } from "node:path";

/**
 * Git runs what some files in `.git` say (config: `core.fsmonitor`, `core.pager`, filters;
 * hooks), and it runs them later, outside the sandbox, when the person next types `git status`.
 * A sandboxed command may work on a repository (commit, branch, fetch objects), so `.git` stays
 * writable, but not those files:
 *
 * - the ones that exist are bound read-only for the run (`config`, `hooks`, `config.worktree`,
 *   `commondir`, and the same in `modules/*` and `worktrees/*`);
 * - `.git` itself is pinned (bound onto itself: a mount point cannot be renamed), so it cannot be
 *   moved away and replaced by a folder with a config of the command's choosing;
 * - after the run, such files that did not exist before (`commondir` pointing at a planted config,
 *   a new `modules/x/config`) are moved aside into `.git/nightshift-refused/`, and a `.git` that
 *   was replaced all the same (a backend that cannot pin) is moved aside whole; each is said to the
 *   model and kept for the person, never deleted.
 */
export interface GitGuard {
  readOnly: string[];
  pinned: string[];
  /** After the run: moves aside what appeared; one note per refusal. */
  check(now: number): string[];
}

/** Files in a git folder whose contents git obeys by running something. */
function controlFiles(gitDir: string): string[] {
  const own = ["config", "hooks", "config.worktree", "commondir"].map((name) => join(gitDir, name));
  const nested = ["modules", "worktrees"].flatMap((group) =>
    safeList(join(gitDir, group)).flatMap((name) => ["config", "hooks", "config.worktree", "commondir"].map((file) => join(gitDir, group, name, file))),
  );
  return [...own, ...nested].filter((path) => existsSync(path));
}

export function guardGit(roots: readonly string[]): GitGuard {
  const gitDirs = roots.map((root) => join(root, ".git")).filter(isDirectory);
  const before = new Map(gitDirs.map((gitDir) => [gitDir, { inode: lstatSync(gitDir).ino, files: new Set(controlFiles(gitDir)) }]));
  return {
    readOnly: [...before.values()].flatMap(({ files }) => [...files]),
    pinned: gitDirs,
    check(now) {
      const notes: string[] = [];
      for (const [gitDir, { inode, files }] of before) {
        const stamp = new Date(now).toISOString().replace(/[:.]/g, "-");
        if (!isDirectory(gitDir) || lstatSync(gitDir).ino !== inode) {
          if (!existsSync(gitDir)) continue; // moved away and not replaced: git finds no repository, which runs nothing
          const aside = `${gitDir}.refused-${stamp}`;
          renameSync(gitDir, aside);
          notes.push(`[refused: the command replaced ${gitDir}; the new one was moved to ${aside} and the original is wherever the command moved it]`);
          continue;
        }
        for (const path of controlFiles(gitDir)) {
          if (files.has(path)) continue;
          const folder = join(gitDir, "nightshift-refused", stamp);
          mkdirSync(folder, { recursive: true });
          const aside = join(folder, relative(gitDir, path).replaceAll("/", "__"));
          renameSync(path, aside);
          notes.push(`[refused: the command created ${path}, which git would obey outside the sandbox; moved to ${aside}]`);
        }
      }
      return notes;
    },
  };
}

function isDirectory(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

function safeList(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}
