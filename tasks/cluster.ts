import { readdirSync, realpathSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { createWorkdir, type Clock } from "../runtime/index.ts";
import type { SessionResult } from "../runtime/loop.ts";
import { HEARTBEAT_MS, TELEGRAM, type Cluster } from "../runtime/store/pg-cluster.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import type { Daemon, SharedQueue } from "./daemon.ts";
import type { StateStore, TaskRecord } from "./state.ts";

/**
 * This machine's part in several machines on one PostgreSQL (runtime/store/pg-cluster.ts): how
 * its daemon queues to and claims from the shared queue, how its tasks' changes reach the other
 * machines, and the loop that beats, listens, takes cancels asked from elsewhere and delivers
 * results other machines ended for it.
 */

/**
 * Where a task may run. A workdir that is a folder of this machine pins it here; so does a fresh
 * workspace that already holds something (files sent with a Telegram message), and a task
 * `nightshift run` follows in this terminal. Any other task in an empty fresh workspace is not
 * pinned: whichever machine claims it makes its own.
 */
export function pinOf(record: TaskRecord, home: string, machine: string): string | undefined {
  if (record.origin === "cli") return machine;
  const fresh = join(home, "workspace", record.id);
  try {
    if (record.spec.workdir === realpathSync(fresh) && readdirSync(fresh).length === 0) return undefined;
  } catch {
    // No fresh workspace here: the workdir is one of this machine's folders.
  }
  return machine;
}

export type PublishingState = StateStore & {
  /** Writes what is left to write. */
  flush(): Promise<void>;
  /** A task ended: its result goes with its next write. */
  ended(id: string, result: SessionResult, delivered: boolean): void;
};

/**
 * The daemon's side of the shared store: its state, each change written to the store as well, and
 * the shared queue it submits to and claims from. `telegramHere`: this machine runs the bot now
 * (it holds the Telegram lease), so it delivers Telegram tasks' results.
 */
export function joinShared(options: { cluster: Cluster; state: StateStore; home: string; trace: TraceLogger; telegramHere: () => boolean }): { state: PublishingState; shared: SharedQueue } {
  const { cluster, home, telegramHere } = options;
  const state = publishing(options.state, cluster, options.trace);
  const shared: SharedQueue = {
    async enqueue(record) {
      const pin = pinOf(record, home, cluster.machine);
      await cluster.enqueue({ ...record, deliver_to: record.origin === "telegram" ? TELEGRAM : cluster.machine }, pin);
      if (!pin) {
        // The empty folder made for it here; the machine that claims it makes its own.
        try {
          rmdirSync(join(home, "workspace", record.id));
        } catch {
          // Already gone, or something was put in it since: left alone.
        }
      }
    },
    async claim() {
      const record = await cluster.claim();
      if (!record) return undefined;
      const task = await cluster.get(record.id);
      // Unpinned: its workdir named the queuing machine's fresh folder; it gets one here.
      return task?.pin ? record : { ...record, spec: { ...record.spec, workdir: createWorkdir(home, record.id) } };
    },
    async cancel(id, reason) {
      const outcome = await cluster.cancel(id, reason);
      return outcome === "asked" ? "cancelling" : outcome;
    },
    deliversHere: (task) => !task.deliver_to || task.deliver_to === cluster.machine || (task.deliver_to === TELEGRAM && telegramHere()),
    ended: (task, result, delivered) => state.ended(task.id, result, delivered),
  };
  return { state, shared };
}

/**
 * The state as before, and each change of a task written to the shared store as well, in order,
 * after it committed here. A write that fails (the database away) is kept and written by `flush`,
 * on the next heartbeat: the other machines see it late, nothing here waits for it.
 */
function publishing(state: StateStore, cluster: Cluster, trace: TraceLogger): PublishingState {
  const dirty = new Set<string>();
  const ends = new Map<string, { result: SessionResult; delivered: boolean }>();
  let flushing: Promise<void> | undefined;
  const flush = (): Promise<void> => {
    if (flushing) return flushing;
    // Cleared once it settled, never from inside it: a body that ends without waiting would clear it before it is set.
    flushing = (async () => {
      try {
        while (dirty.size) {
          const id = dirty.values().next().value!;
          // Taken off before the write: a change made while it is under way marks it again.
          dirty.delete(id);
          const record = state.get(id);
          const end = ends.get(id);
          try {
            if (record) await cluster.publish(record, end);
          } catch (error) {
            dirty.add(id);
            throw error;
          }
          if (ends.get(id) === end) ends.delete(id);
        }
      } catch (error) {
        trace.warn({ event: "publish_failed", error: (error as Error).message, waiting: dirty.size }, `could not write task changes to the shared store; tried again at the next heartbeat: ${(error as Error).message}`);
      }
    })().finally(() => {
      flushing = undefined;
    });
    return flushing;
  };
  const changed = (id: string) => {
    dirty.add(id);
    void flush();
  };
  return {
    ...state,
    async add(record, cursor) {
      await state.add(record, cursor);
      changed(record.id);
    },
    async change(id, fields) {
      await state.change(id, fields);
      changed(id);
    },
    ended(id, result, delivered) {
      ends.set(id, { result, delivered });
      changed(id);
    },
    async flush() {
      await flushing;
      await flush();
    },
  };
}

export interface ClusterLoop {
  /** Says this machine stopped, writes what is left to write, stops listening. */
  stop(): Promise<void>;
}

/**
 * Every HEARTBEAT_MS: the heartbeat (with how much runs here), queued tasks of silent machines
 * back to the queue, cancels asked of this machine's tasks, changes left to write, results other
 * machines ended for this one to deliver, and a look at the queue. A notification (a task queued,
 * a cancel asked, a result to deliver) does the same at once; the timer covers one that was missed.
 */
export async function startClusterLoop(options: { cluster: Cluster; daemon: Daemon; state: PublishingState; concurrency: number; clock: Clock; trace: TraceLogger; telegramHere: () => boolean; /** More of this machine's shared work, at each tick (approvals). */ also?: () => Promise<void> }): Promise<ClusterLoop> {
  const { cluster, daemon, state, concurrency, clock, trace } = options;
  let stopped = false;
  let ticking: Promise<void> | undefined;
  /** Asked again while a tick ran (a notification after its queries): one more follows it. */
  let again = false;
  let cancelTimer = () => {};
  const tick = (): Promise<void> => {
    if (ticking) {
      again = true;
      return ticking;
    }
    ticking = (async () => {
      try {
        await cluster.beat(daemon.tasks.active().filter((task) => task.state !== "queued").length, concurrency);
        await cluster.releaseSilent();
        for (const { id, reason } of await cluster.cancelsForMe()) {
          await daemon.cancel(id, reason);
          await cluster.cancelHandled(id);
        }
        await state.flush();
        for (const { record, result } of await cluster.undelivered({ telegram: options.telegramHere() })) {
          if (record.deliver_to === TELEGRAM) {
            // Marked first, as an update is taken before it is handled: a machine stopped right after
            // sending the answer must not have the next machine to run the bot send it again.
            await cluster.delivered(record.id);
            await daemon.deliver(record, result);
            continue;
          }
          await daemon.deliver(record, result);
          await cluster.delivered(record.id);
        }
        await options.also?.();
      } catch (error) {
        trace.warn({ event: "cluster_unreachable", error: (error as Error).message }, `the shared store did not answer: ${(error as Error).message}`);
      } finally {
        ticking = undefined;
      }
      daemon.wake();
      if (again && !stopped) {
        again = false;
        await tick();
      }
    })();
    return ticking;
  };
  const schedule = () => {
    cancelTimer = clock.setTimer(() => {
      if (stopped) return;
      void tick().then(schedule);
    }, HEARTBEAT_MS);
  };
  await tick();
  const unlisten = await cluster.listen(() => void tick());
  schedule();
  return {
    async stop() {
      stopped = true;
      cancelTimer();
      await ticking;
      await unlisten().catch(() => {});
      await state.flush().catch(() => {});
      await cluster.leave().catch(() => {});
    },
  };
}
