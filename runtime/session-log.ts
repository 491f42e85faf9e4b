import { mkdirSync } from "node:fs";
import { open, readFile, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { EventOf, SessionEvent } from "./events.ts";

export const LOG_FORMAT = "nightshift-session";
export const LOG_VERSION = 1;

/**
 * The durable record of one session: append-only JSONL, the first line a versioned header. The loop
 * holds no state it cannot rebuild from here, so another store can replace this one later.
 */
export interface SessionLog {
  readonly id: string;
  /** Appends the events as one write and flushes them to disk before resolving. */
  append(...events: SessionEvent[]): Promise<void>;
  /** Every event after the header, in order. */
  read(): Promise<SessionEvent[]>;
  close(): Promise<void>;
  /** Set when opening found a torn last line and marked it (see `findTornTail`): say so. */
  readonly torn?: EventOf<"warning">;
}

export class SessionLogError extends Error {
  override name = "SessionLogError";
  /** What is wrong, without the advice (for a report that gives its own). */
  readonly problem: string;
  constructor(message: string, problem = message) {
    super(message);
    this.problem = problem;
  }
}

interface Header {
  format: typeof LOG_FORMAT;
  version: number;
  id: string;
  created: string;
}

/**
 * Opens (creating if needed) the log at `path`. `sync: false` skips fdatasync, for benchmarks only.
 *
 * An append is written whole or not at all: a short or failed write (a full disk) is cut back to
 * the last complete line before the error is thrown, so the next append is never glued to a torn
 * line, and the same events can be appended again once there is space. If even the cut fails, the
 * next append makes it first, and fails rather than write after a torn line.
 */
/**
 * Where session `id`'s log is under `sessionsDir`: a task's is `<id>.jsonl`; a specialist's session
 * is `<task>.<call>.<name>` and its log sits in its task's folder, `<task>/<id>.jsonl` (runtime.ts `runChild`).
 */
export function sessionLogPath(sessionsDir: string, id: string): string {
  const dot = id.indexOf(".");
  return dot < 0 ? join(sessionsDir, `${id}.jsonl`) : join(sessionsDir, id.slice(0, dot), `${id}.jsonl`);
}

export async function openSessionLog(path: string, id: string, options: { sync?: boolean; now?: () => number } = {}): Promise<SessionLog> {
  mkdirSync(dirname(path), { recursive: true });
  const sync = options.sync ?? true;
  const handle: FileHandle = await open(path, "a+");
  /** The size up to the last complete line written: where a failed append is cut back to. */
  let size: number;
  /** A failed append whose partial bytes could not be cut off yet. */
  let cutPending = false;
  const appendWhole = async (text: string) => {
    if (cutPending) await handle.truncate(size);
    cutPending = false;
    const data = Buffer.from(text);
    try {
      for (let offset = 0; offset < data.length; ) offset += (await handle.write(data, offset, data.length - offset)).bytesWritten;
      if (sync) await handle.datasync();
      size += data.length;
    } catch (error) {
      await handle.truncate(size).catch(() => (cutPending = true));
      throw error;
    }
  };
  const now = () => options.now?.() ?? Date.now();
  let torn: EventOf<"warning"> | undefined;
  try {
    const tail = await findTornTail(handle, now);
    size = tail.size;
    torn = tail.torn;
    // Written whole or cut back like any append (a nearly full disk writes short).
    if (torn) await appendWhole(`\n${JSON.stringify(torn)}\n`);
    if (size === 0) {
      const header: Header = { format: LOG_FORMAT, version: LOG_VERSION, id, created: new Date(now()).toISOString() };
      await appendWhole(JSON.stringify(header) + "\n");
    }
  } catch (error) {
    await handle.close();
    throw error;
  }
  let queue = Promise.resolve();
  return {
    id,
    ...(torn ? { torn } : {}),
    append(...events) {
      const text = events.map((event) => JSON.stringify(event)).join("\n") + "\n";
      // Appends are serialized so concurrent callers can never interleave partial lines; one that
      // failed does not fail the ones after it (the log was cut back to a whole line).
      const written = queue.then(() => appendWhole(text));
      queue = written.catch(() => {});
      return written;
    },
    read: () => readSessionLog(path),
    async close() {
      await queue;
      await handle.close();
    },
  };
}

/**
 * A crash mid-write (or a full disk's short write) can leave a last line without its newline. Its
 * bytes are kept and closed by a marker line (a `warning` with `torn`), in one write: otherwise the
 * next event would be glued to it. Cutting them off instead would claim the line never existed, and
 * a torn `tool_start` whose call did run (the write looked complete) would then run it again; a
 * reader skips a damaged line only right before its marker, and the conversation takes every
 * unfinished call of the turn it cuts into as possibly started (runtime/conversation.ts).
 */
async function findTornTail(handle: FileHandle, now: () => number): Promise<{ size: number; torn?: EventOf<"warning"> }> {
  const { size } = await handle.stat();
  if (size === 0) return { size: 0 };
  const tail = Buffer.alloc(Math.min(size, 64 * 1024));
  await handle.read(tail, 0, tail.length, size - tail.length);
  if (tail.at(-1) === 0x0a) return { size };
  const lastNewline = tail.lastIndexOf(0x0a);
  if (lastNewline < 0 && tail.length < size) throw new SessionLogError("session log ends in a line longer than 64 KiB without a newline; move the file aside");
  if (lastNewline < 0 || (tail.length === size && tail.indexOf(0x0a) === lastNewline)) {
    // The header itself, or the first event after it (session_start), was torn: nothing was ever
    // acknowledged, so nothing can have run. Cut off, so the session starts as if new; a marker
    // here would stand before its session_start, where every reader expects that event first.
    await handle.truncate(lastNewline + 1);
    return { size: lastNewline + 1 };
  }
  const bytes = tail.length - lastNewline - 1;
  return { size, torn: { type: "warning", at: now(), message: `the log's last line was cut short (${bytes} bytes; a crash or a full disk mid-write); it is kept above this line, and a tool call it may have started is not run again`, torn: bytes } };
}

/**
 * Reads a log file. A torn last line (the process died mid-write) is dropped; other damage throws.
 * A log without its header line holds no events: the process was killed between creating the file
 * and writing the header, and every event is appended (and flushed) after the header, so the
 * session never got to its first event. It reads as empty, and the next open writes the header.
 */
export async function readSessionLog(path: string): Promise<SessionEvent[]> {
  const { events, damage } = await readSessionLogPrefix(path);
  if (damage) throw damage;
  return events;
}

/**
 * Reads a log file up to its first damaged line: what a damaged log still proves (its task, what ran
 * before the damage), for recovering the task's record and showing its timeline. A header that does
 * not read is thrown: nothing of such a file can be trusted.
 */
export async function readSessionLogPrefix(path: string): Promise<{ events: SessionEvent[]; damage?: SessionLogError }> {
  const text = await readFile(path, "utf8");
  const lines = text.split("\n");
  lines.pop(); // the trailing empty string, or a torn final write: it never reached the log
  const [headerLine, ...rest] = lines;
  if (!headerLine) return { events: [] }; // killed between creating the file and writing its header: no event was ever logged
  checkHeader(path, parseLine(path, headerLine, 1) as Partial<Header>);
  const events: SessionEvent[] = [];
  for (const [index, line] of rest.entries()) {
    try {
      events.push(parseLine(path, line, index + 2) as SessionEvent);
    } catch (error) {
      if (isTornMarker(rest[index + 1])) continue; // a torn line, closed by its marker when the log was reopened
      return { events, damage: error as SessionLogError };
    }
  }
  return { events };
}

function checkHeader(path: string, header: Partial<Header>): void {
  if (header.format !== LOG_FORMAT) throw new SessionLogError(`${path}: not a Nightshift session log (first line has no "format":"${LOG_FORMAT}")`);
  if (header.version !== LOG_VERSION) {
    throw new SessionLogError(`${path}: session log version ${header.version} is not supported by this Nightshift (reads version ${LOG_VERSION}); upgrade Nightshift`);
  }
}

/** The line written after a torn line (`findTornTail`) after a torn line. */
function isTornMarker(line: string | undefined): boolean {
  if (!line?.startsWith('{"type":"warning"')) return false;
  try {
    const event = JSON.parse(line) as Partial<EventOf<"warning">>;
    return typeof event.torn === "number";
  } catch {
    return false;
  }
}

function parseLine(path: string, line: string, number: number | string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new SessionLogError(`${path}:${number}: damaged line in session log; move the file aside to start over`, `${path}:${number}: damaged line`);
  }
}

/**
 * The complete events written after byte `offset` (0: the whole log, its header checked), and the
 * offset after the last complete line: a reader that follows a growing log (the dashboard's live
 * stream) reads each byte once. A line still being written is left for the next read.
 */
export async function readSessionLogFrom(path: string, offset: number): Promise<{ events: SessionEvent[]; offset: number }> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    if (size <= offset) return { events: [], offset };
    const buffer = Buffer.alloc(size - offset);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
    const end = buffer.subarray(0, bytesRead).lastIndexOf(0x0a) + 1;
    if (end === 0) return { events: [], offset };
    const lines = buffer.toString("utf8", 0, end).split("\n");
    lines.pop();
    if (offset === 0) {
      const header = parseLine(path, lines.shift()!, 1) as Partial<Header>;
      if (header.format !== LOG_FORMAT || header.version !== LOG_VERSION) throw new SessionLogError(`${path}: not a Nightshift session log of version ${LOG_VERSION}`);
    }
    // Line numbers are known from the start of the file only; later reads name the byte they began at.
    const where = (index: number) => (offset === 0 ? index + 2 : `${index + 1} after byte ${offset}`);
    const events: SessionEvent[] = [];
    for (const [index, line] of lines.entries()) {
      try {
        events.push(parseLine(path, line, where(index)) as SessionEvent);
      } catch (error) {
        if (!isTornMarker(lines[index + 1])) throw error; // a torn line and its marker come in one write
      }
    }
    return { events, offset: offset + end };
  } finally {
    await handle.close();
  }
}
