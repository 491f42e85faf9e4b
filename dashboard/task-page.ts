import { html } from "hono/html";
import type { ContentBlock, EventOf, SessionEvent, SpecialistReport } from "../runtime/events.ts";
import type { ApprovalRecord, ApprovalStore } from "../runtime/index.ts";
import type { TaskReader, TaskRecord } from "../tasks/index.ts";
import { ago, formatCost, notEnded, oneLine, size } from "./format.ts";
import { spentIn } from "../runtime/pricing.ts";
import { approvalCard, budgetText, STATE_WORDS } from "./now.ts";
import { lanesOf, type Lane, type SpecialistLog } from "./lanes.ts";

/**
 * The Task page: a header (state, model, turns, cost against budget, elapsed, a link to its Trace
 * page), its specialists as lanes (state, turns, cost, report collapsed), then the session
 * log as one block per model turn: its text, each tool call's input on one line with its
 * permission decisions (allow/ask/deny and the rule), approvals asked and answered (by whom), its
 * duration, outcome and output (collapsed, cut to 4 KB); retries, budget warnings, checkpoints,
 * plans, reviews and specialist reports between them. Only the last 200 events are drawn; "load
 * earlier" (`?before=N`) draws the 200 before event N. Every text from the log goes through
 * `html`'s escaping.
 */

export const WINDOW = 200;
export const OUTPUT_CUT = 4096;

export interface TaskPageSources {
  tasks: Pick<TaskReader, "find">;
  /** Several machines: a task of another machine, from the shared store (this machine's `tasks` do not hold it). */
  findElsewhere?(id: string): Promise<TaskRecord | undefined>;
  /** A task's session log; may throw for a task that has none yet. */
  readEvents(id: string): Promise<SessionEvent[]>;
  /** Pending approvals: the task's own (and its specialists') are pinned on top of its page. */
  approvals: Pick<ApprovalStore, "pending">;
  /** The task's specialists' own logs (sessions/<task>/: `specialistLogs`); none when it had none. */
  readSpecialists(id: string): Promise<SpecialistLog[]>;
}

export interface TaskView {
  task: TaskRecord;
  events: SessionEvent[];
  /** The drawn events are events[start, end). */
  start: number;
  end: number;
  /** Approvals waiting for the person, asked by this task or one of its specialists. */
  approvals: ApprovalRecord[];
  /** One per specialist session of this task, in the order they started. */
  lanes: Lane[];
}

/** A task by id or file name here, else (several machines) another machine's by id. */
export async function findTask(sources: Pick<TaskPageSources, "tasks" | "findElsewhere">, id: string): Promise<TaskRecord | undefined> {
  return sources.tasks.find(id) ?? (await sources.findElsewhere?.(id).catch(() => undefined));
}

export async function readTask(sources: TaskPageSources, id: string, before: string | undefined): Promise<TaskView | undefined> {
  const task = await findTask(sources, id);
  if (!task) return undefined;
  const events = await sources.readEvents(task.id).catch(() => [] as SessionEvent[]);
  const asked = Number(before);
  const end = before !== undefined && Number.isInteger(asked) && asked >= 0 ? Math.min(asked, events.length) : events.length;
  const lanes = lanesOf(task, events, await sources.readSpecialists(task.id).catch(() => []));
  return { task, events, start: Math.max(0, end - WINDOW), end, approvals: approvalsOf(sources.approvals.pending(), task.id), lanes };
}

/** A specialist's session is <task>.<call>.<name>: its approvals belong on its task's page. */
export const approvalsOf = (pending: ApprovalRecord[], task: string) => pending.filter((record) => record.session === task || record.session.startsWith(`${task}.`));

/** One tool call's events, gathered from the whole log by its tool_use id. */
export interface ToolEvents {
  start?: EventOf<"tool_start">;
  end?: EventOf<"tool_end">;
  rest: SessionEvent[];
}

export type ToolIndex = Map<string, ToolEvents>;

/** The tool_use id of a tool call's event (start, end, permission, approval asked or answered). */
const toolIdOf = (event: SessionEvent): string | undefined =>
  event.type === "tool_start" || event.type === "tool_end" || event.type === "permission" || event.type === "approval_requested" || event.type === "approval_answered" ? event.id : undefined;

/** Adds a tool call's event to the index; returns its tool_use id, or undefined for other events. */
export function indexTool(tools: ToolIndex, event: SessionEvent): string | undefined {
  const id = toolIdOf(event);
  if (id === undefined) return undefined;
  const entry = tools.get(id) ?? (tools.set(id, { rest: [] }), tools.get(id)!);
  if (event.type === "tool_start") entry.start = event;
  else if (event.type === "tool_end") entry.end = event;
  else entry.rest.push(event);
  return id;
}

/**
 * The page. Drawn at the log's tail, it is live (`data-live`): /assets/live.js follows
 * `/live?task=ID&after=N` and adds each new event where the page would have drawn it.
 */
export function taskBody(view: TaskView, now: number, csrf: string) {
  const { task, events } = view;
  const tools: ToolIndex = new Map();
  for (const event of events) indexTool(tools, event);
  const base = taskPath(task.id);
  const drawn = new Set<string>();
  const parts = events.slice(view.start, view.end).map((event) => {
    if (event.type === "model_response") return turn(base, event, tools, drawn);
    const id = toolIdOf(event);
    if (id !== undefined) {
      // Drawn with its turn; a call whose turn is further up the log is drawn where it first shows.
      if (drawn.has(id)) return "";
      drawn.add(id);
      return html`<article class="turn">${toolBlock(base, id, tools.get(id)!)}</article>`;
    }
    return other(event);
  });
  // At the log's tail of a task that has not ended: a finished task's page has nothing to follow.
  const live = view.end === events.length && notEnded(task);
  return html`<div id="live"${live ? html` data-live="task" data-task="${task.id}" data-after="${events.length}"` : ""}>
<div id="head">${taskHead(task, events, view.approvals, view.lanes, now, csrf)}</div>
<h2>Session log</h2>
${events.length === 0 ? html`<p class="quiet">No session log yet.</p>` : html`<p class="quiet">Events ${view.start + 1}–${view.end} of ${events.length}${live ? " · new events appear as they happen" : ""}.</p>`}
${view.start > 0 ? html`<p><a class="more" href="${base}?before=${view.start}">Load earlier (${view.start} more)</a></p>` : ""}
<div id="log">${parts}</div>
${view.end < events.length ? html`<p><a class="more" href="${base}">Latest events</a></p>` : ""}
</div>`;
}

export const taskPath = (id: string) => `/tasks/${encodeURIComponent(id)}`;

/** The header: state, model, turns, cost against budget, elapsed, Cancel, the approvals waiting (pinned) and the specialists' lanes. */
export function taskHead(task: TaskRecord, events: SessionEvent[], approvals: ApprovalRecord[], lanes: Lane[], now: number, csrf: string) {
  const responses = events.filter((event): event is EventOf<"model_response"> => event.type === "model_response");
  const spent = Math.max(task.cost_usd, spentIn(events));
  const elapsed = task.started !== undefined ? ago((task.finished ?? now) - task.started) : "not started";
  const base = taskPath(task.id);
  return html`<h1>${task.title || "Task"}</h1>
<p class="quiet"><code>${task.id}</code> · from ${task.origin} · <a class="more" href="${base}/trace">Trace</a></p>
${approvals.map((record) => approvalCard(record, undefined, now, csrf, base))}
<dl class="facts">
<div><dt>State</dt><dd><span class="state ${task.state}">${STATE_WORDS[task.state]}</span>${task.reason ? html` · ${task.reason}` : ""}</dd></div>
<div><dt>Model</dt><dd>${responses.at(-1)?.model ?? task.spec.model}</dd></div>
<div><dt>Turns</dt><dd>${Math.max(task.turns, responses.length)} of ${task.spec.budget.max_turns}</dd></div>
<div><dt>Cost</dt><dd class="${spent >= task.spec.budget.max_usd ? "warn" : ""}">${formatCost(spent)} of ${formatCost(task.spec.budget.max_usd)}</dd></div>
<div><dt>Elapsed</dt><dd>${elapsed}</dd></div>
</dl>
${notEnded(task) ? html`<form method="post" action="${base}/cancel" class="cancel"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit" class="deny">Cancel this task</button></form>` : ""}
${lanesSection(lanes)}`;
}

/** What the live stream sends for events[index]: a block to add at the end, or a tool call's block redrawn. */
export type LiveFragment = { append: string } | { tool: string; html: string };

export function liveFragment(taskId: string, events: SessionEvent[], tools: ToolIndex, index: number): LiveFragment | undefined {
  const event = events[index]!;
  const id = indexTool(tools, event);
  const base = taskPath(taskId);
  if (id !== undefined) return { tool: `tool-${id}`, html: String(toolBlock(base, id, tools.get(id)!)) };
  const block = event.type === "model_response" ? turn(base, event, tools, new Set()) : other(event);
  const text = String(block);
  return text ? { append: text } : undefined;
}


/** A tool call drawn outside its turn: its name and input from whichever of its events says them. */
function toolBlock(base: string, id: string, events: ToolEvents) {
  const first = events.start ?? events.end ?? events.rest[0];
  const name = first && "name" in first ? first.name : first && "tool" in first ? first.tool : "tool";
  return toolCall(base, id, name, events.start?.input, events);
}

function turn(base: string, event: EventOf<"model_response">, tools: ToolIndex, drawn: Set<string>) {
  const uses = event.content.filter((block): block is Extract<ContentBlock, { type: "tool_use" }> => block.type === "tool_use");
  for (const use of uses) drawn.add(use.id);
  return html`<article class="turn"><h3>Turn ${event.turn} <span class="quiet">· ${event.model} · ${formatCost(event.cost_usd)} · ${(event.latency_ms / 1000).toFixed(1)} s</span></h3>
${event.content.map((block) => (block.type === "text" ? html`<p class="text">${block.text}</p>` : ""))}
${uses.map((use) => toolCall(base, use.id, use.name, use.input, tools.get(use.id) ?? { rest: [] }))}
</article>`;
}

function toolCall(base: string, id: string, name: string, input: unknown, events: ToolEvents) {
  const href = `${base}/output/${encodeURIComponent(id)}`;
  const end = events.end;
  const outcome = !end ? "running or not run" : end.interrupted ? "interrupted" : end.is_error ? "error" : "ok";
  return html`<section class="tool" id="tool-${id}"><p class="line"><strong>${name}</strong> <code>${oneLine(input)}</code></p>
${events.rest.map((event) => {
  if (event.type === "permission") return html`<p><span class="chip ${event.action}">${event.action}</span> ${event.kind} <code>${event.target}</code> · ${event.reason}</p>`;
  if (event.type === "approval_requested") return html`<p class="approval">Asked: ${event.summary} · ${event.reason}</p>`;
  if (event.type === "approval_answered") return html`<p class="approval">Answered: ${event.decision} by ${event.by}${event.reason ? html` · ${event.reason}` : ""}</p>`;
  return "";
})}
${end ? html`<p class="quiet"><span class="outcome ${outcome}">${outcome}</span> · ${(end.duration_ms / 1000).toFixed(1)} s${end.cost_usd ? html` · ${formatCost(end.cost_usd)}` : ""}</p>
${output(end.output, href)}
${(end.specialists ?? []).map(report)}` : ""}
</section>`;
}

/** Output collapsed, cut to 4 KB (on a character boundary), with its full size. */
function output(text: string, link: string) {
  const bytes = Buffer.byteLength(text);
  const cut = bytes > OUTPUT_CUT ? cutTo(text, OUTPUT_CUT) : text;
  return html`<details><summary>Output · ${size(bytes)}${bytes > OUTPUT_CUT ? html` (first ${size(OUTPUT_CUT)} shown)` : ""}</summary><pre>${cut}</pre>${bytes > OUTPUT_CUT ? html`<p><a class="more" href="${link}">Show all ${size(bytes)}</a></p>` : ""}</details>`;
}

function cutTo(text: string, bytes: number): string {
  let used = 0;
  let index = 0;
  for (const char of text) {
    used += Buffer.byteLength(char);
    if (used > bytes) break;
    index += char.length;
  }
  return text.slice(0, index);
}

/** The specialists as lanes: stacked on a phone, side by side where the page is wider (style.ts). */
function lanesSection(lanes: Lane[]) {
  if (lanes.length === 0) return "";
  return html`<section aria-labelledby="lanes"><h2 id="lanes">Specialists</h2>
<ol class="lanes">${lanes.map(
    (lane) => html`<li class="lane"><p><strong>${lane.name}</strong> <span class="chip ${lane.state}">${lane.state}</span></p>
<p class="quiet">${lane.part} · ${lane.turns} turns · ${formatCost(lane.cost_usd)}</p>
${lane.report === undefined ? html`<p class="quiet">No report yet.</p>` : html`<details><summary>Report</summary><pre>${cutTo(lane.report, OUTPUT_CUT)}</pre></details>`}</li>`,
  )}</ol></section>`;
}

function report(r: SpecialistReport) {
  return html`<details class="report"><summary>${r.name} · ${r.status} · ${r.turns} turns · ${formatCost(r.cost_usd)}</summary><pre>${cutTo(r.report, OUTPUT_CUT)}</pre></details>`;
}

function other(event: SessionEvent) {
  switch (event.type) {
    case "session_start":
      return html`<p class="event">Started: ${event.task.title}</p>`;
    case "resumed":
      return html`<p class="event">Resumed (attempt ${event.attempt})</p>`;
    case "user":
      return html`<article class="turn user"><h3>Message</h3><p class="text">${event.text}</p></article>`;
    case "model_retry":
      return html`<p class="event">Model call retried (attempt ${event.attempt}, after ${(event.delay_ms / 1000).toFixed(1)} s): ${event.reason}</p>`;
    case "budget_warning":
      return html`<p class="event warn">Budget warning: ${budgetText(event)}</p>`;
    case "checkpoint":
      return html`<details class="event"><summary>Compacted: ${event.dropped_turns} turns dropped (${event.input_tokens_before} input tokens before, ${event.method}, ${formatCost(event.cost_usd)})</summary><pre>${event.summary}</pre></details>`;
    case "plan":
      return html`<div class="event">Plan${report(event.report)}</div>`;
    case "review_start":
      return html`<p class="event">Review round ${event.round}: ${event.specialists.join(", ")}</p>`;
    case "review":
      return html`<div class="event">Review round ${event.round} critiques${event.critiques.map(report)}</div>`;
    case "warning":
      return html`<p class="event warn">${event.message}</p>`;
    case "grant":
      return html`<p class="event">Allowed for this task: ${event.kind} <code>${event.target}</code></p>`;
    case "session_end":
      return html`<details class="event"><summary>Ended: ${event.status}${event.reason ? html` · ${event.reason}` : ""} · ${event.turns} turns · ${formatCost(event.cost_usd)}</summary><pre>${cutTo(event.answer, OUTPUT_CUT)}</pre></details>`;
    default:
      return "";
  }
}

/** The whole output of one tool call, for "show all"; undefined when the log has no such call. */
export function fullOutput(events: SessionEvent[], toolId: string): string | undefined {
  return events.find((event): event is EventOf<"tool_end"> => event.type === "tool_end" && event.id === toolId)?.output;
}
