import { isMap, isSeq, LineCounter, parseDocument, type Node } from "yaml";
import type { z } from "zod";

/** YAML text parsed for validation: the plain value, and the line where any path in it sits. */
export interface ParsedYaml {
  value: unknown;
  /** 1-based line of the node at `path`, or of its nearest existing parent. */
  lineOf(path: readonly PropertyKey[]): number | undefined;
}

export class YamlSyntaxError extends Error {
  override name = "YamlSyntaxError";
  readonly line: number | undefined;
  constructor(message: string, line: number | undefined) {
    super(message);
    this.line = line;
  }
}

/** Parses YAML, throwing YamlSyntaxError (first error, with its line) for broken syntax. */
export function parseYaml(text: string, lineOffset = 0): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true });
  const first = doc.errors[0];
  if (first) {
    const line = first.linePos?.[0]?.line;
    throw new YamlSyntaxError((first.message.split("\n")[0] ?? "invalid YAML").replace(/ at line \d+, column \d+:?$/, ""), line === undefined ? undefined : line + lineOffset);
  }
  return {
    value: doc.toJS(),
    lineOf(path) {
      let node: unknown = doc.contents;
      let line = node ? lineFromNode(node as Node, lineCounter) : undefined;
      for (const key of path) {
        if (isMap(node)) {
          const pair = node.items.find((item) => (item.key as { value?: unknown } | null)?.value === key);
          if (!pair) break;
          line = lineFromNode(pair.key as Node, lineCounter) ?? line;
          node = pair.value;
        } else if (isSeq(node) && typeof key === "number") {
          node = node.items[key];
          if (!node) break;
          line = lineFromNode(node as Node, lineCounter) ?? line;
        } else break;
      }
      return line === undefined ? undefined : line + lineOffset;
    },
  };
}

function lineFromNode(node: Node, lineCounter: LineCounter): number | undefined {
  const start = node?.range?.[0];
  return start === undefined ? undefined : lineCounter.linePos(start).line;
}

/** One readable sentence for the first zod issue: `field: problem`. */
export function describeIssue(issue: z.core.$ZodIssue): { field: string; message: string; path: PropertyKey[] } {
  const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]!] : [...issue.path];
  const field = issue.path.map(String).join(".") || "(top level)";
  if (issue.code === "invalid_type" && issue.message.endsWith("received undefined")) {
    return { field, path, message: `is missing (expected ${issue.expected})` };
  }
  if (issue.code === "unrecognized_keys") {
    const keys = issue.keys.join(", ");
    const where = issue.path.length ? issue.path.join(".") + "." : "";
    return { field: where + issue.keys[0], path, message: `unknown key${issue.keys.length > 1 ? "s" : ""} ${keys}` };
  }
  if (issue.code === "invalid_key" && issue.issues[0]) {
    // A record's key (e.g. an MCP server name): say what the key must look like, not "Invalid key in record".
    return { field, path, message: `the name ${JSON.stringify(issue.path.at(-1))} ${issue.issues[0].message}` };
  }
  return { field, path, message: issue.message };
}

/** Unknown keys first: a misspelt key also makes the real one look missing. */
export function firstIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue {
  return issues.find((issue) => issue.code === "unrecognized_keys") ?? issues[0]!;
}

/** A markdown file's YAML front matter, parsed with file line numbers, and the line index after its closing `---`. */
export interface FrontMatter {
  parsed: ParsedYaml;
  /** Index (0-based) of the closing `---` line; the body is the lines after it. */
  close: number;
  lines: string[];
}

/**
 * Reads a `---` front matter block at the top of a markdown file (agents, skills), or says in one
 * line what is wrong and on which line (`missing`: what the first key should be).
 */
export function readFrontMatter(source: string, missing: string, quoteHint = "quote values that contain \": \" or \" #\""): FrontMatter | { problem: string; line: number } {
  const lines = source.replace(/^\uFEFF/, "").split(/\r?\n/);
  if (lines[0]?.trimEnd() !== "---") return { problem: `front matter: missing; start the file with a line ---, then ${missing}, then a closing --- line`, line: 1 };
  const close = lines.findIndex((line, index) => index > 0 && line.trimEnd() === "---");
  if (close < 0) return { problem: "front matter: never closed; add a line with just --- after the last key", line: 1 };
  try {
    return { parsed: parseYaml(lines.slice(1, close).join("\n"), 1), close, lines };
  } catch (error) {
    const line = error instanceof YamlSyntaxError ? error.line : undefined;
    const problem = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    return { problem: `front matter: ${problem}; fix the YAML there (${quoteHint})`, line: line ?? 1 };
  }
}
