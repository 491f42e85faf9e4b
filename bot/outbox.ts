// The durable outbox for everything the bot sends to Telegram. Each call is a file written and
// fsynced before `enqueue` returns and removed only when Telegram answers ok, so an outage or a
// restart loses nothing. Per chat, what the person waits for (messages, approvals, deletes) leaves
// strictly in enqueue order, one request in flight at a time, so nothing arrives out of order or
// twice; status edits come after it (a newer edit of the same message replaces an older one, on
// disk too), and progress edits last. All waiting (rate limits, backoff, 429s) goes through the
// injected Clock; the limits and where they come from are in pacing.ts.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { GrammyError, InputFile } from "grammy";
import type { Api } from "grammy";
import type { Clock } from "../runtime/index.ts";
import { openSentRecord, SENT_FILE, syncWrite, writeDurably } from "./outbox-files.ts";
import { chatBucket, createGlobalWindow, DEFAULT_PACING, type Bucket, type PacingLimits } from "./pacing.ts";

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
  /**
   * "status": an edit of a status message (editMessageText). It waits until nothing else of its chat
   * is waiting and a slot is to spare, and a newer editMessageText or deleteMessage of the same
   * message replaces it unsent. Without a lane a call is one the person waits for: never dropped
   * for pacing, in enqueue order.
   */
  lane?: "status";
}

export interface OutboxItem {
  id: string;
  call: OutgoingCall;
}

export interface OutboxLimits extends PacingLimits {
  /** Volatile edits (`replace`) in one chat are at least this far apart, counted from the chat's last edit. */
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
   * and returns the item id. Per chat, items without a lane leave in enqueue order; a status edit
   * leaves after them, unless a newer one of the same message replaced it first (its file removed).
   */
  enqueue(call: OutgoingCall): string;
  /**
   * A volatile, coalescing call (progress edits): only the latest call per key is kept, in memory, and
   * sent once the chat has no stored items waiting and a slot to spare; edits at most once per
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
const ITEM_FILE = /^(\d{12})-[0-9a-f]{6}\.json$/;
const seqOf = (name: string): number => Number(/^(\d{12})-/.exec(name)?.[1] ?? 0);
const HTML_ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"' };

/** What a chat sends next: a stored item, or the volatile call under `key`; `edit`: from the edit lanes. */
interface Next { item?: OutboxItem; key?: string; call: OutgoingCall; edit: boolean }
interface Chat {
  /** Stored calls without a lane, in enqueue order; the head stays here until it is settled. */
  queue: OutboxItem[];
  /** Stored status edits, in enqueue order, at most one per message (but the one in flight). */
  edits: OutboxItem[];
  volatile: Map<string, OutgoingCall>;
  /** A queue item is in flight. */
  sending: boolean;
  /** An edit (stored status or volatile) is in flight: at most one, and only while no queue item is. */
  editing?: Next;
  bucket: Bucket;
  /** Nothing goes to this chat before (a 429's retry_after, or the backoff after a failure). */
  retryAt: number;
  failures: number;
  lastEditAt: number;
}
type Outcome =
  | { kind: "done"; result: unknown }
  | { kind: "retry"; reason: string } // network or 5xx: back off this chat
  | { kind: "pause"; ms: number } // 429: this chat waits retry_after, not a failure
  | { kind: "auth"; reason: string } // 401/404: the token is wrong; never drop, back off everything
  | { kind: "plain" } // HTML Telegram could not parse: once more as plain text
  | { kind: "drop"; reason: string };

export function createTelegramOutbox(options: TelegramOutboxOptions): TelegramOutbox {
  const { dir, api, clock } = options;
  const limits = { ...DEFAULT_PACING, editIntervalMs: 3_000, ...options.limits };
  /** Edits never take a chat's last token: it stays for the next message the person waits for. */
  const editNeeds = Math.min(2, limits.perChatBurst);
  const failedDir = join(dir, "failed");
  const raw = api.raw as unknown as Record<OutgoingCall["method"], (payload: Record<string, unknown>, signal?: AbortSignal) => Promise<unknown>>;
  const chats = new Map<number, Chat>();
  const global = createGlobalWindow(clock, limits.globalPerSecond);
  /** Volatile calls in flight by key; `superseded` once a newer call or a stored edit replaced them. */
  const flying = new Map<string, { call: OutgoingCall; superseded: boolean }>();
  /** Stored status edits that a newer one superseded while they were in flight. */
  const staleEdits = new Set<OutboxItem>();
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
  const sent = openSentRecord(dir, (error) => say("error", `telegram outbox: ${SENT_FILE} unreadable; earlier sends cannot be edited`, { error: String(error) }));
  let seq = 0;
  // The sequence continues past every id still referred to, so ids stay unique and ordered.
  for (const name of [...readdirSync(dir), ...readdirSync(failedDir), ...sent.ids()]) seq = Math.max(seq, seqOf(name));
  for (const name of readdirSync(dir).sort()) {
    if (name.endsWith(".tmp")) unlinkSync(join(dir, name)); // its write never completed
    if (!ITEM_FILE.test(name)) continue;
    const id = name.slice(0, -".json".length);
    if (sent.has(id) || existsSync(join(failedDir, name))) {
      unlinkSync(join(dir, name)); // confirmed or dropped just before a crash
      continue;
    }
    let item: OutboxItem;
    try {
      const { call } = JSON.parse(readFileSync(join(dir, name), "utf8")) as Partial<OutboxItem>;
      if (typeof call?.chat_id !== "number" || typeof call.method !== "string" || typeof call.params !== "object") throw new Error("not an outbox item");
      item = { id, call };
    } catch (error) {
      renameSync(join(dir, name), join(failedDir, name));
      say("error", `telegram outbox: unreadable item ${name} moved to failed/`, { error: String(error) });
      continue;
    }
    // In enqueue order, as before the restart: a status edit a newer one replaced (a crash came
    // between storing the newer and removing the older) is removed now.
    store(item);
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
      chat = { queue: [], edits: [], volatile: new Map(), sending: false, bucket: chatBucket(clock, chatId, limits), retryAt: 0, failures: 0, lastEditAt: -Infinity };
      chats.set(chatId, chat);
    }
    return chat;
  }

  /** Puts a stored item in its chat's lane, and removes what it supersedes. */
  function store(item: OutboxItem): void {
    const { call } = item;
    const chat = chatOf(call.chat_id);
    (call.lane === "status" ? chat.edits : chat.queue).push(item);
    const target = call.method.startsWith("send") ? undefined : targetOf(call);
    if (target === undefined) return;
    for (const [key, pending] of chat.volatile) if (targetOf(pending) === target) chat.volatile.delete(key);
    for (const flight of flying.values()) if (flight.call.chat_id === call.chat_id && targetOf(flight.call) === target) flight.superseded = true;
    // A whole new text, or no message at all: an older status edit of it would only be overwritten.
    if (call.method !== "editMessageText" && call.method !== "deleteMessage") return;
    for (const older of chat.edits.filter((edit) => edit !== item && targetOf(edit.call) === target)) {
      if (older === chat.editing?.item) staleEdits.add(older); // in flight: removed when it answers, unless it went through
      else guard("removing a superseded status edit", () => discard(chat, older));
    }
  }

  /**
   * Removes a superseded status edit, durably: its file is unlinked and the folder fsynced before
   * anything else happens, so a restart neither sends it nor puts it back in front of the newer one.
   */
  function discard(chat: Chat, item: OutboxItem): void {
    const at = chat.edits.indexOf(item);
    if (at >= 0) chat.edits.splice(at, 1);
    unlinkSync(join(dir, `${item.id}.json`));
    syncWrite(dir, "r");
  }

  /** The message an edit or delete aims at, comparable across `edit_of` and `message_id`. */
  function targetOf(call: OutgoingCall): unknown {
    return call.edit_of !== undefined ? (sent.get(call.edit_of) ?? call.edit_of) : call.params["message_id"];
  }

  /** Takes a settled item out of its lane (it is the head of the queue, or one of the edits). */
  function unqueue(chat: Chat, item: OutboxItem): void {
    if (chat.queue[0] === item) chat.queue.shift();
    const at = chat.edits.indexOf(item);
    if (at >= 0) chat.edits.splice(at, 1);
  }

  function finish(chat: Chat, item: OutboxItem): void {
    unqueue(chat, item);
    unlinkSync(join(dir, `${item.id}.json`));
  }

  function confirm(chat: Chat, item: OutboxItem, result: unknown): void {
    const messageId = (result as { message_id?: unknown } | null)?.message_id;
    if (item.call.method.startsWith("send") && typeof messageId === "number") {
      // Written before the item is removed: an item found in the sent file at start was delivered.
      guard(`writing ${SENT_FILE}`, () => sent.remember(item.id, messageId));
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
    unqueue(chat, item); // even when the files could not be moved
    guard("onDropped", () => options.onDropped?.(item, reason));
  }

  const unresolved = (call: OutgoingCall): boolean => call.edit_of !== undefined && !sent.has(call.edit_of);
  const dropUnresolved = (chat: Chat, item: OutboxItem): void => {
    const dropped = existsSync(join(failedDir, `${item.call.edit_of}.json`));
    drop(chat, item, `the message it refers to (${item.call.edit_of}) ${dropped ? "was dropped" : "is unknown or forgotten"}`);
  };

  /**
   * The chat's next queue item. Per-chat order means the send an `edit_of` names has settled by
   * now: unknown means dropped or not ours.
   */
  function nextMessage(chat: Chat): Next | undefined {
    for (let item = chat.queue[0]; item; item = chat.queue[0]) {
      if (!unresolved(item.call)) return { item, call: item.call, edit: false };
      dropUnresolved(chat, item);
    }
    return undefined;
  }

  /**
   * The chat's next edit: stored status edits first, then volatile ones. Asked only while the queue
   * is empty and nothing of it is in flight, so every send an edit names has settled.
   */
  function nextEdit(chat: Chat): Next | undefined {
    for (let item = chat.edits[0]; item; item = chat.edits[0]) {
      if (!unresolved(item.call)) return { item, call: item.call, edit: true };
      dropUnresolved(chat, item);
    }
    for (const [key, call] of chat.volatile) {
      if (!unresolved(call)) return { key, call, edit: true };
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
    /** Starts `next` now, or notes when it may start (Infinity: when a request in flight answers). */
    const tryLaunch = (chat: Chat, next: Next, tokens: number, notBefore: number): void => {
      const readyAt = Math.max(chat.retryAt, notBefore, now + chat.bucket.waitMs(tokens), now + global.waitMs(inflight.size));
      if (readyAt > now) wakeAt = Math.min(wakeAt, readyAt);
      else launch(chat, next);
    };
    if (now < pausedUntil) wakeAt = pausedUntil;
    else {
      for (const chat of chats.values()) {
        const message = chat.sending ? undefined : nextMessage(chat);
        if (message) tryLaunch(chat, message, 1, 0);
        if (chat.sending || chat.editing || chat.queue.length > 0) continue;
        const edit = nextEdit(chat);
        if (edit) tryLaunch(chat, edit, editNeeds, edit.key !== undefined ? chat.lastEditAt + limits.editIntervalMs : 0);
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
    if (next.edit) chat.editing = next;
    else chat.sending = true;
    chat.bucket.take();
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
      global.ended();
      if (next.edit) chat.editing = undefined;
      else chat.sending = false;
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
    // A superseded status edit that did not go through is not tried again: the newer one follows.
    const stale = next.item !== undefined && staleEdits.delete(next.item) && outcome.kind !== "done";
    if (stale) guard("removing a superseded status edit", () => discard(chat, next.item!));
    /** Puts a volatile call back unless something newer took its place. */
    const keep = (call: OutgoingCall): void => {
      if (next.key !== undefined && !superseded && !chat.volatile.has(next.key)) chat.volatile.set(next.key, call);
    };
    if (outcome.kind === "done") {
      chat.failures = 0;
      authFailures = 0;
      if (next.item) confirm(chat, next.item, outcome.result);
    } else if (stale) {
      if (outcome.kind !== "plain" && outcome.kind !== "drop") backOff(chat, next, outcome, now);
    } else if (outcome.kind === "plain") {
      if (next.item) next.item.call = plainText(next.item.call);
      else keep(plainText(next.call));
    } else if (outcome.kind === "drop") {
      if (next.item) drop(chat, next.item, outcome.reason);
      else say("warn", `telegram outbox: volatile ${next.key} dropped: ${outcome.reason}`);
    } else {
      keep(next.call);
      backOff(chat, next, outcome, now);
    }
  }

  /** After a request that may be tried again: how long its chat, or everything, waits. */
  function backOff(chat: Chat, next: Next, outcome: Extract<Outcome, { kind: "retry" | "pause" | "auth" }>, now: number): void {
    if (!running) return; // aborted by stop(): the item waits for the next start
    if (outcome.kind === "pause") {
      // Exactly retry_after, for this chat only: Telegram answered about this chat.
      chat.retryAt = Math.max(chat.retryAt, now + outcome.ms);
      say("info", `telegram outbox: chat ${next.call.chat_id} rate limited, pausing it ${outcome.ms / 1000} s`);
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


  function checkIdle(): void {
    if (inflight.size > 0 || [...chats.values()].some((chat) => chat.queue.length > 0 || chat.edits.length > 0 || chat.volatile.size > 0)) return;
    for (const resolve of idleWaiters.splice(0)) resolve();
  }

  return {
    enqueue(call) {
      const id = `${String(++seq).padStart(12, "0")}-${randomBytes(3).toString("hex")}`;
      writeDurably(dir, `${id}.json`, JSON.stringify({ id, call, enqueued_at: new Date(clock.now()).toISOString() }));
      store({ id, call }); // after the new file is durable: a crash in between leaves both, and the load keeps the newer
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
    pending: () => [...chats.values()].reduce((sum, chat) => sum + chat.queue.length + chat.edits.length, 0),
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
