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
  // The fonts too: without them the pages render with no font that covers their text.
  { tool: "chromium-headless-shell", pkg: "chromium-headless-shell fonts-liberation", what: "the dashboard's browser test" },
] as const satisfies readonly Prerequisite[];

export type Tool = (typeof PREREQUISITES)[number]["tool"];

/**
 * What the sandbox-runtime (srt) backend needs on Linux: the same three tools, and the library's
 * own probe (its seccomp helper makes a nested user namespace, which some kernels refuse).
 */
export const SRT_TOOLS: readonly string[] = ["bwrap", "socat", "rg"] satisfies Tool[];

/** The first executable file named `tool` in PATH's folders, as the shell would find it. */
export function findOnPath(tool: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, tool);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not here: the next folder
    }
  }
  return undefined;
}

export function missingPrerequisites(path = process.env.PATH ?? ""): Prerequisite[] {
  return PREREQUISITES.filter((item) => findOnPath(item.tool, path) === undefined);
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
/** Set by the global setup when srt's tools are installed but its probe fails here. */
export const SRT_PROBLEM_ENV = "NIGHTSHIFT_TEST_SRT_PROBLEM";

let cached: Prerequisite[] | undefined;

/**
 * Test options that skip a test (or a whole `describe`) when a tool it needs is missing, with the
 * reason as the skip message, so the run counts it as skipped. Under CI=true nothing is skipped:
 * the global setup has already failed the run.
 */
export function needs(...tools: Array<Tool | "srt">): { skip?: string } {
  if (isCi()) return {};
  cached ??= missingPrerequisites();
  const wanted: string[] = tools.flatMap((tool) => (tool === "srt" ? SRT_TOOLS : [tool]));
  const missing = cached.filter((item) => wanted.includes(item.tool));
  if (missing.length) return { skip: describeMissing(missing) };
  const unusable = wanted.includes("bwrap") ? process.env[SANDBOX_PROBLEM_ENV] : undefined;
  if (unusable) return { skip: unusable };
  const srtUnusable = tools.includes("srt") ? process.env[SRT_PROBLEM_ENV] : undefined;
  return srtUnusable ? { skip: `sandbox-runtime (srt): ${srtUnusable}` } : {};
}

/** The Linux sandboxes, for suites that run against both: bubblewrap (ours) and sandbox-runtime. */
export const LINUX_BACKENDS = ["bwrap", "srt"] as const;
export type LinuxBackend = (typeof LINUX_BACKENDS)[number];
