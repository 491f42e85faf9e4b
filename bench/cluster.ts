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
import { createSessionMirror } from "../tasks/session-mirror.ts";
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
 * How far behind the machine that runs a session another machine sees it: a session of `steps`
 * steps written as the loop writes it (fdatasync), each append followed by the mirror's `grew` as
 * the daemon's event does (tasks/session-mirror.ts); timed from the append's return to the store's
 * notification of that event on another connection (what wakes another machine's live page).
 * One step at a time: each is seen before the next is written, as a model call's seconds allow.
 */
export async function benchMirror(steps = 300): Promise<Row[]> {
  const dir = mkdtempSync(join("/var/tmp", "nightshift-bench-mirror-"));
  try {
    return await withServer(async (server) => {
      const [writer, reader] = [await connectPg(server.url), await connectPg(server.url)];
      try {
        const sessions = pgSessions(writer);
        const mirror = createSessionMirror({ sessions, sessionsDir: dir, machine: "m2", stateFile: join(dir, "mirror.json"), trace: { warn: () => {} } });
        let seen: () => void = () => {};
        const unlisten = await pgSessions(reader).listen(() => seen());
        const log = await openSessionLog(join(dir, "s.jsonl"), "s", { sync: true });
        const lag: number[] = [];
        for (let i = 0; i < steps; i++) {
          for (const events of step(i)) {
            const arrived = new Promise<void>((resolve) => (seen = resolve));
            await log.append(...events);
            const written = performance.now();
            mirror.grew("s");
            await arrived;
            lag.push(performance.now() - written);
          }
        }
        await unlisten();
        await log.close();
        return [
          { name: `written here → notified on another connection, median of ${lag.length}`, value: median(lag), unit: "ms" },
          { name: "written here → notified, p95", value: p95(lag), unit: "ms" },
        ];
      } finally {
        await writer.end({ timeout: 1 });
        await reader.end({ timeout: 1 });
      }
    });
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

/**
 * Telegram failover: two real daemons with the product's lease (15 s, renewed every 5 s), one Bot
 * API stand-in. The machine running the bot is stopped (SIGSTOP, as a laptop lid closing); a
 * message is sent at once. Timed from the stop to the other machine saying it runs the bot, and to
 * the answer of that message in the chat. `runs` times.
 */
export async function benchFailover(runs = 3): Promise<Row[]> {
  const { startBotApi } = await import("../test/support/bot-api.ts");
  const { ALICE, TOKEN } = await import("../test/support/telegram-harness.ts");
  const takeovers: number[] = [];
  const answered: number[] = [];
  for (let run = 0; run < runs; run++) {
    await withServer(async (server) => {
      const machines = await startMachines(["m1", "m2"], { url: server.url, config: `telegram:\n  allowed_users: [${ALICE.id}]\n` });
      const telegram = await startBotApi({ token: TOKEN, botUsername: "night_bot" });
      const runsBot = (machine: (typeof machines.machines)[0]) => (machine.daemon?.output() ?? "").includes(`this machine (${machine.name}) holds the Telegram lease and runs the bot`);
      const until = async (condition: () => boolean, what: string) => {
        for (const deadline = performance.now() + 120_000; !condition(); await new Promise((resolve) => setTimeout(resolve, 10))) {
          if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        }
      };
      try {
        machines.api.respondWith(() => ({ content: [{ type: "text", text: "the answer" }] }));
        for (const machine of machines.machines) Object.assign(machine.env, { TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: telegram.url });
        await Promise.all(machines.machines.map((machine) => machine.start()));
        await until(() => machines.machines.some(runsBot), "a machine to run the bot");
        const holder = machines.machines.find(runsBot)!;
        const other = machines.machines.find((machine) => machine !== holder)!;
        holder.daemon!.child.kill("SIGSTOP");
        const stopped = performance.now();
        telegram.sendText(ALICE, "are you there?");
        await until(() => runsBot(other), "the other machine to take the bot over");
        takeovers.push(performance.now() - stopped);
        await until(() => telegram.messages(ALICE.id).some((message) => message.text?.includes("the answer")), "the answer");
        answered.push(performance.now() - stopped);
        holder.daemon!.child.kill("SIGCONT");
      } finally {
        await machines.cleanup();
        await telegram.close();
      }
    });
  }
  return [
    { name: `stop of the bot's machine → another runs the bot, median of ${runs} (lease 15 s)`, value: median(takeovers), unit: "ms", target: 30_000 },
    { name: "  slowest", value: Math.max(...takeovers), unit: "ms" },
    { name: `stop → the answer to a message sent at the stop, median of ${runs}`, value: median(answered), unit: "ms" },
  ];
}

if (import.meta.main) {
  const which = process.argv[2];
  if (!which || which === "claim") console.log(`## Claim latency\n\n${formatRows(await benchClaim())}\n`);
  if (!which || which === "append") console.log(`## Session event append\n\n${formatRows(await benchAppend())}\n`);
  if (!which || which === "mirror") console.log(`## How far behind another machine sees a session\n\n${formatRows(await benchMirror())}\n`);
  if (!which || which === "spread") console.log(`## 60 tasks, three machines against one\n\n${formatRows(await benchSpread())}\n`);
  if (!which || which === "failover") console.log(`## Telegram failover\n\n${formatRows(await benchFailover())}\n`);
}
