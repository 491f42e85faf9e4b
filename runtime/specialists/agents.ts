import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from "node:fs";
import { basename, join } from "node:path";
import { z } from "zod";
import { firstIssue, readFrontMatter } from "../yaml.ts";

/** A specialist as defined by `agents/<name>.md`: front matter, and the body as its system prompt. */
export interface AgentSpec {
  /** Equals the file name without `.md`: lowercase letters, digits, dashes. */
  name: string;
  /** One line, shown to the main agent in the consult tool's description. */
  description: string;
  /** A role (main | specialist | small) or a model id. */
  model: string;
  /** The built-in tools it may use (never consult). */
  tools: string[];
  max_turns: number;
  /** The markdown body: the specialist's system prompt. */
  prompt: string;
  /** Absolute path, for messages. */
  file: string;
}

/** A file left out, and why: `agents/x.md:LINE: field: problem; fix`. */
export interface AgentProblem {
  file: string;
  message: string;
}

/** The runtime's built-in tools, in the order it offers them; the names an agent file may list. */
export const BUILTIN_TOOL_NAMES = ["read_file", "write_file", "edit_file", "list_files", "search_files", "bash", "web_fetch"] as const;

export const DEFAULT_AGENT_TOOLS: readonly string[] = ["read_file", "list_files", "search_files"];
export const MAX_AGENT_BYTES = 64 * 1024;

const NAME = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

const frontMatterSchema = z.strictObject({
  name: z.string().trim().min(1).regex(NAME),
  description: z.string().trim().min(1).max(300).refine((text) => !/[\r\n]/.test(text), "must be one line; put the details in the body"),
  model: z.string().trim().min(1).default("specialist"),
  tools: z.array(z.string().trim().min(1)).default([...DEFAULT_AGENT_TOOLS]),
  max_turns: z.number().int().min(1).max(100).default(8),
});
const KNOWN_KEYS = Object.keys(frontMatterSchema.shape);

/**
 * Reads every `*.md` in `dir` (sorted, so the consult tool's description is stable). A bad file is
 * reported in `problems` and left out; the others still load. A missing dir is no agents and no
 * problems. Synchronous and never throws: called when the runtime starts and by doctor.
 */
export function loadAgents(dir: string, knownTools: readonly string[]): { agents: Map<string, AgentSpec>; problems: AgentProblem[] } {
  const agents = new Map<string, AgentSpec>();
  const problems: AgentProblem[] = [];
  const shown = (entry: string) => `${basename(dir)}/${entry}`;
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { agents, problems };
    const why = code === "ENOTDIR" ? "is a file, not a folder; move it away and run `nightshift init`" : `cannot be read (${code ?? "unknown error"}); check its permissions`;
    return { agents, problems: [{ file: dir, message: `${basename(dir)}/: ${why}` }] };
  }
  // Dotfiles are editor droppings (emacs locks are dangling symlinks named `.#x.md`), not agents.
  for (const entry of entries.filter((name) => name.endsWith(".md") && !name.startsWith("."))) {
    const file = join(dir, entry);
    try {
      const agent = parseAgentFile(shown(entry), file, readAgentFile(shown(entry), file), knownTools);
      agents.set(agent.name, agent);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
      const message = error instanceof AgentFileProblem ? error.message : `${shown(entry)}: cannot be read (${code}); check that the file is readable`;
      problems.push({ file, message });
    }
  }
  return { agents, problems };
}

class AgentFileProblem extends Error {}

type Fail = (message: string, line?: number) => never;

function failFor(shown: string): Fail {
  return (message, line) => {
    throw new AgentFileProblem(`${shown}${line === undefined ? "" : `:${line}`}: ${message}`);
  };
}

/** Regular files only, opened without following links, size checked before reading. */
function readAgentFile(shown: string, file: string): Buffer {
  const fail = failFor(shown);
  const info = lstatSync(file, { throwIfNoEntry: false });
  if (!info) return fail("disappeared while being read; check the folder again");
  if (info.isSymbolicLink()) return fail("is a symbolic link; agent files must be regular files, so copy the file here instead");
  if (!info.isFile()) return fail(`is ${info.isDirectory() ? "a folder" : "not a regular file"}; agent files are markdown files, so remove it or rename it`);
  let fd: number;
  try {
    // O_NOFOLLOW: a link swapped in since lstat is refused; O_NONBLOCK: a FIFO cannot hang the start.
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    return fail(`cannot be read (${(error as NodeJS.ErrnoException).code ?? "unknown error"}); check that the file is readable`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return fail("is not a regular file; remove it or rename it");
    if (stat.size > MAX_AGENT_BYTES) return fail(`is ${Math.ceil(stat.size / 1024)} KiB, over the 64 KiB limit for agent files; shorten the prompt`);
    const buffer = Buffer.alloc(stat.size);
    const read = stat.size === 0 ? 0 : readSync(fd, buffer, 0, stat.size, 0);
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

/** Parses one agent file; throws AgentFileProblem with a one-line `file:line: field: problem; fix`. */
function parseAgentFile(shown: string, file: string, content: Buffer, knownTools: readonly string[]): AgentSpec {
  const fail = failFor(shown);
  if (content.includes(0)) return fail("is not a text file (it contains NUL bytes); an agent file is markdown saved as UTF-8 text");
  let source: string;
  try {
    source = new TextDecoder("utf-8", { fatal: true }).decode(content);
  } catch {
    return fail("is not a text file (it is not valid UTF-8); an agent file is markdown saved as UTF-8 text");
  }
  const stem = basename(file).slice(0, -".md".length);
  if (!NAME.test(stem)) return fail(`the file name \`${stem}\` is not a specialist name; rename the file to lowercase letters, digits and dashes, like ${suggestName(stem)}.md`);
  const read = readFrontMatter(source, `name: ${stem} and description: <one line>`, "check the indentation, and quote values that contain \": \" or \" #\"");
  if ("problem" in read) return fail(read.problem, read.line);
  const { parsed, close, lines } = read;
  const value = parsed.value ?? {};
  if (typeof value !== "object" || Array.isArray(value)) return fail(`front matter: is not a set of keys; write key: value lines, starting with name: ${stem}`, 2);
  const result = frontMatterSchema.safeParse(value);
  if (!result.success) {
    const issue = firstIssue(result.error.issues);
    const path = issue.code === "unrecognized_keys" ? [issue.keys[0]!] : [...issue.path];
    return fail(explainIssue(issue, value as Record<string, unknown>, stem), parsed.lineOf(path) ?? 1);
  }
  const front = result.data;
  if (front.name !== stem) return fail(`name: is \`${front.name}\` but the file is ${stem}.md; make them the same (rename the file or the name)`, parsed.lineOf(["name"]));
  front.tools.forEach((tool, index) => {
    const line = parsed.lineOf(["tools", index]);
    if (tool === "consult") fail("tools: specialists cannot consult (depth 1); remove consult from the list", line);
    if (!knownTools.includes(tool)) {
      const close = closest(tool, knownTools);
      fail(`tools: unknown tool \`${tool}\`; ${close ? `did you mean \`${close}\`?` : `use some of ${knownTools.join(", ")}`}`, line);
    }
  });
  const body = lines.slice(close + 1);
  const start = body.findIndex((line) => line.trim() !== "");
  if (start < 0) return fail("body: is empty; below the closing --- write the specialist's instructions (its system prompt)", close + 1);
  return { ...front, tools: [...new Set(front.tools)], prompt: body.slice(start).join("\n").trimEnd(), file };
}

/** One `field: problem; fix` for a schema issue, written for someone editing the file by hand. */
function explainIssue(issue: z.core.$ZodIssue, front: Record<string, unknown>, stem: string): string {
  if (issue.code === "unrecognized_keys") {
    const key = String(issue.keys[0]);
    const close = closest(key, KNOWN_KEYS);
    return `${key}: unknown key; ${close ? `did you mean \`${close}\`?` : `remove it, or use one of ${KNOWN_KEYS.join(", ")}`}`;
  }
  const field = issue.path.map((key) => (typeof key === "number" ? `[${key}]` : String(key))).join("");
  const got = front[String(issue.path[0])];
  const example: Record<string, string> = { name: stem, description: "<what it is for, in one line>", model: "specialist", tools: "[read_file, list_files, search_files]", max_turns: "8" };
  if (issue.code === "invalid_type") {
    if (got === undefined) return `${field}: is missing; add ${field}: ${example[field] ?? "..."} to the front matter`;
    if (got === null) return `${field}: has no value; give it one, like ${field}: ${example[field] ?? "..."}${orDelete(field)}`;
    if (issue.expected === "array") return `${field}: must be a list; write it like tools: [${typeof got === "string" ? got : "read_file"}]`;
    if (issue.expected === "number" || issue.expected === "int") return `${field}: must be a whole number; write it like max_turns: 8`;
    return `${field}: must be text; write it like ${field.replace(/\[\d+\]$/, "")}: ${example[field.replace(/\[\d+\]$/, "")] ?? "..."}`;
  }
  if (issue.code === "too_small" && issue.origin === "string") return `${field}: is empty; write some text${orDelete(field)}`;
  if (issue.code === "too_big" && issue.origin === "string") return `${field}: is longer than ${String(issue.maximum)} characters; keep it to one short line and put the details in the body`;
  if (issue.code === "too_small" || issue.code === "too_big") return `${field}: must be between 1 and 100, not ${String(got)}; write a whole number like 8`;
  if (issue.code === "invalid_format") return `${field}: must be lowercase letters, digits and dashes; write name: ${stem}`;
  if (issue.code === "custom") return `${field}: ${issue.message}`;
  return `${field}: ${issue.message}; check the agent file format`;
}

/** Optional keys can simply go; name and description cannot. */
function orDelete(field: string): string {
  return field === "name" || field === "description" ? "" : ", or delete the line";
}

function suggestName(stem: string): string {
  return stem.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "") || "my-specialist";
}

/** The candidate within edit distance 2 of `word`, if there is one (ties go to the first listed). */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate);
    if (distance <= 2 && (!best || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    previous = current;
  }
  return previous[b.length]!;
}

/** The specialists `nightshift init` writes when absent (file name → text). They are product: edit with care. */
export const DEFAULT_AGENTS: Readonly<Record<string, string>> = {
  "planner.md": `---
name: planner
description: Turns a task into a short numbered plan with risks and checks, before the work starts; plans only.
model: specialist
tools: [read_file, list_files, search_files]
max_turns: 8
---
You are the planner. You get a task and turn it into a plan that someone else will carry out. You do not do the work: no code, no drafts, no answer to the task itself.

Look at what you need in the working directory first, so the plan fits what is there. Then reply with:

Plan: at most 7 numbered steps, in order, one line each: an action and what it produces.
Risks: the two or three ways this most likely goes wrong, each with how to avoid it.
Checks: how to tell the work is done and right (a command to run, an output to compare, a case to try).

If the task is ambiguous, state the assumption you planned on in one line at the top. No preamble, no restating the task. Keep the report under 250 words.
`,
  "reviewer.md": `---
name: reviewer
description: Critiques a draft for correctness, missed requirements and risky steps; ends with a verdict.
model: specialist
tools: [read_file, list_files, search_files]
max_turns: 8
---
You are the reviewer. You get a draft (code, a plan, an answer) and the task it is for. Find what is wrong with it before it ships.

Check, in this order:
1. Correctness: bugs, wrong facts, steps that will not work. Read the files it relies on to confirm, and point at the line.
2. Missed requirements: what the task asks for that the draft does not do.
3. Risky steps: anything destructive, irreversible or costly, and the safer way.

Each finding says where it is and what to change. Skip style, praise and anything you are not fairly sure of. If nothing needs fixing, say so.

End with one line: "Verdict: ship", "Verdict: fix first" (naming the findings that must be fixed) or "Verdict: rethink". Keep the report under 250 words.
`,
  "challenger.md": `---
name: challenger
description: Disagrees on purpose; the strongest case against a draft, what it missed, its weakest assumption.
model: specialist
tools: [read_file, list_files, search_files]
max_turns: 8
---
You are the challenger. Your job is to disagree. You get a draft (a plan, an answer, a design) and make the strongest honest case against it; defending it is someone else's job.

Reply with:
- The case against: the most serious reason the draft is wrong, or the wrong approach, argued as well as you can.
- What it missed: requirements, cases, failure modes, or a simpler option it did not weigh.
- The weakest assumption: the one most likely false, and what would settle it (a file to read, a command to run). If the working directory can settle it, check.

No politeness, no hedging, no praise, no restating the draft. Do not invent problems: drop a point you cannot back. Keep the report under 250 words.
`,
};
