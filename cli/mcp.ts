/**
 * `nightshift mcp list [NAME]` and `nightshift mcp approve NAME`: start the configured servers in
 * the sandbox, show their tools with pin state and what each definition costs, and pin them.
 */

import type { Tool } from "@modelcontextprotocol/client";
import { storeSetting, type LoadedConfig } from "../runtime/config.ts";
import { isUserError } from "../runtime/errors.ts";
import { approvePins, comparePins, currentPins, openMcpHost, type McpHost, type PinState, type SharedPins } from "../runtime/mcp/index.ts";
import { dropReview } from "../runtime/mcp/reviews.ts";
import { connectForCommand, StoreAway } from "./store-connect.ts";
import { UsageError } from "./usage.ts";

export interface McpCommandResult {
  text: string;
  code: number;
}

/**
 * Never throws for a server that fails: it is reported in the text and the code is 1. `shared`:
 * several machines on one PostgreSQL, whose approvals count here and where an approval goes.
 */
export async function mcpCommand(sub: string | undefined, args: string[], loaded: LoadedConfig, now: Date, host?: McpHost, shared?: SharedPins): Promise<McpCommandResult> {
  if (sub !== "list" && sub !== "approve") throw new UsageError("usage: nightshift mcp list [NAME] | nightshift mcp approve NAME");
  if (args.length > 1 || (sub === "approve" && args.length !== 1)) throw new UsageError(`usage: nightshift mcp ${sub === "approve" ? "approve NAME" : "list [NAME]"}`);
  const names = args.length ? args : Object.keys(loaded.config.mcp.servers);
  if (names.length === 0) return { text: "No MCP servers configured: add them under mcp.servers in config.yaml.", code: 0 };
  const mcp = host ?? (await openMcpHost(loaded));
  const sections: string[] = [];
  let failed = 0;
  try {
    for (const name of names) {
      try {
        const server = await mcp.connect(name);
        const states = comparePins(server.tools, await currentPins(loaded.home, name, server.tools, shared));
        if (sub === "approve") {
          await approvePins(loaded.home, name, server.tools, now, shared).catch((error: Error) => {
            throw new UsageError(`could not record the approval of ${name} in the shared store (${storeSetting(loaded)}), where every machine reads it: ${error.message}; nothing was pinned. Check that PostgreSQL runs and can be reached from here, then approve again`);
          });
          dropReview(loaded.home, name); // a review sent to Telegram is answered by this
          sections.push(approvedSection(name, server.tools, states));
        } else {
          sections.push(listSection(name, loaded, server.tools, states));
        }
        await server.close();
      } catch (error) {
        if (!isUserError(error)) throw error;
        failed += 1;
        sections.push(`✗ ${error.message}`);
      }
    }
    const blocked = mcp.blocked().map((entry) => `  ${entry.server} → ${entry.host}: ${entry.reason}`);
    if (blocked.length) sections.push(["Network refused:", ...blocked].join("\n"));
  } finally {
    if (!host) await mcp.close();
  }
  return { text: sections.join("\n\n"), code: failed ? 1 : 0 };
}

/**
 * Several machines on one PostgreSQL: every machine's tool approvals, read and written there.
 * `close` ends the connection. `list` while the store does not answer reads this machine's own
 * approvals (state/mcp/pins/, what a session here goes on with meanwhile), and `note` says so;
 * `approve` is refused then, since an approval must reach every machine.
 */
export async function openSharedPins(loaded: LoadedConfig, sub?: string): Promise<{ pins?: SharedPins; note?: string; close(): Promise<void> } | undefined> {
  let store: Awaited<ReturnType<typeof connectForCommand>>;
  try {
    store = await connectForCommand(loaded, "read and record MCP tool approvals", "With several machines an approval is kept there, so that it counts on every machine");
  } catch (error) {
    if (sub !== "list" || !(error instanceof StoreAway)) throw error;
    const note = `The shared store (${storeSetting(loaded)}) does not answer: this list shows this machine's approvals only (what its sessions go on with meanwhile); a tool approved on another machine since may show as new or changed. \`nightshift mcp approve\` needs the store.`;
    return { note, close: async () => {} };
  }
  if (!store) return undefined;
  const { sharedPins } = await import("../runtime/store/pg-pins.ts");
  return { pins: sharedPins(store.sql, store.machine), close: store.close };
}

function listSection(name: string, loaded: LoadedConfig, tools: Tool[], states: PinState[]): string {
  const server = loaded.config.mcp.servers[name]!;
  const where = server.command !== undefined ? `stdio, sandboxed${server.network?.length ? `, network: ${server.network.join(", ")}` : ", no network"}` : `remote ${server.url}`;
  const width = Math.max(...tools.map((tool) => tool.name.length), 4);
  const lines = [`${name} (${where}): ${tools.length} tool${tools.length === 1 ? "" : "s"}, ≈ ${tokens(tools).toLocaleString("en-US")} tokens of definitions`];
  for (const [index, tool] of tools.entries()) {
    const state = states[index]!;
    const mark = state.state === "pinned" ? "✓ pinned " : state.state === "new" ? "+ new    " : "! changed";
    lines.push(`  ${mark}  ${tool.name.padEnd(width)}  ≈ ${tokens([tool]).toLocaleString("en-US")} tokens`);
    if (state.state === "changed") lines.push(...state.diff.map((line) => `      ${line}`));
  }
  const withheld = states.filter((state) => state.state !== "pinned").length;
  if (withheld) lines.push(`  ${withheld} withheld until approved: nightshift mcp approve ${name}`);
  return lines.join("\n");
}

function approvedSection(name: string, tools: Tool[], states: PinState[]): string {
  const count = (state: PinState["state"]) => states.filter((entry) => entry.state === state).length;
  const lines = [`${name}: pinned ${tools.length} tool${tools.length === 1 ? "" : "s"} (${count("new")} new, ${count("changed")} changed, ${count("pinned")} unchanged)`];
  for (const state of states) {
    if (state.state === "new") lines.push(`  + ${state.name}`);
    if (state.state === "changed") lines.push(`  ! ${state.name}`, ...state.diff.map((line) => `      ${line}`));
  }
  return lines.join("\n");
}

/** An estimate, bytes/4 of the definitions as the Messages API would receive them (no tokenizer offline). */
export function tokens(tools: readonly Tool[]): number {
  const bytes = tools.reduce((sum, tool) => sum + Buffer.byteLength(JSON.stringify({ name: tool.name, description: tool.description ?? "", input_schema: tool.inputSchema })), 0);
  return Math.ceil(bytes / 4);
}
