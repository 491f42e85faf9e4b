/**
 * Several machines on one PostgreSQL (issue 16): the cost of a claim, of a session event append in
 * Postgres against the JSONL file, and what three machines gain over one on 60 tasks. Each bench
 * starts a PostgreSQL server of its own on loopback (test/support/pg-server.ts, fsync on as a
 * real server runs), so needs Debian's `postgresql` installed. Run alone: `node bench/cluster.ts`.
 */

import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { SessionEvent } from "../runtime/index.ts";
import { openSessionLog } from "../runtime/session-log.ts";
import { connectPg } from "../runtime/store/pg.ts";
import { cluster } from "../runtime/store/pg-cluster.ts";
import { pgSessions } from "../runtime/store/pg-sessions.ts";
import type { TaskRecord } from "../tasks/state.ts";
import { startMachines } from "../test/support/cluster.ts";
import { startPgServer, type PgServer } from "../test/support/pg-server.ts";
import { formatRows, type Row } from "./daemon.ts";

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const p95 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.95)]!;

async function withServer<T>(work: (server: PgServer) => Promise<T>): Promise<T> {
  const server = await startPgServer({ fsync: true });
  try {
    return await work(server);
  } finally {
    await server.cleanup();
  }
}

function record(id: string, created: number): TaskRecord {
  return {
    id,
    title: id,
    origin: "inbox",
    name: `${id}.md`,
    priority: "normal",
    state: "queued",
    spec: { title: id, prompt: "Do it.", workdir: `/tmp/${id}`, model: "main", budget: { max_turns: 40, max_usd: 2, timeout_ms: 7_200_000 } },
    created,
    attempts: 0,
    crashes: 0,
    turns: 0,
    cost_usd: 0,
  };
}

/** Enqueue and claim, one at a time, each timed: 300 tasks, then 300 claims of a queue that shrinks from 300 to 0; and a claim of an empty queue. */
export async function benchClaim(count = 300): Promise<Row[]> {
  return withServer(async (server) => {
    const sql = await connectPg(server.url);
    try {
      const here = cluster(sql, "bench");
      await here.beat(0, 1);
      const enqueue: number[] = [];
      for (let i = 0; i < count; i++) {
        const started = performance.now();
        await here.enqueue(record(`t${i}`, i), undefined);
        enqueue.push(performance.now() - started);
      }
      const claim: number[] = [];
      for (let i = 0; i < count; i++) {
        const started = performance.now();
        await here.claim();
        claim.push(performance.now() - started);
      }
      const empty: number[] = [];
      for (let i = 0; i < 50; i++) {
        const started = performance.now();
        await here.claim();
        empty.push(performance.now() - started);
      }
      return [
        { name: `enqueue, median of ${count}`, value: median(enqueue), unit: "ms" },
        { name: `claim (UPDATE … FOR UPDATE SKIP LOCKED), median of ${count}`, value: median(claim), unit: "ms", target: 10 },
        { name: "claim, p95", value: p95(claim), unit: "ms" },
        { name: "claim of an empty queue, median of 50", value: median(empty), unit: "ms" },
      ];
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
}

/** One step's events as the loop appends them: a model response and a tool start, then the tool's end. */
function step(i: number): [SessionEvent[], SessionEvent[]] {
  const at = Date.now();
  const text = "x".repeat(450);
  return [
    [
      { type: "model_response", at, turn: i, model: "claude-sonnet", content: [{ type: "text", text }, { type: "tool_use", id: `tu${i}`, name: "noop", input: {} }], stop_reason: "tool_use", usage: { input_tokens: 10, output_tokens: 10 }, cost_usd: 0, latency_ms: 0, request_bytes: 0 } as SessionEvent,
      { type: "tool_start", at, id: `tu${i}`, name: "noop", input: {} },
    ],
    [{ type: "tool_end", at, id: `tu${i}`, name: "noop", output: "ok".repeat(100), is_error: false, duration_ms: 0 }],
  ];
}

/** 500 steps (1,000 appends) into one session: the JSONL log with fdatasync against Postgres on loopback with fsync on (each append its own transaction, owner checked). */
export async function benchAppend(steps = 500): Promise<Row[]> {
  const dir = mkdtempSync(join("/var/tmp", "nightshift-bench-append-"));
  try {
    const file: number[] = [];
    const log = await openSessionLog(join(dir, "s.jsonl"), "s", { sync: true });
    for (let i = 0; i < steps; i++) {
      for (const events of step(i)) {
        const started = performance.now();
        await log.append(...events);
        file.push(performance.now() - started);
      }
    }
    await log.close();
    const pg = await withServer(async (server) => {
      const sql = await connectPg(server.url);
      try {
        const sessions = pgSessions(sql);
        const claim = (await sessions.claim("s", "bench"))!;
        const times: number[] = [];
        for (let i = 0; i < steps; i++) {
          for (const events of step(i)) {
            const started = performance.now();
            await sessions.append(claim, events);
            times.push(performance.now() - started);
          }
        }
        return times;
      } finally {
        await sql.end({ timeout: 1 });
      }
    });
    return [
      { name: `JSONL file, fdatasync (runtime/session-log.ts), median of ${file.length}`, value: median(file), unit: "ms" },
      { name: "JSONL file, p95", value: p95(file), unit: "ms" },
      { name: `PostgreSQL on loopback, fsync on (runtime/store/pg-sessions.ts), median of ${pg.length}`, value: median(pg), unit: "ms" },
      { name: "PostgreSQL, p95", value: p95(pg), unit: "ms" },
      { name: "PostgreSQL / file, medians", value: median(pg) / median(file), unit: "x" },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * 60 task files dropped at once into one machine's inbox/, real `nightshift start` daemons
 * (concurrency 1 each), the Messages API stand-in answering each task's one request after
 * `latencyMs`: from the drop to the 60th result in that machine's outbox/, on one machine and on three.
 */
export async function benchSpread(tasks = 60, latencyMs = 500): Promise<Row[]> {
  const times: Record<number, number> = {};
  for (const count of [1, 3]) {
    times[count] = await withServer(async (server) => {
      const names = ["m1", "m2", "m3"].slice(0, count);
      const machines = await startMachines(names, { url: server.url });
      try {
        machines.api.respondWith(() => ({ content: [{ type: "text", text: "done" }], delayMs: latencyMs }));
        for (const machine of machines.machines) await machine.start();
        const home = machines.machines[0]!.home;
        const started = performance.now();
        for (let i = 0; i < tasks; i++) writeFileSync(join(home, "inbox", `t${i}.md`), `---\ntitle: t${i}\n---\nDo it.\n`);
        const deadline = started + 600_000;
        while (![...Array(tasks).keys()].every((i) => existsSync(join(home, "outbox", `t${i}.md`)))) {
          if (performance.now() > deadline) throw new Error("60 results did not arrive within 10 minutes");
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        return performance.now() - started;
      } finally {
        await machines.cleanup();
      }
    });
  }
  return [
    { name: `${tasks} tasks, one machine (model latency ${latencyMs} ms)`, value: times[1]!, unit: "ms" },
    { name: `${tasks} tasks, three machines`, value: times[3]!, unit: "ms" },
    { name: "one machine / three, wall time", value: times[1]! / times[3]!, unit: "x" },
    { name: "model time alone, one machine (tasks × latency)", value: tasks * latencyMs, unit: "ms" },
  ];
}

if (import.meta.main) {
  const which = process.argv[2];
  if (!which || which === "claim") console.log(`## Claim latency\n\n${formatRows(await benchClaim())}\n`);
  if (!which || which === "append") console.log(`## Session event append\n\n${formatRows(await benchAppend())}\n`);
  if (!which || which === "spread") console.log(`## 60 tasks, three machines against one\n\n${formatRows(await benchSpread())}\n`);
}
