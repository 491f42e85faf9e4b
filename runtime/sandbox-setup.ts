import { randomBytes, randomUUID } from "node:crypto";
import { realpathSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expandHome, sandboxBackend, type LoadedConfig } from "./config.ts";
import { PermissionDenied } from "./errors.ts";
import { createBwrapSandbox, createSrtSandbox, createUnsandboxed, type NetworkDecision, type NetworkProxy, type NetworkRequest, type Sandbox } from "./sandbox/index.ts";
import {
  createBashTool,
  createEditFileTool,
  createListFilesTool,
  createReadFileTool,
  createSearchFilesTool,
  createWebFetchTool,
  createWriteFileTool,
  type BashToolOptions,
  type NetworkRegistry,
  type Tool,
  type ToolContext,
} from "./tools/index.ts";
import type { PathRules } from "./tools/paths.ts";
import { blockedAddressReason, reachesThisMachine } from "./tools/web-fetch.ts";

/**
 * What the runtime runs commands and tools in: the sandbox config asks for, the paths it hides or
 * keeps read-only, the built-in tools, and the network registry the sandbox's proxy asks before a
 * command reaches a host (runtime/runtime.ts wires them into sessions).
 */

/**
 * Runs that may use the network, by the key their sandbox gives the proxy. Before the policy is
 * asked, a host that resolves to a loopback, private or link-local address is refused: the proxy
 * connects from the host, where such addresses reach this machine's own services and the cloud
 * metadata endpoint; the proxy then connects to the address checked. `allowPrivate` lets loopback and private addresses through,
 * never link-local ones (cloud metadata). The dashboard's port on this machine is refused even with
 * `allowPrivate`: a command must not reach the page that answers its approvals.
 */
export function createNetworkRegistry(options: { allowPrivate: boolean; dashboardPort: number }) {
  const checks = new Map<string, { check: (host: string) => Promise<NetworkDecision>; blocked: (host: string, reason: string) => void }>();
  const registry: NetworkRegistry = {
    register(check, blocked) {
      const key = randomUUID();
      checks.set(key, { check, blocked });
      return { key, release: () => checks.delete(key) };
    },
  };
  const refuse = (entry: { blocked: (host: string, reason: string) => void }, host: string, reason: string): NetworkDecision => {
    entry.blocked(host, reason);
    return { allow: false, reason };
  };
  const decide = async (request: NetworkRequest): Promise<NetworkDecision> => {
    const entry = checks.get(request.sessionKey);
    if (!entry) return { allow: false, reason: "the command that asked has ended" };
    if (!/^[a-z0-9.-]+$|^\[?[0-9a-f:.]+\]?$/i.test(request.host)) return refuse(entry, request.host, `"${request.host}" is not a host name`);
    const addresses = await lookup(request.host, { all: true }).catch(() => []);
    if (addresses.length === 0) return refuse(entry, request.host, `${request.host} does not resolve`);
    if (request.port === options.dashboardPort && addresses.some(({ address }) => reachesThisMachine(address))) {
      return refuse(entry, request.host, `port ${request.port} on this machine is Nightshift's dashboard (dashboard.port); commands never reach it, whatever sandbox.allow_private_network says`);
    }
    const reasons = addresses.map(({ address }) => [address, blockedAddressReason(address)] as const);
    // Link-local stays out even with allowPrivate: cloud metadata services answer there.
    const linkLocal = reasons.find(([, reason]) => reason && /link-local/.test(reason));
    if (linkLocal) return refuse(entry, request.host, `${request.host} resolves to ${linkLocal[0]} (${linkLocal[1]}); commands never reach link-local addresses, whatever sandbox.allow_private_network says`);
    const blocked = options.allowPrivate ? undefined : reasons.find(([, reason]) => reason);
    if (blocked) return refuse(entry, request.host, `${request.host} resolves to ${blocked[0]} (${blocked[1]}); commands never reach this machine's or its network's private addresses unless sandbox.allow_private_network is on`);
    // Connected to what was checked: a name that resolves elsewhere a moment later (DNS rebinding) gets nowhere new.
    const decision = await entry.check(request.host);
    return decision.allow ? { ...decision, address: addresses[0]!.address } : decision;
  };
  return { registry, decide };
}

/** Short enough for a Unix socket path (about 100 bytes), private to this user and process. */
export function proxySocketPath(): string {
  return join(tmpdir(), `nightshift-${process.getuid?.() ?? "user"}`, `proxy-${process.pid}-${randomBytes(3).toString("hex")}.sock`);
}

/** The built-in tools, in the order the model sees them. */
export function createTools(sandbox: Sandbox, bash: BashToolOptions, web: { allowPrivateAddresses?: boolean } = {}): Tool[] {
  return [
    createReadFileTool(),
    createWriteFileTool(),
    createEditFileTool(),
    createListFilesTool(),
    createSearchFilesTool(sandbox),
    createBashTool(sandbox, bash),
    createWebFetchTool({ checkHost: checkNetwork, ...web }),
  ];
}

/** The domain policy and approvals, as web_fetch (and the sandbox's proxy) ask them. */
async function checkNetwork(host: string, context: Pick<ToolContext, "permissions">): Promise<{ allow: boolean; reason: string }> {
  try {
    await context.permissions.check([{ kind: "network", host }]);
    return { allow: true, reason: "allowed" };
  } catch (error) {
    if (error instanceof PermissionDenied) return { allow: false, reason: error.message };
    throw error;
  }
}

/**
 * The sandbox config asks for. State, sessions, logs and .env are always hidden from commands, the
 * rest of NIGHTSHIFT_HOME is read-only (but workspace/), and commands inherit only the process
 * environment, scrubbed, without any role's key variable.
 */
export function createSandbox(loaded: LoadedConfig, proxy?: NetworkProxy): Sandbox {
  const { config } = loaded;
  const roleKeys = new Set(Object.values(loaded.roles).map((role) => role.apiKeyEnv));
  const env = Object.fromEntries(Object.entries(loaded.processEnv).filter(([name]) => !roleKeys.has(name)));
  const patterns = config.sandbox.secret_env_patterns;
  const backend = sandboxBackend(config.sandbox.mode);
  if (backend === "off") return createUnsandboxed({ env, secretEnvPatterns: patterns });
  const rules = pathRules(loaded);
  if (backend === "srt") {
    return createSrtSandbox({ env, readOnlyHidden: rules.hidden.filter((path) => !rules.toolsHidden?.includes(path)), readOnly: [...rules.readOnly], secretEnvPatterns: patterns, ...(proxy ? { network: { proxy } } : {}) });
  }
  return createBwrapSandbox({ env, readOnlyHidden: rules.hidden.filter((path) => !rules.toolsHidden?.includes(path)), readOnly: [...rules.readOnly], secretEnvPatterns: patterns, ...(proxy ? { network: { proxy } } : {}) });
}

/** Paths tasks may not read (secrets, Nightshift's state) or write (Nightshift's settings), as real paths. */
export function pathRules(loaded: LoadedConfig): PathRules {
  const { config, env, home } = loaded;
  const hidden = [...config.sandbox.hide.map((path) => expandHome(path, env)), "/var/run/docker.sock", ...["state", "sessions", "logs", ".env"].map((name) => join(home, name))];
  // File tools run in Nightshift's own process: its /proc would show its environment (the keys).
  const toolsOnly = ["/proc", "/sys"];
  return { hidden: hidden.map(realOrResolved), toolsHidden: toolsOnly, readOnly: [realOrResolved(home)], writable: [realOrResolved(join(home, "workspace"))] };
}

export function realOrResolved(path: string): string {
  try {
    return realpathSync.native(path); // as stored on disk, like the file tools resolve paths (case on macOS)
  } catch {
    return resolve(path);
  }
}

