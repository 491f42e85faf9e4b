// What the phone shows: Markdown answers turned into Telegram HTML (markdown.ts), long messages
// split into parts that each stay valid (split.ts), and the one progress message edited in place.
// Pure functions, no I/O.

import { escapeAttr, escapeHtml } from "./escape.ts";

export { escapeHtml } from "./escape.ts";
export { markdownToTelegramHtml } from "./markdown.ts";
export { splitForTelegram, type SplitOptions } from "./split.ts";

/**
 * A link to a task's page on the dashboard at `dashboard.public_url`, as Telegram HTML, or "" without
 * one: a loopback address would not open on the phone. A message carrying it must have link previews
 * off, or Telegram would fetch the page.
 */
export function taskPageLink(publicUrl: string | undefined, id: string): string {
  if (!publicUrl) return "";
  return `<a href="${escapeAttr(`${new URL(publicUrl).origin}/tasks/${encodeURIComponent(id)}`)}">Open on the dashboard</a>`;
}

// ---------------------------------------------------------------------------------------------
// The progress message
// ---------------------------------------------------------------------------------------------

export interface ProgressStatus {
  title: string;
  step: number;
  tools: string[];
  tokens: number;
  costUsd: number;
  state: string;
}

/** 950 → "950", 12345 → "12.3k", 2_500_000 → "2.5M". */
export function formatTokens(tokens: number): string {
  if (!Number.isFinite(tokens) || tokens <= 0) return "0";
  if (tokens < 1000) return String(Math.round(tokens));
  if (tokens < 999_950) return `${(tokens / 1000).toFixed(1)}k`;
  return `${(tokens / 1_000_000).toFixed(1)}M`;
}

/** 0.01234 → "$0.0123"; a dollar or more → "$1.25". */
export function formatCost(costUsd: number): string {
  if (!Number.isFinite(costUsd) || costUsd <= 0) return "$0.0000";
  return costUsd < 1 ? `$${costUsd.toFixed(4)}` : `$${costUsd.toFixed(2)}`;
}

/** Cut to `chars` code points (on one line), escape, and keep the escaped text under `maxEscaped`. */
function clip(text: string, chars: number, maxEscaped: number): string {
  const points = Array.from(text.replace(/\s+/g, " ").trim());
  const kept = points.length > chars ? points.slice(0, chars - 1) : points;
  let out = "";
  for (const point of kept) {
    const piece = escapeHtml(point);
    if (out.length + piece.length > maxEscaped - 1) return `${out}…`;
    out += piece;
  }
  return kept.length < points.length ? `${out}…` : out;
}

/** The one status message edited in place while a task runs. Valid HTML, under 1,000 characters. */
export function progressText(status: ProgressStatus): string {
  const lines = [
    `<b>${clip(status.title, 100, 200) || "Task"}</b>`,
    `${clip(status.state, 40, 80)} · step ${Number.isFinite(status.step) ? Math.max(0, Math.floor(status.step)) : 0}`,
  ];
  for (const tool of status.tools.slice(-3)) lines.push(`› <code>${clip(tool, 80, 160)}</code>`);
  lines.push(`${formatTokens(status.tokens)} tokens · ${formatCost(status.costUsd)}`);
  return lines.join("\n");
}
