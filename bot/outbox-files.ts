// The outbox's files apart from its items: the record of confirmed sends (which Telegram message
// each outbox id became, so edits can name it and a restart knows what was delivered), and the
// fsynced writes everything durable here goes through.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";

/** How many confirmed sends `edit_of` can still refer to. */
const SENT_MEMORY = 500;
/** `[id, message_id]` lines of confirmed sends. Not `*.json`: the folder's `*.json` files are exactly the pending items. */
export const SENT_FILE = "sent.jsonl";

export interface SentRecord {
  /** The Telegram message id an outbox send became, if it was confirmed (and not forgotten). */
  get(id: string): number | undefined;
  has(id: string): boolean;
  ids(): IterableIterator<string>;
  /** Appended and fsynced before it returns (throws if it cannot be); the oldest are forgotten past 500. */
  remember(id: string, messageId: number): void;
}

/** Reads `dir/sent.jsonl` (a line cut short by a crash is skipped) and rewrites it compacted. */
export function openSentRecord(dir: string, onUnreadable: (error: unknown) => void): SentRecord {
  const sent = new Map<string, number>();
  let lines = 0;
  let text = "";
  try {
    text = readFileSync(join(dir, SENT_FILE), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") onUnreadable(error);
  }
  for (const line of text.split("\n")) {
    try {
      const [id, messageId] = JSON.parse(line) as unknown[];
      if (typeof id === "string" && typeof messageId === "number") sent.set(id, messageId);
    } catch {
      // an empty line, or one cut short by a crash
    }
  }
  const forget = () => {
    while (sent.size > SENT_MEMORY) sent.delete(sent.keys().next().value!);
  };
  const rewrite = () => {
    writeDurably(dir, SENT_FILE, [...sent].map((entry) => `${JSON.stringify(entry)}\n`).join(""));
    lines = sent.size;
  };
  forget();
  if (text) rewrite(); // compacted, and no cut line left for the next append to join
  return {
    get: (id) => sent.get(id),
    has: (id) => sent.has(id),
    ids: () => sent.keys(),
    remember(id, messageId) {
      sent.set(id, messageId);
      forget();
      // Rewritten with the latest entries once the file holds twice as many as are kept.
      if (++lines > 2 * SENT_MEMORY) rewrite();
      else syncWrite(join(dir, SENT_FILE), "a", `${JSON.stringify([id, messageId])}\n`);
    },
  };
}

/** Temp file, fsync, rename, fsync the folder: after return the file survives a crash whole or not at all. */
export function writeDurably(dir: string, name: string, text: string): void {
  const temp = join(dir, `.${name}.tmp`);
  syncWrite(temp, "w", text);
  renameSync(temp, join(dir, name));
  syncWrite(dir, "r"); // the rename itself
}

/** Opens `path` (a folder with "r"), writes `text` if given, and fsyncs before closing. */
export function syncWrite(path: string, flags: "w" | "a" | "r", text?: string): void {
  const fd = openSync(path, flags, 0o600);
  try {
    if (text !== undefined) writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
