import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import type { Sql } from "../runtime/store/pg.ts";
import type { TaskRecord } from "../tasks/state.ts";
import { agent, until } from "./support/cli.ts";
import { eventually, noDatabase, startMachines } from "./support/cluster.ts";
import { needs } from "./support/prerequisites.ts";

/**
 * A machine killed with SIGKILL (issue 16): what it started waits for it; what it only claimed
 * goes to the others once it has been silent for the threshold (2 s here, set for tests only).
 */

const SILENT = { NIGHTSHIFT_TEST_MACHINE_SILENT_MS: "2000" };
/** The silence threshold, and two heartbeats (5 s each) for another machine to act on it. */
const PAST_SILENCE_MS = 2_000 + 11_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const skip = noDatabase ? { skip: noDatabase } : {};

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("a machine killed with SIGKILL", skip, () => {
  it("keeps the task it started: it waits for that machine, resumes there, and runs no tool call twice", needs("bwrap", "socat"), async () => {
    const cluster = await startMachines(["m1", "m2"], { env: SILENT });
    cleanup = cluster.cleanup;
    const [m1, m2] = cluster.machines as [(typeof cluster.machines)[0], (typeof cluster.machines)[0]];
    let stalled = false;
    cluster.api.respondWith(
      agent("echo ran >> counter.txt; echo counted", () => {
        if (stalled) return undefined;
        stalled = true;
        return { stall: true };
      }),
    );
    // m1 alone, so the task (in a fresh workspace, not pinned when queued) starts there.
    await m1.start();
    writeFileSync(join(m1.home, "inbox", "count.md"), "---\ntitle: count\n---\nCount once.\n");
    await until(() => stalled, "the model request after the tool call", 30_000);
    const [id] = readdirSync(join(m1.home, "workspace"));
    const counter = join(m1.home, "workspace", id!, "counter.txt");
    assert.equal(readFileSync(counter, "utf8"), "ran\n");
    await m2.start();
    m1.daemon!.child.kill("SIGKILL");
    await m1.daemon!.exited;

    // m1 is silent far past the threshold; m2 is free, and still leaves the task alone.
    await sleep(PAST_SILENCE_MS);
    const [row] = await cluster.sql<{ machine: string; state: string }[]>`SELECT machine, state FROM tasks`;
    assert.deepEqual({ ...row }, { machine: "m1", state: "running" });
    assert.equal(cluster.api.requests.length, 2, "no model request from m2");
    assert.equal(existsSync(join(m2.home, "workspace", id!)), false);

    await m1.start();
    await until(() => existsSync(join(m1.home, "outbox", "count.md")), "the result in m1's outbox/", 30_000);
    assert.match(readFileSync(join(m1.home, "outbox", "count.md"), "utf8"), /finished after: counted/);
    assert.equal(readFileSync(counter, "utf8"), "ran\n", "the tool call ran once");
    // The result file comes before the task's end, and its end reaches the store after it is written here.
    const done = await eventually(async () => ({ ...(await cluster.sql<{ machine: string; state: string; delivered: boolean }[]>`SELECT machine, state, delivered FROM tasks`)[0] }), (row) => row.state === "done" && row.delivered === true);
    assert.deepEqual(done, { machine: "m1", state: "done", delivered: true });
  });

  it("gives a task it claimed but never started to another machine once it has been silent long enough, and does not run it when it comes back", async () => {
    const cluster = await startMachines(["m1", "m2"], { env: SILENT });
    cleanup = cluster.cleanup;
    const [m1, m2] = cluster.machines as [(typeof cluster.machines)[0], (typeof cluster.machines)[0]];
    cluster.api.respondWith(() => ({ content: [{ type: "text", text: "done by whoever" }] }));
    await m1.start();
    m1.daemon!.child.kill("SIGKILL");
    await m1.daemon!.exited;
    // What m1 left: a task queued on m2, claimed by m1 just before it died (the claim is the
    // store's only trace of it; m1's own state never held it).
    const record = await plantClaim(cluster.sql, orphan("left", m2.home), "m2");

    await m2.start();
    await until(() => existsSync(join(m2.home, "outbox", "left.md")), "the result in m2's outbox/", PAST_SILENCE_MS + 20_000);
    assert.match(readFileSync(join(m2.home, "outbox", "left.md"), "utf8"), /done by whoever/);
    await m1.start();
    await sleep(1_000);
    const [row] = await cluster.sql<{ machine: string; state: string }[]>`SELECT machine, state FROM tasks`;
    assert.deepEqual({ ...row }, { machine: "m2", state: "done" });
    assert.equal(cluster.api.requests.length, 1, "run once, on m2");
    assert.equal(existsSync(join(m1.home, "sessions", `${record.id}.jsonl`)), false);
  });

  it("takes up a task it claimed but never started when it comes back before the others take it", async () => {
    const cluster = await startMachines(["m1"]);
    cleanup = cluster.cleanup;
    const [m1] = cluster.machines as [(typeof cluster.machines)[0]];
    cluster.api.respondWith(() => ({ content: [{ type: "text", text: "done by m1" }] }));
    await m1.start();
    m1.daemon!.child.kill("SIGKILL");
    await m1.daemon!.exited;
    // Claimed by m1 whose answer it never read (it died, or the connection dropped).
    await plantClaim(cluster.sql, orphan("mine", m1.home), "m1");
    await m1.start();
    await until(() => existsSync(join(m1.home, "outbox", "mine.md")), "the result in m1's outbox/", 30_000);
    assert.equal(cluster.api.requests.length, 1);
  });
});

/** `record` as the store holds it claimed by m1 and never started, its result to go to `deliverTo`. */
async function plantClaim(sql: Sql, record: TaskRecord, deliverTo: string): Promise<TaskRecord> {
  await sql`INSERT INTO tasks (id, state, priority, created, machine, deliver_to, record) VALUES (${record.id}, 'queued', 1, ${record.created}, 'm1', ${deliverTo}, ${sql.json(record as never)})`;
  return record;
}

/** An inbox task of `home`'s machine as the store holds it once queued (workdir: that machine's fresh folder). */
function orphan(name: string, home: string): TaskRecord {
  const id = `20261202-000000-${name.padEnd(8, "0").slice(0, 8)}`;
  return {
    id,
    title: name,
    origin: "inbox",
    name: `${name}.md`,
    priority: "normal",
    state: "queued",
    spec: { title: name, prompt: "Do it.", workdir: join(home, "workspace", id), model: "main", budget: { max_turns: 10, max_usd: 1, timeout_ms: 600_000 }, source: `inbox:${name}.md` },
    created: Date.now(),
    attempts: 0,
    crashes: 0,
    turns: 0,
    cost_usd: 0,
  };
}
