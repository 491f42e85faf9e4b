import { html } from "hono/html";
import type { TaskReader, TaskRecord } from "../tasks/index.ts";
import { ago, formatCost } from "./format.ts";
import { STATE_WORDS } from "./now.ts";

/**
 * The Tasks page: every task, newest first, 50 at a time, filtered by state and origin through the
 * query (`?state=failed&origin=telegram&before=<created>:<id>`), so a filtered page is a link. The
 * filters and the "older" cursor go to `TaskReader.list`, an indexed query: 10,000 tasks are never
 * read to show 50. With several machines the list is every machine's, from the shared store's
 * index, each task marked with the machine it ran on; with the store away, this machine's.
 */

export const PAGE_SIZE = 50;
const STATES = Object.keys(STATE_WORDS) as Array<TaskRecord["state"]>;
const ORIGINS = ["inbox", "schedule", "cli", "telegram", "recovered"];

export interface TasksQuery {
  state?: string | undefined;
  origin?: string | undefined;
  before?: string | undefined;
}

/** A task of the list, and (several machines) the machine it is on. */
export interface ListedTask {
  task: TaskRecord;
  machine?: string | undefined;
}

/** Every machine's tasks from the shared store; throws when the store does not answer. */
export type SharedList = (filter: Parameters<TaskReader["list"]>[0], limit: number) => Promise<ListedTask[]>;

export async function tasksBody(reader: Pick<TaskReader, "list">, query: TasksQuery, now: number, shared?: SharedList) {
  const state = STATES.includes(query.state as TaskRecord["state"]) ? query.state : undefined;
  const origin = query.origin ? query.origin : undefined;
  const before = cursorOf(query.before);
  const filter = { state, origin, before };
  // One more than a page tells whether an "older" link leads anywhere.
  let storeDown = false;
  const rows: ListedTask[] = (shared ? await shared(filter, PAGE_SIZE + 1).catch(() => void (storeDown = true)) : undefined) ?? reader.list(filter, PAGE_SIZE + 1).map((task) => ({ task }));
  const shown = rows.slice(0, PAGE_SIZE);
  const last = shown.at(-1)?.task;
  const older = rows.length > PAGE_SIZE && last ? link({ state, origin, before: `${last.created}:${last.id}` }) : undefined;
  return html`<h1>Tasks</h1>
<form method="get" action="/tasks" class="filters">
<label>State <select name="state"><option value="">any</option>${STATES.map((value) => html`<option value="${value}"${value === state ? " selected" : ""}>${STATE_WORDS[value]}</option>`)}</select></label>
<label>Source <select name="origin"><option value="">any</option>${[...new Set([...ORIGINS, ...(origin ? [origin] : [])])].map((value) => html`<option value="${value}"${value === origin ? " selected" : ""}>${value}</option>`)}</select></label>
<button type="submit">Filter</button>
</form>
${storeDown ? html`<p class="warn">The shared store does not answer: only this machine's tasks are listed.</p>` : ""}
${shown.length === 0 ? html`<p class="quiet">No task${state || origin ? " matches" : " yet"}.</p>` : html`<ul class="cards">${shown.map((listed) => row(listed, now))}</ul>`}
${before ? html`<p><a class="more" href="${link({ state, origin })}">Newest</a></p>` : ""}
${older ? html`<p><a class="more" href="${older}">Older</a></p>` : ""}`;
}

function row({ task, machine }: ListedTask, now: number) {
  const end = task.finished ?? now;
  const took = task.started !== undefined ? ago(end - task.started) : "not started";
  return html`<li class="card"><a class="task" href="/tasks/${encodeURIComponent(task.id)}">${task.title || "Task"}</a>
<p class="quiet"><span class="state ${task.state}">${STATE_WORDS[task.state]}</span>${machine ? ` · on ${machine}` : ""} · ${task.origin} · ${formatCost(task.cost_usd)} · ${took} · <code>${task.id}</code></p></li>`;
}

function link(query: TasksQuery): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value) params.set(key, value);
  const text = params.toString();
  return text ? `/tasks?${text}` : "/tasks";
}

/** `<created>:<id>` → the cursor; anything else is no cursor (the newest page). */
function cursorOf(text: string | undefined): { created: number; id: string } | undefined {
  const at = text?.indexOf(":") ?? -1;
  if (!text || at <= 0) return undefined;
  const created = Number(text.slice(0, at));
  return Number.isFinite(created) ? { created, id: text.slice(at + 1) } : undefined;
}
