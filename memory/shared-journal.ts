import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { PgJournal, StoredEntry } from "../runtime/store/pg-journal.ts";
import { splitEntryId } from "../runtime/store/pg-journal.ts";
import { storable } from "../runtime/store/pg.ts";
import type { Journal, JournalEntry } from "./journal.ts";
import type { ConsolidationRun } from "./runs.ts";
import { splitCitation } from "./machine-journal.ts";

/**
 * Several machines on one store share one memory: each keeps its journal as files in its home and
 * copies it into the store (`createJournalMirror`); the machine that consolidates reads every
 * machine's new entries from there (`sharedConsolidation`), so one run learns from all of them and
 * the others, finding nothing new, make no model call.
 */

/** Copies this machine's journal into the store, in order, behind the files. */
export interface JournalMirror {
  /** Copies what the journal grew by since the last copy; what the store refuses now is tried again at the next call. */
  sync(): Promise<void>;
}

/** At most this many entries in one statement: a machine catching up after an outage does not send one huge insert. */
const BATCH = 200;

/**
 * `journal`: this machine's journal with its files' ids (`YYYY-MM-DD#line`, not machine-qualified).
 * `dir`: its folder, looked at before reading: a heartbeat with nothing new written reads no file.
 */
export function createJournalMirror(options: {
  store: PgJournal;
  journal: Journal;
  dir: string;
  machine: string;
  /** Where this home's consolidation had got to when it ran alone: set in the store before the first copy, if the store has none. */
  seed?: string;
  /** The store's journal under this machine's name is another home's: nothing is copied. Said once. */
  refused?(message: string): void;
}): JournalMirror {
  const { store, journal, machine } = options;
  /** The last entry the store holds (undefined: none), once asked. */
  let copied: { id: string | undefined } | undefined;
  /** The newest day file and its size at the last copy. */
  let seen = "";
  let refused = false;
  let running: Promise<void> | undefined;
  const syncOnce = async () => {
    if (refused) return;
    const stamp = newestFile(options.dir);
    if (copied && stamp === seen) return;
    if (!copied) {
      // Before the first copy, or the next consolidation would read what this home had consolidated alone.
      if (options.seed) await store.seed(machine, options.seed);
      const last = await store.last(machine);
      if (last && !(await sameEntry(last))) {
        refused = true;
        options.refused?.(
          `the shared store holds a memory journal under the machine name "${machine}" that is not this home's (its entry ${last} differs from this home's): ` +
            `this machine's journal is not copied there, so the nightly consolidation does not learn from it. Give this machine a name of its own with \`machine:\` in config.yaml and restart it`,
        );
        return;
      }
      copied = { id: last };
    }
    const fresh = journal.since(copied.id);
    for (let start = 0; start < fresh.length; start += BATCH) {
      const batch = fresh.slice(start, start + BATCH);
      await store.append(machine, batch);
      copied = { id: batch.at(-1)!.id };
    }
    seen = stamp;
  };
  /** The store's last entry under this name is this home's entry of that id (a home reinstalled under a used name has others). */
  const sameEntry = async (id: string): Promise<boolean> => {
    const [theirs] = await store.find([{ machine, id }]);
    const ours = journal.day(id.slice(0, id.indexOf("#")))?.find((entry) => entry.id === id);
    return theirs !== undefined && ours !== undefined && theirs.entry.at === ours.at && theirs.entry.text === storable(ours.text);
  };
  return {
    sync() {
      // One at a time: each continues from where the last one got.
      running ??= syncOnce().finally(() => (running = undefined));
      return running;
    },
  };
}

/** The newest journal day file with its size: what a new entry changes. */
function newestFile(dir: string): string {
  if (!existsSync(dir)) return "";
  const newest = readdirSync(dir).filter((name) => /^\d{4}-\d{2}-\d{2}\.jsonl$/.test(name)).sort().at(-1);
  return newest ? `${newest} ${statSync(join(dir, newest)).size}` : "";
}

/**
 * Where the consolidation reads from and how it keeps its place. On one machine: this machine's
 * journal and the cursor in state/memory.json. With several: every machine's entries in the store,
 * and a cursor per machine kept there (`save`).
 */
export interface ConsolidationSource {
  /**
   * The journal to read and the cursor to read it from (undefined: from the start). `kept`: the
   * cursor state/memory.json holds, which this machine's last applied run reached.
   */
  open(kept?: string): Promise<{ journal: Journal; cursor?: string }>;
  /** Keeps the cursor a run reached (state/memory.json holds it too, written first). */
  save(cursor: string): Promise<void>;
  /** The cursor after a batch (default: the batch's last entry). */
  cursorAfter?(cursor: string | undefined, batch: readonly JournalEntry[]): string;
  /** Where the runs are kept when not only in state/memory.json: every machine's, for /memory and the digest on any of them. */
  history?: { recent(): Promise<ConsolidationRun[]>; record(run: ConsolidationRun): Promise<void> };
}

/** Runs read for /memory, the digest and the stuck-batch check, as state/memory.json keeps them. */
const RUNS_SHOWN = 30;

/** Entries read from the store per machine for one consolidation: a night's work is far less; a longer backlog waits for the next run. */
const READ_LIMIT = 2000;

/**
 * Every machine's entries after its cursor, merged oldest first (each machine's in its own order),
 * with machine-qualified ids (`m2:2026-12-01#3`), as they are cited in MEMORY.md. The cursor is one
 * machine-qualified id per machine, in one string: `m1:2026-12-01#5 m2:2026-12-02#3`.
 */
export function sharedConsolidation(store: PgJournal, machine: string): ConsolidationSource {
  return {
    history: {
      recent: () => store.runs(RUNS_SHOWN),
      record: (run) => store.recordRun(machine, run),
    },
    async open(kept) {
      // A run here whose save to the store failed after it wrote MEMORY.md: its cursor goes in first, so its entries are not learned twice.
      if (kept) await store.advance(decodeCursor(kept));
      const cursors = await store.cursors();
      const entries = merge(await store.after(cursors, READ_LIMIT));
      const cursor = encodeCursor(cursors);
      return { journal: snapshotJournal(entries), ...(cursor ? { cursor } : {}) };
    },
    async save(cursor) {
      await store.advance(decodeCursor(cursor));
    },
    cursorAfter(cursor, batch) {
      const cursors = decodeCursor(cursor ?? "");
      for (const entry of batch) {
        const { machine, id } = splitCitation(entry.id);
        if (machine) cursors.set(machine, id);
      }
      return encodeCursor(cursors);
    },
  };
}

export function encodeCursor(cursors: ReadonlyMap<string, string>): string {
  return [...cursors].sort(([a], [b]) => a.localeCompare(b)).map(([machine, id]) => `${machine}:${id}`).join(" ");
}

export function decodeCursor(cursor: string): Map<string, string> {
  const cursors = new Map<string, string>();
  for (const part of cursor.split(" ")) {
    const { machine, id } = splitCitation(part);
    if (machine && splitEntryId(id)) cursors.set(machine, id);
  }
  return cursors;
}

/** Each machine's entries in their order, interleaved by time: any first part of the result is a first part of every machine's. */
function merge(stored: readonly StoredEntry[]): JournalEntry[] {
  const queues = new Map<string, JournalEntry[]>();
  for (const { machine, entry } of stored) {
    const queue = queues.get(machine) ?? [];
    queue.push({ ...entry, id: `${machine}:${entry.id}` });
    queues.set(machine, queue);
  }
  const merged: JournalEntry[] = [];
  const heads = [...queues.values()];
  for (;;) {
    let next: JournalEntry[] | undefined;
    for (const queue of heads) if (queue.length && (!next || queue[0]!.at < next[0]!.at)) next = queue;
    if (!next) return merged;
    merged.push(next.shift()!);
  }
}

const after = (id: string, than: string | undefined): boolean => {
  if (than === undefined) return true;
  const a = splitEntryId(id);
  const b = splitEntryId(than);
  return !a || !b || a.day > b.day || (a.day === b.day && a.line > b.line);
};

/** The entries read for one consolidation, as a journal: `since` takes the cursor of several machines. */
function snapshotJournal(entries: readonly JournalEntry[]): Journal {
  const since = (cursor?: string) => {
    const cursors = decodeCursor(cursor ?? "");
    return entries.filter((entry) => {
      const { machine, id } = splitCitation(entry.id);
      return after(id, machine ? cursors.get(machine) : undefined);
    });
  };
  return {
    append: () => {
      throw new Error("the shared journal is read-only here: each machine writes its own");
    },
    since,
    all: () => [...entries].reverse(),
    of: (session) => entries.filter((entry) => entry.session === session),
    day: () => undefined,
    damaged: () => [],
  };
}
