import type { MessageParam } from "@anthropic-ai/sdk/resources/messages";
import { homedir } from "node:os";
import type { Clock } from "./clock.ts";
import type { DailySpend } from "./daily-spend.ts";
import type { PriceTable } from "./config.ts";
import { applyEvent, assistantMessage, rebuild, type OpenTurn, type SessionState, type ToolUse } from "./conversation.ts";
import { compact, type CompactionSettings } from "./compaction.ts";
import { Shutdown } from "./errors.ts";
import type { BudgetKind, EventOf, SessionEvent, SessionStatus, SpecialistReport, TaskSpec } from "./events.ts";
import type { ModelClient } from "./model.ts";
import { costOf } from "./pricing.ts";
import { buildSystem, taskMessage, withConversationCache, type Prefix } from "./prompt.ts";
import type { SessionLog } from "./session-log.ts";
import type { WriteGate } from "./write-gate.ts";
import type { ApprovalStore, Approver } from "./approvals.ts";
import type { GateOptions } from "./policy/gate.ts";
import { DEFAULT_RULES, type Rule } from "./policy/policy.ts";
import { NO_RULES, type PathRules } from "./tools/paths.ts";
import { loadedTools } from "./mcp/search.ts";
import { toApiTool, type Tool, type WorkdirView } from "./tools/tool.ts";
import { runTools, type ToolRun } from "./tool-runs.ts";

export interface SessionDeps {
  log: SessionLog;
  model: ModelClient;
  /** Summarizes for compaction when `model` has no server-side compaction. */
  small: ModelClient;
  tools: Tool[];
  /**
   * Tools sent only once a `tool_search` result in the conversation references them, with
   * `defer_loading` (MCP tools): outside the cached prefix, so loading one mid-session keeps it.
   */
  deferred?: Tool[];
  clock: Clock;
  /** Identity and memory (and the skills catalog); called at start and after each compaction. */
  loadPrefix(): Promise<Prefix>;
  /** A skill's text as the `skill` tool gives it, for a compaction to put back what the model had loaded. Must not throw. */
  reloadSkill?(name: string): string;
  prices: PriceTable;
  compaction: CompactionSettings;
  /** Paths no tool may read or write, whatever the policy says. */
  paths?: PathRules;
  /** The workdir is a staged copy: tools read and write it through this view (runtime/stage/overlay.ts). */
  view?: WorkdirView;
  /** The permission policy. Default: the built-in rules, and nobody to ask (asks are denied). */
  permissions?: SessionPermissions;
  /** Today's spending across sessions, against budget.daily_usd. */
  daily?: DailySpend;
  /** A specialist's session: the parent's remaining dollars, shared with the other specialists it runs beside. */
  pool?: DailySpend;
  /** Runs specialists (consult, plan, review rounds). Absent in a specialist's own session: depth 1. */
  specialists?: SpecialistRunner;
  /** Review rounds when the task names specialists and sets none (config `specialists.review_rounds`). */
  reviewRounds?: number;
  /** Warnings recorded when the session starts or resumes (a sandbox that is off or unusable). */
  notices?: string[];
  /** The sandbox commands run under (its kind), recorded when the session starts or resumes. */
  sandbox?: string;
  /** Sees every event after it is durable. Must not throw. */
  emit?(event: SessionEvent): void;
  /**
   * The daemon's: an append that fails because the disk is full or read-only is tried again until
   * it works (or the run is stopped), so an answer in hand is written, not lost or asked for again.
   * Without it, such a failure ends the session with the error.
   */
  storage?: WriteGate;
}

/** Who the specialists answer: the parent session as it stands when they start. */
export interface ParentSession {
  id: string;
  task: TaskSpec;
  spentUsd: number;
  remainingMs: number;
  signal: AbortSignal;
}

/**
 * Runs named specialists on a question, at once or one after another (each sees the reports
 * before it). `key` names their sessions, so a restart resumes the same ones and finished reports
 * are read back, not recomputed. Never throws for a specialist that fails: that is its report.
 */
export type SpecialistRunner = (request: { names: string[]; question: string; mode: "parallel" | "chain"; key: string }, parent: ParentSession) => Promise<SpecialistReport[]>;

export interface SessionPermissions {
  rules: readonly Rule[];
  /** NIGHTSHIFT_HOME, for `{home}` in rules. */
  home: string;
  /** The user's home, for `~` in rules. */
  userHome: string;
  approvals?: { store: ApprovalStore; approvers(): Approver[] };
  /** Shown with approvals raised by this session (a specialist's name). */
  label?: string;
}

export interface SessionResult {
  /** `interrupted`: stopped by a shutdown; the log is left open for a resume. */
  status: SessionStatus | "interrupted";
  answer: string;
  reason?: string;
  turns: number;
  costUsd: number;
  tokens?: EventOf<"session_end">["tokens"];
  /** A staged task: what it changed in its copy, not yet applied (one line per change). */
  staged?: { original: string; changes: string[]; /** A unified diff, cut at 1 MB. */ diff?: string };
}

export { Shutdown } from "./errors.ts";

class BudgetExceeded extends Error {
  override name = "BudgetExceeded";
  readonly kind: BudgetKind;
  constructor(kind: BudgetKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** Starts a new session for `task` in an empty log and runs it to the end. */
export async function startSession(task: TaskSpec, deps: SessionDeps, signal?: AbortSignal): Promise<SessionResult> {
  const start: SessionEvent = { type: "session_start", at: deps.clock.now(), task, ...(deps.sandbox ? { sandbox: deps.sandbox } : {}) };
  const notices = noticeEvents(deps);
  await appendDurably(deps, [start, ...notices], signal);
  for (const event of [start, ...notices]) deps.emit?.(event);
  return drive([start, ...notices], deps, signal);
}

/**
 * Continues a session from its log. A done or cancelled session returns its recorded end without a
 * call; a failed one (model errors, budget) is tried again from where it stopped.
 */
export async function resumeSession(deps: SessionDeps, signal?: AbortSignal): Promise<SessionResult> {
  const events = await deps.log.read();
  const state = rebuild(events);
  if (state.end && state.end.status !== "failed") return resultOf(state.end);
  const resumed: SessionEvent = { type: "resumed", at: deps.clock.now(), attempt: state.resumes + 1, ...(deps.sandbox ? { sandbox: deps.sandbox } : {}) };
  const notices = noticeEvents(deps);
  await appendDurably(deps, [resumed, ...notices], signal);
  for (const event of [resumed, ...notices]) deps.emit?.(event);
  return drive([...events, resumed, ...notices], deps, signal);
}

/** Adds a user message (a follow-up) to a finished or waiting session, then resumes it. */
export async function continueSession(text: string, deps: SessionDeps, signal?: AbortSignal): Promise<SessionResult> {
  const events = await deps.log.read();
  const user: SessionEvent = { type: "user", at: deps.clock.now(), text };
  await appendDurably(deps, [user], signal);
  deps.emit?.(user);
  return drive([...events, user], deps, signal);
}

async function drive(events: SessionEvent[], deps: SessionDeps, signal?: AbortSignal): Promise<SessionResult> {
  const clock = deps.clock;
  const task = (events[0] as EventOf<"session_start">).task;
  let state = rebuild(events);
  let system = buildSystem(await deps.loadPrefix());
  const apiTools = deps.tools.map(toApiTool); // computed once: the cached prefix must not change
  const deferred = new Map((deps.deferred ?? []).map((tool) => [tool.name, tool]));
  const toolsByName = new Map([...deps.tools, ...deferred.values()].map((tool) => [tool.name, tool]));
  /** What a request sends: the fixed tools, then the deferred ones the conversation has loaded. */
  const outgoing = (messages: MessageParam[]) => loadedTools(messages, apiTools, deps.model.toolReferences ? deferred : new Map());
  const paths = deps.paths ?? NO_RULES;
  const gate: GateOptions = {
    session: deps.log.id,
    rules: deps.permissions?.rules ?? DEFAULT_RULES,
    places: { workdir: task.workdir, home: deps.permissions?.home ?? "/nonexistent", userHome: deps.permissions?.userHome ?? homedir() },
    ...(task.permissions ? { task: task.permissions } : {}),
    ...(deps.permissions?.approvals ? { approvals: deps.permissions.approvals } : {}),
    ...(deps.permissions?.label ? { label: deps.permissions.label } : {}),
    clock,
    asking: { tail: Promise.resolve() },
    used: new Set(events.flatMap((event) => (event.type === "approval_answered" ? [event.approval] : []))),
    ...(deps.view ? { staged: true } : {}),
  };


  const timeUp = new AbortController();
  const timeLeft = Math.max(0, task.budget.timeout_ms - state.activeMs);
  const cancelTimer = clock.setTimer(() => timeUp.abort(new BudgetExceeded("time", `ran out of time (budget.timeout ${formatMs(task.budget.timeout_ms)})`)), timeLeft);
  const run = signal ? AbortSignal.any([signal, timeUp.signal]) : timeUp.signal;

  /** Batches are written and applied in call order, also while one waits for disk space. */
  let recorded: Promise<unknown> = Promise.resolve();
  const record = (...batch: SessionEvent[]): Promise<void> => {
    // Only a stop or a cancel ends a wait for disk space, not the time budget: a model response
    // already paid for is written once there is space, and the budget is judged after it.
    const written = recorded.then(() => appendDurably(deps, batch, signal));
    recorded = written.catch(() => {});
    return written.then(() => {
      for (const event of batch) {
        events.push(event);
        applyEvent(state, event, events.length - 1);
        deps.emit?.(event);
      }
    });
  };
  const parent = (): ParentSession => ({ id: deps.log.id, task, spentUsd: state.costUsd, remainingMs: Math.max(0, task.budget.timeout_ms - state.activeMs - (clock.now() - state.lastEventAt)), signal: run });
  const tooling = (): ToolRun => ({ deps, toolsByName, record, run, workdir: task.workdir, paths, gate, grants: state.grants, parent, events });
  /** The planner before the first step (`plan: true`); its plan joins the task message. */
  const plan = async () => {
    const [report] = await deps.specialists!({ names: ["planner"], question: taskMessage(task), mode: "parallel", key: "plan" }, parent());
    if (run.aborted) throw run.reason; // stopped mid-plan: the planner resumes next start, its report is not "interrupted"
    await record({ type: "plan", at: clock.now(), report: report! });
    state = rebuild(events);
  };
  const rounds = task.specialists?.length && deps.specialists ? (task.review_rounds ?? deps.reviewRounds ?? 1) : 0;
  /** After a draft: the task's specialists critique it at once, then the main agent revises. */
  const review = async (round: number) => {
    if (state.reviewing !== round) await record({ type: "review_start", at: clock.now(), round, specialists: task.specialists! });
    const question = `${taskMessage(task)}\n\n<draft>\n${lastText(events)}\n</draft>\n\nCritique this draft answer to the task above.`;
    const critiques = await deps.specialists!({ names: task.specialists!, question, mode: "parallel", key: `review-${round}` }, parent());
    if (run.aborted) throw run.reason;
    await record({ type: "review", at: clock.now(), round, critiques });
    state = rebuild(events);
  };

  const finish = async (status: SessionStatus, answer: string, reason?: string): Promise<SessionResult> => {
    await record({ type: "session_end", at: clock.now(), status, answer, ...(reason ? { reason } : {}), turns: state.turns, cost_usd: state.costUsd, tokens: state.tokens });
    return { status, answer, ...(reason ? { reason } : {}), turns: state.turns, costUsd: state.costUsd, tokens: { ...state.tokens } };
  };
  const stopFor = async (reason: unknown): Promise<SessionResult> => {
    if (reason instanceof Shutdown) return { status: "interrupted", answer: "", reason: reason.message, turns: state.turns, costUsd: state.costUsd };
    if (reason instanceof BudgetExceeded) return finish("failed", lastText(events), reason.message);
    return finish("cancelled", lastText(events), reason instanceof Error ? reason.message : "cancelled");
  };

  try {
    if (state.openTurn) {
      const closed = await runTools(state.openTurn, [], tooling());
      state.messages.push(closed);
    } else if (state.reviewing !== undefined) {
      await review(state.reviewing); // stopped mid-review: the critiques resume from their logs
    } else {
      // The process stopped between the final answer and its session_end: the answer stands.
      const last = events.findLast((event) => event.type !== "resumed" && event.type !== "warning" && event.type !== "budget_warning");
      if (last?.type === "model_response") {
        if (state.reviews >= rounds) return await finish("done", textOf(last));
        await review(state.reviews + 1);
      }
    }
    if (task.plan && !state.planned && deps.specialists && state.turns === 0) await plan();
    for (;;) {
      if (run.aborted) return await stopFor(run.reason);
      const over = overBudget(state, task, deps.daily, deps.pool);
      if (over) return await finish("failed", lastText(events), over);

      if (state.lastInputTokens > deps.compaction.threshold * deps.compaction.contextWindow) {
        const sent = outgoing(state.messages);
        const checkpoint = await compact({ ...state, messages: sent.messages }, events, { deps, system, apiTools: sent.tools, signal: run, record });
        if (checkpoint) {
          // A compaction is spending like any other: today's total and a specialist's shared pool count it.
          deps.daily?.add(checkpoint.cost_usd);
          deps.pool?.add(checkpoint.cost_usd);
          system = buildSystem(await deps.loadPrefix()); // identity and memory are read again after a compaction
          state = rebuild(events);
        }
      }

      const sent = outgoing(state.messages);
      const reply = await deps.model.complete(
        { system, tools: sent.tools, messages: withConversationCache(sent.messages) },
        {
          signal: run,
          // A retry notice that cannot be written must not crash the session (the log stays whole).
          onRetry: (notice) => void record({ type: "model_retry", at: clock.now(), attempt: notice.attempt, delay_ms: notice.delayMs, reason: notice.reason }).catch(() => {}),
        },
      );
      const cost = costOf(reply.usage, reply.model, deps.prices);
      deps.daily?.add(cost.usd);
      deps.pool?.add(cost.usd);
      const response: EventOf<"model_response"> = {
        type: "model_response",
        at: clock.now(),
        turn: state.turns + 1,
        model: reply.model,
        content: reply.content,
        stop_reason: reply.stopReason,
        usage: reply.usage,
        cost_usd: cost.usd,
        latency_ms: reply.latencyMs,
        request_bytes: reply.requestBytes,
      };
      const notes: SessionEvent[] = cost.priced ? [] : [{ type: "warning", at: clock.now(), message: `no price for model ${reply.model} in config \`prices\`; its cost is counted as 0` }];
      const assistant = assistantMessage(reply.content);
      if (assistant) state.messages.push(assistant);
      const uses = reply.content.filter((block): block is ToolUse => block.type === "tool_use");
      if (uses.length === 0) {
        await record(response, ...notes, ...budgetWarnings(state, task, clock.now(), cost.usd, deps.daily));
        if (state.reviews < rounds && !overBudget(state, task, deps.daily, deps.pool)) {
          await review(state.reviews + 1);
          continue;
        }
        const cut = reply.stopReason === "max_tokens" ? "\n\n[the answer was cut off at the output limit]" : "";
        return await finish("done", textOf(response) + cut);
      }
      const turn: OpenTurn = { uses, truncated: reply.stopReason === "max_tokens", started: new Set(), ends: new Map() };
      const head = [response, ...notes, ...budgetWarnings(state, task, clock.now(), cost.usd, deps.daily)];
      state.messages.push(await runTools(turn, head, tooling()));
    }
  } catch (error) {
    if (run.aborted) return await stopFor(run.reason);
    if (error instanceof Error && error.name === "ModelError") return await finish("failed", lastText(events), `model request failed: ${error.message}`);
    throw error;
  } finally {
    cancelTimer();
  }
}

/** Appends `events`; with `deps.storage`, a full or read-only disk is waited out and the same events written once it can be. */
function appendDurably(deps: SessionDeps, events: SessionEvent[], signal?: AbortSignal): Promise<void> {
  if (!deps.storage) return deps.log.append(...events);
  return deps.storage.retry(`the session log of ${deps.log.id}`, () => deps.log.append(...events), signal);
}

function noticeEvents(deps: SessionDeps): SessionEvent[] {
  return (deps.notices ?? []).map((message) => ({ type: "warning", at: deps.clock.now(), message }));
}

function overBudget(state: SessionState, task: TaskSpec, daily?: DailySpend, pool?: DailySpend): string | undefined {
  if (pool && pool.spent() >= pool.limitUsd) return `the task that asked has no budget left for its specialists ($${pool.limitUsd.toFixed(2)} remained when they started)`;
  if (daily && daily.spent() >= daily.limitUsd) return `today's spending reached $${daily.spent().toFixed(2)} of the $${daily.limitUsd.toFixed(2)} daily budget (budget.daily_usd); it resets at midnight`;
  if (state.turns >= task.budget.max_turns) return `used all ${task.budget.max_turns} turns (budget.max_turns)`;
  if (state.costUsd >= task.budget.max_usd) return `spent $${state.costUsd.toFixed(2)} of the $${task.budget.max_usd.toFixed(2)} budget (budget.max_usd)`;
  return undefined;
}

/** Budget warnings to record once each when a limit passes 80%, counting a response not yet applied. */
function budgetWarnings(state: SessionState, task: TaskSpec, now: number, responseUsd: number, daily?: DailySpend): SessionEvent[] {
  const used: Record<BudgetKind, [number, number]> = {
    daily_usd: daily ? [daily.spent(), daily.limitUsd] : [0, 1],
    turns: [state.turns + 1, task.budget.max_turns],
    usd: [state.costUsd + responseUsd, task.budget.max_usd],
    time: [state.activeMs + (now - state.lastEventAt), task.budget.timeout_ms],
  };
  return (Object.keys(used) as BudgetKind[])
    .filter((kind) => !state.warned.has(kind) && used[kind][0] >= 0.8 * used[kind][1])
    .map((kind) => ({ type: "budget_warning", at: now, kind, used: used[kind][0], limit: used[kind][1] }));
}

function textOf(event: EventOf<"model_response">): string {
  return event.content.flatMap((block) => (block.type === "text" ? [block.text] : [])).join("\n").trim();
}

function lastText(events: SessionEvent[]): string {
  for (let index = events.length - 1; index >= 0; index--) {
    const event = events[index]!;
    if (event.type === "model_response" && textOf(event)) return textOf(event);
  }
  return "";
}

/** The result a session ended with, as its log recorded it. */
export function resultOf(end: EventOf<"session_end">): SessionResult {
  return { status: end.status, answer: end.answer, ...(end.reason ? { reason: end.reason } : {}), turns: end.turns, costUsd: end.cost_usd, tokens: end.tokens };
}

function formatMs(ms: number): string {
  return ms >= 3_600_000 ? `${ms / 3_600_000}h` : ms >= 60_000 ? `${ms / 60_000}m` : `${ms / 1000}s`;
}
