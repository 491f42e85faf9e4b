import type { MessageParam, TextBlockParam, Tool as ApiTool } from "@anthropic-ai/sdk/resources/messages";
import type { SessionState } from "./conversation.ts";
import type { EventOf, SessionEvent } from "./events.ts";
import type { SessionDeps } from "./loop.ts";
import { costOf } from "./pricing.ts";

export interface CompactionSettings {
  /** Fraction of `contextWindow` whose crossing triggers a compaction. */
  threshold: number;
  contextWindow: number;
  /** Assistant turns kept verbatim after the checkpoint. */
  keepRecentTurns: number;
}

export const CHECKPOINT_INSTRUCTIONS = `Write a checkpoint of this session so the work can continue without the earlier turns. Use these headings:
Task: what the user asked, in their words where it matters.
Plan: the approach being followed.
Done: what has been done, with results.
Pending: what is left, in order.
Key facts: file paths, identifiers, commands, numbers, errors and decisions that later steps need, exactly as written.
Be complete but brief; do not invent anything.`;

const TOOL_TEXT_LIMIT = 2000;

interface CompactContext {
  deps: SessionDeps;
  system: TextBlockParam[];
  apiTools: ApiTool[];
  signal: AbortSignal;
  record(...events: SessionEvent[]): Promise<void>;
}

/**
 * Writes a checkpoint to the log: a summary of the current window, and which recent turns stay
 * verbatim (whole turns, so tool_use and tool_result stay paired). Uses the endpoint's server-side
 * compaction when it has one, else the `small` role. Returns undefined when nothing can be dropped.
 */
export async function compact(state: SessionState, events: SessionEvent[], context: CompactContext): Promise<EventOf<"checkpoint"> | undefined> {
  const { deps } = context;
  const inWindow = state.responseIndexes.filter((index) => index >= state.windowStart);
  // Keep the newest turns, but always drop at least one so the window shrinks.
  const keep = Math.min(deps.compaction.keepRecentTurns, inWindow.length - 1);
  if (keep < 0 || inWindow.length === 0) return undefined;
  const keepFrom = keep === 0 ? events.length : inWindow[inWindow.length - keep]!;
  const summarized = state.messages;

  let method: "server" | "small" = "small";
  let summary: string | undefined;
  let cost = 0;
  if (deps.model.compact) {
    try {
      const result = await deps.model.compact({ system: context.system, tools: context.apiTools, messages: summarized, instructions: CHECKPOINT_INSTRUCTIONS }, { signal: context.signal });
      summary = result.summary;
      cost = costOf(result.usage, deps.model.model, deps.prices).usd;
      method = "server";
    } catch (error) {
      if (context.signal.aborted) throw error;
      await context.record({ type: "warning", at: deps.clock.now(), message: `server-side compaction failed (${(error as Error).message}); summarizing with the small model instead` });
    }
  }
  if (summary === undefined) {
    const reply = await deps.small.complete(
      {
        system: [{ type: "text", text: "You write checkpoints of an agent's working session. Output only the checkpoint." }],
        tools: [],
        messages: [{ role: "user", content: `${transcript(summarized)}\n\n---\n${CHECKPOINT_INSTRUCTIONS}` }],
      },
      { signal: context.signal },
    );
    summary = reply.content.flatMap((block) => (block.type === "text" ? [block.text] : [])).join("\n").trim();
    cost = costOf(reply.usage, reply.model, deps.prices).usd;
  }
  const checkpoint: EventOf<"checkpoint"> = {
    type: "checkpoint",
    at: deps.clock.now(),
    summary,
    keep_from: keepFrom,
    dropped_turns: inWindow.length - keep,
    input_tokens_before: state.lastInputTokens,
    method,
    cost_usd: cost,
  };
  const skills = deps.reloadSkill ? skillsToReload(events, keepFrom).map((name) => ({ name, text: deps.reloadSkill!(name) })) : [];
  if (skills.length) checkpoint.skills = skills;
  await context.record(checkpoint);
  return checkpoint;
}

/**
 * Skills the model loaded (a `skill` call that succeeded) in the turns a compaction drops, in the
 * order first loaded; not those loaded again in the turns it keeps, which are still there verbatim.
 */
export function skillsToReload(events: readonly SessionEvent[], keepFrom: number): string[] {
  const loads = (from: number, to: number) => {
    const failed = new Set(events.slice(from).flatMap((event) => (event.type === "tool_end" && event.is_error ? [event.id] : [])));
    return events.slice(from, to).flatMap((event) =>
      event.type === "model_response"
        ? event.content.flatMap((block) => (block.type === "tool_use" && block.name === "skill" && !failed.has(block.id) && typeof (block.input as { name?: unknown }).name === "string" ? [(block.input as { name: string }).name] : []))
        : [],
    );
  };
  const kept = new Set(loads(keepFrom, events.length));
  return [...new Set(loads(0, keepFrom))].filter((name) => !kept.has(name));
}

/** The conversation as plain text for a summarizer that gets no tools. */
export function transcript(messages: MessageParam[]): string {
  const lines: string[] = [];
  for (const message of messages) {
    const blocks = typeof message.content === "string" ? [{ type: "text" as const, text: message.content }] : message.content;
    for (const block of blocks) {
      if (block.type === "text") lines.push(`[${message.role}] ${block.text}`);
      else if (block.type === "tool_use") lines.push(`[tool call ${block.name}] ${clip(JSON.stringify(block.input))}`);
      else if (block.type === "tool_result") {
        const text = typeof block.content === "string" ? block.content : (block.content ?? []).map((part) => ("text" in part ? part.text : "")).join("\n");
        lines.push(`[tool result${block.is_error ? " (error)" : ""}] ${clip(text)}`);
      }
    }
  }
  return lines.join("\n");
}

function clip(text: string): string {
  return text.length > TOOL_TEXT_LIMIT ? `${text.slice(0, TOOL_TEXT_LIMIT)} [... ${text.length - TOOL_TEXT_LIMIT} more characters]` : text;
}
