import type { TelegramBot } from "../bot/index.ts";
import { escapeHtml, taskPageLink } from "../bot/format.ts";
import { taskNotices } from "../bot/task-notices.ts";
import type { NotifyKind } from "../bot/follow.ts";
import type { Cluster, MachineStatus, SharedTask } from "../runtime/store/pg-cluster.ts";
import { NOTICES_KEPT_MS, sharedNotices, type Notice, type SharedNotice } from "../runtime/store/pg-notices.ts";
import { storeUnreachable } from "../runtime/store/outage.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import { machineOf, machineState, silence, waitingFor } from "../tasks/cluster-view.ts";
import type { Daemon } from "../tasks/daemon.ts";

/**
 * Telegram notices with several machines on one PostgreSQL, where only the machine holding the
 * Telegram lease runs the bot (cli/telegram-lease.ts). A machine without the bot queues its
 * notices in the shared store (runtime/store/pg-notices.ts): its own (a full disk, a rejected
 * inbox file) and what the bot would have said of its tasks had they run where it runs (bot/task-notices.ts).
 * The bot's machine sends them through its outbox, each taken first so it goes out once, and says
 * when a machine went silent with tasks waiting for it, once per silence.
 */

export interface ClusterNotices {
  /** A notice for every user (Telegram HTML): sent by this machine's bot when it runs the bot, else queued for the machine that does. Must not throw. */
  notice(html: string): void;
  /** A notice queued in the shared store for whichever machine runs the bot (this one too), kept and tried again while the store is away; with `key`, sent at most once ever (runtime/store/pg-notices.ts). Must not throw. */
  tell(notice: Notice & { key?: string }): void;
  /** At each tick of the cluster loop: what waits to be queued; on the bot's machine, silent machines said and the queued notices sent. */
  tick(): Promise<void>;
  /** Stops following this machine's tasks. */
  close(): void;
}

/** At most this many notices wait here for the store to come back; the oldest go first. */
const MAX_WAITING = 200;

export function clusterNotices(options: {
  cluster: Cluster;
  daemon: Pick<Daemon, "watch" | "get">;
  /** This machine's bot, while it holds the Telegram lease. */
  bot(): TelegramBot | undefined;
  notify: readonly NotifyKind[];
  dashboardUrl?: string;
  trace: TraceLogger;
  /** The daemon's clock: when sent notices were last pruned. */
  now(): number;
}): ClusterNotices {
  const { cluster, trace } = options;
  const store = sharedNotices(cluster.sql, cluster.machine);
  const taskLink = (id: string) => taskPageLink(options.dashboardUrl, id);
  /** Raised here while the store could not take them: queued at the next tick, in order. */
  const waiting: Array<Notice & { key?: string }> = [];
  let pruned = -Infinity;
  let writing: Promise<void> | undefined;
  const write = (): Promise<void> =>
    (writing ??= (async () => {
      try {
        while (waiting.length) {
          await store.add(waiting[0]!);
          waiting.shift();
        }
      } catch (error) {
        // An unreachable store is said once, by the watch; anything else each time.
        if (!storeUnreachable(error)) trace.warn({ event: "notice_unqueued", error: (error as Error).message, waiting: waiting.length }, `could not queue a Telegram notice in the shared store; tried again at the next heartbeat: ${(error as Error).message}`);
      }
    })().finally(() => (writing = undefined)));
  const queue = (notice: Notice & { key?: string }) => {
    // Over the cap the oldest goes, but never the one being written now (the write takes it off when it is in).
    if (waiting.push(notice) > MAX_WAITING) waiting.splice(writing ? 1 : 0, 1);
    void write();
  };

  // Told by the machine that ran the task: a task delivered here that ran elsewhere is not in this machine's state.
  const unwatch = options.daemon.watch((id, message) => {
    if (id.includes(".") || options.bot()) return; // a specialist's events are its task's to tell; with the bot here, its follower tells
    const task = options.daemon.get(id);
    if (!task) return;
    for (const notice of taskNotices(message, task, { notify: options.notify, taskLink, machine: cluster.machine })) queue(notice);
  });

  /** Each silence of a machine with tasks waiting for it, said once whichever machine runs the bot: its key is the silent machine's last heartbeat. */
  const saySilences = async () => {
    const [machines, active] = await Promise.all([cluster.machines(), cluster.active()]);
    for (const machine of machines.filter((each) => machineState(each) === "silent")) {
      const waits = active.filter((task) => machineOf(task) === machine.name && waitingFor(task, machines));
      if (waits.length) await store.add({ key: `silent:${machine.name}:${machine.heartbeat}`, message: { text: silentText(machine, waits) } });
    }
  };

  const send = (bot: TelegramBot, notice: SharedNotice) => {
    const { message } = notice;
    if ("text" in message && notice.chat === undefined && !message.buttons) return bot.notice(message.text);
    const buttons = message.buttons ? { reply_markup: message.buttons } : {};
    for (const chat of notice.chat !== undefined ? [notice.chat] : bot.users()) {
      try {
        if ("text" in message) {
          const reply = message.reply_to ? { reply_parameters: { message_id: message.reply_to, allow_sending_without_reply: true } } : {};
          bot.outbox.enqueue({ method: "sendMessage", chat_id: chat, params: { text: message.text, parse_mode: "HTML", link_preview_options: { is_disabled: true }, ...reply, ...buttons } });
        } else bot.outbox.enqueue({ method: "sendDocument", chat_id: chat, params: { caption: message.caption, parse_mode: "HTML", ...buttons }, document: message.document });
      } catch (error) {
        trace.error({ event: "notice_lost", machine: notice.machine, error: (error as Error).message }, `a notice from ${notice.machine} could not be queued to send: ${(error as Error).message}`);
      }
    }
  };

  return {
    notice(html) {
      const bot = options.bot();
      if (bot) bot.notice(html);
      else queue({ message: { text: html } });
    },
    tell: queue,
    async tick() {
      await write();
      const bot = options.bot();
      // A bot that cannot reach Telegram now takes nothing it could not send: it may give the lease up soon, to a machine that can.
      if (!bot || bot.unreachableSince() !== undefined) return;
      await saySilences();
      // Once an hour, by the machine that sends them: notices sent a week ago go.
      if (options.now() - pruned >= 3_600_000) {
        pruned = options.now();
        await store.prune(NOTICES_KEPT_MS);
      }
      for (const notice of await store.unsent(50)) {
        const taken = await store.take(notice.id);
        if (taken === "lost") return; // another machine runs the bot now: it sends the rest
        if (taken === "mine") send(bot, notice);
      }
    },
    close: () => void unwatch(),
  };
}

/** "⏸ m2 is silent (…); task X waits for it". */
function silentText(machine: MachineStatus, tasks: SharedTask[]): string {
  const named = tasks.slice(0, 5).map((task) => `<code>${escapeHtml(task.record.id)}</code> (${escapeHtml(task.record.title)})`);
  const more = tasks.length > 5 ? ` and ${tasks.length - 5} more` : "";
  const which = tasks.length === 1 ? `task ${named[0]} waits for it (it goes on from its log` : `tasks ${named.join(", ")}${more} wait for it (they go on from their logs`;
  return `⏸ <b>${escapeHtml(machine.name)} is silent</b> (no heartbeat for ${silence(machine.silentMs)}: asleep or gone); ${which} when ${escapeHtml(machine.name)} is back).`;
}
