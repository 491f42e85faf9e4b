import { existsSync, readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { Low } from "lowdb";
import { JSONFile } from "lowdb/node";
import { z } from "zod";
import { readSessionLog, type TaskSpec } from "../runtime/index.ts";

/**
 * The daemon's small state: the task queue and the schedules' last runs, in one lowdb file with
 * one owner (the daemon, behind its lock). lowdb writes a temp file and renames it, so a crash
 * leaves the old or the new file, never half of one. Sessions keep their own logs; this file can
 * be rebuilt from them and from the inbox if it is ever damaged.
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
});

const stateSchema = z.object({
  version: z.literal(1),
  tasks: z.array(taskRecordSchema),
  schedules: z.record(z.string(), z.object({ last_run: z.number() })),
});

export type TaskRecord = z.infer<typeof taskRecordSchema>;
export type StateData = z.infer<typeof stateSchema>;

export interface StateStore {
  readonly data: StateData;
  /** Applies `change` and writes the file; resolves when it is on disk. Writes are serialized. */
  update(change: (data: StateData) => void): Promise<void>;
}

export interface OpenedState {
  store: StateStore;
  /** Set when the file was damaged and rebuilt: say so loudly. */
  recovered?: { movedTo: string; problem: string; tasks: number };
}

/** Rebuilds a queued task from an inbox file that has no result yet (the daemon re-reads it). */
export type SpecOf = (name: string, id: string) => Promise<TaskSpec | undefined>;

export async function openState(home: string, now: () => number, specOf?: SpecOf): Promise<OpenedState> {
  const file = join(home, "state", "nightshift.json");
  const db = new Low<StateData>(new JSONFile<StateData>(file), { version: 1, tasks: [], schedules: {} });
  let recovered: OpenedState["recovered"];
  try {
    await db.read();
    db.data = stateSchema.parse(db.data);
  } catch (error) {
    const problem = error instanceof z.ZodError ? `unexpected content (${error.issues[0]?.path.join(".")}: ${error.issues[0]?.message})` : (error as Error).message;
    const movedTo = `${file}.damaged-${new Date(now()).toISOString().replace(/[:.]/g, "-")}`;
    renameSync(file, movedTo);
    db.data = { version: 1, tasks: await rebuildTasks(home, now, specOf), schedules: {} };
    await db.write();
    recovered = { movedTo, problem, tasks: db.data.tasks.length };
  }
  const store: StateStore = {
    get data() {
      return db.data;
    },
    // The change applies at once; lowdb's writer merges writes that overlap, and each caller resolves
    // once a write that includes its change is on disk. A failed write puts the data back as it was,
    // so a caller that saw the failure (and will retry) never finds its change applied anyway.
    async update(change) {
      const before = structuredClone(db.data);
      change(db.data);
      try {
        await db.write();
      } catch (error) {
        db.data = before;
        throw error;
      }
    },
  };
  return { store, ...(recovered ? { recovered } : {}) };
}

/**
 * A damaged state file is rebuilt from what is still true on disk: each session log gives a task
 * and how it ended (unfinished ones are resumed), and each file in inbox/.done/ without a result in
 * outbox/ and without a session is queued again. Schedule cursors restart from now.
 */
async function rebuildTasks(home: string, now: () => number, specOf?: SpecOf): Promise<TaskRecord[]> {
  const tasks: TaskRecord[] = [];
  const sessions = join(home, "sessions");
  const named = new Set<string>();
  for (const file of existsSync(sessions) ? readdirSync(sessions).filter((name) => name.endsWith(".jsonl")) : []) {
    try {
      const events = await readSessionLog(join(sessions, file));
      const start = events[0];
      if (start?.type !== "session_start") continue;
      const end = events.findLast((event) => event.type === "session_end");
      const origin = start.task.source?.split(":")[0] ?? "recovered";
      const name = start.task.source?.startsWith("inbox:") ? start.task.source.slice("inbox:".length) : undefined;
      if (name) named.add(name);
      tasks.push({
        id: file.slice(0, -".jsonl".length),
        title: start.task.title,
        origin,
        ...(name ? { name } : {}),
        priority: "normal",
        state: end?.type === "session_end" ? end.status : "running",
        spec: start.task,
        created: start.at,
        started: start.at,
        ...(end?.type === "session_end" ? { finished: end.at, reason: end.reason } : {}),
        attempts: 1,
        crashes: 0,
        turns: end?.type === "session_end" ? end.turns : 0,
        cost_usd: end?.type === "session_end" ? end.cost_usd : 0,
      });
    } catch {
      // A damaged log is left for the user to look at; it cannot be resumed.
    }
  }
  const done = join(home, "inbox", ".done");
  for (const name of existsSync(done) ? readdirSync(done) : []) {
    if (named.has(name) || existsSync(join(home, "outbox", name)) || !specOf) continue;
    const id = `${new Date(now()).toISOString().replace(/[-:T]/g, "").slice(0, 8)}-${name.replace(/\W+/g, "").slice(0, 12)}-${tasks.length}`;
    const spec = await specOf(name, id).catch(() => undefined);
    if (!spec) continue;
    tasks.push({ id, title: spec.title, origin: "inbox", name, priority: "normal", state: "queued", spec, created: now(), attempts: 0, crashes: 0, turns: 0, cost_usd: 0 });
  }
  return tasks;
}

export type { TaskSpec };
