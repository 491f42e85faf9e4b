import { closeSync, ftruncateSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { Clock } from "../runtime/clock.ts";

export type JournalSource = "user" | "agent" | "web" | "file" | "tool";

export interface JournalEntry {
  /** `${day}#${line}`: the local day of its file and its 1-based line there, so a citation can be looked up by hand. */
  id: string;
  at: number;
  /** A task's request, its outcome, or a note from the `remember` tool. */
  kind: "request" | "outcome" | "note";
  session: string;
  /** Who wrote the text. */
  source: JournalSource;
  /** True for `user` and `agent` only. Text from the web, files or tools is never promoted to an instruction. */
  trusted: boolean;
  /** At most {@link JOURNAL_TEXT_LIMIT} characters. */
  text: string;
  status?: string;
  cost_usd?: number;
}

export interface Journal {
  /** `trusted` is derived from `source`. The line is written and fsynced before this returns. */
  append(entry: Omit<JournalEntry, "id" | "trusted">): JournalEntry;
  /** Entries after `afterId` (exclusive; undefined = all), oldest first, across days. */
  since(afterId?: string): JournalEntry[];
  /** Newest first, across days (for recall); a damaged line is skipped, never fatal. */
  all(): JournalEntry[];
  /** One session's entries, oldest first, from the files of `fromDay` on (`YYYY-MM-DD`; all when undefined). */
  of(session: string, fromDay?: string): JournalEntry[];
  /**
   * One day's entries, oldest first; undefined when `day` is not a journal day (`YYYY-MM-DD`) or has
   * no file. The name is checked before any path is built from it, so no other file can be read.
   */
  day(day: string): JournalEntry[] | undefined;
  /** Lines after `afterId` (undefined = all) that do not read: kept in their files, skipped by every reader. Each is also reported (once). */
  damaged(afterId?: string): DamagedLine[];
}

/** A complete journal line that does not read (not JSON, or not an entry): kept, skipped, reported once per process. */
export interface DamagedLine {
  /** `${day}#${line}`, as the entry's id would have been. */
  id: string;
  file: string;
  problem: string;
}

/** One line for a person about a damaged journal line. */
export function journalDamageMessage(line: DamagedLine): string {
  return `JOURNAL LINE DAMAGED: ${line.file} line ${lineOf(line.id)} does not read (${line.problem}); memory skips it (recall, consolidation) and it is kept in the file: fix or remove it by hand`;
}

export const JOURNAL_TEXT_LIMIT = 2000;
const SOURCES = ["user", "agent", "web", "file", "tool"] as const satisfies readonly JournalSource[];
const TRUSTED: ReadonlySet<JournalSource> = new Set(["user", "agent"]);
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const DAY_FILE = /^(\d{4}-\d{2}-\d{2})\.jsonl$/;
const ID = /^(\d{4}-\d{2}-\d{2})#([1-9]\d*)$/;

/** A journal line as read back. `trusted` on disk is ignored: it is always derived from `source` again. */
const Line = z.object({
  at: z.number(),
  kind: z.enum(["request", "outcome", "note"]),
  session: z.string(),
  source: z.enum(SOURCES),
  text: z.string(),
  status: z.string().optional(),
  cost_usd: z.number().optional(),
});

/** The local calendar day of `at`, `YYYY-MM-DD`: the journal's file names and the first half of its ids. */
export function localDay(at: number): string {
  const date = new Date(at);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export function isTrustedSource(source: JournalSource): boolean {
  return TRUSTED.has(source);
}

/** Cuts `text` to `limit` characters, the last being "…"; never splits a surrogate pair. */
export function capText(text: string, limit = JOURNAL_TEXT_LIMIT): string {
  if (text.length <= limit) return text;
  let end = limit - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return text.slice(0, end) + "…";
}

/**
 * The journal under `dir` (NIGHTSHIFT_HOME/journal). One process appends (the daemon or a foreground
 * run); any number may read. An entry goes into the file of the day it is written (by `clock`), not
 * of its `at`, so ids grow in the order entries were appended and a `since` cursor never misses one.
 */
export function openJournal(dir: string, clock: Clock, options: { onDamaged?(line: DamagedLine): void } = {}): Journal {
  // Lines in today's file, counted on the first append of the day and again whenever its size is
  // not what this process left (someone edited it by hand), so an id is always its line number.
  let cursor: { day: string; lines: number; size: number } | undefined;
  // Every reader meets a damaged line again (recall reads the whole journal): it is said once.
  const reported = new Set<string>();
  const report = (line: DamagedLine) => {
    if (reported.has(line.id)) return;
    reported.add(line.id);
    options.onDamaged?.(line);
  };

  const read = (afterId?: string): { entries: JournalEntry[]; damaged: DamagedLine[] } => {
    const after = afterId === undefined ? undefined : parseId(afterId);
    const entries: JournalEntry[] = [];
    const damaged: DamagedLine[] = [];
    if (!existsSync(dir)) return { entries, damaged };
    const days = readdirSync(dir).flatMap((name) => DAY_FILE.exec(name)?.[1] ?? []).sort();
    for (const day of days) {
      if (after && day < after.day) continue;
      const from = after && day === after.day ? after.line : 0;
      const read = readDay(join(dir, `${day}.jsonl`), day);
      entries.push(...read.entries.filter((entry) => lineOf(entry.id) > from));
      damaged.push(...read.damaged.filter((line) => lineOf(line.id) > from));
    }
    damaged.forEach(report);
    return { entries, damaged };
  };
  const since = (afterId?: string): JournalEntry[] => read(afterId).entries;

  return {
    append(input) {
      const day = localDay(clock.now());
      const path = join(dir, `${day}.jsonl`);
      mkdirSync(dir, { recursive: true });
      const created = !existsSync(path);
      const fd = openSync(path, "a+");
      /** Where this append began: a failed write (a full disk) is cut back to it. */
      let start: number | undefined;
      try {
        if (cursor?.day !== day || cursor.size !== fstatSync(fd).size) cursor = { day, ...countLinesClosingTornTail(fd) };
        start = cursor.size;
        const entry: JournalEntry = {
          id: `${day}#${cursor.lines + 1}`,
          at: input.at,
          kind: input.kind,
          session: input.session,
          source: input.source,
          trusted: isTrustedSource(input.source),
          text: capText(input.text),
          ...(input.status === undefined ? {} : { status: input.status }),
          ...(input.cost_usd === undefined ? {} : { cost_usd: input.cost_usd }),
        };
        const { id: _id, ...stored } = entry;
        const line = Buffer.from(JSON.stringify(stored) + "\n");
        writeAll(fd, line);
        fsyncSync(fd);
        if (created) syncDir(dir);
        cursor.lines += 1;
        cursor.size += line.length;
        return entry;
      } catch (error) {
        // A failed write may have left part of a line, or all of it unsynced: it is cut back, so a
        // retry neither leaves half a line (closed, it would read as a damaged line) nor doubles
        // the entry. A torn tail found when the file is opened is closed instead (it may be a
        // line someone wrote by hand). If even the cut fails, the next append counts again.
        if (start !== undefined) {
          try {
            ftruncateSync(fd, start);
          } catch {
            // counted again next time
          }
        }
        cursor = undefined;
        throw error;
      } finally {
        closeSync(fd);
      }
    },
    since,
    all: () => since().reverse(),
    of(session, fromDay) {
      if (!existsSync(dir)) return [];
      const days = readdirSync(dir).flatMap((name) => DAY_FILE.exec(name)?.[1] ?? []).filter((day) => fromDay === undefined || day >= fromDay).sort();
      return days.flatMap((day) => {
        const read = readDay(join(dir, `${day}.jsonl`), day);
        read.damaged.forEach(report);
        return read.entries.filter((entry) => entry.session === session);
      });
    },
    day(day) {
      if (!DAY.test(day)) return undefined;
      const path = join(dir, `${day}.jsonl`);
      if (!existsSync(path)) return undefined;
      const read = readDay(path, day);
      read.damaged.forEach(report);
      return read.entries;
    },
    damaged: (afterId) => read(afterId).damaged,
  };
}

function parseId(id: string): { day: string; line: number } {
  const match = ID.exec(id);
  if (!match) throw new RangeError(`not a journal entry id: ${JSON.stringify(id)} (expected YYYY-MM-DD#line)`);
  return { day: match[1]!, line: Number(match[2]) };
}

function lineOf(id: string): number {
  return Number(id.slice(id.indexOf("#") + 1));
}

/**
 * A day's entries, oldest first, and its lines that do not read. Line numbers are physical, so a
 * damaged or blank line is skipped but still counted. An unterminated last line is an append in
 * progress (or one a crash cut short, until the next append closes it): it gets no id yet.
 */
function readDay(path: string, day: string): { entries: JournalEntry[]; damaged: DamagedLine[] } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return { entries: [], damaged: [] }; // removed or unreadable since listed: nothing to read, never fatal
  }
  const lines = text.split("\n");
  lines.pop(); // "" after the final newline, or the unterminated tail
  const entries: JournalEntry[] = [];
  const damaged: DamagedLine[] = [];
  for (const [index, line] of lines.entries()) {
    if (!line.trim()) continue;
    const id = `${day}#${index + 1}`;
    const parsed = parseLine(line);
    if ("problem" in parsed) damaged.push({ id, file: path, problem: parsed.problem });
    else entries.push({ id, ...parsed.entry, trusted: isTrustedSource(parsed.entry.source) });
  }
  return { entries, damaged };
}

function parseLine(line: string): { entry: z.infer<typeof Line> } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return { problem: `not JSON: ${(error as Error).message}` };
  }
  const parsed = Line.safeParse(value);
  if (parsed.success) return { entry: parsed.data };
  const issue = parsed.error.issues[0];
  return { problem: `not a journal entry: ${issue?.path.join(".") || "the line"}: ${issue?.message}` };
}

/**
 * Counts the complete lines of an open day file. A last line without its newline was torn by a crash
 * mid-append (or written by hand without one): it is closed with a newline, never cut, so nothing
 * in the file is lost; it takes its line number (a torn one then reads as damaged and is reported),
 * keeping ids equal to physical line numbers.
 */
function countLinesClosingTornTail(fd: number): { lines: number; size: number } {
  const { size } = fstatSync(fd);
  if (size === 0) return { lines: 0, size: 0 };
  const buffer = Buffer.alloc(size);
  let read = 0;
  while (read < size) {
    const n = readSync(fd, buffer, read, size - read, read);
    if (n === 0) break;
    read += n;
  }
  let lines = 0;
  for (let i = 0; i < read; i++) if (buffer[i] === 0x0a) lines++;
  if (read > 0 && buffer[read - 1] !== 0x0a) {
    writeAll(fd, Buffer.from("\n"));
    fsyncSync(fd);
    return { lines: lines + 1, size: read + 1 };
  }
  return { lines, size: read };
}

function writeAll(fd: number, data: Buffer): void {
  for (let offset = 0; offset < data.length; ) offset += writeSync(fd, data, offset);
}

/** Makes a new file's name durable. Some platforms cannot fsync a folder; the data itself is synced. */
function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
}
