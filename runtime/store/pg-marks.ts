/**
 * A time every machine on the shared store agrees on, by name: when the last daily digest was sent
 * (whichever machine ran the bot then), so the next one covers the time since, not since the
 * sending machine last sent one. Kept beside the schedules' cursors (`schedule_cursors`, whose
 * names are schedule files: an `@` name is never one), and only ever moved forward.
 */

import type { Sql } from "./pg.ts";

export interface SharedMark {
  get(): Promise<number | undefined>;
  set(at: number): Promise<void>;
}

export function sharedMark(sql: Sql, name: `@${string}`): SharedMark {
  return {
    async get() {
      const [row] = await sql<{ last_run: string }[]>`SELECT last_run FROM schedule_cursors WHERE name = ${name}`;
      return row ? Number(row.last_run) : undefined;
    },
    async set(at) {
      await sql`
        INSERT INTO schedule_cursors (name, last_run) VALUES (${name}, ${at})
        ON CONFLICT (name) DO UPDATE SET last_run = EXCLUDED.last_run WHERE schedule_cursors.last_run < EXCLUDED.last_run`;
    },
  };
}
