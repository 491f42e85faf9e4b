// Markdown → Telegram HTML: markdown-it reads the Markdown (CommonMark plus tables and
// strikethrough, raw HTML off so it stays text), and this file renders its token stream into the
// subset of HTML that Telegram's parse mode accepts. Pure, no I/O.
//
// Telegram has no lists, headings, tables or images, and nests only some entities ("Formatting
// options" in the Bot API): lists become text bullets and numbers with indentation, headings bold
// lines, tables text rows, images links; a quote inside a quote is flattened into it, and code
// inside a link is shown as the link's plain text. Every tag is opened and closed by one construct,
// so the output is balanced by construction; all text is escaped.

import type { Env, MarkdownIt, StateBlock, Token } from "markdown-it";
import { createRequire } from "node:module";
import { escapeAttr, escapeHtml } from "./escape.ts";

/**
 * Past this depth of nested blocks markdown-it stops reading and silently drops the rest of the
 * answer; the answer is then shown as escaped text instead. Inline markup deeper than this stays
 * text (markdown-it's own behaviour, which keeps every character).
 */
export const MAX_NESTING = 50;

/**
 * Longer answers are shown as escaped text, unparsed, so that no input stalls the daemon's thread:
 * markdown-it is linear but costs 1–2 µs per character on pathological input (4 MB of `[` took
 * 7 s, 100 KB a few hundred ms on a busy machine). Such an answer is sent as a `.md` document
 * anyway: it cannot fit the 4 × 4,096 visible characters sent as messages unless three quarters
 * of it are link targets and markup.
 */
export const MAX_MARKDOWN = 64 * 1024;

/** Indentation of nested list items stops growing here: a phone shows no more, and lazy continuation lines must not multiply the output. */
const MAX_INDENT = 12;

const ALLOWED_LINK = /^(?:https?:\/\/|tg:\/\/)/i;
const RULE = "──────────";

let parser: MarkdownIt | undefined;

/**
 * markdown-it, loaded on the first answer rather than at start: loading it costs about 12 MB of RSS
 * and 50 ms, which an idle daemon or a CLI command should not pay. `require` keeps this synchronous.
 */
function markdownIt(): MarkdownIt {
  if (parser) return parser;
  const MarkdownItClass = createRequire(import.meta.url)("markdown-it") as typeof import("markdown-it").default;
  const md = new MarkdownItClass("default", { html: false, linkify: false, typographer: false, maxNesting: MAX_NESTING });
  const tokenize = md.block.tokenize.bind(md.block);
  // markdown-it ends a block it cannot nest deeper into without a word; note it so the caller falls back.
  md.block.tokenize = (state: StateBlock, startLine: number, endLine: number): void => {
    if (state.level >= MAX_NESTING && startLine < endLine) state.env.tooDeep = true;
    tokenize(state, startLine, endLine);
  };
  return (parser = md);
}

/** Convert the model's Markdown answer into HTML that Telegram's HTML parse mode accepts. */
export function markdownToTelegramHtml(markdown: string): string {
  const source = markdown.replace(/\r\n?/g, "\n");
  if (source.length > MAX_MARKDOWN) return plain(source);
  const env: Env = {};
  const tokens = markdownIt().parse(source, env);
  if (env.tooDeep) return plain(source);
  return new Renderer().render(tokens);
}

function plain(source: string): string {
  return escapeHtml(source.replace(/^\n+/, "").trimEnd());
}

interface ListFrame {
  tight: boolean;
  started: boolean; // a block of this list has been written
  next: number; // the next item's number; -1 for bullets
  delimiter: string;
  indent: string; // the indentation of this list's markers
}

/**
 * Walks the block tokens once. Blocks are written one after another with a separator (a blank line,
 * or a line break between the items of a tight list); list items put their marker before their
 * first block and indent their other lines; code keeps no indentation (its text is byte-exact).
 */
class Renderer {
  #out: string[] = [];
  #lists: ListFrame[] = [];
  #indent = ""; // the continuation indentation of the current list item
  #marker = ""; // an item's marker (or several: `- - a`), waiting for its first block
  #markerIndent = ""; // the indentation before it
  #fresh = true; // nothing written since the start or a quote's opening tag: no separator
  #quoteDepth = 0;
  #quoteOpen = ""; // "<blockquote>", waiting for the quote's first block
  #quoteWritten = false;

  render(tokens: Token[]): string {
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      switch (t.type) {
        case "paragraph_open":
          this.#block(this.#taskBox(inline(tokens[i + 1]!)));
          i += 2;
          break;
        case "heading_open": {
          const text = inline(tokens[i + 1]!);
          if (text) this.#block(`<b>${text}</b>`);
          i += 2;
          break;
        }
        case "fence":
        case "code_block":
          this.#code(t);
          break;
        case "hr":
          this.#block(RULE);
          break;
        case "table_open":
          i = this.#table(tokens, i);
          break;
        case "blockquote_open":
          if (this.#quoteDepth++ === 0) {
            this.#quoteOpen = "<blockquote>";
            this.#quoteWritten = false;
          }
          break;
        case "blockquote_close":
          if (--this.#quoteDepth === 0) {
            if (this.#quoteWritten) this.#out.push("</blockquote>");
            this.#quoteOpen = "";
          }
          break;
        case "bullet_list_open":
        case "ordered_list_open": {
          const ordered = t.type === "ordered_list_open";
          const start = Number(t.attrGet("start") ?? 1);
          this.#lists.push({ tight: isTight(tokens, i), started: false, next: ordered ? start : -1, delimiter: t.markup, indent: this.#indent });
          break;
        }
        case "bullet_list_close":
        case "ordered_list_close":
          this.#indent = this.#lists.pop()!.indent;
          break;
        case "list_item_open": {
          const list = this.#lists[this.#lists.length - 1]!;
          const marker = list.next < 0 ? "• " : `${list.next++}${list.delimiter} `;
          if (!this.#marker) this.#markerIndent = list.indent;
          this.#marker += marker;
          this.#indent = (list.indent + " ".repeat(marker.length)).slice(0, MAX_INDENT);
          break;
        }
        case "list_item_close":
          this.#marker = ""; // an empty item shows nothing
          this.#indent = this.#lists[this.#lists.length - 1]!.indent;
          break;
      }
    }
    return this.#out.join("");
  }

  /** Write a block of HTML (line breaks in it are indented to the current list item). */
  #block(html: string): void {
    this.#start();
    this.#out.push(this.#marker ? this.#markerIndent + this.#marker : this.#indent, this.#indent ? html.replaceAll("\n", `\n${this.#indent}`) : html);
    this.#marker = "";
  }

  /** A code block: its text byte-exact, on lines of its own (an item's marker goes on the line before). */
  #code(t: Token): void {
    const code = t.content.endsWith("\n") ? t.content.slice(0, -1) : t.content;
    if (code === "") return;
    this.#start();
    if (this.#marker) {
      this.#out.push(this.#markerIndent + this.#marker.trimEnd(), "\n");
      this.#marker = "";
    }
    const lang = (t.info.trim().split(/\s+/)[0] ?? "").replace(/[^\w+#.-]/g, "").slice(0, 32);
    this.#out.push(lang ? `<pre><code class="language-${lang}">` : "<pre><code>", escapeHtml(code), "</code></pre>");
  }

  /**
   * Before a block: the separator from the one before (a line break between the items of a tight
   * list, else a blank line; the innermost list holding both decides), and a quote's opening tag
   * if this is its first block.
   */
  #start(): void {
    if (!this.#fresh) {
      let separator = "\n\n";
      for (let k = this.#lists.length - 1; k >= 0; k--) {
        if (this.#lists[k]!.started) {
          if (this.#lists[k]!.tight) separator = "\n";
          break;
        }
      }
      this.#out.push(separator);
    }
    for (let k = this.#lists.length - 1; k >= 0 && !this.#lists[k]!.started; k--) this.#lists[k]!.started = true;
    if (this.#quoteOpen && !this.#quoteWritten) {
      this.#out.push(this.#quoteOpen);
      this.#quoteWritten = true;
    }
    this.#fresh = false;
  }

  /** A table as text: one line per row, cells separated by " | ", the header row bold. */
  #table(tokens: Token[], i: number): number {
    const rows: string[] = [];
    let cells: string[] = [];
    let header = false;
    for (; i < tokens.length && tokens[i]!.type !== "table_close"; i++) {
      const t = tokens[i]!;
      if (t.type === "thead_open") header = true;
      else if (t.type === "thead_close") header = false;
      else if (t.type === "tr_close") {
        rows.push(cells.join(" | "));
        cells = [];
      } else if (t.type === "inline") {
        const text = inline(t);
        cells.push(header && text ? `<b>${text}</b>` : text);
      }
    }
    this.#block(rows.join("\n"));
    return i;
  }

  /** `[ ]` or `[x]` at the start of a list item's first paragraph: a checkbox. */
  #taskBox(html: string): string {
    if (!this.#marker) return html;
    const box = /^\[([ xX])\][ \t]+/.exec(html);
    return box ? (box[1] === " " ? "☐ " : "☑ ") + html.slice(box[0].length) : html;
  }
}

/** Whether a list's paragraphs are hidden (a tight list): markdown-it marks them on the first paragraph. */
function isTight(tokens: Token[], open: number): boolean {
  const level = tokens[open]!.level;
  for (let i = open + 1; i < tokens.length && tokens[i]!.level > level; i++) {
    if (tokens[i]!.type === "paragraph_open" && tokens[i]!.level === level + 2) return tokens[i]!.hidden;
  }
  return true;
}

/** Inline tokens → HTML. Inside a link, code and images are plain text (Telegram nests neither in a link). */
function inline(token: Token): string {
  const children = token.children ?? [];
  let out = "";
  let link: { href: string | null; at: number } | null = null;
  for (const t of children) {
    switch (t.type) {
      case "text":
      case "text_special":
        out += escapeHtml(t.content);
        break;
      case "softbreak":
      case "hardbreak":
        out += "\n";
        break;
      case "code_inline":
        out += link ? escapeHtml(t.content) : `<code>${escapeHtml(t.content)}</code>`;
        break;
      case "strong_open":
        out += "<b>";
        break;
      case "strong_close":
        out += "</b>";
        break;
      case "em_open":
        out += "<i>";
        break;
      case "em_close":
        out += "</i>";
        break;
      case "s_open":
        out += "<s>";
        break;
      case "s_close":
        out += "</s>";
        break;
      case "link_open": {
        const href = t.attrGet("href");
        const allowed = typeof href === "string" && ALLOWED_LINK.test(href);
        if (allowed) out += `<a href="${escapeAttr(href)}">`;
        link = { href: allowed ? href : null, at: out.length };
        break;
      }
      case "link_close":
        if (link?.href) out += (out.length === link.at ? escapeHtml(link.href) : "") + "</a>"; // no text: show the address
        link = null;
        break;
      case "image": {
        const src = t.attrGet("src");
        const alt = escapeHtml(plainText(t.children ?? []));
        out += link || typeof src !== "string" || !ALLOWED_LINK.test(src) ? alt : `<a href="${escapeAttr(src)}">${alt || escapeHtml(src)}</a>`;
        break;
      }
    }
  }
  return out;
}

/** An image's alt text: its inline tokens' text without markup. */
function plainText(children: Token[]): string {
  let text = "";
  for (const t of children) {
    if (t.type === "text" || t.type === "text_special" || t.type === "code_inline") text += t.content;
    else if (t.type === "softbreak" || t.type === "hardbreak") text += "\n";
    else if (t.type === "image") text += plainText(t.children ?? []);
  }
  return text;
}
