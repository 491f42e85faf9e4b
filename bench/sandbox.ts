/**
 * Per-command cost of the sandboxes: `true` run bare, through createUnsandboxed, through
 * createBwrapSandbox and createSrtSandbox (sandbox-runtime), each also with the network proxy; then
 * one HTTP GET to a local server, bare versus sandboxed through the proxy (curl when installed, else
 * bash /dev/tcp); and what the lifeline (a killed Nightshift's commands end with it) adds to a spawn.
 * Run with `node bench/sandbox.ts`; prints a markdown table.
 */

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createBwrapSandbox, createSrtSandbox, createUnsandboxed } from "../runtime/sandbox/index.ts";
import type { RunOptions, Sandbox } from "../runtime/sandbox/index.ts";
import { startNetworkProxy } from "../runtime/sandbox/proxy.ts";
import { bashArgs, scrubEnv, spawnCaptured } from "../runtime/sandbox/spawn.ts";

export interface Row {
  name: string;
  runs: number;
  medianMs: number;
  p90Ms: number;
  /** The row this one is compared with. */
  baseline: string;
  /** Median minus the baseline's median. */
  addedMedianMs: number;
}

const RUNS = 20;

export async function benchSandbox(env: Record<string, string | undefined> = process.env): Promise<Row[]> {
  const cwd = realpathSync(mkdtempSync(join(tmpdir(), "nightshift-bench-")));
  const server = createServer((_request, response) => response.end("hello\n"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  // Allows the local server: the cost measured is the proxy's, not a human's.
  const proxy = await startNetworkProxy({
    socketPath: join(cwd, "proxy", "proxy.sock"),
    tcp: true, // for srt
    decide: async (request) => ({ allow: request.host === "127.0.0.1" && request.port === port, reason: "bench" }),
  });
  try {
    const limits: RunOptions = { cwd, timeoutMs: 10_000, maxOutputBytes: 64 * 1024 };
    const viaSandbox = (sandbox: Sandbox, command: string, options = limits, expect = "") => async () => {
      const result = await sandbox.run(command, options);
      if (result.exitCode !== 0 || !result.output.includes(expect)) throw new Error(`${sandbox.kind}: ${command} failed: ${result.output}`);
    };
    const bwrap = createBwrapSandbox({ env });
    const networked = createBwrapSandbox({ env, network: { proxy } });
    const srt = createSrtSandbox({ env });
    const srtNetworked = createSrtSandbox({ env, network: { proxy } });
    for (const sandbox of [bwrap, networked]) {
      const probe = await sandbox.probe();
      if (!probe.ok) throw new Error(probe.problem);
    }
    const withSession = { ...limits, sessionKey: "bench" };

    const bare = await measure("bare spawnSync bash -c true", () => {
      spawnSync("bash", ["-c", "true"]);
    });
    const trueRows = [
      bare,
      await measure("createUnsandboxed run('true')", viaSandbox(createUnsandboxed({ env }), "true")),
      await measure("createBwrapSandbox run('true')", viaSandbox(bwrap, "true")),
      await measure("createBwrapSandbox + proxy run('true')", viaSandbox(networked, "true", withSession)),
      // srt is one object per process: the rows without and with the proxy each set it up once.
      ...(await srtRows("createSrtSandbox run('true')", srt, viaSandbox(srt, "true"))),
      ...(await srtRows("createSrtSandbox + proxy run('true')", srtNetworked, viaSandbox(srtNetworked, "true", withSession))),
    ].map((row) => compared(row, bare));

    const get = httpGetCommands(port, hasCurl());
    // Spawned asynchronously: a spawnSync would block the event loop that serves the request.
    const bareGet = await measure(`bare ${get.tool} GET`, async () => {
      if (!(await spawnAsync("bash", ["-c", get.bare])).includes("hello")) throw new Error(`bare ${get.tool} GET failed`);
    });
    const getRows = [
      bareGet,
      await measure(`createBwrapSandbox + proxy ${get.tool} GET`, viaSandbox(networked, get.sandboxed, withSession, "hello")),
      ...(await srtRows(`createSrtSandbox + proxy ${get.tool} GET`, srtNetworked, viaSandbox(srtNetworked, get.sandboxed, withSession, "hello"))),
    ].map((row) => compared(row, bareGet));
    await srtNetworked.close?.();
    return [...trueRows, ...getRows, ...(await lifelineRows(env, cwd))];
  } finally {
    await proxy.close();
    server.close();
    rmSync(cwd, { recursive: true, force: true });
  }
}

/**
 * What the lifeline costs a command (spawn.ts, lifelineGuard): the fd 3 pipe, the shell's check and
 * its watcher, against the same spawn without them. Every sandbox's `run` pays it.
 */
async function lifelineRows(env: Record<string, string | undefined>, cwd: string): Promise<Row[]> {
  const options = { env: scrubEnv(env), cwd, timeoutMs: 10_000, maxOutputBytes: 64 * 1024 };
  const without = await measure("spawnCaptured bash -c true", async () => {
    await spawnCaptured("bash", ["-c", "exec 2>&1; true"], options);
  });
  const withLifeline = await measure("spawnCaptured bash -c true, with the lifeline", async () => {
    await spawnCaptured("bash", bashArgs("true"), { ...options, lifeline: true });
  });
  return [without, compared(withLifeline, without)];
}

/** srt's rows, or none when it cannot run here (said on stderr): the bench still reports bwrap's. */
async function srtRows(name: string, sandbox: Sandbox, once: () => Promise<void>): Promise<Row[]> {
  const probe = await sandbox.probe();
  if (!probe.ok) {
    process.stderr.write(`${name}: skipped, ${probe.problem}\n`);
    return [];
  }
  return [await measure(name, once)];
}

function compared(row: Row, baseline: Row): Row {
  return { ...row, baseline: row === baseline ? "" : baseline.name, addedMedianMs: row.medianMs - baseline.medianMs };
}

function hasCurl(): boolean {
  return spawnSync("bash", ["-c", "command -v curl"]).status === 0;
}

/** One GET of the local server: bare, straight to it; sandboxed, through the proxy the environment names. */
function httpGetCommands(port: number, curl: boolean): { tool: string; bare: string; sandboxed: string } {
  const url = `http://127.0.0.1:${port}/`;
  if (curl) {
    // The sandbox's NO_PROXY covers loopback; --noproxy '' makes the local server stand for the internet.
    return { tool: "curl", bare: `curl -sS ${url}`, sandboxed: `curl -sS --noproxy '' ${url}` };
  }
  const request = (target: string, extra: string) => `printf '%s\\r\\n' 'GET ${target} HTTP/1.1' 'Host: 127.0.0.1:${port}' 'Connection: close' ${extra} '' >&3; cat <&3`;
  return {
    tool: "bash /dev/tcp",
    bare: `exec 3<>/dev/tcp/127.0.0.1/${port}; ${request("/", "")}`,
    sandboxed:
      't=${HTTP_PROXY#http://nightshift:}; t=${t%@*}; exec 3<>/dev/tcp/127.0.0.1/3128; ' +
      request(url, `"Proxy-Authorization: Basic $(printf 'nightshift:%s' "$t" | base64 -w0)"`),
  };
}

function spawnAsync(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.once("error", reject);
    child.once("close", () => resolve(output));
  });
}

async function measure(name: string, once: () => unknown): Promise<Row> {
  await once(); // warm-up: page cache, lazy module loads
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    await once();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { name, runs: RUNS, medianMs: percentile(times, 0.5), p90Ms: percentile(times, 0.9), baseline: "", addedMedianMs: 0 };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
}

export function formatTable(rows: readonly Row[]): string {
  const ms = (value: number) => value.toFixed(1);
  return [
    "| command | runs | median ms | p90 ms | added (median) ms | compared with |",
    "|---|---:|---:|---:|---:|---|",
    ...rows.map((r) => `| ${r.name} | ${r.runs} | ${ms(r.medianMs)} | ${ms(r.p90Ms)} | ${r.baseline ? ms(r.addedMedianMs) : ""} | ${r.baseline} |`),
  ].join("\n");
}

if (import.meta.main) {
  console.log(formatTable(await benchSandbox()));
}
