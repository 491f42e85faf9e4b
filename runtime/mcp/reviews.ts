/**
 * Tool reviews: what the person is shown when a server's tools are new or changed since they were
 * approved, and what approving it pins. A review holds the server's whole listing as it was shown,
 * so a press of "Approve" pins exactly that, never a listing the server changed to afterwards
 * (that one is withheld again and gets its own review). One file per server under
 * state/mcp/reviews/; a review is sent once, however many sessions start meanwhile. With several
 * machines, a review found on a machine without the Telegram bot is also kept in the shared store
 * (`SharedReviews`, runtime/store/pg-reviews.ts), so the bot's machine can approve it.
 */

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Tool } from "@modelcontextprotocol/client";
import { approvePins, approveShared, canonicalJson, comparePins, type PinFile, type PinState, type SharedPins } from "./pins.ts";

export interface ToolReview {
  /** Names this listing: the first 12 hex digits of its sha256. */
  id: string;
  server: string;
  askedAt: string;
  /** The tools withheld, with what changed. */
  withheld: PinState[];
  /** The server's listing as shown: what approving pins. */
  tools: Tool[];
}

const reviewFile = (home: string, server: string) => join(home, "state", "mcp", "reviews", `${server}.json`);

/** The review of a listing with tools that are new or changed against the pins, or undefined when all are pinned. */
export function reviewOf(server: string, tools: readonly Tool[], pins: PinFile | undefined, now: Date): ToolReview | undefined {
  const withheld = comparePins(tools, pins).filter((state) => state.state !== "pinned");
  if (withheld.length === 0) return undefined;
  return { id: reviewId(tools), server, askedAt: now.toISOString(), withheld, tools: [...tools] };
}

/** A listing's review id: the first 12 hex digits of the sha256 of its canonical JSON. */
export function reviewId(tools: readonly Tool[]): string {
  return createHash("sha256").update(canonicalJson(tools)).digest("hex").slice(0, 12);
}

/** Reviews found on other machines, kept in the shared store (runtime/store/pg-reviews.ts). Each call throws when the store cannot be reached. */
export interface SharedReviews {
  /** Review `id` of `server` as a machine found it; "stale" when only other reviews of `server` wait; undefined when none does. */
  find(server: string, id: string): Promise<{ review: ToolReview; machine: string } | "stale" | undefined>;
  /** Forgets review `id` of `server` on every machine that found it: it was approved. */
  approved(server: string, id: string): Promise<void>;
}

export function readReview(home: string, server: string): ToolReview | undefined {
  try {
    return JSON.parse(readFileSync(reviewFile(home, server), "utf8")) as ToolReview;
  } catch {
    return undefined;
  }
}

/** Stores the review; true when it is new (no review, or one of another listing, was pending). */
export function saveReview(home: string, review: ToolReview): boolean {
  if (readReview(home, review.server)?.id === review.id) return false;
  const path = reviewFile(home, review.server);
  mkdirSync(join(path, ".."), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(review, null, 2) + "\n", { mode: 0o600 });
  renameSync(temp, path);
  return true;
}

/** Forgets a server's pending review (its tools were approved another way); true when there was one. */
export function dropReview(home: string, server: string): boolean {
  const path = reviewFile(home, server);
  if (!existsSync(path)) return false;
  rmSync(path, { force: true });
  return true;
}

/**
 * Pins the listing the review showed (with several machines, for every machine: `shared`). Refuses a
 * review that is no longer the pending one, and says so when the shared store cannot be reached.
 * With several machines a review this home does not hold may have been found on another machine
 * (`elsewhere`): its listing, as that machine kept it in the store, is approved in the store, and
 * that machine offers the tools from its next session.
 */
export async function approveReview(home: string, server: string, id: string, now: Date, shared?: SharedPins, elsewhere?: SharedReviews): Promise<{ ok: boolean; message: string; error?: string }> {
  const review = readReview(home, server);
  if (review?.id === id) {
    try {
      await approvePins(home, server, review.tools, now, shared);
    } catch (error) {
      return notReached(error);
    }
    dropReview(home, server);
    await elsewhere?.approved(server, id).catch(() => {}); // the same listing, found on another machine too, is settled there as well
    return { ok: true, message: approvedText(review) };
  }
  if (shared && elsewhere) {
    let found: Awaited<ReturnType<SharedReviews["find"]>>;
    try {
      found = await elsewhere.find(server, id);
    } catch (error) {
      return notReached(error);
    }
    if (found === "stale") return changedAgain(server);
    if (found) {
      // The button names the listing by its hash: what is pinned must be exactly that listing.
      if (!sameListing(found.review, server, id)) {
        return { ok: false, message: `The review of MCP server ${server} kept in the shared store by ${found.machine} is not the listing this message showed; nothing was approved. Run nightshift mcp approve ${server} on ${found.machine}.` };
      }
      try {
        await approveShared(server, found.review.tools, now, shared);
      } catch (error) {
        return notReached(error);
      }
      await elsewhere.approved(server, id).catch(() => {}); // left over, it goes when that machine finds its tools approved
      return { ok: true, message: approvedText(found.review, ` (found on ${found.machine})`, ", on every machine") };
    }
  }
  if (review) return changedAgain(server);
  return { ok: false, message: `Nothing of MCP server ${server} is waiting for approval (any more).` };
}

/** A review read back from the store is the listing `id` names, of `server`, in the shape this Nightshift writes. */
function sameListing(review: ToolReview, server: string, id: string): boolean {
  const named = (list: unknown) => Array.isArray(list) && list.every((entry) => typeof (entry as { name?: unknown } | null)?.name === "string");
  return review.server === server && named(review.withheld) && named(review.tools) && reviewId(review.tools) === id;
}

const approvedText = (review: ToolReview, where = "", everywhere = "") => `Approved: ${review.withheld.map((state) => state.name).join(", ")} of MCP server ${review.server}${where} are offered from the next task on${everywhere}.`;
const changedAgain = (server: string) => ({ ok: false, message: `MCP server ${server} changed its tools again since this message; see the newer one.` });
/** The store's error can name the database's host: it goes to the trace (`error`), never into the chat. */
const notReached = (error: unknown) => ({ ok: false, message: "Not approved: the shared store (PostgreSQL) does not answer, and an approval must reach every machine. Press Approve again when it is back.", error: (error as Error)?.message ?? String(error) });

/** Plain text: what is withheld and, for a changed tool, its diff (description, schema, annotations). */
export function reviewText(review: ToolReview): string {
  const lines = [`MCP server ${review.server}: ${review.withheld.length} tool${review.withheld.length === 1 ? "" : "s"} new or changed since you approved it, withheld from the agent until you approve:`];
  for (const state of review.withheld) {
    if (state.state === "new") {
      const tool = review.tools.find((entry) => entry.name === state.name);
      lines.push(`+ new: ${state.name}${tool?.description ? ` — ${tool.description.slice(0, 300)}` : ""}`);
    } else if (state.state === "changed") {
      lines.push(`! changed: ${state.name}`, ...state.diff.slice(0, 30).map((line) => `  ${line.slice(0, 200)}`));
    }
  }
  return lines.join("\n");
}
