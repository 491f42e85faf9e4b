import { readFile, stat } from "node:fs/promises";
import { z } from "zod";
import { durationMs } from "../runtime/duration.ts";
import { TaskFileError } from "../runtime/errors.ts";
import { firstIssue, parseYaml, YamlSyntaxError } from "../runtime/yaml.ts";
import type { ParsedYaml } from "../runtime/yaml.ts";

/** A validated task: what the queue runs. `workdir` is kept as written; the caller expands `~`. */
export interface TaskFile {
  title: string;
  body: string;
  model?: string;
  workdir?: string;
  specialists?: string[];
  /** Review rounds after the first draft (default config `specialists.review_rounds`). */
  review_rounds?: number;
  plan?: boolean;
  /** `tools`: the tool names (the model's, `mcp__github__*`) this task may call without asking. */
  permissions?: { write?: string[]; read?: string[]; commands?: string[]; network?: string[]; tools?: string[] };
  budget?: { max_turns?: number; max_usd?: number; /** milliseconds */ timeout?: number };
  notify?: boolean;
  /** Work on a staged copy of the workdir (default config `tasks.stage`). */
  stage?: boolean;
  /** Allowed only in schedules/; the parser accepts it everywhere and the caller decides. */
  schedule?: string;
  priority?: "low" | "normal" | "high";
}

export interface TaskFileOptions {
  /** Larger files are rejected before they are decoded. Default 256 KiB (config `inbox.max_bytes`). */
  maxBytes?: number;
}

export const DEFAULT_MAX_TASK_BYTES = 256 * 1024;

const text = z.string().trim().min(1);
const textList = z.array(text);

const permissionsSchema = z.strictObject({
  write: textList.optional(),
  read: textList.optional(),
  commands: textList.optional(),
  network: textList.optional(),
  tools: textList.optional(),
});

const budgetSchema = z.strictObject({
  max_turns: z.number().int().positive().optional(),
  max_usd: z.number().positive().optional(),
  timeout: durationMs.refine((ms) => ms > 0, "must be longer than zero; write a duration like 30m or 2h").optional(),
});

const frontMatterSchema = z.strictObject({
  title: text,
  model: text.optional(),
  workdir: text.optional(),
  specialists: textList.optional(),
  review_rounds: z.number().int().min(0).max(5).optional(),
  plan: z.boolean().optional(),
  permissions: permissionsSchema.optional(),
  budget: budgetSchema.optional(),
  notify: z.boolean().optional(),
  stage: z.boolean().optional(),
  schedule: text.optional(),
  priority: z.enum(["low", "normal", "high"]).optional(),
});

/** Keys allowed in each mapping, by the mapping's path; used to suggest a fix for a misspelt key. */
const KNOWN_KEYS: Record<string, readonly string[]> = {
  "": Object.keys(frontMatterSchema.shape),
  permissions: Object.keys(permissionsSchema.shape),
  budget: Object.keys(budgetSchema.shape),
};

/**
 * Parses a task file: markdown with YAML front matter between a first line `---` and a closing `---`.
 *
 * A file without front matter is rejected, except when its first line is a markdown heading
 * (`# Fix the flaky test`): then the heading is the title and the rest is the body. Front matter is
 * the documented format, but a bare note with a heading is common enough to take as meant.
 *
 * Throws TaskFileError with a one-line message `<file>:<line>: <field>: <problem>; <how to fix>`.
 */
export function parseTaskFile(file: string, content: Buffer | string, options: TaskFileOptions = {}): TaskFile {
  const fail = (message: string, where: { line?: number; field?: string } = {}): never => {
    throw new TaskFileError(file, formatMessage(file, message, where), where);
  };
  const source = decode(content, options.maxBytes ?? DEFAULT_MAX_TASK_BYTES, fail);
  const lines = source.replace(/^\uFEFF/, "").split(/\r?\n/);
  if (lines.every((line) => line.trim() === "")) {
    return fail("the file is empty; write a task: front matter with a title, then what to do");
  }
  if (lines[0]!.trimEnd() !== "---") return withoutFrontMatter(lines, fail);

  const close = lines.findIndex((line, index) => index > 0 && line.trimEnd() === "---");
  if (close < 0) {
    return fail("the front matter opened here is never closed; add a line with just --- after the last key", { line: 1 });
  }
  const yamlText = lines.slice(1, close).join("\n");
  let parsed: ParsedYaml;
  try {
    parsed = parseYaml(yamlText, 1);
  } catch (error) {
    // Not only syntax: the yaml library also throws while building values (e.g. too many aliases).
    const line = error instanceof YamlSyntaxError ? error.line : undefined;
    const problem = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    const fix = `fix the YAML there (check the indentation, and quote values that contain ": " or " #")`;
    return fail(`${problem}; ${fix}`, { line: line ?? 1 });
  }

  const value = parsed.value ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    return fail(`the front matter is ${describeValue(value)}, not a set of keys; write it as key: value lines, starting with title: ...`, {
      line: parsed.lineOf([]) ?? 2,
    });
  }
  const result = frontMatterSchema.safeParse(value);
  if (!result.success) {
    const issue = pickIssue(result.error.issues, parsed);
    const { field, message } = explainIssue(issue, value);
    // A missing key has no line of its own: blame its mapping, or the opening --- if the front matter is empty.
    return fail(`${field}: ${message}`, { line: parsed.lineOf(issuePath(issue)) ?? 1, field });
  }
  return { ...result.data, body: trimBody(lines.slice(close + 1)) };
}

/** Reads and parses a task file; a missing or unreadable file is a TaskFileError too. */
export async function readTaskFile(file: string, options: TaskFileOptions = {}): Promise<TaskFile> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_TASK_BYTES;
  let content: Buffer;
  try {
    const info = await stat(file);
    if (info.isDirectory()) throw new TaskFileError(file, `${file}: is a folder, not a task file; drop a .md file instead`);
    // Checked before reading so a huge file is never loaded; parseTaskFile checks again.
    if (info.size > maxBytes) throw new TaskFileError(file, formatMessage(file, tooLarge(info.size, maxBytes)));
    content = await readFile(file);
  } catch (error) {
    if (error instanceof TaskFileError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new TaskFileError(file, `${file}: no such file; check the path`);
    throw new TaskFileError(file, `${file}: cannot be read (${code ?? "unknown error"}); check that the file is readable`);
  }
  return parseTaskFile(file, content, { maxBytes });
}

/** A task from a plain prompt (`nightshift run "..."`): the first line is the title, cut to ~60 chars. */
export function taskFromPrompt(prompt: string): TaskFile {
  const body = prompt.replace(/^\uFEFF/, "").trim();
  const firstLine = body.split(/\r?\n/, 1)[0]!.replace(/^#{1,6}\s+/, "").trim();
  if (firstLine === "") {
    throw new TaskFileError("(prompt)", "(prompt): the prompt is empty; say what the task should do");
  }
  const chars = Array.from(firstLine);
  const title = chars.length > 60 ? chars.slice(0, 59).join("").trimEnd() + "…" : firstLine;
  return { title, body };
}

type Fail = (message: string, where?: { line?: number; field?: string }) => never;

/** Size, then binary, then decoding: a huge or binary file is rejected without decoding it. */
function decode(content: Buffer | string, maxBytes: number, fail: Fail): string {
  const size = typeof content === "string" ? Buffer.byteLength(content, "utf8") : content.length;
  if (size > maxBytes) fail(tooLarge(size, maxBytes));
  const binary = "is not a text file (%s); a task file is markdown saved as UTF-8 text";
  if (typeof content === "string") {
    if (content.includes("\0")) fail(binary.replace("%s", "it contains NUL bytes"));
    if (!content.isWellFormed()) fail(binary.replace("%s", "it is not valid Unicode"));
    return content;
  }
  if (content.includes(0)) fail(binary.replace("%s", "it contains NUL bytes"));
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(content);
  } catch {
    return fail(binary.replace("%s", "it is not valid UTF-8"));
  }
}

function tooLarge(size: number, maxBytes: number): string {
  const exact = size < 1024 ? formatBytes(size) : `${formatBytes(size)} (${size} bytes)`;
  return `is ${exact}, over the ${formatBytes(maxBytes)} limit for task files; shorten it, or raise inbox.max_bytes in config.yaml`;
}

function withoutFrontMatter(lines: string[], fail: Fail): TaskFile {
  const first = lines.findIndex((line) => line.trim() !== "");
  const firstLine = lines[first]!.trim();
  if (firstLine === "---") {
    return fail(`front matter must start on the first line; delete the blank line${first > 1 ? "s" : ""} above this ---`, { line: first + 1 });
  }
  const heading = /^#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(firstLine);
  if (heading && heading[1] !== "") return { title: heading[1]!, body: trimBody(lines.slice(first + 1)) };
  return fail(
    "the file has no front matter; start it with a line ---, then title: <what the task is>, then a closing --- line (or make the first line a # heading)",
    { line: first + 1 },
  );
}

/** Drops blank lines before the body and whitespace after it; keeps the body's own indentation. */
function trimBody(lines: string[]): string {
  const start = lines.findIndex((line) => line.trim() !== "");
  return start < 0 ? "" : lines.slice(start).join("\n").trimEnd();
}

function formatMessage(file: string, message: string, where: { line?: number } = {}): string {
  return `${file}${where.line === undefined ? "" : `:${where.line}`}: ${message}`;
}

type Issue = z.core.$ZodIssue;

function issuePath(issue: Issue): PropertyKey[] {
  return issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]!] : [...issue.path];
}

/** The issue to report: an unknown key first (a misspelt key also makes the real one look missing), then the topmost. */
function pickIssue(issues: readonly Issue[], parsed: ParsedYaml): Issue {
  if (firstIssue(issues).code === "unrecognized_keys") {
    return byLine(issues.filter((issue) => issue.code === "unrecognized_keys"), parsed);
  }
  const present = issues.filter((issue) => !(issue.code === "invalid_type" && issue.message.endsWith("received undefined")));
  return byLine(present.length > 0 ? present : [...issues], parsed);
}

function byLine(issues: Issue[], parsed: ParsedYaml): Issue {
  const line = (issue: Issue) => parsed.lineOf(issuePath(issue)) ?? Number.MAX_SAFE_INTEGER;
  return issues.reduce((best, issue) => (line(issue) < line(best) ? issue : best));
}

function fieldName(path: readonly PropertyKey[]): string {
  return path.reduce<string>((name, key) => (typeof key === "number" ? `${name}[${key}]` : name ? `${name}.${String(key)}` : String(key)), "");
}

/** One `problem; fix` sentence for a schema issue, written for someone editing the file by hand. */
function explainIssue(issue: Issue, root: unknown): { field: string; message: string } {
  const path = issuePath(issue);
  const field = fieldName(path);
  const got = path.reduce<unknown>((node, key) => (node as Record<PropertyKey, unknown> | undefined)?.[key], root);
  if (issue.code === "unrecognized_keys") {
    const key = String(issue.keys[0]);
    const known = KNOWN_KEYS[issue.path.map(String).join(".")] ?? [];
    const close = closestKey(key, known);
    const fix = close ? `did you mean \`${close}\`?` : `remove it, or use one of ${known.join(", ")}`;
    return { field, message: `unknown key \`${key}\`; ${fix}` };
  }
  if (issue.code === "invalid_type") {
    if (got === undefined) return { field, message: `is missing; add ${field}: <a short name for the task> to the front matter` };
    if (got === null) return { field, message: `has no value; give it one, or delete the line` };
    return { field, message: expectedType(issue.expected, got, field) };
  }
  if (issue.code === "too_small") {
    if (issue.origin === "string") return { field, message: `is empty; write some text, or delete the line` };
    return { field, message: `must be more than 0, not ${describeValue(got)}; write a positive number` };
  }
  if (issue.code === "invalid_value") {
    const options = issue.values.map(String).join(", ");
    return { field, message: `must be one of ${options}, not ${describeValue(got)}; pick one of them` };
  }
  if (issue.code === "custom") return { field, message: issue.message };
  return { field, message: `${issue.message}; check the task file format` };
}

function expectedType(expected: string, got: unknown, field: string): string {
  const was = describeValue(got);
  switch (expected) {
    case "boolean":
      return `must be true or false, not ${was}; write true or false without quotes`;
    case "number":
      return `must be a number, not ${was}; write a number without quotes, like ${field.endsWith("usd") ? "2.50" : "40"}`;
    case "int":
      return `must be a whole number, not ${was}; write a number like 40`;
    case "string":
      if (typeof got === "object") return `must be text, not ${was}; write it as plain text on the same line`;
      return `must be text, not ${was}; put it in quotes, like ${field.replace(/\[\d+\]$/, "")}: "${String(got)}"`;
    case "array":
      return `must be a list, not ${was}; write it like [${typeof got === "string" ? got : "a, b"}]`;
    case "object":
      return `must be a set of keys, not ${was}; write it like ${field}: { ${(KNOWN_KEYS[field] ?? ["key"])[0]}: ... }`;
    default:
      return `must be ${expected}, not ${was}`;
  }
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "empty";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a set of keys";
  if (typeof value === "string") {
    const chars = Array.from(value);
    return JSON.stringify(chars.length > 40 ? chars.slice(0, 39).join("") + "…" : value);
  }
  return String(value);
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const [size, unit] = bytes < 1024 * 1024 ? [bytes / 1024, "KiB"] : [bytes / (1024 * 1024), "MiB"];
  return `${Number.isInteger(size) ? size : size.toFixed(1)} ${unit}`;
}

/** The known key within edit distance 2 of `key`, if there is one (ties go to the first listed). */
function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance <= 2 && (!best || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost));
    }
    previous = current;
  }
  return previous[b.length]!;
}
