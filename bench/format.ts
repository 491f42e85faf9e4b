/**
 * What formatting an answer for Telegram costs (`markdownToTelegramHtml`, then `splitForTelegram`,
 * as bot/follow.ts does), on a realistic 60 KB answer and on pathological input: both run on the
 * daemon's only thread. And how many messages a link-heavy answer becomes. Nothing is asserted.
 * Run alone with `node bench/format.ts`, or with the others through `node bench/run.ts`.
 */

import { markdownToTelegramHtml, splitForTelegram } from "../bot/format.ts";
import { MAX_MARKDOWN } from "../bot/markdown.ts";
import { formatRows, type Row } from "./daemon.ts";

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

/** Median wall time of `samples` runs, after one untimed run (JIT, and markdown-it's loading) when there are several. */
function time(run: () => unknown, samples: number): number {
  if (samples > 1) run();
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    run();
    times.push(performance.now() - started);
  }
  return median(times);
}

/** About 60 KB of what models write: headings, prose with inline markup, nested lists, code, quotes. */
export function answer60k(): string {
  const blocks: string[] = [];
  for (let k = 1; blocks.join("\n\n").length < 60_000; k++) {
    blocks.push(`## Step ${k}\n\nThis **matters** because *the cache* is cold and \`npm ci\` runs again; see [the docs](https://docs.npmjs.com/cli/v10/commands/npm-ci#${k}) &amp; the notes below.`);
    blocks.push(`- check the \`package-lock.json\` with **care**\n- then run:\n\n  \`\`\`bash\n  npm ci --no-audit && npx tsc -p tsconfig.json # ${k}\n  \`\`\`\n- nested:\n  1. first _point_\n  2. second [link](https://example.com/${k})`);
    blocks.push(`\`\`\`ts\nexport function f${k}(x: number): number {\n  return x * ${k}; // **not bold**\n}\n\`\`\``);
    blocks.push(`> A quoted line with _emphasis_\n> and a second line ${k}.`);
  }
  return blocks.join("\n\n");
}

/** Search results with long tracking links: about 2,940 visible characters in 11.5 KB of HTML (4 messages when split by HTML length). */
export function linkHeavyAnswer(): string {
  const items: string[] = [];
  for (let k = 1; k <= 65; k++) {
    items.push(`- [Result ${k}: the page about part ${k}](https://www.example.com/search/results?query=${"telegram+bot+markdown+".repeat(1)}${k}&utm_source=nightshift&utm_medium=answer) (${k}0 KB)`);
  }
  return `Here is what I found:\n\n${items.join("\n")}\n\nTell me which to open.`;
}

/** Lines of a list nested ten deep, over and over, to `bytes`. */
export function nestedList(bytes: number): string {
  const lines: string[] = [];
  let size = 0;
  for (let k = 0; size < bytes; k++) {
    const line = `${"  ".repeat(k % 10)}- item ${k} with **some** words`;
    lines.push(line);
    size += line.length + 1;
  }
  return lines.join("\n");
}

const visibleLength = (html: string) => html.replace(/<[^>]*>/g, "").replace(/&(?:lt|gt|amp|quot);/g, "x").length;

export async function benchFormat(): Promise<Row[]> {
  const answer = answer60k();
  const html = markdownToTelegramHtml(answer);
  const links = linkHeavyAnswer();
  const linksHtml = markdownToTelegramHtml(links);
  const split = splitForTelegram(linksHtml, { maxParts: 100 }); // counted even past 4, where the bot sends a document
  const cap = MAX_MARKDOWN - 1;
  const kb = (n: number) => `${Math.round(n / 1024)} KB`;
  const once = (source: string) => time(() => splitForTelegram(markdownToTelegramHtml(source)), 1);
  // One run of format + split; an input that throws (the hand-written reader overflowed the stack) shows as such.
  const pathological = (name: string, source: string, target?: number): Row => {
    try {
      return { name: `${name}: format + split`, value: once(source), unit: "ms", target };
    } catch (error) {
      return { name: `${name}: format + split threw ${(error as Error).name}`, value: NaN, unit: "ms", target };
    }
  };
  const sent = answer.slice(0, 16_384); // about the longest answer sent as messages (4 × 4,096 visible)
  const rows: Row[] = [
    { name: "16 KB answer: markdownToTelegramHtml + splitForTelegram, median of 20", value: time(() => splitForTelegram(markdownToTelegramHtml(sent)), 20), unit: "ms" },
    { name: "60 KB answer: markdownToTelegramHtml, median of 20", value: time(() => markdownToTelegramHtml(answer), 20), unit: "ms" },
    { name: "60 KB answer: splitForTelegram (all parts), median of 20", value: time(() => splitForTelegram(html, { maxParts: 1_000 }), 20), unit: "ms" },
    pathological("4 MB nested list (ten deep)", nestedList(4_000_000), 100),
    pathological("4 MB of `*`", "*".repeat(4_000_000), 100),
    pathological("4 MB of `[`", "[".repeat(4_000_000), 100),
    pathological("10,000 nested quotes", `${"> ".repeat(10_000)}deep words`, 100),
    pathological(`${kb(cap)} of \`[\` (just under the size cap)`, "[".repeat(cap)),
    pathological(`${kb(cap)} of \`*a \` (just under the size cap)`, "*a ".repeat(Math.floor(cap / 3))),
    pathological(`${kb(cap)} nested list (just under the size cap)`, nestedList(cap - 50)),
    { name: "link-heavy answer: visible characters", value: visibleLength(linksHtml), unit: "count" },
    { name: "link-heavy answer: HTML characters", value: linksHtml.length, unit: "count" },
    { name: "link-heavy answer: parts (messages; more than 4 go as a document)", value: "parts" in split ? split.parts.length : NaN, unit: "count", target: 1 },
  ];
  return rows;
}

if (import.meta.main) {
  console.log(`## Formatting answers for Telegram\n\n${formatRows(await benchFormat())}\n`);
}
