import { html } from "hono/html";
import type { TaskReader } from "../tasks/index.ts";
import { formatCost } from "./format.ts";
import type { Charge } from "./spend.ts";

/**
 * The Cost page: spend per local day for the last 30 days as an SVG bar chart drawn on the server
 * (no script) with the `budget.daily_usd` line, the same days as a table, the month's total and its
 * 10 costliest tasks. Spend is counted as the daily budget counts it (see `chargeReader`).
 */

export interface CostSources {
  /** Charges dated at or after `since` (the daemon reads the session logs: `chargeReader`). */
  charges(since: number): Promise<Charge[]>;
  tasks: Pick<TaskReader, "get">;
  /** `budget.daily_usd`. */
  dailyUsd: number;
  /**
   * Several machines: the other machines' spend by day as they wrote it to the store, and every
   * machine's costliest tasks of the month from the store's task records (cli/shared-spend.ts).
   */
  elsewhere?: {
    byDay(from: string, to: string): Promise<Map<string, number>>;
    costliest(since: number, limit: number): Promise<Array<{ id: string; title: string; usd: number; machine: string | null }>>;
  };
}

export const DAYS_SHOWN = 30;
export const TOP_TASKS = 10;

export interface CostView {
  /** Oldest first, today last; `day` is the local date as YYYY-MM-DD. */
  days: Array<{ day: string; usd: number }>;
  month: string;
  monthUsd: number;
  top: Array<{ id: string; title?: string; usd: number; machine?: string }>;
  dailyUsd: number;
  /** Several machines: "every machine" when the others' spend is in, or why it is not (the store away). */
  scope?: string;
}

export async function readCost(sources: CostSources, now: number): Promise<CostView> {
  const first = new Date(now);
  first.setHours(0, 0, 0, 0);
  first.setDate(first.getDate() - (DAYS_SHOWN - 1));
  const monthStart = new Date(now);
  monthStart.setHours(0, 0, 0, 0);
  monthStart.setDate(1);
  const charges = await sources.charges(Math.min(first.getTime(), monthStart.getTime())).catch(() => []);
  const byDay = new Map<string, number>();
  for (let day = new Date(first); day.getTime() <= now; day.setDate(day.getDate() + 1)) byDay.set(dayOf(day.getTime()), 0);
  const byTask = new Map<string, number>();
  let monthUsd = 0;
  for (const charge of charges) {
    const day = dayOf(charge.at);
    if (byDay.has(day)) byDay.set(day, byDay.get(day)! + charge.usd);
    if (charge.at >= monthStart.getTime() && charge.at <= now) {
      monthUsd += charge.usd;
      byTask.set(charge.task, (byTask.get(charge.task) ?? 0) + charge.usd);
    }
  }
  let top: CostView["top"] = [...byTask]
    .filter(([, usd]) => usd > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, TOP_TASKS)
    .map(([id, usd]) => {
      const title = sources.tasks.get(id)?.title;
      return { id, usd, ...(title !== undefined ? { title } : {}) };
    });
  let scope: string | undefined;
  if (sources.elsewhere) {
    // Several machines: the days and the month add the others' spend; the costliest tasks are every machine's finished ones.
    try {
      const [days, costliest] = await Promise.all([sources.elsewhere.byDay(dayOf(Math.min(first.getTime(), monthStart.getTime())), dayOf(now)), sources.elsewhere.costliest(monthStart.getTime(), TOP_TASKS)]);
      for (const [day, usd] of days) {
        if (byDay.has(day)) byDay.set(day, byDay.get(day)! + usd);
        if (day >= dayOf(monthStart.getTime())) monthUsd += usd;
      }
      top = costliest.map((task) => ({ id: task.id, title: task.title, usd: task.usd, ...(task.machine ? { machine: task.machine } : {}) }));
      scope = "every machine";
    } catch {
      scope = "this machine only: the shared store did not answer";
    }
  }
  return { days: [...byDay].map(([day, usd]) => ({ day, usd })), month: dayOf(now).slice(0, 7), monthUsd, top, dailyUsd: sources.dailyUsd, ...(scope ? { scope } : {}) };
}

/** The local date as YYYY-MM-DD (as the daily budget's day). */
function dayOf(at: number): string {
  const date = new Date(at);
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
}

const WIDTH = 360;
const HEIGHT = 160;
const TOP_ROOM = 12;

export function costBody(view: CostView) {
  const limited = Number.isFinite(view.dailyUsd) && view.dailyUsd > 0;
  const scale = Math.max(...view.days.map((day) => day.usd), limited ? view.dailyUsd : 0) || 1;
  const y = (usd: number) => HEIGHT - (usd / scale) * (HEIGHT - TOP_ROOM);
  const slot = WIDTH / view.days.length;
  const over = (usd: number) => limited && usd > view.dailyUsd;
  return html`<h1>Cost</h1>
${view.scope ? html`<p class="quiet">Spend of ${view.scope}${view.scope === "every machine" ? " (the others' as they last wrote it to the shared store); the costliest tasks are those finished this month" : ""}.</p>` : ""}
<section aria-labelledby="days"><h2 id="days">Spend per day, last ${view.days.length} days</h2>
<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="Spend per day for the last ${view.days.length} days${limited ? html` against the daily budget of ${formatCost(view.dailyUsd)}` : ""}">
${view.days.map((day, index) => html`<rect class="bar${over(day.usd) ? " over" : ""}" data-day="${day.day}" x="${fixed(index * slot + 1)}" y="${fixed(y(day.usd))}" width="${fixed(slot - 2)}" height="${fixed(HEIGHT - y(day.usd))}"><title>${day.day}: ${formatCost(day.usd)}</title></rect>`)}
${limited ? html`<line class="budget" x1="0" x2="${WIDTH}" y1="${fixed(y(view.dailyUsd))}" y2="${fixed(y(view.dailyUsd))}"><title>budget.daily_usd: ${formatCost(view.dailyUsd)}</title></line>` : ""}
</svg>
<p class="quiet">${limited ? html`The line is the daily budget, ${formatCost(view.dailyUsd)} (budget.daily_usd).` : "No daily budget is set."}</p>
<table class="spend"><thead><tr><th scope="col">Day</th><th scope="col">Spend</th></tr></thead><tbody>
${[...view.days].reverse().map((day) => html`<tr${over(day.usd) ? html` class="warn"` : ""}><td>${day.day}</td><td>${formatCost(day.usd)}${over(day.usd) ? " (over the budget)" : ""}</td></tr>`)}
</tbody></table>
</section>
<section aria-labelledby="month"><h2 id="month">This month (${view.month})</h2>
<p>Total: <strong>${formatCost(view.monthUsd)}</strong></p>
<h3>Costliest tasks</h3>
${view.top.length === 0 ? html`<p class="quiet">Nothing spent this month.</p>` : html`<ol class="top">${view.top.map((task) => html`<li><a class="task" href="/tasks/${encodeURIComponent(task.id)}">${task.title || task.id}</a> ${formatCost(task.usd)}${task.machine ? html` <span class="quiet">on ${task.machine}</span>` : ""}</li>`)}</ol>`}
</section>`;
}

const fixed = (value: number) => value.toFixed(1);
