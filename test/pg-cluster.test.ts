import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { cluster as clusterOf, type Cluster } from "../runtime/store/pg-cluster.ts";
import { connectPg, type Sql } from "../runtime/store/pg.ts";
import type { TaskRecord } from "../tasks/state.ts";
import { join } from "node:path";
import { createStoreWatch } from "../runtime/store/outage.ts";
import { createTraceLogger } from "../runtime/trace.ts";
import { joinShared } from "../tasks/cluster.ts";
import { openState } from "../tasks/state.ts";
import { freshDatabase, noDatabase, taskRecords } from "./support/cluster.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";

/** The shared queue's rules, against a real PostgreSQL: three machines' handles on one fresh database. */
describe("the shared queue of several machines", noDatabase ? { skip: noDatabase } : {}, () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let sql: Sql;
  let m1: Cluster;
  let m2: Cluster;
  let m3: Cluster;
  const record = taskRecords("inbox");
  /** Makes `name` look asleep: its last heartbeat a minute ago. */
  const silence = (name: string) => sql`UPDATE machines SET heartbeat = now() - interval '1 minute' WHERE name = ${name}`;

  before(async () => {
    db = await freshDatabase();
    sql = await connectPg(db.url);
    [m1, m2, m3] = ["m1", "m2", "m3"].map((name) => clusterOf(sql, name)) as [Cluster, Cluster, Cluster];
    for (const machine of [m1, m2, m3]) await machine.beat(0, 1);
  });
  beforeEach(async () => {
    // Each case starts from an empty queue, every machine just heard from.
    await sql`DELETE FROM tasks`;
    for (const machine of [m1, m2, m3]) await machine.beat(0, 1);
  });
  after(async () => {
    await sql?.end({ timeout: 1 });
    await db?.drop();
  });

  it("gives each queued task to one machine only, however many claim at once, highest priority first", async () => {
    await m1.enqueue(record("low", { priority: "low" }));
    await m1.enqueue(record("normal"));
    await m1.enqueue(record("high", { priority: "high" }));
    const claims = await Promise.all([m1, m2, m3, m1, m2, m3].map((machine) => machine.claim()));
    const titles = claims.flatMap((claimed) => (claimed ? [claimed.title] : []));
    assert.deepEqual([...titles].sort(), ["high", "low", "normal"]);
    assert.equal(claims.filter((claimed) => !claimed).length, 3);
    await m2.enqueue(record("after"));
    assert.equal((await m3.claim())?.title, "after");
  });

  it("lets only the machine a task is pinned to claim it", async () => {
    const pinned = record("pinned");
    await m1.enqueue(pinned, "m2");
    assert.equal(await m1.claim(), undefined);
    assert.equal(await m3.claim(), undefined);
    assert.equal((await m2.claim())?.id, pinned.id);
  });

  it("gives a silent machine's claimed, unstarted, unpinned tasks to the others, and never a started one", async () => {
    const unstarted = record("unstarted");
    const started = record("started");
    const pinned = record("pinned to m1");
    await m1.enqueue(unstarted);
    await m1.enqueue(started);
    await m1.enqueue(pinned, "m1");
    for (let i = 0; i < 3; i++) assert.ok(await m1.claim());
    assert.equal(await m1.start({ ...started, state: "running", attempts: 1 }), true);
    await silence("m1");
    assert.equal(await m2.releaseSilent(), 1);
    assert.equal((await m2.claim())?.id, unstarted.id);
    // m1 wakes and tries to start the task it had claimed: it runs on m2 instead.
    assert.equal(await m1.start({ ...unstarted, state: "running", attempts: 1 }), false);
    assert.equal(await m2.start({ ...unstarted, state: "running", attempts: 1 }), true);
    const rows = await sql<{ id: string; machine: string }[]>`SELECT id, machine FROM tasks WHERE id IN ${sql([unstarted.id, started.id, pinned.id])} ORDER BY id`;
    assert.deepEqual(Object.fromEntries(rows.map((row) => [row.id, row.machine])), { [unstarted.id]: "m2", [started.id]: "m1", [pinned.id]: "m1" });
  });

  it("starts a task the store does not hold (queued here before this machine joined) without asking anyone", async () => {
    const local = record("from before the store");
    assert.equal(await m3.start({ ...local, state: "running", attempts: 1 }), true);
    assert.equal(await m1.get(local.id), undefined, "`nightshift store migrate` is what moves such tasks into the store");
  });

  it("cancels an unclaimed task at once and asks the machine that runs a claimed one", async () => {
    const waiting = record("waiting");
    const running = record("running");
    await m1.enqueue(waiting, "m3");
    await m1.enqueue(running, "m2");
    assert.equal((await m2.claim())?.id, running.id);
    assert.equal(await m1.cancel(waiting.id, "not needed"), "cancelled");
    assert.equal((await m1.get(waiting.id))?.record.state, "cancelled");
    assert.deepEqual((await m1.undelivered({ telegram: false })).map((row) => row.result.status), ["cancelled"], "its cancelled result goes to the machine it came to");
    assert.equal(await m1.cancel(running.id, "stop it"), "asked");
    assert.deepEqual(await m2.cancelsForMe(), [{ id: running.id, reason: "stop it" }]);
    assert.deepEqual(await m3.cancelsForMe(), []);
    await m2.cancelHandled(running.id);
    assert.deepEqual(await m2.cancelsForMe(), []);
    assert.equal(await m1.cancel("no-such-task", "x"), "unknown");
  });

  it("ends cancelled a task cancelled while the machine that claimed it slept, and gives it to no other machine", async () => {
    const task = record("cancelled in its sleep", { deliver_to: "m3" });
    await m3.enqueue(task);
    assert.equal((await m1.claim())?.id, task.id);
    assert.equal(await m3.cancel(task.id, "not needed any more"), "asked");
    await silence("m1");
    assert.equal(await m2.releaseSilent(), 0);
    assert.equal(await m2.claim(), undefined, "never started elsewhere");
    assert.equal((await m2.get(task.id))?.record.state, "cancelled");
    assert.deepEqual((await m3.undelivered({ telegram: false })).map((row) => `${row.result.status}: ${row.result.reason}`), ["cancelled: not needed any more"], "its cancelled result goes to the machine it came to");
    assert.equal(await m1.start({ ...task, state: "running", attempts: 1 }), false, "the sleeper, woken, does not run it");
  });

  it("hands a result to the machine that delivers it, once", async () => {
    const task = record("delivered elsewhere", { deliver_to: "m1" });
    await m1.enqueue(task);
    await sql`UPDATE tasks SET machine = NULL, pin = 'm2' WHERE id = ${task.id}`;
    assert.equal((await m2.claim())?.id, task.id);
    const result = { status: "done" as const, answer: "the answer", turns: 1, costUsd: 0.01 };
    await m2.publish({ ...task, state: "done", finished: 100 }, { result, delivered: false });
    assert.deepEqual((await m1.undelivered({ telegram: false })).map((row) => row.result.answer), ["the answer"]);
    assert.deepEqual(await m2.undelivered({ telegram: false }), []);
    assert.equal(await m1.delivered(task.id), true);
    assert.equal(await m1.delivered(task.id), false, "marked once: a second machine (or try) finds it done");
    assert.deepEqual(await m1.undelivered({ telegram: false }), []);
  });

  it("queues a task once when a retried enqueue runs while the first try is still in flight, and answers both as queued", async () => {
    const task = record("twice");
    assert.deepEqual(await Promise.all([m1.enqueue(task), m1.enqueue(task), m1.enqueue(task)]), [true, true, true]);
    const rows = await sql<{ id: string }[]>`SELECT id FROM tasks`;
    assert.deepEqual(rows.map((row) => row.id), [task.id]);
    // Another task under the same id is still refused.
    await assert.rejects(m2.enqueue({ ...task, created: task.created + 1 }), /task id \S+ is already taken/);
  });

  it("finds a task of any machine by its id, or by the start or end of it, newest first", async () => {
    const a = record("a", { id: "20261202-101010-aaaa1111", created: 100 });
    const b = record("b", { id: "20261202-111111-bbbb1111", created: 200 });
    await m1.enqueue(a);
    await m2.enqueue(b);
    const titles = (rows: Array<{ record: TaskRecord }>) => rows.map((row) => row.record.title);
    assert.deepEqual(titles(await m3.match(a.id, 2)), ["a"]);
    assert.deepEqual(titles(await m3.match("bbbb1111", 2)), ["b"]);
    assert.deepEqual(titles(await m3.match("20261202-1", 2)), ["b", "a"], "two: the caller asks for more of the id");
    assert.deepEqual(titles(await m3.match("1111", 2)), ["b", "a"]);
    assert.deepEqual(titles(await m3.match("%", 2)), [], "a LIKE wildcard is matched as itself");
  });

  it("lists every machine's tasks as the Tasks page filters them: by state and source, newest first, a page at a time", async () => {
    await m1.enqueue(record("a", { created: 100 }));
    await m2.enqueue(record("b", { created: 200, origin: "telegram" }));
    await m3.enqueue(record("c", { created: 300 }));
    const mine = (await m2.claim())!;
    const titles = (rows: Array<{ record: TaskRecord }>) => rows.map((row) => row.record.title);
    assert.deepEqual(titles(await m1.list({}, 10)), ["c", "b", "a"]);
    assert.deepEqual(titles(await m1.list({ origin: "telegram" }, 10)), ["b"]);
    assert.equal((await m1.list({}, 10)).find((row) => row.record.id === mine.id)?.machine, "m2", "each with the machine that claimed it");
    assert.deepEqual(titles(await m1.list({ state: "queued" }, 10)), ["c", "b", "a"]);
    assert.deepEqual(titles(await m1.list({ state: "done" }, 10)), []);
    assert.deepEqual(titles(await m1.list({}, 2)), ["c", "b"]);
    assert.deepEqual(titles(await m1.list({ before: { created: 200, id: (await m1.list({}, 2))[1]!.record.id } }, 2)), ["a"], "the page after the cursor");
  });

  it("holds a lease for one machine until it expires, by the database's clock", async () => {
    assert.equal(await m1.lease("telegram-test", 60_000), true);
    assert.equal(await m2.lease("telegram-test", 60_000), false);
    assert.equal(await m1.lease("telegram-test", 60_000), true, "renewed by its holder");
    await sql`UPDATE leases SET expires = now() - interval '1 second' WHERE name = 'telegram-test'`;
    assert.equal(await m2.lease("telegram-test", 60_000), true, "taken once expired");
    assert.equal(await m1.lease("telegram-test", 60_000), false);
    await m2.releaseLease("telegram-test");
    assert.equal(await m3.lease("telegram-test", 60_000), true, "taken at once after a release");
  });

  it("shows every machine, and one silent for 30 s as not alive", async () => {
    await silence("m3");
    await m2.leave();
    const machines = await m1.machines();
    assert.deepEqual(machines.map((machine) => `${machine.name} ${machine.alive ? "alive" : machine.stopped ? "stopped" : "silent"}`), ["m1 alive", "m2 stopped", "m3 silent"]);
    assert.ok(machines[2]!.silentMs >= 59_000);
  });
});

describe("a machine that ended tasks while its end could not reach the store", noDatabase ? { skip: noDatabase } : {}, () => {
  it("writes their ends at its next start, so the machine they came to delivers them", async () => {
    const db = await freshDatabase();
    const sql = await connectPg(db.url);
    const dir = tempDir("nightshift-settle-");
    try {
      const [m1, m2] = [clusterOf(sql, "m1"), clusterOf(sql, "m2")];
      const task: TaskRecord = { id: "ended-offline", title: "ended offline", origin: "inbox", name: "ended.md", priority: "normal", state: "queued", spec: { title: "t", prompt: "t", workdir: "/tmp", model: "main", budget: { max_turns: 1, max_usd: 1, timeout_ms: 1000 } }, created: 1, attempts: 0, crashes: 0, turns: 0, cost_usd: 0, deliver_to: "m2" };
      await m2.enqueue(task);
      assert.equal((await m1.claim())?.id, task.id);
      assert.equal(await m1.start({ ...task, state: "running", attempts: 1 }), true);
      // m1's own state has it done; the store never heard (the last process died before writing it).
      const { store } = await openState(dir.path, () => 2);
      await store.add({ ...task, state: "done", attempts: 1, finished: 2, turns: 1, cost_usd: 0.01 });
      const watch = createStoreWatch({ clock: new FakeClock(), report: () => {} });
      const joined = joinShared({ cluster: m1, watch, state: store, home: dir.path, trace: createTraceLogger(join(dir.path, "trace.jsonl"), "silent"), telegramHere: () => false });
      assert.equal(await joined.settleEnded(async () => ({ status: "done", answer: "from the log", turns: 1, costUsd: 0.01 })), 1);
      assert.equal((await m2.get(task.id))?.record.state, "done");
      assert.deepEqual((await m2.undelivered({ telegram: false })).map((row) => row.result.answer), ["from the log"]);
      assert.equal(await joined.settleEnded(async () => undefined), 0, "once");
      store.close();
    } finally {
      await sql.end({ timeout: 1 });
      await db.drop();
      dir.cleanup();
    }
  });
});
