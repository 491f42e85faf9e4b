import { html } from "hono/html";
import type { EventOf, SessionEvent, Usage } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { formatCost, oneLine, runningNow } from "./format.ts";
import { specialistName, type SpecialistLog } from "./lanes.ts";
import { findTask, taskPath, type TaskPageSources } from "./task-page.ts";

/**
 * The Trace page: a task's model calls (latency, tokens, cache reads and writes, cost) and tool
 * calls (duration, outcome), its specialists' with them, as a waterfall: one row per call in the
 * order they started, each a bar on a time axis the drawn rows share. Totals count every call.
 *
 * Only the last 100 calls are drawn and "load earlier" (`?before=N`) draws the 100 before call N,
 * as the Task page does with events: a 5,000-event log is about 3,000 calls, and a row is a label
 * and a small SVG. The axis spans the drawn calls only, so on a long task a window's bars are still
 * wide enough to read.
 */

export const CALLS_SHOWN = 100;
/** The SVG's own width: a bar's x and width are in thousandths of the drawn span. */
const SCALE = 1000;

interface Span {
  /** "main", or the specialist's name. */
  who: string;
  start: number;
  end: number;
}

export type Call =
  | (Span & { kind: "model"; turn: number; model: string; latency_ms: number; usage: Usage; cost_usd: number })
  | (Span & { kind: "tool"; name: string; input: unknown; outcome: "ok" | "error" | "interrupted" | "running" | "unfinished"; duration_ms?: number });

export interface Totals {
  model: number;
  tools: number;
  input: number;
  output: number;
  cache_read: number;
  cache_write: number;
  cost_usd: number;
  /** Of cost_usd, what the specialists' own model calls cost. */
  specialists_usd: number;
}

export interface TraceView {
  task: TaskRecord;
  /** Every call, by start time; the drawn ones are calls[start, end). */
  calls: Call[];
  start: number;
  end: number;
  totals: Totals;
}

export async function readTrace(sources: TaskPageSources, id: string, before: string | undefined, now: number): Promise<TraceView | undefined> {
  const task = await findTask(sources, id);
  if (!task) return undefined;
  const [events, logs] = await Promise.all([sources.readEvents(task.id).catch(() => [] as SessionEvent[]), sources.readSpecialists(task.id).catch(() => [] as SpecialistLog[])]);
  const open = runningNow(task);
  const calls = callsOf(events, "main", open, now);
  for (const log of logs) {
    calls.push(...callsOf(log.events, specialistName(log), open && !log.events.some((event) => event.type === "session_end"), now));
  }
  calls.sort((a, b) => a.start - b.start); // stable: a turn's calls keep their order
  const asked = Number(before);
  const end = before !== undefined && Number.isInteger(asked) && asked >= 0 ? Math.min(asked, calls.length) : calls.length;
  return { task, calls, start: Math.max(0, end - CALLS_SHOWN), end, totals: totalsOf(calls) };
}

/**
 * One session's calls. A model call ran for its latency before its response was logged; a tool
 * call from its start to its end (a call with only an end: its duration back from the end). A
 * tool call with no end runs to `now` while its session can still be running, else is a point.
 */
function callsOf(events: readonly SessionEvent[], who: string, open: boolean, now: number): Call[] {
  const calls: Call[] = [];
  const ends = new Map<string, EventOf<"tool_end">>();
  for (const event of events) if (event.type === "tool_end") ends.set(event.id, event);
  const started = new Set<string>();
  for (const event of events) {
    if (event.type === "model_response") {
      calls.push({ kind: "model", who, start: event.at - event.latency_ms, end: event.at, turn: event.turn, model: event.model, latency_ms: event.latency_ms, usage: event.usage, cost_usd: event.cost_usd });
    } else if (event.type === "tool_start" && !started.has(event.id)) {
      started.add(event.id);
      const end = ends.get(event.id);
      const outcome = end ? outcomeOf(end) : open ? "running" : "unfinished";
      const stop = end ? Math.max(end.at, event.at) : open ? Math.max(now, event.at) : event.at;
      calls.push({ kind: "tool", who, start: event.at, end: stop, name: event.name, input: event.input, outcome, ...(end ? { duration_ms: end.duration_ms } : {}) });
    } else if (event.type === "tool_end" && !started.has(event.id)) {
      started.add(event.id);
      calls.push({ kind: "tool", who, start: event.at - event.duration_ms, end: event.at, name: event.name, input: undefined, outcome: outcomeOf(event), duration_ms: event.duration_ms });
    }
  }
  return calls;
}

const outcomeOf = (end: EventOf<"tool_end">) => (end.interrupted ? "interrupted" : end.is_error ? "error" : "ok");

function totalsOf(calls: readonly Call[]): Totals {
  const totals: Totals = { model: 0, tools: 0, input: 0, output: 0, cache_read: 0, cache_write: 0, cost_usd: 0, specialists_usd: 0 };
  for (const call of calls) {
    if (call.kind === "tool") {
      totals.tools++;
      continue;
    }
    totals.model++;
    totals.input += call.usage.input_tokens;
    totals.output += call.usage.output_tokens;
    totals.cache_read += call.usage.cache_read_input_tokens;
    totals.cache_write += call.usage.cache_creation_input_tokens;
    totals.cost_usd += call.cost_usd;
    if (call.who !== "main") totals.specialists_usd += call.cost_usd;
  }
  return totals;
}

/** Of all input tokens (uncached, read from the cache, written to it), the share read from the cache. */
function cacheShare(totals: Totals): string {
  const all = totals.input + totals.cache_read + totals.cache_write;
  return all === 0 ? "none" : `${Math.round((totals.cache_read / all) * 100)}%`;
}

export function traceBody(view: TraceView) {
  const { task, totals } = view;
  const base = taskPath(task.id);
  const drawn = view.calls.slice(view.start, view.end);
  const from = Math.min(...drawn.map((call) => call.start));
  const span = Math.max(1, Math.max(...drawn.map((call) => call.end)) - from);
  return html`<h1>Trace: ${task.title || "Task"}</h1>
<p class="quiet"><code>${task.id}</code> · <a class="more" href="${base}">Back to the task</a></p>
<dl class="facts">
<div><dt>Model calls</dt><dd>${totals.model}</dd></div>
<div><dt>Tool calls</dt><dd>${totals.tools}</dd></div>
<div><dt>Tokens in</dt><dd>${totals.input}</dd></div>
<div><dt>Tokens out</dt><dd>${totals.output}</dd></div>
<div><dt>Cache read / written</dt><dd>${totals.cache_read} / ${totals.cache_write}</dd></div>
<div><dt>Cache hits</dt><dd>${cacheShare(totals)}</dd></div>
<div><dt>Cost</dt><dd>${formatCost(totals.cost_usd)}${totals.specialists_usd > 0 ? html` (specialists ${formatCost(totals.specialists_usd)})` : ""}</dd></div>
</dl>
<h2>Waterfall</h2>
${drawn.length === 0
  ? html`<p class="quiet">No model or tool calls yet.</p>`
  : html`<p class="quiet">Calls ${view.start + 1}–${view.end} of ${view.calls.length}, in the order they started. The bars share one time axis, from the first drawn call's start (0 s) to ${seconds(span)}.</p>`}
${view.start > 0 ? html`<p><a class="more" href="${base}/trace?before=${view.start}">Load earlier (${view.start} more)</a></p>` : ""}
${drawn.length ? html`<ol class="waterfall">${drawn.map((call) => row(call, from, span))}</ol>` : ""}
${view.end < view.calls.length ? html`<p><a class="more" href="${base}/trace">Latest calls</a></p>` : ""}`;
}

/** A label above its bar: it wraps on a phone, and the bar scales with the page (viewBox, width 100%). */
function row(call: Call, from: number, span: number) {
  const x = Math.min(SCALE - 2, ((call.start - from) / span) * SCALE);
  const width = Math.max(2, Math.min(SCALE - x, ((call.end - call.start) / span) * SCALE));
  const who = call.who === "main" ? "" : html` · <span class="who">${call.who}</span>`;
  const label =
    call.kind === "model"
      ? html`<strong>Turn ${call.turn}</strong>${who} · ${call.model} · ${seconds(call.latency_ms)} · in ${call.usage.input_tokens} · out ${call.usage.output_tokens} · cache read ${call.usage.cache_read_input_tokens} · written ${call.usage.cache_creation_input_tokens} · ${formatCost(call.cost_usd)}`
      : html`<strong>${call.name}</strong>${who}${call.input === undefined ? "" : html` <code>${oneLine(call.input)}</code>`} · ${call.duration_ms === undefined ? call.outcome : html`${seconds(call.duration_ms)} · <span class="outcome ${call.outcome}">${call.outcome}</span>`}`;
  const kind = `${call.kind}${call.who === "main" ? "" : " specialist"}${call.kind === "tool" && call.outcome !== "ok" ? ` ${call.outcome}` : ""}`;
  return html`<li class="call"><p>${label} <span class="quiet">at ${seconds(call.start - from)}</span></p>
<svg class="span" viewBox="0 0 ${SCALE} 10" preserveAspectRatio="none" role="img" aria-label="from ${seconds(call.start - from)} to ${seconds(call.end - from)}"><rect class="track" width="${SCALE}" height="10"/><rect class="bar ${kind}" x="${x.toFixed(1)}" y="0" width="${width.toFixed(1)}" height="10"/></svg></li>`;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
