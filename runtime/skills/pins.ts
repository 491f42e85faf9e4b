import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { SkillFile } from "./folder.ts";

/**
 * What the person approved: the hash of every file, each file's own hash (to show what changed
 * later) and SKILL.md's text (to show its lines that changed). Kept under state/, which tasks can
 * neither read nor write, one file per skill so two commands never rewrite each other's pins.
 */
export interface SkillPin {
  name: string;
  hash: string;
  files: SkillFile[];
  skill_md: string;
  /** The other text files' contents (each up to 64 KB, 256 KB in all), to show their lines that changed. */
  texts?: Record<string, string>;
  /** False while a freshly added skill with red flags waits for `nightshift skills approve`. */
  approved: boolean;
  pinned_at: number;
}

const pinSchema = z.object({
  name: z.string(),
  hash: z.string(),
  files: z.array(z.object({ path: z.string(), size: z.number(), sha256: z.string() })),
  skill_md: z.string(),
  texts: z.record(z.string(), z.string()).optional(),
  approved: z.boolean(),
  pinned_at: z.number(),
});

const TEXT_CAP = 64 * 1024;
const TEXTS_CAP = 256 * 1024;

/** The skill's text files besides SKILL.md, for later diffs: UTF-8 without NUL bytes, within the caps. */
export function pinTexts(contents: ReadonlyMap<string, Buffer>): Record<string, string> {
  const texts: Record<string, string> = {};
  let total = 0;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (const [path, content] of [...contents].sort(([a], [b]) => a.localeCompare(b))) {
    if (path === "SKILL.md" || content.length > TEXT_CAP || total + content.length > TEXTS_CAP || content.includes(0)) continue;
    try {
      texts[path] = decoder.decode(content);
      total += content.length;
    } catch {
      // not UTF-8: listed as changed, without a diff
    }
  }
  return texts;
}

export function pinsDir(home: string): string {
  return join(home, "state", "skills");
}

/** The pin, or undefined when there is none; a damaged pin file counts as none (the skill is withheld until approved again). */
export function readPin(home: string, name: string): SkillPin | undefined {
  try {
    const parsed = pinSchema.safeParse(JSON.parse(readFileSync(join(pinsDir(home), `${name}.json`), "utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Written to a temporary file, then renamed: a crash leaves the old pin or the new one. */
export function writePin(home: string, pin: SkillPin): void {
  const dir = pinsDir(home);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${pin.name}.json`);
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(pin, null, 2) + "\n", { mode: 0o600 });
  renameSync(temp, file);
}

export function removePin(home: string, name: string): void {
  rmSync(join(pinsDir(home), `${name}.json`), { force: true });
}
