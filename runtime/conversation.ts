import type { ContentBlockParam, MessageParam, ToolResultBlockParam } from "@anthropic-ai/sdk/resources/messages";
import type { BudgetKind, ContentBlock, EventOf, SessionEvent, SpecialistReport, TaskSpec } from "./events.ts";
import type { Grant } from "./policy/policy.ts";
import { taskMessage } from "./prompt.ts";

export type ToolUse = Extract<ContentBlock, { type: "tool_use" }>;

/** Everything the loop needs, derived from the log alone. */
export interface SessionState {
  task: TaskSpec;
  messages: MessageParam[];
  turns: number;
  costUsd: number;
  tokens: { input: number; output: number; cache_read: number; cache_write: number };
  /** Input tokens of the latest request (all kinds): what decides compaction. */
  lastInputTokens: number;
  /** Active time so far, not counting time the process was down. */
  activeMs: number;
  lastEventAt: number;
  warned: Set<BudgetKind>;
  /** The latest response's tool calls when some have no recorded end yet (a resume mid-turn). */
  openTurn: OpenTurn | undefined;
  /** Index of the latest model_response event, for choosing what a compaction keeps. */
  responseIndexes: number[];
  /** Where the current window starts (after the latest checkpoint). */
  windowStart: number;
  checkpoints: number;
  end: EventOf<"session_end"> | undefined;
  resumes: number;
  /** "Allow for this task" answers so far. */
  grants: Grant[];
  planned: boolean;
  /** Review rounds finished; `reviewing` is the round started and not finished (a restart mid-review). */
  reviews: number;
  reviewing: number | undefined;
}

export interface OpenTurn {
  uses: ToolUse[];
  /** The response was cut off at max_tokens: its tool inputs may be incomplete and are not run. */
  truncated: boolean;
  /** Ids with a tool_start (or cut into by a torn line): without an end, these were interrupted and are never re-run. */
  started: Set<string>;
  ends: Map<string, EventOf<"tool_end">>;
}

export class LogShapeError extends Error {
  override name = "LogShapeError";
}

export const INTERRUPTED_NOTE =
  "This tool call was interrupted (the process stopped while it ran). It may or may not have taken effect: check before repeating it.";

export const NOT_RUN_NOTE = "Not run: the task was stopped before this tool call started.";

/** Rebuilds the session from its events. Pure: the same events always give the same state. */
export function rebuild(events: SessionEvent[]): SessionState {
  const first = events[0];
  if (first?.type !== "session_start") throw new LogShapeError("session log does not begin with session_start");
  const state: SessionState = {
    task: first.task,
    messages: [],
    turns: 0,
    costUsd: 0,
    tokens: { input: 0, output: 0, cache_read: 0, cache_write: 0 },
    lastInputTokens: 0,
    activeMs: 0,
    lastEventAt: first.at,
    warned: new Set(),
    openTurn: undefined,
    responseIndexes: [],
    windowStart: 0,
    checkpoints: 0,
    end: undefined,
    resumes: 0,
    grants: [],
    planned: false,
    reviews: 0,
    reviewing: undefined,
  };
  let checkpoint: EventOf<"checkpoint"> | undefined;
  for (const [index, event] of events.entries()) {
    applyEvent(state, event, index);
    if (event.type === "checkpoint") checkpoint = event;
  }
  state.windowStart = checkpoint ? checkpoint.keep_from : 0;
  const window = events.slice(state.windowStart);
  const opening = checkpoint
    ? `${taskMessage(state.task)}\n\n<checkpoint>\nThe conversation so far was compacted. This checkpoint replaces the earlier turns:\n${checkpoint.summary}\n</checkpoint>${reloadedSkills(checkpoint)}`
    : taskMessage(state.task);
  const { messages, openTurn } = toMessages(opening, window);
  state.messages = messages;
  state.openTurn = openTurn;
  return state;
}

/** Skills in use before a compaction, read again from their folders: they stay in context. */
function reloadedSkills(checkpoint: EventOf<"checkpoint">): string {
  if (!checkpoint.skills?.length) return "";
  return `\n\nSkills you loaded before the checkpoint, read again:\n${checkpoint.skills.map((skill) => skill.text).join("\n\n")}`;
}

/** Updates counters from one event; the loop calls it for each event it appends, rebuild for each it reads. */
export function applyEvent(state: SessionState, event: SessionEvent, index: number): void {
  // Time while the process was down, or while a finished session waited for a follow-up, is not work.
  if (event.type !== "resumed" && !state.end) state.activeMs += Math.max(0, event.at - state.lastEventAt);
  state.lastEventAt = event.at;
  switch (event.type) {
    case "model_response":
      state.turns++;
      state.costUsd += event.cost_usd;
      state.tokens.input += event.usage.input_tokens;
      state.tokens.output += event.usage.output_tokens;
      state.tokens.cache_read += event.usage.cache_read_input_tokens;
      state.tokens.cache_write += event.usage.cache_creation_input_tokens;
      state.lastInputTokens = event.usage.input_tokens + event.usage.cache_read_input_tokens + event.usage.cache_creation_input_tokens;
      state.responseIndexes.push(index);
      break;
    case "checkpoint":
      state.costUsd += event.cost_usd;
      state.checkpoints++;
      state.lastInputTokens = 0;
      break;
    case "budget_warning":
      state.warned.add(event.kind);
      break;
    case "grant":
      state.grants.push({ kind: event.kind, target: event.target });
      break;
    case "tool_end":
      state.costUsd += event.cost_usd ?? 0;
      break;
    case "plan":
      state.planned = true;
      state.costUsd += event.report.cost_usd;
      break;
    case "review_start":
      state.reviewing = event.round;
      break;
    case "review":
      state.reviews = Math.max(state.reviews, event.round);
      state.reviewing = undefined;
      state.costUsd += event.critiques.reduce((sum, critique) => sum + critique.cost_usd, 0);
      break;
    case "resumed":
      state.resumes = event.attempt;
      if (state.end?.status === "failed") state.end = undefined; // a failed session can be retried
      break;
    case "user":
      state.end = undefined; // a follow-up reopens the session
      break;
    case "session_end":
      state.end = event;
      break;
  }
}

/** Messages from a window of events that starts at session_start or at a model_response. */
function toMessages(opening: string, events: SessionEvent[]): { messages: MessageParam[]; openTurn: OpenTurn | undefined } {
  const messages: MessageParam[] = [];
  const pushUser = (blocks: ContentBlockParam[]) => {
    const last = messages.at(-1);
    if (last?.role === "user" && Array.isArray(last.content)) last.content.push(...blocks);
    else messages.push({ role: "user", content: blocks });
  };
  pushUser([{ type: "text", text: opening }]);

  const emptyTurn = (): OpenTurn => ({ uses: [], truncated: false, started: new Set(), ends: new Map() });
  let turn = emptyTurn();
  const closeTurn = () => {
    const results = turn.uses.map((use): ToolResultBlockParam => {
      const end = turn.ends.get(use.id);
      if (end) return toResult(end);
      return { type: "tool_result", tool_use_id: use.id, content: turn.started.has(use.id) ? INTERRUPTED_NOTE : NOT_RUN_NOTE, is_error: true };
    });
    if (results.length) pushUser(results);
    turn = emptyTurn();
  };
  for (const event of events) {
    switch (event.type) {
      case "user":
        closeTurn();
        pushUser([{ type: "text", text: event.text }]);
        break;
      case "model_response": {
        closeTurn();
        turn.uses = event.content.filter((block): block is ToolUse => block.type === "tool_use");
        turn.truncated = event.stop_reason === "max_tokens";
        const message = assistantMessage(event.content);
        if (message) messages.push(message);
        break;
      }
      case "tool_start":
        turn.started.add(event.id);
        break;
      case "tool_end":
        turn.ends.set(event.id, event);
        break;
      case "warning":
        // The line before was cut short: it may have been this turn's next tool_start (a full disk's
        // short write looks complete to the writer, so that call may have run). No unfinished call
        // of the turn is run again; each is reported as interrupted.
        if (event.torn !== undefined) for (const use of turn.uses) if (!turn.ends.has(use.id)) turn.started.add(use.id);
        break;
      case "plan":
        pushUser([{ type: "text", text: planText(event.report) }]);
        break;
      case "review":
        closeTurn();
        pushUser([{ type: "text", text: reviewText(event.round, event.critiques) }]);
        break;
    }
  }
  if (turn.uses.some((use) => !turn.ends.has(use.id))) return { messages, openTurn: turn };
  closeTurn();
  return { messages, openTurn: undefined };
}

function planText(report: SpecialistReport): string {
  if (report.status !== "done") return `(The planner could not make a plan: ${report.report.slice(0, 300)} Plan the work yourself.)`;
  return `<plan from="planner">\n${report.report}\n</plan>\nA planner drafted this plan. Use it as a starting point; depart from it where it is wrong.`;
}

function reviewText(round: number, critiques: SpecialistReport[]): string {
  const parts = critiques.map((critique) => `<critique from="${critique.name}"${critique.status === "done" ? "" : ` status="${critique.status}"`}>\n${critique.report}\n</critique>`);
  return `Review round ${round}: specialists critiqued your draft.\n\n${parts.join("\n\n")}\n\nRevise your answer with these critiques in mind: fix what they rightly point out, and say briefly why you reject what you think is wrong. Reply with the complete revised answer.`;
}

/** The reply as the API takes it back: it refuses empty messages and whitespace-only text. The log keeps the reply as it came. */
export function assistantMessage(content: ContentBlock[]): MessageParam | undefined {
  const kept = content.filter((block) => block.type !== "text" || block.text.trim() !== "");
  return kept.length ? { role: "assistant", content: kept as ContentBlockParam[] } : undefined;
}

export function toResult(end: EventOf<"tool_end">): ToolResultBlockParam {
  if (end.references?.length && !end.is_error) return { type: "tool_result", tool_use_id: end.id, content: end.references.map((name) => ({ type: "tool_reference" as const, tool_name: name })) };
  return { type: "tool_result", tool_use_id: end.id, content: end.output, ...(end.is_error ? { is_error: true } : {}) };
}
