import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { isDamage, openTaskDb, StateRefused, type TaskDb, type TaskFilter } from "./state-db.ts";

export type { TaskFilter };
import type { TaskRecord, TaskState } from "./state.ts";

/**
 * Reading the task state, for the daemon's surfaces and for the CLI while no daemon runs. It loads
 * no npm package (no zod): rows were validated by the daemon before it wrote them, so a reader
 * only checks their shape, and `nightshift status` starts about as fast as Node does.
 */

/** Queued, running or waiting for an approval: the hot set, held in memory. Every other state is final. */
export const ACTIVE_STATES: readonly TaskState[] = ["queued", "running", "waiting_approval"];
const FINAL_STATES: readonly TaskState[] = ["done", "failed", "cancelled"];
export type FinalState = "done" | "failed" | "cancelled";
export const isActive = (task: TaskRecord) => ACTIVE_STATES.includes(task.state);

/** What the surfaces read (status, /tasks, /status, the digest): the hot set from memory, the history by index. */
export interface TaskReader {
  get(id: string): TaskRecord | undefined;
  /** By id, or an inbox task by its file name (what `nightshift status TASK` accepts). */
  find(idOrName: string): TaskRecord | undefined;
  /** The newest task that came from `source` (a Telegram message: `telegram:CHAT:MESSAGE`). */
  bySource(source: string): TaskRecord | undefined;
  /** Queued, running and waiting tasks, oldest first. */
  active(): TaskRecord[];
  /** The active tasks, then the newest `limit` tasks of any state (no task twice). */
  overview(limit: number): TaskRecord[];
  /** Tasks matching `filter` (state, origin, older than a cursor), newest first, at most `limit`: by index. */
  list(filter: TaskFilter, limit: number): TaskRecord[];
  /** Tasks that finished (done, failed, cancelled; or only `state`) at or after `at`, newest first. */
  finishedSince(at: number, state?: FinalState): TaskRecord[];
  /** Ids that start or end with `part`, newest first. */
  idsMatching(part: string): string[];
  /** Every task ever recorded. */
  count(): number;
}

/** The state cannot be read (damaged, or from a newer version); the message says what to do. */
export class StateUnreadable extends Error {
  override name = "StateUnreadable";
}

/** A row's record as the daemon wrote it; anything without the fields every surface reads throws. */
function parseShape(json: string): TaskRecord {
  return checkShape(JSON.parse(json));
}

function checkShape(value: unknown): TaskRecord {
  const record = value as Partial<TaskRecord> | null;
  if (typeof record?.id !== "string" || typeof record.state !== "string" || typeof record.created !== "number" || typeof record.title !== "string" || typeof record.spec !== "object") {
    throw new Error(`a task record without id, state, created, title or spec`);
  }
  return record as TaskRecord;
}

function parsedOrNone(json: string): TaskRecord[] {
  try {
    return [parseShape(json)];
  } catch {
    return [];
  }
}

const damaged = (file: string, error: unknown) =>
  new StateUnreadable(`${file} is damaged (${(error as Error).message}); \`nightshift start\` moves it aside and rebuilds it from the session logs`);

/**
 * The state for a reader that is not the daemon (the CLI while no daemon runs): never writes,
 * never migrates; a version-1 file not yet migrated is read as it is. Close it when done.
 */
export function readStateQuietly(home: string): TaskReader & { close(): void } {
  const file = join(home, "state", "nightshift.db");
  const v1 = join(home, "state", "nightshift.json");
  // While the version-1 file is there, the daemon has not finished moving it into the database
  // (the move renames it last), so it is the whole truth even if the database exists.
  if (existsSync(v1)) {
    let tasks: TaskRecord[];
    try {
      const old = JSON.parse(readFileSync(v1, "utf8")) as { tasks?: unknown };
      if (!Array.isArray(old?.tasks)) throw new Error("no task list");
      tasks = old.tasks.map(checkShape);
    } catch (error) {
      throw damaged(v1, error);
    }
    return { ...listReader(tasks), close() {} };
  }
  if (!existsSync(file)) return { ...listReader([]), close() {} };
  if (statSync(file).size === 0) throw damaged(file, new Error("the file is empty (0 bytes)"));
  let db: TaskDb;
  try {
    db = openTaskDb(file, true);
  } catch (error) {
    if (!isDamage(error)) throw new StateUnreadable(error instanceof StateRefused ? error.message : `could not open ${file}: ${(error as Error).message}`);
    throw damaged(file, error);
  }
  try {
    // A record that does not read is left out, as the daemon leaves it out (and says so when it starts).
    const hot = new Map(db.active().flatMap((row) => parsedOrNone(row.record)).map((task) => [task.id, task]));
    return { ...dbReader(db, hot, parseShape), close: () => db.close() };
  } catch (error) {
    db.close();
    throw damaged(file, error);
  }
}

/**
 * Finished tasks are read from the file when asked; a row that does not parse is left out (it is
 * still in the file). `parse` throws for a record it does not accept (the daemon's is a zod schema).
 */
export function dbReader(db: TaskDb, hot: Map<string, TaskRecord>, parse: (json: string) => TaskRecord): TaskReader {
  const parsed = (json: string | undefined) => {
    if (json === undefined) return undefined;
    try {
      return parse(json);
    } catch {
      return undefined;
    }
  };
  const all = (jsons: string[]) => jsons.map(parsed).filter((task): task is TaskRecord => task !== undefined);
  const get = (id: string) => hot.get(id) ?? parsed(db.get(id));
  return {
    get,
    find: (idOrName) => get(idOrName) ?? parsed(db.byName(idOrName)),
    bySource: (source) => parsed(db.bySource(source)),
    active: () => [...hot.values()].sort((a, b) => a.created - b.created),
    overview(limit) {
      const recent = all(db.recent(limit)).filter((task) => !hot.has(task.id));
      return [...hot.values(), ...recent].sort((a, b) => b.created - a.created);
    },
    // A hot task's record in memory may be newer than its row; the row decides only which tasks match.
    list: (filter, limit) => all(db.list(filter, limit)).map((task) => hot.get(task.id) ?? task),
    finishedSince: (at, state) => all(db.finishedSince(at, state)),
    idsMatching: (part) => db.idsMatching(part),
    count: () => db.count(),
  };
}

/** Only the reading half of a store (what the daemon hands to the surfaces). */
export function readerOf(reader: TaskReader): TaskReader {
  const { get, find, bySource, active, overview, list, finishedSince, idsMatching, count } = reader;
  return { get, find, bySource, active, overview, list, finishedSince, idsMatching, count };
}

/** The same questions over a list in memory (a version-1 file read by the CLI). */
function listReader(tasks: TaskRecord[]): TaskReader {
  const byNewest = [...tasks].sort((a, b) => b.created - a.created || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const get = (id: string) => tasks.find((task) => task.id === id);
  return {
    get,
    find: (idOrName) => get(idOrName) ?? byNewest.find((task) => task.name === idOrName),
    bySource: (source) => byNewest.find((task) => task.spec.source === source),
    active: () => tasks.filter(isActive).sort((a, b) => a.created - b.created),
    overview: (limit) => byNewest.filter((task, index) => index < limit || isActive(task)),
    list: (filter, limit) => byNewest.filter((task) => matches(task, filter)).slice(0, limit),
    finishedSince: (at, state) => byNewest.filter((task) => (state ? task.state === state : FINAL_STATES.includes(task.state)) && (task.finished ?? -Infinity) >= at).sort((a, b) => b.finished! - a.finished!),
    idsMatching: (part) => byNewest.filter((task) => task.id.startsWith(part) || task.id.endsWith(part)).map((task) => task.id),
    count: () => tasks.length,
  };
}

/** `list`'s filter over one record, as the database's query applies it. */
export function matches(task: TaskRecord, filter: TaskFilter): boolean {
  if (filter.state !== undefined && task.state !== filter.state) return false;
  if (filter.origin !== undefined && task.origin !== filter.origin) return false;
  const before = filter.before;
  return !before || task.created < before.created || (task.created === before.created && task.id < before.id);
}
