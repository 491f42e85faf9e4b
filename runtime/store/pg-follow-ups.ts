/**
 * A follow-up (a Telegram reply to a task's message) for a finished task that ran on another
 * machine (issue 16). The task's session log is that machine's file, so it goes on there: the
 * bot's machine leaves the text on the task's row, and the task's machine takes it at its next
 * look (a notification wakes it at once), continues the task from its log, and clears it. Its
 * result comes back the way every Telegram task's result does (the bot's machine delivers it).
 */

import type { Sql } from "./pg.ts";
import { CHANNEL, type SharedTask } from "./pg-cluster.ts";

export type AskedFollowUp = { outcome: "asked"; task: SharedTask } | { outcome: "busy" | "unknown" };

export interface SharedFollowUps {
  /** Asks the machine that ran finished task `id` to continue it with `text`. "busy": it is active, or a follow-up waits already. */
  ask(id: string, text: string): Promise<AskedFollowUp>;
  /** Follow-ups asked of this machine's tasks, oldest task first. */
  forMe(): Promise<Array<{ id: string; text: string }>>;
  /** Takes the follow-up of task `id` before it is handled (a crash in between loses it rather than running it twice); false: none waits. */
  take(id: string): Promise<boolean>;
  /** A follow-up taken that could not be handled (the state could not be written): asked again. */
  giveBack(id: string, text: string): Promise<void>;
}

export function sharedFollowUps(sql: Sql, machine: string): SharedFollowUps {
  return {
    async ask(id, text) {
      return sql.begin(async (tx) => {
        const [row] = await tx<Array<{ record: SharedTask["record"]; machine: string | null; pin: string | null; follow_up: string | null }>>`
          SELECT record, machine, pin, follow_up FROM tasks WHERE id = ${id} FOR UPDATE`;
        if (!row?.machine) return { outcome: "unknown" as const };
        if (row.follow_up !== null || ["queued", "running", "waiting_approval"].includes(row.record.state)) return { outcome: "busy" as const };
        await tx`UPDATE tasks SET follow_up = ${text} WHERE id = ${id}`;
        await tx`SELECT pg_notify(${CHANNEL}, 'follow_up')`;
        return { outcome: "asked" as const, task: { record: row.record, machine: row.machine, ...(row.pin ? { pin: row.pin } : {}) } };
      });
    },
    async forMe() {
      const rows = await sql<{ id: string; text: string }[]>`SELECT id, follow_up AS text FROM tasks WHERE machine = ${machine} AND follow_up IS NOT NULL ORDER BY created`;
      return rows.map((row) => ({ id: row.id, text: row.text }));
    },
    async take(id) {
      return (await sql`UPDATE tasks SET follow_up = NULL WHERE id = ${id} AND machine = ${machine} AND follow_up IS NOT NULL RETURNING 1`).length === 1;
    },
    async giveBack(id, text) {
      await sql`UPDATE tasks SET follow_up = ${text} WHERE id = ${id} AND machine = ${machine} AND follow_up IS NULL`;
    },
  };
}
