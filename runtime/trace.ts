import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { SessionEvent } from "./events.ts";

/**
 * Structured trace: one JSON line per decision, in pino's format (`{"level":30,"time":…,…fields,
 * "msg":…}`, levels 10 trace to 50 error), so pino's tools read it. Events are summarized (sizes,
 * names, tokens, cost), not copied: tool output and file contents stay in the session log only.
 *
 * Our own writer rather than pino: pino and its eight packages took 40–60 ms of every daemon
 * start to load (measured), for what is here a few lines a step. Each line is one synchronous
 * append (O_APPEND, no fsync: about 10 µs), so nothing is lost at exit or in a crash of the
 * process and no flush is needed; a failed write is dropped rather than thrown, never left half
 * written, and counted in a line of its own once writes work again (a full disk must not flood or
 * break the trace, nor stop what is being traced).
 */
export interface TraceLogger {
  trace(fields: object, message?: string): void;
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
  /** Kept for callers written against pino: every line is already written. */
  flush(): void;
  close(): void;
}

export const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, silent: Infinity } as const;
export type TraceLevel = keyof typeof LEVELS;

/** Keys whose values never reach the trace, at any depth. */
const SECRET_KEYS = new Set(["apikey", "api_key", "authorization", "x-api-key", "token", "bot_token"]);

export function createTraceLogger(file: string | undefined, level: string): TraceLogger {
  const threshold = LEVELS[level as TraceLevel] ?? LEVELS.info;
  let fd: number | undefined;
  if (file && threshold !== Infinity) {
    mkdirSync(dirname(file), { recursive: true });
    fd = openSync(file, "a", 0o600);
  }
  /** Lines a failed write kept out (a full or read-only disk) since the last line written, and why: said by the next line that gets through. */
  let dropped = 0;
  let why = "";
  const write = (levelValue: number, fields: object, message?: string) => {
    if (fd === undefined || levelValue < threshold) return;
    let line: string;
    try {
      line = serialize({ level: levelValue, time: Date.now(), ...fields, ...(message !== undefined ? { msg: message } : {}) }) + "\n";
    } catch {
      return; // an unserializable field must not stop a session: the line is dropped
    }
    const lost = (failure: string) => {
      dropped++;
      why = failure;
    };
    if (dropped > 0) {
      const failure = appendLine(fd, serialize({ level: LEVELS.warn, time: Date.now(), event: "trace_lines_dropped", dropped, error: why, msg: `${dropped} trace lines could not be written (${why})` }) + "\n");
      if (failure) return lost(failure);
      dropped = 0;
    }
    const failure = appendLine(fd, line);
    if (failure) lost(failure);
  };
  return {
    trace: (fields, message) => write(LEVELS.trace, fields, message),
    debug: (fields, message) => write(LEVELS.debug, fields, message),
    info: (fields, message) => write(LEVELS.info, fields, message),
    warn: (fields, message) => write(LEVELS.warn, fields, message),
    error: (fields, message) => write(LEVELS.error, fields, message),
    flush() {},
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

/**
 * Appends one whole line or nothing; returns why not (an error code such as ENOSPC). A short write
 * (the disk filled up mid-line) is cut back, so the next line is never glued to a torn one. Must
 * not throw.
 */
function appendLine(fd: number, line: string): string | undefined {
  const data = Buffer.from(line);
  let written = 0;
  try {
    while (written < data.length) written += writeSync(fd, data, written);
    return undefined;
  } catch (error) {
    if (written > 0) {
      try {
        ftruncateSync(fd, fstatSync(fd).size - written);
      } catch {
        // cannot be cut: the reader skips a line that does not parse
      }
    }
    return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  }
}

/** JSON with secrets censored, cycles cut, bigints as text and errors as their message and stack. */
function serialize(value: object): string {
  const ancestors: object[] = [];
  return JSON.stringify(value, function (this: unknown, key: string, item: unknown) {
    if (SECRET_KEYS.has(key.toLowerCase())) return "[redacted]";
    if (typeof item === "bigint") return item.toString();
    if (item instanceof Error) return { type: item.name, message: item.message, stack: item.stack };
    if (typeof item !== "object" || item === null) return item;
    // `this` is the object holding `item`: drop the ancestors that are not on the way to it.
    while (ancestors.length > 0 && ancestors.at(-1) !== this) ancestors.pop();
    if (ancestors.includes(item)) return "[Circular]";
    ancestors.push(item);
    return item;
  });
}

/** Writes one session event to the trace. Must not throw. */
export function traceEvent(logger: TraceLogger, session: string, event: SessionEvent): void {
  const { type, ...rest } = event;
  switch (event.type) {
    case "session_start":
      return logger.info({ session, event: type, title: event.task.title, model: event.task.model, workdir: event.task.workdir, budget: event.task.budget, sandbox: event.sandbox }, "session started");
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
      return logger.info({ session, event: type, method: event.method, dropped_turns: event.dropped_turns, input_tokens_before: event.input_tokens_before, summary_chars: event.summary.length, cost_usd: event.cost_usd, ...(event.skills ? { skills_reloaded: event.skills.map((skill) => skill.name) } : {}) }, "compacted");
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
