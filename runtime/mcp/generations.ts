/**
 * The MCP servers a runtime runs, as one generation per `mcp` setting. Servers start when the
 * first session wants them and live as long as their generation: when the setting changes (another
 * machine's config.yaml, taken in while the daemon runs), sessions that start from then on get a
 * new generation, started afresh from the new setting, while sessions already running keep the
 * servers they were given (their tool list never changes mid-session) until they end; then the old
 * generation's servers are stopped.
 */

import type { ConnectedServer } from "./servers.ts";
import type { McpServerConfig } from "../config.ts";
import { canonical } from "../shared-settings.ts";

export type McpServers = Record<string, McpServerConfig>;

export interface Started {
  servers: ConnectedServer[];
  notices: string[];
  /** Stops what was started. Must not throw. */
  close(): Promise<void>;
}

export interface McpLease {
  started: Promise<Omit<Started, "close">>;
  /** The session is done with these servers. Idempotent. */
  release(): void;
}

export interface McpGenerations {
  /** The current generation's servers (started now if they were not), for one session. */
  acquire(): McpLease;
  /** Sessions from now on use `servers`; false when they are what runs already. */
  replace(servers: McpServers): boolean;
  /** Stops every generation (sessions must have ended). */
  close(): Promise<void>;
}

interface Generation {
  started: Promise<Started>;
  users: number;
  closing?: Promise<void>;
}

export function mcpGenerations(start: (servers: McpServers) => Promise<Started>, initial: McpServers): McpGenerations {
  let servers = initial;
  let current: Generation | undefined;
  const all = new Set<Generation>();
  const stop = (generation: Generation) =>
    (generation.closing ??= (async () => {
      all.delete(generation);
      await (await generation.started).close(); // servers still starting are stopped once they have
    })());
  return {
    acquire() {
      if (!current) {
        current = { started: start(servers), users: 0 };
        all.add(current);
      }
      const generation = current;
      generation.users++;
      let released = false;
      return {
        started: generation.started,
        release() {
          if (released) return;
          released = true;
          generation.users--;
          if (generation !== current && generation.users === 0) void stop(generation);
        },
      };
    },
    replace(next) {
      // Compared by meaning: the same servers written in another order restart nothing.
      if (canonical(next) === canonical(servers)) return false;
      servers = next;
      const old = current;
      current = undefined;
      if (old && old.users === 0) void stop(old);
      return true;
    },
    async close() {
      await Promise.all([...all].map(stop));
    },
  };
}
