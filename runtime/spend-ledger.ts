import { readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import { chargesIn, dayOf, sessionLogs } from "./daily-spend.ts";
import type { SessionEvent } from "./events.ts";

/**
 * This machine's model spend by local day and by task, kept as it happens, for the shared store
 * (several machines: each publishes its own, the digest sums them). Counted the way the daily
 * budget and the one-machine digest count it (runtime/daily-spend.ts): model responses and
 * checkpoints by the time they are dated, a specialist's for its task.
 *
 * What happened before it was made is read once from this month's session logs (`counted`); what
 * happens after comes from the sessions' events (`charge`), which are written to the log before
 * they are sent. Made before any session of this process runs, the two never overlap: the logs
 * give what is dated before `since`, the events what is dated from it on. No log is read again.
 */
export interface SpendLedger {
  /** Settles once this month's logs are counted (the totals are partial until then). */
  readonly counted: Promise<void>;
  /** A session's event, as its daemon sends it: charges count, anything else is passed over. Must not throw. */
  charge(session: string, event: SessionEvent): void;
  /** The totals as of `now`: today, this month, and today's by task. */
  totals(now: number): { todayUsd: number; monthUsd: number; todayByTask: Map<string, number> };
  /**
   * The day totals and (from `tasksFrom`, a day) task totals that changed since the last call, as
   * they are now; `restore` puts them back as changed when they could not be written.
   */
  changes(tasksFrom: string): SpendChanges;
  restore(changes: SpendChanges): void;
}

export interface SpendChanges {
  days: Array<{ day: string; usd: number }>;
  tasks: Array<{ day: string; task: string; usd: number }>;
}

export function createSpendLedger(options: { sessionsDir: string; since: number }): SpendLedger {
  const { sessionsDir, since } = options;
  const byDay = new Map<string, number>();
  /** By day, then task. */
  const byTask = new Map<string, Map<string, number>>();
  const dirtyDays = new Set<string>();
  /** `day task`, the day first (a day has no space). */
  const dirtyTasks = new Set<string>();
  const add = (task: string, at: number, usd: number) => {
    if (!(usd > 0)) return;
    const day = dayOf(at);
    byDay.set(day, (byDay.get(day) ?? 0) + usd);
    const tasks = byTask.get(day) ?? byTask.set(day, new Map()).get(day)!;
    tasks.set(task, (tasks.get(task) ?? 0) + usd);
    dirtyDays.add(day);
    dirtyTasks.add(`${day} ${task}`);
  };
  const counted = (async () => {
    const monthStart = new Date(since);
    monthStart.setDate(1);
    monthStart.setHours(0, 0, 0, 0);
    for (const path of sessionLogs(sessionsDir)) {
      let text: string;
      try {
        if ((await stat(path)).mtimeMs < monthStart.getTime()) continue;
        text = await readFile(path, "utf8");
      } catch {
        continue; // removed meanwhile
      }
      const task = taskOf(basename(path, ".jsonl"));
      chargesIn(text, (at, usd) => {
        if (at >= monthStart.getTime() && at < since) add(task, at, usd);
      });
    }
  })().catch(() => {}); // a folder that cannot be read counts as nothing, as in the one-machine digest
  return {
    counted,
    charge(session, event) {
      if (event.type !== "model_response" && event.type !== "checkpoint") return;
      if (event.at >= since) add(taskOf(session), event.at, event.cost_usd);
    },
    totals(now) {
      const today = dayOf(now);
      const month = today.slice(0, 8);
      let monthUsd = 0;
      for (const [day, usd] of byDay) if (day.startsWith(month) && day <= today) monthUsd += usd;
      return { todayUsd: byDay.get(today) ?? 0, monthUsd, todayByTask: new Map(byTask.get(today)) };
    },
    changes(tasksFrom) {
      const days = [...dirtyDays].map((day) => ({ day, usd: byDay.get(day)! }));
      const tasks = [...dirtyTasks].flatMap((key) => {
        const [day, task] = [key.slice(0, 10), key.slice(11)];
        const usd = byTask.get(day)?.get(task);
        return day >= tasksFrom && usd !== undefined ? [{ day, task, usd }] : [];
      });
      dirtyDays.clear();
      dirtyTasks.clear();
      for (const day of byTask.keys()) if (day < tasksFrom) byTask.delete(day); // no longer asked for
      return { days, tasks };
    },
    restore(changes) {
      for (const { day } of changes.days) dirtyDays.add(day);
      for (const { day, task } of changes.tasks) dirtyTasks.add(`${day} ${task}`);
    },
  };
}

/** A specialist's session (`<task>.<call>.<name>`) spends for its task. */
function taskOf(session: string): string {
  return session.split(".")[0]!;
}
