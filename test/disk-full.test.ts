import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { startSession } from "../runtime/loop.ts";
import { openSessionLog, readSessionLog } from "../runtime/session-log.ts";
import { createTraceLogger } from "../runtime/trace.ts";
import { createWriteGate, type OutageChange } from "../runtime/write-gate.ts";
import { createDaemon } from "../tasks/daemon.ts";
import { openState, type StateStore } from "../tasks/state.ts";
import { nightshift } from "./support/cli.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";
import { createRuntimeHarness, type RuntimeHarness } from "./support/runtime-harness.ts";
import { createHarness, types, type Harness } from "./support/session.ts";
import { mountSmallDisk, smallDiskSupport, type SmallDisk } from "./support/tmpfs.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
const disk = (size = "1m"): SmallDisk => {
  const mounted = mountSmallDisk(size);
  cleanups.push(() => mounted.cleanup());
  return mounted;
};
const event = (text: string) => ({ type: "warning" as const, at: 1, message: text });
/** What node:sqlite throws when a write finds the disk full. */
const sqliteFull = () => Object.assign(new Error("database or disk is full"), { code: "ERR_SQLITE_ERROR", errcode: 13, errstr: "database or disk is full" });
/** Lets every pending callback and promise run (real I/O included) without moving the fake clock. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe("a session log on a full disk", smallDiskSupport(), () => {
  it("fails an append whole: once space returns the next append is not glued to a torn line", async () => {
    const small = disk();
    const path = join(small.path, "s.jsonl");
    const log = await openSessionLog(path, "s");
    cleanups.push(() => log.close());
    await log.append(event("before"));
    small.fill();
    await assert.rejects(log.append(event("x".repeat(20_000))), { code: "ENOSPC" });
    small.unfill();
    await log.append(event("after"));
    await log.append(event("y".repeat(20_000)));
    assert.deepEqual((await readSessionLog(path)).map((entry) => (entry as { message: string }).message.slice(0, 6)), ["before", "after", "yyyyyy"]);
  });
});

describe("the trace on a full disk", smallDiskSupport(), () => {
  it("cuts back a line cut short and counts the lines it lost in one line once writes work", () => {
    const small = disk();
    const file = join(small.path, "trace.jsonl");
    const trace = createTraceLogger(file, "info");
    cleanups.push(() => trace.close());
    trace.info({ event: "before" });
    small.fill();
    trace.info({ event: "long", text: "x".repeat(20_000) });
    trace.info({ event: "long", text: "y".repeat(20_000) });
    small.unfill();
    trace.info({ event: "after" });
    // Every line parses: none was left half written for the next to be glued to.
    const lines = readFileSync(file, "utf8").trimEnd().split("\n").map((line) => JSON.parse(line) as { event: string; dropped?: number; error?: string });
    assert.deepEqual([lines[0]!.event, lines.at(-1)!.event], ["before", "after"]);
    const notices = lines.filter((line) => line.event === "trace_lines_dropped");
    assert.equal(notices.reduce((sum, line) => sum + line.dropped!, 0), 2);
    assert.deepEqual(new Set(notices.map((line) => line.error)), new Set(["ENOSPC"]));
    assert.equal(lines.length, 2 + notices.length);
  });
});

describe("status of a damaged session log", () => {
  it("shows what the log still proves and names the damaged line instead of reporting a bug", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.cleanup());
    const home = join(dir.path, "home");
    mkdirSync(join(home, "sessions"), { recursive: true });
    const header = JSON.stringify({ format: "nightshift-session", version: 1, id: "t1", created: new Date(0).toISOString() });
    writeFileSync(join(home, "sessions", "t1.jsonl"), `${header}\n{"type":"warning","at":1,"mess{"type":"warning","at":2,"message":"glued"}\n`);
    const status = await nightshift(["status", "t1"], { ...process.env, NIGHTSHIFT_HOME: home });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /t1\.jsonl:2: damaged line: the session log is damaged there/);
    assert.doesNotMatch(status.stderr, /a bug/);
  });
});

describe("the write gate", () => {
  it("says an outage once, tries again after a growing pause, and says when writes work again", async () => {
    const clock = new FakeClock();
    const said: OutageChange[] = [];
    const gate = createWriteGate({ clock, report: (change) => said.push(change) });
    let failures = 3;
    let tries = 0;
    const writing = gate.retry("the thing", () => {
      tries++;
      if (failures-- > 0) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      return "written";
    });
    await settle();
    assert.equal(tries, 1);
    for (const [ms, expected] of [[499, 1], [1, 2], [1000, 3], [2000, 4]] as const) {
      clock.advance(ms);
      await settle();
      assert.equal(tries, expected, `after ${ms} ms more`);
    }
    assert.equal(await writing, "written");
    assert.deepEqual(said.map((change) => [change.state, change.outage.fault, change.outage.what]), [["down", "full", "the thing"], ["up", "full", "the thing"]]);
    await assert.rejects(gate.retry("other", () => Promise.reject(new Error("not a disk problem"))), /not a disk problem/);
    assert.equal(said.length, 2);
  });
});

describe("a session on a full disk", smallDiskSupport(), () => {
  let harness: Harness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  const answer = "the answer ".repeat(2000);

  /** A session whose log is on a small disk, which fills while the model "thinks": resolves once the answer is in hand and the outage said. */
  async function answerOnFullDisk() {
    harness = await createHarness();
    const small = disk();
    const said: OutageChange[] = [];
    const log = await openSessionLog(join(small.path, "s1.jsonl"), "s1", { now: harness.clock.now });
    cleanups.push(() => log.close());
    let release!: () => void;
    const filled = new Promise<void>((resolve) => (release = resolve));
    harness.api.respondWith(async () => {
      await filled;
      return { content: [{ type: "text", text: answer }] };
    });
    const storage = createWriteGate({ clock: harness.clock, report: (change) => said.push(change) });
    const session = startSession(harness.task, { ...harness.deps, log, storage });
    while (harness.api.requests.length === 0) await settle();
    small.fill();
    release();
    while (said.length === 0) await settle();
    return { h: harness, small, said, log, session };
  }

  it("keeps a final answer that could not be written and writes it once space returns, without asking the model again", async () => {
    const { h, small, said, log, session } = await answerOnFullDisk();
    assert.equal(said[0]!.state, "down");
    small.unfill();
    let ended = false;
    session.then(() => (ended = true), () => (ended = true));
    for (let step = 0; !ended && step < 200; step++) {
      h.clock.advance(500);
      await settle();
    }
    const result = await session;
    assert.equal(result.status, "done");
    assert.equal(result.answer, answer.trim());
    assert.equal(h.api.requests.length, 1);
    assert.deepEqual(types(await log.read()), ["session_start", "model_response", "session_end"]);
    assert.deepEqual(said.map((change) => change.state), ["down", "up"]);
  });

  it("writes a response it waits to write when the time budget runs out meanwhile, instead of dropping it and asking again", async () => {
    const { h, small, log, session } = await answerOnFullDisk();
    h.clock.advance(h.task.budget.timeout_ms + 1_000); // the budget runs out while the disk is full
    await settle();
    small.unfill();
    // The retry's next wait may be set only after this test moved the clock (a loaded machine):
    // time moves on until the session ends, never only once.
    let ended = false;
    session.then(() => (ended = true), () => (ended = true));
    for (let step = 0; !ended && step < 200; step++) {
      h.clock.advance(10_000);
      await settle();
    }
    await session;
    assert.equal(h.api.requests.length, 1);
    assert.ok(types(await log.read()).includes("model_response"), "the response paid for is in the log");
  });
});

describe("the daemon when its state cannot be written", () => {
  let runtime: RuntimeHarness | undefined;
  afterEach(async () => {
    await runtime?.close();
    runtime = undefined;
  });

  it("waits with a growing pause instead of retrying in a tight loop, and runs the task once space returns", async () => {
    runtime = await createRuntimeHarness({ config: 'sandbox:\n  mode: "off"\n' });
    runtime.api.script({ content: [{ type: "text", text: "done" }] });
    const { store } = await openState(runtime.home, runtime.clock.now);
    let full = false;
    let changes = 0;
    // The real store, failing as SQLite does on a full disk; bounded, so that a tight loop ends and is counted.
    const state: StateStore = Object.assign(Object.create(store) as StateStore, {
      async change(id: string, fields: object) {
        changes++;
        if (full && changes < 1000) throw sqliteFull();
        full = false;
        return store.change(id, fields);
      },
    });
    const said: OutageChange[] = [];
    const storage = createWriteGate({ clock: runtime.clock, report: (change) => said.push(change) });
    const trace = createTraceLogger(join(runtime.home, "logs", "trace.jsonl"), "info");
    const daemon = createDaemon({ home: runtime.home, clock: runtime.clock, runtime: runtime.runtime, state, trace, storage, concurrency: 1, maxCrashes: 3 });
    cleanups.push(async () => (await daemon.stop(), store.close(), trace.close()));
    full = true;
    await daemon.submit("t1", runtime.task({ title: "Waits" }), { origin: "cli" });
    await settle();
    assert.equal(changes, 1, "one try, then a pause");
    runtime.clock.advance(500);
    await settle();
    assert.equal(changes, 2);
    assert.equal(daemon.get("t1")?.state, "queued");
    full = false;
    runtime.clock.advance(1000);
    await daemon.idle();
    assert.equal(daemon.get("t1")?.state, "done");
    assert.equal(runtime.api.requests.length, 1);
    assert.deepEqual(said.map((change) => change.state), ["down", "up"]);
  });
});
