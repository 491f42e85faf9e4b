import assert from "node:assert/strict";
import { mkdirSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import postgres from "postgres";
import { spendLine } from "../bot/spend.ts";
import { createDailySpend, type MachineDailySpend } from "../runtime/daily-spend.ts";
import { costElsewhere, shareSpend, type SharedSpendWork } from "../cli/shared-spend.ts";
import { costBody, readCost } from "../dashboard/cost-page.ts";
import type { EventOf, SessionEvent, TaskSpec } from "../runtime/events.ts";
import { openSessionLog } from "../runtime/session-log.ts";
import { cluster as clusterOf, type Cluster } from "../runtime/store/pg-cluster.ts";
import { connectPg, type Sql } from "../runtime/store/pg.ts";
import type { Daemon } from "../tasks/daemon.ts";
import { freshDatabase, noDatabase, taskRecords } from "./support/cluster.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";
import { freePort } from "./support/ports.ts";

/**
 * Several machines' spend on one PostgreSQL: what each machine writes of its own (from its session
 * logs and its sessions' events) and what the digest and /budget add up, against a real database.
 */

const T0 = new Date(2026, 11, 15, 12, 0, 0).getTime(); // local noon, 15 December
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const SPEC: TaskSpec = { title: "t", prompt: "p", workdir: "/tmp/w", model: "main", budget: { max_turns: 40, max_usd: 2, timeout_ms: 3_600_000 } };

function response(at: number, cost: number): EventOf<"model_response"> {
  return {
    type: "model_response", at, turn: 1, model: "claude-sonnet-5-5", content: [{ type: "text", text: "ok" }], stop_reason: "end_turn",
    usage: { input_tokens: 10, output_tokens: 10, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
    cost_usd: cost, latency_ms: 100, request_bytes: 100,
  };
}

const checkpoint = (at: number, cost: number): SessionEvent => ({ type: "checkpoint", at, summary: "s", keep_from: 1, dropped_turns: 1, input_tokens_before: 1, method: "small", cost_usd: cost });

/** A session log as a session writes it, last written at its last event. */
async function writeLog(path: string, id: string, events: SessionEvent[]): Promise<void> {
  mkdirSync(join(path, ".."), { recursive: true });
  const log = await openSessionLog(path, id, { sync: false, now: () => events[0]!.at });
  await log.append(...events);
  await log.close();
  const last = events.at(-1)!.at;
  utimesSync(path, last / 1000, last / 1000);
}

/** The daemon's event stream, as the spend sees it. */
function sessions(): Pick<Daemon, "watch"> & { emit(session: string, event: SessionEvent): void } {
  const listeners = new Set<Parameters<Daemon["watch"]>[0]>();
  return {
    watch(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    emit(session, event) {
      for (const listener of listeners) listener(session, { type: "event", event });
    },
  };
}

const near = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual}, expected ${expected}`);

describe("every machine's spend on the shared store", noDatabase ? { skip: noDatabase } : {}, () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let sql: Sql;
  let m1: Cluster;
  let m2: Cluster;
  let clock: FakeClock;
  const made: SharedSpendWork[] = [];
  const cleanups: Array<() => void> = [];

  /** A machine's spend, made as `nightshift start` makes it (before its sessions run), with `logs` already in its sessions/. */
  const machine = async (cluster: Pick<Cluster, "sql" | "machine" | "machines">, dailyUsd: number, logs: Array<{ id: string; events: SessionEvent[] }> = [], daily?: MachineDailySpend) => {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    for (const { id, events } of logs) {
      const task = id.split(".")[0]!;
      await writeLog(id.includes(".") ? join(dir.path, task, `${id}.jsonl`) : join(dir.path, `${id}.jsonl`), id, events);
    }
    const daemon = sessions();
    const spend = shareSpend({ cluster, daemon, sessionsDir: dir.path, clock, dailyUsd, ...(daily ? { daily } : {}) });
    made.push(spend);
    await spend.ready;
    return { spend, emit: daemon.emit };
  };
  const start = (at: number): SessionEvent => ({ type: "session_start", at, task: SPEC });

  before(async () => {
    db = await freshDatabase();
    sql = await connectPg(db.url);
    [m1, m2] = ["m1", "m2"].map((name) => clusterOf(sql, name)) as [Cluster, Cluster];
  });
  beforeEach(async () => {
    clock = new FakeClock(T0);
    await sql`DELETE FROM spend_days`;
    await sql`DELETE FROM spend_tasks`;
    await sql`DELETE FROM tasks`;
    for (const each of [m1, m2]) await each.beat(0, 1);
  });
  after(async () => {
    for (const spend of made) spend.stop();
    for (const cleanup of cleanups) cleanup();
    await sql?.end({ timeout: 1 });
    await db?.drop();
  });

  it("tells this machine's daily budget what the others spent today at each heartbeat, so the budget holds on their sum", async () => {
    const other = await machine(m2, 10, [{ id: "b1", events: [start(T0 - HOUR), response(T0 - HOUR, 9.5)] }]);
    await other.spend.publish();
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const daily = await createDailySpend({ sessionsDir: dir.path, clock, limitUsd: 10 });
    daily.add(0.25);
    const here = await machine(m1, 10, [], daily);
    assert.equal(daily.spent(), 0.25, "nothing heard of the others before a heartbeat");
    await here.spend.publish();
    near(daily.spent(), 9.75, "this machine's and the others' spend of the day");
    near(daily.own(), 0.25, "this machine's own");
    // The next day: the others' spend of yesterday no longer counts.
    clock.advance(DAY);
    near(daily.spent(), 0, "a new day");
  });

  it("draws the Cost page from every machine: the others' days and month from the store, the costliest tasks of them all with their machine", async () => {
    const other = await machine(m2, 10, [{ id: "b1", events: [start(T0 - 2 * DAY), response(T0 - 2 * DAY, 3), response(T0 - HOUR, 1)] }]);
    await other.spend.publish();
    const record = taskRecords("inbox")("the costly one", { id: "b1", cost_usd: 4 });
    await m1.enqueue(record, "m2");
    await m2.claim();
    await m2.publish({ ...record, state: "done", attempts: 1, finished: T0 - HOUR }, { result: { status: "done", answer: "ok", turns: 1, costUsd: 4 }, delivered: false });
    const here = [{ at: T0 - 2 * HOUR, usd: 0.5, task: "a1" }];
    const view = await readCost({ charges: async () => here, tasks: { get: () => undefined }, dailyUsd: 10, elsewhere: costElsewhere(m1) }, T0);
    near(view.days.at(-1)!.usd, 1.5, "today: m1's $0.50 and m2's $1");
    near(view.days.at(-3)!.usd, 3, "two days ago: m2's $3");
    near(view.monthUsd, 4.5, "the month, both machines");
    assert.deepEqual(view.top, [{ id: "b1", title: "the costly one", usd: 4, machine: "m2" }]);
    assert.equal(view.scope, "every machine");
    assert.match(String(costBody(view)), /the costly one<\/a> \$4\.00 <span class="quiet">on m2<\/span>/);
    // The store away: this machine's own, said so.
    const away = await readCost({ charges: async () => here, tasks: { get: () => undefined }, dailyUsd: 10, elsewhere: { byDay: () => Promise.reject(new Error("down")), costliest: async () => [] } }, T0);
    near(away.monthUsd, 0.5, "this machine's");
    assert.equal(away.scope, "this machine only: the shared store did not answer");
  });

  it("adds up every machine's today, this month and top tasks, specialists included, from the logs before the start and the sessions after it", async () => {
    const a = await machine(m1, 10, [
      { id: "a1", events: [start(T0 - 3 * DAY), response(T0 - 3 * DAY, 1), response(T0 - HOUR, 0.5)] },
      { id: "a1.1.reviewer", events: [start(T0 - HOUR), response(T0 - HOUR, 0.25)] },
      // Last written last month: not even opened.
      { id: "old", events: [start(T0 - 40 * DAY), response(T0 - 40 * DAY, 100)] },
    ]);
    const b = await machine(m2, 5, [{ id: "b1", events: [start(T0 - 2 * HOUR), response(T0 - 2 * HOUR, 2)] }]);
    // After the start: a new task and its specialist's compaction; an event dated before the start is the logs' to count.
    a.emit("a2", start(T0 + 1000));
    a.emit("a2", response(T0 + 1000, 0.125));
    a.emit("a2.2.coder", checkpoint(T0 + 2000, 0.0625));
    a.emit("a1", response(T0 - 500, 7));
    await a.spend.publish();
    await b.spend.publish();

    for (const [spend, first] of [[a.spend, "m1"], [b.spend, "m2"]] as const) {
      const summary = await spend.summary();
      near(summary.todayUsd, 0.5 + 0.25 + 0.125 + 0.0625 + 2, `${first}: today`);
      near(summary.monthUsd, 1 + 0.5 + 0.25 + 0.125 + 0.0625 + 2, `${first}: this month`);
      assert.deepEqual(summary.todayTop, [{ id: "b1", usd: 2 }, { id: "a1", usd: 0.75 }, { id: "a2", usd: 0.1875 }]);
      assert.equal(summary.machines?.[0]?.name, first, "this machine first");
      assert.equal(summary.thisMachineOnly, undefined);
    }
    const summary = await a.spend.summary();
    assert.deepEqual(summary.machines, [
      { name: "m1", todayUsd: 0.9375, monthUsd: 1.9375, dailyUsd: 10 },
      { name: "m2", todayUsd: 2, monthUsd: 2, dailyUsd: 5 },
    ]);
    assert.equal(spendLine(summary, { dailyUsd: 10 }), "<b>Spend</b> on every machine: today $2.94 of $10.00 a day (m1 $0.9375, m2 $2.00); this month $3.94");
  });

  it("writes only what changed, each total whole, and writes again what a failed write held", async () => {
    const a = await machine(m1, 10, [{ id: "a1", events: [start(T0 - HOUR), response(T0 - HOUR, 1)] }]);
    await a.spend.publish();
    const today = async () => (await sql<{ usd: number }[]>`SELECT usd FROM spend_days WHERE machine = 'm1'`).map((row) => row.usd);
    assert.deepEqual(await today(), [1]);
    // Nothing new: nothing is written (a marker put in its place stays).
    await sql`UPDATE spend_days SET usd = 99 WHERE machine = 'm1'`;
    await a.spend.publish();
    assert.deepEqual(await today(), [99]);
    // A charge: the day's whole total is written, not a sum of writes.
    a.emit("a1", response(T0 + 1000, 0.5));
    await sql`ALTER TABLE spend_days RENAME TO spend_days_away`;
    await assert.rejects(a.spend.publish(), /spend_days/);
    await sql`ALTER TABLE spend_days_away RENAME TO spend_days`;
    await a.spend.publish();
    assert.deepEqual(await today(), [1.5]);
    const tasks = await sql<{ task: string; usd: number }[]>`SELECT task, usd FROM spend_tasks WHERE machine = 'm1'`;
    assert.deepEqual(tasks.map((row) => `${row.task} ${row.usd}`), ["a1 1.5"]);
  });

  it("counts a silent machine with what it last wrote and names it as silent; a machine stopped on purpose is not", async () => {
    const a = await machine(m1, 10);
    const b = await machine(m2, 10);
    b.emit("b1", response(T0 + 1000, 2));
    await b.spend.publish();
    await sql`UPDATE machines SET heartbeat = now() - interval '10 minutes' WHERE name = 'm2'`;
    const silent = await a.spend.summary();
    near(silent.todayUsd, 2, "today");
    assert.ok((silent.machines?.[1]?.silentMs ?? 0) >= 600_000, JSON.stringify(silent.machines));
    assert.match(spendLine(silent, { dailyUsd: 10 }), /today \$2\.00 of \$10\.00 a day \(m2 \$2\.00\); this month \$2\.00; m2 \(silent 10m: its spend as of then\)$/);
    await m2.leave();
    const stopped = await a.spend.summary();
    assert.equal(stopped.machines?.[1]?.silentMs, undefined);
    near(stopped.todayUsd, 2, "today, m2 stopped");
  });

  it("keeps task totals for today and yesterday and day totals for this month and the last; a new month starts from zero", async () => {
    const a = await machine(m1, 10);
    a.emit("a1", response(T0, 1));
    await a.spend.publish();
    clock.advance(2 * DAY); // 17 December
    a.emit("a2", response(clock.now(), 2));
    await a.spend.publish();
    const days = async () => (await sql<{ day: string }[]>`SELECT day FROM spend_days ORDER BY day`).map((row) => row.day);
    const taskDays = async () => (await sql<{ day: string; task: string }[]>`SELECT day, task FROM spend_tasks ORDER BY day`).map((row) => `${row.day} ${row.task}`);
    assert.deepEqual(await days(), ["2026-12-15", "2026-12-17"]);
    assert.deepEqual(await taskDays(), ["2026-12-17 a2"], "the 15th's task totals are asked for no more");
    clock.time = new Date(2027, 1, 1, 9).getTime(); // 1 February
    a.emit("a3", response(clock.now(), 4));
    await a.spend.publish();
    assert.deepEqual(await days(), ["2027-02-01"], "December is neither this month nor the last");
    const summary = await a.spend.summary();
    near(summary.monthUsd, 4, "February");
    assert.deepEqual(summary.todayTop, [{ id: "a3", usd: 4 }]);
  });

  it("gives this machine's own totals, saying so, when the store does not answer", async () => {
    const away = postgres(`postgres://nightshift@127.0.0.1:${await freePort()}/nightshift`, { max: 1, onnotice: () => {}, connect_timeout: 2 });
    const a = await machine({ machine: "m1", sql: away, machines: () => away`SELECT 1`.then(() => []) }, 10, [{ id: "a1", events: [start(T0 - HOUR), response(T0 - HOUR, 1)] }]);
    a.emit("a2", response(T0 + 1000, 0.5));
    await assert.rejects(a.spend.publish());
    const summary = await a.spend.summary();
    near(summary.todayUsd, 1.5, "today");
    assert.equal(summary.thisMachineOnly, "the shared store did not answer");
    assert.equal(summary.machines, undefined);
    assert.deepEqual(summary.todayTop.map((entry) => entry.id), ["a1", "a2"]);
    assert.equal(spendLine(summary, { dailyUsd: 10 }), "<b>Spend</b> (this machine only: the shared store did not answer): today $1.50 of $10.00 a day; this month $1.50");
    await away.end({ timeout: 1 });
  });
});
