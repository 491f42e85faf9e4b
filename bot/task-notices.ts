import type { SessionEvent, SessionResult } from "../runtime/index.ts";
import type { Notice } from "../runtime/store/pg-notices.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { budgetWarning, hears, resultMessages, stagedMessage, telegramSource, type NotifyKind } from "./follow.ts";

export type TaskMessage = { type: "event"; event: SessionEvent } | { type: "finished"; record: TaskRecord; result: SessionResult };

/**
 * What a machine without the bot tells Telegram of its own tasks (several machines on one
 * PostgreSQL): what the bot's follower (bot/follow.ts) says of a task that runs where the bot
 * runs, as notices the bot's machine sends (cli/telegram-notices.ts). A Telegram task's answer is
 * not among them: it reaches its chat as its result, delivered by the bot's machine. Progress
 * edits are not either (shown only for tasks running where the bot runs).
 *
 * `task`: the task the event is of, as this machine holds it; `machine`: this machine's name.
 */
export function taskNotices(message: TaskMessage, task: TaskRecord | undefined, options: { notify: readonly NotifyKind[]; taskLink(id: string): string; machine: string }): Notice[] {
  const to = (kind: NotifyKind, record: TaskRecord | undefined) => hears(kind, telegramSource(record?.spec.source)?.chat, record?.spec.notify, options.notify);
  if (message.type === "event") {
    if (message.event.type !== "budget_warning" || !task) return [];
    const who = to("budget", task);
    return who === undefined ? [] : [{ ...(who === "users" ? {} : { chat: who }), message: { text: budgetWarning(task.id, message.event, options.taskLink) } }];
  }
  const { record, result } = message;
  if (record.origin === "telegram" || to(result.status === "done" ? "finished" : "failed", record) !== "users") return [];
  const notices: Notice[] = resultMessages(record, result, options.taskLink(record.id)).map((part) => ({ message: part.document ? { document: part.document, caption: part.caption } : { text: part.text } }));
  // The diff from this machine's copy, with Apply and Discard: a press reaches the bot's machine, which asks this one (cli/staged-elsewhere.ts).
  if (result.staged) {
    const staged = stagedMessage(record.id, result.staged, options.machine);
    notices.push({ message: staged.diff ? { document: { filename: `${record.id}.diff`, content: staged.diff }, caption: staged.caption, buttons: staged.buttons } : { text: staged.caption, buttons: staged.buttons } });
  }
  return notices;
}
