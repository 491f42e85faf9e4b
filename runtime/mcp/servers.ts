/**
 * Starting the MCP servers of config.yaml and listing their tools. A stdio server runs inside the
 * sandbox: an environment that starts empty (its `env`, the variables `env_from` names, PATH and a
 * HOME in its own folder), Nightshift's state and keys hidden as for commands, writes only to
 * NIGHTSHIFT_HOME/mcp/<name>/ and its `write` paths, network only through the proxy to the hosts
 * in its `network` list. Without a working sandbox it is not started at all.
 */

import { existsSync, mkdirSync, realpathSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport, type CallToolResult, type Tool, type Transport } from "@modelcontextprotocol/client";
import type { McpServerConfig } from "../config.ts";
import { ConfigError, McpServerFailed, SandboxUnavailable } from "../errors.ts";
import { expandHome } from "../home.ts";
import { matchesDomain } from "../policy/patterns.ts";
import type { NetworkDecision, NetworkRequest } from "../sandbox/proxy.ts";
import type { Sandbox } from "../sandbox/sandbox.ts";
import { blockedAddressReason, reachesThisMachine } from "../tools/web-fetch.ts";
import type { PermissionChecker } from "../tools/tool.ts";
import { guardedFetch, PrivateAddressRefused } from "./guarded-fetch.ts";
import { toolHash } from "./pins.ts";
import { SandboxedStdioTransport } from "./transport.ts";

export interface McpDeps {
  /** NIGHTSHIFT_HOME; servers get their folders under mcp/. */
  home: string;
  /** process.env merged with NIGHTSHIFT_HOME/.env: where `env_from` and `auth_env` are looked up. */
  env: Record<string, string | undefined>;
  /** Must offer `spawn` (bwrap); a sandbox without it refuses stdio servers. */
  sandbox: Sandbox;
  /** Milliseconds to wait for a server's answers (initialize, tools/list). */
  timeoutMs?: number;
}

export interface ConnectedServer {
  name: string;
  /** The server's tools after the config's include and exclude. */
  tools: Tool[];
  /**
   * Calls a tool; the result as the server sent it (not yet wrapped as untrusted content). While
   * it runs, `permissions` answers for the server's connections to hosts off its list.
   */
  call(tool: string, args: Record<string, unknown>, signal?: AbortSignal, permissions?: PermissionChecker): Promise<CallToolResult>;
  /** The calls running now that passed a permission checker; `ended` aborts when each returns. */
  callers(): readonly { permissions: PermissionChecker; ended: AbortSignal }[];
  /** What the server wrote on stderr lately (stdio servers only). */
  stderr(): string;
  close(): Promise<void>;
}

const CLIENT_INFO = { name: "nightshift", version: "0.1.0" };
const DEFAULT_TIMEOUT_MS = 30_000;

/** The proxy's session key for a server's network; the decision callback maps it back with serverOfKey. */
export const networkKey = (name: string): string => `mcp:${name}`;

/** Restarts of a server that died, within this window, before it is given up until the runtime restarts. */
const RESTART_WINDOW_MS = 60_000;
const MAX_RESTARTS = 3;

/**
 * Connects to one configured server and lists its tools. Throws ConfigError or SandboxUnavailable
 * with the fix. A stdio server that dies is started again for the next call (a call it died
 * during fails: its effect is unknown), at most three times a minute; a tool whose definition
 * differs after a restart is refused, as a changed pin would be.
 */
export async function connectServer(name: string, server: McpServerConfig, deps: McpDeps): Promise<ConnectedServer> {
  let current = await openConnection(name, server, deps);
  const listed = new Map(current.tools.map((tool) => [tool.name, toolHash(tool)]));
  const restarts: number[] = [];
  const callers = new Set<{ permissions: PermissionChecker; ended: AbortSignal }>();
  const live = async (): Promise<Connection> => {
    if (!current.dead) return current;
    const now = Date.now();
    while (restarts.length && now - restarts[0]! > RESTART_WINDOW_MS) restarts.shift();
    if (restarts.length >= MAX_RESTARTS) throw new McpServerFailed(name, `MCP server \`${name}\` stopped ${MAX_RESTARTS + 1} times within a minute, so it is not started again until Nightshift restarts${saidBy(current)}; see \`nightshift mcp list ${name}\``);
    restarts.push(now);
    current = await openConnection(name, server, deps);
    return current;
  };
  return {
    name,
    tools: filterTools(current.tools, server.tools),
    callers: () => [...callers],
    async call(tool, args, signal, permissions) {
      const connection = await live();
      const now = connection.tools.find((entry) => entry.name === tool);
      if (!now || toolHash(now) !== listed.get(tool)) throw new McpServerFailed(name, `MCP server \`${name}\` came back after a restart with ${now ? "a different definition of" : "no"} tool ${tool}; it is withheld until approved: \`nightshift mcp list ${name}\``);
      const running = new AbortController();
      const caller = permissions ? { permissions, ended: running.signal } : undefined;
      if (caller) callers.add(caller);
      try {
        return (await connection.client.callTool({ name: tool, arguments: args }, { timeout: connection.timeout, ...(signal ? { signal } : {}) })) as CallToolResult;
      } catch (error) {
        if (connection.dead) throw new McpServerFailed(name, `MCP server \`${name}\` stopped during the call${saidBy(connection)}, so whether it did anything is unknown; it is started again for the next call`, { cause: error });
        throw error;
      } finally {
        if (caller) callers.delete(caller);
        running.abort(); // connections allowed for this call are cut
      }
    },
    stderr: () => current.stdio?.stderr() ?? "",
    close: () => current.client.close().catch(() => {}),
  };
}

interface Connection {
  client: Client;
  stdio: SandboxedStdioTransport | undefined;
  tools: Tool[];
  timeout: number;
  /** The process exited or the transport closed. */
  dead: boolean;
}

const saidBy = (connection: Connection) => {
  const said = connection.stdio?.stderr().trim().split("\n").slice(-3).join(" | ");
  return said ? ` (its stderr: ${said})` : "";
};

/** One start of a server: the transport, the MCP handshake and the tool list. */
async function openConnection(name: string, server: McpServerConfig, deps: McpDeps): Promise<Connection> {
  const stdio = server.command !== undefined ? await startStdio(name, server, deps) : undefined;
  const transport: Transport = stdio ?? remoteTransport(name, server, deps.env);
  const client = new Client(CLIENT_INFO);
  const connection: Connection = { client, stdio, tools: [], timeout: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS, dead: false };
  try {
    await client.connect(transport, { timeout: connection.timeout });
    client.onclose = () => {
      connection.dead = true;
    };
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor === undefined ? undefined : { cursor }, { timeout: connection.timeout });
      connection.tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor);
    return connection;
  } catch (error) {
    await client.close().catch(() => {});
    const refused = error instanceof PrivateAddressRefused ? error : (error as Error).cause instanceof PrivateAddressRefused ? ((error as Error).cause as PrivateAddressRefused) : undefined;
    if (refused) throw new McpServerFailed(name, `MCP server \`${name}\` was not contacted: ${refused.message}`, { cause: error });
    throw new McpServerFailed(name, `MCP server \`${name}\` did not answer: ${(error as Error).message}${saidBy(connection)}`, { cause: error });
  }
}

async function startStdio(name: string, server: McpServerConfig, deps: McpDeps): Promise<SandboxedStdioTransport> {
  const field = `mcp.servers.${name}`;
  if (!deps.sandbox.spawn) {
    throw new SandboxUnavailable(`MCP server \`${name}\` is not started: stdio servers run only inside the sandbox, and ${deps.sandbox.kind === "unsandboxed" ? "sandbox.mode is off" : `the ${deps.sandbox.kind} sandbox cannot start them`}; set sandbox.mode: auto, or remove ${field}.`);
  }
  const probe = await deps.sandbox.probe();
  if (!probe.ok) throw new SandboxUnavailable(`MCP server \`${name}\` is not started: stdio servers run only inside the sandbox, and it does not work here: ${probe.problem ?? "unknown problem"}`);
  const folder = join(deps.home, "mcp", name);
  mkdirSync(folder, { recursive: true });
  const writable = (server.write ?? []).map((path) => {
    const expanded = expandHome(path, deps.env);
    if (!existsSync(expanded)) throw new ConfigError(`${field}.write`, `${field}.write: ${path} does not exist; create it or remove it from the list.`);
    return realpathSync(expanded);
  });
  const env: Record<string, string> = { HOME: realpathSync(folder), ...(deps.env.PATH ? { PATH: deps.env.PATH } : {}), ...server.env };
  for (const variable of server.env_from ?? []) {
    const value = deps.env[variable];
    if (value === undefined) throw new ConfigError(`${field}.env_from`, `${field}.env_from names ${variable}, which is not set: set it in your shell or in ${join(deps.home, ".env")} (${variable}=…).`);
    env[variable] = value;
  }
  const networked = (server.network ?? []).length > 0;
  const child = await deps.sandbox.spawn(server.command!, server.args ?? [], { cwd: realpathSync(folder), writable, env, ...(networked ? { sessionKey: networkKey(name) } : {}) });
  return new SandboxedStdioTransport(child);
}

function remoteTransport(name: string, server: McpServerConfig, env: Record<string, string | undefined>): Transport {
  const headers: Record<string, string> = {};
  if (server.auth_env) {
    const value = env[server.auth_env];
    if (!value) throw new ConfigError(`mcp.servers.${name}.auth_env`, `mcp.servers.${name}.auth_env names ${server.auth_env}, which is not set: set it in your shell or in NIGHTSHIFT_HOME/.env.`);
    headers.Authorization = `Bearer ${value}`;
  }
  const fetch = guardedFetch({ field: `mcp.servers.${name}`, allowPrivate: server.allow_private_network === true });
  return new StreamableHTTPClientTransport(new URL(server.url!), { requestInit: { headers }, fetch });
}

/** include first (only those), then exclude; names the server does not have are ignored. */
export function filterTools(tools: Tool[], filter: { include?: string[] | undefined; exclude?: string[] | undefined }): Tool[] {
  return tools.filter((tool) => (!filter.include || filter.include.includes(tool.name)) && !filter.exclude?.includes(tool.name));
}

export interface ServerNetworkOptions {
  /** Asks about a host off the server's list, through the task whose call is running; undefined when no call can ask. */
  ask?(server: string, host: string): Promise<NetworkDecision | undefined>;
  /** `sandbox.allow_private_network`: loopback and private addresses are let through (never link-local). */
  allowPrivate?: boolean;
  /** `dashboard.port`: never reached on this machine. */
  dashboardPort?: number;
  onBlocked?(server: string, host: string, reason: string): void;
}

/**
 * The proxy's decision for servers' network: a host on the server's `network` list is allowed;
 * another is asked about through the task whose call is running (the policy, then a human), and
 * refused when no call is running. Either way a host that resolves to a private or loopback
 * address is refused (the proxy connects from this machine) unless sandbox.allow_private_network
 * is on, and link-local addresses and the dashboard's port always are; the proxy then connects to
 * the address checked.
 */
export function serverNetworkDecider(servers: Record<string, McpServerConfig>, options: ServerNetworkOptions = {}): (request: NetworkRequest) => Promise<NetworkDecision> {
  return async (request) => {
    const name = request.sessionKey.startsWith("mcp:") ? request.sessionKey.slice(4) : undefined;
    const hosts = name === undefined ? undefined : servers[name]?.network;
    const refuse = (reason: string): NetworkDecision => {
      options.onBlocked?.(name ?? "?", request.host, reason);
      return { allow: false, reason };
    };
    if (!hosts || name === undefined) return refuse("not an MCP server's connection");
    let until: AbortSignal | undefined;
    // The policy first, as for web_fetch: a name off the list is not even looked up unless allowed.
    if (!hosts.some((pattern) => matchesDomain(request.host, pattern))) {
      const asked = await options.ask?.(name, request.host);
      if (!asked) return refuse(`${request.host} is not in mcp.servers.${name}.network, and no call of this server is running to ask about it`);
      if (!asked.allow) return refuse(asked.reason);
      until = asked.until;
    }
    const addresses = await lookup(request.host, { all: true }).catch(() => []);
    if (addresses.length === 0) return refuse(`${request.host} does not resolve`);
    if (request.port === options.dashboardPort && addresses.some(({ address }) => reachesThisMachine(address))) return refuse(`port ${request.port} on this machine is Nightshift's dashboard; servers never reach it`);
    const reasons = addresses.map(({ address }) => [address, blockedAddressReason(address)] as const);
    const blocked = reasons.find(([, reason]) => reason && (!options.allowPrivate || /link-local/.test(reason)));
    if (blocked) return refuse(`${request.host} resolves to ${blocked[0]} (${blocked[1]}); servers never reach this machine's or its network's private addresses${/link-local/.test(blocked[1]!) ? "" : " unless sandbox.allow_private_network is on"}`);
    return { allow: true, reason: "", address: addresses[0]!.address, ...(until ? { until } : {}) };
  };
}
