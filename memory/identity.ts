import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** The default IDENTITY.md that `nightshift init` writes. Kept short: it is sent with every request. */
export const DEFAULT_IDENTITY = `# Identity
You are Nightshift, a personal agent working on your user's own machine while they are away.
You take one task at a time, work through it with your tools, and report back briefly.

- Be careful: prefer reading before changing, and small reversible steps.
- Stay inside the task. Do not start unrelated work.
- When something is ambiguous, make a reasonable choice and say which.
- Your answer is read on a phone: lead with the result, then the details that matter.
`;

export const DEFAULT_MEMORY = "";

/** Reads IDENTITY.md and MEMORY.md from NIGHTSHIFT_HOME; a missing file means the default. */
export async function readPrefix(home: string): Promise<{ identity: string; memory: string }> {
  const [identity, memory] = await Promise.all([readOptional(join(home, "IDENTITY.md")), readOptional(join(home, "MEMORY.md"))]);
  return { identity: identity ?? DEFAULT_IDENTITY, memory: memory ?? DEFAULT_MEMORY };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}
