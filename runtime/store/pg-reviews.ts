/**
 * MCP tool reviews when several machines share one PostgreSQL (issue 16). A review (the listing a
 * server offers with tools new or changed since approved: runtime/mcp/reviews.ts) is kept as a
 * file of the machine that found it; a machine without the Telegram bot also keeps it here, so
 * Approve pressed where the bot runs can pin exactly that listing (for every machine: mcp_pins).
 * One row per server and machine (its latest review), deleted once approved: the table holds
 * what waits for a person, never history.
 */

import type { SharedReviews, ToolReview } from "../mcp/reviews.ts";
import type { Sql } from "./pg.ts";

export interface StoredReviews extends SharedReviews {
  /** Keeps this machine's review of its server, in place of the one it kept before. */
  keep(review: ToolReview): Promise<void>;
  /** Forgets this machine's review of `server` (its tools are approved now, however that was done). */
  drop(server: string): Promise<void>;
}

export function sharedReviews(sql: Sql, machine: string): StoredReviews {
  return {
    async keep(review) {
      await sql`
        INSERT INTO mcp_reviews (server, machine, id, review) VALUES (${review.server}, ${machine}, ${review.id}, ${sql.json(review as never)})
        ON CONFLICT (server, machine) DO UPDATE SET id = excluded.id, review = excluded.review, found = now()`;
    },
    async find(server, id) {
      const rows = await sql<Array<{ machine: string; id: string; review: ToolReview }>>`SELECT machine, id, review FROM mcp_reviews WHERE server = ${server} ORDER BY found DESC`;
      const row = rows.find((candidate) => candidate.id === id);
      if (row) return { review: row.review, machine: row.machine };
      return rows.length ? "stale" : undefined;
    },
    async approved(server, id) {
      await sql`DELETE FROM mcp_reviews WHERE server = ${server} AND id = ${id}`;
    },
    async drop(server) {
      await sql`DELETE FROM mcp_reviews WHERE server = ${server} AND machine = ${machine}`;
    },
  };
}
