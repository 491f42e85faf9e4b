/**
 * Notices for Telegram when several machines share one PostgreSQL (issue 16). Only the machine
 * holding the Telegram lease runs the bot; a notice raised on any other machine (a task finished,
 * a full disk, a rejected inbox file) is queued here, and the bot's machine sends it.
 *
 * A notice is taken before it is sent, as an update is (runtime/store/pg-telegram.ts): one
 * statement marks it sent only while this machine holds the lease by the database's clock, so a
 * machine that lost the lease sends nothing more, and a machine taking over never sends one that
 * was taken. The cost is the same as for updates: a machine killed between taking a notice and
 * putting it in its outbox (milliseconds) loses that notice.
 */

import type { Sql } from "./pg.ts";
import { CHANNEL, TELEGRAM_LEASE } from "./pg-cluster.ts";
import type { Taken } from "./pg-telegram.ts";

/** Inline buttons under a notice (Telegram's `reply_markup`): a staged task's Apply and Discard. */
export type NoticeButtons = { inline_keyboard: { text: string; callback_data: string }[][] };

/**
 * What a notice shows: a message (Telegram HTML), optionally a reply to a message of its chat, or
 * a document with a caption (a long answer, a staged task's diff); either with buttons.
 */
export type NoticeMessage = ({ text: string; reply_to?: number } | { document: { filename: string; content: string }; caption: string }) & { buttons?: NoticeButtons };

export interface Notice {
  /** One chat; without it, every user the bot serves. */
  chat?: number;
  message: NoticeMessage;
}

export interface SharedNotice extends Notice {
  id: number;
  /** The machine that raised it. */
  machine: string;
}

export interface SharedNotices {
  /**
   * Queues a notice for the bot's machine to send, and wakes the machines. With `key`, at most
   * once ever: a second add with the same key (another machine, or after a takeover) adds nothing.
   */
  add(notice: Notice & { key?: string }): Promise<void>;
  /** Notices not sent yet, oldest first. */
  unsent(limit: number): Promise<SharedNotice[]>;
  /** "mine": send it; "taken": another machine took it; "lost": this machine no longer holds the Telegram lease. */
  take(id: number): Promise<Taken>;
  /** Deletes notices sent more than `olderThanMs` ago (their text can be a whole answer): the table grows with the work, not with history. Returns how many. */
  prune(olderThanMs: number): Promise<number>;
}

/** Sent notices are kept this long: a keyed one (a machine's silence) is not said again meanwhile. */
export const NOTICES_KEPT_MS = 7 * 86_400_000;

export function sharedNotices(sql: Sql, machine: string): SharedNotices {
  return {
    async add({ chat, message, key }) {
      await sql.begin(async (tx) => {
        const added = await tx`INSERT INTO telegram_notices (key, machine, chat, message) VALUES (${key ?? null}, ${machine}, ${chat ?? null}, ${tx.json(message as never)}) ON CONFLICT (key) DO NOTHING RETURNING 1`;
        // Only when one was added: a wake-up for nothing would wake the adder, which adds again.
        if (added.length) await tx`SELECT pg_notify(${CHANNEL}, 'notice')`;
      });
    },
    async unsent(limit) {
      const rows = await sql<Array<{ id: string; machine: string; chat: string | null; message: NoticeMessage }>>`
        SELECT id, machine, chat, message FROM telegram_notices WHERE NOT sent ORDER BY id LIMIT ${limit}`;
      return rows.map((row) => ({ id: Number(row.id), machine: row.machine, ...(row.chat !== null ? { chat: Number(row.chat) } : {}), message: row.message }));
    },
    async take(id) {
      const [row] = await sql<{ taken: boolean | null; holding: boolean }[]>`
        WITH holding AS (SELECT EXISTS (SELECT 1 FROM leases WHERE name = ${TELEGRAM_LEASE} AND holder = ${machine} AND expires > now()) AS yes),
        taken AS (UPDATE telegram_notices SET sent = true WHERE id = ${id} AND NOT sent AND (SELECT yes FROM holding) RETURNING 1)
        SELECT EXISTS (SELECT 1 FROM taken) AS taken, (SELECT yes FROM holding) AS holding`;
      if (!row?.holding) return "lost";
      return row.taken ? "mine" : "taken";
    },
    async prune(olderThanMs) {
      const rows = await sql`DELETE FROM telegram_notices WHERE sent AND created < now() - make_interval(secs => ${olderThanMs / 1000}) RETURNING 1`;
      return rows.length;
    },
  };
}
