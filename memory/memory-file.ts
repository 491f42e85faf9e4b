import { randomInt } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeSync } from "node:fs";
import { basename, join } from "node:path";
import type { Clock } from "../runtime/clock.ts";

/** One remembered thing. `sources` are the journal entry ids it rests on; dates are local `YYYY-MM-DD`. */
export interface MemoryEntry {
  id: string;
  text: string;
  sources: string[];
  added: string;
  updated?: string;
}

export interface ParsedMemory {
  entries: MemoryEntry[];
  /** Lines that are not entries (headings, the user's own notes), kept verbatim. */
  other: string;
}

export interface MemoryStore {
  /** `<home>/MEMORY.md` */
  readonly path: string;
  /** A missing or blank file reads as no entries under a `# Memory` heading. `bytes` is the file's size. */
  read(): ParsedMemory & { bytes: number };
  /**
   * Saves the current file to memory-history/MEMORY-<ISO time>.md (if it exists), then writes the new
   * one atomically (temp, fsync, rename). `previous` is the history file the old version went to.
   * Writing what is already there changes nothing.
   */
  write(memory: ParsedMemory): { previous?: string };
  /** Restores the newest history file; the file it replaces is kept in history too (undo is itself undoable; nothing is deleted). */
  undo(): { restored: string } | { nothing: true };
  /** History files (paths), newest first. */
  history(): string[];
  /**
   * What sessions see. Within `capBytes`: the file as it is. Over it: the `other` text plus as many
   * entries as fit, preferring the newest (updated or added) and then the most cited (more sources),
   * in the file's order, and a last line saying how many entries were left out and that
   * `nightshift doctor` and the digest say so: never a silent cut. The text never exceeds `capBytes`;
   * should the hand-written part alone not fit, it is cut at a line and the last line says so too.
   */
  forSession(capBytes: number): { text: string; over?: { bytes: number; capBytes: number; shown: number; total: number } };
}

const ENTRY = /^- (.*?)\s*<!--\s*m:([a-z0-9]+)((?:\s+[a-z]+:\S*)*)\s*-->\s*$/;
const HEADING = /^#{1,6}\s/;
const HISTORY_FILE = /^MEMORY-(\d{8}T\d{6}\.\d{3}Z)\.md$/;
const EMPTY_MEMORY = "# Memory\n\n";

/**
 * Splits MEMORY.md into entries (`- text <!-- m:id sources:a,b added:day updated:day -->`) and every
 * other line. Anything that is not exactly an entry (a plain bullet, a malformed marker) is the
 * user's and stays in `other`.
 */
export function parseMemory(text: string): ParsedMemory {
  const entries: MemoryEntry[] = [];
  const other: string[] = [];
  for (const line of text.split("\n")) {
    const entry = parseEntry(line);
    if (entry) entries.push(entry);
    else other.push(line);
  }
  return { entries, other: other.join("\n") };
}

function parseEntry(line: string): MemoryEntry | undefined {
  const match = ENTRY.exec(line);
  if (!match) return undefined;
  const fields = new Map(match[3]!.trim().split(/\s+/).filter(Boolean).map((field) => {
    const colon = field.indexOf(":");
    return [field.slice(0, colon), field.slice(colon + 1)] as const;
  }));
  const entry: MemoryEntry = {
    id: match[2]!,
    text: match[1]!.trim(),
    sources: (fields.get("sources") ?? "").split(",").filter(Boolean),
    added: fields.get("added") ?? "",
  };
  const updated = fields.get("updated");
  if (updated) entry.updated = updated;
  return entry;
}

/**
 * Entries are one block: after the first heading of `other` (and the blank line under it), or at
 * the top without a heading. Every other line keeps its place and order, so parse(format(x)) is x
 * (for single-line entry texts), and a file this function wrote reads back and formats byte for
 * byte. A hand-edited file whose entries sit elsewhere gets them moved there on the next write;
 * none of the user's lines is lost or changed.
 */
export function formatMemory(memory: ParsedMemory): string {
  const lines = memory.other.split("\n");
  lines.splice(blockPosition(lines), 0, ...memory.entries.map(formatEntry));
  return lines.join("\n");
}

export function formatEntry(entry: MemoryEntry): string {
  const text = entry.text.replace(/\s+/g, " ").trim();
  const updated = entry.updated ? ` updated:${entry.updated}` : "";
  return `- ${text} <!-- m:${entry.id} sources:${entry.sources.join(",")} added:${entry.added}${updated} -->`;
}

/** Where the entry block goes among the other lines (the last element is "" when the text ends with a newline). */
function blockPosition(lines: string[]): number {
  const heading = lines.findIndex((line) => HEADING.test(line));
  if (heading < 0) return 0;
  const next = heading + 1;
  // A blank line under the heading stays above the block, unless it is only the final newline.
  return lines[next] === "" && next + 1 < lines.length ? next + 1 : next;
}

/** A fresh entry id: 4 characters from [a-z0-9], none of `taken`. */
export function newMemoryId(taken: ReadonlySet<string> = new Set()): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (;;) {
    let id = "";
    for (let i = 0; i < 4; i++) id += alphabet[randomInt(alphabet.length)];
    if (!taken.has(id)) return id;
  }
}

/** MEMORY.md under `home` and its history in `home/memory-history/`. Written by the daemon alone. */
export function openMemoryStore(home: string, clock: Clock): MemoryStore {
  const path = join(home, "MEMORY.md");
  const historyDir = join(home, "memory-history");
  const current = (): string | undefined => (existsSync(path) ? readFileSync(path, "utf8") : undefined);

  const history = (): string[] =>
    existsSync(historyDir)
      ? readdirSync(historyDir).filter((name) => HISTORY_FILE.test(name)).sort().reverse().map((name) => join(historyDir, name))
      : [];

  /** Copies `text` into history under a name later than every one there, so names sort by age. */
  const keep = (text: string): string => {
    const newest = history()[0];
    const after = newest ? historyTime(newest) + 1 : 0;
    const file = join(historyDir, `MEMORY-${compactIso(Math.max(clock.now(), after))}.md`);
    writeAtomically(file, text);
    return file;
  };

  /** The last answer, for the file as `version` and, while that was too recent to trust, its `bytes`. */
  let seen: { version: string; bytes?: Buffer; capBytes: number; result: ReturnType<MemoryStore["forSession"]> } | undefined;

  return {
    path,
    read() {
      const text = current() ?? "";
      const parsed = parseMemory(text.trim() ? text : EMPTY_MEMORY);
      return { ...parsed, bytes: Buffer.byteLength(text) };
    },
    write(memory) {
      const text = formatMemory(memory);
      const old = current();
      if (old === text) return {};
      const previous = old === undefined ? undefined : keep(old);
      writeAtomically(path, text);
      return previous === undefined ? {} : { previous };
    },
    undo() {
      const newest = history()[0];
      if (!newest) return { nothing: true };
      const restored = readFileSync(newest, "utf8");
      const old = current();
      if (old !== undefined) keep(old);
      writeAtomically(path, restored);
      return { restored: newest };
    },
    history,
    forSession(capBytes) {
      // Every session asks (its prefix, the over-cap notice), the file rarely changes, and a large
      // one costs its size several times over to read, parse and fit: the answer is kept while the
      // file's identity, size and times are the same (a write here renames a new file in place).
      const { version, racy } = fileVersion(path);
      const same = seen?.version === version && seen.capBytes === capBytes ? seen : undefined;
      if (same && !same.bytes) return same.result;
      const bytes = readOrEmpty(path);
      if (same?.bytes?.equals(bytes)) {
        if (!racy) delete same.bytes; // old enough now: its times tell any later change
        return same.result;
      }
      const result = fitForSession(bytes.toString("utf8"), capBytes);
      seen = { version, capBytes, result, ...(racy ? { bytes } : {}) };
      return result;
    },
  };
}

/** A missing file (or one removed just now) reads as empty, as `current()` does. */
function readOrEmpty(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return Buffer.alloc(0);
    throw error;
  }
}

function fitForSession(text: string, capBytes: number): ReturnType<MemoryStore["forSession"]> {
  const bytes = Buffer.byteLength(text);
  if (bytes <= capBytes) return { text };
  const fitted = fitToCap(scanMemory(text), capBytes);
  return { text: fitted.text, over: { bytes, capBytes, shown: fitted.shown, total: fitted.total } };
}

/** MEMORY.md as ranking needs it: each entry's line, day (updated, else added) and source count; the other lines as they are. */
interface ScannedMemory {
  lines: string[];
  days: string[];
  cited: Uint32Array;
  other: string;
}

/**
 * A file over its cap may hold tens of thousands of entries, of which a hundred or so fit: holding
 * each as a parsed entry while ranking cost a 5 MB file some 80 MB of RSS. Only the line (a slice
 * of the text), its day and its count are held; an entry is parsed when its turn comes.
 */
function scanMemory(text: string): ScannedMemory {
  const lines: string[] = [];
  const days: string[] = [];
  const counts: number[] = [];
  const other: string[] = [];
  for (const line of text.split("\n")) {
    const fields = ENTRY.exec(line)?.[3];
    if (fields === undefined) {
      other.push(line);
      continue;
    }
    lines.push(line);
    days.push(FIELD_UPDATED.exec(fields)?.[1] ?? FIELD_ADDED.exec(fields)?.[1] ?? "");
    const sources = FIELD_SOURCES.exec(fields)?.[1];
    counts.push(sources ? sources.split(",").filter(Boolean).length : 0);
  }
  return { lines, days, cited: Uint32Array.from(counts), other: other.join("\n") };
}

const FIELD_UPDATED = /(?:^|\s)updated:(\S+)/;
const FIELD_ADDED = /(?:^|\s)added:(\S*)/;
const FIELD_SOURCES = /(?:^|\s)sources:(\S*)/;

/** Two writes this close together can leave the same times (the kernel's clock ticks coarsely). */
const RACY_MS = 2000;

/**
 * What changes when a file does: its inode (a rename), size and times ("none" when missing), and
 * whether it was written too recently for its times to tell a second write in the same tick apart
 * (as git treats a "racily clean" file): then its bytes are compared too.
 */
function fileVersion(path: string): { version: string; racy: boolean } {
  try {
    const stats = statSync(path, { bigint: true });
    // File times come from the system's clock, not the daemon's injected one: compare with the same.
    return { version: `${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`, racy: Number(stats.mtimeMs) > Date.now() - RACY_MS };
  } catch {
    return { version: "none", racy: false };
  }
}

/**
 * The `other` text and the best entries that fit in `capBytes` together with the closing notice.
 * Entries are chosen newest first (updated, else added), then most cited, then later in the file;
 * one too long to fit is passed over for smaller ones.
 */
function fitToCap(memory: ScannedMemory, capBytes: number): { text: string; shown: number; total: number } {
  const { lines, days, cited } = memory;
  const total = lines.length;
  const notice = (shown: number, cut: boolean) =>
    `[MEMORY.md is over its ${capBytes}-byte cap: ${total - shown} of ${total} entries left out` +
    `${cut ? " and the hand-written notes cut short" : ""}; \`nightshift doctor\` and the daily digest report this.]\n`;
  // The notice with the widest counts, plus a newline that may be needed before it.
  let budget = capBytes - Buffer.byteLength(notice(0, true)) - 1;
  let other = memory.other;
  const cut = Buffer.byteLength(other) > budget;
  if (cut) other = cutAtLine(other, budget);
  budget -= Buffer.byteLength(other);
  const rank = Uint32Array.from(lines.keys()).sort((a, b) => (days[a] === days[b] ? cited[b]! - cited[a]! || b - a : days[a]! < days[b]! ? 1 : -1));
  const chosen: number[] = [];
  for (const index of rank) {
    const size = Buffer.byteLength(formatEntry(parseEntry(lines[index]!)!)) + 1;
    if (size > budget) continue;
    chosen.push(index);
    budget -= size;
  }
  chosen.sort((a, b) => a - b);
  const body = formatMemory({ other, entries: chosen.map((index) => parseEntry(lines[index]!)!) });
  const text = (body === "" || body.endsWith("\n") ? body : body + "\n") + notice(chosen.length, cut);
  return { text, shown: chosen.length, total };
}

/** The whole lines at the start of `text` that fit in `bytes`. */
function cutAtLine(text: string, bytes: number): string {
  const data = Buffer.from(text).subarray(0, Math.max(bytes, 0));
  return data.subarray(0, data.lastIndexOf(0x0a) + 1).toString();
}

/** ISO 8601 in its basic format (`20261124T090000.000Z`): sorts by time, and no colons for other file systems. */
function compactIso(at: number): string {
  return new Date(at).toISOString().replace(/[-:]/g, "");
}

function historyTime(file: string): number {
  const compact = HISTORY_FILE.exec(basename(file))?.[1] ?? "";
  const iso = compact.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})/, "$1-$2-$3T$4:$5:$6");
  return Date.parse(iso) || 0;
}

/** Temp file beside it, fsync, rename, fsync the folder: a reader sees the old file or the new one. */
function writeAtomically(file: string, text: string): void {
  const dir = join(file, "..");
  mkdirSync(dir, { recursive: true });
  const temp = join(dir, `.${basename(file)}.${process.pid}.tmp`);
  const fd = openSync(temp, "w");
  try {
    const data = Buffer.from(text);
    for (let offset = 0; offset < data.length; ) offset += writeSync(fd, data, offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
  try {
    const dirFd = openSync(dir, "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Some platforms cannot fsync a folder; the file's data is already synced.
  }
}
