import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { markdownToTelegramHtml, splitForTelegram } from "../bot/format.ts";
import { parseHtml } from "./support/bot-api.ts";
import { preBlocks, telegramHtmlProblem, visibleText } from "./support/telegram-html.ts";

// Properties of the formatter over a generated corpus of answers shaped like a model's: paragraphs
// with inline markup (some wrapping a line), headings of both kinds, fenced and indented code,
// tables, and lists and quotes nesting each other with code inside. The generator is seeded, so a
// failure names a document that can be rebuilt. Every word of prose is unique (`w17x`), so "no
// visible word is lost" is a lookup, and every code block's text is recorded as written.

/** mulberry32: small, seedable, good enough to pick shapes. */
function random(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

interface Doc {
  source: string;
  words: string[]; // every word that must be visible
  code: string[]; // every code block's text, in order
}

function generate(seed: number): Doc {
  const pick = random(seed);
  const words: string[] = [];
  const code: string[] = [];
  const word = () => {
    const w = `w${words.length}x`;
    words.push(w);
    return w;
  };
  const some = (n: number) => Array.from({ length: 1 + pick(n) }, word).join(" ");
  const extras = ["é", "😀", "<tag>", "a & b", "&amp;", "&ouml;", "snake_case", "2 * 3", "x < y > z", "\\*", "*", "_", "[", "]", "(", "https://bare.io/x"];

  const fragment = (): string => {
    switch (pick(12)) {
      case 0:
        return `**${some(3)}**`;
      case 1:
        return `*${some(3)}*`;
      case 2:
        return `_${some(2)}_`;
      case 3:
        return `~~${some(2)}~~`;
      case 4:
        return `\`${some(2)} **not** <b>\``;
      case 5:
        return `[${some(3)}](https://example.com/${pick(1000)}?q=a&b=c)`;
      case 6:
        return `*${some(2)}\n${some(2)}*`; // emphasis across a line break
      case 7:
        return `[${some(2)}\n${some(1)}](https://x.io/p_(1))`;
      case 8:
        return extras[pick(extras.length)]!;
      case 9:
        return `![${some(1)}](https://x.io/i.png)`;
      default:
        return some(4);
    }
  };
  const line = () => Array.from({ length: 1 + pick(5) }, fragment).join(" ");
  const codeLines = () => {
    const templates = ["  def __init__(self, **kw): @", 'npx tsc **/*.ts && echo "<ok>" @', "    x = a_b_c * 2; // @", '<div class="x">&amp; @</div>', ""];
    const lines: string[] = Array.from({ length: 1 + pick(6) }, () => templates[pick(templates.length)]!.replace("@", word));
    if (!lines.some((l) => l !== "")) lines.push(word());
    return lines;
  };
  const fence = (): string[] => {
    const lines = codeLines();
    while (lines[lines.length - 1] === "") lines.pop();
    code.push(lines.join("\n"));
    return [`\`\`\`${["", "ts", "bash", "python"][pick(4)]}`, ...lines, "```"];
  };
  const indented = (): string[] => {
    const lines = codeLines().filter((l) => l !== "");
    code.push(lines.join("\n"));
    return lines.map((l) => `    ${l}`);
  };

  const blocks = (depth: number, count: number, inItem: boolean): string[] => {
    const out: string[] = [];
    let previous = "";
    for (let k = 0; k < count; k++) {
      const first = k === 0 && inItem;
      const kinds = ["para", "para", "para", "fence", "heading", "setext", "table", "rule"];
      if (!first && previous !== "list" && previous !== "indented") kinds.push("indented"); // either would take it in
      if (depth < 3) kinds.push("list", "list", "quote");
      let kind = kinds[pick(kinds.length)]!;
      if (first && !["para", "fence"].includes(kind)) kind = "para";
      let lines: string[];
      switch (kind) {
        case "para":
          lines = Array.from({ length: 1 + pick(3) }, line);
          break;
        case "fence":
          lines = fence();
          break;
        case "indented":
          lines = indented();
          break;
        case "heading":
          lines = [`${"#".repeat(1 + pick(3))} ${line().replace(/\n/g, " ")}`]; // one line by definition
          break;
        case "setext":
          lines = [line(), pick(2) ? "===" : "---"];
          break;
        case "table":
          lines = [`| ${some(1)} | ${some(1)} |`, "|---|---|", ...Array.from({ length: 1 + pick(3) }, () => `| ${fragment().replace(/[|\n]/g, " ")} | ${some(2)} |`)];
          break;
        case "rule":
          lines = ["---"];
          break;
        case "quote":
          lines = blocks(depth + 1, 1 + pick(3), false).map((l) => (l === "" ? ">" : `> ${l}`));
          break;
        default: {
          const ordered = pick(2) === 1;
          const loose = pick(3) === 0;
          lines = [];
          for (let n = 0; n < 1 + pick(4); n++) {
            const marker = ordered ? `${n + 1}. ` : "- ";
            const item = blocks(depth + 1, 1 + pick(2), true);
            if (n > 0 && loose) lines.push("");
            item.forEach((l, j) => lines.push(j === 0 ? marker + l : l === "" ? "" : " ".repeat(marker.length) + l));
          }
        }
      }
      if (k > 0) out.push("");
      out.push(...lines.flatMap((l) => l.split("\n"))); // so that containers indent every line
      previous = kind;
    }
    return out;
  };

  return { source: blocks(0, 2 + pick(8), false).join("\n"), words, code };
}

describe("formatting a generated corpus", () => {
  const docs = Array.from({ length: 300 }, (_, seed) => ({ seed, ...generate(seed) }));

  it("gives valid Telegram HTML that keeps every word and every code block byte for byte", () => {
    for (const { seed, source, words, code } of docs) {
      const html = markdownToTelegramHtml(source);
      const problem = telegramHtmlProblem(html);
      assert.equal(problem, null, `seed ${seed}: ${problem}`);
      const text = visibleText(html);
      for (const w of words) assert.ok(text.includes(w), `seed ${seed}: ${w} lost from ${JSON.stringify(source)}\n→ ${JSON.stringify(html)}`);
      assert.deepEqual(preBlocks(html), code, `seed ${seed}: code changed in ${JSON.stringify(source)}`);
    }
  });

  it("splits into valid parts of at most the limit in visible UTF-16 units, losing nothing", () => {
    const pick = random(7);
    for (const { seed, source, words, code } of docs) {
      const html = markdownToTelegramHtml(source);
      const limit = [4096, 1000, 300][pick(3)]!;
      const result = splitForTelegram(html, { limit, maxParts: 10_000 });
      assert.ok("parts" in result);
      for (const part of result.parts) {
        const problem = telegramHtmlProblem(part);
        assert.equal(problem, null, `seed ${seed}, limit ${limit}: ${problem}`);
        assert.equal(parseHtml(part).text, visibleText(part), `seed ${seed}: the Bot API stand-in (TDLib's parser) reads it the same`);
        assert.ok(visibleText(part).length <= limit, `seed ${seed}: ${visibleText(part).length} > ${limit}`);
      }
      const text = result.parts.map(visibleText).join("\n");
      for (const w of words) assert.ok(text.includes(w), `seed ${seed}, limit ${limit}: ${w} lost`);
      assert.equal(result.parts.flatMap(preBlocks).join(""), code.join(""), `seed ${seed}, limit ${limit}: code changed`);
    }
  });
});
