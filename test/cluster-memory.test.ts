import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { nightshift, until } from "./support/cli.ts";
import { eventually, noDatabase, ranOn, startMachines } from "./support/cluster.ts";

/**
 * One memory for several machines (issue 16): two real daemons on one PostgreSQL, each journaling
 * the tasks it runs; one consolidation learns from both journals, and the other machine's finds
 * nothing new and makes no model call.
 */

const skip = noDatabase ? { skip: noDatabase } : {};
const CONSOLIDATOR = "You keep the long-term memory of Nightshift";

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("one memory across machines", skip, () => {
  it("consolidates the journals of both machines in one run on one of them, and the other's run calls no model", async () => {
    const cluster = await startMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    const [m1, m2] = cluster.machines as [typeof cluster.machines[0], typeof cluster.machines[0]];
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    // One task on each machine (its workdir is a folder there), each answered plainly.
    cluster.api.respondWith(() => ({ content: [{ type: "text", text: "done" }] }));
    for (const [machine, fact] of [[m1, "The user's printer is in the hallway."], [m2, "The user deploys the site with make deploy."]] as const) {
      const folder = join(machine.home, "..", `${machine.name}-project`);
      mkdirSync(folder);
      writeFileSync(join(machine.home, "inbox", "note.md"), `---\ntitle: note on ${machine.name}\nworkdir: ${folder}\n---\n${fact}\n`);
    }
    await until(() => [m1, m2].every((machine) => existsSync(join(machine.home, "outbox", "note.md"))), "both results");
    assert.deepEqual(Object.fromEntries(await ranOn(cluster.sql)), { "note on m1": "m1", "note on m2": "m2" });
    // Each machine copies its journal (a request and an outcome per task) into the store at its heartbeat.
    const entries = await eventually(
      () => cluster.sql<{ id: string; text: string }[]>`SELECT machine || ':' || day || '#' || line AS id, entry->>'text' AS text FROM journal_entries ORDER BY at`,
      (rows) => rows.length >= 4,
    );
    const request = (fact: string) => entries.find((entry) => entry.text.includes(fact))!.id;
    const printer = request("hallway");
    const deploy = request("make deploy");
    assert.match(printer, /^m1:/);
    assert.match(deploy, /^m2:/);

    cluster.api.respondWith((call) =>
      JSON.stringify(call.body).includes(CONSOLIDATOR)
        ? { content: [{ type: "text", text: JSON.stringify({ edits: [{ op: "add", text: "The user's printer is in the hallway.", sources: [printer] }, { op: "add", text: "The user deploys the site with make deploy.", sources: [deploy] }] }) }] }
        : { content: [{ type: "text", text: "done" }] },
    );
    const consolidations = () => cluster.api.requests.filter((call) => JSON.stringify(call.body).includes(CONSOLIDATOR));
    const first = await nightshift(["memory", "consolidate"], m1.env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /2 changes from 4 journal entries/);
    assert.equal(consolidations().length, 1);
    const sent = JSON.stringify(consolidations()[0]!.body);
    for (const id of [printer, deploy]) assert.ok(sent.includes(`[${id}]`), `${id} is in the one request`);
    assert.match(readFileSync(join(m1.home, "MEMORY.md"), "utf8"), /make deploy/);

    // m2's run: nothing new, no model call; MEMORY.md reaches it (it was given to the store right after m1's run).
    const second = await nightshift(["memory", "consolidate"], m2.env);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /Nothing new in the journal since the last run, so no model call/);
    assert.match(second.stdout, /The user's printer is in the hallway/, "m2 shows the memory m1's run wrote");
    assert.equal(consolidations().length, 1);
    assert.match(readFileSync(join(m2.home, "MEMORY.md"), "utf8"), /printer is in the hallway/);
  });
});
