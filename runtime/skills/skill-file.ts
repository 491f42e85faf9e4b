import { z } from "zod";
import { firstIssue, readFrontMatter } from "../yaml.ts";

/** A skill as its SKILL.md describes it (the open Agent Skills format). */
export interface SkillSpec {
  /** Equals the folder's name: lowercase letters, digits, single hyphens, at most 64 characters. */
  name: string;
  /** When to use it; the only text (with the name) that goes into every prompt. */
  description: string;
  /** Tools the skill says it wants. Shown to the person and the model, never obeyed. */
  allowedTools: string[];
  license?: string;
  compatibility?: string;
  /** The markdown below the front matter: what the `skill` tool hands the model. */
  body: string;
}

export const SKILL_NAME = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
export const MAX_SKILL_FILE_BYTES = 256 * 1024;

/**
 * The keys of the open format. Other keys (runtimes add their own, like `model` or
 * `disable-model-invocation`) are accepted and ignored, so skills written for them still install.
 */
const frontMatterSchema = z.looseObject({
  name: z.string().trim().min(1).max(64).regex(SKILL_NAME),
  description: z.string().trim().min(1).max(1024),
  license: z.string().trim().min(1).optional(),
  compatibility: z.string().trim().min(1).max(500).optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  "allowed-tools": z.union([z.string(), z.array(z.string())]).optional(),
});

/** A SKILL.md that cannot be used: `skills/x/SKILL.md:LINE: field: problem; fix`. */
export class SkillFileProblem extends Error {
  override name = "SkillFileProblem";
}

/**
 * Parses a SKILL.md's text. `folder` is the name of the folder it sits in (undefined while
 * installing: the copy is named after `name`); `shown` is how messages name the file. Throws
 * SkillFileProblem with one line naming the file, line, field and fix.
 */
export function parseSkillFile(shown: string, folder: string | undefined, content: Buffer): SkillSpec {
  const fail = (message: string, line?: number): never => {
    throw new SkillFileProblem(`${shown}${line === undefined ? "" : `:${line}`}: ${message}`);
  };
  if (content.length > MAX_SKILL_FILE_BYTES) fail(`is ${Math.ceil(content.length / 1024)} KiB, over the ${MAX_SKILL_FILE_BYTES / 1024} KiB limit; move the details into files beside it that the skill points to`);
  if (content.includes(0)) fail("is not a text file (it contains NUL bytes); SKILL.md is markdown saved as UTF-8 text");
  let source: string;
  try {
    source = new TextDecoder("utf-8", { fatal: true }).decode(content);
  } catch {
    return fail("is not a text file (it is not valid UTF-8); SKILL.md is markdown saved as UTF-8 text");
  }
  const example = folder === undefined ? "my-skill" : SKILL_NAME.test(folder) ? folder : suggestName(folder);
  const read = readFrontMatter(source, `name: ${example} and description: <what it does and when to use it>`);
  if ("problem" in read) return fail(read.problem, read.line);
  const { parsed, close, lines } = read;
  const value = parsed.value ?? {};
  if (typeof value !== "object" || Array.isArray(value)) return fail(`front matter: is not a set of keys; write key: value lines, starting with name: ${example}`, 2);
  const result = frontMatterSchema.safeParse(value);
  if (!result.success) {
    const issue = firstIssue(result.error.issues);
    return fail(explainIssue(issue, value as Record<string, unknown>, example), parsed.lineOf([...issue.path]) ?? 1);
  }
  const front = result.data;
  if (folder !== undefined && front.name !== folder) {
    return fail(`name: is \`${front.name}\` but the folder is ${folder}/; make them the same (rename the folder to ${front.name}, or set name: ${example})`, parsed.lineOf(["name"]));
  }
  const body = lines.slice(close + 1).join("\n").trim();
  if (!body) return fail("body: is empty; below the closing --- write the skill's instructions", close + 1);
  const tools = front["allowed-tools"];
  return {
    name: front.name,
    description: front.description.replace(/\s+/g, " "),
    allowedTools: (typeof tools === "string" ? tools.split(/[\s,]+/) : (tools ?? [])).map((tool) => tool.trim()).filter(Boolean),
    ...(front.license ? { license: front.license } : {}),
    ...(front.compatibility ? { compatibility: front.compatibility } : {}),
    body,
  };
}

/** One `field: problem; fix` for a schema issue, for someone editing SKILL.md by hand. */
function explainIssue(issue: z.core.$ZodIssue, front: Record<string, unknown>, name: string): string {
  const field = issue.path.map(String).join(".");
  const got = front[String(issue.path[0])];
  const example: Record<string, string> = { name, description: "<what it does and when to use it>", license: "MIT", compatibility: "<what it needs, like git and python3>" };
  if (issue.code === "invalid_type") {
    if (got === undefined) return `${field}: is missing; add ${field}: ${example[field] ?? "..."} to the front matter`;
    if (got === null) return `${field}: has no value; give it one, like ${field}: ${example[field] ?? "..."}`;
    if (field === "metadata") return "metadata: must be a set of keys; write it as indented key: value lines under metadata:";
    if (field === "allowed-tools") return "allowed-tools: must be text or a list; write it like allowed-tools: Read Bash(git:*)";
    return `${field}: must be text; write it like ${field}: ${example[field] ?? "..."}`;
  }
  if (issue.code === "too_small") return `${field}: is empty; write ${field}: ${example[field] ?? "..."}`;
  if (issue.code === "too_big") return `${field}: is longer than ${String(issue.maximum)} characters; shorten it and put the details in the body`;
  if (issue.code === "invalid_format") return `${field}: \`${String(got)}\` must be lowercase letters, digits and single hyphens; write name: ${name} (and name the folder the same)`;
  return `${field}: ${issue.message}; check the SKILL.md format`;
}

function suggestName(folder: string): string {
  return folder.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64) || "my-skill";
}
