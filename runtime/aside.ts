import { existsSync } from "node:fs";

/**
 * Where a file that is set aside (damaged, or migrated) goes: `<path>.<why>-<time>`, or with `-2`,
 * `-3`… so that one moved aside never replaces one moved aside before. Nothing a user had is lost.
 */
export function asidePath(path: string, why: "damaged" | "migrated", at: number): string {
  const base = `${path}.${why}-${new Date(at).toISOString().replace(/[:.]/g, "-")}`;
  for (let n = 1; ; n++) if (!existsSync(n === 1 ? base : `${base}-${n}`)) return n === 1 ? base : `${base}-${n}`;
}
