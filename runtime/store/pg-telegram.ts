/**
 * The Telegram bot when several machines share one PostgreSQL (issue 16). Exactly one machine
 * polls Telegram: the one holding the lease `TELEGRAM_LEASE`. What a machine taking over needs
 * for the person to notice nothing lives here: the next update to ask for, the bot's state (which
 * chat follows which task, which message belongs to which task, where each approval was shown)
 * and the paired users.
 *
 * An update is taken before it is handled, in one statement that also checks that this machine
 * still holds the lease by the database's clock: a machine that was stopped (SIGSTOP, a laptop
 * lid) and wakes after another took over is refused, so an update is never handled by two
 * machines. The cost is the other way round: a machine killed between taking an update and
 * finishing it (a few milliseconds, or a document's download) leaves that update unhandled.
 */

import type postgres from "postgres";
import type { Sql } from "./pg.ts";
import { TELEGRAM_LEASE } from "./pg-cluster.ts";

export type Taken = "mine" | "taken" | "lost";

export interface TelegramUserRow {
  id: number;
  user: { id: number; username?: string; first_name?: string; paired_at: number };
  removed: boolean;
}

export interface SharedTelegram {
  /** The update id to ask Telegram for next (getUpdates' offset). */
  nextUpdate(): Promise<number>;
  /**
   * Takes update `id` before it is handled: "mine" to handle it, "taken" when an earlier holder
   * took it already (skip it), "lost" when this machine no longer holds the lease (stop polling).
   */
  take(id: number): Promise<Taken>;
  /** The bot's state as the holder last wrote it; undefined before any machine ran the bot. */
  state(): Promise<unknown>;
  /** Writes the bot's state while this machine holds the lease; false (not written) when it does not. */
  saveState(state: unknown): Promise<boolean>;
  /** Every user paired on any machine, and the ones unpaired since (`removed`). */
  users(): Promise<TelegramUserRow[]>;
  /** A user paired here (again): shared, and no longer removed. */
  paired(user: TelegramUserRow["user"]): Promise<void>;
  /** Users paired on this machine that the store may not know yet; one unpaired elsewhere stays unpaired. */
  offerUsers(users: Array<TelegramUserRow["user"]>): Promise<void>;
  /** `nightshift pair --remove`: unpaired on every machine. */
  unpaired(id: number): Promise<void>;
  /** The machine holding the Telegram lease, if it has not expired. */
  holder(): Promise<string | undefined>;
}

export function sharedTelegram(sql: Sql, machine: string): SharedTelegram {
  const holds = (tx: Sql | postgres.TransactionSql) => tx`SELECT 1 FROM leases WHERE name = ${TELEGRAM_LEASE} AND holder = ${machine} AND expires > now()`;
  return {
    async nextUpdate() {
      const [row] = await sql<{ next_update: string }[]>`SELECT next_update FROM telegram_bot WHERE id = 1`;
      return Number(row?.next_update ?? 0);
    },
    async take(id) {
      return sql.begin(async (tx) => {
        const [row] = await tx<{ next_update: string }[]>`SELECT next_update FROM telegram_bot WHERE id = 1 FOR UPDATE`;
        if ((await holds(tx)).length === 0) return "lost" as const;
        if (Number(row!.next_update) > id) return "taken" as const;
        await tx`UPDATE telegram_bot SET next_update = ${id + 1} WHERE id = 1`;
        return "mine" as const;
      });
    },
    async state() {
      const [row] = await sql<{ state: unknown }[]>`SELECT state FROM telegram_bot WHERE id = 1`;
      return row?.state ?? undefined;
    },
    async saveState(state) {
      const rows = await sql`
        UPDATE telegram_bot SET state = ${sql.json(state as never)}
        WHERE id = 1 AND EXISTS (SELECT 1 FROM leases WHERE name = ${TELEGRAM_LEASE} AND holder = ${machine} AND expires > now())
        RETURNING 1`;
      return rows.length === 1;
    },
    async users() {
      const rows = await sql<Array<{ id: string; user: TelegramUserRow["user"]; removed: boolean }>>`SELECT id, "user", removed FROM telegram_users ORDER BY id`;
      return rows.map((row) => ({ id: Number(row.id), user: row.user, removed: row.removed }));
    },
    async paired(user) {
      await sql`INSERT INTO telegram_users (id, "user") VALUES (${user.id}, ${sql.json(user as never)}) ON CONFLICT (id) DO UPDATE SET "user" = EXCLUDED."user", removed = false`;
    },
    async offerUsers(users) {
      for (const user of users) await sql`INSERT INTO telegram_users (id, "user") VALUES (${user.id}, ${sql.json(user as never)}) ON CONFLICT (id) DO NOTHING`;
    },
    async holder() {
      const [row] = await sql<{ holder: string }[]>`SELECT holder FROM leases WHERE name = ${TELEGRAM_LEASE} AND expires > now()`;
      return row?.holder;
    },
    async unpaired(id) {
      await sql`INSERT INTO telegram_users (id, "user", removed) VALUES (${id}, ${sql.json({ id, paired_at: 0 } as never)}, true) ON CONFLICT (id) DO UPDATE SET removed = true`;
    },
  };
}
