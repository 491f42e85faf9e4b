import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";

/**
 * The system tools some tests need. The test run checks them once, at its start (global-setup.ts):
 * a developer's machine without them skips those tests with the reason; CI (`CI=true`) fails at once.
 */
export interface Prerequisite {
  tool: string;
  /** The Debian package that installs it. */
  pkg: string;
  what: string;
}

export const PREREQUISITES = [
  { tool: "bwrap", pkg: "bubblewrap", what: "the sandbox for bash" },
  { tool: "socat", pkg: "socat", what: "the sandbox's network relay" },
  { tool: "rg", pkg: "ripgrep", what: "search_files" },
] as const satisfies readonly Prerequisite[];

export type Tool = (typeof PREREQUISITES)[number]["tool"];

/** Whether `tool` is an executable file in one of PATH's folders. */
function onPath(tool: string, path: string): boolean {
  return path.split(delimiter).some((dir) => {
    if (!dir) return false;
    try {
      const file = join(dir, tool);
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

export function missingPrerequisites(path = process.env.PATH ?? ""): Prerequisite[] {
  return PREREQUISITES.filter((item) => !onPath(item.tool, path));
}

/** One paragraph: what is missing, what needs it, and the command that installs it. */
export function describeMissing(missing: readonly Prerequisite[]): string {
  const names = missing.map((item) => `${item.tool} (${item.what})`).join(", ");
  return `missing: ${names}. Install with: sudo apt-get install ${missing.map((item) => item.pkg).join(" ")}`;
}

/** CI=true as CI services set it; CI=1 and other values count too, but not "false" or "0". */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return !!env.CI && env.CI !== "false" && env.CI !== "0";
}

/** Set by the global setup when bwrap is installed but cannot make a sandbox here (no user namespaces). */
export const SANDBOX_PROBLEM_ENV = "NIGHTSHIFT_TEST_SANDBOX_PROBLEM";

let cached: Prerequisite[] | undefined;

/**
 * Test options that skip a test (or a whole `describe`) when a tool it needs is missing, with the
 * reason as the skip message, so the run counts it as skipped. Under CI=true nothing is skipped:
 * the global setup has already failed the run.
 */
export function needs(...tools: Tool[]): { skip?: string } {
  if (isCi()) return {};
  cached ??= missingPrerequisites();
  const missing = cached.filter((item) => (tools as string[]).includes(item.tool));
  if (missing.length) return { skip: describeMissing(missing) };
  const unusable = (tools as string[]).includes("bwrap") ? process.env[SANDBOX_PROBLEM_ENV] : undefined;
  return unusable ? { skip: unusable } : {};
}
