import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** NIGHTSHIFT_HOME, or ~/.nightshift. Imports nothing heavy: every CLI command starts here. */
export function resolveHome(env: Record<string, string | undefined>): string {
  const raw = env.NIGHTSHIFT_HOME || join(homedir(), ".nightshift");
  return resolve(expandHome(raw, env));
}

export function expandHome(path: string, env: Record<string, string | undefined> = {}): string {
  if (path === "~" || path.startsWith("~/")) return join(env.HOME || homedir(), path.slice(1));
  return path;
}
