import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import pino, { type Logger } from "pino";
import type { SessionEvent } from "./events.ts";

/**
 * Structured trace: one pino JSON line per decision. Events are summarized (sizes, names, tokens,
 * cost), not copied: tool output and file contents stay in the session log only.
 */
export function createTraceLogger(file: string | undefined, level: string): Logger {
  if (!file) return pino({ level: "silent" });
  mkdirSync(dirname(file), { recursive: true });
  return pino(
    { level, base: undefined, redact: { paths: ["apiKey", "api_key", "*.apiKey", "*.api_key", "headers.authorization", "headers[\"x-api-key\"]"], censor: "[redacted]" } },
    pino.destination({ dest: file, sync: false, mkdir: true }),
  );
}

/** Writes one session event to the trace. Must not throw. */
export function traceEvent(logger: Logger, session: string, event: SessionEvent): void {
  const { type, ...rest } = event;
  switch (event.type) {
    case "session_start":
      return logger.info({ session, event: type, title: event.task.title, model: event.task.model, workdir: event.task.workdir, budget: event.task.budget }, "session started");
    case "model_response":
      return logger.info(
        {
          session,
          event: type,
          turn: event.turn,
          model: event.model,
          input_tokens: event.usage.input_tokens,
          output_tokens: event.usage.output_tokens,
          cache_read_tokens: event.usage.cache_read_input_tokens,
          cache_write_tokens: event.usage.cache_creation_input_tokens,
          cost_usd: event.cost_usd,
          latency_ms: event.latency_ms,
          request_bytes: event.request_bytes,
          stop_reason: event.stop_reason,
          tool_calls: event.content.flatMap((block) => (block.type === "tool_use" ? [block.name] : [])),
        },
        "model response",
      );
    case "tool_start":
      return logger.info({ session, event: type, tool: event.name, id: event.id, input: clip(JSON.stringify(event.input)) }, "tool call");
    case "tool_end":
      return logger.info({ session, event: type, tool: event.name, id: event.id, is_error: event.is_error, interrupted: event.interrupted ?? false, duration_ms: event.duration_ms, output_bytes: Buffer.byteLength(event.output) }, "tool result");
    case "checkpoint":
      return logger.info({ session, event: type, method: event.method, dropped_turns: event.dropped_turns, input_tokens_before: event.input_tokens_before, summary_chars: event.summary.length, cost_usd: event.cost_usd }, "compacted");
    case "budget_warning":
      return logger.warn({ session, event: type, kind: event.kind, used: event.used, limit: event.limit }, "budget at 80%");
    case "model_retry":
    case "warning":
      return logger.warn({ session, event: type, ...rest }, event.type === "warning" ? event.message : "model request retried");
    case "session_end":
      return logger.info({ session, event: type, status: event.status, reason: event.reason, turns: event.turns, cost_usd: event.cost_usd, tokens: event.tokens }, "session ended");
    default:
      return logger.info({ session, event: type, ...rest }, type);
  }
}

function clip(text: string | undefined, limit = 500): string {
  if (text === undefined) return "";
  return text.length > limit ? `${text.slice(0, limit)}…` : text;
}
