import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { openSessionLog, readSessionLog } from "../runtime/session-log.ts";
import { nightshift, startDaemonProcess, until } from "./support/cli.ts";
import { noDatabase, startMachines } from "./support/cluster.ts";

/** `nightshift store migrate`: a home that ran alone moves into the shared store, and its daemon goes on there. */

const task = (title: string) => `---\ntitle: ${title}\n---\nDo it.\n`;
const skip = noDatabase ? { skip: noDatabase } : {};

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("nightshift store migrate", skip, () => {
  it("moves every task of a home into the shared store once, the unfinished one pinned here, and the daemon finishes it there", async () => {
    const cluster = await startMachines(["solo"]);
    cleanup = cluster.cleanup;
    const solo = cluster.machines[0]!;
    const { NIGHTSHIFT_DATABASE_URL: _url, ...alone } = solo.env;
    // Alone first: two tasks done, a third in the middle of its model call when the daemon stops.
    cluster.api.respondWith((request) => (JSON.stringify(request.body).includes("third") ? { stall: true } : { content: [{ type: "text", text: "done" }] }));
    const daemon = await startDaemonProcess(alone);
    for (const title of ["first", "second"]) writeFileSync(join(solo.home, "inbox", `${title}.md`), task(title));
    await until(() => ["first", "second"].every((title) => existsSync(join(solo.home, "outbox", `${title}.md`))), "two results");
    writeFileSync(join(solo.home, "inbox", "third.md"), task("third"));
    await until(() => cluster.api.requests.length === 3, "the third task's model call");

    const busy = await nightshift(["store", "migrate"], solo.env);
    assert.equal(busy.code, 2);
    assert.match(busy.stderr, /daemon .* is already running .*stop it first/);
    daemon.child.kill("SIGTERM");
    await daemon.exited;

    const none = await nightshift(["store", "migrate"], alone);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no shared store is configured: set NIGHTSHIFT_DATABASE_URL/);

    // Consolidated alone up to the second journal entry: the store is to read on from there.
    const journalDays = readdirSync(join(solo.home, "journal")).filter((name) => name.endsWith(".jsonl")).sort();
    const journalLines = journalDays.reduce((sum, name) => sum + readFileSync(join(solo.home, "journal", name), "utf8").trim().split("\n").length, 0);
    assert.ok(journalLines >= 4, `the tasks were journaled: ${journalLines}`);
    const consolidatedTo = `${journalDays[0]!.replace(".jsonl", "")}#2`;
    writeFileSync(join(solo.home, "state", "memory.json"), JSON.stringify({ cursor: consolidatedTo, runs: [] }));
    // A specialist's own log beside one task's (sessions/<task>/), as runtime.ts writes it.
    const consulted = readdirSync(join(solo.home, "sessions")).find((name) => name.endsWith(".jsonl"))!.slice(0, -".jsonl".length);
    const specialist = await openSessionLog(join(solo.home, "sessions", consulted, `${consulted}.toolu_1.reviewer.jsonl`), `${consulted}.toolu_1.reviewer`, { sync: false });
    await specialist.append({ type: "user", at: 1, text: "Is it sound?" }, { type: "user", at: 2, text: "And the tests?" });
    await specialist.close();

    const first = await nightshift(["store", "migrate"], solo.env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /3 tasks of .* on the shared store \(NIGHTSHIFT_DATABASE_URL\) as machine solo: 3 added, 0 brought up to date, 0 there already/);
    assert.match(first.stdout, /Pinned to solo, to run and resume only here: 1 active task \(/);
    assert.match(first.stdout, /Session logs: 3 copied to the shared store, where every machine's dashboard reads them\. The files stay in .*sessions, where a resume on this machine reads them/);
    // Each log is in the store event for event, as the file reads.
    for (const { id } of await cluster.sql<{ id: string }[]>`SELECT id FROM tasks`) {
      const copied = await cluster.sql<{ event: unknown }[]>`SELECT event FROM session_events WHERE session = ${id} ORDER BY seq`;
      assert.deepEqual(copied.map((row) => row.event), await readSessionLog(join(solo.home, "sessions", `${id}.jsonl`)));
    }
    assert.match(first.stdout, new RegExp(`Memory journal: ${journalLines} entries on the shared store, where the nightly consolidation reads every machine's journal`));
    const journaled = async () => Number((await cluster.sql<{ count: string }[]>`SELECT count(*) FROM journal_entries WHERE machine = 'solo'`)[0]!.count);
    assert.equal(await journaled(), journalLines);
    assert.deepEqual((await cluster.sql<{ cursor: string }[]>`SELECT machine || ' ' || day || '#' || line AS cursor FROM journal_cursors`).map((row) => row.cursor), [`solo ${consolidatedTo}`]);
    const ownLog = await cluster.sql<{ event: unknown }[]>`SELECT event FROM session_events WHERE session = ${`${consulted}.toolu_1.reviewer`} ORDER BY seq`;
    assert.deepEqual(ownLog.map((row) => row.event), await readSessionLog(join(solo.home, "sessions", consulted, `${consulted}.toolu_1.reviewer.jsonl`)), "the specialist's log copied too");
    assert.doesNotMatch(first.stdout + first.stderr, /postgres:\/\//); // the URL may hold a password
    const rows = () => cluster.sql<{ title: string; state: string; machine: string; pin: string | null }[]>`SELECT record->>'title' AS title, state, machine, pin FROM tasks ORDER BY created`;
    assert.deepEqual((await rows()).map((row) => `${row.title} ${row.state} ${row.machine} ${row.pin}`), ["first done solo null", "second done solo null", "third queued solo solo"]);

    const again = await nightshift(["store", "migrate"], solo.env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /3 tasks .*: 0 added, 0 brought up to date, 3 there already/);
    const events = async () => Number((await cluster.sql<{ count: string }[]>`SELECT count(*) FROM session_events`)[0]!.count);
    const copiedOnce = await events();
    assert.equal((await rows()).length, 3);
    assert.equal(await events(), copiedOnce, "no event copied twice");
    assert.equal(await journaled(), journalLines, "no journal entry copied twice");

    // The daemon on the shared store resumes the third task here, from its log, and its end reaches the store.
    cluster.api.respondWith(() => ({ content: [{ type: "text", text: "done" }] }));
    await solo.start();
    await until(() => existsSync(join(solo.home, "outbox", "third.md")), "the third result");
    let states: string[] = [];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      states = (await rows()).map((row) => `${row.title} ${row.state}`);
      if (states.at(-1) === "third done") break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(states, ["first done", "second done", "third done"]);
  });
});
