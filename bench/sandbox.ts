/**
 * Per-command cost of the sandboxes: `true` run bare, through createUnsandboxed and through
 * createBwrapSandbox. Run with `node bench/sandbox.ts`; prints a markdown table.
 */

import { spawnSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createBwrapSandbox, createUnsandboxed } from "../runtime/sandbox/index.ts";
import type { Sandbox } from "../runtime/sandbox/index.ts";

export interface Row {
  name: string;
  runs: number;
  medianMs: number;
  p90Ms: number;
  /** Median minus the bare spawn's median. */
  addedMedianMs: number;
}

const RUNS = 20;

export async function benchSandbox(env: Record<string, string | undefined> = process.env): Promise<Row[]> {
  const cwd = realpathSync(mkdtempSync(join(tmpdir(), "nightshift-bench-")));
  try {
    const limits = { cwd, timeoutMs: 10_000, maxOutputBytes: 64 * 1024 };
    const viaSandbox = (sandbox: Sandbox) => async () => {
      const result = await sandbox.run("true", limits);
      if (result.exitCode !== 0) throw new Error(`${sandbox.kind}: true failed: ${result.output}`);
    };
    const bwrap = createBwrapSandbox({ env });
    const probe = await bwrap.probe();
    if (!probe.ok) throw new Error(probe.problem);

    const bare = await measure("bare spawnSync bash -c true", () => {
      spawnSync("bash", ["-c", "true"]);
    });
    const rows = [
      bare,
      await measure("createUnsandboxed run('true')", viaSandbox(createUnsandboxed({ env }))),
      await measure("createBwrapSandbox run('true')", viaSandbox(bwrap)),
    ];
    return rows.map((row) => ({ ...row, addedMedianMs: row.medianMs - bare.medianMs }));
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
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
  return { name, runs: RUNS, medianMs: percentile(times, 0.5), p90Ms: percentile(times, 0.9), addedMedianMs: 0 };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
}

export function formatTable(rows: readonly Row[]): string {
  const ms = (value: number) => value.toFixed(1);
  return [
    "| command | runs | median ms | p90 ms | added vs bare (median) ms |",
    "|---|---:|---:|---:|---:|",
    ...rows.map((r) => `| ${r.name} | ${r.runs} | ${ms(r.medianMs)} | ${ms(r.p90Ms)} | ${ms(r.addedMedianMs)} |`),
  ].join("\n");
}

if (import.meta.main) {
  console.log(formatTable(await benchSandbox()));
}
