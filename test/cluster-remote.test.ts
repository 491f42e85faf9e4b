import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { readSessionLog } from "../runtime/session-log.ts";
import { nightshift, until } from "./support/cli.ts";
import { eventually, noDatabase, signedIn, startMachines } from "./support/cluster.ts";

/**
 * Several machines on one PostgreSQL, a task that runs on another machine: its session log is
 * copied into the store as it grows, and this machine's dashboard and `status` show it, live while
 * it runs and whole once it ended (cli/shared-sessions.ts, tasks/session-mirror.ts); a cancel asked
 * here stops it there.
 */

const skip = noDatabase ? { skip: noDatabase } : {};

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("a task's session on another machine", skip, () => {
  it("shows a task running on m2 on m1's Task page and live stream, from the store's copy of its log, and the copy equals m2's log once it ended", async () => {
    const cluster = await startMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    // The task's first model call is held until the test lets it go: the task runs on m2 meanwhile.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    cluster.api.respondWith(async () => {
      await held;
      return { content: [{ type: "text", text: "The answer, written on m2." }] };
    });
    const [m1, m2] = cluster.machines as [typeof cluster.machines[0], typeof cluster.machines[0]];
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    const folder = join(m2.home, "..", "m2-project");
    mkdirSync(folder);
    writeFileSync(join(m2.home, "inbox", "far.md"), `---\ntitle: far away\nworkdir: ${folder}\n---\nCount the files in the project.\n`);
    await until(() => cluster.api.requests.length === 1, "the task's model call");
    const [row] = await cluster.sql<{ id: string }[]>`SELECT id FROM tasks WHERE record->>'title' = 'far away'`;
    const id = row!.id;
    assert.equal(existsSync(join(m1.home, "sessions", `${id}.jsonl`)), false, "m1 has no log of its own for it");

    const dashboard = await signedIn(m1);
    // While it runs: the page is m1's, the timeline m2's (its start, from the store's copy).
    const running = await eventually(
      () => dashboard.get(`/tasks/${id}`),
      (page) => page.status === 200 && page.body.includes("Started: far away"),
    );
    assert.match(running.body, /Started: far away/);
    assert.match(running.body, /<dt>State<\/dt><dd><span class="state running">running<\/span>/);
    // The live stream follows it: m2's next events reach m1's tab as the store is notified of them.
    const live = dashboard.stream(`/live?task=${encodeURIComponent(id)}&after=0`);
    await until(() => live.received().includes("event: log"), "the first events on m1's live stream");
    release();
    await until(() => live.received().includes("The answer, written on m2."), "m2's answer on m1's live stream", 30_000);
    live.close();
    await until(() => existsSync(join(m2.home, "outbox", "far.md")), "the result on m2");

    // Ended: the store holds m2's log as it is, event for event, and m1's pages show it whole.
    const local = await readSessionLog(join(m2.home, "sessions", `${id}.jsonl`));
    const copied = await eventually(
      async () => (await cluster.sql<{ event: unknown }[]>`SELECT event FROM session_events WHERE session = ${id} ORDER BY seq`).map((each) => each.event),
      (events) => events.length === local.length,
    );
    assert.deepEqual(copied, local);
    assert.equal(local.at(-1)?.type, "session_end");
    const ended = await dashboard.get(`/tasks/${id}`);
    assert.match(ended.body, /The answer, written on m2\./);
    // m1's Tasks page lists it, on m2, from the store's index.
    const list = await dashboard.get("/tasks");
    assert.match(list.body, new RegExp(`<a class="task" href="/tasks/${id}">far away</a>\\n<p class="quiet"><span class="state done">[^<]+</span> · on m2 · inbox`));
    const trace = await dashboard.get(`/tasks/${id}/trace`);
    assert.equal(trace.status, 200);
    // `nightshift status TASK` on m1 shows the timeline too.
    const status = await nightshift(["status", id], m1.env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^${id}  done  "far away"  on m2  1 turns`));
    assert.match(status.stdout, /\n +\+0s ▶ far away\n +session \S+, workdir \S+m2-project\n[^]*■ done/);
    const machines = await cluster.sql<{ machine: string }[]>`SELECT DISTINCT machine FROM session_events WHERE session = ${id}`;
    assert.deepEqual(machines.map((each) => each.machine), ["m2"]);
  });

  it("shows on m1's Trace page the calls of a specialist the task consulted on m2, from the store's copy of the specialist's own log", async () => {
    const cluster = await startMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    // The task consults the default reviewer (a specialist has no consult tool), then answers.
    cluster.api.respondWith((request) => {
      const asked = JSON.stringify(request.body.messages);
      if (!(request.body.tools ?? []).some((tool: { name: string }) => tool.name === "consult")) return { content: [{ type: "text", text: "Sound, says the reviewer." }], usage: { input_tokens: 70, output_tokens: 7 } };
      if (asked.includes("report from=")) return { content: [{ type: "text", text: "Reviewed and done." }] };
      return { content: [{ type: "tool_use", id: "toolu_review", name: "consult", input: { specialists: ["reviewer"], question: "Is the plan sound?" } }] };
    });
    const [m1, m2] = cluster.machines as [typeof cluster.machines[0], typeof cluster.machines[0]];
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    const folder = join(m2.home, "..", "m2-project");
    mkdirSync(folder);
    writeFileSync(join(m2.home, "inbox", "reviewed.md"), `---\ntitle: reviewed\nworkdir: ${folder}\n---\nHave the plan reviewed.\n`);
    await until(() => existsSync(join(m2.home, "outbox", "reviewed.md")), "the result on m2", 30_000);
    const [row] = await cluster.sql<{ id: string }[]>`SELECT id FROM tasks WHERE record->>'title' = 'reviewed'`;
    const id = row!.id;
    const session = `${id}.toolu_review.reviewer`;
    const local = await readSessionLog(join(m2.home, "sessions", id, `${session}.jsonl`));
    assert.equal(existsSync(join(m1.home, "sessions", id)), false, "m1 has no specialist log of its own for it");

    // The specialist's own log is in the store as m2 wrote it, event for event.
    const copied = await eventually(
      async () => (await cluster.sql<{ event: unknown }[]>`SELECT event FROM session_events WHERE session = ${session} ORDER BY seq`).map((each) => each.event),
      (events) => events.length === local.length,
    );
    assert.deepEqual(copied, local);
    const dashboard = await signedIn(m1);
    const trace = await dashboard.get(`/tasks/${id}/trace`);
    assert.equal(trace.status, 200);
    assert.match(trace.body, /<span class="who">reviewer<\/span> · claude[^·]*· [\d.]+ s · in 70/, "the reviewer's own model call");
    assert.match(trace.body, /<dt>Model calls<\/dt><dd>3<\/dd>/, "the task's two and the reviewer's one");
    // As on m2's own page.
    const there = await (await signedIn(m2)).get(`/tasks/${id}/trace`);
    assert.match(there.body, /<dt>Model calls<\/dt><dd>3<\/dd>/);
  });

  it("cancels from m1 a task that runs on m2: m2 stops it at its next safe point, and its cancelled result lands where it came from", async () => {
    const cluster = await startMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    // Its model call never answers: the task runs on m2 until it is cancelled.
    cluster.api.respondWith(() => ({ stall: true }));
    const [m1, m2] = cluster.machines as [typeof cluster.machines[0], typeof cluster.machines[0]];
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    const folder = join(m2.home, "..", "m2-project");
    mkdirSync(folder);
    writeFileSync(join(m2.home, "inbox", "stuck.md"), `---\ntitle: stuck\nworkdir: ${folder}\n---\nWait.\n`);
    await until(() => cluster.api.requests.length === 1, "the task's model call on m2");
    const [row] = await cluster.sql<{ id: string }[]>`SELECT id FROM tasks WHERE record->>'title' = 'stuck'`;
    const id = row!.id;
    const asked = await nightshift(["cancel", id], m1.env);
    assert.equal(asked.code, 0, asked.stderr);
    assert.match(asked.stdout, new RegExp(`cancelling ${id}: it stops at the next safe point`));
    await until(() => existsSync(join(m2.home, "outbox", "stuck.md")), "the cancelled result on m2");
    assert.match(readFileSync(join(m2.home, "outbox", "stuck.md"), "utf8"), /status: cancelled/);
    const [stored] = await eventually(
      () => cluster.sql<{ state: string; machine: string; reason: string }[]>`SELECT state, machine, record->>'reason' AS reason FROM tasks WHERE id = ${id}`,
      (rows) => rows[0]?.state === "cancelled",
    );
    assert.equal(stored?.state, "cancelled");
    assert.equal(stored?.machine, "m2");
    assert.match(stored?.reason ?? "", /cancelled with nightshift cancel/);
    assert.equal(cluster.api.requests.length, 1, "not run again anywhere");
  });
});
