/** Small text forms and facts the dashboard's pages share. */

import type { TaskRecord } from "../tasks/index.ts";

/** A task with a session under way (not queued, not ended): its specialists and tool calls may be running. */
export const runningNow = (task: Pick<TaskRecord, "state">) => task.state === "running" || task.state === "waiting_approval";
/** A task that has not ended: it can be cancelled, and its page follows it live. */
export const notEnded = (task: Pick<TaskRecord, "state">) => task.state === "queued" || runningNow(task);

export function formatCost(usd: number): string {
  if (!Number.isFinite(usd) || usd <= 0) return "$0.00";
  return usd < 1 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

/** 90_000 → "1 min"; rounded down, never negative. */
export function ago(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86_400)} d`;
}

/** 1234 → "1.2 KB"; bytes below 1 KB as they are. */
export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A tool's input on one line: a lone string field as it is (a command, a path), else JSON; newlines as ⏎. */
export function oneLine(input: unknown): string {
  const values = input && typeof input === "object" ? Object.values(input) : [];
  const text = values.length === 1 && typeof values[0] === "string" ? values[0] : JSON.stringify(input) ?? "";
  const line = text.replace(/\r?\n/g, " ⏎ ");
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}
