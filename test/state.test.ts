import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, it } from "node:test";
import { openSessionLog } from "../runtime/session-log.ts";
import { openState, readStateQuietly } from "../tasks/state.ts";
import { tempDir } from "./support/home.ts";
import { syntheticId, writeV1State } from "./support/state-history.ts";

const CHILD = join(import.meta.dirname, "support", "state-child.ts");

const NOW = Date.UTC(2026, 11, 2, 9, 0);
let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function home(): string {
  const dir = tempDir("nightshift-state-", "/var/tmp");
  cleanups.push(dir.cleanup);
  return dir.path;
}

/** Every file in state/: its inode, size and a hash of its bytes. */
function snapshot(dir: string): Map<string, { ino: number; size: number; hash: string }> {
  return new Map(
    readdirSync(dir).map((name) => {
      const path = join(dir, name);
      const stat = statSync(path);
      return [name, { ino: stat.ino, size: stat.size, hash: stat.isFile() ? createHash("sha256").update(readFileSync(path)).digest("hex") : "" }];
    }),
  );
}

describe("the task state with a long history", () => {
  it("changes a task's state without rewriting the 10,000 finished tasks before it", async () => {
    const h = home();
    writeV1State(h, 10_000, NOW);
    const { store } = await openState(h, () => NOW);
    const before = snapshot(join(h, "state"));
    await store.change("hot-task", { state: "running" });
    const after = snapshot(join(h, "state"));
    // The history (every file of a megabyte or more) keeps its file and its bytes; what the change wrote is small.
    for (const [name, was] of before) {
      if (was.size < 1_000_000) continue;
      const now = after.get(name);
      assert.equal(now?.ino, was.ino, `${name} was replaced by a new file`);
      assert.equal(now?.hash, was.hash, `${name} was rewritten`);
    }
    const written = [...after].reduce((sum, [name, now]) => sum + Math.max(0, now.size - (before.get(name)?.size ?? 0)), 0);
    assert.ok(written <= 64 * 1024, `one state change grew state/ by ${written} bytes`);
  });
});

describe("moving a version-1 state file into SQLite", () => {
  it("keeps every task and cursor, keeps the old file renamed, and imports nothing twice after a crash before the rename", async () => {
    const h = home();
    writeV1State(h, 1_000, NOW);
    const v1 = join(h, "state", "nightshift.json");
    const original = readFileSync(v1, "utf8");
    const expected = JSON.parse(original).tasks as Array<{ id: string }>;

    const first = await openState(h, () => NOW);
    assert.deepEqual(first.migrated && { tasks: first.migrated.tasks, added: first.migrated.added }, { tasks: 1_001, added: 1_001 });
    assert.equal(existsSync(v1), false);
    assert.equal(readFileSync(first.migrated!.movedTo, "utf8"), original, "the old file is kept byte for byte");
    for (const task of expected) assert.deepEqual(first.store.get(task.id), task);
    assert.equal(first.store.count(), 1_001);
    assert.equal(first.store.lastRun("daily.md"), NOW);
    assert.deepEqual(first.store.active().map((task) => task.id), ["hot-task"]);
    await first.store.change("hot-task", { state: "running" });
    first.store.close();

    // A crash after the import's commit but before the rename leaves both files: the next open imports again.
    copyFileSync(first.migrated!.movedTo, v1);
    const second = await openState(h, () => NOW);
    assert.equal(second.migrated?.added, 0);
    assert.notEqual(second.migrated?.movedTo, first.migrated!.movedTo, "a kept file is never replaced");
    assert.equal(readFileSync(first.migrated!.movedTo, "utf8"), original);
    assert.equal(second.store.count(), 1_001);
    assert.equal(second.store.get("hot-task")?.state, "running", "a change made after the first import is not undone");
    assert.equal(second.store.find("task 1.md")?.id, syntheticId(1));
    second.store.close();
  });

  it("moves a damaged version-1 file aside and rebuilds the tasks instead", async () => {
    const h = home();
    writeV1State(h, 3, NOW);
    const v1 = join(h, "state", "nightshift.json");
    const damaged = readFileSync(v1, "utf8").slice(0, 500);
    writeFileSync(v1, damaged);
    const { store, recovered, migrated } = await openState(h, () => NOW);
    assert.equal(migrated, undefined);
    assert.match(recovered!.movedTo, /nightshift\.json\.damaged-/);
    assert.equal(readFileSync(recovered!.movedTo, "utf8"), damaged);
    store.close();
  });
});

describe("reading the state while the daemon is not running", () => {
  it("reads a version-1 file not yet moved into the database, even when an empty database is already there", async () => {
    const h = home();
    const ids = writeV1State(h, 20, NOW);
    // What a daemon killed after creating the database and before the import committed leaves.
    new DatabaseSync(join(h, "state", "nightshift.db")).close();
    const reader = readStateQuietly(h);
    try {
      assert.equal(reader.count(), ids.length);
      assert.equal(reader.find(ids[0]!)?.title, "Synthetic task 0");
    } finally {
      reader.close();
    }
  });
});

describe("a task record that does not read", () => {
  it("is left in the file and named, and the rest of the state is kept, not moved aside", async () => {
    const h = home();
    writeV1State(h, 20, NOW); // 20 finished tasks and one queued, hot-task
    (await openState(h, () => NOW)).store.close();
    const db = new DatabaseSync(join(h, "state", "nightshift.db"));
    db.prepare("UPDATE tasks SET record = ? WHERE id = ?").run(JSON.stringify({ id: "hot-task", state: "queued", priority: "urgent" }), "hot-task");
    db.close();
    const opened = await openState(h, () => NOW);
    try {
      assert.equal(opened.recovered, undefined, "not taken for damage");
      assert.equal(opened.unreadable?.length, 1);
      assert.match(opened.unreadable![0]!, /^hot-task: /);
      assert.equal(opened.store.count(), 21, "every task is still in the file");
      assert.equal(opened.store.active().length, 0, "the unreadable one is not run");
      assert.equal(opened.store.find(syntheticId(3))?.title, "Synthetic task 3");
    } finally {
      opened.store.close();
    }
  });
});

describe("a state file this Nightshift cannot open", () => {
  it("refuses a file from a newer version and leaves it where it is", async () => {
    const h = home();
    const { store } = await openState(h, () => NOW);
    store.close();
    const file = join(h, "state", "nightshift.db");
    const db = new DatabaseSync(file);
    db.exec("PRAGMA user_version = 99");
    db.close();
    const before = readFileSync(file);
    await assert.rejects(openState(h, () => NOW), (error: Error) => error.name === "StateRefused" && /newer Nightshift \(schema 99.*update Nightshift/.test(error.message));
    assert.deepEqual(readFileSync(file), before);
    assert.deepEqual(readdirSync(join(h, "state")).filter((name) => name.includes("damaged")), []);
  });
});

describe("the task state's readers", () => {
  it("finds old tasks by id and name, lists the newest, and gives the digest what finished since a time", async () => {
    const h = home();
    writeV1State(h, 1_000, NOW);
    const { store } = await openState(h, () => NOW);
    assert.equal(store.get(syntheticId(0))?.title, "Synthetic task 0");
    assert.equal(store.find("task 2.md")?.id, syntheticId(2));
    assert.equal(store.bySource("telegram:1000:3")?.id, syntheticId(3));
    assert.deepEqual(store.idsMatching("000007-abcdef"), [syntheticId(7)]);
    const overview = store.overview(10);
    assert.deepEqual(overview.map((task) => task.id), [...Array.from({ length: 10 }, (_, k) => syntheticId(999 - k)), "hot-task"]);
    // Tasks finish 30 s after they are created, a minute apart: the last 60 minutes hold 60 of them.
    const since = NOW - 60 * 60_000;
    const finished = store.finishedSince(since);
    assert.equal(finished.length, 60);
    assert.ok(finished.every((task) => task.finished! >= since && task.state !== "queued"));
    assert.equal(finished[0]!.id, syntheticId(999), "newest first");
    const failed = store.finishedSince(since, "failed");
    assert.deepEqual(failed.map((task) => task.id), finished.filter((task) => task.state === "failed").map((task) => task.id), "only the failed ones, in the same order");
    assert.ok(failed.length > 0);
    store.close();
  });
});

describe("a crash while tasks finish", () => {
  it("loses and duplicates nothing when killed between a task's two writes", async () => {
    const h = home();
    const child = await runChild(h, 20, 7);
    assert.equal(child.signal, "SIGKILL");
    const { store } = await openState(h, () => NOW);
    assert.equal(store.count(), 20);
    const killed = child.lines.filter((line) => line.startsWith("running ")).at(-1)!.slice("running ".length);
    assert.equal(store.get(killed)?.state, "running", "the first write of the finish is durable, the second never happened");
    assert.deepEqual(store.active().map((task) => task.id), Array.from({ length: 14 }, (_, k) => `crash-${String(k + 6).padStart(4, "0")}`));
    store.close();
  });

  it("keeps every change it reported durable when killed at any moment, and each task once", async () => {
    const h = home();
    for (let round = 0; round < 3; round++) {
      const child = await runChild(h, 300, undefined, 20 + round * 40);
      const { store } = await openState(h, () => NOW);
      assert.equal(store.count(), 300);
      for (const line of child.lines) {
        const [state, id] = line.split(" ");
        if (state === "done") assert.equal(store.get(id!)?.state, "done", `${id} was reported done`);
      }
      const seen = new Set(store.overview(1_000).map((task) => task.id));
      assert.equal(seen.size, 300);
      for (const task of store.active()) assert.ok(task.state === "queued" || task.state === "running");
      store.close();
    }
  });
});

/** A session log as the daemon leaves it for an inbox task: its start, and its end if `ended`. */
async function sessionOf(h: string, id: string, name: string, ended = false): Promise<string> {
  const path = join(h, "sessions", `${id}.jsonl`);
  const log = await openSessionLog(path, id, { now: () => NOW });
  const task = { title: `Task ${name}`, prompt: "Do it.", workdir: h, model: "main", budget: { max_turns: 5, max_usd: 1, timeout_ms: 60_000 }, source: `inbox:${name}` };
  await log.append({ type: "session_start", at: NOW, task });
  if (ended) await log.append({ type: "session_end", at: NOW + 1, status: "done", answer: "ok", turns: 1, cost_usd: 0.01, tokens: { input: 1, output: 1, cache_read: 0, cache_write: 0 } });
  await log.close();
  mkdirSync(join(h, "inbox", ".done"), { recursive: true });
  writeFileSync(join(h, "inbox", ".done", name), `---\ntitle: Task ${name}\n---\nDo it.\n`);
  return path;
}

describe("a damaged or lost state", () => {
  it("takes an empty file for damage: moved aside, and the tasks rebuilt from the session logs", async () => {
    const h = home();
    await sessionOf(h, "s-done", "done.md", true);
    (await openState(h, () => NOW)).store.close();
    const file = join(h, "state", "nightshift.db");
    writeFileSync(file, "");
    const opened = await openState(h, () => NOW);
    try {
      assert.match(opened.recovered?.problem ?? "", /empty/);
      assert.ok(existsSync(opened.recovered!.movedTo), "the empty file is kept aside");
      assert.equal(opened.store.get("s-done")?.state, "done", "a finished task does not vanish");
    } finally {
      opened.store.close();
    }
  });

  it("resumes the rebuilt tasks that were running at once", async () => {
    const h = home();
    await sessionOf(h, "s-running", "running.md");
    mkdirSync(join(h, "state"), { recursive: true });
    writeFileSync(join(h, "state", "nightshift.db"), "not a database ".repeat(100));
    const opened = await openState(h, () => NOW);
    try {
      assert.equal(opened.recovered?.tasks, 1);
      assert.deepEqual(opened.store.active().map((task) => [task.id, task.state]), [["s-running", "running"]]);
    } finally {
      opened.store.close();
    }
  });

  it("rebuilds a task whose session log is damaged as failed, and never queues its inbox file again", async () => {
    const h = home();
    const path = await sessionOf(h, "s-damaged", "damaged.md");
    appendFileSync(path, '{"type":"tool_st{"type":"tool_end"}\n{"type":"resumed","at":1,"attempt":1}\n'); // a torn line glued to the next
    mkdirSync(join(h, "state"), { recursive: true });
    writeFileSync(join(h, "state", "nightshift.db"), "not a database ".repeat(100));
    const opened = await openState(h, () => NOW);
    try {
      const task = opened.store.get("s-damaged");
      assert.equal(task?.state, "failed");
      assert.equal(task?.name, "damaged.md");
      assert.match(task?.reason ?? "", /session log is damaged .*s-damaged\.jsonl:3: damaged line\).*nothing in it runs again/);
      assert.equal(opened.unstarted, undefined, "its inbox file is not queued again");
      assert.deepEqual(opened.store.active(), []);
    } finally {
      opened.store.close();
    }
  });

  it("holds back an inbox file without a task while a session log that does not read may be its run", async () => {
    const h = home();
    mkdirSync(join(h, "sessions"), { recursive: true });
    writeFileSync(join(h, "sessions", "s-garbled.jsonl"), "\u0000\u0000 garbled \n\u0000\u0000\n{\"type\":\"tool_start\"}\n");
    writeFileSync(join(h, "sessions", "s-created.jsonl"), '{"format":"nightshift-session","version":1,"id":"s-created"}\n'); // killed as it was created: nothing ran
    mkdirSync(join(h, "inbox", ".done"), { recursive: true });
    writeFileSync(join(h, "inbox", ".done", "lost.md"), "---\ntitle: Lost\n---\nDo it.\n");
    const opened = await openState(h, () => NOW);
    try {
      assert.equal(opened.unstarted, undefined);
      assert.deepEqual(opened.held?.map((entry) => entry.name), ["lost.md"]);
      assert.match(opened.held![0]!.why, /^sessions\/s-garbled\.jsonl does not read/);
    } finally {
      opened.store.close();
    }
  });

  it("records again a finished inbox task the state lost (its -wal gone), from its session log, and queues nothing", async () => {
    const h = home();
    await sessionOf(h, "s-finished", "finished.md", true);
    mkdirSync(join(h, "outbox"), { recursive: true });
    writeFileSync(join(h, "outbox", "finished.md"), "---\nstatus: done\n---\nok\n");
    writeFileSync(join(h, "inbox", ".done", "answered long ago.md"), "---\ntitle: Old\n---\nDo it.\n");
    writeFileSync(join(h, "outbox", "answered long ago.md"), "---\nstatus: done\n---\nok\n");
    const opened = await openState(h, () => NOW);
    try {
      assert.deepEqual(opened.relogged?.map((task) => [task.name, task.state]), [["finished.md", "done"]]);
      assert.equal(opened.store.find("finished.md")?.state, "done", "a finished task does not vanish");
      assert.equal(opened.unstarted, undefined);
      assert.equal(opened.held, undefined);
    } finally {
      opened.store.close();
    }
  });

  it("queues an inbox file without a task or a session (a crash between the move and the queue)", async () => {
    const h = home();
    await sessionOf(h, "s-other", "other.md", true);
    writeFileSync(join(h, "sessions", "s-created.jsonl"), '{"format":"nightshift-session","version":1,"id":"s-created"}\n'); // killed as it was created: nothing ran
    writeFileSync(join(h, "inbox", ".done", "never ran.md"), "---\ntitle: Never ran\n---\nDo it.\n");
    const opened = await openState(h, () => NOW);
    try {
      assert.deepEqual(opened.unstarted, ["never ran.md"]);
      assert.deepEqual(opened.relogged?.map((task) => [task.name, task.id, task.state]), [["other.md", "s-other", "done"]], "the one that ran is recorded from its log");
    } finally {
      opened.store.close();
    }
  });
});

/** Runs test/support/state-child.ts; `killAfterLines` kills it from here once it printed that many lines. */
async function runChild(h: string, tasks: number, killAfterRunning?: number, killAfterLines?: number): Promise<{ lines: string[]; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, [CHILD, h, String(tasks), ...(killAfterRunning ? [String(killAfterRunning)] : [])], { stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  child.stdout.on("data", (chunk) => {
    output += chunk;
    const lines = output.split("\n").filter((line) => line.startsWith("running ") || line.startsWith("done "));
    if (killAfterLines !== undefined && lines.length >= killAfterLines && child.exitCode === null) child.kill("SIGKILL");
  });
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on("close", (_code, signal) => resolve(signal)));
  // Only whole lines: one cut by the kill was never reported.
  const lines = output.split("\n").slice(0, -1).filter((line) => line.startsWith("running ") || line.startsWith("done "));
  return { lines, signal };
}
