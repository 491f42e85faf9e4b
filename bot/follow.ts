import type { SessionEvent, SessionResult } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { escapeHtml, markdownToTelegramHtml, progressText, splitForTelegram, type ProgressStatus } from "./format.ts";
import type { OutgoingCall, TelegramOutbox } from "./outbox.ts";
import { amount } from "./reports.ts";
import type { BotStore } from "./store.ts";

/**
 * Turns task events into what the phone shows: for a task sent from Telegram, one status message
 * edited in place (the outbox throttles edits per chat, behind every message the person waits for)
 * and the result as a new message, then the status message's final state; for other
 * tasks, notifications to every user (as `telegram.notify` chooses). Everything here is a reaction
 * to events; nothing is asked of the daemon.
 */

export type NotifyKind = "finished" | "failed" | "approval" | "budget";

export interface FollowOptions {
  outbox: TelegramOutbox;
  store: BotStore;
  /** Chats to notify about tasks not sent from Telegram. */
  userChats(): number[];
  notify: readonly NotifyKind[];
  /** The task file's `notify`, if it has one. */
  notifyOf(id: string): boolean | undefined;
  /** A task's title (after a restart, events start with `resumed`, not `session_start`). */
  titleOf(id: string): string;
  /** The link to a task's dashboard page (`taskPageLink`), or "" when there is no public one. */
  taskLink(id: string): string;
  /**
   * Whether this machine ran the task (several machines): of one that ran on another machine and
   * was delivered here, the machine that ran it told (cli/telegram-notices.ts); only its chat hears it here.
   */
  ranHere(id: string): boolean;
}

export interface Follower {
  onEvent(id: string, message: { type: "event"; event: SessionEvent } | { type: "finished"; record: TaskRecord; result: SessionResult }): void;
  /** Queues the status message for a task just sent from `chat` in reply to `request`. */
  started(task: TaskRecord, chat: number, request: number): void;
}

const STATE_LABEL: Record<string, string> = { queued: "⏳ queued", running: "⚙️ working", waiting_approval: "🔐 waiting for approval", done: "✅ done", failed: "❌ failed", cancelled: "⏹ cancelled" };

export function createFollower(options: FollowOptions): Follower {
  const { outbox, store } = options;
  const progress = new Map<string, ProgressStatus & { last?: string }>();

  const chatOf = (id: string) => store.data.tasks[id]?.chat;
  /** The status message: progress, and (with `dashboard.public_url`) where to watch it live. */
  const statusText = (id: string, status: ProgressStatus) => {
    const link = options.taskLink(id);
    return link ? `${progressText(status)}\n${link}` : progressText(status);
  };
  const statusEdit = (id: string, text: string): OutgoingCall | undefined => {
    const entry = store.data.tasks[id];
    if (!entry?.status) return undefined;
    const { chat, message, outbox: sent } = entry.status;
    return message !== undefined
      ? { method: "editMessageText", chat_id: chat, params: { message_id: message, text, parse_mode: "HTML", link_preview_options: { is_disabled: true } } }
      : sent ? { method: "editMessageText", chat_id: chat, edit_of: sent, params: { text, parse_mode: "HTML", link_preview_options: { is_disabled: true } } } : undefined;
  };
  /** Telegram rejects an edit with identical text, and an edit costs a slot of the chat's rate: skip repeats. */
  const show = (id: string, status: ProgressStatus & { last?: string }) => {
    const text = statusText(id, status);
    if (text === status.last) return;
    status.last = text;
    outbox.replace(`progress:${id}`, statusEdit(id, text));
  };
  const statusOf = (id: string, title: string) => {
    let status = progress.get(id);
    if (!status) progress.set(id, (status = { title, step: 0, tools: [], tokens: 0, costUsd: 0, state: STATE_LABEL.running! }));
    return status;
  };
  const send = (chat: number, text: string, tag?: string, replyTo?: number): string =>
    outbox.enqueue({
      method: "sendMessage",
      chat_id: chat,
      params: { text, parse_mode: "HTML", link_preview_options: { is_disabled: true }, ...(replyTo ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } } : {}) },
      ...(tag ? { tag } : {}),
    });
  const audience = (id: string, kind: NotifyKind, chat = chatOf(id)): number[] => {
    const who = hears(kind, chat, options.notifyOf(id), options.notify);
    return who === "users" ? options.userChats() : who === undefined ? [] : [who];
  };

  const finished = (record: TaskRecord, result: SessionResult) => {
    const id = record.id;
    const status = progress.get(id);
    progress.delete(id);
    // A task this bot did not see sent (another machine's bot took it, several machines): its source names the chat.
    const entry = store.data.tasks[id] ?? telegramSource(record.spec.source);
    outbox.replace(`progress:${id}`, undefined); // the result makes any progress text moot
    const kind: NotifyKind = result.status === "done" ? "finished" : "failed";
    for (const chat of entry?.chat === undefined && !options.ranHere(id) ? [] : audience(id, kind, entry?.chat)) {
      const replyTo = chat === entry?.chat ? entry.request : undefined;
      for (const message of resultMessages(record, result, options.taskLink(id))) {
        if (message.document) {
          outbox.enqueue({ method: "sendDocument", chat_id: chat, params: { caption: message.caption, parse_mode: "HTML" }, document: message.document, tag: `result:${id}` });
        } else send(chat, message.text, `result:${id}`, replyTo);
      }
      // A staged task's changes: the diff as a document, with Apply and Discard under it.
      if (result.staged) {
        const staged = stagedMessage(record.id, result.staged);
        const params = { caption: staged.caption, parse_mode: "HTML", reply_markup: staged.buttons };
        if (staged.diff) outbox.enqueue({ method: "sendDocument", chat_id: chat, params, document: { filename: `${record.id}.diff`, content: staged.diff }, tag: `result:${id}` });
        else outbox.enqueue({ method: "sendMessage", chat_id: chat, params: { text: staged.caption, parse_mode: "HTML", reply_markup: staged.buttons }, tag: `result:${id}` });
      }
    }
    if (entry?.status) {
      // The status message's final state: stored after the result and in the status lane, so it
      // never holds the result up and goes when the chat has a slot to spare.
      const final = statusText(id, { ...(status ?? { title: record.title, step: record.turns, tools: [], tokens: 0 }), costUsd: result.costUsd, state: STATE_LABEL[result.status] ?? result.status });
      const call = statusEdit(id, final);
      if (call && final !== status?.last) outbox.enqueue({ ...call, lane: "status" });
    }
  };

  return {
    started(task, chat, request) {
      const status = statusOf(task.id, task.title);
      status.state = STATE_LABEL[task.state] ?? task.state;
      status.last = statusText(task.id, status);
      const sent = send(chat, status.last, `status:${task.id}`, request);
      store.update((data) => {
        data.tasks[task.id] = { chat, request, status: { chat, outbox: sent } };
        store.rememberMessage(data, chat, request, task.id);
      });
    },
    onEvent(id, message) {
      if (message.type === "finished") return finished(message.record, message.result);
      const event = message.event;
      const followed = chatOf(id) !== undefined;
      // Told by the machine that runs the task (several machines: a task elsewhere tells through cli/telegram-notices.ts).
      if (event.type === "budget_warning" && options.ranHere(id)) for (const chat of audience(id, "budget")) send(chat, budgetWarning(id, event, options.taskLink), `note:${id}`);
      if (!followed) return;
      const status = progress.get(id) ?? statusOf(id, options.titleOf(id));
      const working = status.state;
      status.state = STATE_LABEL.running!; // any of these means it runs (a task that waited in the queue said "queued")
      switch (event.type) {
        case "session_start":
          status.title = event.task.title;
          break;
        case "model_response":
          status.step = event.turn;
          status.tokens += event.usage.input_tokens + event.usage.output_tokens + event.usage.cache_read_input_tokens + event.usage.cache_creation_input_tokens;
          status.costUsd += event.cost_usd;
          break;
        case "tool_start":
          status.tools = [...status.tools, toolLine(event.name, event.input)].slice(-3);
          break;
        case "approval_requested":
          status.state = STATE_LABEL.waiting_approval!;
          break;
        case "approval_answered":
        case "resumed":
        case "user":
          break;
        default:
          status.state = working;
          return;
      }
      show(id, status);
    },
  };
}

/**
 * Who hears of a task: its chat when it came from Telegram; else every user ("users") when the
 * task file's `notify` or `telegram.notify` asks for this kind; else nobody (undefined).
 */
export function hears(kind: NotifyKind, chat: number | undefined, wanted: boolean | undefined, notify: readonly NotifyKind[]): number | "users" | undefined {
  if (chat !== undefined) return chat;
  if (kind === "approval" || wanted === undefined) return notify.includes(kind) ? "users" : undefined;
  return wanted ? "users" : undefined;
}

/** "⚠️ Task … has used 80% of its budget (…)", with the task's page when there is a public one. */
export function budgetWarning(id: string, event: Extract<SessionEvent, { type: "budget_warning" }>, taskLink: (id: string) => string): string {
  const used = amount(event.kind, event.used);
  const limit = amount(event.kind, event.limit);
  const what = { turns: "turns", usd: "budget", time: "time", daily_usd: "today's budget" }[event.kind] ?? event.kind;
  const link = taskLink(id.split(".")[0]!); // a specialist's session is <task>.<call>.<name>: its task's page
  return `⚠️ Task <code>${escapeHtml(id)}</code> has used ${Math.round((event.used / event.limit) * 100)}% of its ${what} (${used} of ${limit}).${link ? `\n${link}` : ""}`;
}

/** The chat and message a task sent from Telegram came from: its source is `telegram:CHAT:MESSAGE`. */
export function telegramSource(source: string | undefined): { chat: number; request: number; status?: undefined } | undefined {
  const match = /^telegram:(-?\d+):(\d+)$/.exec(source ?? "");
  return match ? { chat: Number(match[1]), request: Number(match[2]) } : undefined;
}

type ResultMessage = { text: string; document?: undefined } | { document: { filename: string; content: string }; caption: string };

/**
 * The answer as Telegram HTML, split under 4,096 characters, or a `.md` document past a few parts.
 * `link` (to the task's dashboard page) goes at the end of the last part, whole: the parts are cut
 * with room left for it.
 */
export function resultMessages(record: Pick<TaskRecord, "id" | "title">, result: SessionResult, link = ""): ResultMessage[] {
  const head = `${result.status === "done" ? "✅" : result.status === "cancelled" ? "⏹" : "❌"} <b>${escapeHtml(record.title)}</b> · <code>${escapeHtml(record.id)}</code>`;
  const why = result.status === "done" ? "" : `\n${result.status}${result.reason ? `: ${escapeHtml(result.reason)}` : ""}`;
  const answer = result.answer.trim();
  const body = answer ? `\n\n${markdownToTelegramHtml(answer)}` : result.status === "done" ? "\n\n(no answer)" : "";
  const tail = link ? `\n\n${link}` : "";
  const split = splitForTelegram(`${head}${why}${body}`, { limit: TELEGRAM_LIMIT - visibleLength(tail) });
  if ("parts" in split) return split.parts.map((text, i, parts) => ({ text: i === parts.length - 1 ? `${text}${tail}` : text }));
  return [{ document: { filename: `${record.id}.md`, content: result.answer }, caption: `${head}\nThe answer is long, so it is attached (${result.answer.length.toLocaleString("en")} characters).${tail}` }];
}

const TELEGRAM_LIMIT = 4096;
/** Telegram's limit on a document's caption. */
const CAPTION_LIMIT = 1024;

/**
 * The summary of a staged task's changes (within a caption's 1,024 characters), its diff, and the
 * two buttons. `machine`: the machine holding the copy, when it is not the bot's (several machines).
 */
export function stagedMessage(id: string, staged: NonNullable<SessionResult["staged"]>, machine?: string): { caption: string; diff?: string; buttons: { inline_keyboard: { text: string; callback_data: string }[][] } } {
  const buttons = { inline_keyboard: [[{ text: "Apply", callback_data: `st:${id}:a` }, { text: "Discard", callback_data: `st:${id}:d` }]] };
  const where = machine ? ` on ${escapeHtml(machine)}` : "";
  if (staged.changes.length === 0) return { caption: `📝 <code>${escapeHtml(id)}</code> changed nothing in ${escapeHtml(staged.original)}${where}.`, buttons: { inline_keyboard: [[{ text: "Discard", callback_data: `st:${id}:d` }]] } };
  const head = `📝 <b>Not applied yet</b>: ${staged.changes.length} change${staged.changes.length === 1 ? "" : "s"} to ${escapeHtml(staged.original)}, made on a copy${where}. The diff is attached.`;
  const lines: string[] = [];
  for (const line of staged.changes) {
    const next = `${head}\n<pre>${escapeHtml([...lines, line].join("\n"))}</pre>`;
    if (visibleLength(next) > CAPTION_LIMIT - 40) break;
    lines.push(line);
  }
  const more = staged.changes.length - lines.length;
  const caption = `${head}\n<pre>${escapeHtml(lines.join("\n"))}</pre>${more ? `\n… and ${more} more` : ""}`;
  return { caption, ...(staged.diff ? { diff: staged.diff } : {}), buttons };
}

/** What Telegram counts of a fixed line of ours: its text without tags (it has no entities). */
function visibleLength(html: string): number {
  return html.replace(/<[^>]*>/g, "").length;
}

function toolLine(name: string, input: unknown): string {
  const record = input && typeof input === "object" ? (input as Record<string, unknown>) : {};
  const main = record.command ?? record.path ?? record.pattern ?? record.url;
  const detail = typeof main === "string" ? main.split("\n")[0]! : "";
  return detail ? `${name}: ${detail}` : name;
}
