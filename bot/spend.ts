// What was spent on models today and this month: counted from this machine's session logs
// (`spendSummary`), or, with several machines, summed from what each machine wrote to the shared
// store (`sumMachines`, cli/shared-spend.ts); and its texts for /budget and the digest, as
// Telegram HTML built from fixed tags around escaped text.

import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { formatDuration, readSessionLog, sessionLogs, type SessionEvent } from "../runtime/index.ts";
import { escapeHtml, formatCost } from "./format.ts";

/** How many tasks "Today's top tasks" names. */
const TOP_TASKS = 5;

export interface SpendSummary {
  todayUsd: number;
  monthUsd: number;
  /** Today's most expensive sessions, at most five, most expensive first. */
  todayTop: Array<{ id: string; usd: number }>;
  /** Days of this month so far, today included. */
  days: number;
  /** Several machines: each one's totals (this machine's first), which the totals above add up. */
  machines?: MachineSpend[];
  /** Several machines, but the totals are this machine's alone; why ("the shared store did not answer"). */
  thisMachineOnly?: string;
}

export interface MachineSpend {
  name: string;
  todayUsd: number;
  monthUsd: number;
  /** Its own `budget.daily_usd`; undefined: no limit. */
  dailyUsd?: number;
  /** Silent (asleep, or gone) this long: its totals are the ones it last wrote. */
  silentMs?: number;
}

/**
 * Spend by local day and month, counted as the daily budget counts it (runtime/daily-spend.ts):
 * model responses and checkpoints, by the time they are dated. Logs last written before this month
 * are not opened; a damaged log counts as nothing.
 */
export async function spendSummary(sessionsDir: string, now: number): Promise<SpendSummary> {
  const monthStart = new Date(now);
  monthStart.setDate(1);
  monthStart.setHours(0, 0, 0, 0);
  const today = new Date(now).toDateString();
  let todayUsd = 0;
  let monthUsd = 0;
  const byTask = new Map<string, number>();
  for (const path of sessionLogs(sessionsDir)) {
    let events: SessionEvent[];
    try {
      if ((await stat(path)).mtimeMs < monthStart.getTime()) continue;
      events = await readSessionLog(path);
    } catch {
      continue;
    }
    const id = basename(path, ".jsonl").split(".")[0]!; // a specialist's spending counts for its task
    for (const event of events) {
      if (event.type !== "model_response" && event.type !== "checkpoint") continue;
      const at = new Date(event.at);
      if (at.getFullYear() !== monthStart.getFullYear() || at.getMonth() !== monthStart.getMonth()) continue;
      monthUsd += event.cost_usd;
      if (at.toDateString() !== today) continue;
      todayUsd += event.cost_usd;
      byTask.set(id, (byTask.get(id) ?? 0) + event.cost_usd);
    }
  }
  return { todayUsd, monthUsd, todayTop: topTasks(byTask), days: new Date(now).getDate() };
}

/**
 * Several machines: the machines' totals added up, with today's task totals of them all (a task
 * that spent on two machines counts once, with both). Machines that spent nothing this month are
 * left out.
 */
export function sumMachines(machines: MachineSpend[], tasks: Array<{ task: string; usd: number }>, now: number): SpendSummary {
  const byTask = new Map<string, number>();
  for (const { task, usd } of tasks) byTask.set(task, (byTask.get(task) ?? 0) + usd);
  const spent = machines.filter((machine, index) => index === 0 || machine.monthUsd > 0);
  return {
    todayUsd: spent.reduce((sum, machine) => sum + machine.todayUsd, 0),
    monthUsd: spent.reduce((sum, machine) => sum + machine.monthUsd, 0),
    todayTop: topTasks(byTask),
    days: new Date(now).getDate(),
    machines: spent,
  };
}

function topTasks(byTask: Map<string, number>): SpendSummary["todayTop"] {
  return [...byTask].filter(([, usd]) => usd > 0).sort((a, b) => b[1] - a[1]).slice(0, TOP_TASKS).map(([id, usd]) => ({ id, usd }));
}

/** /budget. `dailyUsd` 0 or Infinity means no daily limit (config requires a positive number, default $10). */
export function budgetText(summary: SpendSummary, limits: { dailyUsd: number; perTaskUsd: number }): string {
  const lines = [`<b>Spending</b>${whose(summary)}`];
  if (limited(limits.dailyUsd)) {
    // With several machines the daily budget holds on their sum (runtime/daily-spend.ts), each machine against its own setting.
    const share = summary.todayUsd / limits.dailyUsd;
    const filled = Math.round(Math.min(1, share) * 10);
    lines.push(`Today: ${formatCost(summary.todayUsd)} of ${formatCost(limits.dailyUsd)} (${percent(summary.todayUsd, limits.dailyUsd)})`);
    lines.push(`<code>${"▓".repeat(filled)}${"░".repeat(10 - filled)}</code>`);
  } else lines.push(`Today: ${formatCost(summary.todayUsd)} (no daily limit)`);
  for (const machine of summary.machines ?? []) {
    const own = machine.dailyUsd !== limits.dailyUsd && (limited(limits.dailyUsd) || machine.dailyUsd !== undefined) ? ` (its daily budget: ${machine.dailyUsd !== undefined ? formatCost(machine.dailyUsd) : "none"})` : "";
    lines.push(`• ${clip(machine.name, 40)}: ${formatCost(machine.todayUsd)}${own}${silence(machine)}`);
  }
  if (limited(limits.dailyUsd) && summary.todayUsd >= limits.dailyUsd) {
    lines.push(`Today's budget is used up${summary.machines ? " (every machine's spend counts)" : ""}: tasks fail at their next model call until it resets at midnight.`);
  }
  for (const machine of summary.machines?.slice(1) ?? []) {
    if (machine.dailyUsd !== undefined && machine.dailyUsd !== limits.dailyUsd && summary.todayUsd >= machine.dailyUsd) lines.push(`${clip(machine.name, 40)}'s own daily budget is used up: its tasks fail at their next model call until midnight.`);
  }
  const average = summary.days > 0 ? ` (about ${formatCost(summary.monthUsd / summary.days)} a day)` : "";
  lines.push(`This month: ${formatCost(summary.monthUsd)} over ${summary.days} ${summary.days === 1 ? "day" : "days"}${average}`);
  lines.push(limited(limits.perTaskUsd) ? `Each task: up to ${formatCost(limits.perTaskUsd)} unless it sets its own budget.` : "Each task: no dollar limit.");
  if (summary.todayTop.length > 0) {
    lines.push("", "<b>Today's top tasks</b>");
    for (const { id, usd } of summary.todayTop) lines.push(`<code>${clip(id, 60)}</code> ${formatCost(usd)}`);
  }
  return lines.join("\n");
}

/** The digest's spend line. With several machines the daily budget holds on their sum; each machine that spent today is named with its share. */
export function spendLine(summary: SpendSummary, limits: { dailyUsd: number }): string {
  const head = `<b>Spend</b>${whose(summary)}`;
  const daily = limited(limits.dailyUsd) ? ` of ${formatCost(limits.dailyUsd)} a day` : "";
  if (!summary.machines) return `${head}: today ${formatCost(summary.todayUsd)}${daily}; this month ${formatCost(summary.monthUsd)}`;
  const each = summary.machines.filter((machine) => machine.todayUsd > 0).map((machine) => `${clip(machine.name, 40)} ${formatCost(machine.todayUsd)}`);
  const silent = summary.machines.filter((machine) => machine.silentMs !== undefined).map((machine) => `${clip(machine.name, 40)}${silence(machine)}`);
  return `${head}: today ${formatCost(summary.todayUsd)}${daily}${each.length ? ` (${each.join(", ")})` : ""}; this month ${formatCost(summary.monthUsd)}${silent.length ? `; ${silent.join(", ")}` : ""}`;
}

function whose(summary: SpendSummary): string {
  if (summary.thisMachineOnly) return ` (this machine only: ${escapeHtml(summary.thisMachineOnly)})`;
  return summary.machines ? " on every machine" : "";
}

function silence(machine: MachineSpend): string {
  return machine.silentMs !== undefined ? ` (silent ${formatDuration(machine.silentMs)}: its spend as of then)` : "";
}

function limited(usd: number): boolean {
  return Number.isFinite(usd) && usd > 0;
}

function percent(used: number, limit: number): string {
  return limit > 0 && Number.isFinite(limit) ? `${Math.round((used / limit) * 100)}%` : "no limit";
}

/** One line of at most `chars` code points, escaped. */
function clip(text: string, chars: number): string {
  const points = Array.from(text.replace(/\s+/g, " ").trim());
  return escapeHtml(points.length > chars ? `${points.slice(0, chars - 1).join("")}…` : points.join(""));
}
