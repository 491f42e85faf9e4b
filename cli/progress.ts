import type { SessionEvent } from "../runtime/index.ts";

/** One short stderr line per event worth seeing while `nightshift run` works. */
export function progressLine(session: string, event: SessionEvent): string | undefined {
  switch (event.type) {
    case "session_start":
      return `▶ ${event.task.title}\n  session ${session}, workdir ${event.task.workdir}`;
    case "resumed":
      return `↻ resumed (attempt ${event.attempt})`;
    case "model_response": {
      const cached = event.usage.cache_read_input_tokens ? `, ${kilo(event.usage.cache_read_input_tokens)} cached` : "";
      return `· turn ${event.turn}: ${kilo(event.usage.input_tokens + event.usage.cache_read_input_tokens + event.usage.cache_creation_input_tokens)} in${cached}, ${kilo(event.usage.output_tokens)} out, $${event.cost_usd.toFixed(4)}, ${(event.latency_ms / 1000).toFixed(1)}s`;
    }
    case "tool_start":
      return `  ${event.name} ${summarizeInput(event.input)}`;
    case "tool_end":
      return event.is_error ? `    ✗ ${firstLine(event.output)}` : undefined;
    case "model_retry":
      return `  ! ${event.reason}; retry ${event.attempt} in ${(event.delay_ms / 1000).toFixed(1)}s`;
    case "budget_warning":
      return `  ! budget: ${event.kind} at ${Math.round((event.used / event.limit) * 100)}% (${round(event.used)} of ${round(event.limit)})`;
    case "checkpoint":
      return `  ⇣ context compacted (${event.method}): ${event.dropped_turns} turns summarized`;
    case "warning":
      return `  ! ${event.message}`;
    case "permission":
      return event.action === "deny" ? `    ⛔ ${event.kind} ${firstLine(event.target, 100)}: ${event.reason}` : undefined;
    case "approval_requested":
      return `  ? waiting for approval ${event.approval}: ${event.summary}`;
    case "approval_answered":
      return `    → ${event.decision === "once" ? "allowed once" : event.decision === "task" ? "allowed for this task" : event.decision === "unreachable" ? `denied: ${event.reason}` : event.decision}${event.by !== "nightshift" ? ` (${event.by})` : ""}`;
    case "session_end":
      return `■ ${event.status}${event.reason ? `: ${event.reason}` : ""}  (${event.turns} turns, $${event.cost_usd.toFixed(4)})`;
    default:
      return undefined;
  }
}

function summarizeInput(input: unknown): string {
  if (input && typeof input === "object") {
    const record = input as Record<string, unknown>;
    const main = record.command ?? record.path ?? record.pattern;
    if (typeof main === "string") return firstLine(main, 100);
  }
  return firstLine(JSON.stringify(input) ?? "", 100);
}

function firstLine(text: string, limit = 160): string {
  const line = text.split("\n")[0] ?? "";
  return line.length > limit ? line.slice(0, limit) + "…" : line;
}

function kilo(tokens: number): string {
  return tokens >= 1000 ? `${(tokens / 1000).toFixed(1)}k` : String(tokens);
}

function round(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}
