/**
 * What a process needs to start the configured MCP servers: the sandbox (as commands get it, with
 * Nightshift's hidden paths) and a network proxy of its own whose only decision is each server's
 * `network` list. Used by `nightshift mcp`; the daemon's wiring comes with the tools.
 */

import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sandboxBackend, type LoadedConfig } from "../config.ts";
import { ConfigError, PermissionDenied } from "../errors.ts";
import { createSandbox } from "../runtime.ts";
import { startNetworkProxy, type NetworkDecision, type NetworkProxy } from "../sandbox/proxy.ts";
import type { Sandbox } from "../sandbox/sandbox.ts";
import { connectServer, serverNetworkDecider, type ConnectedServer } from "./servers.ts";

export interface BlockedConnection {
  server: string;
  host: string;
  reason: string;
}

export interface McpHost {
  readonly sandbox: Sandbox;
  /** Starts the server named in config.yaml and lists its tools. */
  connect(name: string): Promise<ConnectedServer>;
  /** Connections the proxy refused so far, in order. */
  blocked(): readonly BlockedConnection[];
  /** Stops every server started here and the proxy. */
  close(): Promise<void>;
}

export async function openMcpHost(loaded: LoadedConfig, options: { sandbox?: Sandbox; timeoutMs?: number } = {}): Promise<McpHost> {
  const servers = loaded.config.mcp.servers;
  const blocked: BlockedConnection[] = [];
  const needsNetwork = Object.values(servers).some((server) => (server.network ?? []).length > 0);
  let proxy: NetworkProxy | undefined;
  if (!options.sandbox && needsNetwork && loaded.config.sandbox.mode !== "off") {
    const socketPath = join(tmpdir(), `nightshift-${process.getuid?.() ?? "user"}`, `mcp-${process.pid}-${randomBytes(3).toString("hex")}.sock`);
    const decide = serverNetworkDecider(servers, {
      ask: (name, host) => askThroughCall(connected.get(name), host),
      allowPrivate: loaded.config.sandbox.allow_private_network,
      dashboardPort: loaded.config.dashboard.port,
      onBlocked: (server, host, reason) => blocked.push({ server, host, reason }),
    });
    // sandbox-runtime points processes at a TCP port; bubblewrap gets the Unix socket.
    proxy = await startNetworkProxy({ socketPath, decide, tcp: sandboxBackend(loaded.config.sandbox.mode) === "srt" });
  }
  // The sandbox hides state/ only if it exists when the sandbox is made; pins live there anyway.
  mkdirSync(join(loaded.home, "state", "mcp"), { recursive: true });
  const sandbox = options.sandbox ?? createSandbox(loaded, proxy);
  const started = new Set<ConnectedServer>();
  const connected = new Map<string, ConnectedServer>();
  return {
    sandbox,
    async connect(name) {
      const config = servers[name];
      if (!config) {
        const known = Object.keys(servers);
        throw new ConfigError(`mcp.servers.${name}`, `no MCP server \`${name}\` in config.yaml (${known.length ? `configured: ${known.join(", ")}` : "none configured: add one under mcp.servers"}).`);
      }
      const server = await connectServer(name, config, { home: loaded.home, env: loaded.env, sandbox, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
      started.add(server);
      connected.set(name, server);
      return server;
    },
    blocked: () => blocked,
    async close() {
      await Promise.all([...started].map((server) => server.close()));
      await sandbox.close?.();
      await proxy?.close();
    },
  };
}

/**
 * A server's connection to a host off its list is asked about through the task whose call is
 * running: its policy decides, and its approvers answer an ask. With no call running there is
 * nobody to ask; with calls from two tasks at once it cannot tell whose the connection is.
 */
async function askThroughCall(server: ConnectedServer | undefined, host: string): Promise<NetworkDecision | undefined> {
  const callers = server?.callers() ?? [];
  if (callers.length === 0) return undefined;
  if (callers.length > 1) return { allow: false, reason: `${host} is not in the server's network list, and calls from ${callers.length} tasks are running, so it cannot tell which one to ask` };
  try {
    await callers[0]!.permissions.check([{ kind: "network", host }]);
    // For this call only: a tunnel kept alive must not carry the next task's requests unasked.
    return { allow: true, reason: "", until: callers[0]!.ended };
  } catch (error) {
    if (error instanceof PermissionDenied) return { allow: false, reason: error.message };
    throw error;
  }
}
