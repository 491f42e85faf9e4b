import type { Stats } from "node:fs";
import { lstat, rename, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { stringify } from "yaml";
import { TaskFileError } from "../runtime/errors.ts";
import { parseTaskFile } from "./task-file.ts";
import type { TaskFile } from "./task-file.ts";

/**
 * What the inbox (tasks/inbox.ts) decides about a file by its name, size and text, and how it
 * writes what it rejected: which names it leaves alone, the checks only the inbox makes, and the
 * `.error.md` report that names the file, the field and the fix.
 */

/** Dotfiles (.#x, .x.swp, .x.md.partial, .DS_Store), backups (x~), autosaves (#x#), temp and partial downloads, OS litter. */
export function isIgnored(name: string): boolean {
  const lower = name.toLowerCase();
  return (
    name.startsWith(".") ||
    name.endsWith("~") ||
    (name.length > 1 && name.startsWith("#") && name.endsWith("#")) ||
    TEMP_SUFFIXES.some((suffix) => lower.endsWith(suffix)) ||
    OS_FILES.has(lower)
  );
}

const TEMP_SUFFIXES = [".tmp", ".temp", ".swp", ".swo", ".swx", ".part", ".partial", ".crdownload"];
const OS_FILES = new Set(["thumbs.db", "desktop.ini"]);

/** Validates like any task file, plus what only the inbox forbids. */
export function parseInboxTask(where: string, content: Buffer, maxBytes: number): TaskFile {
  const task = parseTaskFile(where, content, { maxBytes });
  if (task.schedule !== undefined) {
    const line = frontMatterLine(content.toString("utf8"), "schedule");
    const message = `schedule: works only in schedules/, not in the inbox; move the file to schedules/ to run it on a schedule, or delete the line to run it once now`;
    throw new TaskFileError(where, `${where}${line === undefined ? "" : `:${line}`}: ${message}`, { line, field: "schedule" });
  }
  return task;
}

/** 1-based line of a top-level `key:` in the front matter. */
export function frontMatterLine(text: string, key: string): number | undefined {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (let index = 1; index < lines.length && lines[index]!.trimEnd() !== "---"; index++) {
    if (new RegExp(`^${key}\\s*:`).test(lines[index]!)) return index + 1;
  }
  return undefined;
}

export function errorReport(report: { dropped: string; where: string; error: TaskFileError; movedTo: string; at: number; inbox: string }): string {
  const { error } = report;
  const front = {
    status: "rejected",
    task: report.dropped,
    rejected: new Date(report.at).toISOString(),
    file: report.where,
    ...(error.line === undefined ? {} : { line: error.line }),
    ...(error.field === undefined ? {} : { field: error.field }),
    moved_to: report.movedTo,
  };
  const { problem, fix } = explain(error);
  const lines = [
    `# ${report.dropped} was rejected`,
    "",
    `> ${error.message}`,
    "",
    `- File: ${code(report.where)}`,
    ...(error.line === undefined ? [] : [`- Line: ${error.line}`]),
    ...(error.field === undefined ? [] : [`- Field: ${code(error.field)}`]),
    `- Problem: ${problem}`,
    `- Fix: ${fix}`,
    "",
    `The file was moved, unchanged, to ${code(report.movedTo)}. Fix it and drop it into ${code(report.inbox + "/")} again to run it.`,
  ];
  return `---\n${stringify(front).trimEnd()}\n---\n${lines.join("\n")}\n`;
}

/** Splits `<file>[:line]: [field: ]problem; fix` into its problem and its fix. */
export function explain(error: TaskFileError): { problem: string; fix: string } {
  let rest = error.message;
  const prefix = `${error.file}${error.line === undefined ? "" : `:${error.line}`}: `;
  if (rest.startsWith(prefix)) rest = rest.slice(prefix.length);
  if (error.field !== undefined && rest.startsWith(`${error.field}: `)) rest = rest.slice(error.field.length + 2);
  const split = rest.lastIndexOf("; ");
  if (split < 0) return { problem: rest, fix: "correct the file as described above" };
  return { problem: rest.slice(0, split), fix: rest.slice(split + 2) };
}

export function code(text: string): string {
  return text.includes("`") ? `\`\` ${text} \`\`` : `\`${text}\``;
}

export function errorFileName(name: string): string {
  return /\.md$/i.test(name) ? `${name.slice(0, -3)}.error.md` : `${name}.error.md`;
}

/** `report.md`, `report-2.md`, …: the number goes before the last extension. */
export function numbered(name: string, n: number): string {
  if (n === 1) return name;
  const dot = name.lastIndexOf(".");
  return dot > 0 ? `${name.slice(0, dot)}-${n}${name.slice(dot)}` : `${name}-${n}`;
}

export function signature(stats: Stats): string {
  const kind = stats.isSymbolicLink() ? "link" : stats.isFile() ? "file" : "other";
  return `${kind}:${stats.ino}:${stats.size}:${stats.mtimeMs}`;
}

export function kindOf(stats: Stats): string {
  if (stats.isFIFO()) return "a named pipe";
  if (stats.isSocket()) return "a socket";
  if (stats.isBlockDevice() || stats.isCharacterDevice()) return "a device";
  return "not a file";
}

export function tooLarge(size: number, maxBytes: number): string {
  return `is ${formatBytes(size)} (${size} bytes), over the ${formatBytes(maxBytes)} limit for task files; shorten it, or raise inbox.max_bytes in config.yaml`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const [size, unit] = bytes < 1024 * 1024 ? [bytes / 1024, "KiB"] : [bytes / (1024 * 1024), "MiB"];
  return `${Number.isInteger(size) ? size : size.toFixed(1)} ${unit}`;
}

export async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = join(path, "..", `.${basename(path)}.rejection.tmp`);
  await writeFile(temp, text);
  await rename(temp, path);
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if (isCode(error, "ENOENT")) return false;
    throw error;
  }
}

export function isCode(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}
