import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { until } from "./support/cli.ts";
import { noDatabase, ranOn, startMachines } from "./support/cluster.ts";

/**
 * Several machines on one PostgreSQL (issue 16): three real daemons, three homes, one database
 * of their own, one Messages API stand-in.
 */

const task = (title: string, extra = "") => `---\ntitle: ${title}\n${extra}---\nDo it.\n`;
const skip = noDatabase ? { skip: noDatabase } : {};

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("several machines on one PostgreSQL", skip, () => {
  it("spreads the tasks dropped on one machine over all three, and writes every result back on the machine they came to", async () => {
    const cluster = await startMachines(["m1", "m2", "m3"]);
    cleanup = cluster.cleanup;
    // The first three answers wait until three requests are open at once: with one task at a time
    // per machine, that is all three machines at work (a loaded machine starting late still joins).
    const waiting: Array<() => void> = [];
    let opened = 0;
    cluster.api.respondWith(async () => {
      opened++;
      if (opened < 3) await new Promise<void>((resolve) => waiting.push(resolve));
      if (opened === 3) waiting.splice(0).forEach((resolve) => resolve());
      return { content: [{ type: "text", text: "done" }], delayMs: 100 };
    });
    const [m1, m2, m3] = cluster.machines as [typeof cluster.machines[0], typeof cluster.machines[0], typeof cluster.machines[0]];
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    const titles = ["t1", "t2", "t3", "t4", "t5", "t6"];
    for (const title of titles) writeFileSync(join(m1.home, "inbox", `${title}.md`), task(title));
    await until(() => titles.every((title) => existsSync(join(m1.home, "outbox", `${title}.md`))), "six results in m1's outbox/", 60_000);

    const machines = await ranOn(cluster.sql);
    const used = new Set(titles.map((title) => machines.get(title)));
    assert.equal(used.size, 3, `ran on ${[...used].join(", ")}`);
    for (const title of titles) assert.match(readFileSync(join(m1.home, "outbox", `${title}.md`), "utf8"), /done/);
    // The other machines wrote no result file of their own, and each task ran once.
    for (const machine of [m2, m3]) assert.deepEqual(existsSync(join(machine.home, "outbox")) ? readdirSync(join(machine.home, "outbox")) : [], []);
    assert.equal(cluster.api.requests.length, titles.length);
    const states = await cluster.sql<{ state: string; delivered: boolean }[]>`SELECT state, delivered FROM tasks`;
    assert.deepEqual(states.map((row) => `${row.state} ${row.delivered}`), titles.map(() => "done true"));
  });

  it("keeps a task whose workdir is a folder of one machine on that machine, even while the others are idle", async () => {
    const cluster = await startMachines(["m1", "m2", "m3"]);
    cleanup = cluster.cleanup;
    cluster.api.respondWith(() => ({ content: [{ type: "text", text: "done" }], delayMs: 200 }));
    const m2 = cluster.machines[1]!;
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    const folder = join(m2.home, "..", "m2-project");
    mkdirSync(folder);
    const titles = ["p1", "p2", "p3"];
    for (const title of titles) writeFileSync(join(m2.home, "inbox", `${title}.md`), task(title, `workdir: ${folder}\n`));
    await until(() => titles.every((title) => existsSync(join(m2.home, "outbox", `${title}.md`))), "three results in m2's outbox/", 60_000);
    const machines = await ranOn(cluster.sql);
    assert.deepEqual(titles.map((title) => machines.get(title)), ["m2", "m2", "m2"]);
    const pins = await cluster.sql<{ pin: string }[]>`SELECT pin FROM tasks`;
    assert.deepEqual(pins.map((row) => row.pin), ["m2", "m2", "m2"]);
  });

  it("takes a change to IDENTITY.md or a skill made on one machine to the others within seconds", async () => {
    const cluster = await startMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    const [m1, m2] = cluster.machines as [typeof cluster.machines[0], typeof cluster.machines[0]];
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    writeFileSync(join(m1.home, "IDENTITY.md"), "# Identity\n\nAnswer in French.\n");
    mkdirSync(join(m1.home, "skills", "deploy"), { recursive: true });
    writeFileSync(join(m1.home, "skills", "deploy", "SKILL.md"), "---\nname: deploy\ndescription: Deploys the site\n---\nRun make deploy.\n");
    // A heartbeat (5 s) at most, and at once when the other machine's write wakes it.
    await until(() => existsSync(join(m2.home, "skills", "deploy", "SKILL.md")) && readFileSync(join(m2.home, "IDENTITY.md"), "utf8").includes("French"), "m1's files on m2", 15_000);
    assert.equal(readdirSync(join(m2.home, "state")).includes("shared-conflicts"), false, "m2's identity was the default: taken without a conflict");
  });

  it("shows every machine and its heartbeat to each of them", async () => {
    const cluster = await startMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    const rows = await cluster.sql<{ name: string; stopped: boolean }[]>`SELECT name, stopped FROM machines ORDER BY name`;
    assert.deepEqual(rows.map((row) => `${row.name} ${row.stopped}`), ["m1 false", "m2 false"]);
    assert.match(cluster.machines[0]!.daemon!.output(), /machine m1 on the shared store/);
  });
});
