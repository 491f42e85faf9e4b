/**
 * The Telegram pairing code when several machines share one PostgreSQL (issue 16): `nightshift
 * pair` on any machine writes it here, and the bot redeems it on whichever machine holds the
 * Telegram lease. One row, the latest code's record as bot/pairing.ts writes it (the code's salted scrypt hash,
 * its expiry, the wrong attempts and who used it; never the code, nor a fast hash of it): a new code replaces it. A
 * redeem reads and writes it under a row lock, so two tries never both count, nor both use it.
 */

import type { Sql } from "./pg.ts";

/** bot/pairing.ts `PairingCodes` over the shared store; each call throws when the store cannot be reached. */
export interface SharedPairingCodes {
  read(): Promise<unknown>;
  replace(record: unknown): Promise<void>;
  change<T>(decide: (record: unknown) => Promise<{ write?: unknown; result: T }> | { write?: unknown; result: T }): Promise<T>;
}

export function sharedPairingCodes(sql: Sql): SharedPairingCodes {
  return {
    async read() {
      const [row] = await sql<{ record: unknown }[]>`SELECT record FROM telegram_pairing WHERE id = 1`;
      return row?.record;
    },
    async replace(record) {
      await sql`INSERT INTO telegram_pairing (id, record) VALUES (1, ${sql.json(record as never)}) ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record`;
    },
    async change<T>(decide: (record: unknown) => Promise<{ write?: unknown; result: T }> | { write?: unknown; result: T }) {
      let decided: { write?: unknown; result: T } | undefined;
      await sql.begin(async (tx) => {
        const [row] = await tx<{ record: unknown }[]>`SELECT record FROM telegram_pairing WHERE id = 1 FOR UPDATE`;
        decided = await decide(row?.record); // under the row's lock: a check (scrypt, ~45 ms) holds it
        // No row, no code: nothing to count or use (a code is only ever made by `replace`).
        if (decided.write !== undefined && row) await tx`UPDATE telegram_pairing SET record = ${tx.json(decided.write as never)} WHERE id = 1`;
      });
      return decided!.result;
    },
  };
}
