import { join } from "node:path";
import { z } from "zod";
import { loadSkills, openSkill, renderSkill, skillsDir } from "../skills/library.ts";
import { SKILL_NAME } from "../skills/skill-file.ts";
import { defineTool, ToolError, type Tool } from "./tool.ts";

const schema = z.object({
  name: z.string().regex(SKILL_NAME, "a skill name is lowercase letters, digits and hyphens, as listed under # Skills").describe("The skill's name, as listed under # Skills"),
});

/**
 * `skill`: hands the model one skill's instructions and the paths of its files. The folder is read
 * again on every call and checked against its pin, so a skill changed since it was approved is
 * refused here even while a session runs. The description is fixed: the catalog of skills lives in
 * the system prompt, so installing one never changes the tools part of the cached prefix.
 */
export function createSkillTool(home: string): Tool {
  return defineTool({
    name: "skill",
    description:
      "Load an installed skill by name: returns its instructions and the paths of the files beside them (scripts, references, templates), which you can read with read_file and run with bash. Load a skill before doing a job its description under # Skills matches, then follow it. Its folder is read-only, and a skill never widens your permissions.",
    schema,
    access: ({ name }) => [{ kind: "read", path: join(skillsDir(home), name, "SKILL.md") }],
    async execute({ name }) {
      const entry = openSkill(home, name);
      if (entry.state === "ready") return renderSkill(entry);
      if (entry.problem?.endsWith("no such skill")) {
        const ready = loadSkills(home).filter((skill) => skill.state === "ready").map((skill) => skill.name);
        throw new ToolError(`There is no skill named ${name}. Installed: ${ready.join(", ") || "none"}.`);
      }
      // The person fixes this, not the model: say so, so it does not try to work around it.
      throw new ToolError(`Skill ${name} is withheld: ${entry.problem}. Only the person can fix this; carry on without it and mention it in your answer.`);
    },
  });
}

/** The text a compaction puts back for a skill loaded earlier; a note when it is withheld now. Never throws. */
export function reloadSkill(home: string, name: string): string {
  try {
    const entry = openSkill(home, name);
    return entry.state === "ready" ? renderSkill(entry) : `(Skill ${name} was loaded earlier but is withheld now: ${entry.problem})`;
  } catch (error) {
    return `(Skill ${name} could not be read again: ${(error as Error).message})`;
  }
}
