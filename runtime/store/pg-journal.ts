/**
 * Every machine's memory journal in PostgreSQL, and where the nightly consolidation has read each
 * one up to. Each machine keeps its journal as files in its home (memory/journal.ts: a task's entry
 * costs no round trip and is written while the database is away) and copies its entries here, in
 * order, moments behind (memory/journal-mirror.ts). The one machine that consolidates reads every
 * machine's new entries from here, after each machine's cursor, and moves the cursors in one
 * transaction when its edits are applied.
 *
 * An entry is keyed by its machine and its id in that machine's files (`YYYY-MM-DD#line`): copied
 * twice (a restart reads from the last one the store holds), it is kept once.
 */

import type { JournalEntry } from "../../memory/journal.ts";
import type { ConsolidationRun } from "../../memory/runs.ts";
import { storable, type Sql } from "./pg.ts";

/** An entry as a machine's files hold it (`id` without a machine), and whose it is. */
export interface StoredEntry {
  machine: string;
  entry: JournalEntry;
}

export interface PgJournal {
  /** How many of `machine`'s entries the store holds. */
  count(machine: string): Promise<number>;
  /** The id of `machine`'s last entry the store holds, in its files' terms (`YYYY-MM-DD#line`). */
  last(machine: string): Promise<string | undefined>;
  /** Copies `machine`'s entries (ids in its files' terms); one already held is left as it is. */
  append(machine: string, entries: readonly JournalEntry[]): Promise<void>;
  /** Each machine's consolidation cursor (an id in its files' terms); a machine without one has never been read. */
  cursors(): Promise<Map<string, string>>;
  /** Moves the cursors named forward (never back), in one statement. */
  advance(cursors: ReadonlyMap<string, string>): Promise<void>;
  /** Sets `machine`'s cursor only if it has none (a home that ran alone brings where it had got to). */
  seed(machine: string, cursor: string): Promise<void>;
  /** Every machine's entries after its cursor, oldest first per machine, at most `limit` per machine. */
  after(cursors: ReadonlyMap<string, string>, limit: number): Promise<StoredEntry[]>;
  /** The entries named, by machine and id (what a memory entry cites). */
  find(ids: ReadonlyArray<{ machine: string; id: string }>): Promise<StoredEntry[]>;
  /** One day of `machine`'s journal, in order (empty: none that day). */
  day(machine: string, day: string): Promise<StoredEntry[]>;
  /** Entries of machines other than `except` whose text holds any of `words` (of three letters or more), among their newest SEARCHED, newest first (recall). */
  search(words: readonly string[], except: string, limit: number): Promise<StoredEntry[]>;
  /** Keeps a consolidation run (whichever machine ran it), and the last RUNS_KEPT only. */
  recordRun(machine: string, run: ConsolidationRun): Promise<void>;
  /** The last `limit` runs, oldest first, each with the machine that ran it. */
  runs(limit: number): Promise<Array<ConsolidationRun & { machine: string }>>;
}

/** Recall searches the other machines' newest entries, this many: months of a busy journal. */
const SEARCHED = 5000;

/** Consolidation runs kept in the store: a few months of nights, read 30 at a time. */
const RUNS_KEPT = 200;

const ID = /^(\d{4}-\d{2}-\d{2})#([1-9]\d*)$/;

/** `YYYY-MM-DD#line` → its day and line; undefined for anything else. */
export function splitEntryId(id: string): { day: string; line: number } | undefined {
  const match = ID.exec(id);
  return match ? { day: match[1]!, line: Number(match[2]) } : undefined;
}

interface Row {
  machine: string;
  day: string;
  line: number;
  entry: Omit<JournalEntry, "id">;
}

const stored = (row: Row): StoredEntry => ({ machine: row.machine, entry: { id: `${row.day}#${row.line}`, ...row.entry } });

export function pgJournal(sql: Sql): PgJournal {
  return {
    async count(machine) {
      const [row] = await sql<{ count: string }[]>`SELECT count(*) FROM journal_entries WHERE machine = ${machine}`;
      return Number(row?.count ?? 0);
    },
    async last(machine) {
      const [row] = await sql<{ day: string; line: number }[]>`
        SELECT day, line FROM journal_entries WHERE machine = ${machine} ORDER BY day DESC, line DESC LIMIT 1`;
      return row ? `${row.day}#${row.line}` : undefined;
    },
    async append(machine, entries) {
      const rows = entries.flatMap((entry) => {
        const at = splitEntryId(entry.id);
        if (!at) return [];
        const { id: _id, ...rest } = entry;
        return [{ machine, day: at.day, line: at.line, at: entry.at, entry: storable(rest) }];
      });
      if (rows.length === 0) return;
      await sql`INSERT INTO journal_entries ${sql(rows.map((row) => ({ ...row, entry: sql.json(row.entry as never) })))} ON CONFLICT DO NOTHING`;
    },
    async cursors() {
      const rows = await sql<{ machine: string; day: string; line: number }[]>`SELECT machine, day, line FROM journal_cursors`;
      return new Map(rows.map((row) => [row.machine, `${row.day}#${row.line}`]));
    },
    async advance(cursors) {
      const rows = [...cursors].flatMap(([machine, id]) => {
        const at = splitEntryId(id);
        return at ? [{ machine, ...at }] : [];
      });
      if (rows.length === 0) return;
      // Only ever forward: a machine pushing an older cursor it kept (its run's save failed, then another machine ran) changes nothing.
      await sql`
        INSERT INTO journal_cursors ${sql(rows)}
        ON CONFLICT (machine) DO UPDATE SET day = EXCLUDED.day, line = EXCLUDED.line
        WHERE (journal_cursors.day, journal_cursors.line) < (EXCLUDED.day, EXCLUDED.line)`;
    },
    async seed(machine, cursor) {
      const at = splitEntryId(cursor);
      if (!at) return;
      await sql`INSERT INTO journal_cursors (machine, day, line) VALUES (${machine}, ${at.day}, ${at.line}) ON CONFLICT (machine) DO NOTHING`;
    },
    async after(cursors, limit) {
      // Machines that wrote anything, each read from its cursor by the primary key: the cost follows what is new, not the journal's length.
      const machines = await sql<{ machine: string }[]>`
        WITH RECURSIVE names AS (
          (SELECT machine FROM journal_entries ORDER BY machine LIMIT 1)
          UNION ALL
          SELECT (SELECT machine FROM journal_entries WHERE machine > names.machine ORDER BY machine LIMIT 1) FROM names WHERE names.machine IS NOT NULL
        )
        SELECT machine FROM names WHERE machine IS NOT NULL`;
      const found: StoredEntry[] = [];
      for (const { machine } of machines) {
        const from = splitEntryId(cursors.get(machine) ?? "") ?? { day: "", line: 0 };
        const rows = await sql<Row[]>`
          SELECT machine, day, line, entry FROM journal_entries
          WHERE machine = ${machine} AND (day, line) > (${from.day}, ${from.line})
          ORDER BY day, line LIMIT ${limit}`;
        found.push(...rows.map(stored));
      }
      return found;
    },
    async find(ids) {
      const keys = ids.flatMap(({ machine, id }) => {
        const at = splitEntryId(id);
        return at ? [{ machine, ...at }] : [];
      });
      if (keys.length === 0) return [];
      // By the primary key, one look-up each.
      const rows = await sql<Row[]>`
        SELECT machine, day, line, entry FROM journal_entries
        WHERE (machine, day, line) IN (SELECT * FROM unnest(${sql.array(keys.map((key) => key.machine))}::text[], ${sql.array(keys.map((key) => key.day))}::text[], ${sql.array(keys.map((key) => key.line))}::int[]))`;
      return rows.map(stored);
    },
    async day(machine, day) {
      const rows = await sql<Row[]>`SELECT machine, day, line, entry FROM journal_entries WHERE machine = ${machine} AND day = ${day} ORDER BY line`;
      return rows.map(stored);
    },
    async search(words, except, limit) {
      // Words of three letters or more, within the newest SEARCHED entries (by the time index): a recall costs the same after years of journals.
      const patterns = words.filter((word) => word.length >= 3).map((word) => `%${word.replace(/[\\%_]/g, (char) => `\\${char}`)}%`);
      if (patterns.length === 0) return [];
      const rows = await sql<Row[]>`
        SELECT machine, day, line, entry FROM (
          SELECT machine, day, line, entry, at FROM journal_entries WHERE machine <> ${except} ORDER BY at DESC LIMIT ${SEARCHED}
        ) AS newest
        WHERE entry->>'text' ILIKE ANY (${sql.array(patterns)}::text[])
        ORDER BY at DESC LIMIT ${limit}`;
      return rows.map(stored);
    },
    async recordRun(machine, run) {
      await sql.begin(async (tx) => {
        const [row] = await tx<{ id: string }[]>`INSERT INTO memory_runs (machine, run) VALUES (${machine}, ${sql.json(run as never)}) RETURNING id`;
        await tx`DELETE FROM memory_runs WHERE id <= ${Number(row!.id) - RUNS_KEPT}`;
      });
    },
    async runs(limit) {
      const rows = await sql<{ machine: string; run: ConsolidationRun }[]>`SELECT machine, run FROM memory_runs ORDER BY id DESC LIMIT ${limit}`;
      return rows.reverse().map((row) => ({ ...row.run, machine: row.machine }));
    },
  };
}
