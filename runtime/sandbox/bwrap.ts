/**
 * Sandboxes on Linux: `bash -c` inside bubblewrap (read-only root, writable cwd, fresh namespaces,
 * no network unless a filtering proxy is given), and the unsandboxed fallback for `sandbox: off`.
 * Both share spawnCaptured, so time limit, output cap, abort and environment scrubbing behave the same.
 */

import { existsSync, realpathSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { SandboxUnavailable } from "../errors.ts";
import type { NetworkProxy } from "./proxy.ts";
import type { RunOptions, RunResult, Sandbox, SandboxProbe } from "./sandbox.ts";
import { bashArgs, DEFAULT_PATH, scrubEnv, spawnCaptured, spawnPiped } from "./spawn.ts";

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
  /**
   * Network through the filtering proxy, for runs that carry a sessionKey. Without it (or without a
   * sessionKey) a command has no network at all: only a private loopback. Needs `socat`.
   */
  network?: { proxy: NetworkProxy };
}

export interface UnsandboxedOptions {
  env: Record<string, string | undefined>;
  secretEnvPatterns?: string[];
}

const PROBE_TIMEOUT_MS = 10_000;
const INSTALL_HINT =
  "run `sudo apt-get install bubblewrap` (Debian/Ubuntu) or `sudo dnf install bubblewrap` (Fedora)";
const SOCAT_HINT =
  "socat is not installed, and the sandbox needs it to give commands network through the proxy: " +
  "run `sudo apt-get install socat` (Debian/Ubuntu) or `sudo dnf install socat` (Fedora).";

/** Where the proxy's Unix socket appears inside the sandbox, on the sandbox's own tmpfs `/run`. */
const SANDBOX_PROXY_SOCKET = "/run/nightshift/proxy.sock";
/** socat's errors, read back when the relay fails to start. */
const SANDBOX_RELAY_LOG = "/run/nightshift/relay.log";
/** The in-sandbox TCP port the relay listens on (0x0C38 in /proc/net/tcp). */
const SANDBOX_PROXY_PORT = 3128;

interface HiddenPath {
  path: string;
  isDirectory: boolean;
}

/** The folder holding Nightshift's node_modules (the checkout, or the installed package). */
const PROGRAM_ROOT = ((): string | undefined => {
  for (let dir = realpathSync(import.meta.dirname); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "node_modules"))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
})();

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
    // Nightshift itself installed under /tmp (a fresh clone, say): its programs (Node, MCP servers
    // from node_modules) stay visible, read-only; nothing of it is secret.
    ...(PROGRAM_ROOT && PROGRAM_ROOT.startsWith("/tmp/") ? ["--ro-bind", PROGRAM_ROOT, PROGRAM_ROOT] : []),
    "--tmpfs", "/run", // host sockets (D-Bus, docker, agents) live here: a socket ignores read-only mounts
    "--unshare-all", // includes the network: only a private loopback exists inside
    "--die-with-parent",
    "--new-session",
    "--clearenv",
  ];
  const envArgs = (variables: Record<string, string>) => Object.entries(variables).flatMap(([name, value]) => ["--setenv", name, value]);
  // Root inside the sandbox keeps its capabilities (and could remount /) unless they are dropped.
  const capDropArgs = ["--cap-drop", "ALL"];
  let dropCaps = true;
  /** Everything before the per-run mounts, for a process with this environment. */
  const staticArgsFor = (variables: Record<string, string>) => [...namespaceArgs, ...envArgs(variables), ...(dropCaps ? capDropArgs : [])];
  let staticArgs = staticArgsFor(env);
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
    if (result.exitCode === 0) return probeNetwork();
    // A setuid bwrap refuses --cap-drop from non-root users, who hold no capabilities anyway.
    if (process.getuid?.() !== 0) {
      const withoutCapDrop = await attempt([...namespaceArgs, ...envArgs(env)]).catch(() => undefined);
      if (withoutCapDrop?.exitCode === 0) {
        dropCaps = false;
        staticArgs = staticArgsFor(env);
        return probeNetwork();
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

  /** With a proxy configured, the relay must exist inside the sandbox too (same root, read-only). */
  async function probeNetwork(): Promise<SandboxProbe> {
    if (!options.network) return { ok: true, kind: "bwrap" };
    const args = [...staticArgs, "--chdir", "/", "--", "bash", "-c", "command -v socat"];
    const found = await spawnCaptured(bwrapPath, args, { env, cwd: "/", timeoutMs: PROBE_TIMEOUT_MS, maxOutputBytes: 4096 }).catch(() => undefined);
    return found?.exitCode === 0 ? { ok: true, kind: "bwrap" } : { ok: false, kind: "bwrap", problem: SOCAT_HINT };
  }

  const probe = (): Promise<SandboxProbe> => (probed ??= probeOnce());

  return {
    kind: "bwrap",
    probe,
    async run(command, runOptions) {
      const probeResult = await probe();
      if (!probeResult.ok) throw new SandboxUnavailable(probeResult.problem ?? "bubblewrap is not usable here.");
      // A token per run: the proxy tells runs apart by it, and it dies with the run.
      const registration = options.network && runOptions.sessionKey !== undefined ? options.network.proxy.register(runOptions.sessionKey) : undefined;
      const network = registration && options.network ? networkArgs(options.network.proxy.socketPath, registration.token) : [];
      const script = registration ? `${RELAY_PREFIX}${command}` : command;
      const args = [...staticArgs, ...mountArgs(runOptions, hidden, readOnly), ...network, "--chdir", runOptions.cwd, "--", "bash", ...bashArgs(script)];
      // A staged copy: bwrap starts inside the holder's namespace, where the overlay is mounted.
      const [file, argv] = runOptions.stage ? ["nsenter", ["--target", String(runOptions.stage.pid), "--user", "--mount", "--preserve-credentials", bwrapPath, ...args]] : [bwrapPath, args];
      try {
        return await spawnCaptured(file, argv, { ...captureLimits(runOptions), env, cwd: "/", lifeline: true });
      } catch (error) {
        throw new SandboxUnavailable(notStartedProblem(bwrapPath, error), { cause: error });
      } finally {
        registration?.unregister();
      }
    },
    async spawn(file, args, spawnOptions) {
      const probeResult = await probe();
      if (!probeResult.ok) throw new SandboxUnavailable(probeResult.problem ?? "bubblewrap is not usable here.");
      const registration = options.network && spawnOptions.sessionKey !== undefined ? options.network.proxy.register(spawnOptions.sessionKey) : undefined;
      const network = registration && options.network ? networkArgs(options.network.proxy.socketPath, registration.token) : [];
      // With network the relay starts first (its messages on stderr: stdout belongs to the process), then bash becomes the process.
      const command = registration ? ["bash", "-c", `{ ${RELAY_PREFIX}} >&2; exec "$@"`, "bash", file, ...args] : [file, ...args];
      const mounts = mountArgs({ cwd: spawnOptions.cwd, writable: spawnOptions.writable ?? [] }, hidden, readOnly);
      const argv = [...staticArgsFor({ PATH: DEFAULT_PATH, ...spawnOptions.env }), ...mounts, ...network, "--chdir", spawnOptions.cwd, "--", ...command];
      try {
        const child = await spawnPiped(bwrapPath, argv, { env, cwd: "/" });
        void child.exited.then(() => registration?.unregister());
        return child;
      } catch (error) {
        registration?.unregister();
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
      if (runOptions.stage) throw new SandboxUnavailable("a staged copy needs the bwrap sandbox (sandbox.mode: bwrap or auto on Linux); with the sandbox off a command would write the original folder");
      try {
        return await spawnCaptured("bash", bashArgs(command), { ...captureLimits(runOptions), env, cwd: runOptions.cwd, lifeline: true });
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
function mountArgs(options: Pick<RunOptions, "cwd" | "writable" | "hidden" | "readOnly" | "pinned" | "stage">, hidden: readonly HiddenPath[], readOnly: readonly string[]): string[] {
  const bound = [options.cwd, ...(options.writable ?? [])];
  // In a staged copy, what lies in the folder is taken from the overlay, never from the original.
  const stage = options.stage;
  const source = (path: string) => (stage && (path === stage.original || path.startsWith(`${stage.original}/`)) ? stage.merged + path.slice(stage.original.length) : path);
  const inside = (path: string, parent: string) => path.startsWith(parent.endsWith("/") ? parent : `${parent}/`);
  // A read-only path inside a writable one is bound read-only on top; writable paths inside it again on top of that.
  const protectedInside = readOnly.filter((path) => bound.some((b) => inside(path, b)));
  const rebound = bound.filter((b) => protectedInside.some((path) => b === path || inside(b, path)));
  const before: string[] = [];
  const after: string[] = [];
  for (const path of options.hidden ?? []) after.push("--ro-bind", "/dev/null", path);
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
    ...bound.flatMap((path) => ["--bind", source(path), path]),
    // A mount point cannot be renamed or removed; read-only paths inside are bound on top of it.
    ...(options.pinned ?? []).flatMap((path) => ["--bind", source(path), path]),
    ...protectedInside.flatMap((path) => ["--ro-bind", source(path), path]),
    ...rebound.flatMap((path) => ["--bind", source(path), path]),
    ...(options.readOnly ?? []).flatMap((path) => ["--ro-bind", source(path), path]),
    ...after,
  ];
}

/**
 * The proxy socket bound in (after `--tmpfs /run`, so on top of it) and the variables clients read.
 * The sandbox keeps its own network namespace: the only way out is the relay to this socket.
 *
 * NO_PROXY covers loopback on purpose. Inside the sandbox, loopback is the sandbox's own: a server
 * the command starts itself (`npm run dev & curl localhost:3000`) is reachable directly. Through the
 * proxy, "localhost" would mean the host's loopback, where Nightshift's own services and databases
 * listen; excluding it here means a loopback URL never even reaches the decision.
 */
function networkArgs(socketPath: string, token: string): string[] {
  const url = `http://nightshift:${token}@127.0.0.1:${SANDBOX_PROXY_PORT}`;
  const variables: Record<string, string> = {
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    http_proxy: url,
    https_proxy: url,
    NO_PROXY: "localhost,127.0.0.1,::1",
    no_proxy: "localhost,127.0.0.1,::1",
    // Node ≥ 24 ignores the variables above in fetch and http unless told otherwise.
    NODE_USE_ENV_PROXY: "1",
    // npm, pip, git, curl, wget, Go, Python requests, Deno and Bun read the variables above already;
    // npm is named too because a user's .npmrc proxy setting would otherwise win.
    npm_config_proxy: url,
    npm_config_https_proxy: url,
  };
  return [
    "--ro-bind", socketPath, SANDBOX_PROXY_SOCKET, // connect() ignores read-only mounts; nothing can be written there
    ...Object.entries(variables).flatMap(([name, value]) => ["--setenv", name, value]),
  ];
}

/**
 * Runs before the user's command, on the same line (so bash's line numbers still match it). Starts
 * the relay from 127.0.0.1:3128 to the proxy socket in a subshell, so socat is not a job of the
 * command's shell (a bare `wait` would hang on it) and is reparented to bwrap's init: it dies with
 * the pid namespace when the command ends. Then waits for the listening socket by reading
 * /proc/net/tcp with builtins only (no connection, no subprocess), pausing 0.5 ms between looks
 * (a timed read on a fresh pty that never speaks) so the loop does not starve socat of CPU. socat
 * needs 10-20 ms to load its libraries and listen: the bulk of what the network adds per command.
 * socat writes only errors by default, so anything in its log before it listens is a failure (a
 * missing socat fails at once); exit code 125 and the log tell the model the command never ran.
 * `-t 30` keeps a half-closed connection open for the answer instead of socat's default 0.5 s;
 * `backlog=128` lets a client open many connections at once (socat's default backlog is 5).
 */
const RELAY_PREFIX = [
  `(exec socat -t 30 TCP-LISTEN:${SANDBOX_PROXY_PORT},bind=127.0.0.1,reuseaddr,backlog=128,fork UNIX-CONNECT:${SANDBOX_PROXY_SOCKET} </dev/null >/dev/null 2>${SANDBOX_RELAY_LOG} &)`,
  "__ns_deadline=$(( ${EPOCHREALTIME//[!0-9]/} + 2000000 ))",
  `until { __ns_up=; while read -r _ __ns_local _ __ns_state _; do [[ $__ns_local == 0100007F:${SANDBOX_PROXY_PORT.toString(16).toUpperCase().padStart(4, "0")} && $__ns_state == 0A ]] && { __ns_up=1; break; }; done </proc/net/tcp; [[ -n $__ns_up ]]; }`,
  `do [[ ! -s ${SANDBOX_RELAY_LOG} ]] && (( \${EPOCHREALTIME//[!0-9]/} < __ns_deadline )) || { echo "nightshift: the sandbox's network relay did not start: $(<${SANDBOX_RELAY_LOG})"; exit 125; }; read -t 0.0005 <>/dev/ptmx 2>/dev/null; done`,
  "unset __ns_deadline __ns_up __ns_local __ns_state",
  "",
].join("; ");

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
