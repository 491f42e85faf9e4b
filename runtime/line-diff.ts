/**
 * A line diff by longest common subsequence: MEMORY.md's versions on the Memory page, a changed
 * SKILL.md (`nightshift skills approve`), a changed MCP tool definition (`nightshift mcp list`). Quadratic
 * in lines, so its input is capped: past `MAX_DIFF_LINES` lines on either side it returns undefined
 * and the page says the version is too large to compare.
 */
export const MAX_DIFF_LINES = 2000;

export type DiffLine = { op: "same" | "add" | "remove"; text: string };

export function lineDiff(before: string, after: string): DiffLine[] | undefined {
  const a = lines(before);
  const b = lines(after);
  if (a.length > MAX_DIFF_LINES || b.length > MAX_DIFF_LINES) return undefined;
  // lcs[i][j]: the longest common subsequence of a[i..] and b[j..], in one flat array.
  const width = b.length + 1;
  const lcs = new Uint16Array((a.length + 1) * width);
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i * width + j] = a[i] === b[j] ? lcs[(i + 1) * width + j + 1]! + 1 : Math.max(lcs[(i + 1) * width + j]!, lcs[i * width + j + 1]!);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      out.push({ op: "same", text: a[i]! });
      i++;
      j++;
    } else if (lcs[(i + 1) * width + j]! >= lcs[i * width + j + 1]!) out.push({ op: "remove", text: a[i++]! });
    else out.push({ op: "add", text: b[j++]! });
  }
  while (i < a.length) out.push({ op: "remove", text: a[i++]! });
  while (j < b.length) out.push({ op: "add", text: b[j++]! });
  return out;
}

function lines(text: string): string[] {
  if (text === "") return [];
  return (text.endsWith("\n") ? text.slice(0, -1) : text).split("\n");
}

/**
 * Only the lines that changed, as `- old` / `+ new` (so a change stands alone), at most `shown` of
 * them; texts too long to compare, or more changes than that, are said in a line.
 */
export function changedLines(before: string, after: string, shown = Infinity): string[] {
  const diff = lineDiff(before, after);
  if (!diff) return [`(too long to compare line by line: over ${MAX_DIFF_LINES} lines)`];
  const out = diff.filter((line) => line.op !== "same").map((line) => `${line.op === "add" ? "+" : "-"} ${line.text}`);
  return out.length > shown ? [...out.slice(0, shown), `(${out.length - shown} more changed lines)`] : out;
}
