import { existsSync } from "node:fs";
import { join } from "node:path";
import type { TraceLogger as Logger } from "../runtime/trace.ts";
import { readSessionLog, resultOfEnd, SessionLogError, sessionLocked, Shutdown, traceEvent, type Clock, type Runtime, type SessionEvent, type SessionResult, type TaskSpec } from "../runtime/index.ts";
import { createWriteGate, storageFault, type WriteGate } from "../runtime/write-gate.ts";
import { writeResult } from "./outbox.ts";
import { PRIORITIES, readerOf, type Priority, type StateStore, type TaskReader, type TaskRecord } from "./state.ts";
import { isActive } from "./task-reader.ts";

export interface DaemonOptions {
  home: string;
  clock: Clock;
  runtime: Runtime;
  state: StateStore;
  trace: Logger;
  /** Sessions running at once. */
  concurrency: number;
  /** A task the daemon died under this many times fails instead of resuming again. */
  maxCrashes: number;
  /** Waits out a full or read-only disk and says so (runtime/write-gate.ts). Default: waits, says nothing. */
  storage?: WriteGate;
  /** Several machines (tasks/cluster.ts): new tasks go to the shared queue, and a free slot claims one from it. */
  shared?: SharedQueue;
}

/** The queue several machines share. A claimed task is added to this machine's state and runs here. */
export interface SharedQueue {
  /**
   * Queues it for any machine; with a schedule's `cursor`, only if no machine queued that slot yet
   * (false: one did). Durable when it resolves; waits while the store is away, until `signal` aborts.
   */
  enqueue(record: TaskRecord, signal: AbortSignal, cursor?: { name: string; at: number }): Promise<boolean>;
  /** The next task this machine may run, taken for it; nothing when none is queued for it (or the store is away). */
  claim(): Promise<TaskRecord | undefined>;
  /**
   * Records in the store that this machine starts a task it never ran (`record` as it starts), and
   * waits for the store while it is away. False: the task went to another machine meanwhile and
   * must not run here.
   */
  start(record: TaskRecord, signal: AbortSignal): Promise<boolean>;
  /** A task this machine does not have: cancelled where it is queued, or its machine asked to. */
  cancel(id: string, reason: string): Promise<"cancelling" | "cancelled" | "unknown" | "finished">;
  /** Whether this machine gives the person the task's result (writes outbox/, answers on Telegram), or the machine it came from does. */
  deliversHere(task: TaskRecord): boolean;
  /** A task of this machine ended: its result goes to the shared store, for the machine that delivers it. */
  ended(task: TaskRecord, result: SessionResult, delivered: boolean): void;
}

export interface Submission {
  origin: string;
  /** Inbox tasks: the file name in inbox/.done/ and for the result in outbox/. */
  name?: string;
  priority?: Priority;
}

/** A schedule's slot another machine queued already (several machines): nothing was queued here. */
export class SlotTaken extends Error {
  override name = "SlotTaken";
}

export type TaskListener = (event: { type: "event"; event: SessionEvent } | { type: "finished"; record: TaskRecord; result: SessionResult }) => void;

export interface Daemon {
  /**
   * Queues a task; durable when it resolves. `id` must be fresh (it names the session). `cursor` (a
   * schedule's last run) is written in the same transaction; with a shared store, a slot another
   * machine queued already throws SlotTaken (the cursor here moves to it all the same).
   */
  submit(id: string, spec: TaskSpec, submission: Submission, cursor?: { name: string; at: number }): Promise<TaskRecord>;
  /** At start: sessions that were running when the last process died are queued to resume, or failed after too many crashes. */
  recover(): Promise<{ resumed: number; failed: number }>;
  cancel(id: string, reason?: string): Promise<"cancelling" | "cancelled" | "unknown" | "finished">;
  get(id: string): TaskRecord | undefined;
  /** Every task, active and finished, read through the state's indexes. */
  readonly tasks: TaskReader;
  subscribe(id: string, listener: TaskListener): () => void;
  /** Every task's events and ends (Telegram's progress and notifications). */
  watch(listener: (id: string, message: Parameters<TaskListener>[0]) => void): () => void;
  /**
   * Continues a finished task with a follow-up message from the user (a reply on Telegram): it is
   * queued again and its session goes on from its log. A task still queued or running is "busy".
   */
  followUp(id: string, text: string): Promise<"queued" | "busy" | "unknown">;
  /**
   * `nightshift run --resume`: a failed task, or a session this daemon never ran (stopped or failed
   * in the foreground), is queued to go on from its log; a tool call that completed is not run
   * again. "busy": queued or running already; "finished": it ended done or cancelled, with that
   * result. Throws, saying why, for a session another process runs or whose log cannot be read.
   */
  resume(id: string): Promise<{ outcome: "queued" | "busy" | "unknown" } | { outcome: "finished"; result: SessionResult }>;
  /** A task may be waiting in the shared queue (a notification, a poll): a free slot looks. */
  wake(): void;
  /** A task queued here that another machine ran has ended: its result file is written here, and its end told as if it ran here. */
  deliver(record: TaskRecord, result: SessionResult): Promise<void>;
  /** Resolves when nothing is queued or running (tests, benchmarks). */
  idle(): Promise<void>;
  /** Stops taking work, interrupts running sessions at their next safe point so they resume next start, and waits for them. */
  stop(): Promise<void>;
}

/** How the task state is named when a write to it fails. */
const STATE_FILE = "the task state (state/nightshift.db)";
/** A task whose run failed outright (not its session: the daemon's own writes) waits this long before it is picked again. */
const HOLD_MS = 5_000;

/**
 * The queue runner. State transitions are written to the state file before they matter; sessions
 * keep their own logs, so a task interrupted at any point is resumed from its log, never redone.
 *
 * A full or read-only disk: a task's writes (its start, its session log, its result, its end)
 * wait and try again, holding what they would write, until there is space or the daemon stops;
 * the gate says so once. Writes someone waits on (a submit, a cancel, a follow-up) fail at once
 * with the reason instead. A run that fails outright is held back before it is picked again, so
 * no failing write is ever retried in a tight loop.
 */
export function createDaemon(options: DaemonOptions): Daemon {
  const { clock, runtime, state, trace } = options;
  const storage = options.storage ?? createWriteGate({ clock });
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  const held = new Set<string>();
  const listeners = new Map<string, Set<TaskListener>>();
  const watchers = new Set<(id: string, message: Parameters<TaskListener>[0]) => void>();
  const idleWaiters: Array<() => void> = [];
  /** Aborted by stop: what waits for disk space gives up (and is resumed at the next start). */
  const halt = new AbortController();
  let stopping = false;
  /** A claim from the shared queue is on its way: one at a time. */
  let claiming = false;

  const find = (id: string) => state.get(id);
  /** A state write that failed is traced (and a full disk said by the gate); the daemon keeps going (the next write carries the state). */
  const failedWrite = (id: string) => (error: unknown) => {
    storage.failed(STATE_FILE, error);
    trace.error({ session: id, event: "state_write_failed", error: (error as Error).message }, `could not write the state file: ${(error as Error).message}`);
  };
  /** A change someone waits on: fails at once (the gate says why). */
  const change = (id: string, fields: Partial<TaskRecord>) => storage.attempt(STATE_FILE, () => state.change(id, fields));
  /** A change the task cannot go on without: waits for space until it is written or `signal` aborts. */
  const changeDurably = (id: string, fields: Partial<TaskRecord>, signal: AbortSignal) => storage.retry(STATE_FILE, () => state.change(id, fields), signal);
  const broadcast = (id: string, message: Parameters<TaskListener>[0]) => {
    const all: TaskListener[] = [...(listeners.get(id) ?? []), ...[...watchers].map((watcher) => (m: Parameters<TaskListener>[0]) => watcher(id, m))];
    for (const listener of all) {
      try {
        listener(message);
      } catch {
        // A listener (a client that went away) must not stop the task.
      }
    }
  };

  const next = (): TaskRecord | undefined =>
    state
      .active()
      .filter((task) => task.state === "queued" && !running.has(task.id) && !held.has(task.id))
      .sort((a, b) => PRIORITIES.indexOf(a.priority) - PRIORITIES.indexOf(b.priority) || a.created - b.created)[0];

  /** A run that threw left its task queued: picked again after a pause, never at once (a failing write in a tight loop starves the process). */
  const holdBack = (id: string) => {
    held.add(id);
    clock.setTimer(() => {
      held.delete(id);
      pump();
    }, HOLD_MS);
  };

  const pump = () => {
    while (!stopping && running.size < options.concurrency) {
      const task = next();
      if (!task) break;
      const controller = new AbortController();
      const done = run(task, controller.signal)
        .catch((error: unknown) => {
          // Stopped while waiting for space: nothing was lost, the task stays running and is resumed at the next start.
          if (error instanceof Shutdown) return trace.warn({ session: task.id, event: "task_left_running", reason: error.message }, "stopped while waiting to write; resumed at the next start");
          failedWrite(task.id)(error);
          if (!stopping) holdBack(task.id);
        })
        .finally(() => {
          running.delete(task.id);
          pump();
        });
      running.set(task.id, { controller, done });
    }
    if (options.shared && !stopping && !claiming && running.size < options.concurrency) claimShared(options.shared);
    else if (running.size === 0 && !claiming && !next()) idleWaiters.splice(0).forEach((resolve) => resolve());
  };

  /** A free slot and nothing queued here: takes the next task of the shared queue into this machine's state, and runs it. */
  const claimShared = (shared: SharedQueue) => {
    claiming = true;
    (async () => {
      const record = await shared.claim();
      if (!record) return false;
      await storage.retry(STATE_FILE, () => state.add(record), halt.signal);
      trace.info({ session: record.id, event: "task_claimed" }, "task taken from the shared queue");
      return true;
    })()
      .catch((error: unknown) => {
        if (!halt.signal.aborted) trace.error({ event: "claim_failed", error: (error as Error).message }, `could not take a task from the shared queue: ${(error as Error).message}`);
        return false;
      })
      .then((claimed) => {
        claiming = false;
        // Claimed: look for more. Nothing (or the store failed): wait for the next wake.
        if (claimed) pump();
        else if (running.size === 0 && !next()) idleWaiters.splice(0).forEach((resolve) => resolve());
      });
  };

  const run = async (task: TaskRecord, signal: AbortSignal): Promise<void> => {
    const starting = { state: "running" as const, started: task.started ?? clock.now(), attempts: task.attempts + 1 };
    try {
      // Several machines: a task starts only once the store says it started here, so a machine
      // that goes silent after this point keeps it (it resumes here), and before it, loses it whole.
      if (options.shared && task.attempts === 0 && !(await options.shared.start({ ...task, ...starting }, signal))) {
        // Not kept here as if it were this machine's: it is the other machine's task now, in the store.
        trace.warn({ session: task.id, event: "task_taken_elsewhere" }, "another machine took this task while this one was silent; it runs there");
        return void (await state.forget(task.id));
      }
      await changeDurably(task.id, starting, signal);
    } catch (error) {
      // Cancelled while waiting for space to start: it ends here. Stopped: it stays queued.
      if (!signal.aborted || signal.reason instanceof Shutdown) throw error;
      return finish(task, { status: "cancelled", answer: "", reason: (signal.reason as Error).message, turns: 0, costUsd: 0 });
    }
    const emit = (session: string, event: SessionEvent) => {
      traceEvent(trace, session, event);
      if (event.type === "approval_requested") change(session, { state: "waiting_approval" }).catch(failedWrite(session));
      if (event.type === "approval_answered") change(session, { state: "running" }).catch(failedWrite(session));
      broadcast(session, { type: "event", event });
    };
    const result = await session(task, signal, emit);
    if (result.status === "interrupted") {
      // A graceful stop: resumed at the next start. If the disk is full, the task stays running and is resumed as after a crash.
      await change(task.id, { state: "queued" });
      return;
    }
    await finish(task, result);
  };

  /**
   * Runs the task's session (started, resumed from its log, or continued). A full or read-only disk
   * that kept it from starting (its lock, its log) is waited out and the session tried again: it
   * resumes from its log, so nothing runs twice.
   */
  const session = async (task: TaskRecord, signal: AbortSignal, emit: (session: string, event: SessionEvent) => void): Promise<SessionResult> => {
    for (let attempt = 0; ; attempt++) {
      const resume = await hasStarted(join(runtime.sessionsDir, `${task.id}.jsonl`));
      try {
        return task.follow_up !== undefined
          ? await runtime.continue(task.id, task.follow_up, { signal, emit }, task.follow_up_at)
          : resume
            ? await runtime.resume(task.id, { signal, emit })
            : await runtime.start(task.id, task.spec, { signal, emit });
      } catch (error) {
        const stopped = signal.aborted ? (signal.reason as Error) : undefined;
        if (stopped instanceof Shutdown) return { status: "interrupted", answer: "", reason: stopped.message, turns: 0, costUsd: 0 };
        if (stopped) return { status: "cancelled", answer: "", reason: stopped.message, turns: 0, costUsd: 0 };
        if (storage.failed(`the session log of task ${task.id}`, error)) {
          await storage.pause(attempt, signal).catch(() => {}); // stopped or cancelled meanwhile: said on the next turn
          continue;
        }
        if (error instanceof SessionLogError) {
          // The log is the proof of what ran: kept where it is, so nothing can take the task for new and run it again.
          const reason = `its session log is damaged (${error.problem}); the log is kept as it is and the task is not resumed, so nothing in it runs again`;
          trace.error({ session: task.id, event: "session_log_damaged", problem: error.problem }, reason);
          return { status: "failed", answer: "", reason, turns: 0, costUsd: 0 };
        }
        // Nothing ran (a missing key, a busy lock): the task fails with the reason.
        return { status: "failed", answer: "", reason: (error as Error).message, turns: 0, costUsd: 0 };
      }
    }
  };

  /**
   * The result file first, then the state: a crash in between leaves the task running, so the next
   * start resumes it, finds its recorded end, and writes the same result again. On a full or
   * read-only disk both wait for space (`wait`, the default) until the daemon stops; a cancel
   * someone waits on fails at once instead.
   */
  const finish = async (task: TaskRecord, result: SessionResult, wait = true) => {
    const finished = { ...task, state: result.status as TaskRecord["state"], finished: clock.now(), turns: result.turns, cost_usd: result.costUsd, answer_chars: result.answer.length, ...(result.reason ? { reason: result.reason } : {}) };
    const write = <T>(what: string, work: () => T) => (wait ? storage.retry(what, work, halt.signal) : storage.attempt(what, work));
    // Another machine's inbox task: its result file is written there (deliver), not here.
    const here = options.shared?.deliversHere(task) ?? true;
    if (here) await writeOutbox(finished, result, write);
    await write(STATE_FILE, () => state.change(task.id, { follow_up: undefined, follow_up_at: undefined, state: finished.state, finished: finished.finished, turns: result.turns, cost_usd: result.costUsd, answer_chars: result.answer.length, ...(result.reason ? { reason: result.reason } : {}) }));
    trace.info({ session: task.id, event: "task_finished", state: result.status, reason: result.reason, cost_usd: result.costUsd }, `task ${result.status}`);
    options.shared?.ended(find(task.id) ?? finished, result, here);
    broadcast(task.id, { type: "finished", record: find(task.id) ?? finished, result });
  };

  /** An inbox task's result file, before its state says it ended (see finish). */
  const writeOutbox = async (finished: TaskRecord, result: SessionResult, write: <T>(what: string, work: () => T) => Promise<T>) => {
    if (!finished.name) return;
    try {
      await write(`outbox/${finished.name}`, () => writeResult(join(options.home, "outbox"), finished, result, clock.now()));
    } catch (error) {
      // Not written and the daemon stops: the task stays running, and the next start writes it.
      if (storageFault(error) || halt.signal.aborted) throw error;
      trace.error({ session: finished.id, event: "outbox_failed", error: (error as Error).message }, "could not write the result file");
    }
  };

  return {
    async submit(id, spec, submission, cursor) {
      if (find(id) || existsSync(join(runtime.sessionsDir, `${id}.jsonl`))) throw new Error(`task id ${id} is already taken`);
      const record: TaskRecord = {
        id,
        title: spec.title,
        origin: submission.origin,
        ...(submission.name ? { name: submission.name } : {}),
        priority: submission.priority ?? "normal",
        state: "queued",
        spec,
        created: clock.now(),
        attempts: 0,
        crashes: 0,
        turns: 0,
        cost_usd: 0,
      };
      if (options.shared) {
        const queued = await options.shared.enqueue(record, halt.signal, cursor);
        if (cursor) await storage.attempt(STATE_FILE, () => state.setLastRun(cursor.name, cursor.at));
        if (!queued) throw new SlotTaken(`the run of ${cursor?.name} due ${new Date(cursor?.at ?? 0).toISOString()} was queued by another machine`);
      } else {
        await storage.attempt(STATE_FILE, () => state.add(record, cursor));
      }
      trace.info({ session: id, event: "task_queued", origin: submission.origin, name: submission.name, priority: record.priority }, "task queued");
      queueMicrotask(pump);
      return record;
    },
    async recover() {
      let resumed = 0;
      let failed = 0;
      for (const task of state.active().filter((candidate) => candidate.state === "running" || candidate.state === "waiting_approval")) {
        const crashes = task.crashes + 1;
        if (crashes > options.maxCrashes) {
          failed++;
          const reason = `Nightshift stopped ${crashes} times while this task ran; it is not resumed again (its log: sessions/${task.id}.jsonl)`;
          await change(task.id, { state: "failed", crashes, finished: clock.now(), reason });
          trace.error({ session: task.id, event: "task_failed", reason }, reason);
        } else {
          resumed++;
          await change(task.id, { state: "queued", crashes });
        }
      }
      pump();
      return { resumed, failed };
    },
    async cancel(id, reason = "cancelled with nightshift cancel") {
      const task = find(id);
      if (!task) return options.shared ? options.shared.cancel(id, reason) : "unknown";
      const active = running.get(id);
      if (active) {
        active.controller.abort(new Error(reason));
        return "cancelling";
      }
      if (task.state !== "queued") return "finished";
      await finish(task, { status: "cancelled", answer: "", reason, turns: 0, costUsd: 0 }, false);
      return "cancelled";
    },
    async followUp(id, text) {
      const task = find(id);
      if (!task) return "unknown";
      if (running.has(id) || task.state === "queued" || task.state === "running" || task.state === "waiting_approval") return "busy";
      // Stored with the task, so a crash before it runs loses nothing; the runtime appends it to the log once.
      await change(id, { state: "queued", follow_up: text, follow_up_at: clock.now(), finished: undefined, reason: undefined });
      trace.info({ session: id, event: "task_follow_up", chars: text.length }, "task continued with a follow-up");
      queueMicrotask(pump);
      return "queued";
    },
    async resume(id) {
      const path = join(runtime.sessionsDir, `${id}.jsonl`);
      const task = find(id);
      if (task && (running.has(id) || isActive(task))) return { outcome: "busy" };
      if (task && task.state !== "failed") return { outcome: "finished", result: (await endOf(path)) ?? resultOf(task) };
      if (!task) {
        if (!existsSync(path)) return { outcome: "unknown" };
        if (sessionLocked(path)) throw new Error(`session ${id} is running in another process (a nightshift run started before the daemon); wait for it to end`);
        const events = await readSessionLog(path);
        const first = events[0];
        if (first?.type !== "session_start") throw new Error(`session ${id} never started (its log holds no task); run the task again`);
        const end = events.findLast((event) => event.type === "session_end");
        if (end && end.status !== "failed") return { outcome: "finished", result: resultOfEnd(end) };
        // Adopted: a session `nightshift run` left behind becomes one of the daemon's tasks.
        await state.add({ id, title: first.task.title, origin: "cli", priority: "normal", state: "queued", spec: first.task, created: first.at, started: first.at, attempts: 0, crashes: 0, turns: 0, cost_usd: 0 });
      } else {
        // Asked for by the user: it gets a fresh count of crashes too.
        await change(id, { state: "queued", crashes: 0, finished: undefined, reason: undefined });
      }
      trace.info({ session: id, event: "task_resume_requested", adopted: !task }, "task queued to resume from its log");
      queueMicrotask(pump);
      return { outcome: "queued" };
    },
    get: find,
    tasks: readerOf(state),
    subscribe(id, listener) {
      const set = listeners.get(id) ?? new Set();
      set.add(listener);
      listeners.set(id, set);
      return () => {
        set.delete(listener);
        // One entry per task ever followed would grow with the history.
        if (set.size === 0 && listeners.get(id) === set) listeners.delete(id);
      };
    },
    watch(listener) {
      watchers.add(listener);
      return () => watchers.delete(listener);
    },
    wake: () => pump(),
    async deliver(record, result) {
      // Tried once: on a full disk it throws, and the heartbeat tries again next time (it must not wait here, holding the heartbeat up).
      await writeOutbox(record, result, (what, work) => storage.attempt(what, work));
      broadcast(record.id, { type: "finished", record, result });
    },
    idle() {
      return new Promise((resolve) => {
        idleWaiters.push(resolve);
        pump();
      });
    },
    async stop() {
      stopping = true;
      halt.abort(new Shutdown("Nightshift is stopping"));
      for (const { controller } of running.values()) controller.abort(new Shutdown("Nightshift is stopping"));
      await Promise.allSettled([...running.values()].map((entry) => entry.done));
    },
  };
}

/** The result a session's log ended with; undefined when it has none or cannot be read. */
export async function endOf(path: string): Promise<SessionResult | undefined> {
  try {
    const end = (await readSessionLog(path)).findLast((event) => event.type === "session_end");
    return end ? resultOfEnd(end) : undefined;
  } catch {
    return undefined;
  }
}

/** What the state recorded, for a finished task whose log cannot be read. */
function resultOf(task: TaskRecord): SessionResult {
  return { status: task.state as "done" | "cancelled", answer: "", ...(task.reason ? { reason: task.reason } : {}), turns: task.turns, costUsd: task.cost_usd };
}

/** A session log that holds a session_start: anything less (a kill before or right after its header) starts afresh. */
async function hasStarted(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  try {
    return (await readSessionLog(path))[0]?.type === "session_start";
  } catch {
    return true; // damaged: the resume reports it as the task's failure
  }
}
