/**
 * What one nightly consolidation sends as the journal grows. The real consolidator
 * (`memory/consolidate.ts`), journal, memory store and model client talk to the Messages API
 * stand-in (`test/support/messages-api.ts`); the journal holds 100, 1,000 or 10,000 entries, of
 * which the last 50 are new since the cursor. Request bytes and input tokens should stay flat:
 * only what is new and the capped memory go out. Nothing is asserted.
 * Run alone with `node bench/memory.ts`, or with the others through `node bench/run.ts`.
 */

import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { consolidate } from "../memory/consolidate.ts";
import { localDay, openJournal, type JournalEntry } from "../memory/journal.ts";
import { openMemoryStore } from "../memory/memory-file.ts";
import { configSchema, type ResolvedRole } from "../runtime/config.ts";
import { createModelClient } from "../runtime/model.ts";
import { FakeClock } from "../test/support/fake-clock.ts";
import { tempDir } from "../test/support/home.ts";
import { startMessagesApi } from "../test/support/messages-api.ts";
import { formatRows, type Row } from "./daemon.ts";

const KEY = "sk-ant-bench-0123456789abcdef";
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const PER_DAY = 50;
/** A day's mix: requests and outcomes, notes, and what was read from the web and tools. */
const KINDS: Array<Omit<JournalEntry, "id" | "trusted" | "at" | "session">> = [
  { kind: "request", source: "user", text: "Audit the dependencies of ~/code/app and tell me which updates are risky and why. ".repeat(2) },
  { kind: "note", source: "web", text: "Changelog: version 5 drops Node 18, renames the config file and changes the default cache folder. ".repeat(4) },
  { kind: "note", source: "tool", text: "$ pnpm outdated\nPackage  Current  Wanted  Latest\nvite     5.4.1    5.4.9   6.0.1\n".repeat(3) },
  { kind: "note", source: "agent", text: "The app pins vite to 5.x because of a plugin that has not been ported yet." },
  { kind: "outcome", source: "agent", status: "done", cost_usd: 0.21, text: "Three updates are safe (patch releases). vite 6 is risky: the legacy plugin breaks the build. ".repeat(5) },
];

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

/** A MEMORY.md of 30 entries (about 4 KB), the same for every journal size. */
function memoryFile(): string {
  const lines = Array.from({ length: 30 }, (_, i) => {
    const id = `m${String(i).padStart(3, "0")}`;
    return `- Remembered fact number ${i}: the user keeps project ${i} in ~/code/p${i} and deploys it by hand. <!-- m:${id} sources:2026-01-01#${i + 1} added:2026-01-01 -->`;
  });
  return `# Memory\n\n${lines.join("\n")}\n`;
}

/**
 * `total - fresh` entries written straight into past days' files (the journal's own format, much
 * faster than fsyncing each append), then `fresh` appended through the journal today.
 */
function fillJournal(dir: string, clock: FakeClock, total: number, fresh: number): string {
  mkdirSync(dir, { recursive: true });
  const old = total - fresh;
  const days = Math.ceil(old / PER_DAY);
  let cursor = "";
  for (let d = 0; d < days; d++) {
    const noon = clock.now() - (days - d) * DAY;
    const count = Math.min(PER_DAY, old - d * PER_DAY);
    const lines = Array.from({ length: count }, (_, i) => JSON.stringify({ at: noon + i * MINUTE, session: `s${d}-${Math.floor(i / 5)}`, ...KINDS[i % KINDS.length] }));
    writeFileSync(join(dir, `${localDay(noon)}.jsonl`), lines.join("\n") + "\n");
    cursor = `${localDay(noon)}#${count}`;
  }
  const journal = openJournal(dir, clock);
  for (let i = 0; i < fresh; i++) {
    clock.advance(MINUTE);
    journal.append({ at: clock.now(), session: `today-${Math.floor(i / 5)}`, ...KINDS[i % KINDS.length]! });
  }
  const read = journal.since().length;
  if (read !== total) throw new Error(`the journal reads back ${read} entries, not ${total}: its file format changed; update fillJournal`);
  return cursor;
}

function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

/**
 * For each journal size: three warm-ups and `runs` consolidations of the same 50 new entries (the
 * stand-in answers `{"edits":[]}`, so memory stays the same between runs). Bytes and tokens are the
 * request's (tokens as the stand-in estimates them, a quarter of the body's characters); time is
 * `consolidate()` end to end, journal read and HTTP included.
 */
export async function benchConsolidation(sizes = [100, 1_000, 10_000], fresh = 50, runs = 5): Promise<Row[]> {
  const api = await startMessagesApi();
  api.respondWith(() => ({ content: [{ type: "text", text: '{"edits":[]}' }] }));
  const prices = configSchema.parse({}).prices;
  const rows: Row[] = [];
  const bytesBySize: number[] = [];
  try {
    for (const total of sizes) {
      const dir = tempDir("nightshift-bench-memory-");
      try {
        const clock = new FakeClock(new Date(2026, 10, 24, 9).getTime());
        const role: ResolvedRole = { role: "small", model: "claude-haiku-5-5", base_url: api.url, baseURL: api.url, api_key_env: "ANTHROPIC_API_KEY", apiKeyEnv: "ANTHROPIC_API_KEY", apiKey: KEY, context_window: 200_000, max_tokens: 4096, server_compaction: "off", tool_references: "off" };
        const model = createModelClient(role, KEY, { clock, retry: { attempts: 0, initial_delay: 1000, max_delay: 60_000, request_timeout: 30_000 } });
        const journalDir = join(dir.path, "journal");
        const cursor = fillJournal(journalDir, clock, total, fresh);
        const memory = openMemoryStore(dir.path, clock);
        writeFileSync(memory.path, memoryFile());
        const journal = openJournal(journalDir, clock);
        const options = { journal, memory, model, prices, capBytes: 12 * 1024, clock, cursor };

        const times: number[] = [];
        let last = await consolidate(options);
        for (let i = 0; i < 2; i++) await consolidate(options); // warm-up: JIT and the stand-in's sockets
        for (let i = 0; i < runs; i++) {
          const started = performance.now();
          last = await consolidate(options);
          times.push(performance.now() - started);
        }
        if (last.status !== "applied") throw new Error(`consolidation ${last.status}: ${last.problem}`);
        const label = total.toLocaleString("en-US");
        bytesBySize.push(last.request_bytes!);
        rows.push(
          { name: `journal of ${label} entries on disk (${last.entries} new)`, value: folderBytes(journalDir), unit: "bytes" },
          { name: `request sent, journal of ${label}`, value: last.request_bytes!, unit: "bytes" },
          { name: `input tokens, journal of ${label}`, value: last.input_tokens!, unit: "count" },
          { name: `consolidate(), journal of ${label}, median of ${runs}`, value: median(times), unit: "ms" },
        );
      } finally {
        dir.cleanup();
      }
    }
    rows.push({ name: `request bytes, largest journal ÷ smallest`, value: bytesBySize.at(-1)! / bytesBySize[0]!, unit: "x", target: 1.05 });

    // Nothing new since the cursor: no request at all.
    const dir = tempDir("nightshift-bench-memory-");
    try {
      const clock = new FakeClock(new Date(2026, 10, 24, 9).getTime());
      const cursor = fillJournal(join(dir.path, "journal"), clock, 1_000, 0);
      let calls = 0;
      const model = { model: "unused", role: "small", complete: () => (calls++, Promise.reject(new Error("no call expected"))) };
      await consolidate({ journal: openJournal(join(dir.path, "journal"), clock), memory: openMemoryStore(dir.path, clock), model, prices, capBytes: 12 * 1024, clock, cursor });
      rows.push({ name: "model calls with nothing new since the cursor", value: calls, unit: "count", target: 0 });
    } finally {
      dir.cleanup();
    }
    return rows;
  } finally {
    await api.close();
  }
}

if (import.meta.main) {
  console.log(`## Consolidation as the journal grows (50 new entries a night)\n\n${formatRows(await benchConsolidation())}\n`);
}
