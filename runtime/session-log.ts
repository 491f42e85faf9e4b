import { mkdirSync } from "node:fs";
import { open, readFile, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import type { SessionEvent } from "./events.ts";

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
}

export class SessionLogError extends Error {
  override name = "SessionLogError";
}

interface Header {
  format: typeof LOG_FORMAT;
  version: number;
  id: string;
  created: string;
}

/** Opens (creating if needed) the log at `path`. `sync: false` skips fdatasync, for benchmarks only. */
export async function openSessionLog(path: string, id: string, options: { sync?: boolean; now?: () => number } = {}): Promise<SessionLog> {
  mkdirSync(dirname(path), { recursive: true });
  const sync = options.sync ?? true;
  const handle: FileHandle = await open(path, "a+");
  const size = await dropTornTail(handle);
  if (size === 0) {
    const header: Header = { format: LOG_FORMAT, version: LOG_VERSION, id, created: new Date(options.now?.() ?? Date.now()).toISOString() };
    await handle.write(JSON.stringify(header) + "\n");
    if (sync) await handle.datasync();
  }
  let queue = Promise.resolve();
  return {
    id,
    append(...events) {
      const text = events.map((event) => JSON.stringify(event)).join("\n") + "\n";
      // Appends are serialized so concurrent callers can never interleave partial lines.
      queue = queue.then(async () => {
        await handle.write(text);
        if (sync) await handle.datasync();
      });
      return queue;
    },
    read: () => readSessionLog(path),
    async close() {
      await queue.catch(() => {});
      await handle.close();
    },
  };
}

/**
 * A crash mid-write can leave a last line without its newline. That event never became durable, so
 * it is cut off before appending; otherwise the next event would be glued to it. Returns the size.
 */
async function dropTornTail(handle: FileHandle): Promise<number> {
  const { size } = await handle.stat();
  if (size === 0) return 0;
  const tail = Buffer.alloc(Math.min(size, 64 * 1024));
  await handle.read(tail, 0, tail.length, size - tail.length);
  if (tail.at(-1) === 0x0a) return size;
  const lastNewline = tail.lastIndexOf(0x0a);
  if (lastNewline < 0 && tail.length < size) throw new SessionLogError("session log ends in a line longer than 64 KiB without a newline; move the file aside");
  const keep = size - tail.length + lastNewline + 1;
  await handle.truncate(keep);
  return keep;
}

/**
 * Reads a log file. A torn last line (the process died mid-write) is dropped; other damage throws.
 * A log without its header line holds no events: the process was killed between creating the file
 * and writing the header, and every event is appended (and flushed) after the header, so the
 * session never got to its first event. It reads as empty, and the next open writes the header.
 */
export async function readSessionLog(path: string): Promise<SessionEvent[]> {
  const text = await readFile(path, "utf8");
  const lines = text.split("\n");
  const complete = text.endsWith("\n");
  if (!complete) lines.pop(); // torn final write: it never reached the log
  else lines.pop(); // trailing empty string
  const [headerLine, ...rest] = lines;
  if (!headerLine) return [];
  const header = parseLine(path, headerLine, 1) as Partial<Header>;
  if (header.format !== LOG_FORMAT) throw new SessionLogError(`${path}: not a Nightshift session log (first line has no "format":"${LOG_FORMAT}")`);
  if (header.version !== LOG_VERSION) {
    throw new SessionLogError(`${path}: session log version ${header.version} is not supported by this Nightshift (reads version ${LOG_VERSION}); upgrade Nightshift`);
  }
  return rest.map((line, index) => parseLine(path, line, index + 2) as SessionEvent);
}

function parseLine(path: string, line: string, number: number | string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new SessionLogError(`${path}:${number}: damaged line in session log; move the file aside to start over`);
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
    return { events: lines.map((line, index) => parseLine(path, line, where(index)) as SessionEvent), offset: offset + end };
  } finally {
    await handle.close();
  }
}
