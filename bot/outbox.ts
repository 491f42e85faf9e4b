// The durable outbox for everything the bot sends to Telegram. Each call is a file written and
// fsynced before `enqueue` returns and removed only when Telegram answers ok, so an outage or a
// restart loses nothing; per chat, calls leave strictly in enqueue order, one request in flight at a
// time, so nothing arrives out of order or twice. All waiting (rate limits, backoff, 429 pauses) goes
// through the injected Clock: a token bucket per chat (one a second after a burst of three) and a
// sliding one-second window for all chats together (30) keep within Telegram's limits.
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { GrammyError, InputFile } from "grammy";
import type { Api } from "grammy";
import type { Clock } from "../runtime/index.ts";

export interface OutgoingCall {
  method: "sendMessage" | "sendDocument" | "editMessageText" | "editMessageReplyMarkup" | "deleteMessage";
  chat_id: number;
  /** The method's other parameters (text, parse_mode, reply_markup, reply_parameters, message_id, caption…). */
  params: Record<string, unknown>;
  /** sendDocument only: the file, kept in the stored item so it survives a restart. */
  document?: { filename: string; content: string /* utf8 text, e.g. a .md answer */ };
  /** Edit or delete a message this outbox sent earlier to the same chat, by the outbox id of that send. */
  edit_of?: string;
  /** Opaque to the outbox; handed back in onSent and onDropped (e.g. "status:TASKID"). */
  tag?: string;
}

export interface OutboxItem {
  id: string;
  call: OutgoingCall;
}

export interface OutboxLimits {
  /** A token bucket per chat: `perChatBurst` at once, then `perChatPerSecond` (defaults 3 and 1). */
  perChatPerSecond?: number;
  perChatBurst?: number;
  /** All chats together: at most this many requests reach Telegram in any 1,000 ms (default 30), a burst included. */
  globalPerSecond?: number;
  /** Volatile edits (`replace`) in one chat are at least this far apart. */
  editIntervalMs?: number;
}

export interface TelegramOutboxOptions {
  /** e.g. <home>/state/telegram/outbox; created 0700. Dropped items go to `dir/failed/`. */
  dir: string;
  api: Api;
  clock: Clock;
  /** A stored item was confirmed; `result` is Telegram's (a Message for sends, `true` for "not modified"). Must not throw. */
  onSent?(item: OutboxItem, result: unknown): void;
  /** A stored item was given up and moved to `failed/`. Must not throw. */
  onDropped?(item: OutboxItem, reason: string): void;
  log?: (level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>) => void;
  limits?: OutboxLimits;
}

export interface TelegramOutbox {
  /**
   * Stores the call (written and fsynced before it returns; throws if it cannot be), wakes the sender
   * and returns the item id. Per chat, items leave in enqueue order.
   */
  enqueue(call: OutgoingCall): string;
  /**
   * A volatile, coalescing call (progress edits): only the latest call per key is kept, in memory, and
   * sent once the chat has no stored items waiting and its rate allows; edits at most once per
   * `editIntervalMs` per chat. `undefined` forgets the key. A stored call that edits or deletes the same
   * message supersedes it, so a stale progress text never overwrites a final one.
   */
  replace(key: string, call: OutgoingCall | undefined): void;
  start(): void;
  /** Stops sending: in-flight requests are awaited (aborted after a grace period); stored items stay for the next start. */
  stop(): Promise<void>;
  /** Items stored and not yet confirmed or dropped. */
  pending(): number;
  /** Resolves when nothing stored or volatile is waiting and no request is in flight (while stopped: only if nothing is stored). */
  idle(): Promise<void>;
}

const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;
const STOP_GRACE_MS = 5_000;
/** How many confirmed sends `edit_of` can still refer to. */
const SENT_MEMORY = 500;
/** `[id, message_id]` lines of confirmed sends. Not `*.json`: the folder's `*.json` files are exactly the pending items. */
const SENT_FILE = "sent.jsonl";
const ITEM_FILE = /^(\d{12})-[0-9a-f]{6}\.json$/;
const seqOf = (name: string): number => Number(/^(\d{12})-/.exec(name)?.[1] ?? 0);
const HTML_ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"' };

interface Bucket { tokens: number; at: number; readonly perSecond: number; readonly burst: number }
/** What a chat sends next: a stored item, or the volatile call under `key`. */
interface Next { item?: OutboxItem; key?: string; call: OutgoingCall }
interface Chat { queue: OutboxItem[]; volatile: Map<string, OutgoingCall>; busy: boolean; bucket: Bucket; retryAt: number; failures: number; lastEditAt: number }
type Outcome =
  | { kind: "done"; result: unknown }
  | { kind: "retry"; reason: string } // network or 5xx: back off this chat
  | { kind: "pause"; ms: number } // 429: everything waits, not a failure
  | { kind: "auth"; reason: string } // 401/404: the token is wrong; never drop, back off everything
  | { kind: "plain" } // HTML Telegram could not parse: once more as plain text
  | { kind: "drop"; reason: string };

export function createTelegramOutbox(options: TelegramOutboxOptions): TelegramOutbox {
  const { dir, api, clock } = options;
  const limits = { perChatPerSecond: 1, perChatBurst: 3, globalPerSecond: 30, editIntervalMs: 3_000, ...options.limits };
  const failedDir = join(dir, "failed");
  const raw = api.raw as unknown as Record<OutgoingCall["method"], (payload: Record<string, unknown>, signal?: AbortSignal) => Promise<unknown>>;
  const chats = new Map<number, Chat>();
  /** When the requests of the last second ended, oldest first (see globalWait). */
  const ended: number[] = [];
  /** Volatile calls in flight by key; `superseded` once a newer call or a stored edit replaced them. */
  const flying = new Map<string, { call: OutgoingCall; superseded: boolean }>();
  const inflight = new Set<Promise<void>>();
  const idleWaiters: (() => void)[] = [];
  let running = false;
  let controller = new AbortController();
  let pausedUntil = 0;
  let authFailures = 0;
  let cancelWake = (): void => {};
  let pumping = false;
  let again = false;

  mkdirSync(failedDir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  let sentLines = 0;
  const sent = loadSent();
  let seq = 0;
  // The sequence continues past every id still referred to, so ids stay unique and ordered.
  for (const name of [...readdirSync(dir), ...readdirSync(failedDir), ...sent.keys()]) seq = Math.max(seq, seqOf(name));
  for (const name of readdirSync(dir).sort()) {
    if (name.endsWith(".tmp")) unlinkSync(join(dir, name)); // its write never completed
    if (!ITEM_FILE.test(name)) continue;
    const id = name.slice(0, -".json".length);
    if (sent.has(id) || existsSync(join(failedDir, name))) {
      unlinkSync(join(dir, name)); // confirmed or dropped just before a crash
      continue;
    }
    try {
      const { call } = JSON.parse(readFileSync(join(dir, name), "utf8")) as Partial<OutboxItem>;
      if (typeof call?.chat_id !== "number" || typeof call.method !== "string" || typeof call.params !== "object") throw new Error("not an outbox item");
      chatOf(call.chat_id).queue.push({ id, call });
    } catch (error) {
      renameSync(join(dir, name), join(failedDir, name));
      say("error", `telegram outbox: unreadable item ${name} moved to failed/`, { error: String(error) });
    }
  }

  /** grammy's errors may carry the URL, and with it the token. */
  function redact(text: string): string {
    return api.token ? text.split(api.token).join("<token>") : text;
  }

  function say(level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>): void {
    const clean = fields && Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, typeof v === "string" ? redact(v) : v]));
    try {
      options.log?.(level, redact(message), clean);
    } catch {
      // a failing logger must not stop the sender
    }
  }

  /** Runs a callback or file operation whose failure must not stop the sender. */
  function guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      say("error", `telegram outbox: ${what} failed`, { error: String(error) });
    }
  }

  function chatOf(chatId: number): Chat {
    let chat = chats.get(chatId);
    if (!chat) {
      chat = { queue: [], volatile: new Map(), busy: false, bucket: bucket(limits.perChatPerSecond, limits.perChatBurst), retryAt: 0, failures: 0, lastEditAt: -Infinity };
      chats.set(chatId, chat);
    }
    return chat;
  }

  function bucket(perSecond: number, burst: number): Bucket {
    return { tokens: burst, at: clock.now(), perSecond, burst };
  }

  /**
   * A request counts against the global limit from its start until 1 s after its answer: it reached
   * Telegram somewhere in between, so however long requests take, no second there sees more than the
   * limit. Infinity: wait for an answer (which pumps).
   */
  function globalWait(now: number): number {
    while (ended.length > 0 && ended[0]! <= now - 1000) ended.shift();
    if (inflight.size + ended.length < limits.globalPerSecond) return 0;
    return ended.length > 0 ? ended[0]! + 1000 - now : Infinity;
  }

  /** Milliseconds until the bucket holds a token (0: now). */
  function waitMs(b: Bucket, now: number): number {
    b.tokens = Math.min(b.burst, b.tokens + ((now - b.at) * b.perSecond) / 1000);
    b.at = now;
    return b.tokens >= 1 ? 0 : Math.ceil(((1 - b.tokens) * 1000) / b.perSecond);
  }

  function loadSent(): Map<string, number> {
    const map = new Map<string, number>();
    let text = "";
    try {
      text = readFileSync(join(dir, SENT_FILE), "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") say("error", `telegram outbox: ${SENT_FILE} unreadable; earlier sends cannot be edited`, { error: String(error) });
    }
    for (const line of text.split("\n")) {
      try {
        const [id, messageId] = JSON.parse(line) as unknown[];
        if (typeof id === "string" && typeof messageId === "number") map.set(id, messageId);
      } catch {
        // an empty line, or one cut short by a crash
      }
    }
    while (map.size > SENT_MEMORY) map.delete(map.keys().next().value!);
    if (text) writeSent(map); // compacted, and no cut line left for the next append to join
    return map;
  }

  function writeSent(map: Map<string, number>): void {
    writeDurably(dir, SENT_FILE, [...map].map((entry) => `${JSON.stringify(entry)}\n`).join(""));
    sentLines = map.size;
  }

  /** Appended and fsynced; rewritten with the latest entries once the file holds twice as many. */
  function rememberSent(id: string, messageId: number): void {
    sent.set(id, messageId);
    while (sent.size > SENT_MEMORY) sent.delete(sent.keys().next().value!);
    if (++sentLines > 2 * SENT_MEMORY) writeSent(sent);
    else syncWrite(join(dir, SENT_FILE), "a", `${JSON.stringify([id, messageId])}\n`);
  }

  /** The message an edit or delete aims at, comparable across `edit_of` and `message_id`. */
  function targetOf(call: OutgoingCall): unknown {
    return call.edit_of !== undefined ? (sent.get(call.edit_of) ?? call.edit_of) : call.params["message_id"];
  }

  function finish(chat: Chat, item: OutboxItem): void {
    if (chat.queue[0] === item) chat.queue.shift();
    unlinkSync(join(dir, `${item.id}.json`));
  }

  function confirm(chat: Chat, item: OutboxItem, result: unknown): void {
    const messageId = (result as { message_id?: unknown } | null)?.message_id;
    if (item.call.method.startsWith("send") && typeof messageId === "number") {
      // Written before the item is removed: an item found in the sent file at start was delivered.
      guard(`writing ${SENT_FILE}`, () => rememberSent(item.id, messageId));
    }
    guard("removing a delivered item", () => finish(chat, item));
    guard("onSent", () => options.onSent?.(item, result));
  }

  function drop(chat: Chat, item: OutboxItem, why: string): void {
    const reason = redact(why);
    say("warn", `telegram outbox: dropped ${item.call.method} to chat ${item.call.chat_id}: ${reason}`, { id: item.id, tag: item.call.tag });
    guard("moving an item to failed/", () => {
      const record = { ...item, error: reason, failed_at: new Date(clock.now()).toISOString() };
      writeDurably(failedDir, `${item.id}.json`, JSON.stringify(record, null, 2));
      finish(chat, item);
    });
    if (chat.queue[0] === item) chat.queue.shift(); // even when the files could not be moved
    guard("onDropped", () => options.onDropped?.(item, reason));
  }

  /**
   * The next call of a chat: stored items first, a volatile call only once none is waiting. Per-chat
   * order means the send an `edit_of` names has settled by now: unknown means dropped or not ours.
   */
  function nextOf(chat: Chat): Next | undefined {
    const unresolved = (call: OutgoingCall): boolean => call.edit_of !== undefined && !sent.has(call.edit_of);
    for (let item = chat.queue[0]; item; item = chat.queue[0]) {
      if (!unresolved(item.call)) return { item, call: item.call };
      const dropped = existsSync(join(failedDir, `${item.call.edit_of}.json`));
      drop(chat, item, `the message it refers to (${item.call.edit_of}) ${dropped ? "was dropped" : "is unknown or forgotten"}`);
    }
    for (const [key, call] of chat.volatile) {
      if (!unresolved(call)) return { key, call };
      chat.volatile.delete(key);
      say("warn", `telegram outbox: volatile ${key} refers to unknown message ${call.edit_of}; forgotten`);
    }
    return undefined;
  }

  /** Starts whatever may go now and sets one timer for the earliest moment something else may. */
  function pump(): void {
    again = true;
    if (pumping) return; // called back (onDropped → enqueue): the loop below goes round again
    pumping = true;
    try {
      while (again) {
        again = false;
        pumpOnce();
      }
    } finally {
      pumping = false;
    }
    checkIdle();
  }

  function pumpOnce(): void {
    cancelWake();
    if (!running) return;
    const now = clock.now();
    let wakeAt = Infinity;
    if (now < pausedUntil) wakeAt = pausedUntil;
    else {
      for (const chat of chats.values()) {
        if (chat.busy) continue;
        const next = nextOf(chat);
        if (!next) continue;
        const editWait = next.key !== undefined && next.call.method.startsWith("edit") ? chat.lastEditAt + limits.editIntervalMs : 0;
        const readyAt = Math.max(chat.retryAt, editWait, now + waitMs(chat.bucket, now), now + globalWait(now));
        if (readyAt > now) wakeAt = Math.min(wakeAt, readyAt);
        else launch(chat, next);
      }
    }
    if (wakeAt !== Infinity) {
      cancelWake = clock.setTimer(() => {
        cancelWake = () => {};
        pump();
      }, wakeAt - now);
    }
  }

  function launch(chat: Chat, next: Next): void {
    chat.busy = true;
    chat.bucket.tokens--;
    if (next.key !== undefined) {
      chat.volatile.delete(next.key);
      flying.set(next.key, { call: next.call, superseded: false });
    }
    // The request starts now (a throw becomes a rejection), so it is stamped with this moment's clock.
    const run: Promise<void> = new Promise((resolve) => resolve(request(next))).then(
      (result): Outcome => ({ kind: "done", result }),
      (error: unknown) => outcomeOf(error, next.call),
    ).then((outcome) => {
      inflight.delete(run);
      ended.push(clock.now());
      chat.busy = false;
      // Counted from the answer: whenever Telegram saw this edit, the next one comes an interval later.
      if (next.call.method.startsWith("edit")) chat.lastEditAt = clock.now();
      guard("settling a request", () => settle(chat, next, outcome));
      pump();
    });
    inflight.add(run);
  }

  function request({ call }: Next): Promise<unknown> {
    const payload: Record<string, unknown> = { ...call.params, chat_id: call.chat_id };
    if (call.edit_of !== undefined) payload["message_id"] = sent.get(call.edit_of);
    if (call.document) payload["document"] = new InputFile(Buffer.from(call.document.content, "utf8"), call.document.filename);
    return raw[call.method](payload, controller.signal);
  }

  function settle(chat: Chat, next: Next, outcome: Outcome): void {
    const now = clock.now();
    const superseded = next.key !== undefined && flying.get(next.key)?.superseded === true;
    if (next.key !== undefined) flying.delete(next.key);
    /** Puts a volatile call back unless something newer took its place. */
    const keep = (call: OutgoingCall): void => {
      if (next.key !== undefined && !superseded && !chat.volatile.has(next.key)) chat.volatile.set(next.key, call);
    };
    if (outcome.kind === "done") {
      chat.failures = 0;
      authFailures = 0;
      if (next.item) confirm(chat, next.item, outcome.result);
    } else if (outcome.kind === "plain") {
      if (next.item) next.item.call = plainText(next.item.call);
      else keep(plainText(next.call));
    } else if (outcome.kind === "drop") {
      if (next.item) drop(chat, next.item, outcome.reason);
      else say("warn", `telegram outbox: volatile ${next.key} dropped: ${outcome.reason}`);
    } else {
      keep(next.call);
      if (!running) return; // aborted by stop(): the item waits for the next start
      if (outcome.kind === "pause") {
        pausedUntil = Math.max(pausedUntil, now + outcome.ms);
        say("info", `telegram outbox: rate limited, pausing ${outcome.ms / 1000} s`);
      } else if (outcome.kind === "retry") {
        const delay = backoff(++chat.failures);
        chat.retryAt = now + delay;
        say("warn", `telegram outbox: ${next.call.method} to chat ${next.call.chat_id} failed, retrying in ${delay / 1000} s`, { reason: outcome.reason, attempt: chat.failures });
      } else {
        const delay = backoff(++authFailures);
        pausedUntil = Math.max(pausedUntil, now + delay);
        say("error", `telegram outbox: Telegram rejects the bot token; check it. Retrying in ${delay / 1000} s`, { reason: outcome.reason });
      }
    }
  }

  function checkIdle(): void {
    if (inflight.size > 0 || [...chats.values()].some((chat) => chat.queue.length > 0 || chat.volatile.size > 0)) return;
    for (const resolve of idleWaiters.splice(0)) resolve();
  }

  return {
    enqueue(call) {
      const id = `${String(++seq).padStart(12, "0")}-${randomBytes(3).toString("hex")}`;
      writeDurably(dir, `${id}.json`, JSON.stringify({ id, call, enqueued_at: new Date(clock.now()).toISOString() }));
      const chat = chatOf(call.chat_id);
      chat.queue.push({ id, call });
      const target = call.method.startsWith("send") ? undefined : targetOf(call);
      if (target !== undefined) {
        for (const [key, pending] of chat.volatile) if (targetOf(pending) === target) chat.volatile.delete(key);
        for (const flight of flying.values()) if (flight.call.chat_id === call.chat_id && targetOf(flight.call) === target) flight.superseded = true;
      }
      pump();
      return id;
    },
    replace(key, call) {
      for (const chat of chats.values()) chat.volatile.delete(key);
      const flight = flying.get(key);
      if (flight) flight.superseded = true;
      if (call) chatOf(call.chat_id).volatile.set(key, call);
      pump();
    },
    start() {
      if (running) return;
      running = true;
      controller = new AbortController();
      pump();
    },
    async stop() {
      running = false;
      cancelWake();
      const current = controller;
      const abort = clock.setTimer(() => current.abort(), STOP_GRACE_MS);
      await Promise.all(inflight);
      abort();
    },
    pending: () => [...chats.values()].reduce((sum, chat) => sum + chat.queue.length, 0),
    idle() {
      return new Promise((resolve) => {
        idleWaiters.push(resolve);
        checkIdle();
      });
    },
  };
}

function outcomeOf(error: unknown, call: OutgoingCall): Outcome {
  if (!(error instanceof GrammyError)) return { kind: "retry", reason: String(error) }; // HttpError: the network
  const { error_code: code, description } = error;
  if (code === 429) return error.parameters.retry_after !== undefined ? { kind: "pause", ms: error.parameters.retry_after * 1000 } : { kind: "retry", reason: description };
  if (code >= 500) return { kind: "retry", reason: description };
  if (code === 401 || code === 404) return { kind: "auth", reason: description };
  // Telegram rejects edits with identical content; a repeated delete finds nothing: both reached their goal.
  if (/message is not modified/.test(description) || (call.method === "deleteMessage" && /message to delete not found/.test(description))) return { kind: "done", result: true };
  if (/can't parse entities/.test(description) && String(call.params["parse_mode"]).toUpperCase() === "HTML") return { kind: "plain" };
  return { kind: "drop", reason: `${code}: ${description}` };
}

function backoff(failures: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (failures - 1));
}

/** The call without parse_mode, its text and caption with the HTML tags stripped and entities decoded. */
function plainText(call: OutgoingCall): OutgoingCall {
  const params = { ...call.params };
  delete params["parse_mode"];
  for (const field of ["text", "caption"]) {
    const value = params[field];
    if (typeof value === "string") params[field] = value.replace(/<[^>]*>/g, "").replace(/&(lt|gt|amp|quot);/g, (_, name: string) => HTML_ENTITIES[name]!);
  }
  return { ...call, params };
}

/** Temp file, fsync, rename, fsync the folder: after return the file survives a crash whole or not at all. */
function writeDurably(dir: string, name: string, text: string): void {
  const temp = join(dir, `.${name}.tmp`);
  syncWrite(temp, "w", text);
  renameSync(temp, join(dir, name));
  syncWrite(dir, "r"); // the rename itself
}

/** Opens `path` (a folder with "r"), writes `text` if given, and fsyncs before closing. */
function syncWrite(path: string, flags: "w" | "a" | "r", text?: string): void {
  const fd = openSync(path, flags, 0o600);
  try {
    if (text !== undefined) writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
