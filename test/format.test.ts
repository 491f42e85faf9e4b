import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { escapeHtml, formatCost, formatTokens, markdownToTelegramHtml, progressText, splitForTelegram } from "../bot/format.ts";
import { telegramHtmlProblem, visibleText } from "./support/telegram-html.ts";

function assertValidHtml(html: string): void {
  const problem = telegramHtmlProblem(html);
  assert.equal(problem, null, `${problem} in ${JSON.stringify(html.slice(0, 300))}`);
}

const unescape = (s: string) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
const textOf = visibleText;
const visible = (html: string) => visibleText(html).length;
const md = (source: string) => {
  const html = markdownToTelegramHtml(source);
  assertValidHtml(html);
  return html;
};
function partsOf(result: ReturnType<typeof splitForTelegram>): string[] {
  assert.ok("parts" in result, "expected parts, got a document");
  return result.parts;
}

describe("escapeHtml", () => {
  it("escapes &, < and >", () => {
    assert.equal(escapeHtml(`a < b && c > "d"`), `a &lt; b &amp;&amp; c &gt; "d"`);
  });
});

describe("markdownToTelegramHtml", () => {
  it("keeps fenced code byte-for-byte, only escaped, with the language", () => {
    const code = "if (a < b && c > d) {\n  x = **not bold** + _nor_ `this`;\n    <script>&amp;</script>\n}";
    const html = md(`Here:\n\n\`\`\`ts\n${code}\n\`\`\`\n\nDone **now**.`);
    assert.ok(html.includes(`<pre><code class="language-ts">${escapeHtml(code)}</code></pre>`), html);
    assert.ok(html.endsWith("Done <b>now</b>."));
    const inner = /<code class="language-ts">([\s\S]*?)<\/code>/.exec(html)![1]!;
    assert.equal(unescape(inner), code);
  });

  it("closes an unclosed fence and uses no class without a language", () => {
    assert.equal(md("```\n<x> & **y**"), "<pre><code>&lt;x&gt; &amp; **y**</code></pre>");
    assert.equal(md("~~~\na\n~~~"), "<pre><code>a</code></pre>");
  });

  it("converts inline code and never interprets markup inside it", () => {
    assert.equal(md("run `a **b** <c> & [d](http://e)` now"), "run <code>a **b** &lt;c&gt; &amp; [d](http://e)</code> now");
    assert.equal(md("``a ` b``"), "<code>a ` b</code>");
  });

  it("converts bold, italic, strike and combinations", () => {
    assert.equal(md("**b** *i* _i_ ~~s~~ ***bi***"), "<b>b</b> <i>i</i> <i>i</i> <s>s</s> <i><b>bi</b></i>");
    assert.equal(md("*a **b** c*"), "<i>a <b>b</b> c</i>");
    assert.equal(md("snake_case_name and 2 * 3 * 4"), "snake_case_name and 2 * 3 * 4");
    assert.equal(md("\\*not italic\\*"), "*not italic*");
  });

  it("degrades nested or unbalanced markup to text without broken tags", () => {
    const cases = [
      "**unclosed *mixed _stuff ~~ [link](http://a",
      "**bold *italic***",
      "*a **b* c**",
      "_a *b_ c*",
      "`unclosed code **b**",
      "[[nested](http://a)](http://b)",
      "**[x](http://a**b)**",
      "~~~~ ~ ~~a~~~",
      "*** ** * _ __ ___",
      "<b>**x</b>**",
      "*`*`*",
      "> **quote\n> spans** lines",
      "# **heading *with** mess*",
    ];
    for (const c of cases) md(c);
    assert.equal(md("**unclosed"), "**unclosed");
  });

  it("converts links: http, https and tg only; others keep their text", () => {
    assert.equal(md("[site](https://x.com/a?b=1&c=2)"), `<a href="https://x.com/a?b=1&amp;c=2">site</a>`);
    assert.equal(md(`[t](http://a.b/p_(x) "title")`), `<a href="http://a.b/p_(x)">t</a>`);
    assert.equal(md("[chat](tg://resolve?domain=x)"), `<a href="tg://resolve?domain=x">chat</a>`);
    assert.equal(md("[bad](javascript:alert(1)) [file](./a.md) [](https://x.io)"), `[bad](javascript:alert(1)) file <a href="https://x.io">https://x.io</a>`);
    assert.equal(md("[**bold** link](https://a)"), `<a href="https://a"><b>bold</b> link</a>`);
    assert.equal(md("<https://auto.io/x>"), `<a href="https://auto.io/x">https://auto.io/x</a>`);
    assert.equal(md(`[q](https://a/"onclick=x)`), `<a href="https://a/%22onclick=x">q</a>`);
  });

  it("turns headings into bold lines", () => {
    assert.equal(md("# Title\n## Sub *it* ##\n#hashtag"), "<b>Title</b>\n\n<b>Sub <i>it</i></b>\n\n#hashtag");
  });

  it("groups quote lines into one blockquote", () => {
    assert.equal(md("> one **b**\n> two\n\nafter"), "<blockquote>one <b>b</b>\ntwo</blockquote>\n\nafter");
  });

  it("keeps lists as lines with bullets", () => {
    assert.equal(md("- a\n- b *i*\n  + c\n- [x] done\n- [ ] todo\n\n1. one\n2) two"), "• a\n• b <i>i</i>\n  • c\n• ☑ done\n• ☐ todo\n\n1. one\n\n2) two");
  });

  it("escapes unknown HTML in the source", () => {
    assert.equal(md(`<script>alert("x")</script> & <b>hi</b>`), `&lt;script&gt;alert("x")&lt;/script&gt; &amp; &lt;b&gt;hi&lt;/b&gt;`);
  });

  it("collapses runs of blank lines and trims the ends", () => {
    assert.equal(md("\n\na\n\n\n\nb\n\n"), "a\n\nb");
  });
});

describe("splitForTelegram", () => {
  it("returns short HTML as one part", () => {
    assert.deepEqual(splitForTelegram("<b>hi</b>"), { parts: ["<b>hi</b>"] });
  });

  it("splits a 10,000-character answer on paragraph boundaries", () => {
    const paragraphs: string[] = [];
    let n = 0;
    while (paragraphs.join("\n\n").length < 10_000) {
      n++;
      paragraphs.push(`Paragraph ${n} has **bold ${n}**, a \`code <${n}> & more\` and *words*. ` + "lorem ipsum dolor ".repeat(10 + (n % 17)));
    }
    const source = paragraphs.join("\n\n");
    const html = md(source);
    const parts = partsOf(splitForTelegram(html));
    assert.ok(parts.length >= 3 && parts.length <= 4, `got ${parts.length} parts`);
    for (const part of parts) {
      assert.ok(visible(part) <= 4096, `part of ${visible(part)}`);
      assertValidHtml(part);
    }
    assert.equal(parts.join("\n\n"), html);
    assert.equal(parts.map(textOf).join("\n\n"), textOf(html));
  });

  it("splits a 6,000-character code block into balanced pre blocks whose code concatenates to the original", () => {
    const lines: string[] = [];
    for (let k = 0; lines.join("\n").length < 6000; k++) lines.push(`  const v${k} = a < b && c > d ? "x" : 'y'; // ${k}`);
    const code = lines.join("\n");
    const html = md(`Intro text.\n\n\`\`\`python\n${code}\n\`\`\`\n\nOutro.`);
    const parts = partsOf(splitForTelegram(html));
    let joined = "";
    let blocks = 0;
    for (const part of parts) {
      assert.ok(visible(part) <= 4096);
      assertValidHtml(part);
      for (const m of part.matchAll(/<pre><code class="language-python">([\s\S]*?)<\/code><\/pre>/g)) {
        joined += unescape(m[1]!);
        blocks++;
      }
    }
    assert.ok(blocks >= 2, `only ${blocks} code blocks`);
    assert.equal(joined, code);
    assert.equal(parts[0], "Intro text.");
    assert.ok(parts[parts.length - 1]!.endsWith("</code></pre>\n\nOutro."));
    // Cuts inside the code fall on line boundaries: every block but the last ends with its line break.
    for (const part of parts.slice(1, -1)) assert.ok(part.endsWith("\n</code></pre>"), part.slice(-40));
  });

  it("cuts a single over-long code line hard, never inside an entity", () => {
    const line = "<&>".repeat(700); // 2,100 visible characters, 9,100 once escaped
    const html = md("```\n" + line + "\n```");
    const parts = partsOf(splitForTelegram(html, { limit: 1000, maxParts: 20 }));
    assert.equal(parts.length, 3);
    let joined = "";
    for (const part of parts) {
      assert.ok(visible(part) <= 1000);
      assertValidHtml(part);
      joined += unescape(/^<pre><code>([\s\S]*)<\/code><\/pre>$/.exec(part)![1]!);
    }
    assert.equal(joined, line);
  });

  it("splits a long paragraph inside formatting at spaces, closing and reopening tags", () => {
    const words = Array.from({ length: 900 }, (_, k) => `w${k}`).join(" ");
    const html = md(`**${words}**`);
    const parts = partsOf(splitForTelegram(html, { limit: 1000, maxParts: 10 }));
    assert.ok(parts.length > 1);
    for (const part of parts) {
      assert.ok(visible(part) <= 1000);
      assertValidHtml(part);
      assert.ok(part.startsWith("<b>") && part.endsWith("</b>"));
    }
    assert.equal(parts.map(textOf).join(" "), words);
  });

  it("never cuts inside a tag or a link", () => {
    const link = `<a href="https://example.com/${"x".repeat(100)}">link</a>`;
    const html = Array.from({ length: 40 }, (_, k) => `text ${k} ${link}`).join(" ");
    for (const limit of [300, 517, 1000]) {
      const result = splitForTelegram(html, { limit, maxParts: 100 });
      for (const part of partsOf(result)) {
        assert.ok(visible(part) <= limit);
        assertValidHtml(part);
      }
    }
  });

  it("asks for a document past maxParts", () => {
    const html = md(Array.from({ length: 60 }, (_, k) => `Paragraph ${k} ` + "words ".repeat(100)).join("\n\n"));
    assert.ok(visible(html) > 4 * 4096);
    assert.deepEqual(splitForTelegram(html), { document: true });
    assert.deepEqual(splitForTelegram(html, { limit: 4096, maxParts: 2 }), { document: true });
    assert.ok("parts" in splitForTelegram(html, { maxParts: 20 }));
  });
});

// A line can be as long as the whole answer, and formatting runs on the daemon's only thread, so the
// cost must grow with the length, not with its square. These cases pin the output on lines shaped
// to make searches for a closer expensive (the closer far away, or missing) and assert no time
// (bench/format.ts measures it): a regression shows as a stalled test run.
describe("long lines", () => {
  const N = 8_000; // most lines below stay under MAX_MARKDOWN, so the parser runs

  it("formats a 60 KB one-line answer without stalling", () => {
    const answer = "*a ".repeat(20_000); // e.g. a long generated line with stray asterisks
    const html = md(answer);
    assert.equal(html, answer.trimEnd()); // no `*` can close: each follows a space
    assert.deepEqual(splitForTelegram(html), { document: true });
    const parts = partsOf(splitForTelegram(html, { maxParts: 100 }));
    for (const part of parts) assert.ok(visible(part) <= 4096);
    assert.equal(parts.join(" "), html);
  });

  it("leaves many unclosed openers of every kind as text", () => {
    for (const unit of ["*a ", "**a ", "***a ", "_a ", "__a ", "~~a ", "[", "[a ", "[a](", "[a](b ", "![a](", "[[]", "(", "<a ", "[a](<", "<http://a "]) {
      const line = `x ${unit.repeat(N)}`;
      assert.equal(md(line), escapeHtml(line.trimEnd()), JSON.stringify(unit));
    }
    assert.equal(md(`x ${"\\*a ".repeat(N)}`), `x ${"*a ".repeat(N)}`.trimEnd());
    assert.equal(md(`\`\`${"a `b ` ".repeat(N)}`), `\`\`${"a <code>b </code> ".repeat(N)}`.trimEnd());
    assert.equal(md(`x ${"[a `b` ".repeat(N)}`), `x ${"[a <code>b</code> ".repeat(N)}`.trimEnd());
  });

  it("still finds a closer or a link end however far away it is", () => {
    const filler = (skip: string) => ["a ", "*b ", "_c ", "~~d ", "[e "].filter((atom) => !atom.startsWith(skip)).join("").repeat(N / 4);
    assert.equal(md(`**${filler("*")}f**`), `<b>${filler("*")}f</b>`);
    assert.equal(md(`_${filler("_")}f_ g`), `<i>${filler("_")}f</i> g`);
    assert.equal(md(`~~${filler("~")}f~~`), `<s>${filler("~")}f</s>`);
    assert.equal(md(`\`\`${filler("`")}\`\``), `<code>${filler("`")}</code>`);
    const text = "a [b] `c]` ".repeat(N / 2);
    assert.equal(md(`[${text}](https://x.io/y) z`), `<a href="https://x.io/y">${text.replace(/`/g, "")}</a> z`);
    const url = `https://x.io/${"(a)".repeat(N)}`;
    assert.equal(md(`[a](${url}) b`), `<a href="${url}">a</a> b`);
  });

  it("reads long heading, rule, list and fence lines", () => {
    const spaces = " ".repeat(3 * N);
    assert.equal(md(`# a${spaces}b ##`), `<b>a${spaces}b</b>`);
    assert.equal(md(`- a${spaces}*b*`), `• a${spaces}<i>b</i>`);
    assert.equal(md(`${"- ".repeat(N)}-`), "──────────");
    assert.equal(md(`\`\`\`ts${spaces}x\n<y>`), `<pre><code class="language-ts">&lt;y&gt;</code></pre>`);
    assert.equal(textOf(md(`#${spaces}a\u2028 #`)), "a\u2028");
    assert.equal(textOf(md(`a ${"`".repeat(3 * N)}x\u2028`)), `a ${"`".repeat(3 * N)}x\u2028`);
  });

  it("splits 200 KB without a paragraph break, and gives up on 200 KB of unclosed tags", () => {
    const html = Array(3_000).fill(md("**Bold** words, *italic* ones, `code <x>` & [a link](https://x.io)")).join(" ");
    assert.ok(html.length > 200_000 && !html.includes("\n"));
    const parts = partsOf(splitForTelegram(html, { maxParts: 1_000 }));
    for (const part of parts) {
      assert.ok(visible(part) <= 4096);
      assertValidHtml(part);
    }
    assert.equal(parts.map(textOf).join(" "), textOf(html));
    assert.deepEqual(splitForTelegram(html), { document: true });
    // Not what markdownToTelegramHtml makes, but valid input: 50,000 nested open tags.
    assert.deepEqual(splitForTelegram("<i>a".repeat(50_000)), { document: true });
  });
});

describe("fuzz", () => {
  it("random markup always gives valid HTML, and valid parts when split", () => {
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const atoms = ["*", "**", "_", "__", "~~", "`", "```", "[", "]", "(", ")", "http://x", "<", ">", "&", "\\", "#", "> ", "- ", "\n", "\n\n", " ", "word", "é", "😀", "snake_case"];
    for (let k = 0; k < 400; k++) {
      let source = "";
      const len = 1 + rand(60);
      for (let j = 0; j < len; j++) source += atoms[rand(atoms.length)];
      const html = md(source);
      const limit = 120 + rand(80); // room for the longest reopened tags plus some text
      const result = splitForTelegram(html, { limit, maxParts: 1000 });
      for (const part of partsOf(result)) {
        assertValidHtml(part);
        assert.ok(visible(part) <= limit, `${visible(part)} > ${limit}: ${JSON.stringify(part)} from ${JSON.stringify(html)}`);
      }
    }
  });
});

describe("progressText", () => {
  const base = { title: "Fix the <build> & ship", step: 4, tools: [] as string[], tokens: 12_345, costUsd: 0.01234, state: "running" };

  it("shows title bold, state, step, tokens and cost", () => {
    const text = progressText(base);
    assertValidHtml(text);
    assert.ok(text.startsWith("<b>Fix the &lt;build&gt; &amp; ship</b>"), text);
    assert.match(text, /running/);
    assert.match(text, /step 4/);
    assert.match(text, /12\.3k/);
    assert.match(text, /\$0\.0123/);
  });

  it("escapes tool lines, keeps the last three, cuts each, and stays under 1,000 chars", () => {
    const tools = ["first", "second", `bash <script>alert("x")</script> ${"y".repeat(300)}`, "read_file a&b.txt", "<script>"];
    const text = progressText({ ...base, tools });
    assertValidHtml(text);
    assert.ok(!text.includes("<script>"));
    assert.ok(!text.includes("first") && !text.includes("second"));
    assert.ok(text.includes("&lt;script&gt;alert"));
    assert.ok(text.includes("a&amp;b.txt"));
    const longLine = text.split("\n").find((l) => l.includes("alert"))!;
    assert.ok(textOf(longLine).length <= 90, longLine);

    const worst = progressText({ title: "&<>".repeat(500), step: 99999, tools: ["<&>\n".repeat(500), "&".repeat(500), ">".repeat(500)], tokens: 9e12, costUsd: 123456.789, state: "<".repeat(300) });
    assertValidHtml(worst);
    assert.ok(worst.length < 1000, `${worst.length}`);
  });

  it("formats tokens and cost", () => {
    assert.equal(formatTokens(950), "950");
    assert.equal(formatTokens(12_345), "12.3k");
    assert.equal(formatTokens(2_500_000), "2.5M");
    assert.equal(formatCost(0.01234), "$0.0123");
    assert.equal(formatCost(3.456), "$3.46");
    assert.equal(formatCost(0), "$0.0000");
  });
});
