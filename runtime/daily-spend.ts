import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Clock } from "./clock.ts";
import { readSessionLog } from "./session-log.ts";

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

/**
 * Starts from the session logs touched today (model responses and checkpoints dated today), then
 * counts as sessions report. The day rolls over at local midnight.
 */
export async function createDailySpend(options: { sessionsDir: string; clock: Clock; limitUsd: number }): Promise<DailySpend> {
  const { clock, sessionsDir } = options;
  /** The local date as YYYY-MM-DD, by hand: the first toLocaleDateString loads locale data (about 25 ms of a start-up). */
  const dayOf = (at: number) => {
    const date = new Date(at);
    return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
  };
  let day = dayOf(clock.now());
  let total = 0;
  const midnight = new Date(clock.now());
  midnight.setHours(0, 0, 0, 0);
  for (const path of sessionLogs(sessionsDir)) {
    if (statSync(path).mtimeMs < midnight.getTime()) continue;
    try {
      for (const event of await readSessionLog(path)) {
        if ((event.type === "model_response" || event.type === "checkpoint") && dayOf(event.at) === day) total += event.cost_usd;
      }
    } catch {
      // A damaged log is reported where it is resumed; here it counts as nothing.
    }
  }
  const rollOver = () => {
    const today = dayOf(clock.now());
    if (today !== day) {
      day = today;
      total = 0;
    }
  };
  return {
    limitUsd: options.limitUsd,
    spent: () => (rollOver(), total),
    add(usd) {
      rollOver();
      total += usd;
    },
  };
}
