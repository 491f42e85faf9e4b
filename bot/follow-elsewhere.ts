import type { AskedFollowUp } from "../runtime/store/pg-follow-ups.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { escapeHtml } from "./format.ts";

/** What a reply to a busy task says. */
export const busyText = (id: string) => `Task <code>${escapeHtml(id)}</code> is still working; send this again when it has finished, or /cancel ${escapeHtml(id)}.`;

/**
 * A reply to a task that ran on another machine (several machines on one PostgreSQL): its session
 * log is there, so it goes on there (runtime/store/pg-follow-ups.ts), and its answer comes back here
 * as any Telegram task's does. `started`: follow it as a task just sent; `reply`: why it cannot go
 * on; undefined: no machine has it, so the message is a new task.
 */
export async function followElsewhere(ask: (id: string, text: string) => Promise<AskedFollowUp>, id: string, text: string, files: number): Promise<{ started: TaskRecord } | { reply: string } | undefined> {
  if (files) return { reply: `Task <code>${escapeHtml(id)}</code> ran on another machine, which a file sent as a reply cannot reach; send the file in a new message.` };
  const asked = await ask(id, text);
  if (asked.outcome === "asked") return { started: { ...asked.task.record, state: "queued" } };
  if (asked.outcome === "busy") return { reply: busyText(id) };
  return undefined;
}
