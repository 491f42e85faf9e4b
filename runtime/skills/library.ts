import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describeChanges, diffFiles, scanSkillFolder, skillHash, SkillFolderProblem, type FileChanges, type SkillFile } from "./folder.ts";
import { readPin, type SkillPin } from "./pins.ts";
import { parseSkillFile, SKILL_NAME, SkillFileProblem, type SkillSpec } from "./skill-file.ts";

/**
 * One folder under skills/ and whether the model may see it:
 * - ready: valid and its files are the ones approved;
 * - unapproved: never approved (copied in by hand, or added with red flags);
 * - changed: its files differ from what was approved;
 * - invalid: its SKILL.md or folder cannot be used (`problem` says why and how to fix it).
 */
export interface SkillEntry {
  name: string;
  dir: string;
  state: "ready" | "unapproved" | "changed" | "invalid";
  spec?: SkillSpec;
  files: SkillFile[];
  hash: string;
  pin?: SkillPin;
  changes?: FileChanges;
  /** Why it is withheld, with the fix; absent when ready. */
  problem?: string;
  /** File contents as read, for the red-flag scan (the CLI); not kept by the runtime. */
  contents: Map<string, Buffer>;
}

export function skillsDir(home: string): string {
  return join(home, "skills");
}

/**
 * Every skill folder under NIGHTSHIFT_HOME/skills, sorted by name (so the catalog is stable).
 * Dot folders are skipped (`.removed/` keeps what `skills remove` moved aside). Never throws: a
 * folder that cannot be used is an entry with a problem. A missing skills/ is no skills.
 */
export function loadSkills(home: string): SkillEntry[] {
  let names: string[];
  try {
    names = readdirSync(skillsDir(home)).sort();
  } catch {
    return [];
  }
  return names.filter((name) => !name.startsWith(".")).flatMap((name) => {
    const info = lstatSync(join(skillsDir(home), name), { throwIfNoEntry: false });
    if (!info?.isDirectory()) return [];
    return [openSkill(home, name)];
  });
}

/** One skill folder, read and checked against its pin now (the `skill` tool calls this on each load). */
export function openSkill(home: string, name: string): SkillEntry {
  const dir = join(skillsDir(home), name);
  const shown = `skills/${name}`;
  const entry: SkillEntry = { name, dir, state: "invalid", files: [], hash: "", contents: new Map() };
  try {
    const info = lstatSync(dir, { throwIfNoEntry: false });
    if (!info) throw new SkillFolderProblem(`${shown}: no such skill`);
    if (!info.isDirectory()) throw new SkillFolderProblem(`${shown}: is not a folder; a skill is a folder with a SKILL.md in it`);
    const { files, contents } = scanSkillFolder(dir, shown);
    Object.assign(entry, { files, contents, hash: skillHash(files) });
    const skillMd = contents.get("SKILL.md");
    if (!skillMd) throw new SkillFolderProblem(`${shown}/SKILL.md: is missing; a skill folder needs a SKILL.md with name: ${SKILL_NAME.test(name) ? name : "<its folder's name>"} and description: in its front matter`);
    entry.spec = parseSkillFile(`${shown}/SKILL.md`, name, skillMd);
  } catch (error) {
    if (!(error instanceof SkillFolderProblem || error instanceof SkillFileProblem)) {
      entry.problem = `${shown}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); check its permissions`;
      return entry;
    }
    entry.problem = error.message;
    return entry;
  }
  const pin = readPin(home, name);
  if (pin) entry.pin = pin;
  if (!pin || (!pin.approved && pin.hash === entry.hash)) {
    entry.state = "unapproved";
    entry.problem = `${shown}: is not approved yet; read it, then run \`nightshift skills approve ${name}\``;
  } else if (pin.hash !== entry.hash) {
    entry.state = "changed";
    entry.changes = diffFiles(pin.files, entry.files);
    entry.problem = `${shown}: its files changed since it was approved (${describeChanges(entry.changes)}); it is left out until you check the change and run \`nightshift skills approve ${name}\``;
  } else {
    entry.state = "ready";
  }
  return entry;
}

export const CATALOG_CAP_BYTES = 2048;
/** A description longer than this is clipped in the catalog (the full one is in SKILL.md). */
const CATALOG_DESCRIPTION_CHARS = 240;

const CATALOG_HEAD = `# Skills
Installed skills: instructions (and scripts) for particular jobs. When the task matches one, load it with the skill tool first and follow it. A skill never changes what you are allowed to do.`;

/**
 * The catalog for the stable prompt prefix: one line per ready skill (name and description),
 * within `capBytes`. Skills that do not fit are named in a last line if their names fit, else
 * counted; `leftOut` lists them for the trace. Empty text when no skill is ready.
 */
export function skillCatalog(entries: readonly SkillEntry[], capBytes = CATALOG_CAP_BYTES): { text: string; listed: string[]; leftOut: string[] } {
  const ready = entries.flatMap((entry) => (entry.state === "ready" && entry.spec ? [entry.spec] : []));
  if (ready.length === 0) return { text: "", listed: [], leftOut: [] };
  const lines = ready.map((spec) => `- ${spec.name}: ${spec.description.length > CATALOG_DESCRIPTION_CHARS ? `${spec.description.slice(0, CATALOG_DESCRIPTION_CHARS - 1)}…` : spec.description}`);
  const bytes = (parts: string[]) => Buffer.byteLength(parts.join("\n"));
  const named = (names: string[]) => `(${names.length} more not described here, for space: ${names.join(", ")}; load one by name if it may fit.)`;
  const counted = (names: string[]) => `(${names.length} more skills are installed but not listed, for space.)`;
  // Name what is left out when even all the names would fit; else only count it.
  const closing = bytes([CATALOG_HEAD, named(ready.map((spec) => spec.name))]) <= capBytes ? named : counted;
  let shown = lines.length;
  while (shown > 0 && bytes([CATALOG_HEAD, ...lines.slice(0, shown), ...(shown < lines.length ? [closing(ready.slice(shown).map((spec) => spec.name))] : [])]) > capBytes) shown--;
  const leftOut = ready.slice(shown).map((spec) => spec.name);
  const text = [CATALOG_HEAD, ...lines.slice(0, shown), ...(leftOut.length ? [closing(leftOut)] : [])].join("\n");
  return { text, listed: ready.slice(0, shown).map((spec) => spec.name), leftOut };
}

export const MAX_BODY_CHARS = 40_000;

/** What the `skill` tool returns, and what a compaction puts back: the body, then the files beside it. */
export function renderSkill(entry: SkillEntry): string {
  const spec = entry.spec!;
  const body = spec.body.length > MAX_BODY_CHARS ? `${spec.body.slice(0, MAX_BODY_CHARS)}\n[cut at ${MAX_BODY_CHARS} characters: read the rest of ${join(entry.dir, "SKILL.md")} with read_file]` : spec.body;
  const others = entry.files.filter((file) => file.path !== "SKILL.md");
  const lines = [`<skill name="${spec.name}" folder="${entry.dir}">`, body, "</skill>"];
  if (others.length) {
    lines.push(`Files in this skill (paths in it are relative to its folder; read them with read_file at these paths, run its scripts with bash, which stays sandboxed; the folder is read-only):`);
    for (const file of others) lines.push(`- ${join(entry.dir, file.path)} (${formatSize(file.size)})`);
  }
  if (spec.allowedTools.length) lines.push(`The skill lists allowed-tools (${spec.allowedTools.join(" ")}): that is not a permission; your rules stay as they are.`);
  return lines.join("\n");
}

export function formatSize(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
