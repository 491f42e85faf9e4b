import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { nightshift, until } from "./support/cli.ts";
import { eventually, noDatabase, ranOn, signedIn, startMachines } from "./support/cluster.ts";

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
    const states = await eventually(
      async () => (await cluster.sql<{ state: string; delivered: boolean }[]>`SELECT state, delivered FROM tasks`).map((row) => `${row.state} ${row.delivered}`),
      (rows) => rows.every((row) => row === "done true"),
    );
    assert.deepEqual(states, titles.map(() => "done true"));
    // m1 delivered the others' results: their session logs are theirs to copy, so m1 follows none of them and has nothing to warn about.
    const pending = existsSync(join(m1.home, "state", "session-mirror.json")) ? (JSON.parse(readFileSync(join(m1.home, "state", "session-mirror.json"), "utf8")) as string[]) : [];
    for (const id of pending) assert.ok(existsSync(join(m1.home, "sessions", `${id}.jsonl`)), `m1 follows ${id}, which it did not run`);
    assert.doesNotMatch(readFileSync(join(m1.home, "logs", "trace.jsonl"), "utf8"), /session_mirror_(failed|held)/);
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

  it("refuses a second live machine under a name already in use, and lets a machine killed a moment ago start again under its own", async () => {
    const cluster = await startMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    const [m1, m2] = cluster.machines as [typeof cluster.machines[0], typeof cluster.machines[0]];
    // A second home on this host that names itself m1 too (as two machines with one host name would).
    const config = join(m2.home, "config.yaml");
    writeFileSync(config, readFileSync(config, "utf8").replace("machine: m2", "machine: m1"));
    await m1.start();
    const refused = await nightshift(["start"], m2.env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /the machine name "m1" is in use on the shared store by a running Nightshift on \S+ \(pid \d+, heard from \d+ s ago\): give this machine a name of its own with `machine:` in config\.yaml/);
    assert.doesNotMatch(refused.stderr, /postgres:\/\//, "the database URL is never said");
    // m1 killed: its row is fresh, but its process is gone, so it starts again at once.
    m1.daemon!.child.kill("SIGKILL");
    await m1.daemon!.exited;
    await m1.start();
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

describe("seeing several machines", skip, () => {
  it("shows every machine with its heartbeat and every machine's tasks in status and on the Now page, marking a task that waits for a silent machine", async () => {
    const cluster = await startMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    // The long task's model call never answers: it stays running on m2.
    cluster.api.respondWith((request) => (JSON.stringify(request.body).includes("long one") ? { stall: true } : { content: [{ type: "text", text: "done" }] }));
    const [m1, m2] = cluster.machines as [typeof cluster.machines[0], typeof cluster.machines[0]];
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    const folder = join(m2.home, "..", "m2-project");
    mkdirSync(folder);
    writeFileSync(join(m2.home, "inbox", "long.md"), task("long one", `workdir: ${folder}\n`));
    await until(() => cluster.api.requests.some((request) => JSON.stringify(request.body).includes("long one")), "the long task's model call");
    writeFileSync(join(m1.home, "inbox", "quick.md"), task("quick one"));
    await until(() => existsSync(join(m1.home, "outbox", "quick.md")), "the quick result");
    // m2 has published that its task runs (a heartbeat later at most).
    const published = async () => (await cluster.sql<{ state: string }[]>`SELECT state FROM tasks WHERE record->>'title' = 'long one'`)[0]?.state;
    for (let tries = 0; (await published()) !== "running"; tries++) {
      assert.ok(tries < 200, "the long task never showed as running");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // And m1 has beaten since its task ended (it beats as a task ends, and every 5 s).
    const running = async () => Number((await cluster.sql<{ running: number }[]>`SELECT running FROM machines WHERE name = 'm1'`)[0]?.running);
    assert.equal(await eventually(running, (count) => count === 0), 0);

    const alive = await nightshift(["status"], m1.env);
    assert.equal(alive.code, 0, alive.stderr);
    assert.match(alive.stdout, /^daemon running, machine m1 on the shared store\nMACHINE +STATE +HEARTBEAT +TASKS\nm1 +alive +\d+ s ago +0 of 1 running +\(this machine\)\nm2 +alive +\d+ s ago +1 of 1 running\n/);
    assert.match(alive.stdout, /\n\S+ +running +m2 .* long one\n/);
    assert.match(alive.stdout, /\n\S+ +done +m1 .* quick one/);

    // m2 goes to sleep; its heartbeat is three minutes old.
    m2.daemon!.child.kill("SIGSTOP");
    await cluster.sql`UPDATE machines SET heartbeat = now() - interval '3 minutes' WHERE name = 'm2'`;
    const asleep = await nightshift(["status"], m1.env);
    assert.match(asleep.stdout, /\nm2 +silent +3 min ago +1 waiting for it\n/);
    assert.match(asleep.stdout, /\n\S+ +running +m2 .* long one\n +waiting for m2, silent 3 min\n/);
    const page = (await (await signedIn(m1)).get("/")).body;
    assert.match(page, /<h2 id="machines">Machines \(2\)<\/h2>/);
    assert.match(page, /<td>m1 <span class="quiet">\(this machine\)<\/span><\/td><td>alive<\/td>/);
    assert.match(page, /<tr class="warn"><td>m2<\/td><td>silent \(asleep or gone\)<\/td><td>3 min ago<\/td><td>1 waiting for it<\/td><\/tr>/);
    assert.match(page, /<strong>long one<\/strong>[^]*running · on m2[^]*<p class="warn">waiting for m2, silent 3 min<\/p>/);
    m2.daemon!.child.kill("SIGCONT");
  });
});

describe("schedules on several machines", skip, () => {
  it("fires each slot of a schedule once across three machines that all have it", async () => {
    const cluster = await startMachines(["m1", "m2", "m3"]);
    cleanup = cluster.cleanup;
    cluster.api.respondWith(() => ({ content: [{ type: "text", text: "done" }] }));
    // Every 2 seconds: the three machines' timers go off at the same instants.
    for (const machine of cluster.machines) {
      mkdirSync(join(machine.home, "schedules"), { recursive: true });
      writeFileSync(join(machine.home, "schedules", "tick.md"), task("tick", `schedule: "*/2 * * * * *"\n`));
    }
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    const traced = (event: string) =>
      cluster.machines.flatMap((machine) => {
        const file = join(machine.home, "logs", "trace.jsonl");
        if (!existsSync(file)) return [];
        return readFileSync(file, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line)).filter((line) => line.event === event).map((line) => ({ machine: machine.name, due: line.due as number }));
      });
    const scheduled = async () => Number((await cluster.sql<{ count: string }[]>`SELECT count(*) FROM tasks WHERE record->>'origin' = 'schedule'`)[0]!.count);
    const deadline = Date.now() + 30_000;
    while ((await scheduled()) < 4) {
      assert.ok(Date.now() < deadline, "timed out waiting for four scheduled tasks");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Stopped, so their traces are whole.
    for (const machine of cluster.machines) machine.daemon!.child.kill("SIGTERM");
    await Promise.all(cluster.machines.map((machine) => machine.daemon!.exited));
    const fired = traced("schedule_fired");
    // Each slot queued by exactly one machine, one task each; the other machines found it taken.
    assert.equal(fired.length, new Set(fired.map((one) => one.due)).size, JSON.stringify(fired));
    assert.equal(fired.length, await scheduled());
    const taken = traced("schedule_taken");
    assert.ok(taken.length > 0, "no machine ever found a slot taken: the race was not run");
    for (const one of taken) assert.ok(fired.some((other) => other.due === one.due && other.machine !== one.machine), `slot ${one.due} taken on ${one.machine} but fired nowhere else`);
    const [cursor] = await cluster.sql<{ last_run: string }[]>`SELECT last_run FROM schedule_cursors WHERE name = 'tick'`;
    assert.equal(Number(cursor!.last_run), Math.max(...fired.map((one) => one.due)));
  });
});
