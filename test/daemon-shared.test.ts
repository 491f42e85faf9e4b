import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { createTraceLogger } from "../runtime/trace.ts";
import { createDaemon, type SharedQueue } from "../tasks/daemon.ts";
import { openState, type TaskRecord } from "../tasks/state.ts";
import { createRuntimeHarness, type RuntimeHarness } from "./support/runtime-harness.ts";

/**
 * The daemon over a shared queue (several machines): what it does with each answer of the queue,
 * the queue itself scripted here (its rules against a real PostgreSQL are in pg-cluster.test.ts).
 */
describe("the daemon over the shared queue of several machines", () => {
  let runtime: RuntimeHarness | undefined;
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
    await runtime?.close();
    runtime = undefined;
  });

  async function setup(shared: Partial<SharedQueue>) {
    runtime = await createRuntimeHarness({ config: 'sandbox:\n  mode: "off"\n' });
    const { store } = await openState(runtime.home, runtime.clock.now);
    const trace = createTraceLogger(join(runtime.home, "logs", "trace.jsonl"), "info");
    const queued: TaskRecord[] = [];
    const ended: string[] = [];
    const queue: SharedQueue = {
      enqueue: async (record) => (queued.push(record), true),
      claim: async () => queued.shift(),
      start: async () => true,
      cancel: async () => "unknown",
      deliversHere: () => true,
      ended: (task, result) => void ended.push(`${task.id} ${result.status}`),
      ...shared,
    };
    const daemon = createDaemon({ home: runtime.home, clock: runtime.clock, runtime: runtime.runtime, state: store, trace, concurrency: 1, maxCrashes: 3, shared: queue });
    cleanups.push(async () => (await daemon.stop(), store.close(), trace.close()));
    return { daemon, store, queued, ended };
  }

  it("queues a new task to the shared queue, claims it with a free slot, runs it and reports its end", async () => {
    const { daemon, ended } = await setup({});
    runtime!.api.script({ content: [{ type: "text", text: "done" }] });
    await daemon.submit("t1", runtime!.task({ title: "Shared" }), { origin: "inbox" });
    await daemon.idle();
    assert.equal(daemon.get("t1")?.state, "done");
    assert.deepEqual(ended, ["t1 done"]);
  });

  it("drops, without running it, a task another machine took over after this one claimed it", async () => {
    const { daemon, store } = await setup({ start: async () => false });
    await daemon.submit("t2", runtime!.task({ title: "Taken over" }), { origin: "inbox" });
    await daemon.idle();
    assert.equal(runtime!.api.requests.length, 0, "no model call: it runs on the other machine");
    assert.equal(store.get("t2"), undefined, "not kept here as if it were this machine's");
  });

  it("writes the result file of another machine's inbox task there, not here", async () => {
    const { daemon } = await setup({ deliversHere: () => false });
    runtime!.api.script({ content: [{ type: "text", text: "done" }] });
    await daemon.submit("t3", runtime!.task({ title: "From m1" }), { origin: "inbox", name: "from-m1.md" });
    await daemon.idle();
    assert.equal(existsSync(join(runtime!.home, "outbox", "from-m1.md")), false);
    await daemon.deliver(daemon.get("t3")!, { status: "done", answer: "delivered", turns: 1, costUsd: 0 });
    assert.equal(existsSync(join(runtime!.home, "outbox", "from-m1.md")), true, "deliver writes it on the machine it came to");
  });
});
