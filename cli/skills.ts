import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Clock } from "../runtime/clock.ts";
import { describeChanges, scanSkillFolder, SkillFolderProblem, type SkillFile } from "../runtime/skills/folder.ts";
import { formatSize, loadSkills, openSkill, skillCatalog, skillsDir, CATALOG_CAP_BYTES } from "../runtime/skills/library.ts";
import { pinTexts, readPin, removePin, writePin } from "../runtime/skills/pins.ts";
import { formatFlags, redFlags } from "../runtime/skills/red-flags.ts";
import { parseSkillFile, SKILL_NAME, SkillFileProblem } from "../runtime/skills/skill-file.ts";
import { isArchive, readArchive, type ArchiveFile } from "./skills-archive.ts";
import { changedLines } from "../runtime/line-diff.ts";
import { UsageError } from "./usage.ts";

export interface SkillsIo {
  home: string;
  clock: Clock;
}

const USAGE = "usage: nightshift skills add PATH|URL | list | approve NAME | remove NAME";

export function skillsCommand(args: string[], io: SkillsIo): { text: string; code: number } {
  const [action, target, ...extra] = args;
  if (extra.length) throw new UsageError(`nightshift skills ${action} takes one argument; ${USAGE}`);
  switch (action) {
    case "add":
      if (!target) throw new UsageError("nightshift skills add needs a folder or a .tar.gz/.zip archive holding a SKILL.md");
      return addSkill(target, io);
    case "list":
      if (target) throw new UsageError("nightshift skills list takes no arguments");
      return { text: listSkills(io.home), code: 0 };
    case "approve":
      return approveSkill(nameArgument("approve", target, io.home), io);
    case "remove":
      return removeSkill(nameArgument("remove", target, io.home), io);
    default:
      throw new UsageError(USAGE);
  }
}

function nameArgument(action: string, name: string | undefined, home: string): string {
  if (!name) throw new UsageError(`nightshift skills ${action} needs a skill's name (nightshift skills list shows them)`);
  if (!SKILL_NAME.test(name) || !existsSync(join(skillsDir(home), name))) throw new UsageError(`there is no skill named ${printable(name)} in ${skillsDir(home)}; nightshift skills list shows them`);
  return name;
}

/**
 * Copies a skill in from a folder or an archive, shows its files and red flags, and pins the hash
 * of what was copied (what is pinned is exactly what was written). A skill with red flags is
 * installed but withheld until `approve`: the person reads the flags first.
 */
function addSkill(target: string, io: SkillsIo): { text: string; code: number } {
  if (isUrl(target)) {
    throw new UsageError(`${printable(target)} is a URL: \`nightshift skills add\` downloads it (this call reads folders and files only)`);
  }
  const source = resolve(target);
  const info = statSync(source, { throwIfNoEntry: false });
  if (!info) throw new UsageError(`${printable(target)}: no such folder or file`);
  let files: ArchiveFile[];
  if (info.isDirectory()) files = readFolder(source, target);
  else if (isArchive(source)) files = readArchive(printable(target), readFileSync(source));
  else throw new UsageError(`${printable(target)}: is neither a folder nor a .tar.gz/.tgz/.zip archive; give the skill's folder (the one holding SKILL.md)`);
  return installSkill(skillRoot(files, printable(target)), target, io);
}

export const isUrl = (target: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(target);

/** Larger downloads are refused: a skill is instructions and a few scripts. */
const MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024;
const DOWNLOAD_TIMEOUT_MS = 60_000;
const MAX_REDIRECTS = 5;

/**
 * `nightshift skills add URL`: downloads a .tar.gz or .zip over HTTPS (plain HTTP only from this
 * machine, for a local mirror), at most 20 MB, following at most five redirects that stay on
 * HTTPS; the kind is told by its first bytes, not its name. Then it is installed like a file:
 * files shown, red flags, pinned. The output names the URL and the archive's sha256.
 */
export async function addSkillFromUrl(url: string, io: SkillsIo, fetcher: typeof fetch = fetch): Promise<{ text: string; code: number }> {
  const shown = printable(url);
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new UsageError(`${shown}: is not a valid URL`);
  }
  const signal = AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS);
  let response: Response | undefined;
  for (let hop = 0; ; hop++) {
    const local = ["localhost", "127.0.0.1", "[::1]"].includes(target.hostname);
    if (target.protocol !== "https:" && !(target.protocol === "http:" && local)) {
      throw new UsageError(`${hop ? `${shown} redirected to ${printable(target.href)}, which` : shown} is not HTTPS; a skill is downloaded only over HTTPS (or from this machine), so nobody on the way can change it`);
    }
    if (target.username || target.password) throw new UsageError(`${shown}: put no credentials in the URL`);
    try {
      response = await fetcher(target, { redirect: "manual", signal, headers: { "user-agent": "nightshift-skills" } });
    } catch (error) {
      throw new UsageError(`could not download ${printable(target.href)}: ${signal.aborted ? "it took longer than a minute" : ((error as Error).cause as Error | undefined)?.message ?? (error as Error).message}; check the address and the network`);
    }
    const location = response.headers.get("location");
    if (response.status >= 300 && response.status < 400 && location) {
      if (hop >= MAX_REDIRECTS) throw new UsageError(`${shown}: more than ${MAX_REDIRECTS} redirects; give the archive's final address`);
      await response.body?.cancel();
      target = new URL(location, target);
      continue;
    }
    break;
  }
  if (!response.ok) throw new UsageError(`could not download ${printable(target.href)}: HTTP ${response.status}; check the address (it must be the archive itself: on GitHub, …/archive/refs/heads/main.zip)`);
  const declared = Number(response.headers.get("content-length") ?? 0);
  if (declared > MAX_DOWNLOAD_BYTES) throw new UsageError(`${shown} is ${declared.toLocaleString("en-US")} bytes, over the ${MAX_DOWNLOAD_BYTES / 1024 / 1024} MB a skill may be`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > MAX_DOWNLOAD_BYTES) throw new UsageError(`${shown} is over the ${MAX_DOWNLOAD_BYTES / 1024 / 1024} MB a skill may be`);
    chunks.push(Buffer.from(chunk));
  }
  const data = Buffer.concat(chunks);
  const kind = data[0] === 0x1f && data[1] === 0x8b ? "skill.tar.gz" : data.subarray(0, 4).equals(Buffer.from([0x50, 0x4b, 0x03, 0x04])) ? "skill.zip" : undefined;
  if (!kind) {
    const start = data.subarray(0, 40).toString("utf8").replace(/\s+/g, " ").trim();
    throw new UsageError(`${shown}: is not a .tar.gz or .zip archive (it starts with ${JSON.stringify(start)}); give the archive's own address (on GitHub: …/archive/refs/heads/main.zip)`);
  }
  const files = skillRoot(readArchive(`${shown} (${kind.slice(6)})`, data), shown);
  const result = installSkill(files, url, io);
  const digest = createHash("sha256").update(data).digest("hex");
  return { ...result, text: `Downloaded ${data.length.toLocaleString("en-US")} bytes from ${printable(target.href)} (sha256 ${digest}).\n${result.text}` };
}

/** Installs the files of a skill (SKILL.md at the top): staged, checked, renamed into place, pinned. */
function installSkill(files: ArchiveFile[], target: string, io: SkillsIo): { text: string; code: number } {
  const skillMd = files.find((file) => file.path === "SKILL.md")!;
  let name: string;
  try {
    name = parseSkillFile(`${printable(target)}/SKILL.md`, undefined, skillMd.content).name;
  } catch (error) {
    if (error instanceof SkillFileProblem) throw new UsageError(`${error.message}\nNothing was installed.`);
    throw error;
  }
  const dir = skillsDir(io.home);
  const dest = join(dir, name);
  if (existsSync(dest)) throw new UsageError(`skills/${name} already exists; to replace it, run nightshift skills remove ${name} (it is moved aside), then add it again`);

  // Written beside its final place, then renamed: a crash never leaves a half-copied skill in the catalog.
  const staging = join(dir, `.incoming-${name}-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  for (const file of files) {
    mkdirSync(dirname(join(staging, file.path)), { recursive: true });
    writeFileSync(join(staging, file.path), file.content, { mode: file.executable ? 0o755 : 0o644 });
  }
  try {
    scanSkillFolder(staging, `skills/${name}`); // the archive's limits, checked on what was written
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    if (error instanceof SkillFolderProblem) throw new UsageError(`${error.message}\nNothing was installed.`);
    throw error;
  }
  renameSync(staging, dest);
  const entry = openSkill(io.home, name);
  const flags = redFlags(entry.contents, entry.spec);
  const held = flags.some((flag) => !flag.note);
  writePin(io.home, { name, hash: entry.hash, files: entry.files, skill_md: skillMd.content.toString("utf8"), texts: pinTexts(entry.contents), approved: !held, pinned_at: io.clock.now() });

  const lines = [`Installed skill ${name} in ${dest}`, `  ${printable(entry.spec!.description)}`, "", ...fileLines(entry.files)];
  if (flags.length) lines.push("", `Red flags (${flags.length}): read these parts before you trust it`, ...formatFlags(flags).map(printable));
  if (held) lines.push("", `It is installed but withheld from the agent until you run: nightshift skills approve ${name}`);
  else lines.push("", `${flags.length ? "Nothing else was flagged" : "No red flags found"} (that proves nothing: read SKILL.md and its scripts before relying on it). The agent sees it from the next task on.`);
  lines.push(`Pinned: sha256 ${entry.hash.slice(0, 16)}… of all its files; if any of them changes, the skill is withheld until approved again.`);
  return { text: lines.join("\n"), code: 0 };
}

function readFolder(source: string, shown: string): ArchiveFile[] {
  try {
    const { files, contents } = scanSkillFolder(source, printable(shown.replace(/\/+$/, "")));
    return files.map((file) => ({ path: file.path, content: contents.get(file.path)!, executable: (statSync(join(source, file.path)).mode & 0o111) !== 0 }));
  } catch (error) {
    if (error instanceof SkillFolderProblem) throw new UsageError(`${error.message}\nNothing was installed.`);
    throw error;
  }
}

/** The files relative to the folder holding SKILL.md: the top, or the one folder an archive wraps it in. */
function skillRoot(files: ArchiveFile[], shown: string): ArchiveFile[] {
  if (files.some((file) => file.path === "SKILL.md")) return files;
  const tops = new Set(files.map((file) => file.path.split("/")[0]));
  const [top] = tops;
  if (tops.size === 1 && files.some((file) => file.path === `${top}/SKILL.md`)) {
    return files.map((file) => ({ ...file, path: file.path.slice(top!.length + 1) }));
  }
  throw new UsageError(`${shown}: has no SKILL.md at its top (or in the one folder it holds); give the skill's own folder`);
}

function listSkills(home: string): string {
  const entries = loadSkills(home);
  if (entries.length === 0) return `No skills in ${skillsDir(home)}. Add one with: nightshift skills add PATH`;
  const catalog = skillCatalog(entries);
  const lines: string[] = [];
  for (const entry of entries) {
    const size = entry.files.reduce((sum, file) => sum + file.size, 0);
    const state = entry.state === "ready" ? (catalog.leftOut.includes(entry.name) ? "ready, left out of the catalog (over its cap)" : "ready") : entry.state === "invalid" ? "invalid" : entry.state === "changed" ? "withheld: changed since approved" : "withheld: not approved";
    lines.push(`${entry.name}  ${state}  ${entry.files.length} file${entry.files.length === 1 ? "" : "s"}, ${formatSize(size)}`);
    if (entry.spec) lines.push(`  ${printable(entry.spec.description)}`);
    if (entry.spec?.allowedTools.length) lines.push(`  allowed-tools: ${printable(entry.spec.allowedTools.join(" "))} (shown only, never obeyed)`);
    if (entry.problem) lines.push(`  ${printable(entry.problem)}`);
  }
  lines.push("", `Catalog in every prompt: ${Buffer.byteLength(catalog.text)} of ${CATALOG_CAP_BYTES} bytes, ${catalog.listed.length} skill${catalog.listed.length === 1 ? "" : "s"}${catalog.leftOut.length ? `; left out: ${catalog.leftOut.join(", ")}` : ""}`);
  return lines.join("\n");
}

/** Pins the skill as it is now, after showing what changed since the last approval and its red flags. */
function approveSkill(name: string, io: SkillsIo): { text: string; code: number } {
  const entry = openSkill(io.home, name);
  if (entry.state === "invalid") return { text: `${printable(entry.problem ?? "")}\nFix that first; nothing was approved.`, code: 1 };
  if (entry.state === "ready") return { text: `${name} is approved and unchanged since; nothing to do.`, code: 0 };
  const pin = readPin(io.home, name);
  const lines: string[] = [];
  let scanned = entry.contents;
  if (entry.state === "changed" && entry.changes && pin) {
    lines.push(`Changed since approved: ${describeChanges(entry.changes)}`);
    if (entry.changes.changed.includes("SKILL.md")) lines.push("", "SKILL.md:", ...changedLines(pin.skill_md, entry.contents.get("SKILL.md")!.toString("utf8"), 60).map((line) => `  ${printable(line)}`));
    const now = pinTexts(entry.contents);
    for (const path of entry.changes.changed.filter((changed) => changed !== "SKILL.md")) {
      const before = pin.texts?.[path];
      const after = now[path];
      if (before === undefined || after === undefined) lines.push("", `${printable(path)}: changed (not text, or too large to keep: no line diff; read it)`);
      else lines.push("", `${printable(path)}:`, ...changedLines(before, after, 60).map((line) => `  ${printable(line)}`));
    }
    const touched = new Set([...entry.changes.added, ...entry.changes.changed]);
    scanned = new Map([...entry.contents].filter(([path]) => touched.has(path)));
  } else {
    lines.push(...fileLines(entry.files));
  }
  const flags = redFlags(scanned, entry.spec);
  if (flags.length) lines.push("", `Red flags (${flags.length}):`, ...formatFlags(flags).map(printable));
  writePin(io.home, { name, hash: entry.hash, files: entry.files, skill_md: entry.contents.get("SKILL.md")!.toString("utf8"), texts: pinTexts(entry.contents), approved: true, pinned_at: io.clock.now() });
  lines.push("", `Approved ${name}: the agent sees it from the next task on (sha256 ${entry.hash.slice(0, 16)}…).`);
  return { text: lines.join("\n"), code: 0 };
}

/** Moves the folder aside into skills/.removed/ (never deleted) and forgets its pin. */
function removeSkill(name: string, io: SkillsIo): { text: string; code: number } {
  const aside = join(skillsDir(io.home), ".removed");
  mkdirSync(aside, { recursive: true });
  const stamp = new Date(io.clock.now()).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  let dest = join(aside, `${name}-${stamp}`);
  for (let n = 2; existsSync(dest); n++) dest = join(aside, `${name}-${stamp}-${n}`);
  renameSync(join(skillsDir(io.home), name), dest);
  removePin(io.home, name);
  return { text: `Removed skill ${name}: its folder was moved to ${dest} (delete it yourself when you no longer want it).`, code: 0 };
}

function fileLines(files: readonly SkillFile[]): string[] {
  const total = files.reduce((sum, file) => sum + file.size, 0);
  return [`Files (${files.length}, ${formatSize(total)}):`, ...files.map((file) => `  ${printable(file.path)}  ${formatSize(file.size)}`)];
}

/** A skill's text is shown in a terminal: control characters (escape sequences that could hide lines) are made visible. */
function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (char) => `\\u{${char.charCodeAt(0).toString(16)}}`);
}
