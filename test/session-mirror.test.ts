import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { SessionEvent } from "../runtime/events.ts";
import { openSessionLog, readSessionLog } from "../runtime/session-log.ts";
import { openPgSessions, type PgSessions } from "../runtime/store/pg-sessions.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import { createSessionMirror } from "../tasks/session-mirror.ts";
import { freshDatabase, noDatabase } from "./support/cluster.ts";
import { tempDir } from "./support/home.ts";

/**
 * tasks/session-mirror.ts against a real PostgreSQL: the session logs of a machine's tasks, copied
 * into the shared store in order, each event once, through a restart and an outage, and refused to
 * a process whose claim was taken over.
 */

const skip = noDatabase ? { skip: noDatabase } : {};
const database = noDatabase ? undefined : await freshDatabase();
after(async () => database?.drop());

const user = (n: number): SessionEvent => ({ type: "user", at: n, text: `message ${n}` });
const texts = (rows: Array<{ event: SessionEvent }>) => rows.map((row) => (row.event as { text?: string }).text ?? row.event.type);

function recorder() {
  const warnings: string[] = [];
  const trace = { info() {}, error() {}, warn: (_fields: unknown, message: string) => void warnings.push(message) } as unknown as TraceLogger;
  return { warnings, trace };
}

describe("copying session logs to the shared store", skip, () => {
  let sessions: PgSessions;
  const open = async () => (sessions ??= await openPgSessions(database!.url));
  after(async () => sessions?.close());

  it("copies a running session's events as they are written, each once and in order, and stops following it once it ended and is copied whole", async () => {
    const store = await open();
    const dir = tempDir("nightshift-mirror-");
    const { trace, warnings } = recorder();
    const stateFile = join(dir.path, "state", "session-mirror.json");
    const mirror = createSessionMirror({ sessions: store, sessionsDir: dir.path, machine: "m1", stateFile, trace });
    const log = await openSessionLog(join(dir.path, "t1.jsonl"), "t1", { sync: false });
    await log.append(user(1), user(2));
    mirror.grew("t1");
    await mirror.sync();
    assert.deepEqual(texts(await store.readFrom("t1")), ["message 1", "message 2"]);
    assert.deepEqual(JSON.parse(readFileSync(stateFile, "utf8")), ["t1"], "followed until copied whole");
    await log.append(user(3));
    mirror.grew("t1");
    await mirror.sync();
    // Synced again with nothing new: nothing is copied twice.
    await mirror.sync();
    assert.deepEqual(texts(await store.readFrom("t1")), ["message 1", "message 2", "message 3"]);
    await log.append(user(4));
    await log.close();
    mirror.ended("t1");
    await mirror.sync();
    assert.deepEqual(texts(await store.readFrom("t1")), ["message 1", "message 2", "message 3", "message 4"]);
    assert.deepEqual(mirror.pending(), []);
    assert.deepEqual(JSON.parse(readFileSync(stateFile, "utf8")), []);
    assert.deepEqual(warnings, []);
    dir.cleanup();
  });

  it("after a restart, copies what the last process left uncopied, without repeating what the store has, under a new claim that refuses the old process", async () => {
    const store = await open();
    const dir = tempDir("nightshift-mirror-");
    const stateFile = join(dir.path, "state", "session-mirror.json");
    const before = recorder();
    const first = createSessionMirror({ sessions: store, sessionsDir: dir.path, machine: "m1", stateFile, trace: before.trace });
    const log = await openSessionLog(join(dir.path, "t2.jsonl"), "t2", { sync: false });
    await log.append(user(1), user(2));
    first.grew("t2");
    await first.sync();
    // The process stops answering here: the session goes on (resumed by the next process) and ends.
    await log.append(user(3), user(4), user(5));
    await log.close();
    const after = recorder();
    const second = createSessionMirror({ sessions: store, sessionsDir: dir.path, machine: "m1", stateFile, trace: after.trace });
    assert.deepEqual(second.pending(), ["t2"], "the session the last process had not copied whole");
    await second.sync();
    assert.deepEqual(texts(await store.readFrom("t2")), ["message 1", "message 2", "message 3", "message 4", "message 5"]);
    assert.deepEqual(second.pending(), [], "it had ended: copied whole, no longer followed");
    assert.deepEqual(after.warnings, []);
    // The old process wakes with more to copy: its claim is older, its copy refused, and it says so.
    const stray = await openSessionLog(join(dir.path, "t2.jsonl"), "t2", { sync: false });
    await stray.append(user(6));
    await stray.close();
    first.grew("t2");
    await first.sync();
    assert.deepEqual(texts(await store.readFrom("t2")), ["message 1", "message 2", "message 3", "message 4", "message 5"]);
    assert.match(before.warnings.join("\n"), /session t2 is now run by m1; m1 stops writing to it: another process started under this machine's name while this one was silent/);
    assert.deepEqual(first.pending(), []);
    dir.cleanup();
  });

  it("keeps copying a session while the store is away and catches up once it is back, without a word of its own (the store's watch says the outage)", async () => {
    const store = await open();
    const dir = tempDir("nightshift-mirror-");
    const { trace, warnings } = recorder();
    let away = false;
    const refused = () => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    // The real store, with its connection refused while `away`.
    const flaky: PgSessions = {
      ...store,
      claim: (...args) => (away ? Promise.reject(refused()) : store.claim(...args)),
      append: (...args) => (away ? Promise.reject(refused()) : store.append(...args)),
      last: (...args) => (away ? Promise.reject(refused()) : store.last(...args)),
    };
    const mirror = createSessionMirror({ sessions: flaky, sessionsDir: dir.path, machine: "m1", stateFile: join(dir.path, "state", "session-mirror.json"), trace });
    const log = await openSessionLog(join(dir.path, "t3.jsonl"), "t3", { sync: false });
    await log.append(user(1));
    mirror.grew("t3");
    await mirror.sync();
    away = true;
    await log.append(user(2), user(3));
    mirror.grew("t3");
    await mirror.sync();
    await log.append(user(4));
    await log.close();
    mirror.ended("t3");
    await mirror.sync();
    assert.deepEqual(mirror.pending(), ["t3"], "kept until the store takes it");
    away = false;
    await mirror.sync();
    assert.deepEqual(texts(await store.readFrom("t3")), ["message 1", "message 2", "message 3", "message 4"]);
    assert.deepEqual(mirror.pending(), []);
    assert.deepEqual(warnings, []);
    dir.cleanup();
  });

  it("leaves a session another machine holds to that machine, says so once, and follows it no more", async () => {
    const store = await open();
    const dir = tempDir("nightshift-mirror-");
    const { trace, warnings } = recorder();
    const other = (await store.claim("t5", "m2"))!;
    await store.append(other, [user(1)]);
    const log = await openSessionLog(join(dir.path, "t5.jsonl"), "t5", { sync: false });
    await log.append(user(1), user(2));
    await log.close();
    const mirror = createSessionMirror({ sessions: store, sessionsDir: dir.path, machine: "m1", stateFile: join(dir.path, "state", "session-mirror.json"), trace });
    mirror.ended("t5");
    await mirror.sync();
    await mirror.sync();
    assert.deepEqual(mirror.pending(), []);
    assert.deepEqual(warnings, ["session t5 is held by another machine in the shared store; this machine does not copy its log"]);
    assert.deepEqual(texts(await store.readFrom("t5")), ["message 1"], "m2's copy is left as it is");
    dir.cleanup();
  });

  it("copies a specialist's own log from its task's folder as a task's, each event once and in order, and follows it no more once it or its task ended", async () => {
    const store = await open();
    const dir = tempDir("nightshift-mirror-");
    const { trace, warnings } = recorder();
    const mirror = createSessionMirror({ sessions: store, sessionsDir: dir.path, machine: "m1", stateFile: join(dir.path, "state", "session-mirror.json"), trace });
    const task = await openSessionLog(join(dir.path, "t6.jsonl"), "t6", { sync: false });
    await task.append(user(1));
    // Where runtime.ts `runChild` writes a specialist's log: sessions/<task>/<task>.<call>.<name>.jsonl.
    const reviewer = await openSessionLog(join(dir.path, "t6", "t6.toolu_1.reviewer.jsonl"), "t6.toolu_1.reviewer", { sync: false });
    const planner = await openSessionLog(join(dir.path, "t6", "t6.plan.planner.jsonl"), "t6.plan.planner", { sync: false });
    // More than one batch of events: a long specialist catching up.
    const many = Array.from({ length: 450 }, (_, n) => user(n + 1));
    await reviewer.append(...many.slice(0, 5));
    await planner.append(user(1));
    for (const id of ["t6", "t6.toolu_1.reviewer", "t6.plan.planner"]) mirror.grew(id);
    await mirror.sync();
    assert.deepEqual(texts(await store.readFrom("t6.toolu_1.reviewer")), texts(many.slice(0, 5).map((event) => ({ event }))));
    await reviewer.append(...many.slice(5));
    await reviewer.close();
    mirror.ended("t6.toolu_1.reviewer");
    await mirror.sync();
    assert.deepEqual(texts(await store.readFrom("t6.toolu_1.reviewer")), texts(many.map((event) => ({ event }))));
    assert.deepEqual(mirror.pending().sort(), ["t6", "t6.plan.planner"], "the reviewer copied whole and no longer followed");
    // The planner was cut short with its task and logged no end: the task's end ends it.
    await planner.append(user(2));
    await planner.close();
    await task.close();
    mirror.ended("t6");
    await mirror.sync();
    assert.deepEqual(texts(await store.readFrom("t6.plan.planner")), ["message 1", "message 2"]);
    assert.deepEqual(mirror.pending(), []);
    assert.deepEqual(await store.specialistsOf("t6"), ["t6.plan.planner", "t6.toolu_1.reviewer"]);
    assert.deepEqual(warnings, []);
    dir.cleanup();
  });

  it("leaves a specialist's session another machine holds to that machine", async () => {
    const store = await open();
    const dir = tempDir("nightshift-mirror-");
    const { trace, warnings } = recorder();
    const other = (await store.claim("t7.plan.planner", "m2"))!;
    await store.append(other, [user(1)]);
    const log = await openSessionLog(join(dir.path, "t7", "t7.plan.planner.jsonl"), "t7.plan.planner", { sync: false });
    await log.append(user(1), user(2));
    await log.close();
    const mirror = createSessionMirror({ sessions: store, sessionsDir: dir.path, machine: "m1", stateFile: join(dir.path, "state", "session-mirror.json"), trace });
    mirror.ended("t7.plan.planner");
    await mirror.sync();
    assert.deepEqual(mirror.pending(), []);
    assert.deepEqual(warnings, ["session t7.plan.planner is held by another machine in the shared store; this machine does not copy its log"]);
    assert.deepEqual(texts(await store.readFrom("t7.plan.planner")), ["message 1"]);
    dir.cleanup();
  });

  it("copies a log whose last line was torn by a crash as the file reads, the torn line's marker included", async () => {
    const store = await open();
    const dir = tempDir("nightshift-mirror-");
    const { trace } = recorder();
    const path = join(dir.path, "t4.jsonl");
    const log = await openSessionLog(path, "t4", { sync: false });
    await log.append(user(1));
    await log.close();
    const { appendFileSync } = await import("node:fs");
    appendFileSync(path, '{"type":"user","at":2,"te');
    // Reopened after the crash: the torn line is closed by its marker.
    await (await openSessionLog(path, "t4", { sync: false })).close();
    const mirror = createSessionMirror({ sessions: store, sessionsDir: dir.path, machine: "m1", stateFile: join(dir.path, "state", "session-mirror.json"), trace });
    mirror.ended("t4");
    await mirror.sync();
    const copied = (await store.readFrom("t4")).map((row) => row.event);
    assert.deepEqual(copied, await readSessionLog(path));
    assert.equal(copied.at(-1)?.type, "warning");
    dir.cleanup();
  });
});
