/**
 * Sandboxes on Linux: `bash -c` inside bubblewrap (read-only root, writable cwd, no network, fresh
 * namespaces), and the unsandboxed fallback for `sandbox: off`. Both share spawnCaptured, so time
 * limit, output cap, abort and environment scrubbing behave the same.
 */

import { realpathSync, statSync } from "node:fs";
import { SandboxUnavailable } from "../errors.ts";
import type { RunOptions, RunResult, Sandbox, SandboxProbe } from "./sandbox.ts";
import { bashArgs, scrubEnv, spawnCaptured } from "./spawn.ts";

export interface BwrapSandboxOptions {
  /** The bwrap binary; looked up on the given env's PATH when not absolute. Default `bwrap`. */
  bwrapPath?: string;
  /** Environment the commands start from; secrets are scrubbed (see scrubEnv). HOME is kept. */
  env: Record<string, string | undefined>;
  /** Extra variable-name patterns to scrub, added to the defaults. */
  secretEnvPatterns?: string[];
  /** Paths made empty and read-only inside the sandbox (e.g. ~/.ssh). Missing paths are skipped. */
  readOnlyHidden?: string[];
  /** Paths that stay read-only even inside a writable workdir (e.g. NIGHTSHIFT_HOME); writable paths inside them stay writable. */
  readOnly?: string[];
}

export interface UnsandboxedOptions {
  env: Record<string, string | undefined>;
  secretEnvPatterns?: string[];
}

const PROBE_TIMEOUT_MS = 10_000;
const INSTALL_HINT =
  "run `sudo apt-get install bubblewrap` (Debian/Ubuntu) or `sudo dnf install bubblewrap` (Fedora)";

interface HiddenPath {
  path: string;
  isDirectory: boolean;
}

export function createBwrapSandbox(options: BwrapSandboxOptions): Sandbox {
  const bwrapPath = options.bwrapPath ?? "bwrap";
  const env = scrubEnv(options.env, options.secretEnvPatterns);
  const hidden = resolveHidden(options.readOnlyHidden ?? []);
  const readOnly = resolveHidden(options.readOnly ?? []).map((entry) => entry.path);
  // Order matters to bwrap: mounts apply in argument order, later ones on top.
  const namespaceArgs = [
    "--ro-bind", "/", "/",
    "--dev", "/dev",
    "--proc", "/proc",
    "--tmpfs", "/tmp",
    "--tmpfs", "/run", // host sockets (D-Bus, docker, agents) live here: a socket ignores read-only mounts
    "--unshare-all", // includes the network: only a private loopback exists inside
    "--die-with-parent",
    "--new-session",
    "--clearenv",
    ...Object.entries(env).flatMap(([name, value]) => ["--setenv", name, value]),
  ];
  // Root inside the sandbox keeps its capabilities (and could remount /) unless they are dropped.
  const capDropArgs = ["--cap-drop", "ALL"];
  let staticArgs = [...namespaceArgs, ...capDropArgs];
  let probed: Promise<SandboxProbe> | undefined;

  async function probeOnce(): Promise<SandboxProbe> {
    const attempt = (args: string[]) =>
      spawnCaptured(bwrapPath, [...args, "--chdir", "/", "--", "true"], {
        env,
        cwd: "/",
        timeoutMs: PROBE_TIMEOUT_MS,
        maxOutputBytes: 4096,
      });
    let result: RunResult;
    try {
      result = await attempt(staticArgs);
    } catch (error) {
      return { ok: false, kind: "bwrap", problem: notStartedProblem(bwrapPath, error) };
    }
    if (result.exitCode === 0) return { ok: true, kind: "bwrap" };
    // A setuid bwrap refuses --cap-drop from non-root users, who hold no capabilities anyway.
    if (process.getuid?.() !== 0) {
      const withoutCapDrop = await attempt(namespaceArgs).catch(() => undefined);
      if (withoutCapDrop?.exitCode === 0) {
        staticArgs = namespaceArgs;
        return { ok: true, kind: "bwrap" };
      }
    }
    const detail = result.timedOut ? `timed out after ${PROBE_TIMEOUT_MS} ms` : result.output.trim().replace(/\s+/g, " ") || `exit code ${result.exitCode}`;
    return {
      ok: false,
      kind: "bwrap",
      problem:
        `bubblewrap cannot create namespaces here: ${detail}; enable unprivileged user namespaces ` +
        "(sysctl kernel.unprivileged_userns_clone=1, or kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04+).",
    };
  }

  const probe = (): Promise<SandboxProbe> => (probed ??= probeOnce());

  return {
    kind: "bwrap",
    probe,
    async run(command, runOptions) {
      const probeResult = await probe();
      if (!probeResult.ok) throw new SandboxUnavailable(probeResult.problem ?? "bubblewrap is not usable here.");
      const args = [...staticArgs, ...mountArgs(runOptions, hidden, readOnly), "--chdir", runOptions.cwd, "--", "bash", ...bashArgs(command)];
      try {
        return await spawnCaptured(bwrapPath, args, { ...captureLimits(runOptions), env, cwd: "/" });
      } catch (error) {
        throw new SandboxUnavailable(notStartedProblem(bwrapPath, error), { cause: error });
      }
    },
  };
}

/** Runs `bash -c` directly: no isolation at all, only the scrubbed env, limits and abort. */
export function createUnsandboxed(options: UnsandboxedOptions): Sandbox {
  const env = scrubEnv(options.env, options.secretEnvPatterns);
  let probed: Promise<SandboxProbe> | undefined;

  async function probeOnce(): Promise<SandboxProbe> {
    try {
      const result = await spawnCaptured("bash", ["-c", "true"], { env, cwd: "/", timeoutMs: PROBE_TIMEOUT_MS, maxOutputBytes: 4096 });
      if (result.exitCode === 0) return { ok: true, kind: "unsandboxed" };
      return { ok: false, kind: "unsandboxed", problem: `bash -c true failed: ${result.output.trim() || `exit code ${result.exitCode}`}` };
    } catch (error) {
      return { ok: false, kind: "unsandboxed", problem: `bash cannot be started: ${errorText(error)}; install bash or put it on PATH.` };
    }
  }

  return {
    kind: "unsandboxed",
    probe: () => (probed ??= probeOnce()),
    async run(command, runOptions) {
      try {
        return await spawnCaptured("bash", bashArgs(command), { ...captureLimits(runOptions), env, cwd: runOptions.cwd });
      } catch (error) {
        throw new SandboxUnavailable(`bash cannot be started in ${runOptions.cwd}: ${errorText(error)}`, { cause: error });
      }
    },
  };
}

/**
 * The per-command mounts: cwd and writable paths bound read-write, then the hidden paths on top
 * (so a hidden `.env` inside cwd stays hidden). A hidden directory that contains a bound path goes
 * first instead, and stays writable so bwrap can create the mount point inside it.
 */
function mountArgs(options: RunOptions, hidden: readonly HiddenPath[], readOnly: readonly string[]): string[] {
  const bound = [options.cwd, ...(options.writable ?? [])];
  const inside = (path: string, parent: string) => path.startsWith(parent.endsWith("/") ? parent : `${parent}/`);
  // A read-only path inside a writable one is bound read-only on top; writable paths inside it again on top of that.
  const protectedInside = readOnly.filter((path) => bound.some((b) => inside(path, b)));
  const rebound = bound.filter((b) => protectedInside.some((path) => b === path || inside(b, path)));
  const before: string[] = [];
  const after: string[] = [];
  for (const { path, isDirectory } of hidden) {
    if (!isDirectory) {
      after.push("--ro-bind", "/dev/null", path);
    } else if (bound.some((b) => b === path || b.startsWith(path.endsWith("/") ? path : `${path}/`))) {
      before.push("--tmpfs", path);
    } else {
      after.push("--tmpfs", path, "--remount-ro", path);
    }
  }
  return [
    ...before,
    ...bound.flatMap((path) => ["--bind", path, path]),
    ...protectedInside.flatMap((path) => ["--ro-bind", path, path]),
    ...rebound.flatMap((path) => ["--bind", path, path]),
    ...after,
  ];
}

/** Resolved once per sandbox: a path created later is not hidden until the next sandbox. */
function resolveHidden(paths: readonly string[]): HiddenPath[] {
  const resolved: HiddenPath[] = [];
  for (const path of paths) {
    try {
      const real = realpathSync(path);
      resolved.push({ path: real, isDirectory: statSync(real).isDirectory() });
    } catch {
      // Missing (or unreadable) paths have nothing to hide.
    }
  }
  return resolved;
}

function captureLimits(options: RunOptions) {
  return { timeoutMs: options.timeoutMs, maxOutputBytes: options.maxOutputBytes, signal: options.signal };
}

function notStartedProblem(bwrapPath: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") {
    const where = bwrapPath.includes("/") ? ` (no executable at ${bwrapPath})` : "";
    return `bubblewrap is not installed${where}: ${INSTALL_HINT}.`;
  }
  return `bubblewrap at ${bwrapPath} cannot be started: ${errorText(error)}; check that it is executable, or ${INSTALL_HINT}.`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
