import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { cluster as clusterOf, TELEGRAM_LEASE, type Cluster } from "../runtime/store/pg-cluster.ts";
import { sharedFollowUps } from "../runtime/store/pg-follow-ups.ts";
import { sharedMark } from "../runtime/store/pg-marks.ts";
import { sharedNotices } from "../runtime/store/pg-notices.ts";
import { connectPg, type Sql } from "../runtime/store/pg.ts";
import { freshDatabase, noDatabase, taskRecords } from "./support/cluster.ts";

/**
 * What the machine running the bot shares with the others, against a real PostgreSQL: the queue of
 * notices it sends for them, follow-ups it asks of the machine that ran a task, and every machine's
 * finished tasks for the digest.
 */
describe("Telegram's work shared between several machines", noDatabase ? { skip: noDatabase } : {}, () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let sql: Sql;
  let m1: Cluster;
  let m2: Cluster;
  const record = taskRecords("telegram");
  /** A task m2 claimed, started and ended: its row as m2 leaves it. */
  const ranOnM2 = async (title: string, finished: number) => {
    const task = record(title);
    await m1.enqueue(task, "m2");
    await m2.claim();
    await m2.publish({ ...task, state: "done", attempts: 1, finished }, { result: { status: "done", answer: "yes", turns: 1, costUsd: 0.01 }, delivered: false });
    return task;
  };

  before(async () => {
    db = await freshDatabase();
    sql = await connectPg(db.url);
    [m1, m2] = ["m1", "m2"].map((name) => clusterOf(sql, name)) as [Cluster, Cluster];
  });
  beforeEach(async () => {
    await sql`DELETE FROM tasks`;
    await sql`DELETE FROM telegram_notices`;
    await sql`DELETE FROM leases`;
  });
  after(async () => {
    await sql?.end({ timeout: 1 });
    await db?.drop();
  });

  it("sends each notice once, only from the machine holding the Telegram lease, and never one taken before a takeover", async () => {
    const fromM2 = sharedNotices(sql, "m2");
    await fromM2.add({ message: { text: "disk full on m2" } });
    await fromM2.add({ chat: 42, message: { document: { filename: "a.md", content: "long" }, caption: "answer" } });
    const viaM1 = sharedNotices(sql, "m1");
    const [first, second] = await viaM1.unsent(10);
    assert.deepEqual([first?.machine, first?.message, first?.chat], ["m2", { text: "disk full on m2" }, undefined]);
    assert.equal(second?.chat, 42);
    assert.equal(await viaM1.take(first!.id), "lost", "no lease: nothing taken");
    assert.equal(await m1.lease(TELEGRAM_LEASE, 60_000), true);
    assert.equal(await viaM1.take(first!.id), "mine");
    assert.equal(await viaM1.take(first!.id), "taken", "taken once");
    // m1 is stopped before the second; m2 takes the lease over and sends it; m1, woken, takes nothing.
    await sql`UPDATE leases SET expires = now() - interval '1 second'`;
    assert.equal(await m2.lease(TELEGRAM_LEASE, 60_000), true);
    const viaM2 = sharedNotices(sql, "m2");
    assert.deepEqual((await viaM2.unsent(10)).map((notice) => notice.id), [second!.id], "the one m1 took is not sent again");
    assert.equal(await viaM1.take(second!.id), "lost");
    assert.equal(await viaM2.take(second!.id), "mine");
    assert.deepEqual(await viaM2.unsent(10), []);
  });

  it("adds a notice with a key once, whichever machine adds it and however often", async () => {
    const silent = { key: "silent:m3:1700000000000", message: { text: "m3 is silent" } };
    await sharedNotices(sql, "m1").add(silent);
    await sharedNotices(sql, "m1").add(silent);
    await sharedNotices(sql, "m2").add(silent);
    assert.equal((await sharedNotices(sql, "m2").unsent(10)).length, 1);
  });

  it("prunes notices sent longer ago than it keeps them, never one still unsent", async () => {
    await sql`DELETE FROM telegram_notices`;
    const notices = sharedNotices(sql, "m1");
    await notices.add({ message: { text: "old and sent" } });
    await notices.add({ message: { text: "old, never sent" } });
    await notices.add({ message: { text: "sent just now" } });
    await sql`UPDATE telegram_notices SET created = now() - interval '8 days' WHERE message->>'text' LIKE 'old%'`;
    await sql`UPDATE telegram_notices SET sent = true WHERE message->>'text' <> 'old, never sent'`;
    assert.equal(await notices.prune(7 * 86_400_000), 1);
    const left = await sql<{ text: string }[]>`SELECT message->>'text' AS text FROM telegram_notices ORDER BY id`;
    assert.deepEqual(left.map((row) => row.text), ["old, never sent", "sent just now"]);
  });

  it("asks the machine that ran a finished task to go on with a follow-up, once, and refuses one while it is busy", async () => {
    const task = await ranOnM2("ran on m2", 100);
    const bot = sharedFollowUps(sql, "m1");
    const asked = await bot.ask(task.id, "and then?");
    assert.equal(asked.outcome, "asked");
    assert.equal(asked.outcome === "asked" && asked.task.machine, "m2");
    assert.equal((await bot.ask(task.id, "again")).outcome, "busy", "one follow-up at a time");
    assert.equal((await bot.ask("no-such-task", "hello")).outcome, "unknown");
    assert.deepEqual(await sharedFollowUps(sql, "m1").forMe(), [], "asked of m2 only");
    const m2FollowUps = sharedFollowUps(sql, "m2");
    assert.deepEqual(await m2FollowUps.forMe(), [{ id: task.id, text: "and then?" }]);
    assert.equal(await m2FollowUps.take(task.id), true);
    assert.equal(await m2FollowUps.take(task.id), false, "taken once");
    await m2FollowUps.giveBack(task.id, "and then?");
    assert.deepEqual(await m2FollowUps.forMe(), [{ id: task.id, text: "and then?" }], "given back when it could not be taken in");
    await m2FollowUps.take(task.id);
    await m2.publish({ ...task, state: "queued", attempts: 1 });
    assert.equal((await bot.ask(task.id, "more")).outcome, "busy", "running again");
  });

  it("keeps when the last digest was sent for whichever machine runs the bot next, only ever forward", async () => {
    const onM1 = sharedMark(sql, "@digest-sent");
    assert.equal(await onM1.get(), undefined);
    await onM1.set(1_000);
    const onM2 = sharedMark(sql, "@digest-sent");
    assert.equal(await onM2.get(), 1_000, "m2, running the bot now, covers the time since m1's digest");
    await onM2.set(500); // a machine whose clock is behind
    assert.equal(await onM1.get(), 1_000);
    const schedules = await sql<{ name: string }[]>`SELECT name FROM schedule_cursors`;
    assert.deepEqual(schedules.map((row) => row.name), ["@digest-sent"], "beside the schedules' cursors, under a name no schedule file has");
  });

  it("lists every machine's tasks finished since a time, with the machine each ran on", async () => {
    await ranOnM2("old", 100);
    await ranOnM2("new", 300);
    const mine = record("m1's", { origin: "inbox" });
    await m1.enqueue(mine, "m1");
    await m1.claim();
    await m1.publish({ ...mine, state: "failed", attempts: 1, finished: 200 });
    const finished = await m1.finishedSince(150);
    assert.deepEqual(finished.map((task) => `${task.record.title} ${task.machine}`), ["new m2", "m1's m1"]);
  });
});
