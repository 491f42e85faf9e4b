import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, test } from "node:test";
import { consolidate } from "../memory/consolidate.ts";
import { openJournal } from "../memory/journal.ts";
import { machineJournal } from "../memory/machine-journal.ts";
import { openMemoryStore, parseMemory } from "../memory/memory-file.ts";
import { configSchema, type ResolvedRole } from "../runtime/config.ts";
import { createModelClient } from "../runtime/model.ts";
import { readMemory, memoryBody } from "../dashboard/memory-page.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";
import { startMessagesApi } from "./support/messages-api.ts";

/**
 * Several machines share one MEMORY.md and each keeps its own journal (memory/machine-journal.ts):
 * a machine's journal ids carry its name, so two machines' `2026-11-24#1` never stand for each other.
 */

const KEY = "sk-ant-test-0123456789abcdef";
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe("a machine's journal among several", () => {
  test("cites this machine's entries with its name, reads a cursor with or without it, and finds no other machine's entry here", () => {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const clock = new FakeClock(new Date(2026, 10, 24, 12).getTime());
    const files = openJournal(join(dir.path, "journal"), clock);
    const journal = machineJournal(files, "laptop");
    const first = journal.append({ at: clock.now(), kind: "note", session: "s1", source: "user", text: "one" });
    clock.advance(60_000);
    const second = journal.append({ at: clock.now(), kind: "note", session: "s1", source: "agent", text: "two" });
    assert.equal(first.id, "laptop:2026-11-24#1");
    assert.deepEqual(files.all().map((entry) => entry.id), ["2026-11-24#2", "2026-11-24#1"], "the files keep their own ids");
    assert.deepEqual(journal.since(first.id).map((entry) => entry.id), [second.id]);
    assert.deepEqual(journal.since("2026-11-24#1").map((entry) => entry.id), [second.id], "a cursor from before the store: this machine's");
    assert.deepEqual(journal.since("server:2026-11-24#1").map((entry) => entry.id), [first.id, second.id], "another machine's cursor says nothing of this journal");
    assert.deepEqual(journal.day("2026-11-24")?.map((entry) => entry.id), [first.id, second.id]);
    assert.equal(journal.all().some((entry) => entry.id === "server:2026-11-24#1"), false);
  });

  test("a consolidation on one machine writes sources with its name, and the other machine's Memory page says whose journal holds them", async () => {
    const api = await startMessagesApi();
    const dir = tempDir();
    cleanups.push(() => api.close(), dir.cleanup);
    const clock = new FakeClock(new Date(2026, 10, 24, 9).getTime());
    const role: ResolvedRole = { role: "small", model: "claude-haiku-5-5", base_url: api.url, baseURL: api.url, api_key_env: "ANTHROPIC_API_KEY", apiKeyEnv: "ANTHROPIC_API_KEY", apiKey: KEY, context_window: 200_000, max_tokens: 4096, server_compaction: "off", tool_references: "off" };
    const model = createModelClient(role, KEY, { clock, retry: { attempts: 0, initial_delay: 1000, max_delay: 60_000, request_timeout: 30_000 } });
    // The server's home: its journal, and the MEMORY.md every machine holds alike.
    const server = machineJournal(openJournal(join(dir.path, "server", "journal"), clock), "server");
    mkdirSync(join(dir.path, "server"));
    mkdirSync(join(dir.path, "laptop"));
    const memory = openMemoryStore(join(dir.path, "server"), clock);
    writeFileSync(memory.path, "# Memory\n");
    const entry = server.append({ at: clock.now(), kind: "note", session: "s1", source: "user", text: "The user's staging server is staging.example.net." });
    api.script({ content: [{ type: "text", text: JSON.stringify({ edits: [{ op: "add", text: "Staging is staging.example.net.", sources: [entry.id] }] }) }] });
    clock.advance(18 * 3_600_000);
    const result = await consolidate({ journal: server, memory, model, prices: configSchema.parse({}).prices, capBytes: 12 * 1024, clock });
    assert.equal(result.status, "applied", result.problem);
    assert.match(JSON.stringify(api.requests[0]!.body), /server:2026-11-24#1/, "the model is shown the named id");
    const [added] = parseMemory(readFileSync(memory.path, "utf8")).entries;
    assert.deepEqual(added?.sources, ["server:2026-11-24#1"]);
    assert.equal(result.cursor, "server:2026-11-24#1");

    // The laptop holds the same MEMORY.md (shared) and a journal whose first entry of that day is another one.
    const laptopHome = join(dir.path, "laptop");
    const laptop = machineJournal(openJournal(join(laptopHome, "journal"), clock), "laptop");
    laptop.append({ at: new Date(2026, 10, 24, 10).getTime(), kind: "note", session: "s9", source: "user", text: "Something else entirely." });
    const laptopMemory = openMemoryStore(laptopHome, clock);
    writeFileSync(laptopMemory.path, readFileSync(memory.path, "utf8"));
    const page = String(memoryBody(await readMemory({ store: laptopMemory, journal: laptop, capBytes: 12 * 1024, undo: () => "" }), "csrf"));
    assert.match(page, /<code>server:2026-11-24#1<\/code> <span class="quiet">\(in server&#39;s journal\)<\/span>/);
    assert.doesNotMatch(page, /Something else entirely/, "the laptop's entry of the same day and line is not shown as its source");
  });
});
