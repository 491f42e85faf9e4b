import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as wait } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { journalsElsewhere, oneAtATime, otherJournals, shareJournal } from "../cli/cluster-start.ts";
import { journalBody } from "../dashboard/journal-page.ts";
import { memoryBody, readMemory } from "../dashboard/memory-page.ts";
import { createMemoryService, type MemoryService } from "../cli/memory-service.ts";
import type { ConsolidationSource } from "../memory/shared-journal.ts";
import { localDay } from "../memory/journal.ts";
import { openMemory } from "../memory/index.ts";
import type { Clock } from "../runtime/clock.ts";
import { createApprovalStore, createModelClient, loadConfig, requireApiKey } from "../runtime/index.ts";
import { cluster as clusterOf } from "../runtime/store/pg-cluster.ts";
import { pgJournal } from "../runtime/store/pg-journal.ts";
import { connectPg, type Sql } from "../runtime/store/pg.ts";
import { freshDatabase, noDatabase } from "./support/cluster.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";
import { startMessagesApi } from "./support/messages-api.ts";

/** A clock whose waits are short real waits: the lease is the database's, and its polling needs time to pass for real. */
const quickClock: Clock = { now: () => Date.now(), sleep: (_ms, signal) => wait(5, undefined, signal ? { signal } : {}), setTimer: (fn, ms) => { const timer = setTimeout(fn, ms); return () => clearTimeout(timer); } };

/**
 * A machine's memory on the shared store, as `nightshift start` makes it: its home under `dir`, its
 * journal copied to the store, and the memory service reading every machine's journal, with the
 * small model at the Messages API stand-in. `save` stands in for the store's save of the cursor.
 */
function memoryMachine(env: { sql: Sql; apiUrl: string; dir: string; clock: FakeClock }, name: string, options: { save?: ConsolidationSource["save"] } = {}) {
  const { sql, clock } = env;
  const home = join(env.dir, name);
  mkdirSync(home, { recursive: true });
  const loaded = loadConfig({ NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: env.apiUrl, ANTHROPIC_API_KEY: "sk-ant-memory-test" }, home);
  const memory = openMemory(home, clock, loaded.config.memory.cap, { machine: name, others: otherJournals(clusterOf(sql, name)) });
  const { mirror, source } = shareJournal({ cluster: clusterOf(sql, name), home, clock });
  const service = (save = options.save) =>
    createMemoryService({
      loaded,
      clock,
      memory,
      small: () => createModelClient(loaded.roles.small, requireApiKey(loaded.roles.small), { clock, retry: { ...loaded.config.model_retries, attempts: 0 } }),
      tasks: { active: () => [], finishedSince: () => [] },
      approvals: createApprovalStore(join(home, "state", "approvals"), { clock, expireMs: 60_000 }),
      source: save ? { ...source, save } : source,
    });
  return { home, memory, mirror, source, service: service(), serviceWith: service };
}

describe("memory consolidation with several machines", noDatabase ? { skip: noDatabase } : {}, () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let sql: Sql;
  before(async () => {
    db = await freshDatabase();
    sql = await connectPg(db.url);
  });
  after(async () => {
    await sql?.end({ timeout: 1 });
    await db?.drop();
  });

  it("runs on one machine at a time, each taking in the newest MEMORY.md first and giving its own right after", async () => {
    const log: string[] = [];
    const machine = (name: string): MemoryService => {
      const work: MemoryService = {
        async consolidate() {
          log.push(`${name} starts`);
          await wait(50);
          log.push(`${name} ends`);
          return `${name} consolidated`;
        },
        undo: () => "",
        memoryText: async () => "",
        digest: async () => "",
      };
      return oneAtATime(work, { cluster: clusterOf(sql, name), clock: quickClock, syncFiles: async () => void log.push(`${name} syncs`), journal: { sync: async () => {} } });
    };
    const [first, second] = await Promise.all([machine("m1").consolidate(), machine("m2").consolidate()]);
    assert.deepEqual([first, second], ["m1 consolidated", "m2 consolidated"]);
    // Whichever went first, the other started only after it ended and synced.
    const one = log[0]!.split(" ")[0]!;
    const other = one === "m1" ? "m2" : "m1";
    assert.deepEqual(log, [`${one} syncs`, `${one} starts`, `${one} ends`, `${one} syncs`, `${other} syncs`, `${other} starts`, `${other} ends`, `${other} syncs`]);
    const [lease] = await sql<{ expires_past: boolean }[]>`SELECT expires < now() AS expires_past FROM leases WHERE name = 'memory'`;
    assert.equal(lease?.expires_past, true, "given up at the end, so the next machine need not wait for it to expire");
  });
});

describe("one memory from every machine's journal", noDatabase ? { skip: noDatabase } : {}, () => {
  it("consolidates every machine's new entries in one run, and a second machine's run then finds nothing new and calls no model", async () => {
    const db = await freshDatabase();
    const sql = await connectPg(db.url);
    const api = await startMessagesApi();
    const dir = tempDir("nightshift-memory-machines-", "/var/tmp");
    try {
      const clock = new FakeClock();
      const day = localDay(clock.now());
      const machine = async (name: string) => memoryMachine({ sql, apiUrl: api.url, dir: dir.path, clock }, name);
      const m1 = await machine("m1");
      const m2 = await machine("m2");
      m1.memory.journal.append({ at: clock.now(), kind: "note", session: "a", source: "user", text: "The user's printer is in the hallway." });
      clock.advance(1000);
      m2.memory.journal.append({ at: clock.now(), kind: "note", session: "b", source: "user", text: "The user deploys the site with make deploy." });
      clock.advance(1000);
      m1.memory.journal.append({ at: clock.now(), kind: "note", session: "a", source: "user", text: "The printer takes A4 only." });
      await Promise.all([m1.mirror.sync(), m2.mirror.sync()]);
      // An entry holding a NUL (jsonb refuses it) is copied with U+FFFD in its place, and the copy goes on past it.
      clock.advance(1000);
      m1.memory.journal.append({ at: clock.now(), kind: "note", session: "a", source: "file", text: "bytes\0of a binary file" });
      await m1.mirror.sync();
      assert.deepEqual((await sql<{ text: string }[]>`SELECT entry->>'text' AS text FROM journal_entries WHERE machine = 'm1' AND line = 3`).map((row) => row.text), ["bytes\uFFFDof a binary file"]);
      // The agent's recall on m1 finds what a task on m2 noted, by its machine-qualified id and day.
      const found = await m1.memory.access.recall("deploy the site");
      assert.deepEqual(found.map((hit) => [hit.id, hit.date]), [[`m2:${day}#1`, day]]);

      api.respondWith(() => ({
        content: [{ type: "text", text: JSON.stringify({ edits: [
          { op: "add", text: "The user's printer is in the hallway and takes A4 only.", sources: [`m1:${day}#1`, `m1:${day}#2`] },
          { op: "add", text: "The user deploys the site with make deploy.", sources: [`m2:${day}#1`] },
        ] }) }],
      }));
      await m1.service.consolidate();
      assert.equal(api.requests.length, 1);
      const sent = JSON.stringify(api.requests[0]!.body);
      const order = [`m1:${day}#1`, `m2:${day}#1`, `m1:${day}#2`].map((id) => sent.indexOf(`[${id}`));
      assert.ok(order.every((at) => at > 0), `every machine's entries are in the one request: ${order}`);
      assert.deepEqual([...order].sort((a, b) => a - b), order, "oldest first, across machines");
      const memoryFile = readFileSync(join(m1.home, "MEMORY.md"), "utf8");
      assert.match(memoryFile, /make deploy/);
      assert.match(memoryFile, /A4 only/);
      assert.deepEqual(Object.fromEntries(await pgJournal(sql).cursors()), { m1: `${day}#3`, m2: `${day}#1` });

      // m2's nightly run (after m1's MEMORY.md reached it, as the lease makes sure): nothing new, no model call.
      writeFileSync(join(m2.home, "MEMORY.md"), memoryFile);
      assert.match(await m2.service.consolidate(), /Nothing new in the journal/);
      assert.equal(api.requests.length, 1);
      // m2 (say it runs the bot) tells what m1's run learned: the runs are kept in the store.
      assert.match(await m2.service.digest(), /<b>Memory<\/b>: 2 changes from 4 journal entries\n(.*\n)?• added: The user deploys the site with make deploy\./);
      assert.match(await m2.service.memoryText(), /added: The user deploys the site/);

      // Something new on m2 only: the next run reads that alone.
      clock.advance(1000);
      m2.memory.journal.append({ at: clock.now(), kind: "note", session: "c", source: "user", text: "The staging site is at staging.example.com." });
      await m2.mirror.sync();
      api.respondWith(() => ({ content: [{ type: "text", text: JSON.stringify({ edits: [{ op: "add", text: "The staging site is at staging.example.com.", sources: [`m2:${day}#2`] }] }) }] }));
      await m2.service.consolidate();
      assert.equal(api.requests.length, 2);
      const second = JSON.stringify(api.requests[1]!.body);
      assert.match(second, new RegExp(`\\[m2:${day}#2`));
      assert.match(second, /New journal entries since the last run \(1\)/, "entries consolidated before are not sent again");
      assert.equal((await pgJournal(sql).cursors()).get("m2"), `${day}#2`);
    } finally {
      await api.close();
      await sql.end({ timeout: 1 });
      await db.drop();
      dir.cleanup();
    }
  });

  it("learns a batch once when the store failed to take the cursor after MEMORY.md was written: the next run saves it first", async () => {
    const db = await freshDatabase();
    const sql = await connectPg(db.url);
    const api = await startMessagesApi();
    const dir = tempDir("nightshift-memory-save-", "/var/tmp");
    try {
      const clock = new FakeClock();
      const { memory, mirror, source, serviceWith: service } = memoryMachine({ sql, apiUrl: api.url, dir: dir.path, clock }, "m1");
      const entry = memory.journal.append({ at: clock.now(), kind: "note", session: "a", source: "user", text: "The user likes tea." });
      await mirror.sync();
      api.respondWith(() => ({ content: [{ type: "text", text: JSON.stringify({ edits: [{ op: "add", text: "The user likes tea.", sources: [entry.id] }] }) }] }));
      // The store takes the journal, then goes away as the cursor is saved.
      await service(async () => {
        throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
      }).consolidate();
      assert.equal(api.requests.length, 1);
      assert.equal((await pgJournal(sql).cursors()).get("m1"), undefined, "the store did not take it");
      // The next run: the cursor kept in state/memory.json goes in first, and nothing is sent again.
      assert.match(await service(source.save).consolidate(), /Nothing new in the journal/);
      assert.equal(api.requests.length, 1);
      assert.equal((await pgJournal(sql).cursors()).get("m1"), entry.id.slice("m1:".length));
      assert.equal(readFileSync(memory.store.path, "utf8").match(/likes tea/g)?.length, 1, "learned once");
    } finally {
      await api.close();
      await sql.end({ timeout: 1 });
      await db.drop();
      dir.cleanup();
    }
  });

  it("leaves a batch one machine's nightly run had rejected to the next night: the other machines' nightly runs that night call no model", async () => {
    const db = await freshDatabase();
    const sql = await connectPg(db.url);
    const api = await startMessagesApi();
    const dir = tempDir("nightshift-memory-night-", "/var/tmp");
    try {
      const clock = new FakeClock();
      const machine = async (name: string) => memoryMachine({ sql, apiUrl: api.url, dir: dir.path, clock }, name);
      const [m1, m2, m3] = [await machine("m1"), await machine("m2"), await machine("m3")];
      m1.memory.journal.append({ at: clock.now(), kind: "note", session: "a", source: "user", text: "The user likes tea." });
      await m1.mirror.sync();
      api.respondWith(() => ({ content: [{ type: "text", text: "I would rather chat than write JSON." }] }));
      assert.match(await m1.service.consolidate(undefined, { nightly: true }), /edits were rejected/);
      clock.advance(10 * 60_000);
      for (const other of [m2, m3]) assert.match(await other.service.consolidate(undefined, { nightly: true }), /m1 tried these journal entries at \d\d:\d\d and its edits were rejected, so no model call now/);
      assert.equal(api.requests.length, 1, "one try a night, whichever machines run");
      // A run asked by hand tries again; and the next night's does.
      await m2.service.consolidate();
      assert.equal(api.requests.length, 2);
      clock.advance(86_400_000);
      await m3.service.consolidate(undefined, { nightly: true });
      assert.equal(api.requests.length, 3);
    } finally {
      await api.close();
      await sql.end({ timeout: 1 });
      await db.drop();
      dir.cleanup();
    }
  });

  it("copies nothing of a new home started under a machine name whose journal in the store is another home's, and says so once", async () => {
    const db = await freshDatabase();
    const sql = await connectPg(db.url);
    const dir = tempDir("nightshift-memory-name-");
    try {
      const clock = new FakeClock();
      const old = openMemory(join(dir.path, "old"), clock, 12 * 1024, { machine: "m1" });
      for (const text of ["one", "two", "three"]) old.journal.append({ at: clock.now(), kind: "note", session: "a", source: "user", text: `old ${text}` });
      await shareJournal({ cluster: clusterOf(sql, "m1"), home: join(dir.path, "old"), clock }).mirror.sync();
      // The machine reinstalled: a fresh home, the same name.
      clock.advance(1000);
      const fresh = openMemory(join(dir.path, "new"), clock, 12 * 1024, { machine: "m1" });
      for (const text of ["one", "two", "three", "four"]) fresh.journal.append({ at: clock.now(), kind: "note", session: "b", source: "user", text: `new ${text}` });
      const said: string[] = [];
      const { mirror } = shareJournal({ cluster: clusterOf(sql, "m1"), home: join(dir.path, "new"), clock, refused: (message) => void said.push(message) });
      await mirror.sync();
      await mirror.sync();
      assert.equal(said.length, 1);
      assert.match(said[0]!, /the shared store holds a memory journal under the machine name "m1" that is not this home's .* Give this machine a name of its own with `machine:` in config\.yaml/);
      const texts = (await sql<{ text: string }[]>`SELECT entry->>'text' AS text FROM journal_entries ORDER BY line`).map((row) => row.text);
      assert.deepEqual(texts, ["old one", "old two", "old three"], "neither home's entries mixed with the other's");
    } finally {
      await sql.end({ timeout: 1 });
      await db.drop();
      dir.cleanup();
    }
  });

  it("starts a home that ran alone from where its own consolidation had got to", async () => {
    const db = await freshDatabase();
    const sql = await connectPg(db.url);
    const dir = tempDir("nightshift-memory-seed-");
    try {
      const home = join(dir.path, "laptop");
      mkdirSync(join(home, "state"), { recursive: true });
      writeFileSync(join(home, "state", "memory.json"), JSON.stringify({ cursor: "2026-11-20#7", runs: [] }));
      // Seeded before the journal's first copy (so the next consolidation reads on from there).
      await shareJournal({ cluster: clusterOf(sql, "laptop"), home, clock: new FakeClock() }).mirror.sync();
      assert.equal((await pgJournal(sql).cursors()).get("laptop"), "2026-11-20#7");
      // Seeded once: a later start does not move the store's cursor back.
      await pgJournal(sql).advance(new Map([["laptop", "2026-11-21#2"]]));
      await shareJournal({ cluster: clusterOf(sql, "laptop"), home, clock: new FakeClock() }).mirror.sync();
      assert.equal((await pgJournal(sql).cursors()).get("laptop"), "2026-11-21#2");
    } finally {
      await sql.end({ timeout: 1 });
      await db.drop();
      dir.cleanup();
    }
  });

  it("shows a source from another machine's journal on the Memory page, read from the store, linked to that machine's day", async () => {
    const db = await freshDatabase();
    const sql = await connectPg(db.url);
    const dir = tempDir("nightshift-memory-page-");
    try {
      const clock = new FakeClock();
      const day = localDay(clock.now());
      const server = openMemory(join(dir.path, "server"), clock, 12 * 1024, { machine: "server" });
      const cited = server.journal.append({ at: clock.now(), kind: "note", session: "s1", source: "user", text: "The user's staging server is staging.example.net." });
      await (await shareJournal({ cluster: clusterOf(sql, "server"), home: join(dir.path, "server"), clock })).mirror.sync();
      const laptopHome = join(dir.path, "laptop");
      const laptop = openMemory(laptopHome, clock, 12 * 1024, { machine: "laptop" });
      laptop.journal.append({ at: clock.now(), kind: "note", session: "s9", source: "user", text: "Something else entirely." });
      writeFileSync(laptop.store.path, `# Memory\n\n- Staging is staging.example.net. <!-- m:k3p9 sources:${cited.id} added:${day} -->\n`);
      const elsewhere = journalsElsewhere(clusterOf(sql, "laptop"));
      const page = String(memoryBody(await readMemory({ store: laptop.store, journal: laptop.journal, capBytes: 12 * 1024, undo: () => "", elsewhere }), "csrf"));
      assert.match(page, new RegExp(`<a href="/memory/journal/${day}\\?machine=server#line-1"><code>server:${day}#1</code></a>`));
      assert.match(page, /staging\.example\.net\.<\/pre>/, "the cited entry's text, from the store");
      assert.doesNotMatch(page, /Something else entirely/);
      const shown = String(journalBody(day, (await elsewhere.day("server", day))!, "server"));
      assert.match(shown, /server&#39;s journal\/.*read from the shared store/);
      assert.match(shown, /id="line-1"/);
      assert.equal(await elsewhere.day("server", "2026-01-01"), undefined);
    } finally {
      await sql.end({ timeout: 1 });
      await db.drop();
      dir.cleanup();
    }
  });
});
