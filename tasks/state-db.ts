import { createRequire } from "node:module";
import type { DatabaseSync, StatementSync } from "node:sqlite";

/**
 * The task state's SQLite file (state/nightshift.db) through Node's built-in `node:sqlite`: one
 * table of tasks, indexed by what the daemon and its readers ask (id, the active ones, newest
 * first, finished since, inbox name, source), and one of cursors (schedules, nightly jobs). A
 * state change updates one row: its cost does not depend on how many tasks finished before.
 * Rows hold the task record as JSON; the columns beside it exist to be indexed.
 */

/** Loaded when first used, so that an older Node says what it lacks instead of failing to load the CLI at all. */
function sqlite(): typeof import("node:sqlite") {
  try {
    return createRequire(import.meta.url)("node:sqlite") as typeof import("node:sqlite");
  } catch {
    throw new StateRefused(`Nightshift keeps its state with node:sqlite, which needs Node 22.13 or newer (this is ${process.version}); run it through npm (npx nightshift …) or install Node 24`);
  }
}

/** Bumped when the tables change; a file from a newer Nightshift is refused, not rebuilt. */
export const SCHEMA_VERSION = 2;

/** The file may be fine, but this Nightshift cannot open it (a newer schema, no node:sqlite): never moved aside. */
export class StateRefused extends Error {
  override name = "StateRefused";
}

/** True for what SQLite says of a damaged file: not a database, corrupt, or tables missing. */
export function isDamage(error: unknown): boolean {
  const { errcode, message } = error as { errcode?: number; message?: string };
  if (typeof errcode !== "number") return false;
  const primary = errcode & 0xff;
  return primary === 26 || primary === 11 || (primary === 1 && /no such (table|column)/.test(message ?? ""));
}

/** Written out, not bound: SQLite uses a partial index only for a query whose WHERE visibly implies the index's. */
const ACTIVE = "state IN ('queued', 'running', 'waiting_approval')";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  created REAL NOT NULL,
  finished REAL,
  name TEXT,
  source TEXT,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_active ON tasks (state) WHERE state IN ('queued', 'running', 'waiting_approval');
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created);
CREATE INDEX IF NOT EXISTS tasks_finished ON tasks (finished) WHERE finished IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_name ON tasks (name) WHERE name IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_source ON tasks (source) WHERE source IS NOT NULL;
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, last_run REAL NOT NULL);
`;

/**
 * Indexes added after schema 2 for the dashboard's task list (filters by state or by origin, newest
 * first, with 10,000 tasks). `IF NOT EXISTS`, so the daemon creates them on every open without a new
 * schema version; a read-only reader of a file that lacks them gets the same answers by a scan.
 */
const LATER_INDEXES = `
CREATE INDEX IF NOT EXISTS tasks_state_created ON tasks (state, created);
CREATE INDEX IF NOT EXISTS tasks_origin_created ON tasks (json_extract(record, '$.origin'), created);
`;

/** Which tasks `list` returns: by state and/or origin, older than a (created, id) cursor. */
export interface TaskFilter {
  state?: string | undefined;
  origin?: string | undefined;
  before?: { created: number; id: string } | undefined;
}

/**
 * Durability, in one place. WAL with synchronous=FULL: a commit returns once its WAL frames are
 * fsynced (one fsync per state change; a crash or power loss keeps every committed change and
 * none that was not). On macOS fsync does not flush the drive's cache; fullfsync (F_FULLFSYNC) does.
 */
function makeDurable(db: DatabaseSync): void {
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = FULL");
  if (process.platform === "darwin") db.exec("PRAGMA fullfsync = ON; PRAGMA checkpoint_fullfsync = ON");
}

/** What the table stores of a record besides its JSON. */
export interface TaskRow {
  id: string;
  state: string;
  created: number;
  finished?: number | undefined;
  name?: string | undefined;
  source?: string | undefined;
}

export interface TaskDb {
  /** Every active task (queued, running, waiting for approval), oldest first: its id and record JSON. */
  active(): Array<{ id: string; record: string }>;
  get(id: string): string | undefined;
  byName(name: string): string | undefined;
  /** Whether any task has this inbox name, even one whose record does not read. */
  hasName(name: string): boolean;
  bySource(source: string): string | undefined;
  recent(limit: number): string[];
  /** Tasks matching `filter`, newest first (created, then id, descending), at most `limit`. */
  list(filter: TaskFilter, limit: number): string[];
  /** Tasks in a final state (done, failed, cancelled; or only `state`) that finished at or after `at`, newest first. */
  finishedSince(at: number, state?: string): string[];
  /** Ids that start or end with `part` (case-sensitive). */
  idsMatching(part: string): string[];
  count(): number;
  cursors(): Array<{ name: string; last_run: number }>;
  /** Inserts a task; `replace` overwrites one with the same id, otherwise a task that exists is left alone (false). */
  put(row: TaskRow, json: string, mode: "insert" | "replace" | "ignore"): boolean;
  /** Updates an existing task's row; false when there is none. */
  update(row: TaskRow, json: string): boolean;
  /** Removes a task's row; false when there is none. */
  remove(id: string): boolean;
  setCursor(name: string, at: number, mode: "replace" | "ignore"): void;
  /** Runs `work` in one transaction: all of it is on disk, or none of it. */
  transaction<T>(work: () => T): T;
  close(): void;
}

/**
 * Opens (creating if need be) the file. Throws what SQLite throws for a file that is not a
 * database (see `isDamage`), and StateRefused for one a newer Nightshift wrote. `readOnly` never writes, for the
 * CLI while no daemon runs (the daemon is the only writer).
 */
export function openTaskDb(file: string, readOnly = false): TaskDb {
  const db = new (sqlite().DatabaseSync)(file, readOnly ? { readOnly: true } : {});
  try {
    db.exec("PRAGMA busy_timeout = 2000");
    const version = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version > SCHEMA_VERSION) throw new StateRefused(`${file} was written by a newer Nightshift (schema ${version}, this one knows ${SCHEMA_VERSION}); update Nightshift`);
    if (!readOnly) {
      makeDurable(db);
      if (version < SCHEMA_VERSION) db.exec(`BEGIN; ${SCHEMA} PRAGMA user_version = ${SCHEMA_VERSION}; COMMIT;`);
      db.exec(LATER_INDEXES);
    } else if (version === 0) {
      db.close();
      return emptyDb();
    }
    // Touches every table, so a file with the right header but the wrong content fails here, at open.
    db.prepare(`SELECT count(*) FROM tasks WHERE ${ACTIVE}`).get();
  } catch (error) {
    db.close();
    throw error;
  }
  const statements = new Map<string, StatementSync>();
  const sql = (text: string) => {
    let statement = statements.get(text);
    if (!statement) statements.set(text, (statement = db.prepare(text)));
    return statement;
  };
  const records = (rows: unknown[]) => (rows as Array<{ record: string }>).map((row) => row.record);
  const one = (row: unknown) => (row as { record: string } | undefined)?.record;
  const params = (row: TaskRow, json: string) => [row.id, row.state, row.created, row.finished ?? null, row.name ?? null, row.source ?? null, json] as const;
  let depth = 0;
  return {
    active: () => sql(`SELECT id, record FROM tasks WHERE ${ACTIVE} ORDER BY created, id`).all() as Array<{ id: string; record: string }>,
    get: (id) => one(sql("SELECT record FROM tasks WHERE id = ?").get(id)),
    byName: (name) => one(sql("SELECT record FROM tasks WHERE name = ? ORDER BY created DESC LIMIT 1").get(name)),
    hasName: (name) => sql("SELECT 1 FROM tasks WHERE name = ? LIMIT 1").get(name) !== undefined,
    bySource: (source) => one(sql("SELECT record FROM tasks WHERE source = ? ORDER BY created DESC LIMIT 1").get(source)),
    recent: (limit) => records(sql("SELECT record FROM tasks ORDER BY created DESC, id DESC LIMIT ?").all(limit)),
    list(filter, limit) {
      // The SQL text names only the conditions given, so SQLite picks the index that fits each.
      const where: string[] = [];
      const args: Array<string | number> = [];
      if (filter.state !== undefined) (where.push("state = ?"), args.push(filter.state));
      if (filter.origin !== undefined) (where.push("json_extract(record, '$.origin') = ?"), args.push(filter.origin));
      if (filter.before) (where.push("(created < ? OR (created = ? AND id < ?))"), args.push(filter.before.created, filter.before.created, filter.before.id));
      const text = `SELECT record FROM tasks ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY created DESC, id DESC LIMIT ?`;
      return records(sql(text).all(...args, limit));
    },
    // Filtered on the state column: only the records wanted are read and parsed.
    finishedSince: (at, state) =>
      state
        ? records(sql("SELECT record FROM tasks WHERE finished >= ? AND state = ? ORDER BY finished DESC").all(at, state))
        : records(sql("SELECT record FROM tasks WHERE finished >= ? AND state IN ('done', 'failed', 'cancelled') ORDER BY finished DESC").all(at)),
    idsMatching: (part) => (sql("SELECT id FROM tasks WHERE substr(id, 1, length(?1)) = ?1 OR substr(id, -length(?1)) = ?1 ORDER BY created DESC").all(part) as Array<{ id: string }>).map((row) => row.id),
    count: () => (sql("SELECT count(*) AS n FROM tasks").get() as { n: number }).n,
    cursors: () => sql("SELECT name, last_run FROM cursors").all() as Array<{ name: string; last_run: number }>,
    put(row, json, mode) {
      const verb = mode === "insert" ? "INSERT" : mode === "replace" ? "INSERT OR REPLACE" : "INSERT OR IGNORE";
      return Number(sql(`${verb} INTO tasks (id, state, created, finished, name, source, record) VALUES (?, ?, ?, ?, ?, ?, ?)`).run(...params(row, json)).changes) > 0;
    },
    update(row, json) {
      const [id, ...rest] = params(row, json);
      return Number(sql("UPDATE tasks SET state = ?, created = ?, finished = ?, name = ?, source = ?, record = ? WHERE id = ?").run(...rest, id).changes) > 0;
    },
    remove: (id) => Number(sql("DELETE FROM tasks WHERE id = ?").run(id).changes) > 0,
    setCursor(name, at, mode) {
      sql(`INSERT OR ${mode === "replace" ? "REPLACE" : "IGNORE"} INTO cursors (name, last_run) VALUES (?, ?)`).run(name, at);
    },
    transaction(work) {
      if (depth > 0) return work();
      db.exec("BEGIN IMMEDIATE");
      depth++;
      try {
        const result = work();
        db.exec("COMMIT");
        return result;
      } catch (error) {
        try {
          db.exec("ROLLBACK");
        } catch {
          // SQLite already rolled it back (a full disk, an I/O error): nothing is left to undo.
        }
        throw error;
      } finally {
        depth--;
      }
    },
    close: () => db.close(),
  };
}

/** A state that was never written, for a reader that must not create the file. */
function emptyDb(): TaskDb {
  return {
    active: () => [],
    get: () => undefined,
    byName: () => undefined,
    hasName: () => false,
    bySource: () => undefined,
    recent: () => [],
    list: () => [],
    finishedSince: () => [],
    idsMatching: () => [],
    count: () => 0,
    cursors: () => [],
    put: () => false,
    update: () => false,
    remove: () => false,
    setCursor: () => {},
    transaction: (work) => work(),
    close: () => {},
  };
}
