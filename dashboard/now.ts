import { html } from "hono/html";
import type { ApprovalRecord, ApprovalStore, EventOf, SessionEvent } from "../runtime/index.ts";
import type { TaskReader, TaskRecord } from "../tasks/index.ts";
import { ago, formatCost, oneLine } from "./format.ts";
import { spentIn } from "../runtime/pricing.ts";
import type { MachineStatus, SharedTask } from "../runtime/store/pg-cluster.ts";
import { machineOf, machineState, silence, waitingFor, type ClusterView } from "../tasks/cluster-view.ts";

/**
 * The Now page: what needs the person (pending approvals, failures of the last day, today's spend),
 * then what runs and how much waits. Read through the interfaces the Telegram bot uses; every text
 * an agent, a tool or a task file wrote goes through `html`'s escaping, never concatenated.
 */

export interface NowSources {
  tasks: Pick<TaskReader, "active" | "finishedSince" | "get">;
  approvals: Pick<ApprovalStore, "pending">;
  /** A task's session log (as `/status` reads it): a running task's cost is only there. Must not throw for a missing log. */
  readEvents(id: string): Promise<SessionEvent[]>;
  /** Today's spend in USD, counted as the daily budget counts it. */
  spentToday(): Promise<number>;
  /** `budget.daily_usd`. */
  dailyUsd: number;
  /** Several machines on a shared store: every machine and its active tasks. */
  cluster?: () => Promise<ClusterView>;
}

export const FAILED_WINDOW_MS = 24 * 3_600_000;

export interface NowView {
  now: number;
  approvals: Array<{ record: ApprovalRecord; taskTitle?: string }>;
  failed: TaskRecord[];
  /** `step`: model turns so far; `lastTool`: the latest tool call, on one line. */
  running: Array<{ task: TaskRecord; costUsd: number; step: number; lastTool?: string; budgetWarning?: EventOf<"budget_warning"> }>;
  queued: number;
  spentUsd: number;
  dailyUsd: number;
  /** Several machines: each with its heartbeat, and the active tasks of the others (those waiting for a silent machine say so). */
  cluster?: { machine: string; machines: MachineStatus[]; elsewhere: Array<{ task: SharedTask; waiting?: string }> };
  /** Several machines, and the shared store did not answer. */
  storeDown?: boolean;
}

export async function readNow(sources: NowSources, now: number): Promise<NowView> {
  const active = sources.tasks.active();
  const running = await Promise.all(
    active
      .filter((task) => task.state !== "queued")
      .map(async (task) => {
        const events = await sources.readEvents(task.id).catch((): SessionEvent[] => []);
        // The record's cost is written when a task finishes; while it runs, the log knows more.
        const tool = events.findLast((event): event is EventOf<"tool_start"> => event.type === "tool_start");
        const warning = events.findLast((event): event is EventOf<"budget_warning"> => event.type === "budget_warning");
        return {
          task,
          costUsd: Math.max(task.cost_usd, spentIn(events)),
          step: events.filter((event) => event.type === "model_response").length,
          ...(tool ? { lastTool: `${tool.name}: ${oneLine(tool.input)}` } : {}),
          ...(warning ? { budgetWarning: warning } : {}),
        };
      }),
  );
  // Several machines: a store that does not answer costs the page only its machines section.
  let storeDown = false;
  const cluster = await sources.cluster?.().catch(() => void (storeDown = true));
  return {
    now,
    ...(cluster
      ? {
          cluster: {
            machine: cluster.machine,
            machines: cluster.machines,
            elsewhere: cluster.active.filter((task) => !active.some((mine) => mine.id === task.record.id)).map((task) => {
              const waiting = waitingFor(task, cluster.machines);
              return { task, ...(waiting ? { waiting } : {}) };
            }),
          },
        }
      : {}),
    ...(storeDown ? { storeDown } : {}),
    approvals: sources.approvals.pending().map((record) => {
      const title = sources.tasks.get(record.session.split(".")[0]!)?.title; // a specialist's session is <task>.<call>.<name>
      return { record, ...(title !== undefined ? { taskTitle: title } : {}) };
    }),
    failed: sources.tasks.finishedSince(now - FAILED_WINDOW_MS, "failed"),
    running,
    // Several machines: what waits in the shared queue, for any of them.
    queued: (cluster ? cluster.active.map((task) => task.record) : active).filter((task) => task.state === "queued").length,
    spentUsd: await sources.spentToday().catch(() => 0),
    dailyUsd: sources.dailyUsd,
  };
}

export const STATE_WORDS: Record<TaskRecord["state"], string> = { queued: "queued", running: "running", waiting_approval: "waiting for approval", done: "done", failed: "failed", cancelled: "cancelled" };
const ANSWERS = [
  ["once", "Allow once"],
  ["task", "Allow for this task"],
  ["deny", "Deny"],
] as const;

export function nowBody(view: NowView, csrf: string) {
  const over = view.dailyUsd > 0 && view.spentUsd >= view.dailyUsd;
  return html`<div id="live" data-live="now"><h1>Now</h1>
<section aria-labelledby="approvals"><h2 id="approvals">Waiting for you (${view.approvals.length})</h2>
${view.approvals.length === 0 ? html`<p class="quiet">No approval is waiting.</p>` : view.approvals.map(({ record, taskTitle }) => approvalCard(record, taskTitle, view.now, csrf))}
</section>
<section aria-labelledby="spend"><h2 id="spend">Today's spend</h2>
<p class="${over ? "warn" : ""}">${formatCost(view.spentUsd)} of ${formatCost(view.dailyUsd)} (budget.daily_usd)${over ? " — the daily budget is used up" : ""}</p>
</section>
<section aria-labelledby="failed"><h2 id="failed">Failed in the last 24 hours (${view.failed.length})</h2>
${view.failed.length === 0 ? html`<p class="quiet">Nothing failed.</p>` : html`<ul class="cards">${view.failed.map((task) => html`<li class="card"><a class="task" href="/tasks/${encodeURIComponent(task.id)}"><strong>${task.title || "Task"}</strong></a> <code>${task.id}</code>
<p>${task.reason ?? "no reason recorded"}</p><p class="quiet">failed ${ago(view.now - (task.finished ?? task.created))} ago</p></li>`)}</ul>`}
</section>
<section aria-labelledby="running"><h2 id="running">Running (${view.running.length}) · queued: ${view.queued}</h2>
${view.running.length === 0 ? html`<p class="quiet">Nothing runs.</p>` : html`<ul class="cards">${view.running.map(({ task, costUsd, step, lastTool, budgetWarning }) => html`<li class="card"><a class="task" href="/tasks/${encodeURIComponent(task.id)}"><strong>${task.title || "Task"}</strong></a> <code>${task.id}</code>
<p>${STATE_WORDS[task.state]} · step ${step} of ${task.spec.budget.max_turns} · ${formatCost(costUsd)} of ${formatCost(task.spec.budget.max_usd)}</p>
${budgetWarning ? html`<p class="warn">Budget warning: ${budgetText(budgetWarning)}</p>` : ""}
${lastTool ? html`<p class="line"><code>${lastTool}</code></p>` : ""}</li>`)}</ul>`}
</section>
${view.cluster ? machinesSection(view.cluster, view.now) : ""}${view.storeDown ? html`<section aria-labelledby="machines"><h2 id="machines">Machines</h2><p class="warn">The shared store does not answer: the other machines and their tasks cannot be shown now.</p></section>` : ""}
<form method="post" action="/logout"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit">Sign out</button></form></div>`;
}

/** Several machines: each one's heartbeat and load, then what runs or waits on the others. */
function machinesSection(cluster: NonNullable<NowView["cluster"]>, now: number) {
  return html`<section aria-labelledby="machines"><h2 id="machines">Machines (${cluster.machines.length})</h2>
<table><thead><tr><th>Machine</th><th>State</th><th>Heartbeat</th><th>Tasks</th></tr></thead><tbody>
${cluster.machines.map((machine) => {
  const state = machineState(machine);
  return html`<tr class="${state === "alive" ? "" : "warn"}"><td>${machine.name}${machine.name === cluster.machine ? html` <span class="quiet">(this machine)</span>` : ""}</td><td>${state === "silent" ? "silent (asleep or gone)" : state}</td><td>${silence(machine.silentMs)} ago</td><td>${state === "alive" ? `${machine.running} of ${machine.concurrency} running` : `${cluster.elsewhere.filter(({ task }) => machineOf(task) === machine.name).length} waiting for it`}</td></tr>`;
})}
</tbody></table>
<h3>On other machines or in the shared queue (${cluster.elsewhere.length})</h3>
${cluster.elsewhere.length === 0 ? html`<p class="quiet">Nothing runs or waits elsewhere.</p>` : html`<ul class="cards">${cluster.elsewhere.map(({ task, waiting }) => html`<li class="card"><a class="task" href="/tasks/${encodeURIComponent(task.record.id)}"><strong>${task.record.title || "Task"}</strong></a> <code>${task.record.id}</code>
<p>${STATE_WORDS[task.record.state]} · ${machineOf(task) ? `on ${machineOf(task)}` : "for any machine"} · queued ${ago(now - task.record.created)} ago</p>
${waiting ? html`<p class="warn">${waiting}</p>` : ""}</li>`)}</ul>`}
</section>`;
}

/** "usd: $1.60 of $2.00", "turns: 32 of 40": what a budget warning says was used of which limit. */
export function budgetText(event: EventOf<"budget_warning">): string {
  const amount = (value: number) => (event.kind.endsWith("usd") ? formatCost(value) : event.kind === "time" ? ago(value) : String(value));
  return `${event.kind} ${amount(event.used)} of ${amount(event.limit)}`;
}

/** An approval with its three answers; `back` is the page the answer returns to (the Now page by default). */
export function approvalCard(record: ApprovalRecord, taskTitle: string | undefined, now: number, csrf: string, back?: string) {
  return html`<article class="card">
<p><strong>${record.summary}</strong>${record.label ? html` <span class="quiet">(${record.label})</span>` : ""}</p>
<p>${record.kind}: <code class="exact">${record.target}</code></p>
<p class="quiet">Why it asks: ${record.reason}${taskTitle !== undefined ? html` · task: ${taskTitle}` : ""} · ${ago(Math.max(0, record.expires_at - now))} left</p>
<div class="answers">${ANSWERS.map(([decision, label]) => html`<form method="post" action="/approvals/${record.id}"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="decision" value="${decision}">${back ? html`<input type="hidden" name="back" value="${back}">` : ""}<button type="submit" class="${decision}">${label}</button></form>`)}</div>
</article>`;
}
