/**
 * What a process needs to start the configured MCP servers: the sandbox (as commands get it, with
 * Nightshift's hidden paths) and a network proxy of its own whose only decision is each server's
 * `network` list. Used by `nightshift mcp`; the daemon's wiring comes with the tools.
 */

import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LoadedConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { createSandbox } from "../runtime.ts";
import { startNetworkProxy, type NetworkProxy } from "../sandbox/proxy.ts";
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
    proxy = await startNetworkProxy({ socketPath, decide: serverNetworkDecider(servers, (server, host, reason) => blocked.push({ server, host, reason })) });
  }
  // The sandbox hides state/ only if it exists when the sandbox is made; pins live there anyway.
  mkdirSync(join(loaded.home, "state", "mcp"), { recursive: true });
  const sandbox = options.sandbox ?? createSandbox(loaded, proxy);
  const started = new Set<ConnectedServer>();
  return {
    sandbox,
    async connect(name) {
      const server = servers[name];
      if (!server) {
        const known = Object.keys(servers);
        throw new ConfigError(`mcp.servers.${name}`, `no MCP server \`${name}\` in config.yaml (${known.length ? `configured: ${known.join(", ")}` : "none configured: add one under mcp.servers"}).`);
      }
      const connected = await connectServer(name, server, { home: loaded.home, env: loaded.env, sandbox, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
      started.add(connected);
      return connected;
    },
    blocked: () => blocked,
    async close() {
      await Promise.all([...started].map((server) => server.close()));
      await sandbox.close?.();
      await proxy?.close();
    },
  };
}
