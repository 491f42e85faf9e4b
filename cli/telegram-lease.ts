import type { BotCluster, TelegramBot } from "../bot/bot.ts";
import type { PairingStore } from "../bot/pairing.ts";
import type { Clock } from "../runtime/index.ts";
import { escapeHtml } from "../bot/format.ts";
import { TELEGRAM_LEASE, type Cluster, type SharedTask } from "../runtime/store/pg-cluster.ts";
import { sharedFollowUps } from "../runtime/store/pg-follow-ups.ts";
import { sharedPairingCodes } from "../runtime/store/pg-pairing.ts";
import { sharedTelegram } from "../runtime/store/pg-telegram.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import { askStagedElsewhere } from "./staged-elsewhere.ts";
import { machineOf, machineState, readClusterView, silence } from "../tasks/cluster-view.ts";
import type { TaskRecord } from "../tasks/state.ts";

/**
 * Which of several machines runs the Telegram bot: the one holding the lease TELEGRAM_LEASE. Each
 * machine tries to take or renew it every third of its time to live; the holder runs a bot made
 * for its term, and stops it as soon as a renewal fails or its own clock says the lease may have
 * lapsed (a machine woken from SIGSTOP or sleep polls nothing before it renewed). Another machine
 * takes over once the lease expired, by the database's clock: within TELEGRAM_LEASE_MS plus a
 * third of it, 20 s at most with the default.
 *
 * The lease is kept only while Telegram answers this machine: a holder whose requests have failed
 * for the lease's time to live (its network cannot reach Telegram, which another machine's may)
 * stops its bot, gives the lease up and stands back for two terms, so another machine takes over.
 */

/** The Telegram lease's time to live. */
export const TELEGRAM_LEASE_MS = 15_000;

export interface TelegramLease {
  /** The bot, while this machine holds the lease and runs it. */
  current(): TelegramBot | undefined;
  /** Stops the bot and gives the lease up, so another machine takes over at once. */
  stop(): Promise<void>;
}

export interface TelegramLeaseOptions {
  cluster: Cluster;
  clock: Clock;
  trace: TraceLogger;
  stderr: NodeJS.WritableStream;
  /** This machine's paired users (shared with the others at each renewal). */
  pairing: PairingStore;
  /** Tests only: a shorter lease (NIGHTSHIFT_TELEGRAM_LEASE_MS), so a takeover test takes seconds. */
  ttlMs?: number;
  /** Makes the bot for one term as holder (not started). */
  create(cluster: BotCluster): TelegramBot;
  /** The bot started (a term began) or stopped (undefined). Must not throw. */
  changed(bot: TelegramBot | undefined): void;
}

export function startTelegramLease(options: TelegramLeaseOptions): TelegramLease {
  const { cluster, clock, trace, stderr } = options;
  const ttl = options.ttlMs ?? TELEGRAM_LEASE_MS;
  const shared = sharedTelegram(cluster.sql, cluster.machine);
  const followUps = sharedFollowUps(cluster.sql, cluster.machine);
  const stagedElsewhere = askStagedElsewhere(cluster);
  const say = (level: "info" | "warn", message: string) => {
    stderr.write(`${message}\n`);
    trace[level]({ event: "telegram_lease", machine: cluster.machine }, message);
  };
  let bot: TelegramBot | undefined;
  /** By this machine's clock: the lease is surely still ours before this. */
  let heldUntil = 0;
  let stopped = false;
  let ending: Promise<void> | undefined;
  let cancelTimer = () => {};
  let lastHolder: string | undefined;
  /** Gave the lease up because Telegram did not answer: not taken again before this. */
  let standBackUntil = 0;

  /** The bot's state, written to the shared store after each change (only the latest matters). */
  let unsaved: unknown;
  let saving: Promise<void> | undefined;
  const save = (): Promise<void> =>
    (saving ??= (async () => {
      try {
        while (unsaved !== undefined) {
          const state = unsaved;
          unsaved = undefined;
          if (!(await shared.saveState(state))) return void end("lost");
        }
      } catch (error) {
        trace.warn({ event: "telegram_state_unsaved", error: (error as Error).message }, `could not write the bot's state to the shared store; tried again at the next renewal: ${(error as Error).message}`);
      }
    })().finally(() => (saving = undefined)));

  /** Ends this machine's term: stops polling, lets what the outbox holds go out (a few seconds at most), stops the bot. */
  const end = (why: "lost" | "stopping"): Promise<void> => {
    const ending_ = bot;
    if (!ending_) return ending ?? Promise.resolve();
    bot = undefined;
    // From now on this machine's notices go through the shared queue: the stopping bot tells nothing more, so nothing is told twice.
    ending_.mute();
    heldUntil = 0;
    options.changed(undefined);
    if (why === "lost") say("warn", `Telegram: this machine (${cluster.machine}) no longer holds the Telegram lease; its bot stopped polling`);
    return (ending = (async () => {
      if (why === "lost") await Promise.race([ending_.outbox.idle(), new Promise<void>((resolve) => clock.setTimer(resolve, 5_000))]);
      await ending_.stop();
    })().finally(() => (ending = undefined)));
  };

  const begin = async () => {
    await ending; // the last term's bot has stopped: one outbox on the folder at a time
    const state = await shared.state();
    if (stopped || clock.now() >= heldUntil) return;
    bot = options.create({
      nextUpdate: () => shared.nextUpdate(),
      take: (id) => shared.take(id),
      holding: () => clock.now() < heldUntil,
      lost: () => void end("lost"),
      paired: (user) => void shared.paired(user).catch(() => {}), // the next renewal offers it again
      pairingCodes: sharedPairingCodes(cluster.sql),
      followUp: (id, text) => followUps.ask(id, text),
      stagedElsewhere,
      findTasks: async (part) => (await cluster.match(part, 2)).map((task) => task.record),
      overview: (limit) => tasksEverywhere(cluster, limit),
      state: {
        initial: state,
        written(data) {
          unsaved = structuredClone(data);
          void save();
        },
      },
    });
    bot.start();
    options.changed(bot);
    say("info", `Telegram: this machine (${cluster.machine}) holds the Telegram lease and runs the bot`);
  };

  /** Paired users: this machine's offered to the others, the others' taken in, an unpairing done everywhere. */
  const shareUsers = async () => {
    const local = options.pairing.users();
    await shared.offerUsers(local);
    for (const row of await shared.users()) {
      if (row.removed) options.pairing.remove(row.id);
      else if (!local.some((user) => user.id === row.id)) options.pairing.adopt({ ...row.user, id: row.id });
    }
  };

  /** Telegram has not answered this machine for a whole term: another machine, whose network may reach it, takes over. */
  const giveUp = async (since: number) => {
    say("warn", `Telegram: this machine (${cluster.machine}) has not reached Telegram for ${Math.round((clock.now() - since) / 1000)} s; it gives the Telegram lease up so that another machine runs the bot`);
    standBackUntil = clock.now() + 2 * ttl;
    await end("stopping");
    await cluster.releaseLease(TELEGRAM_LEASE).catch(() => {}); // else it lapses by itself
  };

  const renew = async () => {
    const asked = clock.now();
    /** Undefined: the database did not answer, so the lease may still be ours until heldUntil. */
    let held: boolean | undefined;
    try {
      if (asked >= standBackUntil) held = await cluster.lease(TELEGRAM_LEASE, ttl);
    } catch (error) {
      trace.warn({ event: "telegram_lease_unknown", error: (error as Error).message }, `could not renew the Telegram lease: ${(error as Error).message}`);
    }
    if (stopped) return;
    const failing = bot?.unreachableSince();
    if (held && failing !== undefined && clock.now() - failing >= ttl) {
      await giveUp(failing);
    } else if (held) {
      // A third of the lease kept in hand: this machine stops before the database lets another take it.
      heldUntil = asked + ttl - Math.ceil(ttl / 3);
      if (!bot) await begin();
      else void save();
    } else if (bot && (held === false || clock.now() >= heldUntil)) {
      await end("lost");
    }
    try {
      await shareUsers();
      const holder = await shared.holder();
      if (!bot && holder && holder !== lastHolder) say("info", `Telegram: machine ${holder} runs the bot`);
      lastHolder = holder;
    } catch {
      // Said by the cluster loop; tried again at the next renewal.
    }
  };

  const schedule = () => {
    cancelTimer = clock.setTimer(() => {
      if (stopped) return;
      void renew().finally(schedule);
    }, Math.ceil(ttl / 3));
  };
  void renew().finally(schedule);

  return {
    current: () => bot,
    async stop() {
      stopped = true;
      cancelTimer();
      const had = bot !== undefined;
      await end("stopping");
      await saving;
      if (had) await cluster.releaseLease(TELEGRAM_LEASE).catch(() => {});
    },
  };
}

/** /tasks with several machines: every machine's active and newest tasks, and one line on the machines' heartbeats. */
async function tasksEverywhere(cluster: Cluster, limit: number): Promise<{ tasks: TaskRecord[]; machineOf(id: string): string | undefined; machines: string }> {
  const view = await readClusterView(cluster, limit);
  const seen = new Map<string, SharedTask>();
  for (const task of [...view.active, ...view.recent]) if (!seen.has(task.record.id)) seen.set(task.record.id, task);
  const machines = view.machines.map((machine) => {
    const state = machineState(machine);
    const load = state === "alive" ? `${machine.running} of ${machine.concurrency} running` : `silent ${silence(machine.silentMs)}`;
    return `${escapeHtml(machine.name)}${machine.name === view.machine ? " (this one)" : ""}: ${state === "stopped" ? "stopped" : load}`;
  });
  return {
    tasks: [...seen.values()].map((task) => task.record),
    machineOf: (id) => {
      const task = seen.get(id);
      return task ? machineOf(task) : undefined;
    },
    machines: `Machines: ${machines.join(" · ")}`,
  };
}
