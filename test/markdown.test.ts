import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { markdownToTelegramHtml, splitForTelegram } from "../bot/format.ts";
import { preBlocks, telegramHtmlProblem, visibleText } from "./support/telegram-html.ts";

// Markdown as models write it, where blocks nest: each case is one that reading line by line got
// wrong (code formatted as prose, a fence missed and the rest of the answer swallowed, markup that
// wraps a line left raw), pinned to the output Telegram should get.

const md = (source: string) => {
  const html = markdownToTelegramHtml(source);
  assert.equal(telegramHtmlProblem(html), null, `${telegramHtmlProblem(html)} in ${JSON.stringify(html)}`);
  return html;
};

describe("Markdown blocks that nest", () => {
  it("reads a fence opened on a list item and ends it where it closes", () => {
    const html = md("Steps:\n\n- ```bash\n  ls -la **/*.ts\n  ```\n- then **build**\n\nDone.");
    assert.equal(html, `Steps:\n\n•\n<pre><code class="language-bash">ls -la **/*.ts</code></pre>\n• then <b>build</b>\n\nDone.`);
  });

  it("reads a fence inside a quote and ends the quote with it", () => {
    const html = md("> ```\n> x = **1** < 2\n> ```\n\nafter **this**");
    assert.equal(html, "<blockquote><pre><code>x = **1** &lt; 2</code></pre></blockquote>\n\nafter <b>this</b>");
  });

  it("keeps indented code literal", () => {
    const html = md("Write:\n\n    class A:\n        def __init__(self, **kw):\n            pass\n\nThen run it.");
    assert.equal(html, "Write:\n\n<pre><code>class A:\n    def __init__(self, **kw):\n        pass</code></pre>\n\nThen run it.");
  });

  it("keeps code in list items literal and without the list's indentation", () => {
    const html = md("1. Compile:\n\n   ```sh\n   npx tsc **/*.ts\n     --strict\n   ```\n2. Indented:\n\n       def __init__(self, **kw): _x_\n3. Done");
    assert.deepEqual(preBlocks(html), ["npx tsc **/*.ts\n  --strict", "def __init__(self, **kw): _x_"]);
    assert.ok(html.includes(`<pre><code class="language-sh">npx tsc **/*.ts\n  --strict</code></pre>`), html);
    assert.match(html, /^1\. Compile:\n/);
    assert.match(html, /\n3\. Done$/);
  });

  it("renders emphasis, links and code spans that wrap across a line break", () => {
    const html = md("This is *an emphasis\nacross lines*, a **strong\none**, a [link\ntext](https://x.io/a) and `code\nspan`.");
    assert.equal(html, `This is <i>an emphasis\nacross lines</i>, a <b>strong\none</b>, a <a href="https://x.io/a">link\ntext</a> and <code>code span</code>.`);
  });

  it("turns setext headings into bold lines without their underlines", () => {
    assert.equal(md("Title\n=====\n\nPart *one*\n---\n\ntext"), "<b>Title</b>\n\n<b>Part <i>one</i></b>\n\ntext");
  });

  it("resolves reference-style links and hides their definitions", () => {
    const html = md(`See [the docs][d] and [this].\n\n[d]: https://d.io/x\n[this]: https://t.io "T"`);
    assert.equal(html, `See <a href="https://d.io/x">the docs</a> and <a href="https://t.io">this</a>.`);
  });

  it("decodes HTML entities in text", () => {
    assert.equal(md("Sch&ouml;n &amp; gut &#x1F600; &lt;tag&gt; &copy;"), "Schön &amp; gut 😀 &lt;tag&gt; ©");
  });

  it("indents nested lists and their continuation lines", () => {
    const html = md("- one\n  - two *a*\n    wraps\n  - three\n- four\n\n3. c\n4. d");
    assert.equal(html, "• one\n  • two <i>a</i>\n    wraps\n  • three\n• four\n\n3. c\n4. d");
  });

  it("shows tables as text rows and images as links", () => {
    assert.equal(md("| a | **b** |\n|---|---|\n| 1 | `2` |"), "<b>a</b> | <b><b>b</b></b>\n1 | <code>2</code>");
    assert.equal(md("![chart](https://x.io/c.png)"), `<a href="https://x.io/c.png">chart</a>`);
  });

  it("keeps a link's code as plain text (Telegram nests no code in a link)", () => {
    assert.equal(md("[`npm ci`](https://docs.npmjs.com)"), `<a href="https://docs.npmjs.com">npm ci</a>`);
  });

  it("flattens a quote inside a quote (Telegram nests no blockquotes)", () => {
    assert.equal(md("> outer\n>\n> > inner *x*\n\nafter"), "<blockquote>outer\n\ninner <i>x</i></blockquote>\n\nafter");
  });
});

describe("Markdown guards", () => {
  it("falls back to escaped text past the nesting cap instead of dropping words", () => {
    for (const source of ["> ".repeat(150) + "deep <words> & more", "- ".repeat(150) + "deep <words> & more", "  ".repeat(0) + "* [".repeat(150) + "deep <words> & more"]) {
      const html = md(source);
      assert.ok(visibleText(html).includes("deep <words> & more"), `${JSON.stringify(source.slice(0, 20))} → ${JSON.stringify(html.slice(-80))}`);
    }
  });

  it("shows an answer over the size cap as escaped text, every word kept", () => {
    const source = "- **item** <b>\n  - nested `x` & y\n".repeat(5_000);
    const html = md(source);
    assert.equal(visibleText(html), source.trimEnd());
  });
});

describe("loading the parser", () => {
  it("loads markdown-it with the first answer, not with the bot (an idle daemon does not pay for it)", () => {
    const format = new URL("../bot/format.ts", import.meta.url).href;
    const script = `
      import { createRequire } from "node:module";
      const { markdownToTelegramHtml } = await import(${JSON.stringify(format)});
      const loaded = () => Object.keys(createRequire(${JSON.stringify(format)}).cache).some((path) => path.includes("markdown-it"));
      const before = loaded();
      const html = markdownToTelegramHtml("*a*");
      console.log(JSON.stringify([before, loaded(), html]));`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    assert.deepEqual(JSON.parse(out), [false, true, "<i>a</i>"]);
  });
});

describe("splitting by what Telegram counts", () => {
  it("sends a link-heavy answer of about 3,000 visible characters as one message", () => {
    const items = Array.from({ length: 48 }, (_, k) => `- [Result ${k}: a page about topic ${k}](https://example.com/search?q=${"topic+".repeat(40)}${k}&lang=en) — ${"see it".repeat(3)}`);
    const html = md(`Sources:\n\n${items.join("\n")}`);
    const visible = visibleText(html).length;
    assert.ok(visible > 2_500 && visible < 4_096 && html.length > 4 * 4_096, `${visible} visible, ${html.length} HTML`);
    assert.deepEqual(splitForTelegram(html), { parts: [html] });
  });

  it("cuts a long answer into parts of at most 4,096 visible UTF-16 units, never inside a surrogate pair", () => {
    const html = md(`**${"😀 ab &amp; <c> ".repeat(1_500)}**`);
    const result = splitForTelegram(html, { maxParts: 100 });
    assert.ok("parts" in result);
    assert.ok(result.parts.length >= 5);
    for (const [k, part] of result.parts.entries()) {
      assert.equal(telegramHtmlProblem(part), null);
      const text = visibleText(part);
      assert.ok(text.length <= 4_096, `${text.length}`);
      if (k < result.parts.length - 1) assert.ok(text.length > 3_500, `${text.length}: cut too early`);
      assert.doesNotMatch(text, /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
    }
  });
});
