import { sumMachines, type MachineSpend, type SpendSummary } from "../bot/spend.ts";
import type { CostSources } from "../dashboard/cost-page.ts";
import { dayOf, type MachineDailySpend } from "../runtime/daily-spend.ts";
import type { Clock } from "../runtime/index.ts";
import { createSpendLedger } from "../runtime/spend-ledger.ts";
import type { Cluster } from "../runtime/store/pg-cluster.ts";
import { sharedSpend } from "../runtime/store/pg-spend.ts";
import type { Daemon } from "../tasks/daemon.ts";

/**
 * Several machines: the digest's and /budget's spend, every machine's. Each machine keeps its own
 * spend as its sessions charge (runtime/spend-ledger.ts) and writes what changed to the store at
 * each heartbeat (runtime/store/pg-spend.ts); the machine that tells adds the others' totals to its
 * own. A machine that is silent counts with what it last wrote, and is named as silent. Without the
 * store, this machine's own totals, said to be only this machine's.
 *
 * Must be made before any session of this process runs (the ledger's logs and events meet at the
 * moment it is made).
 */
export interface SharedSpendWork {
  /** Settles once this month's session logs here are counted. */
  readonly ready: Promise<void>;
  /**
   * This machine's totals that changed, written to the store (each heartbeat, and at stop). Throws
   * when the store does not take them; they are written at the next one. Nothing while this
   * month's logs are still being counted.
   */
  publish(): Promise<void>;
  summary(): Promise<SpendSummary>;
  stop(): void;
}

export function shareSpend(options: {
  cluster: Pick<Cluster, "sql" | "machine" | "machines">;
  daemon: Pick<Daemon, "watch">;
  sessionsDir: string;
  clock: Clock;
  dailyUsd: number;
  /** The daily budget this machine's sessions are held to: told the others' spend of the day at each heartbeat. */
  daily?: Pick<MachineDailySpend, "elsewhere">;
}): SharedSpendWork {
  const { cluster, clock, dailyUsd } = options;
  const ledger = createSpendLedger({ sessionsDir: options.sessionsDir, since: clock.now() });
  const unwatch = options.daemon.watch((id, message) => {
    if (message.type === "event") ledger.charge(id, message.event);
  });
  const store = sharedSpend(cluster.sql, cluster.machine);
  /** The day this machine last dropped its rows that are no longer asked for: once a day. */
  let prunedOn: string | undefined;
  let publishing: Promise<void> = Promise.resolve();
  let counted = false;
  void ledger.counted.then(() => (counted = true));
  const publishNow = async () => {
    const now = clock.now();
    const date = new Date(now);
    const yesterday = dayOf(new Date(date.getFullYear(), date.getMonth(), date.getDate() - 1).getTime());
    const changes = ledger.changes(yesterday);
    try {
      await store.publish(changes, dailyUsd);
    } catch (error) {
      ledger.restore(changes);
      throw error;
    }
    // The daily budget holds on every machine's spend of the day: the others' as they last wrote it.
    if (options.daily) options.daily.elsewhere(dayOf(now), await store.othersOn(dayOf(now)));
    if (prunedOn === dayOf(now)) return;
    // Task totals are asked for today only (kept a day more for a clock set back); day totals for this month (kept a month more).
    await store.prune(yesterday, dayOf(new Date(date.getFullYear(), date.getMonth() - 1, 1).getTime()));
    prunedOn = dayOf(now);
  };
  const limit = Number.isFinite(dailyUsd) && dailyUsd > 0 ? { dailyUsd } : {};
  return {
    ready: ledger.counted,
    publish() {
      // Not before this month's logs are counted (a start's first heartbeat must not wait on them): the next heartbeat writes it all.
      if (!counted) return Promise.resolve();
      // One at a time: a heartbeat's write and the last one at stop must not pass each other.
      publishing = publishing.catch(() => {}).then(publishNow);
      return publishing;
    },
    async summary() {
      await ledger.counted;
      const now = clock.now();
      const own = ledger.totals(now);
      const me: MachineSpend = { name: cluster.machine, todayUsd: own.todayUsd, monthUsd: own.monthUsd, ...limit };
      const ownTasks = [...own.todayByTask].map(([task, usd]) => ({ task, usd }));
      const today = dayOf(now);
      try {
        const [others, machines] = await Promise.all([store.others(today, `${today.slice(0, 8)}01`), cluster.machines()]);
        const status = new Map(machines.map((machine) => [machine.name, machine]));
        const rest = others.machines.map((other): MachineSpend => {
          const heard = status.get(other.machine);
          const silent = heard && !heard.alive && !heard.stopped;
          return { name: other.machine, todayUsd: other.todayUsd, monthUsd: other.monthUsd, ...(other.dailyUsd !== undefined ? { dailyUsd: other.dailyUsd } : {}), ...(silent ? { silentMs: heard.silentMs } : {}) };
        });
        return sumMachines([me, ...rest], [...ownTasks, ...others.tasks], now);
      } catch {
        const { machines: _mine, ...alone } = sumMachines([me], ownTasks, now);
        return { ...alone, thisMachineOnly: "the shared store did not answer" };
      }
    },
    stop: unwatch,
  };
}

/** The Cost page's reach into the store (several machines): the others' spend by day, every machine's costliest tasks. */
export function costElsewhere(cluster: Pick<Cluster, "sql" | "machine">): NonNullable<CostSources["elsewhere"]> {
  const store = sharedSpend(cluster.sql, cluster.machine);
  return { byDay: (from, to) => store.othersByDay(from, to), costliest: (since, limit) => store.costliest(since, limit) };
}
