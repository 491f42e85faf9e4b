import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { Shutdown, traceEvent, type Clock, type Runtime, type SessionEvent, type SessionResult, type TaskSpec } from "../runtime/index.ts";
import { writeResult } from "./outbox.ts";
import { PRIORITIES, type Priority, type StateStore, type TaskRecord } from "./state.ts";

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
}

export interface Submission {
  origin: string;
  /** Inbox tasks: the file name in inbox/.done/ and for the result in outbox/. */
  name?: string;
  priority?: Priority;
}

export type TaskListener = (event: { type: "event"; event: SessionEvent } | { type: "finished"; record: TaskRecord; result: SessionResult }) => void;

export interface Daemon {
  /** Queues a task; durable when it resolves. `id` must be fresh (it names the session). */
  submit(id: string, spec: TaskSpec, submission: Submission): Promise<TaskRecord>;
  /** At start: sessions that were running when the last process died are queued to resume, or failed after too many crashes. */
  recover(): Promise<{ resumed: number; failed: number }>;
  cancel(id: string, reason?: string): Promise<"cancelling" | "cancelled" | "unknown" | "finished">;
  get(id: string): TaskRecord | undefined;
  list(): TaskRecord[];
  subscribe(id: string, listener: TaskListener): () => void;
  /** Resolves when nothing is queued or running (tests, benchmarks). */
  idle(): Promise<void>;
  /** Stops taking work, interrupts running sessions at their next safe point so they resume next start, and waits for them. */
  stop(): Promise<void>;
}

/**
 * The queue runner. State transitions are written to the state file before they matter; sessions
 * keep their own logs, so a task interrupted at any point is resumed from its log, never redone.
 */
export function createDaemon(options: DaemonOptions): Daemon {
  const { clock, runtime, state, trace } = options;
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  const listeners = new Map<string, Set<TaskListener>>();
  const idleWaiters: Array<() => void> = [];
  let stopping = false;

  const find = (id: string) => state.data.tasks.find((task) => task.id === id);
  const change = (id: string, fields: Partial<TaskRecord>) =>
    state.update((data) => {
      const task = data.tasks.find((candidate) => candidate.id === id);
      if (task) Object.assign(task, fields);
    });
  const broadcast = (id: string, message: Parameters<TaskListener>[0]) => {
    for (const listener of listeners.get(id) ?? []) {
      try {
        listener(message);
      } catch {
        // A listener (a client that went away) must not stop the task.
      }
    }
  };

  const next = (): TaskRecord | undefined =>
    state.data.tasks
      .filter((task) => task.state === "queued" && !running.has(task.id))
      .sort((a, b) => PRIORITIES.indexOf(a.priority) - PRIORITIES.indexOf(b.priority) || a.created - b.created)[0];

  const pump = () => {
    while (!stopping && running.size < options.concurrency) {
      const task = next();
      if (!task) break;
      const controller = new AbortController();
      const done = run(task, controller.signal).finally(() => {
        running.delete(task.id);
        pump();
      });
      running.set(task.id, { controller, done });
    }
    if (running.size === 0 && !next()) idleWaiters.splice(0).forEach((resolve) => resolve());
  };

  const run = async (task: TaskRecord, signal: AbortSignal): Promise<void> => {
    const resume = existsSync(join(runtime.sessionsDir, `${task.id}.jsonl`));
    await change(task.id, { state: "running", started: task.started ?? clock.now(), attempts: task.attempts + 1 });
    const emit = (session: string, event: SessionEvent) => {
      traceEvent(trace, session, event);
      if (event.type === "approval_requested") void change(session, { state: "waiting_approval" });
      if (event.type === "approval_answered") void change(session, { state: "running" });
      broadcast(session, { type: "event", event });
    };
    let result: SessionResult;
    try {
      result = resume ? await runtime.resume(task.id, { signal, emit }) : await runtime.start(task.id, task.spec, { signal, emit });
    } catch (error) {
      // Nothing ran (a missing key, a busy or damaged log): the task fails with the reason.
      result = { status: "failed", answer: "", reason: (error as Error).message, turns: 0, costUsd: 0 };
    }
    if (result.status === "interrupted") {
      await change(task.id, { state: "queued" }); // a graceful stop: resumed at the next start
      return;
    }
    await change(task.id, { state: result.status, finished: clock.now(), turns: result.turns, cost_usd: result.costUsd, answer_chars: result.answer.length, ...(result.reason ? { reason: result.reason } : {}) });
    const record = find(task.id)!;
    if (record.origin === "inbox" || record.name) {
      try {
        writeResult(join(options.home, "outbox"), record, result, clock.now());
      } catch (error) {
        trace.error({ session: task.id, event: "outbox_failed", error: (error as Error).message }, "could not write the result file");
      }
    }
    trace.info({ session: task.id, event: "task_finished", state: result.status, reason: result.reason, cost_usd: result.costUsd }, `task ${result.status}`);
    broadcast(task.id, { type: "finished", record, result });
  };

  return {
    async submit(id, spec, submission) {
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
      await state.update((data) => void data.tasks.push(record));
      trace.info({ session: id, event: "task_queued", origin: submission.origin, name: submission.name, priority: record.priority }, "task queued");
      queueMicrotask(pump);
      return record;
    },
    async recover() {
      let resumed = 0;
      let failed = 0;
      for (const task of state.data.tasks.filter((candidate) => candidate.state === "running" || candidate.state === "waiting_approval")) {
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
      if (!task) return "unknown";
      const active = running.get(id);
      if (active) {
        active.controller.abort(new Error(reason));
        return "cancelling";
      }
      if (task.state !== "queued") return "finished";
      await change(id, { state: "cancelled", finished: clock.now(), reason });
      return "cancelled";
    },
    get: find,
    list: () => [...state.data.tasks],
    subscribe(id, listener) {
      const set = listeners.get(id) ?? new Set();
      set.add(listener);
      listeners.set(id, set);
      return () => set.delete(listener);
    },
    idle() {
      return new Promise((resolve) => {
        idleWaiters.push(resolve);
        pump();
      });
    },
    async stop() {
      stopping = true;
      for (const { controller } of running.values()) controller.abort(new Shutdown("Nightshift is stopping"));
      await Promise.allSettled([...running.values()].map((entry) => entry.done));
      await state.update(() => {});
    },
  };
}
