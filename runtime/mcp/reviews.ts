/**
 * Tool reviews: what the person is shown when a server's tools are new or changed since they were
 * approved, and what approving it pins. A review holds the server's whole listing as it was shown,
 * so a press of "Approve" pins exactly that, never a listing the server changed to afterwards
 * (that one is withheld again and gets its own review). One file per server under
 * state/mcp/reviews/; a review is sent once, however many sessions start meanwhile.
 */

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Tool } from "@modelcontextprotocol/client";
import { approvePins, canonicalJson, comparePins, type PinFile, type PinState, type SharedPins } from "./pins.ts";

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
  const id = createHash("sha256").update(canonicalJson(tools)).digest("hex").slice(0, 12);
  return { id, server, askedAt: now.toISOString(), withheld, tools: [...tools] };
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

/** Forgets a server's pending review (its tools were approved another way). */
export function dropReview(home: string, server: string): void {
  rmSync(reviewFile(home, server), { force: true });
}

/**
 * Pins the listing the review showed (with several machines, for every machine: `shared`). Refuses a
 * review that is no longer the pending one, and says so when the shared store cannot be reached.
 */
export async function approveReview(home: string, server: string, id: string, now: Date, shared?: SharedPins): Promise<{ ok: boolean; message: string }> {
  const review = readReview(home, server);
  if (!review) return { ok: false, message: `Nothing of MCP server ${server} is waiting for approval (any more).` };
  if (review.id !== id) return { ok: false, message: `MCP server ${server} changed its tools again since this message; see the newer one.` };
  try {
    await approvePins(home, server, review.tools, now, shared);
  } catch (error) {
    return { ok: false, message: `Not approved: the shared store (PostgreSQL) does not answer (${(error as Error).message}), and an approval must reach every machine. Press Approve again when it is back.` };
  }
  dropReview(home, server);
  return { ok: true, message: `Approved: ${review.withheld.map((state) => state.name).join(", ")} of MCP server ${server} are offered from the next task on.` };
}

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
