import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { nightshift, until } from "./support/cli.ts";
import { eventually, noDatabase, ranOn, startMachines } from "./support/cluster.ts";

/**
 * The digest's spend line with several machines: two real daemons on one PostgreSQL, each running
 * a task of its own against the Messages API stand-in, which says what each one used.
 */

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("spend on several machines", noDatabase ? { skip: noDatabase } : {}, () => {
  it("counts every machine's spend in the digest, a machine gone silent with what it last said, and says when it gives one machine's only", async () => {
    // A machine silent for 2 s is taken for asleep (30 s otherwise).
    const cluster = await startMachines(["m1", "m2"], { env: { NIGHTSHIFT_TEST_MACHINE_SILENT_MS: "2000" } });
    cleanup = cluster.cleanup;
    // claude-sonnet-5-5 at $3 per million input tokens: m1's task $0.30, m2's $0.60.
    cluster.api.respondWith((request) => {
      const tokens = request.rawBody.includes("spend-m2") ? 200_000 : request.rawBody.includes("spend-m1") ? 100_000 : 0;
      return { content: [{ type: "text", text: "done" }], usage: { input_tokens: tokens, output_tokens: 0 } };
    });
    const [m1, m2] = cluster.machines as [typeof cluster.machines[0], typeof cluster.machines[0]];
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    // Each task works in a folder of its machine, so it runs there.
    for (const machine of [m1, m2]) {
      const folder = join(machine.home, "..", `${machine.name}-project`);
      mkdirSync(folder);
      writeFileSync(join(machine.home, "inbox", "spend.md"), `---\ntitle: spend-${machine.name}\nworkdir: ${folder}\n---\nDo it.\n`);
    }
    await until(() => existsSync(join(m1.home, "outbox", "spend.md")) && existsSync(join(m2.home, "outbox", "spend.md")), "both results", 60_000);
    const machines = await ranOn(cluster.sql);
    assert.deepEqual([machines.get("spend-m1"), machines.get("spend-m2")], ["m1", "m2"]);

    const digest = async () => (await nightshift(["digest"], m1.env)).stdout;
    const both = "Spend on every machine: today $0.9000 of $10.00 a day (m1 $0.3000, m2 $0.6000); this month $0.9000";
    // m2 writes its spend to the store as its task ends (a heartbeat at most).
    const text = await eventually(digest, (out) => out.includes(both), 15_000);
    assert.ok(text.includes(both), text);

    // m2 asleep: still counted, with what it last wrote, and said to be silent.
    m2.daemon!.child.kill("SIGSTOP");
    const asleep = await eventually(digest, (out) => /; m2 \(silent [\d.]+s: its spend as of then\)/.test(out), 15_000);
    assert.match(asleep, /; m2 \(silent [\d.]+s: its spend as of then\)/);
    assert.ok(asleep.includes(both), asleep);

    // Without a daemon to read the store, `nightshift digest` gives this machine's spend, and says so.
    m1.daemon!.child.kill("SIGTERM");
    await m1.daemon!.exited;
    assert.match(await digest(), /^Spend \(this machine only: no daemon runs here to read the shared store\): today \$0\.3000 of \$10\.00 a day; this month \$0\.3000$/m);
  });

  it("holds the daily budget on every machine's spend of the day: a task on m1 stops once m2 alone spent the day's budget", async () => {
    const cluster = await startMachines(["m1", "m2"], { config: "budget:\n  daily_usd: 0.5\n" });
    cleanup = cluster.cleanup;
    // m2's task: $0.60 at $3 per million input tokens, over the $0.50 a day.
    cluster.api.respondWith((request) => ({ content: [{ type: "text", text: "done" }], usage: { input_tokens: request.rawBody.includes("spend-m2") ? 200_000 : 1_000, output_tokens: 0 } }));
    const [m1, m2] = cluster.machines as [typeof cluster.machines[0], typeof cluster.machines[0]];
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    const drop = (machine: typeof m1) => {
      const folder = join(machine.home, "..", `${machine.name}-project`);
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(machine.home, "inbox", "spend.md"), `---\ntitle: spend-${machine.name}\nworkdir: ${folder}\n---\nDo it.\n`);
    };
    drop(m2);
    await until(() => existsSync(join(m2.home, "outbox", "spend.md")), "m2's result", 60_000);
    await eventually(async () => Number((await cluster.sql<{ usd: number }[]>`SELECT usd FROM spend_days WHERE machine = 'm2'`)[0]?.usd ?? 0), (usd) => usd >= 0.6);
    // Two heartbeats of m1 after that: the first one's read of the others' spend has ended before the second begins.
    const beat = async () => (await cluster.sql<{ at: string }[]>`SELECT heartbeat::text AS at FROM machines WHERE name = 'm1'`)[0]!.at;
    const first = await beat();
    const second = await eventually(beat, (at) => at !== first, 15_000);
    await eventually(beat, (at) => at !== second, 15_000);

    const asked = cluster.api.requests.length;
    drop(m1);
    await until(() => existsSync(join(m1.home, "outbox", "spend.md")), "m1's result", 60_000);
    const result = readFileSync(join(m1.home, "outbox", "spend.md"), "utf8");
    assert.match(result, /today's spending reached \$0\.60 of the \$0\.50 daily budget \(budget\.daily_usd\)/);
    assert.equal(cluster.api.requests.length, asked, "m1 made no model call");
  });
});
