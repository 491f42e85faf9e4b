/**
 * Each machine's model spend on the shared store (issue 16), for the digest's spend line: every
 * machine writes its own totals by local day and today's by task (runtime/spend-ledger.ts), and
 * the machine that tells reads the others' and adds its own. A row holds a total, not a charge, so
 * writing it again is harmless, and a machine that is asleep still counts with what it last wrote.
 * A machine keeps a day's task totals only while they can be asked for (today, yesterday), and its
 * day totals for this month and the last: reads and writes grow with the work, not with history.
 */

import type { Sql } from "./pg.ts";
import type { SpendChanges } from "../spend-ledger.ts";

export interface OtherMachineSpend {
  machine: string;
  todayUsd: number;
  monthUsd: number;
  /** Its `budget.daily_usd` as it last wrote it; undefined for no limit. */
  dailyUsd?: number;
}

export interface SharedSpend {
  /** This machine's totals that changed, with its daily limit, in one transaction. */
  publish(changes: SpendChanges, dailyUsd: number): Promise<void>;
  /** Drops this machine's task totals of days before `tasksBefore` and day totals before `daysBefore`. */
  prune(tasksBefore: string, daysBefore: string): Promise<void>;
  /** The other machines' spend by day from `from` to `to` (both YYYY-MM-DD, included), summed (the Cost page). */
  othersByDay(from: string, to: string): Promise<Map<string, number>>;
  /** Every machine's costliest tasks finished since `since` (ms), with the machine each ran on (the Cost page). */
  costliest(since: number, limit: number): Promise<Array<{ id: string; title: string; usd: number; machine: string | null }>>;
  /** What the other machines spent on `day`, together (the daily budget's share of theirs). */
  othersOn(day: string): Promise<number>;
  /** The other machines' totals for `today` and the month from `from` (both days), and their task totals of `today`. */
  others(today: string, from: string): Promise<{ machines: OtherMachineSpend[]; tasks: Array<{ task: string; usd: number }> }>;
}

export function sharedSpend(sql: Sql, machine: string): SharedSpend {
  return {
    async publish(changes, dailyUsd) {
      if (changes.days.length === 0 && changes.tasks.length === 0) return;
      const limit = Number.isFinite(dailyUsd) && dailyUsd > 0 ? dailyUsd : null;
      await sql.begin(async (tx) => {
        if (changes.days.length) {
          const rows = changes.days.map(({ day, usd }) => ({ day, machine, usd, daily_usd: limit }));
          await tx`INSERT INTO spend_days ${tx(rows, "day", "machine", "usd", "daily_usd")} ON CONFLICT (day, machine) DO UPDATE SET usd = EXCLUDED.usd, daily_usd = EXCLUDED.daily_usd`;
        }
        if (changes.tasks.length) {
          const rows = changes.tasks.map(({ day, task, usd }) => ({ day, machine, task, usd }));
          await tx`INSERT INTO spend_tasks ${tx(rows, "day", "machine", "task", "usd")} ON CONFLICT (day, machine, task) DO UPDATE SET usd = EXCLUDED.usd`;
        }
      });
    },
    async prune(tasksBefore, daysBefore) {
      await sql`DELETE FROM spend_tasks WHERE day < ${tasksBefore} AND machine = ${machine}`;
      await sql`DELETE FROM spend_days WHERE day < ${daysBefore} AND machine = ${machine}`;
    },
    async othersByDay(from, to) {
      const rows = await sql<Array<{ day: string; usd: number }>>`SELECT day, sum(usd) AS usd FROM spend_days WHERE day >= ${from} AND day <= ${to} AND machine <> ${machine} GROUP BY day`;
      return new Map(rows.map((row) => [row.day, row.usd]));
    },
    async costliest(since, limit) {
      // The month's finished tasks by the digest's index: the cost follows the month's work.
      const rows = await sql<Array<{ id: string; title: string; usd: number; machine: string | null }>>`
        SELECT id, record->>'title' AS title, (record->>'cost_usd')::float8 AS usd, machine FROM tasks
        WHERE finished >= ${since} AND (record->>'cost_usd')::float8 > 0 ORDER BY usd DESC LIMIT ${limit}`;
      return [...rows];
    },
    async othersOn(day) {
      const [row] = await sql<Array<{ usd: number | null }>>`SELECT sum(usd) AS usd FROM spend_days WHERE day = ${day} AND machine <> ${machine}`;
      return row?.usd ?? 0;
    },
    async others(today, from) {
      const month = `${from.slice(0, 8)}99`; // every day of the month, and none of the next
      const machines = await sql<Array<{ machine: string; today_usd: number | null; month_usd: number; daily_usd: number | null }>>`
        SELECT machine, sum(usd) FILTER (WHERE day = ${today}) AS today_usd, sum(usd) AS month_usd, (array_agg(daily_usd ORDER BY day DESC))[1] AS daily_usd
        FROM spend_days WHERE day >= ${from} AND day <= ${month} AND machine <> ${machine} GROUP BY machine ORDER BY machine`;
      const tasks = await sql<Array<{ task: string; usd: number }>>`
        SELECT task, sum(usd) AS usd FROM spend_tasks WHERE day = ${today} AND machine <> ${machine} GROUP BY task`;
      return {
        machines: machines.map((row) => ({ machine: row.machine, todayUsd: row.today_usd ?? 0, monthUsd: row.month_usd, ...(row.daily_usd === null ? {} : { dailyUsd: row.daily_usd }) })),
        tasks: tasks.map((row) => ({ task: row.task, usd: row.usd })),
      };
    },
  };
}
