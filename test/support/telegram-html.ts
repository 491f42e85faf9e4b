// What Telegram's HTML parse mode accepts, checked the strict way: only the tags the Bot API lists,
// only their attributes, every tag closed in order, no raw `<` or `>` in text, `&` only as
// &lt; &gt; &amp; &quot; or a numeric entity, and the nesting rules of "Formatting options":
// bold, italic, underline, strikethrough and spoiler may hold anything but are never inside pre or
// code; pre and code hold only text (pre may hold one code carrying the language); a link holds no
// link, code or pre; blockquotes are not nested. Returns the first problem, or null.

const INLINE = new Set(["b", "i", "u", "s", "tg-spoiler"]);
const TAG = /<(\/?)([a-z-]+)((?:\s+[a-z-]+(?:="[^"<>]*")?)*)\s*>/y;

export function telegramHtmlProblem(html: string): string | null {
  const stack: string[] = [];
  const where = (i: number) => `at ${i}: ${JSON.stringify(html.slice(Math.max(0, i - 40), i + 40))}`;
  for (let i = 0; i < html.length; ) {
    const c = html[i]!;
    if (c === "<") {
      TAG.lastIndex = i;
      const m = TAG.exec(html);
      if (!m) return `bad tag ${where(i)}`;
      const [, slash, name, attrs] = m as unknown as [string, string, string, string];
      if (slash) {
        const open = stack.pop();
        if (open !== name) return `</${name}> closes <${open ?? "nothing"}> ${where(i)}`;
      } else {
        const problem = openProblem(name, attrs.trim(), stack);
        if (problem) return `${problem} ${where(i)}`;
        stack.push(name);
      }
      i += m[0].length;
      continue;
    }
    if (c === ">") return `raw > ${where(i)}`;
    if (c === "&" && !/^&(?:lt|gt|amp|quot|#\d+|#x[0-9a-f]+);/i.test(html.slice(i, i + 12))) return `stray & ${where(i)}`;
    i++;
  }
  return stack.length > 0 ? `unclosed <${stack.join("><")}>` : null;
}

function openProblem(name: string, attrs: string, stack: string[]): string | null {
  const parent = stack[stack.length - 1];
  if (parent === "code") return `<${name}> inside <code>`;
  if (parent === "pre" && name !== "code") return `<${name}> inside <pre>`;
  if (INLINE.has(name)) return attrs ? `<${name}> with attributes` : null;
  switch (name) {
    case "a":
      if (!/^href="(?:https?|tg):\/\/[^"]*"$/i.test(attrs)) return `<a> needs one http(s) or tg href, has ${JSON.stringify(attrs)}`;
      return stack.includes("a") ? "<a> inside <a>" : null;
    case "code":
      if (stack.includes("a")) return "<code> inside <a>";
      if (attrs && !(parent === "pre" && /^class="language-[^"\s]+"$/.test(attrs))) return `<code ${attrs}>`;
      return null;
    case "pre":
      if (attrs) return `<pre ${attrs}>`;
      return stack.some((t) => t !== "blockquote") ? `<pre> inside <${stack.join("><")}>` : null;
    case "blockquote":
      if (attrs && attrs !== "expandable") return `<blockquote ${attrs}>`;
      return stack.length > 0 ? `<blockquote> inside <${stack.join("><")}>` : null;
    default:
      return `tag <${name}> not allowed`;
  }
}

const ENTITY = /&(lt|gt|amp|quot|#\d+|#x[0-9a-f]+);/gi;
const NAMED: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"' };

/** The text Telegram shows: tags removed, entities decoded. */
export function visibleText(html: string): string {
  return html.replace(/<[^>]*>/g, "").replace(ENTITY, (_, e: string) => NAMED[e.toLowerCase()] ?? String.fromCodePoint(e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)));
}

/** The texts of the code blocks (`<pre>`), decoded, in order. */
export function preBlocks(html: string): string[] {
  return [...html.matchAll(/<pre>(?:<code[^>]*>)?([\s\S]*?)(?:<\/code>)?<\/pre>/g)].map((m) => visibleText(m[1]!));
}
