import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "./support/home.ts";
import { isCi } from "./support/prerequisites.ts";

/**
 * The MCP conformance suite's client scenarios against Nightshift's own connection code (remote
 * servers: streamable HTTP through the private-address guard's fetch). The suite lives in its own
 * folder, out of the main install; CI installs it with `npm ci --prefix test/conformance`.
 */
const SUITE = join(import.meta.dirname, "conformance", "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js");
const CLIENT = join(import.meta.dirname, "fixtures", "mcp", "conformance-client.ts");
const missing = existsSync(SUITE) ? undefined : "the MCP conformance suite is not installed: run `npm ci --prefix test/conformance` (CI does)";
if (missing && isCi()) throw new Error(missing);

interface Check {
  id: string;
  status: "SUCCESS" | "FAILURE" | "WARNING" | "INFO";
  errorMessage?: string;
}

/** Runs one scenario; its exit code and the checks it recorded. */
async function scenario(name: string): Promise<{ code: number | null; output: string; checks: Check[] }> {
  const out = tempDir("nightshift-conformance-");
  try {
    const child = spawn(process.execPath, [SUITE, "client", "--command", `${process.execPath} ${CLIENT}`, "--scenario", name, "--timeout", "20000", "-o", out.path], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    const [run] = readdirSync(out.path);
    const checks = run ? (JSON.parse(readFileSync(join(out.path, run, "checks.json"), "utf8")) as Check[]) : [];
    return { code, output, checks };
  } finally {
    out.cleanup();
  }
}

const failures = (checks: Check[], ignore: string[] = []) => checks.filter((check) => check.status === "FAILURE" && !ignore.includes(check.id)).map((check) => `${check.id}: ${check.errorMessage ?? ""}`);

describe("MCP conformance: client scenarios", { skip: missing, concurrency: true }, () => {
  it("initialize: the handshake, protocol version and client info", async () => {
    const result = await scenario("initialize");
    assert.deepEqual(failures(result.checks), [], result.output);
    assert.ok(result.checks.some((check) => check.id === "mcp-client-initialization" && check.status === "SUCCESS"), result.output);
    assert.equal(result.code, 0, result.output);
  });

  it("tools_call: a tool listed and called with its arguments", async () => {
    const result = await scenario("tools_call");
    assert.deepEqual(failures(result.checks), [], result.output);
    assert.ok(result.checks.some((check) => check.id === "tool-add-numbers" && check.status === "SUCCESS"), result.output);
    assert.equal(result.code, 0, result.output);
  });

  it("sse-retry: a call's stream closed by the server is resumed with GET and Last-Event-ID", async () => {
    // The scenario also times the reconnection against the server's `retry` with wall clocks; on a
    // loaded machine that check alone can come late, so it is left to the suite's own report.
    const result = await scenario("sse-retry");
    assert.deepEqual(failures(result.checks, ["client-sse-retry-timing"]), [], result.output);
    for (const id of ["client-sse-graceful-reconnect", "client-sse-last-event-id"]) {
      assert.ok(result.checks.some((check) => check.id === id && check.status === "SUCCESS"), `${id}\n${result.output}`);
    }
  });
});
