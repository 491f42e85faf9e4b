import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Clock } from "./clock.ts";

/** Every session log: the tasks' in `sessions/`, their specialists' in `sessions/<task>/`. */
export function sessionLogs(sessionsDir: string): string[] {
  if (!existsSync(sessionsDir)) return [];
  return readdirSync(sessionsDir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(sessionsDir, entry.name);
    if (entry.isFile() && entry.name.endsWith(".jsonl")) return [path];
    if (!entry.isDirectory()) return [];
    return readdirSync(path).filter((name) => name.endsWith(".jsonl")).map((name) => join(path, name));
  });
}

/** Dollars spent today (local time) across every session of this NIGHTSHIFT_HOME. */
export interface DailySpend {
  readonly limitUsd: number;
  spent(): number;
  add(usd: number): void;
}

/** The daily budget of a machine: with several machines on one store, `spent` counts the others' spend of the day too. */
export interface MachineDailySpend extends DailySpend {
  /** This machine's own spend today. */
  own(): number;
  /** What the other machines had spent on `day` (YYYY-MM-DD, local), as last read from the shared store. */
  elsewhere(day: string, usd: number): void;
}

/** The local date as YYYY-MM-DD, by hand: the first toLocaleDateString loads locale data (about 25 ms of a start-up). */
export function dayOf(at: number): string {
  const date = new Date(at);
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
}

function startOfDay(at: number, daysBefore = 0): number {
  const day = new Date(at);
  day.setHours(0, 0, 0, 0);
  day.setDate(day.getDate() - daysBefore);
  return day.getTime();
}

/**
 * Spending is kept per local day, each day counted from the session logs the first time it is
 * needed and then as sessions report. A clock that steps back across midnight (NTP, a suspended VM)
 * finds the earlier day with what it had spent, and coming forward again finds today's: a day's
 * total is never reset by the date changing, so the budget holds whichever way the clock moves.
 * With several machines on one store, the others' spend of the day is added as each heartbeat
 * reads it (cli/shared-spend.ts): the daily budget holds on the sum, a heartbeat behind at most.
 */
export async function createDailySpend(options: { sessionsDir: string; clock: Clock; limitUsd: number }): Promise<MachineDailySpend> {
  const { clock, sessionsDir } = options;
  const byDay = new Map<string, number>();
  /** Days from here on are in `byDay` (counted from the logs, or zero); earlier ones are read when the clock reaches them. */
  let countedFrom = startOfDay(clock.now(), 1); // yesterday too: the clock most often steps back across the last midnight
  const count = (from: number, until: number) => {
    for (const [day, usd] of chargesByDay(sessionsDir, from, until)) byDay.set(day, (byDay.get(day) ?? 0) + usd);
  };
  count(countedFrom, Infinity);
  const today = () => {
    const now = clock.now();
    if (now < countedFrom) {
      const from = startOfDay(now);
      count(from, countedFrom);
      countedFrom = from;
    }
    return dayOf(now);
  };
  /** The other machines' spend, of the day it was read for: counted on that day only. */
  let others = { day: "", usd: 0 };
  const own = () => byDay.get(today()) ?? 0;
  return {
    limitUsd: options.limitUsd,
    own,
    spent: () => {
      const day = today();
      return (byDay.get(day) ?? 0) + (others.day === day ? others.usd : 0);
    },
    elsewhere(day, usd) {
      others = { day, usd };
    },
    add(usd) {
      const day = today();
      byDay.set(day, (byDay.get(day) ?? 0) + usd);
    },
  };
}

/**
 * Charges (model responses and checkpoints) dated in [from, until), summed per local day. Logs last
 * written before `from` are not opened. A damaged line counts as nothing; the rest of its log still
 * counts (the damage is reported where the session is resumed).
 */
function chargesByDay(sessionsDir: string, from: number, until: number): Map<string, number> {
  const totals = new Map<string, number>();
  for (const path of sessionLogs(sessionsDir)) {
    let text: string;
    try {
      if (statSync(path).mtimeMs < from) continue;
      text = readFileSync(path, "utf8");
    } catch {
      continue; // removed meanwhile
    }
    chargesIn(text, (at, usd) => {
      if (at < from || at >= until) return;
      const day = dayOf(at);
      totals.set(day, (totals.get(day) ?? 0) + usd);
    });
  }
  return totals;
}

/** Each charge (a model response, a checkpoint) in a session log's text, with its time. A damaged line counts as nothing. */
export function chargesIn(text: string, visit: (at: number, usd: number) => void): void {
  for (const line of text.split("\n")) {
    // Cheap pre-check: most lines are tool calls and results, not charges.
    if (!line.includes('"cost_usd"')) continue;
    let event: { type?: unknown; at?: unknown; cost_usd?: unknown };
    try {
      event = JSON.parse(line);
    } catch {
      continue;
    }
    if ((event.type !== "model_response" && event.type !== "checkpoint") || typeof event.at !== "number" || typeof event.cost_usd !== "number") continue;
    visit(event.at, event.cost_usd);
  }
}
