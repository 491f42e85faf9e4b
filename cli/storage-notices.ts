import { join } from "node:path";
import { formatDuration, type OutageChange } from "../runtime/index.ts";
import type { StoreOutageChange } from "../runtime/store/outage.ts";
import type { OpenedState } from "../tasks/state.ts";

/** One thing the person is told at start about the state: a trace event and its line. */
export interface StateNotice {
  event: Record<string, unknown>;
  message: string;
  /** Damage or loss is said everywhere (stderr, trace, Telegram); a migration only on stderr and in the trace. */
  damage: boolean;
}

/** What opening the state found (damage, lost tasks, held inbox files, a migration), as lines for the person. */
export function stateNotices(opened: Omit<OpenedState, "store" | "unstarted">, home: string): StateNotice[] {
  const { recovered, unreadable, relogged, held, migrated } = opened;
  const database = join(home, "state", "nightshift.db");
  const notices: StateNotice[] = [];
  const damage = (event: Record<string, unknown>, message: string) => notices.push({ event, message, damage: true });
  if (recovered) {
    damage(
      { event: "state_recovered", moved_to: recovered.movedTo, problem: recovered.problem, tasks: recovered.tasks },
      `STATE FILE DAMAGED (${recovered.problem}): moved to ${recovered.movedTo} and rebuilt from the session logs (${recovered.tasks} tasks)`,
    );
    for (const { id, damage: problem } of recovered.damagedLogs) {
      damage({ event: "session_log_damaged", session: id, problem }, `SESSION LOG DAMAGED (${problem}): task ${id} is failed, not resumed, so nothing in it runs again; the log is kept as it is`);
    }
  }
  for (const problem of unreadable ?? []) {
    damage({ event: "state_record_unreadable", problem }, `A QUEUED OR RUNNING TASK IN ${database} DOES NOT READ and is not run: ${problem}. The rest of the state is fine; fix or delete that row with the sqlite3 tool.`);
  }
  for (const task of relogged ?? []) {
    const how = task.damage ? `its log is damaged, so it is failed, not resumed (${task.damage})` : task.state === "running" ? "it is resumed from its log" : `it had finished (${task.state})`;
    damage({ event: "state_task_relogged", session: task.id, name: task.name, state: task.state }, `THE STATE HAD LOST the task of inbox/.done/${task.name} (${task.id}); recorded again from sessions/${task.id}.jsonl: ${how}`);
  }
  for (const { name, why } of held ?? []) {
    damage({ event: "inbox_file_held", name, why }, `inbox/.done/${name} has no task in the state and is NOT queued again, as it may have run: ${why}. To run it anyway, drop it in inbox/ again.`);
  }
  if (migrated) {
    notices.push({
      event: { event: "state_migrated", from: migrated.from, moved_to: migrated.movedTo, tasks: migrated.tasks, added: migrated.added },
      message: `STATE MOVED TO SQLITE: ${migrated.tasks} tasks from ${migrated.from} are now in ${database} (${migrated.added} added); the old file is kept as ${migrated.movedTo}`,
      damage: false,
    });
  }
  return notices;
}

/** A full or read-only disk, or its end, as the person reads it (stderr, Telegram). */
export function outageMessage(change: OutageChange, home: string): string {
  const { fault, what, message, since } = change.outage;
  if (change.state === "up") return `Disk writes work again (after ${formatDuration(change.at - since)}): Nightshift goes on with what waited.`;
  const head = fault === "full" ? `THE DISK IS FULL: could not write ${what} (${message})` : `${home} IS READ-ONLY: could not write ${what} (${message})`;
  const fix = fault === "full" ? `free some space on the disk that holds ${home}` : `make it writable again (remount it read-write)`;
  return `${head}. Nightshift keeps what it has, waits and tries again by itself: running tasks pause, files dropped in inbox/ wait there, nothing is lost. To go on, ${fix}.`;
}

/** The shared store (PostgreSQL) out of reach, or back, as the person reads it (stderr, Telegram). */
export function storeOutageMessage(change: StoreOutageChange): string {
  if (change.state === "up") return `The shared store answers again (after ${formatDuration(change.at - change.outage.since)}): what waited for it goes on, and changes made meanwhile are written.`;
  return (
    `THE SHARED STORE (PostgreSQL) CANNOT BE REACHED: ${change.outage.message}. Nightshift waits for it and tries again by itself: ` +
    "running tasks go on (their changes are written once it is back), new tasks wait to be queued, and no machine takes new work until then. Nothing is lost or run twice."
  );
}
