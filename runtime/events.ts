/**
 * Everything that happens in a session. The same objects are appended to the session log and
 * emitted to subscribers (trace, progress, later Telegram and the dashboard).
 */

export type ContentBlock =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: unknown }
  | { type: "thinking"; thinking: string; signature: string }
  | { type: "redacted_thinking"; data: string };

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
}

export interface TaskSpec {
  title: string;
  prompt: string;
  /** Absolute, real path. */
  workdir: string;
  /** Role name (main, specialist, small) or a model id. */
  model: string;
  budget: { max_turns: number; max_usd: number; timeout_ms: number };
  /** Where the task came from: a file path, "cli", a Telegram chat. */
  source?: string;
  /** The task file's `permissions`: they can only narrow the global policy. */
  permissions?: { read?: string[]; write?: string[]; commands?: string[]; network?: string[] };
  /** The task file's `notify`: true tells Telegram users when it ends, false keeps quiet; absent follows `telegram.notify`. */
  notify?: boolean;
  /** The planner runs first and its plan joins the task (`plan: true`). */
  plan?: boolean;
  /** Specialists that critique the first draft, in parallel, before the main agent revises. */
  specialists?: string[];
  /** How many review rounds (default: config `specialists.review_rounds`). */
  review_rounds?: number;
  /**
   * The task works on a staged copy of `workdir` (runtime/stage/overlay.ts): nothing reaches the
   * folder until the person applies the changes.
   */
  stage?: boolean;
  /** Set for a specialist's own session: whose question it answers. */
  parent?: { session: string; specialist: string };
}

/** One specialist's part in a consult, a plan or a review round, as the parent's log keeps it. */
export interface SpecialistReport {
  name: string;
  /** The specialist's own session (its log sits in sessions/<parent>/). */
  session: string;
  status: SessionStatus | "interrupted" | "unavailable";
  report: string;
  cost_usd: number;
  turns: number;
}

export type SessionStatus = "done" | "failed" | "cancelled";
export type BudgetKind = "turns" | "usd" | "time" | "daily_usd";

export type SessionEvent =
  // `sandbox`: the Sandbox kind commands ran under (bwrap, srt, unsandboxed); absent in older logs.
  | { type: "session_start"; at: number; task: TaskSpec; sandbox?: string }
  | { type: "resumed"; at: number; attempt: number; sandbox?: string }
  | { type: "user"; at: number; text: string }
  | {
      type: "model_response";
      at: number;
      turn: number;
      model: string;
      content: ContentBlock[];
      stop_reason: string | null;
      usage: Usage;
      cost_usd: number;
      latency_ms: number;
      request_bytes: number;
    }
  | { type: "tool_start"; at: number; id: string; name: string; input: unknown }
  | {
      type: "tool_end";
      at: number;
      id: string;
      name: string;
      output: string;
      is_error: boolean;
      duration_ms: number;
      interrupted?: boolean;
      /** What the call spent on its own model calls (a consult's specialists): counted against this task's budget. */
      cost_usd?: number;
      specialists?: SpecialistReport[];
      /** Deferred tools this call loaded (`tool_search`): the model's result is their `tool_reference` blocks. */
      references?: string[];
    }
  /** The planner's plan (`plan: true`), given to the main agent with the task. */
  | { type: "plan"; at: number; report: SpecialistReport }
  /** A review round begins after a draft; a restart before its `review` runs it again (finished critiques are kept in their logs). */
  | { type: "review_start"; at: number; round: number; specialists: string[] }
  | { type: "review"; at: number; round: number; critiques: SpecialistReport[] }
  | { type: "model_retry"; at: number; attempt: number; delay_ms: number; reason: string }
  | { type: "budget_warning"; at: number; kind: BudgetKind; used: number; limit: number }
  | {
      type: "checkpoint";
      at: number;
      summary: string;
      /** Index (in the event list) of the first event kept verbatim after the checkpoint. */
      keep_from: number;
      dropped_turns: number;
      input_tokens_before: number;
      method: "server" | "small";
      cost_usd: number;
      /** Skills loaded before the dropped turns, read again: the next requests carry them after the summary. */
      skills?: Array<{ name: string; text: string }>;
    }
  /** `torn`: written when a log was reopened after its last line was cut short, right after that line (its byte count). */
  | { type: "warning"; at: number; message: string; torn?: number }
  /** A permission decision for one request of a tool call, with the rule that decided. */
  | { type: "permission"; at: number; id: string; tool: string; kind: "read" | "write" | "command" | "network" | "tool"; target: string; action: "allow" | "ask" | "deny"; reason: string }
  | { type: "approval_requested"; at: number; approval: string; id: string; tool: string; summary: string; reason: string; expires_at: number }
  | { type: "approval_answered"; at: number; approval: string; id: string; decision: "once" | "task" | "deny" | "expired" | "unreachable"; by: string; reason?: string }
  /** "Allow for this task": the kind and target stop asking until the task ends. */
  | { type: "grant"; at: number; kind: "read" | "write" | "command" | "network" | "tool"; target: string }
  | {
      type: "session_end";
      at: number;
      status: SessionStatus;
      answer: string;
      reason?: string;
      turns: number;
      cost_usd: number;
      tokens: { input: number; output: number; cache_read: number; cache_write: number };
    };

export type EventOf<T extends SessionEvent["type"]> = Extract<SessionEvent, { type: T }>;
