import type { TelegramBot } from "../bot/index.ts";
import { reviewButtons, reviewHtml } from "../bot/tool-review.ts";
import type { ToolReview } from "../runtime/mcp/reviews.ts";
import { storeUnreachable } from "../runtime/store/outage.ts";
import type { Cluster } from "../runtime/store/pg-cluster.ts";
import { sharedReviews } from "../runtime/store/pg-reviews.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import type { ClusterNotices } from "./telegram-notices.ts";

/**
 * MCP tool reviews with several machines on one PostgreSQL, where only the machine holding the
 * Telegram lease runs the bot. A review found where the bot runs is shown by it, as on one
 * machine. One found on a machine without the bot is kept in the store (runtime/store/pg-reviews.ts)
 * and then queued as a notice with its Approve button, keyed by its id so it is sent once; Approve
 * pressed where the bot runs reads it back from the store (cli/bot-start.ts, runtime/mcp/reviews.ts
 * `approveReview`) and pins it for every machine, and this machine offers the tools at its next
 * session. While the store is away the review waits here (the latest per server) and goes at a
 * later heartbeat.
 */

export interface ClusterReviews {
  /** A review found here, new since the last one of its server. Must not throw. */
  found(review: ToolReview): void;
  /** This machine's review of `server` is settled (its tools are approved): its copy in the store goes. Must not throw. */
  settled(server: string): void;
  /** At each heartbeat: what the store could not take yet. */
  tick(): Promise<void>;
}

export function clusterReviews(options: { cluster: Pick<Cluster, "sql" | "machine">; bot(): TelegramBot | undefined; notices: Pick<ClusterNotices, "tell">; trace: TraceLogger }): ClusterReviews {
  const { cluster, trace } = options;
  const store = sharedReviews(cluster.sql, cluster.machine);
  /** Found here while the store could not take them: the latest per server. */
  const waiting = new Map<string, ToolReview>();
  let writing: Promise<void> | undefined;
  const write = (): Promise<void> =>
    (writing ??= (async () => {
      while (waiting.size) {
        const [server, review] = waiting.entries().next().value!;
        try {
          await store.keep(review);
        } catch (error) {
          // An unreachable store is said once, by its watch; anything else (a listing the store refuses) is said, and Approve there is left to `nightshift mcp approve`.
          if (storeUnreachable(error)) return;
          waiting.delete(server);
          trace.warn({ event: "mcp_review_unshared", server, review: review.id, error: (error as Error).message }, `MCP server ${server}: its tool review could not be kept in the shared store, so Telegram cannot approve it (run nightshift mcp approve ${server} on ${cluster.machine}): ${(error as Error).message}`);
          continue;
        }
        if (waiting.get(server) !== review) continue; // a newer listing came meanwhile: kept and told instead, in the next round
        waiting.delete(server);
        // Told once kept, so the press finds it; keyed, so a listing two machines found is sent once.
        options.notices.tell({ key: `mcp-review:${server}:${review.id}`, message: { text: reviewHtml(review, cluster.machine), buttons: reviewButtons(review) } });
      }
    })().finally(() => (writing = undefined)));

  return {
    found(review) {
      const bot = options.bot();
      if (bot) return bot.reviewTools(review);
      waiting.set(review.server, review);
      void write();
    },
    settled(server) {
      waiting.delete(server);
      // Left in the store when it is away: it is one row, replaced by this machine's next review of the server.
      store.drop(server).catch(() => {});
    },
    async tick() {
      if (waiting.size) await write();
    },
  };
}
