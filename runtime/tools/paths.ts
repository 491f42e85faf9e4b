import { lstatSync, readlinkSync, realpathSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { PermissionDenied } from "../errors.ts";

/** What file tools may not touch even inside the workdir; the sandbox hides the same paths from commands. */
export interface PathRules {
  /** Real paths that can be neither read nor written (secrets, Nightshift's state). */
  hidden: readonly string[];
  /** Hidden from the file tools only (Nightshift's own /proc); commands have their own. */
  toolsHidden?: readonly string[];
  /** Real paths that can be read but not written (NIGHTSHIFT_HOME), except `writable` ones inside them. */
  readOnly: readonly string[];
  writable: readonly string[];
}

export const NO_RULES: PathRules = { hidden: [], readOnly: [], writable: [] };

/**
 * `.env`, `.env.local`, …: secrets by convention, wherever they are (`.ENV` too: macOS's disk
 * ignores case). Not the templates committed beside them to show the keys (`.env.example`,
 * `.env.local.sample`, `.template`, `.dist`).
 */
export function isSecretFileName(name: string): boolean {
  return /^\.env(\..+)?$/i.test(name) && !/^\.env(\..+)?\.(example|sample|template|dist)$/i.test(name);
}

/**
 * Resolves `path` (relative to `workdir` or absolute) to a real path, following symlinks and `..`
 * (dangling links too) before anything is decided. Then the floor no policy can lower: secrets are
 * neither read nor written, Nightshift's own settings are not written. Where else a tool may go is
 * the permission policy's call, checked before the tool starts.
 */
export function resolvePath(workdir: string, path: string, rules: PathRules = NO_RULES, access: "read" | "write" = "read", view?: PathView): string {
  const real = view ? realPathInView(resolve(workdir, path), view) : realPathOfNearest(resolve(workdir, path));
  const shown = isAbsolute(path) || real === resolve(workdir, path) ? real : `${path} (${real})`;
  if (isSecretFileName(basename(real)) || [...rules.hidden, ...(rules.toolsHidden ?? [])].some((hidden) => within(real, hidden))) {
    throw new PermissionDenied(`${shown} holds secrets; Nightshift never lets the agent read or write it.`);
  }
  if (access === "write" && rules.readOnly.some((path) => within(real, path)) && !rules.writable.some((path) => within(real, path))) {
    throw new PermissionDenied(`${shown} belongs to Nightshift's own settings and cannot be changed by a task.`);
  }
  return real;
}

/** The real path without the floor checks, for listing what a call will touch; never throws for missing files. */
export function realPath(workdir: string, path: string, view?: PathView): string {
  return view ? realPathInView(resolve(workdir, path), view) : realPathOfNearest(resolve(workdir, path));
}

/**
 * A staged copy (runtime/stage/overlay.ts): paths are the task's, as it sees them, but what lies in
 * the folder is read at `toView(path)`. Resolution follows the view's symlinks (one the task made
 * points wherever it points), by hand: realpath(3) through /proc/<pid>/root would leave the view.
 */
export interface PathView {
  toView(path: string): string;
}

/** The path as the task sees it, with every symlink of the view followed; a missing rest is appended. */
function realPathInView(target: string, view: PathView): string {
  const parts = target.split(sep).filter(Boolean);
  let resolved: string = sep;
  for (let hops = 0; parts.length > 0; ) {
    const part = parts.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      resolved = dirname(resolved);
      continue;
    }
    const next = join(resolved, part);
    let info;
    try {
      info = lstatSync(view.toView(next));
    } catch {
      return join(next, ...parts); // nothing below a missing name can be a link
    }
    if (!info.isSymbolicLink()) {
      resolved = next;
      continue;
    }
    if (++hops > 40) throw new PermissionDenied(`${target}: too many levels of symbolic links`);
    const link = readlinkSync(view.toView(next));
    parts.unshift(...link.split(sep).filter(Boolean));
    if (isAbsolute(link)) resolved = sep;
  }
  return resolved;
}

export function within(path: string, parent: string): boolean {
  return path === parent || path.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/**
 * Real path of `target`, or of its nearest existing ancestor with the rest appended. A dangling
 * symlink on the way is followed by hand: writing through it would land where it points.
 */
function realPathOfNearest(target: string): string {
  for (let hops = 0; hops < 40; hops++) {
    const missing: string[] = [];
    let current = target;
    let redirected = false;
    for (;;) {
      try {
        // The native realpath(3): on macOS's case-insensitive disk it returns each name as stored,
        // so `~/.SSH/id_rsa` comes back as `~/.ssh/id_rsa` and meets the same rules.
        return join(realpathSync.native(current), ...missing.reverse());
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== "ENOENT" && code !== "ENOTDIR") throw error;
      }
      if (isSymlink(current)) {
        target = join(resolve(dirname(current), readlinkSync(current)), ...missing.reverse());
        redirected = true;
        break;
      }
      const parent = dirname(current);
      if (parent === current) return target;
      missing.push(basename(current));
      current = parent;
    }
    if (!redirected) break;
  }
  throw new PermissionDenied(`${target}: too many levels of symbolic links`);
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** How a real path is shown to the model: relative to the workdir. */
export function display(workdir: string, real: string): string {
  const inside = relative(workdir, real);
  return inside.startsWith("..") ? real : inside || ".";
}
