import { existsSync } from "node:fs";
import { join } from "node:path";
import { readSessionLogPrefix, SessionLogError } from "../runtime/session-log.ts";
import { connectDaemon } from "../tasks/control-client.ts";
import type { TaskRecord } from "../tasks/state.ts";
import { readStateQuietly, StateUnreadable, type TaskReader } from "../tasks/task-reader.ts";
import { progressLine } from "./progress.ts";
import { UsageError } from "./usage.ts";

const SHOWN = 30;

/** `nightshift status [TASK]`: the queue and the newest tasks, or one task's timeline from its session log. */
export async function statusCommand(home: string, id: string | undefined, now: number): Promise<string> {
  const client = await connectDaemon(home);
  const header = client ? "daemon running" : "no daemon running (nightshift start)";
  const reader = client ? undefined : openTasksQuietly(home);
  try {
    if (!id) {
      const { tasks, total } = client ? await client.list(SHOWN) : { tasks: reader!.overview(SHOWN), total: reader!.count() };
      if (tasks.length === 0) return `${header}; no tasks yet. Drop a task file in ${join(home, "inbox")} or run: nightshift run "…"`;
      const rows = [...tasks]
        .sort((a, b) => b.created - a.created)
        .map((task) => `${task.id.padEnd(24)} ${task.state.padEnd(16)} ${age(now - task.created).padStart(5)} ${`$${task.cost_usd.toFixed(2)}`.padStart(7)}  ${task.title}${task.reason && task.state !== "done" ? `\n${" ".repeat(26)}${task.reason}` : ""}`);
      const older = total - tasks.length;
      return [header, `${"TASK".padEnd(24)} ${"STATE".padEnd(16)} ${"AGE".padStart(5)} ${"COST".padStart(7)}  TITLE`, ...rows, ...(older > 0 ? [`(${older} older not shown; nightshift status TASK shows any of them)`] : [])].join("\n");
    }
    const task = client ? await client.get(id) : reader!.find(id);
    return await timeline(home, id, task);
  } finally {
    reader?.close();
  }
}

async function timeline(home: string, id: string, task: TaskRecord | undefined): Promise<string> {
  const logPath = join(home, "sessions", `${task?.id ?? id}.jsonl`);
  if (!task && !existsSync(logPath)) throw new UsageError(`no task ${id}; \`nightshift status\` lists them`);
  const lines = [task ? `${task.id}  ${task.state}  "${task.title}"  ${task.turns} turns  $${task.cost_usd.toFixed(4)}${task.reason ? `\n  ${task.reason}` : ""}` : id];
  if (existsSync(logPath)) {
    // A damaged log shows what it still proves, then says where it stops: the file is kept as it is.
    const { events, damage } = await readSessionLogPrefix(logPath).catch((error: unknown) => {
      if (error instanceof SessionLogError) return { events: [], damage: error };
      throw error;
    });
    const start = events[0]?.at ?? 0;
    for (const event of events) {
      const line = progressLine(task?.id ?? id, event);
      if (line) lines.push(`${`+${age(event.at - start)}`.padStart(7)} ${line.trim().replace(/\n\s*/g, "\n        ")}`);
    }
    if (damage) lines.push(`  ! ${damage.problem}: the session log is damaged there; what follows it is not shown (the file is kept as it is)`);
  } else lines.push("  (queued: no session yet)");
  return lines.join("\n");
}

/** The state read without taking ownership (the daemon is its only writer); a damaged file is a usage error saying what to do. */
export function openTasksQuietly(home: string): TaskReader & { close(): void } {
  try {
    return readStateQuietly(home);
  } catch (error) {
    if (error instanceof StateUnreadable) throw new UsageError(error.message);
    throw error;
  }
}

function age(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86_400)}d`;
}
