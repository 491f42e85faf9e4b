import type { PriceTable } from "./config.ts";
import type { SessionEvent, Usage } from "./events.ts";

export interface Cost {
  usd: number;
  /** False when the model has no price in the table (counted as 0; the caller warns). */
  priced: boolean;
}

/** Dollars for one request's usage. Cache reads default to 10% of input, cache writes to 125%. */
export function costOf(usage: Usage, model: string, prices: PriceTable): Cost {
  const price = prices[model] ?? longestPrefixMatch(prices, model) ?? prices.default;
  if (!price) return { usd: 0, priced: false };
  const perToken = (perMillion: number) => perMillion / 1_000_000;
  const usd =
    usage.input_tokens * perToken(price.input) +
    usage.output_tokens * perToken(price.output) +
    usage.cache_read_input_tokens * perToken(price.cache_read ?? price.input * 0.1) +
    usage.cache_creation_input_tokens * perToken(price.cache_write ?? price.input * 1.25);
  return { usd, priced: true };
}

/** Dated ids ("claude-haiku-5-5-20261001") take the price of their undated name. */
function longestPrefixMatch(prices: PriceTable, model: string) {
  const key = Object.keys(prices)
    .filter((name) => model.startsWith(name))
    .sort((a, b) => b.length - a.length)[0];
  return key === undefined ? undefined : prices[key];
}

/**
 * What a session's events say it spent: model calls, checkpoints, plans, review rounds and paid
 * tools. One count for every surface (`/status`, the dashboard), so they never disagree.
 */
export function spentIn(events: readonly SessionEvent[]): number {
  let usd = 0;
  for (const event of events) {
    if (event.type === "model_response" || event.type === "checkpoint") usd += event.cost_usd;
    else if (event.type === "plan") usd += event.report.cost_usd;
    else if (event.type === "review") usd += event.critiques.reduce((sum, critique) => sum + critique.cost_usd, 0);
    else if (event.type === "tool_end") usd += event.cost_usd ?? 0;
  }
  return usd;
}
