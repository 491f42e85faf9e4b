import { readdirSync, realpathSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { createWorkdir, type Clock } from "../runtime/index.ts";
import type { SessionResult } from "../runtime/loop.ts";
import { storeUnreachable, type StoreWatch } from "../runtime/store/outage.ts";
import { HEARTBEAT_MS, TELEGRAM, type Cluster } from "../runtime/store/pg-cluster.ts";
import { sharedFollowUps } from "../runtime/store/pg-follow-ups.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import { storageFault } from "../runtime/write-gate.ts";
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
 *
 * While the store cannot be reached (`watch` says so, once): a new task waits to be queued (the
 * inbox file stays in inbox/.done/, `nightshift run` and Telegram wait for their answer), and is
 * queued, once, when it is back; a claimed task waits to start until the store has recorded that
 * it starts here; nothing new is claimed; running tasks go on, their changes written later.
 */
export function joinShared(options: { cluster: Cluster; watch: StoreWatch; state: StateStore; home: string; trace: TraceLogger; telegramHere: () => boolean }): { state: PublishingState; shared: SharedQueue; settleEnded(endOf: (id: string) => Promise<SessionResult | undefined>): Promise<number> } {
  const { cluster, watch, home, telegramHere } = options;
  const state = publishing(options.state, cluster, options.trace);
  /** A claim's answer may have been lost (and at start, the last process's): look for tasks claimed here that this machine does not hold. */
  let lostClaims = true;
  const here = (record: TaskRecord, pin: string | undefined): TaskRecord =>
    // Unpinned: its workdir named the queuing machine's fresh folder; it gets one here.
    pin ? record : { ...record, spec: { ...record.spec, workdir: createWorkdir(home, record.id) } };
  const shared: SharedQueue = {
    async enqueue(record, signal, cursor) {
      const pin = pinOf(record, home, cluster.machine);
      const task = { ...record, deliver_to: record.origin === "telegram" ? TELEGRAM : cluster.machine };
      // The same record until it is queued: a try whose answer was lost is not queued twice.
      const queued = await watch.retry(() => cluster.enqueue(task, pin, cursor), signal);
      if (!pin || !queued) {
        // The empty folder made for it here; the machine that claims it makes its own.
        try {
          rmdirSync(join(home, "workspace", record.id));
        } catch {
          // Already gone, or something was put in it since: left alone.
        }
      }
      return queued;
    },
    async claim() {
      try {
        if (lostClaims) {
          const lost = (await cluster.claimedHere()).find((record) => !state.get(record.id));
          lostClaims = false;
          if (lost) return here(lost, (await cluster.get(lost.id))?.pin);
        }
        const record = await cluster.claim();
        if (!record) return undefined;
        return here(record, (await cluster.get(record.id))?.pin);
      } catch (error) {
        // The store is away (said once by the watch): nothing is claimed until it is back.
        if (!storeUnreachable(error)) throw error;
        lostClaims = true;
        return undefined;
      }
    },
    start: async (record, signal) => {
      // Its add here is written to the store first: a write of it as queued landing after this one would let a silent-machine release give it away.
      await state.flush();
      return watch.retry(() => cluster.start(record), signal);
    },
    async cancel(id, reason) {
      const outcome = await cluster.cancel(id, reason);
      return outcome === "asked" ? "cancelling" : outcome;
    },
    deliversHere: (task) => !task.deliver_to || task.deliver_to === cluster.machine || (task.deliver_to === TELEGRAM && telegramHere()),
    ended: (task, result, delivered) => state.ended(task.id, result, delivered),
  };
  /**
   * At start: tasks that ended here while their end did not reach the store (it was away, or the
   * last process died before writing it) get it now, with their result from their session log, so
   * the machine they came to delivers it and every machine stops showing them as running.
   */
  const settleEnded = async (endOf: (id: string) => Promise<SessionResult | undefined>): Promise<number> => {
    let settled = 0;
    for (const stored of await cluster.activeHere()) {
      const local = state.get(stored.id);
      if (!local || ["queued", "running", "waiting_approval"].includes(local.state)) continue;
      const result = (await endOf(local.id)) ?? { status: local.state as SessionResult["status"], answer: "", ...(local.reason ? { reason: local.reason } : {}), turns: local.turns, costUsd: local.cost_usd };
      await cluster.publish(local, { result, delivered: shared.deliversHere(local) });
      settled++;
    }
    return settled;
  };
  return { state, shared, settleEnded };
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
        // An unreachable store is said once, by the watch; anything else each time.
        if (!storeUnreachable(error)) trace.warn({ event: "publish_failed", error: (error as Error).message, waiting: dirty.size }, `could not write task changes to the shared store; tried again at the next heartbeat: ${(error as Error).message}`);
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
 * back to the queue, cancels and follow-ups asked of this machine's tasks, changes left to write, results other
 * machines ended for this one to deliver, and a look at the queue. A notification (a task queued,
 * a cancel asked, a result to deliver) does the same at once; the timer covers one that was missed.
 */
export async function startClusterLoop(options: {
  cluster: Cluster;
  daemon: Daemon;
  state: PublishingState;
  concurrency: number;
  clock: Clock;
  trace: TraceLogger;
  telegramHere: () => boolean;
  /** More of this machine's shared work, at each tick (approvals). */
  also?: () => Promise<void>;
  /** Brings the files every machine holds alike in line with the store (tasks/shared-files.ts). */
  syncFiles?: () => Promise<void>;
  /** Once, at the first tick the store answers: what the last process left unsaid there (joinShared's settleEnded). */
  atStart?: () => Promise<unknown>;
}): Promise<ClusterLoop> {
  const { cluster, daemon, state, concurrency, clock, trace } = options;
  let stopped = false;
  let started = false;
  let ticking: Promise<void> | undefined;
  /** Asked again while a tick ran (a notification after its queries): one more follows it. */
  let again = false;
  let cancelTimer = () => {};
  /** Results delivered here whose store row may not say so yet: never delivered twice by this process. */
  const handed = new Set<string>();
  const followUps = sharedFollowUps(cluster.sql, cluster.machine);
  /** Replies on Telegram to tasks that ran here, sent through another machine's bot: each task goes on from its log here. */
  const takeFollowUps = async () => {
    for (const { id, text } of await followUps.forMe()) {
      if (!(await followUps.take(id))) continue;
      const outcome = await daemon.followUp(id, text).catch(async (error: unknown) => {
        await followUps.giveBack(id, text);
        throw error;
      });
      // Busy: it was queued here again meanwhile (nightshift run --resume); the follow-up waits for it to end.
      if (outcome === "busy") await followUps.giveBack(id, text);
      if (outcome === "unknown") trace.warn({ session: id, event: "follow_up_unknown" }, `a follow-up was asked of task ${id}, which this machine does not hold`);
    }
  };
  const tick = (): Promise<void> => {
    if (ticking) {
      again = true;
      return ticking;
    }
    ticking = (async () => {
      try {
        await cluster.beat(daemon.tasks.active().filter((task) => task.state !== "queued").length, concurrency);
        if (!started) {
          await options.atStart?.();
          started = true;
        }
        await cluster.releaseSilent();
        for (const { id, reason } of await cluster.cancelsForMe()) {
          await daemon.cancel(id, reason);
          await cluster.cancelHandled(id);
        }
        await takeFollowUps();
        await state.flush();
        for (const { record, result } of await cluster.undelivered({ telegram: options.telegramHere() })) {
          if (record.deliver_to === TELEGRAM) {
            // Marked first, as an update is taken before it is handled: a machine stopped right after
            // sending the answer must not have the next machine to run the bot send it again; and
            // only the machine whose mark took sends it, only while it still runs the bot.
            if (options.telegramHere() && (await cluster.delivered(record.id))) await daemon.deliver(record, result);
            continue;
          }
          if (!handed.has(record.id)) await daemon.deliver(record, result);
          handed.add(record.id);
          await cluster.delivered(record.id);
          handed.delete(record.id);
        }
        try {
          await options.also?.();
        } finally {
          // Last: a file that cannot be read or written here must not hold up the queue's work; nor the work above, the files.
          await options.syncFiles?.();
        }
      } catch (error) {
        // An unreachable store is said once, by the watch; anything else each time.
        // A full disk is said by the write gate, once.
        if (!storeUnreachable(error) && !storageFault(error)) trace.warn({ event: "cluster_failed", error: (error as Error).message }, `the shared store failed: ${(error as Error).message}`);
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
      void tick().then(() => {
        if (!stopped) schedule();
      });
    }, HEARTBEAT_MS);
  };
  await tick();
  // A task that ended here is said at once (the machines' loads in status), not at the next heartbeat.
  const unwatch = daemon.watch((_id, message) => {
    if (message.type === "finished" && !stopped) void tick();
  });
  const wake = () => {
    if (!stopped) void tick();
  };
  const unlisten = await cluster.listen(wake);
  const unlistenFiles = await cluster.files.listen(wake);
  schedule();
  return {
    async stop() {
      stopped = true;
      unwatch();
      cancelTimer();
      await unlisten().catch(() => {});
      await unlistenFiles().catch(() => {});
      await ticking;
      await state.flush().catch(() => {});
      await cluster.leave().catch(() => {});
    },
  };
}
