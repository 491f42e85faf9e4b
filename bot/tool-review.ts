import { reviewText, type ToolReview } from "../runtime/mcp/reviews.ts";
import { escapeHtml } from "./escape.ts";

/**
 * An MCP tool review as Telegram shows it (runtime/mcp/reviews.ts): sent by the bot for a review
 * found where it runs, and queued as a notice by a machine without the bot (cli/tool-reviews.ts),
 * so both read the same. Pure functions: no grammy.
 */

/** The review as a Telegram message: a title, then what changed, preformatted, within Telegram's 4096 characters. `machine`: where it was found, when not where the bot runs. */
export function reviewHtml(review: ToolReview, machine?: string): string {
  const text = reviewText(review);
  const body = text.length > 3300 ? `${text.slice(0, 3300)}\n… (the rest: nightshift mcp list ${review.server})` : text;
  const where = machine ? ` (on ${escapeHtml(machine)})` : "";
  return `🔧 <b>MCP server ${escapeHtml(review.server)}: tools withheld until you approve</b>${where}\n<pre>${escapeHtml(body)}</pre>\nApprove pins exactly what is shown here; if the server changes again, you are asked again.`;
}

/** Approve (pins the listing the message showed, named by its review id) and Keep withheld: bot/bot.ts `pressReview` reads them. */
export function reviewButtons(review: ToolReview): { inline_keyboard: { text: string; callback_data: string }[][] } {
  return { inline_keyboard: [[{ text: "Approve", callback_data: `mt:${review.server}:${review.id}:y` }, { text: "Keep withheld", callback_data: `mt:${review.server}:${review.id}:n` }]] };
}
