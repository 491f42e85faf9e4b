import { lstatSync, readlinkSync, realpathSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { PermissionDenied } from "../errors.ts";

/**
 * Resolves `path` (relative to `workdir` or absolute) to a real path inside `workdir`, following
 * symlinks and `..` before deciding. Throws PermissionDenied for anything that lands outside.
 */
export function resolveInside(workdir: string, path: string): string {
  const target = resolve(workdir, path);
  const real = realPathOfNearest(target);
  if (real !== workdir && !real.startsWith(workdir.endsWith(sep) ? workdir : workdir + sep)) {
    const shown = isAbsolute(path) ? path : `${path} (${real})`;
    throw new PermissionDenied(`${shown} is outside the task's working directory ${workdir}; file tools can only reach files under it.`);
  }
  return real;
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
        return join(realpathSync(current), ...missing.reverse());
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
  return relative(workdir, real) || ".";
}
