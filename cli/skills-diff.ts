const MAX_LINES = 2000;
const MAX_SHOWN = 60;

/**
 * The lines that differ between two texts, as `- old` / `+ new` (a longest-common-subsequence
 * diff, enough for a SKILL.md). Long texts or long diffs are cut with a note saying so.
 */
export function lineDiff(before: string, after: string): string[] {
  const a = before.split(/\r?\n/);
  const b = after.split(/\r?\n/);
  if (a.length > MAX_LINES || b.length > MAX_LINES) return [`(too long to compare line by line: ${a.length} lines before, ${b.length} now; read the file)`];
  // lengths[i][j]: the longest common subsequence of a[i..] and b[j..].
  const lengths = Array.from({ length: a.length + 1 }, () => new Uint16Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) lengths[i]![j] = a[i] === b[j] ? lengths[i + 1]![j + 1]! + 1 : Math.max(lengths[i + 1]![j]!, lengths[i]![j + 1]!);
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++;
      j++;
    } else if (j < b.length && (i === a.length || lengths[i]![j + 1]! >= lengths[i + 1]![j]!)) out.push(`+ ${b[j++]}`);
    else out.push(`- ${a[i++]}`);
  }
  return out.length > MAX_SHOWN ? [...out.slice(0, MAX_SHOWN), `(${out.length - MAX_SHOWN} more changed lines; read the file)`] : out;
}
