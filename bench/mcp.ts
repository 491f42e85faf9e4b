/**
 * MCP reference servers: start → initialized → tools listed, unsandboxed (the library's own stdio
 * transport) against inside bubblewrap (openMcpHost, as `nightshift mcp list` does), and what each
 * server's tool definitions cost as the Messages API would receive them; a one-line task's first
 * request with 0 and 3 servers configured; one call of an MCP tool against built-in ones.
 * Run with `node bench/mcp.ts`; prints markdown tables. Offline: the servers are dev dependencies.
 */

import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Client } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { tokens } from "../cli/mcp.ts";
import { loadConfig } from "../runtime/config.ts";
import { openMcpHost } from "../runtime/mcp/index.ts";
import { offeredTools } from "../runtime/mcp/tools.ts";
import { writePins } from "../runtime/mcp/pins.ts";
import { createBwrapSandbox } from "../runtime/sandbox/index.ts";
import { createTools } from "../runtime/runtime.ts";
import { NO_RULES } from "../runtime/tools/paths.ts";
import { toApiTool, type Tool, type ToolContext } from "../runtime/tools/tool.ts";
import { mcpCommand } from "../cli/mcp.ts";
import { createRuntimeHarness } from "../test/support/runtime-harness.ts";

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

const serversYaml = (names: string[]) =>
  names.length ? `mcp:\n  servers:\n${names.map((name) => `    ${name}: ${JSON.stringify({ command: process.execPath, args: SERVERS[name] })}\n`).join("")}` : "";

/**
 * A one-line task's first request, in bytes, as the stand-in received it: no servers; the three
 * reference servers approved, with tool references (Anthropic's API) and without (a local model);
 * and what sending every definition up front would have added (their JSON, summed).
 */
export async function benchFirstRequest(): Promise<string> {
  const rows = ["| configured | tool loading | first request, bytes | MCP definitions in it |", "|---|---|---|---|"];
  const measure = async (names: string[], references: "on" | "off") => {
    const h = await createRuntimeHarness({ config: `models:\n  main:\n    model: claude-sonnet-5-5\n    tool_references: "${references}"\n${serversYaml(names)}` });
    try {
      const loaded = loadConfig({ PATH: process.env.PATH, HOME: h.userHome }, h.home);
      for (const name of names) await mcpCommand("approve", [name], loaded, new Date());
      h.api.script({ content: [{ type: "text", text: "hi" }] });
      await h.runtime.start(h.runtime.newSessionId(), h.task({ title: "Say hi", prompt: "Say hi" }));
      const request = h.api.requests[0]!;
      return { bytes: Buffer.byteLength(request.rawBody), mcp: request.body.tools.filter((tool: { name: string }) => tool.name.startsWith("mcp__")).length };
    } finally {
      await h.close();
    }
  };
  const none = await measure([], "on");
  rows.push(`| no servers | – | ${none.bytes.toLocaleString("en-US")} | 0 |`);
  const names = Object.keys(SERVERS);
  for (const references of ["on", "off"] as const) {
    const three = await measure(names, references);
    rows.push(`| everything, memory, filesystem | ${references === "on" ? "tool references (deferred)" : "tool_search + call_tool"} | ${three.bytes.toLocaleString("en-US")} | ${three.mcp} |`);
  }
  const definitions = await allDefinitions(names);
  rows.push(`| everything, memory, filesystem | every definition up front (computed: no servers + their JSON) | ${(none.bytes + definitions.bytes).toLocaleString("en-US")} | ${definitions.count} |`);
  return rows.join("\n");
}

/** The offered tools' definitions as a request would carry them. */
async function allDefinitions(names: string[]): Promise<{ bytes: number; count: number }> {
  const home = realpathSync(mkdtempSync(join("/var/tmp", "nightshift-bench-mcp-")));
  writeFileSync(join(home, "config.yaml"), serversYaml(names));
  const loaded = loadConfig({ PATH: process.env.PATH }, home);
  const host = await openMcpHost(loaded);
  try {
    let bytes = 0;
    let count = 0;
    for (const name of names) {
      const server = await host.connect(name);
      const tools = offeredTools(server, writePins(home, server.name, server.tools, new Date())).tools;
      bytes += tools.reduce((sum, tool) => sum + Buffer.byteLength(JSON.stringify(toApiTool(tool))) + 1, 0);
      count += tools.length;
    }
    return { bytes, count };
  } finally {
    await host.close();
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * One tool call as the loop makes it (`execute`; the policy check before it is the same for every
 * tool): the everything server's echo, a JSON-RPC round trip to a process in bubblewrap, against
 * read_file (in-process) and bash `echo` (a fresh bubblewrap each call). Median of 50 after 5 warm-ups.
 */
export async function benchCallOverhead(): Promise<string> {
  const home = realpathSync(mkdtempSync(join("/var/tmp", "nightshift-bench-mcp-")));
  writeFileSync(join(home, "config.yaml"), serversYaml(["everything"]));
  writeFileSync(join(home, "small.txt"), "hello\n");
  const loaded = loadConfig({ PATH: process.env.PATH }, home);
  const host = await openMcpHost(loaded);
  const sandbox = createBwrapSandbox({ env: { PATH: process.env.PATH } });
  const rows = ["| call | median ms | p90 ms |", "|---|---|---|"];
  try {
    const server = await host.connect("everything");
    const echo = offeredTools(server, writePins(home, server.name, server.tools, new Date())).tools.find((tool) => tool.name === "mcp__everything__echo")!;
    const builtins = createTools(sandbox, { timeoutMs: 30_000, maxOutputBytes: 10_000 });
    const byName = (name: string) => builtins.find((tool) => tool.name === name)!;
    const context = { workdir: home, signal: new AbortController().signal, paths: NO_RULES, writable: [], readOnly: [], permissions: { check: async () => {} } } as ToolContext;
    const cases: [string, Tool, unknown][] = [
      ["mcp__everything__echo (MCP, in bwrap)", echo, { message: "hi" }],
      ["read_file (built-in, in process)", byName("read_file"), { path: "small.txt" }],
      ["bash `echo hi` (built-in, fresh bwrap)", byName("bash"), { command: "echo hi" }],
    ];
    for (const [label, tool, input] of cases) {
      const times: number[] = [];
      const parsed = tool.schema.parse(input);
      for (let run = 0; run < 55; run++) {
        const started = performance.now();
        await tool.execute(parsed, context);
        if (run >= 5) times.push(performance.now() - started);
      }
      const sorted = [...times].sort((a, b) => a - b);
      rows.push(`| ${label} | ${median(times).toFixed(2)} | ${sorted[Math.floor(sorted.length * 0.9)]!.toFixed(2)} |`);
    }
  } finally {
    await host.close();
    rmSync(home, { recursive: true, force: true });
  }
  return rows.join("\n");
}

if (import.meta.main) {
  console.log(await benchMcp());
  console.log();
  console.log(await benchFirstRequest());
  console.log();
  console.log(await benchCallOverhead());
}
