// The texts behind the bot's read-only commands (/tasks, /status, /trace, /help), as Telegram
// HTML; /budget's and the digest's spend line are bot/spend.ts's. Pure functions of what they are
// given. Every text is valid HTML by construction (fixed tags around escaped text) and stays
// under Telegram's 4,096 characters: long timelines keep their start and their latest lines.

import { formatDuration, spentIn, type EventOf, type SessionEvent, type SpecialistReport } from "../runtime/index.ts";
import type { TaskRecord, TaskState } from "../tasks/state.ts";
import { escapeHtml, formatCost, formatTokens } from "./format.ts";
import { spendLine, type SpendSummary } from "./spend.ts";

/** Below Telegram's 4,096, leaving room for a caller's extra line. */
const MAX_CHARS = 4000;
/** How many tasks /tasks lists (the active ones always). */
export const TASKS_SHOWN = 10;
const RECENT_LINES = 5;

const ICONS: Record<TaskState, string> = { queued: "🕒", running: "⏳", waiting_approval: "✋", done: "✅", failed: "❌", cancelled: "🚫" };
const STATE_WORDS: Record<TaskState, string> = { queued: "queued", running: "running", waiting_approval: "waiting for approval", done: "done", failed: "failed", cancelled: "cancelled" };

/** `tasks`: at least the active ones and the newest TASKS_SHOWN; `total`: how many there are in all. */
/** `machines`: with several machines, a line on them, and the machine each task is on. */
export function tasksText(tasks: TaskRecord[], now: number, total = tasks.length, machines?: { machineOf(id: string): string | undefined; machines: string }): string {
  const head = ["<b>Tasks</b>", ...(machines ? [machines.machines] : [])];
  if (tasks.length === 0) return machines ? [...head, "No tasks on any machine yet. Just type a message and it becomes one."].join("\n") : "No tasks yet. Just type a message and it becomes one.";
  const active = (task: TaskRecord) => (task.state === "running" || task.state === "waiting_approval" ? 0 : 1);
  const shown = [...tasks].sort((a, b) => active(a) - active(b) || b.created - a.created).slice(0, TASKS_SHOWN);
  const on = (task: TaskRecord) => {
    const machine = machines?.machineOf(task.id);
    return machine ? ` · on ${clip(machine, 40)}` : "";
  };
  const lines = shown.map((task) => `${ICONS[task.state]} <b>${clip(task.title, 80) || "Task"}</b>\n    <code>${clip(task.id, 60)}</code> · ${STATE_WORDS[task.state]}${on(task)} · ${span(now - task.created)} ago · ${formatCost(task.cost_usd)}`);
  const older = total - shown.length;
  const footer = `${older > 0 ? `${older} older not shown. ` : ""}/status ID for details, /trace ID for the timeline.`;
  return fit(head, lines, ["", footer]);
}

export function statusText(task: TaskRecord | undefined, id: string, events: SessionEvent[], now: number): string {
  if (!task) return `No task <code>${clip(id, 64) || "?"}</code>. /tasks lists the latest ones.`;
  const totals = totalsOf(events);
  const times = [`Created ${span(now - task.created)} ago`];
  if (task.started !== undefined) times.push(`started ${span(now - task.started)} ago`);
  if (task.finished !== undefined) times.push(`finished ${span(now - task.finished)} ago`);
  // The record's turns and cost are written when a task finishes; while it runs, the log knows more.
  const turns = Math.max(task.turns, totals.calls);
  const cost = Math.max(task.cost_usd, totals.usd);
  const head = [
    `${ICONS[task.state]} <b>${clip(task.title, 120) || "Task"}</b>`,
    `<code>${clip(task.id, 60)}</code> · ${STATE_WORDS[task.state]} · from ${clip(task.origin, 40)}`,
    times.join(" · "),
    `${turns} turns · ${formatTokens(totals.input)} tokens in · ${formatTokens(totals.output)} out`,
    `${formatCost(cost)} of ${formatCost(task.spec.budget.max_usd)} (${percent(cost, task.spec.budget.max_usd)})`,
  ];
  if ((task.state === "failed" || task.state === "cancelled") && task.reason) head.push(`Reason: <i>${clip(task.reason, 400)}</i>`);
  const pending = pendingApproval(events);
  if (task.state === "waiting_approval" && pending) head.push(`Waiting for your answer: ${clip(pending.summary, 160)} (/approvals)`);
  const recent = timeline(events).slice(-RECENT_LINES);
  if (recent.length === 0) return [...head, task.state === "queued" ? "Not started yet." : "No session log yet."].join("\n");
  return fit([...head, "", "<b>Recent</b>"], recent, ["", `Full timeline: /trace ${clip(task.id, 60)}`]);
}

export function traceText(task: TaskRecord | undefined, id: string, events: SessionEvent[]): string {
  const start = events[0]?.type === "session_start" ? events[0] : undefined;
  if (!task && !start) return `No session for <code>${clip(id, 64) || "?"}</code>. /tasks lists the latest ones.`;
  if (events.length === 0) return `<code>${clip(id, 64)}</code> has no session yet (${STATE_WORDS[task?.state ?? "queued"]}).`;
  const totals = totalsOf(events);
  const title = task?.title ?? start?.task.title ?? "";
  const head = [
    `<b>Trace</b> <code>${clip(task?.id ?? id, 60)}</code>${task ? ` · ${STATE_WORDS[task.state]}` : ""}`,
    `<b>${clip(title, 120) || "Task"}</b>`,
    `${totals.calls} model calls · ${formatTokens(totals.input)} in · ${formatTokens(totals.output)} out · ${formatCost(totals.usd)} · ${totals.tools} tool calls${totals.toolErrors ? ` (${totals.toolErrors} failed)` : ""}`,
    "",
  ];
  return fit(head, timeline(events));
}

/** For setMyCommands: lowercase names without the slash; descriptions stay under Telegram's 256. */
export const BOT_COMMANDS: Array<{ command: string; description: string }> = [
  { command: "tasks", description: "The latest tasks, running ones first" },
  { command: "status", description: "One task: state, cost and recent steps (/status ID)" },
  { command: "cancel", description: "Stop a task at its next safe point (/cancel ID)" },
  { command: "trace", description: "A task's timeline: model calls, tools, permissions, approvals (/trace ID)" },
  { command: "approvals", description: "Approvals waiting for your answer" },
  { command: "memory", description: "What Nightshift remembers and its last changes; /memory undo restores the previous version" },
  { command: "digest", description: "The digest now: tasks finished and failed, spend, what memory learned, what waits for you" },
  { command: "budget", description: "Spending today and this month against the budget" },
  { command: "dashboard", description: "A one-time login link for the dashboard (it works once, for 10 minutes)" },
  { command: "help", description: "What you can send and what each command does" },
];

const ARGUMENTS: Record<string, string> = { status: " ID", cancel: " ID", trace: " ID" };

export function helpText(): string {
  return [
    "<b>Nightshift</b>",
    "Type a message: it becomes a new task. You get a progress message, then the answer.",
    "Reply to a task's message: once it has finished, the task continues with what you wrote.",
    "Send a document: it goes into a new task's working folder, and its caption says what to do. Sent as a reply, it goes to that task.",
    "",
    ...BOT_COMMANDS.map(({ command, description }) => `/${command}${ARGUMENTS[command] ?? ""} — ${escapeHtml(description.replace(/ \(\/\w+ ID\)$/, ""))}`),
    "",
    "An ID can be its last few characters. Without one, a command means the task you reply to, or the latest.",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// The timeline
// ---------------------------------------------------------------------------------------------

interface ToolCall {
  name: string;
  input: unknown;
  started: boolean;
  permissions: Array<EventOf<"permission">>;
  answers: Array<EventOf<"approval_answered">>;
  end?: EventOf<"tool_end">;
}

/**
 * One line per event worth seeing, each prefixed with its time since the session started. A tool
 * call is one line holding its permission decisions and its outcome, placed where it started (or
 * where it was refused, if it never started).
 */
function timeline(events: SessionEvent[]): string[] {
  const origin = events[0]?.at ?? 0;
  const entries: Array<{ event: SessionEvent; text?: string; call?: ToolCall }> = [];
  const inputs = new Map<string, unknown>();
  const open = new Map<string, ToolCall>();
  const callFor = (id: string, name: string) => open.get(id) ?? open.set(id, { name, input: inputs.get(id), started: false, permissions: [], answers: [] }).get(id)!;
  let model = "";
  for (const event of events) {
    if (event.type === "permission") callFor(event.id, event.tool).permissions.push(event);
    else if (event.type === "approval_answered") callFor(event.id, "").answers.push(event);
    else if (event.type === "tool_start") {
      const call = Object.assign(callFor(event.id, event.name), { name: event.name, input: event.input, started: true });
      entries.push({ event, call });
    } else if (event.type === "tool_end") {
      const call = Object.assign(callFor(event.id, event.name), { name: event.name, end: event });
      open.delete(event.id);
      if (!call.started) entries.push({ event, call });
    } else if (event.type === "model_response") {
      for (const block of event.content) if (block.type === "tool_use") inputs.set(block.id, block.input);
    }
    const text = eventLine(event, event.type === "model_response" && event.model !== model);
    if (event.type === "model_response") model = event.model;
    if (text) entries.push({ event, text });
  }
  return entries.map(({ event, text, call }) => `<code>+${span(event.at - origin)}</code> ${withLabel(event, call ? toolLine(call) : (text ?? ""))}`);
}

/** The line for an event that is not part of a tool call's line. */
function eventLine(event: SessionEvent, showModel: boolean): string | undefined {
  switch (event.type) {
    case "session_start": {
      const { budget } = event.task;
      return `▶ start · ${clip(event.task.model, 40)} · budget ${formatCost(budget.max_usd)}, ${budget.max_turns} turns, ${formatDuration(budget.timeout_ms)}`;
    }
    case "model_response": {
      const { input_tokens, cache_read_input_tokens: read, cache_creation_input_tokens: written, output_tokens } = event.usage;
      const cache = [read ? `${formatTokens(read)} cached` : "", written ? `${formatTokens(written)} written` : ""].filter(Boolean).join(", ");
      return `· turn ${event.turn}${showModel ? ` ${clip(event.model, 40)}` : ""}: ${formatTokens(input_tokens + read + written)} in${cache ? ` (${cache})` : ""} · ${formatTokens(output_tokens)} out · ${formatCost(event.cost_usd)}`;
    }
    case "approval_requested":
      return `❓ asked: ${clip(event.summary, 120)} (${clip(event.reason, 100)})`;
    case "approval_answered":
      return `→ ${ANSWERS[event.decision]}${event.by !== "nightshift" ? ` by ${clip(event.by, 40)}` : ""}${event.reason && event.decision !== "unreachable" ? `: ${clip(event.reason, 100)}` : ""}`;
    case "grant":
      return `✓ allowed for this task: ${event.kind} <code>${clip(event.target, 80)}</code>`;
    case "checkpoint":
      return `⇣ compacted (${event.method}): ${event.dropped_turns} turns summarized from ${formatTokens(event.input_tokens_before)} tokens · ${formatCost(event.cost_usd)}`;
    case "budget_warning":
      return `⚠ budget ${event.kind.replace("_", " ")} at ${percent(event.used, event.limit)} (${amount(event.kind, event.used)} of ${amount(event.kind, event.limit)})`;
    case "resumed":
      return `↻ resumed (attempt ${event.attempt})`;
    case "user":
      return `✉ follow-up: <i>${clip(event.text, 120)}</i>`;
    case "model_retry":
      return `⚠ model retry ${event.attempt} in ${formatDuration(event.delay_ms)}: ${clip(event.reason, 100)}`;
    case "warning":
      return `⚠ ${clip(event.message, 160)}`;
    case "session_end":
      return `■ ${event.status}${event.reason ? `: ${clip(event.reason, 200)}` : ""} · ${event.turns} turns · ${formatCost(event.cost_usd)}`;
    case "plan":
      return `🗺 plan by ${specialistsText([event.report])}`;
    case "review_start":
      return `🔍 review round ${event.round}: ${clip(event.specialists.join(", "), 100)}`;
    case "review":
      return `🔍 critiques, round ${event.round}: ${specialistsText(event.critiques)}`;
    case "permission":
    case "tool_start":
    case "tool_end":
      return undefined;
    default: // a kind this version does not know (specialist runs, say): named, not dropped
      return `· ${clip((event as { type: string }).type, 40)}`;
  }
}

function toolLine(call: ToolCall): string {
  const parts = [`› ${clip(call.name, 40)} <code>${clip(summarizeInput(call.input), 80)}</code>`];
  const denied = call.permissions.find((p) => p.action === "deny");
  const answer = call.answers.at(-1);
  if (denied) parts.push(`⛔ denied by ${clip(denied.reason, 100)}`);
  else if (answer) parts.push(`asked → ${ANSWERS[answer.decision]}`);
  else if (call.permissions.length > 0) parts.push(`allowed by ${clip(call.permissions[0]!.reason, 100)}${call.permissions.length > 1 ? ` (+${call.permissions.length - 1})` : ""}`);
  const end = call.end;
  if (!end) parts.push("no result recorded");
  else if (end.interrupted) parts.push("interrupted");
  else if (!call.started) parts.push(`not run: ${clip(firstLine(end.output), 100)}`);
  else parts.push(end.is_error ? `✗ error after ${formatDuration(end.duration_ms)}: ${clip(firstLine(end.output), 100)}` : `ok ${formatDuration(end.duration_ms)}`);
  if (end?.specialists?.length) parts.push(specialistsText(end.specialists));
  return parts.join(" · ");
}

/** `reviewer ✓ 3 turns $0.0123, challenger ✗ failed` */
function specialistsText(reports: SpecialistReport[]): string {
  return reports.map((report) => `${clip(report.name, 30)} ${report.status === "done" ? "✓" : `✗ ${report.status}`} ${report.turns} turns ${formatCost(report.cost_usd)}`).join(", ");
}

const ANSWERS: Record<EventOf<"approval_answered">["decision"], string> = {
  once: "allowed once",
  task: "allowed for this task",
  deny: "denied",
  expired: "expired unanswered",
  unreachable: "denied: nobody could be asked",
};

/** Specialists are not recorded yet; an event that names one (`specialist` or `label`) shows it. */
function withLabel(event: SessionEvent, text: string): string {
  const { specialist, label } = event as { specialist?: unknown; label?: unknown };
  const name = typeof specialist === "string" ? specialist : typeof label === "string" ? label : "";
  return name ? `[${clip(name, 30)}] ${text}` : text;
}

function summarizeInput(input: unknown): string {
  if (input && typeof input === "object") {
    const record = input as Record<string, unknown>;
    const main = record.command ?? record.path ?? record.url ?? record.pattern ?? record.question;
    if (typeof main === "string") return main;
    if (Array.isArray(record.names)) return record.names.join(", ");
  }
  return JSON.stringify(input) ?? "";
}

function totalsOf(events: SessionEvent[]) {
  const totals = { calls: 0, input: 0, output: 0, tools: 0, toolErrors: 0 };
  for (const event of events) {
    if (event.type === "model_response") {
      const usage = event.usage;
      totals.calls++;
      totals.input += usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens;
      totals.output += usage.output_tokens;
    } else if (event.type === "tool_end") {
      totals.tools++;
      if (event.is_error) totals.toolErrors++;
    }
  }
  return { ...totals, usd: spentIn(events) };
}

function pendingApproval(events: SessionEvent[]): EventOf<"approval_requested"> | undefined {
  const answered = new Set(events.flatMap((event) => (event.type === "approval_answered" ? [event.approval] : [])));
  return events.findLast((event): event is EventOf<"approval_requested"> => event.type === "approval_requested" && !answered.has(event.approval));
}

// ---------------------------------------------------------------------------------------------
// Small pieces
// ---------------------------------------------------------------------------------------------

/** Joins head, body and tail; if too long, keeps the body's first and latest lines around a skip note. */
function fit(head: string[], body: string[], tail: string[] = []): string {
  const whole = [...head, ...body, ...tail].join("\n");
  if (whole.length <= MAX_CHARS) return whole;
  let room = MAX_CHARS - [...head, ...tail].join("\n").length - 80; // 80: the skip note and its line breaks
  const first: string[] = [];
  for (let headRoom = room * 0.3; first.length < body.length && body[first.length]!.length + 1 <= headRoom; ) {
    const line = body[first.length]!;
    first.push(line);
    headRoom -= line.length + 1;
    room -= line.length + 1;
  }
  const last: string[] = [];
  for (let i = body.length - 1; i >= first.length && body[i]!.length + 1 <= room; i--) {
    last.unshift(body[i]!);
    room -= body[i]!.length + 1;
  }
  const skipped = body.length - first.length - last.length;
  return [...head, ...first, `<i>… ${skipped} ${skipped === 1 ? "line" : "lines"} skipped …</i>`, ...last, ...tail].join("\n");
}

/** One line of at most `chars` code points, escaped. */
function clip(text: string, chars: number): string {
  const points = Array.from(text.replace(/\s+/g, " ").trim());
  return escapeHtml(points.length > chars ? `${points.slice(0, chars - 1).join("")}…` : points.join(""));
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0] ?? "";
}

/** 12s, 3m, 1h05m, 2d. */
function span(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h${String(Math.floor(seconds / 60) % 60).padStart(2, "0")}m`;
  return `${Math.floor(seconds / 86_400)}d`;
}

function percent(used: number, limit: number): string {
  return limit > 0 && Number.isFinite(limit) ? `${Math.round((used / limit) * 100)}%` : "no limit";
}

/** A budget's use or limit in its unit: dollars, a duration, or a count of turns. */
export function amount(kind: EventOf<"budget_warning">["kind"], value: number): string {
  return kind === "usd" || kind === "daily_usd" ? formatCost(value) : kind === "time" ? formatDuration(value) : String(value);
}

// ---------------------------------------------------------------------------------------------
// Memory and the digest
// ---------------------------------------------------------------------------------------------

/** A consolidator run as /memory and the digest show it. */
export interface MemoryRunView {
  at: number;
  status: string;
  entries: number;
  changes: string[];
  problem?: string;
}

export interface MemoryView {
  /** MEMORY.md as it is on disk. */
  text: string;
  bytes: number;
  capBytes: number;
  entries: number;
  overCap?: string;
  runs: MemoryRunView[];
}

/** /memory: the file (cut for Telegram, saying so), its size against the cap, the last changes. */
export function memoryText(view: MemoryView, now: number): string {
  const lines = [`🧠 <b>Memory</b>: ${view.entries} entries, ${(view.bytes / 1024).toFixed(1)} of ${(view.capBytes / 1024).toFixed(0)} KB`];
  if (view.overCap) lines.push(`⚠️ ${escapeHtml(view.overCap)}`);
  const body = view.text.trim();
  const shown = body.length > 2500 ? `${body.slice(0, 2500)}\n… (${(body.length - 2500).toLocaleString("en")} more characters in MEMORY.md)` : body;
  lines.push(body ? `<pre>${escapeHtml(shown)}</pre>` : "(empty so far: notes from tasks are consolidated into it each night)");
  const last = view.runs.filter((run) => run.status !== "nothing-new").at(-1);
  if (last) {
    // A run that kept nothing changed nothing: undo would take back the change before it, so it is not offered for this one.
    const changed = last.status === "applied" && last.changes.length > 0;
    lines.push(`<b>${changed ? "Last change" : "Last run"}</b> ${span(now - last.at)} ago: ${escapeHtml(runSummary(last))}`);
    for (const change of last.changes.slice(0, 8)) lines.push(`• ${escapeHtml(clipPlain(change, 200))}`);
    if (changed) lines.push("/memory undo restores the version before it.");
  }
  return clipMessage(lines.join("\n"));
}

export function undoText(result: { restored: string } | { nothing: true }): string {
  if ("nothing" in result) return "There is no earlier version of MEMORY.md to go back to.";
  return `↩️ MEMORY.md is back to its previous version (the one it replaced is kept in memory-history/, so this can be undone too).`;
}

function runSummary(run: MemoryRunView): string {
  switch (run.status) {
    case "applied":
      if (run.changes.length === 0) return `nothing worth keeping in ${run.entries} journal ${run.entries === 1 ? "entry" : "entries"}`;
      return `${run.changes.length} change${run.changes.length === 1 ? "" : "s"} from ${run.entries} journal ${run.entries === 1 ? "entry" : "entries"}`;
    case "rejected":
      return `the consolidator's edits were rejected, memory unchanged: ${run.problem ?? "no reason"}`;
    case "failed":
      return `the consolidator failed, memory unchanged: ${run.problem ?? "no reason"}`;
    default:
      return "nothing new";
  }
}

export interface DigestView {
  now: number;
  /** Tasks that finished since the last digest (or the last day). */
  finished: TaskRecord[];
  /** Tasks queued, running or waiting for an approval now. */
  active: TaskRecord[];
  pendingApprovals: Array<{ id: string; summary: string; session: string }>;
  spend: SpendSummary;
  limits: { dailyUsd: number; perTaskUsd: number };
  /** Consolidator runs since the last digest. */
  runs: MemoryRunView[];
  overCap?: string;
  /** Several machines: the machine each finished task ran on, by id; named when more than one ran tasks. */
  machines?: Record<string, string>;
}

/** The daily digest (Telegram HTML): what finished and failed, spend, what memory learned, what waits. */
export function digestText(view: DigestView): string {
  const done = view.finished.filter((task) => task.state === "done");
  const failed = view.finished.filter((task) => task.state !== "done");
  const cost = view.finished.reduce((sum, task) => sum + task.cost_usd, 0);
  const lines = [`📋 <b>Digest</b> · ${escapeHtml(new Date(view.now).toLocaleDateString("en-GB", { weekday: "long", day: "numeric", month: "long" }))}`];
  lines.push(`<b>Tasks</b>: ${done.length} done, ${failed.length} failed or cancelled · ${formatCost(cost)}`);
  const ranOn = machineCounts(view.finished, view.machines);
  if (ranOn.size > 1) lines.push(`<b>Machines</b>: ${[...ranOn].map(([machine, count]) => `${escapeHtml(machine)} ${count}`).join(", ")}`);
  const where = (task: TaskRecord) => (ranOn.size > 1 && view.machines?.[task.id] ? ` · ${escapeHtml(view.machines[task.id]!)}` : "");
  for (const task of [...failed, ...done].slice(0, 8)) lines.push(`${task.state === "done" ? "✅" : task.state === "cancelled" ? "⏹" : "❌"} ${escapeHtml(clipPlain(task.title, 80))}${where(task)}${task.state !== "done" && task.reason ? ` — ${escapeHtml(clipPlain(task.reason, 100))}` : ""}`);
  if (view.finished.length > 8) lines.push(`… and ${view.finished.length - 8} more (/tasks)`);
  lines.push(spendLine(view.spend, view.limits));
  const learned = view.runs.filter((run) => run.status !== "nothing-new");
  if (learned.length === 0) lines.push("<b>Memory</b>: nothing new");
  for (const run of learned) {
    lines.push(`<b>Memory</b>: ${escapeHtml(runSummary(run))}`);
    for (const change of run.changes.slice(0, 6)) lines.push(`• ${escapeHtml(clipPlain(change, 160))}`);
  }
  if (view.overCap) lines.push(`⚠️ ${escapeHtml(view.overCap)}`);
  if (view.pendingApprovals.length) {
    lines.push(`<b>Waiting for you</b>: ${view.pendingApprovals.length} approval${view.pendingApprovals.length === 1 ? "" : "s"} (/approvals)`);
    for (const approval of view.pendingApprovals.slice(0, 5)) lines.push(`🔐 ${escapeHtml(clipPlain(approval.summary, 120))}`);
  }
  if (view.active.length) lines.push(`<b>Running or queued</b>: ${view.active.map((task) => escapeHtml(clipPlain(task.title, 40))).join(", ")}`);
  return clipMessage(lines.join("\n"));
}

/** How many of the finished tasks each machine ran, most first. */
function machineCounts(finished: TaskRecord[], machines: Record<string, string> | undefined): Map<string, number> {
  const counts = new Map<string, number>();
  for (const task of finished) {
    const machine = machines?.[task.id];
    if (machine) counts.set(machine, (counts.get(machine) ?? 0) + 1);
  }
  return new Map([...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

/** Telegram HTML as plain text, for the terminal. */
export function htmlToPlain(html: string): string {
  return html.replace(/<[^>]+>/g, "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
}

function clipPlain(text: string, limit: number): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > limit ? `${line.slice(0, limit - 1)}…` : line;
}

/** Under Telegram's 4,096 characters, cut at a line. */
function clipMessage(html: string): string {
  if (html.length <= 4000) return html;
  const cut = html.lastIndexOf("\n", 3900);
  return `${html.slice(0, cut)}\n…`;
}
