import { existsSync, readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Clock, MemoryAccess, SessionEvent } from "../runtime/index.ts";
import { DEFAULT_IDENTITY } from "./identity.ts";
import { capText, localDay, openJournal, type DamagedLine, type Journal, type JournalEntry } from "./journal.ts";
import { openMemoryStore, type MemoryStore } from "./memory-file.ts";
import { machineJournal } from "./machine-journal.ts";
import { recall, terms } from "./recall.ts";

/**
 * Memory as one process uses it: the journal it appends to, MEMORY.md, what the agent's `remember`
 * and `recall` tools reach, and the prefix every session starts with (identity, then memory within
 * its cap, saying so when something was left out).
 */
export interface Memory {
  journal: Journal;
  store: MemoryStore;
  /** For createRuntime's `memory` option. */
  access: MemoryAccess;
  /** Identity and memory for a session (createRuntime's `loadPrefix`). */
  loadPrefix(): Promise<{ identity: string; memory: string }>;
  /** A warning while MEMORY.md is over its cap (sessions, doctor and the digest repeat it). */
  overCap(): string | undefined;
  /** What createRuntime takes from memory: the prefix, the tools' access, the over-cap notice. */
  forRuntime(): { loadPrefix(): Promise<{ identity: string; memory: string }>; memory: MemoryAccess; notices(): string[] };
  /** Journals a task's request and outcome from its events (top-level sessions only). */
  record(session: string, event: SessionEvent): void;
  /**
   * Journals what `record` missed of a session's logged events: a kill between an event reaching
   * the log and its entry reaching the journal. Each entry once, however often it is called.
   * Returns how many it added. Call it before the session runs again.
   */
  reconcile(session: string, events: readonly SessionEvent[]): number;
}

/**
 * `onDamaged`: a journal line that does not read, once per process (it is kept and skipped): say so. Must not throw.
 * `machine`: with several machines on one store, this machine's name: its journal entries are cited as `machine:YYYY-MM-DD#line`
 * in the MEMORY.md every machine shares, so a source never names another machine's entry of the same day and line.
 * `others`: with several machines, the other machines' journal entries holding any of `words` (machine-qualified ids), for `recall`.
 */
export function openMemory(home: string, clock: Clock, capBytes: number, options: { onDamaged?(line: DamagedLine): void; machine?: string | undefined; others?: (words: string[]) => Promise<JournalEntry[]> } = {}): Memory {
  /**
   * A session that read a web page (itself or through a specialist) may repeat what the page said:
   * its answer is journaled as untrusted. Read from its logs, so a restart in between changes nothing.
   */
  const sawTheWeb = new Set<string>();
  /**
   * Tasks this process has seen from their session_start: every event of theirs (and of their
   * specialists) came through `record`, so their logs are not read again at the end; reading them
   * whole at every task's end cost as much as the task's log, for nothing. Both sets lose a task
   * at its session_end, so neither grows with the history.
   */
  const seenWhole = new Set<string>();
  const readTheWeb = (session: string): boolean => {
    if (sawTheWeb.has(session)) return true;
    if (seenWhole.has(session)) return false;
    const folder = join(home, "sessions", session);
    const logs = [`${folder}.jsonl`, ...(existsSync(folder) ? readdirSync(folder).map((name) => join(folder, name)) : [])];
    return logs.some((path) => existsSync(path) && readFileSync(path, "utf8").split("\n").some((line) => line.includes('"type":"tool_end"') && line.includes('"name":"web_fetch"') && line.includes('"is_error":false')));
  };
  const local = openJournal(join(home, "journal"), clock, options);
  const journal = options.machine ? machineJournal(local, options.machine) : local;
  const store = openMemoryStore(home, clock);
  const overCap = () => {
    const { over } = store.forSession(capBytes);
    if (!over) return undefined;
    return `MEMORY.md is ${kb(over.bytes)}, over its ${kb(over.capBytes)} cap (config memory.cap): sessions see ${over.shown} of its ${over.total} entries (the newest and most cited); the nightly consolidator retires entries, or raise the cap`;
  };
  const memory: Memory = {
    journal,
    store,
    overCap,
    forRuntime: () => ({ loadPrefix: memory.loadPrefix, memory: memory.access, notices: () => [overCap()].filter((notice): notice is string => notice !== undefined) }),
    access: {
      remember: ({ session, text, source }) => journal.append({ at: clock.now(), kind: "note", session, source, text }).id,
      async recall(query) {
        // Several machines: the other machines' entries that share a word with the query, from the store (this machine's alone while it is away).
        const others = options.others ? await options.others([...terms(query)]).catch(() => []) : [];
        return recall(query, store.read().entries, [...journal.all(), ...others]).map((hit) => ({ id: hit.id, date: hit.date, text: hit.text, sources: hit.sources, trusted: hit.trusted }));
      },
    },
    async loadPrefix() {
      const identity = await readFile(join(home, "IDENTITY.md"), "utf8").catch((error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return DEFAULT_IDENTITY;
        throw error;
      });
      return { identity, memory: store.forSession(capBytes).text };
    },
    record(session, event) {
      if (event.type === "tool_end" && event.name === "web_fetch" && !event.is_error) sawTheWeb.add(session.split(".")[0]!);
      if (session.includes(".")) return; // a specialist's session: its task's entries say it all
      if (event.type === "session_start") seenWhole.add(session);
      const entry = entryOf(event);
      if (entry) journal.append({ ...entry, session, source: entry.kind === "outcome" && readTheWeb(session) ? "web" : entry.source });
      // After the append: a retried record (the journal's write failed) must still know what it saw.
      if (event.type === "session_end") {
        sawTheWeb.delete(session);
        seenWhole.delete(session);
      }
    },
    reconcile(session, events) {
      if (session.includes(".")) return 0;
      const wanted = events.flatMap((event) => entryOf(event) ?? []);
      if (!wanted.length) return 0;
      // An entry goes into the file of the day it is written, never before its event's day (a day's slack for clock steps).
      const fromDay = localDay(Math.min(...wanted.map((entry) => entry.at)) - 86_400_000);
      const key = (entry: { kind: string; at: number; text: string }) => `${entry.kind} ${entry.at} ${capText(entry.text)}`;
      const have = new Set(journal.of(session, fromDay).map(key));
      const missing = wanted.filter((entry) => !have.has(key(entry)));
      for (const entry of missing) journal.append({ ...entry, session, source: entry.kind === "outcome" && readTheWeb(session) ? "web" : entry.source });
      return missing.length;
    },
  };
  return memory;
}

/** The journal entry an event makes, if any: a request when a task starts or the user follows up, its outcome when it ends. */
function entryOf(event: SessionEvent): Omit<JournalEntry, "id" | "trusted" | "session"> | undefined {
  if (event.type === "session_start") return { at: event.at, kind: "request", source: "user", text: `${event.task.title}\n${event.task.prompt}` };
  if (event.type === "user") return { at: event.at, kind: "request", source: "user", text: event.text };
  if (event.type === "session_end") return { at: event.at, kind: "outcome", source: "agent", text: event.answer || event.reason || "(no answer)", status: event.status, cost_usd: event.cost_usd };
  return undefined;
}

function kb(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KB`;
}
