/**
 * Apply or Discard pressed on Telegram under a staged task's changes whose copy is on another
 * machine (issue 16). The copy is that machine's folder (`stage/ID` in its home), so the press goes
 * there, the way a follow-up does (runtime/store/pg-follow-ups.ts): the bot's machine writes it on
 * the task's row, and the machine that ran the task takes it at its next look (a notification
 * wakes it at once), applies or discards, and tells the chat through a notice.
 *
 * One press waits per task: a second one while it waits is "busy" and adds nothing, so a press
 * twice (two chats' buttons, a double tap) applies once; a press after it was done finds no copy.
 */

import type { Sql } from "./pg.ts";
import { CHANNEL } from "./pg-cluster.ts";

export type StagedChoice = "apply" | "discard";

/** A press, and where its outcome is told: as a reply to the pressed message in its chat. */
export interface StagedPress {
  action: StagedChoice;
  by: string;
  chat: number;
  message: number;
}

export type AskedStaged = { outcome: "asked"; machine: string } | { outcome: "busy"; machine: string; waiting: StagedPress } | { outcome: "unknown" };

export interface SharedStagedActions {
  /** Asks the machine that ran task `id` (another machine than this one) to apply or discard its copy. "unknown": no other machine ran it. */
  ask(id: string, press: StagedPress): Promise<AskedStaged>;
  /** Presses asked of this machine's tasks, oldest task first. */
  forMe(): Promise<Array<{ id: string; press: StagedPress }>>;
  /** Takes the press on task `id` before it is handled (a crash in between loses it rather than acting twice); false: none waits. */
  take(id: string): Promise<boolean>;
}

export function sharedStagedActions(sql: Sql, machine: string): SharedStagedActions {
  return {
    async ask(id, press) {
      return sql.begin(async (tx) => {
        const [row] = await tx<Array<{ machine: string | null; staged_action: StagedPress | null }>>`SELECT machine, staged_action FROM tasks WHERE id = ${id} FOR UPDATE`;
        if (!row?.machine || row.machine === machine) return { outcome: "unknown" as const };
        if (row.staged_action) return { outcome: "busy" as const, machine: row.machine, waiting: row.staged_action };
        await tx`UPDATE tasks SET staged_action = ${tx.json(press as never)} WHERE id = ${id}`;
        await tx`SELECT pg_notify(${CHANNEL}, 'staged')`;
        return { outcome: "asked" as const, machine: row.machine };
      });
    },
    async forMe() {
      const rows = await sql<Array<{ id: string; press: StagedPress }>>`SELECT id, staged_action AS press FROM tasks WHERE machine = ${machine} AND staged_action IS NOT NULL ORDER BY created`;
      return rows.map((row) => ({ id: row.id, press: row.press }));
    },
    async take(id) {
      return (await sql`UPDATE tasks SET staged_action = NULL WHERE id = ${id} AND machine = ${machine} AND staged_action IS NOT NULL RETURNING 1`).length === 1;
    },
  };
}
