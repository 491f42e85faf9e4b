/**
 * The sandbox on @anthropic-ai/sandbox-runtime (srt): Seatbelt profiles on macOS, bubblewrap plus a
 * seccomp filter (no new Unix sockets, no nested namespaces) on Linux. The library is told only what
 * it enforces well, per run: which paths the command may write and which it may not read. The rest
 * stays ours, as in bwrap.ts: the scrubbed environment, the time limit, the output cap and abort
 * (spawnCaptured), and the network decision.
 *
 * Network: srt's own proxy asks its callback about a host with only the host and port, not which
 * command asked, so it cannot tell one session's request from another's, and our decision is per
 * session (task grants, approvals). So srt is given Nightshift's proxy as an external one
 * (`network.httpProxyPort`): it starts no proxy of its own, and its sandbox lets the command reach
 * only that port (Seatbelt: one loopback port; Linux: a socat bridge into an empty network
 * namespace). The run's token goes into the proxy URLs inside the command's shell, so our proxy
 * knows the run and asks our policy, which may wait for a human, exactly as under bwrap.
 *
 * The library is one object per process (SandboxManager): it is set up once for the proxy port in
 * use, and set up again only when another sandbox with another proxy runs (tests build several).
 */

import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, statSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { SandboxRuntimeConfig } from "@anthropic-ai/sandbox-runtime";
import { SandboxUnavailable } from "../errors.ts";
import type { NetworkProxy } from "./proxy.ts";
import type { RunOptions, RunResult, Sandbox, SandboxProbe } from "./sandbox.ts";
import { DEFAULT_PATH, LIFELINE_GUARD, scrubEnv, spawnCaptured, spawnPiped } from "./spawn.ts";

export interface SrtSandboxOptions {
  /** Environment the commands start from; secrets are scrubbed (see scrubEnv). HOME is kept. */
  env: Record<string, string | undefined>;
  secretEnvPatterns?: string[];
  /** Paths commands cannot read (e.g. ~/.ssh). Missing paths are skipped. */
  readOnlyHidden?: string[];
  /** Paths that stay read-only even inside a writable workdir (e.g. NIGHTSHIFT_HOME). */
  readOnly?: string[];
  /** Network through the filtering proxy, which must listen on TCP (`startNetworkProxy({ tcp: true })`). */
  network?: { proxy: NetworkProxy };
}

type Manager = (typeof import("@anthropic-ai/sandbox-runtime"))["SandboxManager"];

const PROBE_TIMEOUT_MS = 20_000;
const KIND = "srt";
/** Where the token reaches the command's shell; the prefix moves it into the proxy URLs and unsets it. */
const AUTH_VARIABLE = "NIGHTSHIFT_PROXY_AUTH";
const PROXY_VARIABLES = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy", "GRPC_PROXY", "grpc_proxy"];
/** srt's proxy settings that point at a SOCKS port or carry no token: our proxy would only refuse them. */
const OTHER_PROXY_VARIABLES = ["JAVA_TOOL_OPTIONS", "FTP_PROXY", "ftp_proxy", "RSYNC_PROXY", "DOCKER_HTTP_PROXY", "DOCKER_HTTPS_PROXY", "CLOUDSDK_PROXY_TYPE", "CLOUDSDK_PROXY_ADDRESS", "CLOUDSDK_PROXY_PORT", "GIT_SSH_COMMAND", "CLAUDE_CODE_HOST_HTTP_PROXY_PORT", "CLAUDE_CODE_HOST_SOCKS_PROXY_PORT"];
/** Longest violation report added to a run's result. */
const MAX_VIOLATION_LINES = 20;

/** The library's module, loaded on first use: bwrap users never pay for it. */
let library: Promise<Manager> | undefined;
/** What the process-wide manager is set up for, the runs using it, and who waits for them to end. */
let current: { key: string; ready: Promise<void>; runs: number; waiters: Array<() => void> } | undefined;

function loadManager(): Promise<Manager> {
  library ??= import("@anthropic-ai/sandbox-runtime").then((module) => module.SandboxManager);
  return library;
}

/**
 * Sets the manager up for `port` (undefined: no network at all), waiting for another sandbox's
 * runs to end first. Resolves with the release for this run.
 */
async function acquire(manager: Manager, port: number | undefined): Promise<() => void> {
  const key = keyOf(port);
  while (current && current.key !== key) {
    const other = current;
    if (other.runs > 0) {
      await new Promise<void>((resolve) => other.waiters.push(resolve));
      continue;
    }
    current = undefined;
    await other.ready.catch(() => undefined);
    await manager.reset();
  }
  // macOS reports Seatbelt's denials from the system log; Linux has no such log (see README).
  current ??= { key, ready: manager.initialize(baseConfig(port), undefined, process.platform === "darwin"), runs: 0, waiters: [] };
  const mine = current;
  try {
    await mine.ready;
  } catch (error) {
    if (current === mine) current = undefined;
    throw error;
  }
  mine.runs += 1;
  return () => {
    mine.runs -= 1;
    if (mine.runs === 0) for (const wake of mine.waiters.splice(0)) wake();
  };
}

function keyOf(port: number | undefined): string {
  return port === undefined ? "offline" : `proxy:${port}`;
}

/** Resets the manager when it is set up for `key` and no run uses it: its bridges and proxies end. */
async function releaseManager(key: string): Promise<void> {
  const mine = current;
  if (!mine || mine.key !== key || mine.runs > 0) return;
  current = undefined;
  await mine.ready.catch(() => undefined);
  const manager = await loadManager();
  await manager.reset();
}

/**
 * With a port, srt starts no proxy of its own and sends every connection there; without one, its
 * own proxy has no allowed host and no callback, so it refuses everything. Filesystem rules come
 * with each run.
 */
function baseConfig(port: number | undefined): SandboxRuntimeConfig {
  return {
    // On Linux srt scans the process's working directory (Nightshift's, not the command's) for files
    // to write-protect, on every command. Ours come with each run (`readOnly`): scan as little as it allows.
    mandatoryDenySearchDepth: 1,
    network: { allowedDomains: [], deniedDomains: [], ...(port !== undefined ? { httpProxyPort: port, socksProxyPort: port } : {}) },
    filesystem: { denyRead: [], allowWrite: [], denyWrite: [] },
  };
}

export function createSrtSandbox(options: SrtSandboxOptions): Sandbox {
  const env = scrubEnv(options.env, options.secretEnvPatterns);
  const hidden = existing(options.readOnlyHidden ?? []);
  const readOnly = existing(options.readOnly ?? []);
  const port = options.network?.proxy.tcpPort;
  let probed: Promise<SandboxProbe> | undefined;

  async function probeOnce(): Promise<SandboxProbe> {
    if (options.network && port === undefined) {
      return { ok: false, kind: KIND, problem: "the srt sandbox needs the network proxy to listen on TCP (startNetworkProxy with tcp: true)." };
    }
    let manager: Manager;
    try {
      manager = await loadManager();
    } catch (error) {
      return { ok: false, kind: KIND, problem: `@anthropic-ai/sandbox-runtime cannot be loaded: ${errorText(error)}; run \`npm install\` in Nightshift's folder.` };
    }
    if (!manager.isSupportedPlatform()) {
      return { ok: false, kind: KIND, problem: `sandbox-runtime does not support ${process.platform}; use sandbox.mode: bwrap on Linux.` };
    }
    const dependencies = await manager.checkDependenciesAsync().catch((error: unknown) => ({ errors: [errorText(error)], warnings: [] }));
    if (dependencies.errors.length > 0) return { ok: false, kind: KIND, problem: `sandbox-runtime is missing what it needs: ${dependencies.errors.join("; ")}${installHint()}` };
    // Without its seccomp helper srt only warns and runs with Unix sockets open (a session bus or
    // an ssh-agent would be reachable): below the promise, so refused.
    const seccomp = dependencies.warnings.find((warning) => /seccomp/i.test(warning));
    if (process.platform === "linux" && seccomp) return { ok: false, kind: KIND, problem: `sandbox-runtime would run without its seccomp filter (${seccomp}); reinstall @anthropic-ai/sandbox-runtime with \`npm ci\`, or use sandbox.mode: bwrap.` };
    // An empty folder of its own: srt makes placeholder files for what it write-protects in
    // Nightshift's working directory when that lies inside a writable one, as it would under /tmp.
    const cwd = realpathSync(mkdtempSync(join(tmpdir(), "nightshift-srt-probe-")));
    try {
      const result = await runWrapped(manager, "true", { cwd, timeoutMs: PROBE_TIMEOUT_MS, maxOutputBytes: 4096 });
      if (result.exitCode === 0) return { ok: true, kind: KIND };
      const detail = result.timedOut ? `timed out after ${PROBE_TIMEOUT_MS} ms` : oneLine(result.output) || `exit code ${result.exitCode}`;
      return { ok: false, kind: KIND, problem: `sandbox-runtime cannot run a command here: ${detail}${process.platform === "linux" ? "; enable unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04+)" : ""}.` };
    } catch (error) {
      return { ok: false, kind: KIND, problem: `sandbox-runtime cannot start: ${errorText(error)}` };
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  }

  const probe = (): Promise<SandboxProbe> => (probed ??= probeOnce());

  /** Wraps and runs one command; throws when the library cannot wrap it at all. */
  async function runWrapped(manager: Manager, command: string, runOptions: RunOptions): Promise<RunResult> {
    const conflict = unexpressible(runOptions, readOnly);
    if (conflict) throw new SandboxUnavailable(conflict);
    const release = await acquire(manager, port);
    // A private TMPDIR per run: srt's own (/tmp/claude) is shared by every command and outlives them.
    // Under Nightshift's own folder in /tmp (0700, beside its sockets), hidden from the run but for this one.
    const own = join(tmpdir(), `nightshift-${process.getuid?.() ?? "user"}`);
    mkdirSync(own, { recursive: true, mode: 0o700 });
    const scratch = realpathSync(mkdtempSync(join(own, "srt-")));
    const registration = options.network && runOptions.sessionKey !== undefined ? options.network.proxy.register(runOptions.sessionKey) : undefined;
    // 128 random bits, so a violation report is this run's alone.
    const commandId = randomBytes(16).toString("base64url");
    let wrappedOk = false;
    try {
      const wrapped = await manager.wrapWithSandbox(
        `${LIFELINE_GUARD}${shellPrefix(scratch, registration !== undefined)}${command}`,
        "bash",
        { filesystem: filesystemRules(runOptions, hidden, readOnly, scratch) },
        runOptions.signal,
        { commandId, commandText: command },
      );
      wrappedOk = true;
      const runEnv = registration ? { ...env, [AUTH_VARIABLE]: `nightshift:${registration.token}` } : env;
      const result = await spawnCaptured("bash", ["-c", wrapped], { env: runEnv, cwd: runOptions.cwd, timeoutMs: runOptions.timeoutMs, maxOutputBytes: runOptions.maxOutputBytes, signal: runOptions.signal, lifeline: true });
      const violations = manager.getSandboxViolationStore().getViolationsForCommand(commandId).map((violation) => violation.line);
      return violations.length > 0 ? { ...result, violations: violations.slice(0, MAX_VIOLATION_LINES) } : result;
    } finally {
      registration?.unregister();
      // Mount points are counted per wrap; a wrap that threw has released its own already.
      if (wrappedOk) manager.cleanupAfterCommand();
      rmSync(scratch, { recursive: true, force: true });
      release();
    }
  }

  return {
    kind: KIND,
    probe,
    async close() {
      await releaseManager(keyOf(port));
    },
    /**
     * A long-lived process (an MCP server) wrapped as `run` wraps a command, with pipes and the
     * caller's environment only; its scratch folder, mounts and proxy token live until it exits.
     */
    async spawn(file, args, spawnOptions) {
      const probeResult = await probe();
      if (!probeResult.ok) throw new SandboxUnavailable(probeResult.problem ?? "sandbox-runtime is not usable here.");
      const runLike = { cwd: spawnOptions.cwd, writable: spawnOptions.writable ?? [], timeoutMs: 0, maxOutputBytes: 0 };
      const conflict = unexpressible(runLike, readOnly);
      if (conflict) throw new SandboxUnavailable(conflict);
      const manager = await loadManager();
      const release = await acquire(manager, port);
      const own = join(tmpdir(), `nightshift-${process.getuid?.() ?? "user"}`);
      mkdirSync(own, { recursive: true, mode: 0o700 });
      const scratch = realpathSync(mkdtempSync(join(own, "srt-")));
      const registration = options.network && spawnOptions.sessionKey !== undefined ? options.network.proxy.register(spawnOptions.sessionKey) : undefined;
      let wrappedOk = false;
      const cleanup = () => {
        registration?.unregister();
        if (wrappedOk) manager.cleanupAfterCommand();
        rmSync(scratch, { recursive: true, force: true });
        release();
      };
      try {
        const command = `exec ${[file, ...args].map(quote).join(" ")}`;
        const wrapped = await manager.wrapWithSandbox(`${shellPrefix(scratch, registration !== undefined, false)}${command}`, "bash", { filesystem: filesystemRules(runLike, hidden, readOnly, scratch) }, undefined, { commandId: randomBytes(16).toString("base64url"), commandText: command });
        wrappedOk = true;
        const processEnv = { PATH: DEFAULT_PATH, ...spawnOptions.env, ...(registration ? { [AUTH_VARIABLE]: `nightshift:${registration.token}` } : {}) };
        const child = await spawnPiped("bash", ["-c", wrapped], { env: processEnv, cwd: spawnOptions.cwd });
        void child.exited.then(cleanup);
        return child;
      } catch (error) {
        cleanup();
        if (error instanceof SandboxUnavailable) throw error;
        throw new SandboxUnavailable(`sandbox-runtime could not start ${file}: ${errorText(error)}`, { cause: error });
      }
    },
    async run(command, runOptions) {
      if (runOptions.stage) throw new SandboxUnavailable("a staged copy needs the bwrap sandbox (sandbox.mode: bwrap or auto on Linux); sandbox-runtime cannot enter its namespace yet");
      const probeResult = await probe();
      if (!probeResult.ok) throw new SandboxUnavailable(probeResult.problem ?? "sandbox-runtime is not usable here.");
      if (runOptions.signal?.aborted) return { exitCode: null, output: "", droppedBytes: 0, timedOut: false, aborted: true, durationMs: 0 };
      const manager = await loadManager();
      try {
        return await runWrapped(manager, command, runOptions);
      } catch (error) {
        if (error instanceof SandboxUnavailable) throw error;
        if (runOptions.signal?.aborted) return { exitCode: null, output: "", droppedBytes: 0, timedOut: false, aborted: true, durationMs: 0 };
        throw new SandboxUnavailable(`sandbox-runtime could not run the command: ${errorText(error)}`, { cause: error });
      }
    },
  };
}

/**
 * srt's write rules: the workdir, the extra writable paths and the run's TMPDIR; then, winning over
 * those, the read-only and hidden paths inside them (`.git/hooks`, denied folders, NIGHTSHIFT_HOME) and the
 * places srt would make writable by itself. Every path is literal: no glob in a name is expanded.
 */
function filesystemRules(options: RunOptions, hidden: readonly string[], readOnly: readonly string[], scratch: string): NonNullable<SandboxRuntimeConfig["filesystem"]> {
  const bound = [options.cwd, ...(options.writable ?? [])];
  // Hidden paths inside a writable one are write-denied too: srt hides a folder under an empty
  // tmpfs, where a write would seem to succeed and vanish.
  const protectedInside = [...readOnly, ...hidden].filter((path) => bound.some((b) => inside(path, b)));
  const home = homedir();
  // On Linux only those that exist: srt skips a missing one, and denying a missing path inside a
  // writable one would make it create a placeholder there. Seatbelt's rules need no file, and a
  // missing folder would otherwise be created and filled by the first command.
  const defaults = ["/tmp/claude", "/private/tmp/claude", join(home, ".npm", "_logs"), join(home, ".claude", "debug")];
  const srtDefaults = process.platform === "darwin" ? defaults : existing(defaults);
  // A `.env` hidden for this run stays write-protected too: Seatbelt hides it from reads only.
  const hiddenInside = (options.hidden ?? []).filter((path) => bound.some((b) => inside(path, b)));
  // bwrap mounts empty folders over /tmp and /run; srt shows the host's. Hidden here instead: /run
  // (/run/secrets, service sockets) and Nightshift's folder in /tmp (other runs' scratch folders,
  // its sockets), but for this run's own scratch folder.
  const shared = process.platform === "linux" ? existing(["/run", "/var/run", dirname(scratch)]) : [dirname(scratch)];
  const literal = (path: string) => ({ path, literal: true as const });
  return {
    denyRead: [...hidden, ...(options.hidden ?? []), ...shared].map(literal),
    allowRead: shared.length > 0 ? [literal(scratch)] : [],
    allowWrite: [...bound, scratch].map(literal),
    denyWrite: [...protectedInside, ...hiddenInside, ...(options.readOnly ?? []), ...srtDefaults].map(literal),
  };
}

/**
 * A read-only path inside the workdir that itself holds a writable one (NIGHTSHIFT_HOME and its
 * workspace/, with the workdir above both) cannot be said to srt: its write denies win over any
 * allow beneath them. bwrap binds the inner path back; here the run is refused rather than run
 * with the read-only path writable.
 */
function unexpressible(options: RunOptions, readOnly: readonly string[]): string | undefined {
  const bound = [options.cwd, ...(options.writable ?? [])];
  for (const path of readOnly) {
    if (!bound.some((b) => inside(path, b))) continue;
    const writableInside = bound.find((b) => inside(b, path) || b === path);
    if (writableInside) {
      return `the srt sandbox cannot keep ${path} read-only while ${writableInside} inside it stays writable; use a workdir that does not contain ${path}, or sandbox.mode: bwrap (Linux).`;
    }
  }
  return undefined;
}

/**
 * Runs before the command, on the same line (bash's line numbers still match it): the run's own
 * TMPDIR, and either our proxy with the run's token in every URL srt set, or no proxy at all. NO_PROXY
 * is narrowed to loopback as under bwrap, so private addresses go to the proxy and its decision.
 */
function shellPrefix(scratch: string, network: boolean, mergeStderr = true): string {
  const proxies = PROXY_VARIABLES.join(" ");
  const auth = network
    ? `for __ns_v in ${proxies}; do [[ \${!__ns_v} == http://* ]] && export "$__ns_v=http://\${${AUTH_VARIABLE}}@\${!__ns_v#http://}"; done; export npm_config_proxy=$HTTP_PROXY npm_config_https_proxy=$HTTPS_PROXY NODE_USE_ENV_PROXY=1; ` +
      // srt's relay inside the sandbox starts beside the command; on a loaded machine it may not listen yet. Wait up to 1 s.
      `__ns_p=\${HTTP_PROXY##*:}; __ns_p=\${__ns_p%%/*}; for __ns_i in {1..50}; do (: <>/dev/tcp/127.0.0.1/$__ns_p) 2>/dev/null && break; sleep 0.02; done; unset __ns_p __ns_i; `
    : `unset ${proxies}; `;
  return `${mergeStderr ? "exec 2>&1; " : ""}export TMPDIR=${quote(scratch)} NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1; ${auth}unset ${AUTH_VARIABLE} __ns_v ${OTHER_PROXY_VARIABLES.join(" ")}; `;
}

/** Real paths of the ones that exist: a path created later is not covered until the next sandbox. */
function existing(paths: readonly string[]): string[] {
  const found: string[] = [];
  for (const path of paths) {
    try {
      const real = realpathSync(path);
      statSync(real);
      found.push(real);
    } catch {
      // Missing (or unreadable) paths have nothing to hide.
    }
  }
  return found;
}

function inside(path: string, parent: string): boolean {
  return path.startsWith(parent.endsWith("/") ? parent : `${parent}/`);
}

function quote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

function installHint(): string {
  return process.platform === "darwin"
    ? " (install ripgrep: `brew install ripgrep`)."
    : " (install them: `sudo apt-get install bubblewrap socat ripgrep` on Debian/Ubuntu).";
}

function oneLine(text: string): string {
  return text.trim().replace(/\s+/g, " ").slice(0, 300);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
