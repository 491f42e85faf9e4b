/**
 * A small HTML-to-readable-text converter for `web_fetch`. Not a browser: a forgiving tokenizer that
 * keeps what a reader would see (headings, paragraphs, list items, links, code) and drops the rest.
 * Pure and total: any input, however broken, gives some text and never throws.
 */

/** Elements whose content is raw text up to their end tag and never shown. */
const RAW_HIDDEN = new Set(["script", "style", "noscript", "iframe", "noembed", "noframes", "xmp", "template"]);
/** Elements whose markup is parsed but whose text is not shown. */
const HIDDEN = new Set(["head", "svg", "math", "select", "object", "canvas", "audio", "video", "map"]);
const VOID = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"]);
/** Blocks separated by a blank line; the other block elements by a line break. */
const PARAGRAPH = new Set(["p", "blockquote", "pre", "table", "ul", "ol", "dl", "figure", "section", "article", "header", "footer", "nav", "main", "aside", "form", "fieldset", "details", "address"]);
const BLOCK = new Set(["div", "li", "tr", "dt", "dd", "br", "hr", "caption", "figcaption", "summary", "legend", "center", "option"]);

const NAMED: Record<string, string> = {
  amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0", shy: "\u00ad", ensp: "\u2002", emsp: "\u2003", thinsp: "\u2009",
  zwnj: "\u200c", zwj: "\u200d", copy: "©", reg: "®", trade: "™", hellip: "…", mdash: "—", ndash: "–", minus: "−",
  lsquo: "‘", rsquo: "’", sbquo: "‚", ldquo: "“", rdquo: "”", bdquo: "„", laquo: "«", raquo: "»", lsaquo: "‹", rsaquo: "›",
  bull: "•", middot: "·", deg: "°", euro: "€", pound: "£", yen: "¥", cent: "¢", curren: "¤", sect: "§", para: "¶",
  times: "×", divide: "÷", plusmn: "±", frac12: "½", frac14: "¼", frac34: "¾", sup1: "¹", sup2: "²", sup3: "³", micro: "µ",
  iexcl: "¡", iquest: "¿", dagger: "†", Dagger: "‡", permil: "‰", prime: "′", Prime: "″", larr: "←", rarr: "→", uarr: "↑",
  darr: "↓", harr: "↔", lArr: "⇐", rArr: "⇒", hArr: "⇔", le: "≤", ge: "≥", ne: "≠", asymp: "≈", infin: "∞", check: "✓",
  hearts: "♥", star: "☆", alpha: "α", beta: "β", gamma: "γ", delta: "δ", pi: "π", sigma: "σ", mu: "μ", lambda: "λ", Omega: "Ω",
  agrave: "à", aacute: "á", acirc: "â", atilde: "ã", auml: "ä", aring: "å", aelig: "æ", ccedil: "ç", egrave: "è", eacute: "é",
  ecirc: "ê", euml: "ë", igrave: "ì", iacute: "í", icirc: "î", iuml: "ï", ntilde: "ñ", ograve: "ò", oacute: "ó", ocirc: "ô",
  otilde: "õ", ouml: "ö", oslash: "ø", ugrave: "ù", uacute: "ú", ucirc: "û", uuml: "ü", yacute: "ý", yuml: "ÿ", szlig: "ß",
  Agrave: "À", Aacute: "Á", Acirc: "Â", Atilde: "Ã", Auml: "Ä", Aring: "Å", AElig: "Æ", Ccedil: "Ç", Egrave: "È", Eacute: "É",
  Ecirc: "Ê", Euml: "Ë", Iacute: "Í", Ntilde: "Ñ", Oacute: "Ó", Ocirc: "Ô", Ouml: "Ö", Oslash: "Ø", Uacute: "Ú", Uuml: "Ü",
};

/** Decodes named (the common ones) and numeric character references; unknown ones stay as written. */
export function decodeEntities(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(/&(?:#(\d{1,8})|#[xX]([0-9a-fA-F]{1,7})|([a-zA-Z][a-zA-Z0-9]{1,31}));?/g, (whole, dec?: string, hex?: string, name?: string) => {
    if (name !== undefined) return NAMED[name] ?? whole;
    const code = dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex!, 16);
    if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return "\ufffd";
    return String.fromCodePoint(code);
  });
}

/**
 * Collects output text with pending line breaks, so empty elements never leave blank lines behind.
 * Keeps pieces in an array and remembers how the text ends: inspecting one growing string would
 * flatten it on every call and make large pages quadratic.
 */
class Writer {
  private readonly parts: string[] = [];
  /** Newlines ending the text so far, and whether it ends in whitespace at all. */
  private trailingBreaks = 0;
  private endsInSpace = true;
  private pendingBreaks = 0;
  private pendingSpace = false;

  text(chunk: string): void {
    if (chunk === "") return;
    const empty = this.parts.length === 0;
    if (!empty && this.pendingBreaks > this.trailingBreaks) this.parts.push("\n".repeat(this.pendingBreaks - this.trailingBreaks));
    else if (!empty && this.pendingBreaks === 0 && this.pendingSpace && !this.endsInSpace) this.parts.push(" ");
    this.pendingBreaks = 0;
    this.pendingSpace = false;
    this.parts.push(chunk);
    const trailing = chunk.length - chunk.replace(/\n+$/, "").length;
    this.trailingBreaks = trailing === chunk.length ? this.trailingBreaks + trailing : trailing;
    this.endsInSpace = /\s$/.test(chunk);
  }

  /** Collapsed text: runs of whitespace become one space, leading space waits for the next word. */
  inline(raw: string): void {
    const text = raw.replace(/\s+/g, " ");
    if (text.trim() === "") {
      if (text !== "") this.pendingSpace = true;
      return;
    }
    if (text.startsWith(" ")) this.pendingSpace = true;
    this.text(text.trim());
    if (text.endsWith(" ")) this.pendingSpace = true;
  }

  atLineStart(): boolean {
    return this.parts.length === 0 || this.pendingBreaks > 0 || this.trailingBreaks > 0;
  }

  /** `lines` 1 ends the current line, 2 leaves a blank line. */
  lineBreak(lines: 1 | 2): void {
    this.pendingBreaks = Math.max(this.pendingBreaks, lines);
    this.pendingSpace = false;
  }

  /** A position to read the text written since (a link's text). */
  mark(): number {
    return this.parts.length;
  }

  since(mark: number): string {
    return this.parts.slice(mark).join("");
  }

  result(): string {
    return this.parts.join("");
  }
}

interface OpenLink {
  href: string | undefined;
  start: number;
}

export function htmlToText(html: string, baseUrl: string): { title?: string; text: string } {
  const writer = new Writer();
  const hidden: string[] = [];
  const links: OpenLink[] = [];
  let base = baseUrl;
  let title: string | undefined;
  let pre = 0;
  let preStart = false; // HTML drops the newline right after <pre>
  let listDepth = 0;
  let index = 0;

  while (index < html.length) {
    const lt = html.indexOf("<", index);
    const textEnd = lt === -1 ? html.length : lt;
    if (textEnd > index) {
      if (hidden.length === 0) {
        const text = decodeEntities(html.slice(index, textEnd));
        if (pre > 0) writer.text(preStart ? text.replace(/^\r?\n/, "") : text);
        else writer.inline(text);
      }
      index = textEnd;
      preStart = false;
      continue;
    }
    if (html.startsWith("<!--", index)) {
      const end = html.indexOf("-->", index + 4);
      index = end === -1 ? html.length : end + 3;
      continue;
    }
    if (html.startsWith("<!", index) || html.startsWith("<?", index)) {
      const end = html.indexOf(">", index);
      index = end === -1 ? html.length : end + 1;
      continue;
    }
    const tag = readTag(html, index);
    if (!tag) {
      if (/^<\/?[a-zA-Z]/.test(html.slice(index, index + 3))) {
        const end = html.indexOf(">", index); // a broken tag (an unclosed quote): skip it, as a browser would hide it
        index = end === -1 ? html.length : end + 1;
      } else {
        if (hidden.length === 0) writer.inline("<");
        index += 1;
      }
      continue;
    }
    index = tag.end;
    const { name, closing } = tag;

    if (!closing && (RAW_HIDDEN.has(name) || name === "title" || name === "textarea")) {
      const close = findEndTag(html, index, name);
      const content = html.slice(index, close.start);
      index = close.end;
      if (name === "title" && title === undefined && !hidden.includes("svg")) title = decodeEntities(content).replace(/\s+/g, " ").trim() || undefined;
      if (name === "textarea" && hidden.length === 0) writer.text(decodeEntities(content));
      continue;
    }
    if (name === "body" && !closing) {
      hidden.length = 0; // a missing </head>
      continue;
    }
    if (HIDDEN.has(name)) {
      if (!closing && !tag.selfClosing) hidden.push(name);
      else if (closing) {
        const at = hidden.lastIndexOf(name);
        if (at !== -1) hidden.length = at;
      }
      continue;
    }
    if (name === "base" && !closing) {
      const resolved = resolveUrl(tag.attributes.get("href"), baseUrl);
      if (resolved) base = resolved;
      continue;
    }
    if (hidden.length > 0) continue;

    const heading = /^h([1-6])$/.exec(name);
    if (heading) {
      writer.lineBreak(2);
      if (!closing) writer.text("#".repeat(Number(heading[1])) + " ");
    } else if (name === "pre") {
      writer.lineBreak(closing ? 1 : 2);
      writer.text("```");
      writer.lineBreak(closing ? 2 : 1);
      pre = Math.max(0, pre + (closing ? -1 : 1));
      preStart = !closing;
    } else if (name === "code" && pre === 0) {
      writer.text("`");
    } else if (name === "ul" || name === "ol") {
      listDepth = Math.max(0, listDepth + (closing ? -1 : 1));
      writer.lineBreak(listDepth > 0 ? 1 : 2);
    } else if (name === "li") {
      writer.lineBreak(1);
      if (!closing) writer.text("  ".repeat(Math.max(0, listDepth - 1)) + "- ");
    } else if (name === "td" || name === "th") {
      if (!closing && !writer.atLineStart()) writer.inline(" | ");
    } else if (name === "a") {
      if (!closing) links.push({ href: tag.attributes.get("href"), start: writer.mark() });
      else {
        const link = links.pop();
        if (link) endLink(writer, link, base);
      }
    } else if (name === "img" && !closing) {
      const alt = tag.attributes.get("alt")?.replace(/\s+/g, " ").trim();
      if (alt) writer.inline(`[${alt}]`);
    } else if (PARAGRAPH.has(name)) {
      writer.lineBreak(2);
    } else if (BLOCK.has(name)) {
      writer.lineBreak(1);
      if (name === "hr") {
        writer.text("---");
        writer.lineBreak(1);
      }
    }
  }

  const text = writer.result().replace(/^ *(?:#{1,6}|-) $/gm, "").replace(/[ \t]+\n/g, "\n").replace(/\n{3,}/g, "\n\n").trim();
  return title === undefined ? { text } : { title, text };
}

/** Appends ` (url)` after the link text when the link leads somewhere the text does not already say. */
function endLink(writer: Writer, link: OpenLink, base: string): void {
  const url = resolveUrl(link.href, base);
  if (!url || !/^(https?|mailto):/i.test(url)) return;
  const text = writer.since(link.start).trim();
  const bare = (s: string) => s.replace(/^mailto:/i, "").replace(/\/$/, "");
  if (text === "") return writer.text(url);
  if (bare(text) === bare(url)) return;
  writer.text(` (${url})`);
}

function resolveUrl(href: string | undefined, base: string): string | undefined {
  const value = href?.trim();
  if (!value || value.startsWith("#")) return undefined;
  try {
    return new URL(value, base).href;
  } catch {
    return undefined;
  }
}

interface Tag {
  name: string;
  closing: boolean;
  selfClosing: boolean;
  attributes: Map<string, string>;
  end: number;
}

const TAG = /<(\/?)([a-zA-Z][a-zA-Z0-9:-]*)((?:[^>"']|"[^"]*"|'[^']*')*)>/y;
const ATTRIBUTE = /([^\s"'>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;

function readTag(html: string, at: number): Tag | undefined {
  TAG.lastIndex = at;
  const match = TAG.exec(html);
  if (!match) return undefined;
  const name = match[2]!.toLowerCase();
  const rest = match[3]!;
  const attributes = new Map<string, string>();
  if (match[1] === "") {
    for (const [, key, double, single, bare] of rest.matchAll(ATTRIBUTE)) {
      const attribute = key!.toLowerCase();
      if (!attributes.has(attribute)) attributes.set(attribute, decodeEntities(double ?? single ?? bare ?? ""));
    }
  }
  return { name, closing: match[1] === "/", selfClosing: VOID.has(name) || rest.trimEnd().endsWith("/"), attributes, end: TAG.lastIndex };
}

/** Where `</name>` starts and ends after `from`; the end of input when it never comes. */
function findEndTag(html: string, from: number, name: string): { start: number; end: number } {
  const pattern = new RegExp(`</${name}\\s*>`, "ig");
  pattern.lastIndex = from;
  const match = pattern.exec(html);
  return match ? { start: match.index, end: match.index + match[0].length } : { start: html.length, end: html.length };
}
