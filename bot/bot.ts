import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { Bot, GrammyError, HttpError, type Context } from "grammy";
import type { TraceLogger as Logger } from "../runtime/trace.ts";
import type { ApprovalRecord, ApprovalStore, Clock, Config } from "../runtime/index.ts";
import type { Daemon, TaskRecord } from "../tasks/index.ts";
import { createTelegramApprover, type TelegramApprover } from "./approvals.ts";
import { createFollower } from "./follow.ts";
import { busyText, followElsewhere } from "./follow-elsewhere.ts";
import { escapeHtml, taskPageLink } from "./format.ts";
import { createTelegramOutbox, type TelegramOutbox } from "./outbox.ts";
import { createPolling, type PollingLease } from "./polling.ts";
import { createPairingStore, type PairedUser, type PairingCodes, type PairingStore } from "./pairing.ts";
import { helpText, statusText, TASKS_SHOWN, tasksText, traceText } from "./reports.ts";
import { budgetText, spendSummary, type SpendSummary } from "./spend.ts";
import { openBotStore, type BotStore, type SharedBotState } from "./store.ts";
import type { ToolReview } from "../runtime/mcp/reviews.ts";
import { reviewButtons, reviewHtml } from "./tool-review.ts";
import type { AskedFollowUp } from "../runtime/store/pg-follow-ups.ts";
import type { StagedPress } from "../runtime/store/pg-staged.ts";
import { createPresses } from "./presses.ts";

/**
 * The Telegram surface, run inside `nightshift start`. We use grammy for the API client, its
 * errors and update routing, but drive long polling ourselves (bot/polling.ts): the offset must be
 * saved only after an update is handled, and a watchdog must restart a poll that stopped
 * completing — neither of which `bot.start()` allows. Everything sent goes through the durable outbox.
 */

export interface TelegramBotOptions {
  token: string;
  /** Any Bot API server (tests start one); default Telegram's. */
  apiRoot?: string;
  /** `state/telegram` under NIGHTSHIFT_HOME. */
  dir: string;
  settings: Config["telegram"];
  limits: { dailyUsd: number; perTaskUsd: number };
  clock: Clock;
  daemon: Daemon;
  approvals: ApprovalStore;
  sessionsDir: string;
  /** /budget's numbers; default, this machine's session logs (with several machines, every machine's: cli/shared-spend.ts). */
  spend?: () => Promise<SpendSummary>;
  trace: Logger;
  /** Builds and queues a task; `files` land in its workdir before it starts. */
  submit(request: { prompt: string; source: string; files: TelegramFile[] }): Promise<TaskRecord>;
  /** Writes files into an existing task's workdir (a document sent as a reply). */
  attach(task: TaskRecord, files: TelegramFile[]): string[];
  /** /memory: the memory and its last changes, as Telegram HTML; `undo` restores the previous MEMORY.md. */
  memory: { show(): Promise<string>; undo(): string };
  /** /digest: the digest now (Telegram HTML). */
  digest(): Promise<string>;
  readEvents(id: string): Promise<import("../runtime/index.ts").SessionEvent[]>;
  /** /dashboard: a new one-time login link (cli/dashboard.ts loginLink); `local` when it is on loopback. */
  dashboardLink(): { url: string; until: string; local: boolean };
  /** `dashboard.public_url`: task messages link to the task's page there. */
  dashboardUrl?: string;
  /**
   * A press of Apply or Discard under a staged task's changes (cli/changes.ts), in message `message`
   * of `chat`. `waiting`: asked of the machine that holds the copy (several machines), which tells the chat.
   */
  stagedAction?(id: string, action: "apply" | "discard", press: { by: string; chat: number; message: number }): Promise<{ ok: boolean; message: string; waiting?: boolean }>;
  /** A press of "Approve" under an MCP tool review: pins the listing it showed, for every machine with a shared store (runtime/mcp/reviews.ts approveReview). */
  approveTools?(server: string, id: string, by: string): Promise<{ ok: boolean; message: string; /** why it failed, for the trace only */ error?: string }>;
  /** Several machines on one PostgreSQL: this bot runs while this machine holds the Telegram lease. */
  cluster?: BotCluster;
}

/**
 * The bot on one of several machines (cli/telegram-lease.ts over runtime/store/pg-telegram.ts):
 * where the updates start and each update taken in the shared store before it is handled
 * (bot/polling.ts), the bot's state shared with whichever machine runs the bot next, and replies
 * to tasks that ran on another machine.
 */
export interface BotCluster extends PollingLease {
  state: SharedBotState;
  /** Someone paired through this bot. Must not throw. */
  paired(user: PairedUser): void;
  /** The pairing code made by `nightshift pair` on any machine (runtime/store/pg-pairing.ts). */
  pairingCodes: PairingCodes;
  /** A reply to a task this machine does not hold: the machine that ran it goes on with it. */
  followUp(id: string, text: string): Promise<AskedFollowUp>;
  /** Apply or Discard of a staged task whose copy is on another machine: asked of it (cli/staged-elsewhere.ts); undefined when no other machine ran the task. */
  stagedElsewhere(id: string, press: StagedPress): Promise<{ ok: boolean; message: string; waiting?: boolean } | undefined>;
  /** Another machine's task by its id, or the tasks whose id starts or ends with `part` (at most 2), from the store. */
  findTasks(part: string): Promise<TaskRecord[]>;
  /** /tasks with several machines: every machine's newest tasks (each with its machine) and a line on the machines. */
  overview(limit: number): Promise<{ tasks: TaskRecord[]; machineOf(id: string): string | undefined; machines: string }>;
}

export interface TelegramFile {
  name: string;
  content: Buffer;
}

export interface TelegramBot {
  readonly approver: TelegramApprover;
  /** True when someone can answer an approval here (a paired or allowed user). */
  hasUsers(): boolean;
  /** The chats of every paired or allowed user. */
  users(): number[];
  /** A notice for every user (a rejected inbox file). */
  notice(html: string): void;
  /** Shows every user an MCP server's new or changed tools, with Approve and Keep withheld buttons. */
  reviewTools(review: ToolReview): void;
  /** Starts polling and sending in the background; never throws for an unreachable Telegram. */
  start(): void;
  /**
   * Stops telling of tasks' events at once (several machines: this machine's term as the bot ended;
   * what happens now is told through the shared queue, by whichever machine runs the bot next). What
   * its outbox holds still goes out until `stop`.
   */
  mute(): void;
  stop(): Promise<void>;
  readonly outbox: TelegramOutbox;
  /** Resolves after the next completed poll (tests). */
  polled(): Promise<void>;
  /** Since when the requests to Telegram have failed (bot/polling.ts); undefined while it answers. */
  unreachableSince(): number | undefined;
}

const STRANGER_LOG_INTERVAL = 10 * 60_000;
const DOWNLOAD_TIMEOUT = 60_000;

export function createTelegramBot(options: TelegramBotOptions): TelegramBot {
  const { clock, daemon, settings, trace } = options;
  const bot = new Bot(options.token, { client: { ...(options.apiRoot ? { apiRoot: options.apiRoot } : {}), timeoutSeconds: Math.ceil(settings.poll_timeout / 1000) + 30 } });
  const redact = (text: string) => text.split(options.token).join("<token>");
  const log = (level: "info" | "warn" | "error", message: string, fields: Record<string, unknown> = {}) => trace[level]({ event: "telegram", ...fields }, redact(message));

  const { cluster } = options;
  const store: BotStore = openBotStore(options.dir, (message) => log("error", message), cluster?.state);
  const pairing: PairingStore = createPairingStore(options.dir, clock, cluster?.pairingCodes);
  const users = (): number[] => [...new Set([...settings.allowed_users, ...pairedUsers()])];
  const allowed = (id: number) => {
    if (settings.allowed_users.includes(id)) return true;
    try {
      return pairing.isPaired(id);
    } catch (error) {
      log("error", (error as Error).message); // a damaged users.json: nobody paired is served until it is fixed
      return false;
    }
  };
  const pairedUsers = () => {
    try {
      return pairing.users().map((user) => user.id);
    } catch {
      return [];
    }
  };

  const outbox = createTelegramOutbox({
    dir: join(options.dir, "outbox"),
    api: bot.api,
    clock,
    limits: { editIntervalMs: settings.edit_interval },
    log: (level, message, fields) => log(level, message, fields),
    onSent(item, result) {
      const message = (result as { message_id?: number } | undefined)?.message_id;
      const [kind, id] = splitTag(item.call.tag);
      if (message === undefined || !kind || !id) return;
      store.update((data) => {
        if (kind === "status" && data.tasks[id]?.status?.outbox === item.id) data.tasks[id]!.status!.message = message;
        if (kind === "approval") for (const place of data.approvals[id]?.places ?? []) if (place.outbox === item.id) place.message = message;
        if (kind !== "approval") store.rememberMessage(data, item.call.chat_id, message, id);
      });
    },
  });
  const reply = (chat: number, text: string, replyTo?: number) =>
    outbox.enqueue({ method: "sendMessage", chat_id: chat, params: { text, parse_mode: "HTML", link_preview_options: { is_disabled: true }, ...(replyTo ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } } : {}) } });

  const taskLink = (id: string) => taskPageLink(options.dashboardUrl, id);
  const follower = createFollower({ outbox, store, userChats: users, notify: settings.notify, titleOf: (id) => daemon.get(id)?.title ?? "Task", notifyOf: (id) => daemon.get(id)?.spec.notify, taskLink, ranHere: (id) => daemon.get(id) !== undefined });
  const approver = createTelegramApprover({
    store: options.approvals,
    outbox,
    bot: store,
    clock,
    taskLink,
    chatsFor: (record: ApprovalRecord) => {
      const chat = store.data.tasks[record.session.split(".")[0]!]?.chat; // a specialist's session is <task>.<call>.<name>
      return chat !== undefined ? [chat] : settings.notify.includes("approval") ? users() : [];
    },
  });

  // ------------------------------------------------------------------------------------------
  // Who may talk to the bot
  // ------------------------------------------------------------------------------------------
  const strangers = new Map<number, { logged: number; suppressed: number }>();
  const stranger = (ctx: Context, what: string) => {
    const id = ctx.from?.id ?? 0;
    const seen = strangers.get(id);
    if (seen && clock.now() - seen.logged < STRANGER_LOG_INTERVAL) {
      seen.suppressed++;
      return;
    }
    if (strangers.size > 1000) strangers.clear();
    strangers.set(id, { logged: clock.now(), suppressed: 0 });
    const who = ctx.from?.username ? `@${ctx.from.username}` : ctx.from?.first_name ?? "someone";
    log("warn", `ignored ${what} from ${who} (Telegram id ${id}), who is not paired${seen?.suppressed ? ` (${seen.suppressed} more since the last note)` : ""}; to let them in: nightshift pair, or telegram.allowed_users: [${id}]`, { from: id });
  };
  const byOf = (ctx: Context) => `telegram:${ctx.from?.username ? `@${ctx.from.username}` : ctx.from?.id}`;

  bot.use(async (ctx, next) => {
    if (ctx.chat && ctx.chat.type !== "private") return; // groups are not a place for a personal agent
    const from = ctx.from;
    if (!from) return;
    if (allowed(from.id)) return next();
    const text = ctx.message?.text ?? "";
    const start = /^\/start(?:@\w+)?\s+(.+)/.exec(text);
    if (!start) return stranger(ctx, ctx.callbackQuery ? "a button press" : "a message");
    // Several machines: the code is in the shared store, which may not answer; no reply then either (they can send it again).
    const result = await pairing.redeem(start[1]!, { id: from.id, ...(from.username ? { username: from.username } : {}), first_name: from.first_name }).catch((error: Error) => void log("warn", `could not check a pairing code from Telegram id ${from.id}: ${error.message}`, { from: from.id }));
    if (!result) return;
    if (!result.ok) return stranger(ctx, `a pairing code (${result.problem})`); // no answer: the bot does not reveal itself
    log("info", `paired with ${from.username ? `@${from.username}` : from.first_name} (Telegram id ${from.id})`, { from: from.id });
    cluster?.paired(result.user);
    reply(ctx.chat!.id, `Paired. I am your Nightshift.\n\n${helpText()}`);
  });

  // ------------------------------------------------------------------------------------------
  // Commands
  // ------------------------------------------------------------------------------------------
  const chatOf = (ctx: Context) => ctx.chat!.id;
  const messageOf = (ctx: Context) => ctx.message!.message_id;
  /** An id, a unique end or start of one, or (none given) the task replied to or the latest. */
  /** Several machines: a task this machine does not hold, from the store (none when it does not answer). */
  const elsewhere = async (part: string): Promise<TaskRecord[]> => (cluster ? await cluster.findTasks(part).catch(() => []) : []);
  const resolveTask = async (ctx: Context, arg: string): Promise<TaskRecord | string> => {
    if (!arg) {
      const replied = ctx.message?.reply_to_message;
      const id = replied ? store.taskOfMessage(chatOf(ctx), replied.message_id) : undefined;
      const task = id ? (daemon.get(id) ?? (await elsewhere(id))[0]) : daemon.tasks.overview(1)[0];
      return task ?? "There are no tasks yet. Send me a message to start one.";
    }
    const exact = daemon.get(arg);
    if (exact) return exact;
    const here = daemon.tasks.idsMatching(arg);
    const matches = here.length ? here.map((id) => daemon.get(id)).filter((task) => task !== undefined) : await elsewhere(arg);
    if (matches.length === 1) return matches[0]!;
    return matches.length ? `<code>${escapeHtml(arg)}</code> matches ${matches.length} tasks; give more of the id (/tasks lists them).` : `There is no task <code>${escapeHtml(arg)}</code>; /tasks lists them.`;
  };
  const withTask = (handler: (ctx: Context, task: TaskRecord) => Promise<string> | string) => async (ctx: Context) => {
    const task = await resolveTask(ctx, String(ctx.match ?? "").trim());
    reply(chatOf(ctx), typeof task === "string" ? task : await handler(ctx, task), messageOf(ctx));
  };

  bot.command("start", (ctx) => void reply(chatOf(ctx), helpText()));
  bot.command("help", (ctx) => void reply(chatOf(ctx), helpText()));
  bot.command("tasks", async (ctx) => {
    // Several machines: every machine's tasks and the machines' heartbeats; this machine's alone when the store does not answer.
    const all = cluster ? await cluster.overview(TASKS_SHOWN).catch(() => undefined) : undefined;
    reply(chatOf(ctx), all ? tasksText(all.tasks, clock.now(), all.tasks.length, all) : tasksText(daemon.tasks.overview(TASKS_SHOWN), clock.now(), daemon.tasks.count()));
  });
  bot.command("status", withTask(async (_ctx, task) => statusText(task, task.id, await options.readEvents(task.id).catch(() => []), clock.now())));
  bot.command("trace", withTask(async (_ctx, task) => traceText(task, task.id, await options.readEvents(task.id).catch(() => []))));
  bot.command("cancel", async (ctx) => {
    const arg = String(ctx.match ?? "").trim();
    const replied = ctx.message?.reply_to_message;
    if (!arg && !(replied && store.taskOfMessage(chatOf(ctx), replied.message_id))) {
      // No id and no reply: the one task that is active, or a question.
      const active = daemon.tasks.active();
      if (active.length === 0) return void reply(chatOf(ctx), "Nothing is running or queued.", messageOf(ctx));
      if (active.length > 1) return void reply(chatOf(ctx), `${active.length} tasks are active; say which:\n${active.map((task) => `/cancel ${escapeHtml(task.id.slice(-8))} · ${escapeHtml(task.title)}`).join("\n")}`, messageOf(ctx));
      return void reply(chatOf(ctx), await cancelText(ctx, active[0]!), messageOf(ctx));
    }
    await withTask(cancelText)(ctx);
  });
  const cancelText = async (ctx: Context, task: TaskRecord) => {
    const outcome = await daemon.cancel(task.id, `cancelled from Telegram by ${byOf(ctx).slice(9)}`);
    const id = `<code>${escapeHtml(task.id)}</code>`;
    return { cancelling: `Stopping ${id}: its running command is killed.`, cancelled: `Cancelled ${id} before it started.`, finished: `${id} has already ${task.state === "done" ? "finished" : task.state}.`, unknown: `There is no task ${id}.` }[outcome];
  };
  bot.command("approvals", (ctx) => {
    const shown = approver.showPending(chatOf(ctx));
    if (!shown) reply(chatOf(ctx), "No approvals are waiting.");
  });
  bot.command("budget", async (ctx) => void reply(chatOf(ctx), budgetText(await (options.spend?.() ?? spendSummary(options.sessionsDir, clock.now())), options.limits)));
  bot.command("memory", async (ctx) => {
    const undo = String(ctx.match ?? "").trim() === "undo";
    reply(chatOf(ctx), undo ? options.memory.undo() : await options.memory.show(), messageOf(ctx));
  });
  bot.command("digest", async (ctx) => void reply(chatOf(ctx), await options.digest()));
  bot.command("dashboard", async (ctx) => {
    const { url, until, local } = options.dashboardLink();
    const text = [
      `<b>Dashboard</b>: ${escapeHtml(url)}`,
      "",
      `Open it and press the button. The link works once and expires in 10 minutes, at ${escapeHtml(until)}.`,
      ...(local ? ["It is on this machine's loopback: it opens there, or through a tunnel (set dashboard.public_url to the tunnel's address and links use it)."] : []),
    ].join("\n");
    // Not through the outbox, which stores every call under state/ until it is sent: a copy of the
    // secret there would sign someone in. Previews off: a preview fetches the link and would spend it.
    await ctx.api.sendMessage(chatOf(ctx), text, { parse_mode: "HTML", link_preview_options: { is_disabled: true } });
  });

  // ------------------------------------------------------------------------------------------
  // Buttons, documents, messages
  // ------------------------------------------------------------------------------------------
  const presses = createPresses({ options, outbox, reply, log, describe });
  bot.on("callback_query:data", async (ctx) => {
    const chat = ctx.chat?.id ?? ctx.from.id;
    const message = ctx.callbackQuery.message?.message_id ?? 0;
    const data = ctx.callbackQuery.data;
    const text = data.startsWith("st:") ? await presses.staged(data, chat, message, byOf(ctx)) : data.startsWith("mt:") ? await presses.review(data, chat, message, byOf(ctx)) : approver.press(data, chat, message, byOf(ctx));
    // Not through the outbox: an answer is only useful within seconds, and a restart makes it stale anyway.
    await ctx.answerCallbackQuery({ text: text.slice(0, 200) }).catch((error: unknown) => log("warn", `could not answer a button press: ${(error as Error).message}`));
  });

  const fetchDocument = async (ctx: Context): Promise<TelegramFile | string> => {
    const document = ctx.message!.document!;
    const name = safeName(document.file_name ?? `file-${document.file_unique_id}`);
    if ((document.file_size ?? 0) > settings.max_file_bytes) return `${escapeHtml(name)} is larger than telegram.max_file_bytes (${settings.max_file_bytes.toLocaleString("en")} bytes); share it another way or raise the setting.`;
    // Updates are handled one at a time: a download that hangs must not stop the bot from hearing the next one.
    const download = new AbortController();
    const cancelTimeout = clock.setTimer(() => download.abort(new Error("it took longer than a minute")), DOWNLOAD_TIMEOUT);
    const onStop = () => download.abort(new Error("Nightshift is stopping"));
    stopSignal.addEventListener("abort", onStop);
    try {
      const file = await ctx.api.getFile(document.file_id, download.signal as Parameters<typeof ctx.api.getFile>[1]);
      if (!file.file_path) return `Telegram did not give me ${escapeHtml(name)}; send it again.`;
      const response = await fetch(`${options.apiRoot ?? "https://api.telegram.org"}/file/bot${options.token}/${file.file_path}`, { signal: download.signal });
      if (!response.ok) return `Could not download ${escapeHtml(name)} (HTTP ${response.status}); send it again.`;
      return { name, content: Buffer.from(await response.arrayBuffer()) };
    } catch (error) {
      const why = download.signal.aborted ? (download.signal.reason as Error).message : (error as Error).message;
      return `Could not download ${escapeHtml(name)} (${escapeHtml(redact(why))}); send it again.`;
    } finally {
      cancelTimeout();
      stopSignal.removeEventListener("abort", onStop);
    }
  };

  /** A reply to one of a task's messages continues it; anything else is a new task. */
  const intake = async (ctx: Context, text: string, files: TelegramFile[]) => {
    const chat = chatOf(ctx);
    const replied = ctx.message?.reply_to_message;
    const id = replied ? store.taskOfMessage(chat, replied.message_id) : undefined;
    const source = `telegram:${chat}:${messageOf(ctx)}`;
    // Telegram hands an update out again when the offset was not saved (a crash): this message was taken in already.
    if (store.taskOfMessage(chat, messageOf(ctx)) !== undefined) return;
    if (id) {
      const task = daemon.get(id);
      if (task) {
        const saved = files.length ? options.attach(task, files) : [];
        const prompt = [text, ...saved.map((name) => `(I put ${name} in your working folder.)`)].filter(Boolean).join("\n");
        const outcome = await daemon.followUp(id, prompt);
        if (outcome === "queued") return follower.started(daemon.get(id)!, chat, messageOf(ctx));
        if (outcome === "busy") return void reply(chat, busyText(id), messageOf(ctx));
      }
      const elsewhere = !task && cluster ? await followElsewhere(cluster.followUp, id, text, files.length) : undefined;
      if (elsewhere && "started" in elsewhere) return follower.started(elsewhere.started, chat, messageOf(ctx));
      if (elsewhere) return void reply(chat, elsewhere.reply, messageOf(ctx));
    }
    // A crash after the task was queued but before the offset was saved brings the update back.
    const existing = daemon.tasks.bySource(source);
    if (existing) return void (store.data.tasks[existing.id] ? undefined : follower.started(existing, chat, messageOf(ctx)));
    const prompt = text || `I sent you ${files.map((file) => file.name).join(", ")}; it is in your working folder. Tell me briefly what it is.`;
    const task = await options.submit({ prompt, source, files });
    follower.started(task, chat, messageOf(ctx));
  };

  bot.on("message:document", async (ctx) => {
    const file = await fetchDocument(ctx);
    if (typeof file === "string") return void reply(chatOf(ctx), file, messageOf(ctx));
    await intake(ctx, ctx.message.caption ?? "", [file]);
  });
  bot.on("message:text", async (ctx) => {
    const text = ctx.message.text;
    if (approver.takeReason(chatOf(ctx), text, byOf(ctx))) return;
    if (/^\/[A-Za-z0-9_]{1,32}(?:@\w+)?(?:\s|$)/.test(text)) return void reply(chatOf(ctx), `I do not know ${escapeHtml(text.split(/\s/)[0]!)}. /help lists what I understand.`, messageOf(ctx));
    await intake(ctx, text, []);
  });
  bot.on("message", (ctx) => void reply(chatOf(ctx), "I read text messages and documents. /help says more.", messageOf(ctx)));

  // ------------------------------------------------------------------------------------------
  // Polling (bot/polling.ts), and the task events the phone is shown
  // ------------------------------------------------------------------------------------------
  const stopper = new AbortController();
  const stopSignal = stopper.signal;
  const unwatch = daemon.watch((id, message) => {
    if (id.includes(".")) return; // a specialist's own events: its approvals also arrive under its task's id
    try {
      follower.onEvent(id, message);
    } catch (error) {
      log("error", `could not show an update of task ${id}: ${(error as Error).message}`);
    }
  });
  const polling = createPolling({
    bot,
    clock,
    settings,
    ...(cluster ? { lease: cluster } : {}),
    offset: { first: store.data.offset, handled: (next) => store.update((data) => void (data.offset = next)) },
    log: (level, message) => log(level, message),
    describe,
    async handle(update) {
      try {
        await bot.handleUpdate(update);
      } catch (error) {
        const cause = (error as { error?: unknown }).error ?? error; // grammy wraps it in a BotError
        const message = redact((cause as Error)?.message ?? String(cause));
        log("error", `update ${update.update_id} failed: ${message}`, { update: update.update_id });
        const from = update.message?.from ?? update.callback_query?.from;
        const chat = update.message?.chat ?? update.callback_query?.message?.chat;
        // Only someone allowed hears why; to anyone else the bot stays silent.
        if (from && chat?.type === "private" && allowed(from.id)) reply(chat.id, `That did not work: ${escapeHtml(message)}`, update.message?.message_id);
      }
    },
  });

  return {
    approver,
    outbox,
    hasUsers: () => users().length > 0,
    users,
    notice(html) {
      for (const chat of users()) {
        try {
          reply(chat, html);
        } catch (error) {
          // Not stored (a full or read-only disk, which may be what the notice is about): sent now, once, best effort.
          log("warn", `a notice could not be queued (${describe(error)}); sending it directly`);
          bot.api.sendMessage(chat, html, { parse_mode: "HTML", link_preview_options: { is_disabled: true } }).catch((sendError: unknown) => log("error", `a notice could not be sent: ${describe(sendError)}`));
        }
      }
    },
    reviewTools(review) {
      const html = reviewHtml(review);
      const buttons = reviewButtons(review);
      for (const chat of users()) outbox.enqueue({ method: "sendMessage", chat_id: chat, params: { text: html, parse_mode: "HTML", link_preview_options: { is_disabled: true }, reply_markup: buttons } });
    },
    start() {
      outbox.start();
      polling.start();
    },
    mute: () => void unwatch(),
    async stop() {
      stopper.abort();
      unwatch();
      await polling.stop();
      await outbox.stop();
    },
    polled: polling.polled,
    unreachableSince: polling.unreachableSince,
  };

  function describe(error: unknown): string {
    if (error instanceof GrammyError) return redact(`${error.error_code} ${error.description}`);
    if (error instanceof HttpError) return redact(`network: ${(error.error as Error)?.message ?? error.message}`);
    return redact((error as Error)?.message ?? String(error));
  }
}

function splitTag(tag: string | undefined): [string | undefined, string | undefined] {
  const at = tag?.indexOf(":") ?? -1;
  return at < 0 ? [undefined, undefined] : [tag!.slice(0, at), tag!.slice(at + 1)];
}

/** A file name that stays in the folder it is written to. */
function safeName(name: string): string {
  const base = basename(name).replace(/[^\w.\- ()]+/g, "_").replace(/^\.+/, "").slice(0, 120);
  return base || "file";
}

/** Writes files into `dir`, never over an existing one (name-2.ext). Returns the names used. */
export function saveFiles(dir: string, files: TelegramFile[]): string[] {
  mkdirSync(dir, { recursive: true });
  return files.map((file) => {
    const ext = extname(file.name);
    const stem = file.name.slice(0, file.name.length - ext.length);
    let name = file.name;
    for (let n = 2; existsSync(join(dir, name)); n++) name = `${stem}-${n}${ext}`;
    writeFileSync(join(dir, name), file.content, { flag: "wx" });
    return name;
  });
}
