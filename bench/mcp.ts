/**
 * MCP reference servers: start → initialized → tools listed, unsandboxed (the library's own stdio
 * transport) against inside bubblewrap (openMcpHost, as `nightshift mcp list` does), and what each
 * server's tool definitions cost as the Messages API would receive them.
 * Run with `node bench/mcp.ts`; prints a markdown table. Offline: the servers are dev dependencies.
 */

import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Client } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { tokens } from "../cli/mcp.ts";
import { loadConfig } from "../runtime/config.ts";
import { openMcpHost } from "../runtime/mcp/index.ts";

const RUNS = 5;
const PACKAGES = join(import.meta.dirname, "..", "node_modules", "@modelcontextprotocol");
const SERVERS: Record<string, string[]> = {
  everything: [join(PACKAGES, "server-everything", "dist", "index.js"), "stdio"],
  memory: [join(PACKAGES, "server-memory", "dist", "index.js")],
  filesystem: [join(PACKAGES, "server-filesystem", "dist", "index.js"), "/"],
};

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export async function benchMcp(): Promise<string> {
  // Under /var/tmp: the sandbox mounts its own /tmp.
  const home = realpathSync(mkdtempSync(join("/var/tmp", "nightshift-bench-mcp-")));
  const servers = Object.fromEntries(Object.entries(SERVERS).map(([name, args]) => [name, { command: process.execPath, args }]));
  writeFileSync(join(home, "config.yaml"), JSON.stringify({ mcp: { servers } }));
  const loaded = loadConfig({ PATH: process.env.PATH }, home);
  const rows = ["| server | tools | ≈ tokens (bytes/4) | unsandboxed, median ms | in bwrap, median ms | added |", "|---|---|---|---|---|---|"];
  try {
    for (const [name, args] of Object.entries(SERVERS)) {
      const bare: number[] = [];
      const boxed: number[] = [];
      let cost = 0;
      let count = 0;
      for (let run = 0; run < RUNS; run++) {
        let started = performance.now();
        const client = new Client({ name: "bench", version: "0" });
        await client.connect(new StdioClientTransport({ command: process.execPath, args, stderr: "ignore" }));
        await client.listTools();
        bare.push(performance.now() - started);
        await client.close();

        const host = await openMcpHost(loaded);
        started = performance.now();
        const server = await host.connect(name);
        boxed.push(performance.now() - started);
        cost = tokens(server.tools);
        count = server.tools.length;
        await host.close();
      }
      rows.push(`| ${name} | ${count} | ${cost.toLocaleString("en-US")} | ${median(bare).toFixed(0)} | ${median(boxed).toFixed(0)} | ${(median(boxed) - median(bare)).toFixed(0)} |`);
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  return rows.join("\n");
}

if (import.meta.main) console.log(await benchMcp());
