import { existsSync } from "node:fs";
import { join } from "node:path";
import type { SessionEvent } from "../runtime/events.ts";
import { readSessionLogPrefix, SessionLogError } from "../runtime/session-log.ts";
import { connectDaemon } from "../tasks/control-client.ts";
import type { TaskRecord } from "../tasks/state.ts";
import { describeSettings, readSettingsState } from "../tasks/settings-state.ts";
import { machineOf, machineState, silence, waitingFor, type ClusterView } from "../tasks/cluster-view.ts";
import { readStateQuietly, StateUnreadable, type TaskReader } from "../tasks/task-reader.ts";
import { progressLine } from "./progress.ts";
import { UsageError } from "./usage.ts";

const SHOWN = 30;

/** `nightshift status [TASK]`: the queue and the newest tasks, or one task's timeline from its session log. */
export async function statusCommand(home: string, id: string | undefined, now: number): Promise<string> {
  const client = await connectDaemon(home);
  let header = client ? "daemon running" : "no daemon running (nightshift start)";
  const reader = client ? undefined : openTasksQuietly(home);
  try {
    if (!id) {
      let storeDown: string | undefined;
      const view = client ? await client.cluster(SHOWN).catch((error: unknown) => void (storeDown = (error as Error).message)) : undefined;
      if (view) return [`daemon running, machine ${view.machine} on the shared store`, ...clusterText(view, now, SHOWN), "", `shared settings (permissions, mcp): ${describeSettings(readSettingsState(home), view.machine)}`].join("\n");
      if (storeDown) header = `daemon running; the shared store does not answer (${storeDown}), so only this machine's tasks are shown`;
      const { tasks, total } = client ? await client.list(SHOWN) : { tasks: reader!.overview(SHOWN), total: reader!.count() };
      if (tasks.length === 0) return `${header}; no tasks yet. Drop a task file in ${join(home, "inbox")} or run: nightshift run "…"`;
      const rows = [...tasks]
        .sort((a, b) => b.created - a.created)
        .map((task) => `${task.id.padEnd(24)} ${task.state.padEnd(16)} ${age(now - task.created).padStart(5)} ${`$${task.cost_usd.toFixed(2)}`.padStart(7)}  ${task.title}${task.reason && task.state !== "done" ? `\n${" ".repeat(26)}${task.reason}` : ""}`);
      const older = total - tasks.length;
      return [header, `${"TASK".padEnd(24)} ${"STATE".padEnd(16)} ${"AGE".padStart(5)} ${"COST".padStart(7)}  TITLE`, ...rows, ...(older > 0 ? [`(${older} older not shown; nightshift status TASK shows any of them)`] : [])].join("\n");
    }
    const task = client ? await client.get(id) : reader!.find(id);
    if (!task && client) {
      // Several machines: a task of another machine, its timeline from the store's copy of its log.
      const shared = await client.sharedTask(id);
      if (shared) {
        const { record, events } = shared;
        const head = `${record.id}  ${record.state}  "${record.title}"  on ${machineOf(shared) ?? "no machine yet"}  ${record.turns} turns  $${record.cost_usd.toFixed(4)}${record.reason ? `\n  ${record.reason}` : ""}`;
        return [head, ...(events.length ? eventLines(record.id, events) : ["  (queued: no session yet)"])].join("\n");
      }
    }
    return await timeline(home, id, task);
  } finally {
    reader?.close();
  }
}

/** Several machines: each machine with its heartbeat, then every machine's tasks, those that wait for a silent machine marked. */
function clusterText(view: ClusterView, now: number, shown: number): string[] {
  const lines = [`${"MACHINE".padEnd(20)} ${"STATE".padEnd(8)} ${"HEARTBEAT".padStart(10)}  TASKS`];
  for (const machine of view.machines) {
    const state = machineState(machine);
    const tasks = state === "alive" ? `${machine.running} of ${machine.concurrency} running` : `${view.active.filter((task) => machineOf(task) === machine.name).length} waiting for it`;
    lines.push(`${machine.name.padEnd(20)} ${state.padEnd(8)} ${`${silence(machine.silentMs)} ago`.padStart(10)}  ${tasks}${machine.name === view.machine ? "  (this machine)" : ""}`);
  }
  const seen = new Set<string>();
  const tasks = [...view.active, ...view.recent].filter((task) => !seen.has(task.record.id) && Boolean(seen.add(task.record.id)));
  if (tasks.length === 0) return [...lines, "", `no tasks on any machine yet`];
  lines.push("", `${"TASK".padEnd(24)} ${"STATE".padEnd(16)} ${"MACHINE".padEnd(14)} ${"AGE".padStart(5)} ${"COST".padStart(7)}  TITLE`);
  for (const task of tasks.sort((a, b) => b.record.created - a.record.created).slice(0, Math.max(shown, view.active.length))) {
    const { record } = task;
    const note = waitingFor(task, view.machines) ?? (record.reason && record.state !== "done" ? record.reason : undefined);
    lines.push(`${record.id.padEnd(24)} ${record.state.padEnd(16)} ${(machineOf(task) ?? "(any)").padEnd(14)} ${age(now - record.created).padStart(5)} ${`$${record.cost_usd.toFixed(2)}`.padStart(7)}  ${record.title}${note ? `\n${" ".repeat(26)}${note}` : ""}`);
  }
  return lines;
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
    lines.push(...eventLines(task?.id ?? id, events));
    if (damage) lines.push(`  ! ${damage.problem}: the session log is damaged there; what follows it is not shown (the file is kept as it is)`);
  } else lines.push("  (queued: no session yet)");
  return lines.join("\n");
}

/** One line per event worth a line, timed from the session's start. */
function eventLines(id: string, events: SessionEvent[]): string[] {
  const start = events[0]?.at ?? 0;
  return events.flatMap((event) => {
    const line = progressLine(id, event);
    return line ? [`${`+${age(event.at - start)}`.padStart(7)} ${line.trim().replace(/\n\s*/g, "\n        ")}`] : [];
  });
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
