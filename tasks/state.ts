import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { asidePath } from "../runtime/aside.ts";
import type { TaskSpec } from "../runtime/events.ts";
import { readLoggedTasks, sortOrphans, type LoggedTask } from "./recovery.ts";
import { isDamage, openTaskDb, StateRefused, type TaskDb, type TaskRow } from "./state-db.ts";
import { dbReader, isActive, type TaskReader } from "./task-reader.ts";

/**
 * The daemon's state: every task (the queue and the history) and the schedules' and jobs' last
 * runs, in one SQLite file with one writer (the daemon, behind its lock). The active tasks are
 * also held in memory; finished ones are read by index when asked. Sessions keep their own logs;
 * the tasks can be rebuilt from them and from the inbox if the file is ever damaged.
 */

export const TASK_STATES = ["queued", "running", "waiting_approval", "done", "failed", "cancelled"] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const PRIORITIES = ["high", "normal", "low"] as const;
export type Priority = (typeof PRIORITIES)[number];

/** A task's spec as it crosses a boundary (the state file, the control socket). */
export const taskSpecSchema = z.object({
  title: z.string(),
  prompt: z.string(),
  workdir: z.string(),
  model: z.string(),
  budget: z.object({ max_turns: z.number(), max_usd: z.number(), timeout_ms: z.number() }),
  source: z.string().optional(),
  permissions: z.object({ read: z.array(z.string()).optional(), write: z.array(z.string()).optional(), commands: z.array(z.string()).optional(), network: z.array(z.string()).optional() }).optional(),
  notify: z.boolean().optional(),
  plan: z.boolean().optional(),
  specialists: z.array(z.string()).optional(),
  review_rounds: z.number().optional(),
});

const taskRecordSchema = z.object({
  id: z.string(),
  title: z.string(),
  /** Where it came from: `inbox`, `schedule`, `cli`, `telegram`, `recovered`. */
  origin: z.string(),
  /** For inbox tasks: the file name in inbox/.done/ and of the result in outbox/. */
  name: z.string().optional(),
  priority: z.enum(PRIORITIES),
  state: z.enum(TASK_STATES),
  spec: taskSpecSchema,
  created: z.number(),
  started: z.number().optional(),
  finished: z.number().optional(),
  /** How many times a process started or resumed it. */
  attempts: z.number(),
  /** How many times the daemon died while it ran (a graceful stop does not count). */
  crashes: z.number().default(0),
  turns: z.number(),
  cost_usd: z.number(),
  reason: z.string().optional(),
  answer_chars: z.number().optional(),
  /** A follow-up the user sent after the task finished, until its session has taken it in. */
  follow_up: z.string().optional(),
  /** When it was queued: a follow-up in the session log from then on was already taken in. */
  follow_up_at: z.number().optional(),
  /**
   * Several machines: who gives the person the result (writes outbox/, answers on Telegram): the
   * machine it was queued on, or `@telegram`, whichever machine runs the bot. Unset: this machine.
   */
  deliver_to: z.string().optional(),
});

/** The state file before version 2: one JSON document with every task ever run (lowdb). Read once, to migrate. */
const v1Schema = z.object({
  version: z.literal(1),
  tasks: z.array(taskRecordSchema),
  schedules: z.record(z.string(), z.object({ last_run: z.number() })),
});

export type TaskRecord = z.infer<typeof taskRecordSchema>;


/** The daemon's state: its only writer (behind the daemon lock). Each method resolves once its change is durable. */
export interface StateStore extends TaskReader {
  /** Records a new task, and a schedule's cursor in the same transaction (a crash cannot queue a slot twice). Throws if the id is taken. */
  add(record: TaskRecord, cursor?: { name: string; at: number }): Promise<void>;
  /** Changes a task's fields (undefined removes one). A failed write leaves the task as it was. */
  change(id: string, fields: Partial<TaskRecord>): Promise<void>;
  /**
   * Drops a task this process holds but must not run: one claimed from the shared queue of several
   * machines that another machine took over before it started here (tasks/cluster.ts).
   */
  forget(id: string): Promise<void>;
  lastRun(name: string): number | undefined;
  setLastRun(name: string, at: number): Promise<void>;
  close(): void;
}

export interface OpenedState {
  store: StateStore;
  /** Set when the state was damaged and rebuilt: say so loudly. */
  recovered?: { movedTo: string; problem: string; tasks: number; damagedLogs: Array<{ id: string; damage: string }> };
  /** Queued or running tasks whose record does not read (`id: problem`): left in the file, not run. Say so. */
  unreadable?: string[];
  /** Set when a version-1 state file was moved into the database (once): say so. */
  migrated?: { from: string; movedTo: string; tasks: number; added: number };
  /** Inbox tasks the state had lost (a lost or rebuilt file), recorded again from their session logs: say so. */
  relogged?: Array<{ name: string; id: string; state: TaskState; damage?: string }>;
  /** Files in inbox/.done/ without a task that are not queued again because they may have run: say so. */
  held?: Array<{ name: string; why: string }>;
  /** Files in inbox/.done/ that never ran (a crash between the move and the queue): queue them. */
  unstarted?: string[];
}

const rowOf = (task: TaskRecord): TaskRow => ({ id: task.id, state: task.state, created: task.created, finished: task.finished, name: task.name, source: task.spec.source });
const parseRecord = (json: string) => taskRecordSchema.parse(JSON.parse(json));

/**
 * Opens state/nightshift.db, the daemon's state (see tasks/state-db.ts). A version-1
 * state/nightshift.json is imported on first open and kept, renamed; a damaged file is moved aside
 * and the tasks rebuilt from the session logs. Files in inbox/.done/ the state has no task for are
 * sorted out against the session logs (see tasks/recovery.ts), so none that ran is queued again.
 */
export async function openState(home: string, now: () => number): Promise<OpenedState> {
  const dir = join(home, "state");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "nightshift.db");
  const sessions = join(home, "sessions");
  let recovered: OpenedState["recovered"];
  let migrated: OpenedState["migrated"];
  let logged: LoggedTask[] | undefined;
  let loaded: Loaded;
  try {
    loaded = load(file);
  } catch (error) {
    if (!(isDamage(error) || error instanceof DamagedState || error instanceof z.ZodError || error instanceof SyntaxError)) throw openProblem(file, error);
    const movedTo = asidePath(file, "damaged", now());
    for (const suffix of ["", "-wal", "-shm"]) if (existsSync(file + suffix)) renameSync(file + suffix, movedTo + suffix);
    loaded = load(file);
    logged = await readLoggedTasks(sessions, now());
    recovered = { movedTo, problem: problemOf(error), tasks: insertAll(loaded.db, logged.map((task) => task.record)), damagedLogs: damagedOf(logged) };
  }
  const v1 = join(dir, "nightshift.json");
  if (existsSync(v1)) {
    let old: z.infer<typeof v1Schema> | undefined;
    let problem: string | undefined;
    try {
      old = v1Schema.parse(JSON.parse(readFileSync(v1, "utf8")));
    } catch (error) {
      problem = problemOf(error);
    }
    if (old) {
      // Idempotent by id: a crash before the rename below imports the same tasks again, adding none.
      const tasks = old.tasks;
      const added = loaded.db.transaction(() => {
        const count = tasks.filter((task) => loaded.db.put(rowOf(task), JSON.stringify(task), "ignore")).length;
        for (const [name, { last_run }] of Object.entries(old.schedules)) loaded.db.setCursor(name, last_run, "ignore");
        return count;
      });
      const movedTo = asidePath(v1, "migrated", now());
      renameSync(v1, movedTo);
      migrated = { from: v1, movedTo, tasks: tasks.length, added };
    } else {
      const movedTo = asidePath(v1, "damaged", now());
      renameSync(v1, movedTo);
      logged ??= await readLoggedTasks(sessions, now());
      recovered = { movedTo, problem: problem!, tasks: insertAll(loaded.db, logged.map((task) => task.record), "ignore"), damagedLogs: damagedOf(logged) };
    }
  }
  const orphans = await sortOrphans(orphanNames(home, loaded.db), sessions, now(), logged);
  const relogged: NonNullable<OpenedState["relogged"]> = [];
  for (const orphan of orphans) {
    if (orphan.kind !== "logged") continue;
    const { record, damage } = orphan.task;
    if (loaded.db.put(rowOf(record), JSON.stringify(record), "ignore")) relogged.push({ name: orphan.name, id: record.id, state: record.state, ...(damage ? { damage } : {}) });
  }
  if (recovered || migrated || relogged.length) {
    loaded.db.close();
    loaded = load(file); // the hot set as now written: rebuilt and relogged tasks resume
  }
  const held = orphans.flatMap((orphan) => (orphan.kind === "held" ? [{ name: orphan.name, why: orphan.why }] : []));
  const unstarted = orphans.flatMap((orphan) => (orphan.kind === "unstarted" ? [orphan.name] : []));
  return {
    store: createStore(loaded),
    ...(recovered ? { recovered } : {}),
    ...(migrated ? { migrated } : {}),
    ...(loaded.unreadable.length ? { unreadable: loaded.unreadable } : {}),
    ...(relogged.length ? { relogged } : {}),
    ...(held.length ? { held } : {}),
    ...(unstarted.length ? { unstarted } : {}),
  };
}

const damagedOf = (logged: LoggedTask[]) => logged.flatMap((task) => (task.damage ? [{ id: task.id, damage: task.damage }] : []));

/** A state file that is damaged without SQLite saying so. */
class DamagedState extends Error {
  override name = "DamagedState";
}

/**
 * Files in inbox/.done/ with no task by that name (even one whose record does not read), and
 * whether each has its result in outbox/. One indexed look-up each.
 */
function orphanNames(home: string, db: TaskDb): Array<{ name: string; answered: boolean }> {
  const done = join(home, "inbox", ".done");
  if (!existsSync(done)) return [];
  return readdirSync(done).flatMap((name) => (db.hasName(name) ? [] : [{ name, answered: existsSync(join(home, "outbox", name)) }]));
}

interface Loaded {
  db: TaskDb;
  hot: Map<string, TaskRecord>;
  cursors: Map<string, number>;
  /** Active rows whose record does not read: `id: problem`. They stay in the file, not run. */
  unreadable: string[];
}

/** Opens the file and reads the hot set and the cursors; throws if any of it is damaged. */
function load(file: string): Loaded {
  // SQLite takes an empty file for a new database, but the daemon's first open writes a header at
  // once (4 KB): an empty one lost its content, and taking it for new would forget every task.
  if (existsSync(file) && statSync(file).size === 0) throw new DamagedState("the file is empty (0 bytes)");
  const db = openTaskDb(file);
  try {
    const hot = new Map<string, TaskRecord>();
    const unreadable: string[] = [];
    // One record that does not read (edited by hand, written by a newer version) is left in the
    // file and said, not taken for damage: moving the file aside would drop every other task's
    // history with it.
    for (const row of db.active()) {
      try {
        const task = parseRecord(row.record);
        hot.set(task.id, task);
      } catch (error) {
        unreadable.push(`${row.id}: ${problemOf(error)}`);
      }
    }
    const cursors = new Map(db.cursors().map((row) => [row.name, row.last_run]));
    return { db, hot, cursors, unreadable };
  } catch (error) {
    db.close();
    throw error;
  }
}

function insertAll(db: TaskDb, tasks: TaskRecord[], mode: "replace" | "ignore" = "replace"): number {
  db.transaction(() => tasks.forEach((task) => db.put(rowOf(task), JSON.stringify(task), mode)));
  return tasks.length;
}

/** A failure that is not damage (permissions, a full disk, an old Node): said as it is, the file left alone. */
function openProblem(file: string, error: unknown): Error {
  return error instanceof StateRefused ? error : new StateRefused(`could not open ${file}: ${(error as Error).message}`, { cause: error });
}

function problemOf(error: unknown): string {
  if (error instanceof z.ZodError) return `unexpected content (${error.issues[0]?.path.join(".")}: ${error.issues[0]?.message})`;
  return (error as Error).message;
}

/**
 * The daemon's store. Writes are synchronous SQLite transactions (serialized by construction);
 * the hot set in memory changes only after its write committed, so a failed write leaves it as it
 * was. Hot records are changed in place, as callers holding one expect.
 */
function createStore({ db, hot, cursors }: Loaded): StateStore {
  const reader = dbReader(db, hot, (json) => taskRecordSchema.parse(JSON.parse(json)));
  const write = (task: TaskRecord) => {
    if (!db.update(rowOf(task), JSON.stringify(task))) throw new Error(`no task ${task.id} in the state`);
  };
  return {
    ...reader,
    async add(record, cursor) {
      db.transaction(() => {
        if (!db.put(rowOf(record), JSON.stringify(record), "ignore")) throw new Error(`task id ${record.id} is already taken`);
        if (cursor) db.setCursor(cursor.name, cursor.at, "replace");
      });
      if (cursor) cursors.set(cursor.name, cursor.at);
      if (isActive(record)) hot.set(record.id, record);
    },
    async change(id, fields) {
      const current = reader.get(id);
      if (!current) return;
      const next: TaskRecord = { ...current, ...fields };
      for (const key of Object.keys(next) as Array<keyof TaskRecord>) if (next[key] === undefined) delete next[key];
      write(next);
      // In place, so a caller holding the record sees the change (as before); the removed fields go too.
      for (const key of Object.keys(current) as Array<keyof TaskRecord>) if (!(key in next)) delete current[key];
      Object.assign(current, next);
      if (isActive(current)) hot.set(id, current);
      else hot.delete(id);
    },
    async forget(id) {
      db.remove(id);
      hot.delete(id);
    },
    lastRun: (name) => cursors.get(name),
    async setLastRun(name, at) {
      db.setCursor(name, at, "replace");
      cursors.set(name, at);
    },
    close: () => db.close(),
  };
}

export type { TaskSpec };
export { ACTIVE_STATES, readerOf, readStateQuietly, StateUnreadable, type TaskReader } from "./task-reader.ts";
export { StateRefused } from "./state-db.ts";
