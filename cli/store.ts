import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { SessionBusy } from "../runtime/errors.ts";
import { lockSession, machineName, storeSetting, storeUrl, type Clock, type LoadedConfig } from "../runtime/index.ts";
import { openCluster } from "../runtime/store/pg-cluster.ts";
import { pgJournal } from "../runtime/store/pg-journal.ts";
import { pgSessions } from "../runtime/store/pg-sessions.ts";
import { createSessionMirror } from "../tasks/session-mirror.ts";
import { readSchedules } from "../tasks/schedules.ts";
import { openState, StateRefused } from "../tasks/state.ts";
import { shareJournal } from "./cluster-start.ts";
import { stateNotices } from "./storage-notices.ts";
import { UsageError } from "./usage.ts";

/**
 * `nightshift store migrate`: a single-machine home into the shared PostgreSQL store. Every task of
 * the local state is written there as this machine's (active ones pinned here: they resume from
 * their session logs here), with the schedules' cursors, in one transaction; then every session
 * log is copied there (tasks/session-mirror.ts), and the memory journal with its consolidation cursor
 * (memory/shared-journal.ts). Running it again adds nothing twice.
 * It holds the daemon's lock meanwhile, so no daemon writes the state under it; the local state
 * is read, never changed, and stays the daemon's as before.
 */
export async function storeCommand(args: string[], loaded: LoadedConfig, clock: Clock): Promise<string> {
  if (args[0] !== "migrate" || args.length !== 1) throw new UsageError("usage: nightshift store migrate");
  const { home, config } = loaded;
  const url = storeUrl(loaded);
  if (!url) throw new UsageError("no shared store is configured: set NIGHTSHIFT_DATABASE_URL=postgres://… (in the environment or .env), or `store: postgres://…` in config.yaml for a URL without a password, then run `nightshift store migrate` again");
  let unlock: () => void;
  try {
    unlock = lockSession(join(home, "state", "daemon"), process.pid, `a Nightshift daemon for ${home}`, "stop it first (the migration reads the state while nothing writes it), then run `nightshift store migrate` again");
  } catch (error) {
    if (error instanceof SessionBusy) throw new UsageError(error.message);
    throw error;
  }
  try {
    const opened = await openState(home, clock.now).catch((error: unknown) => {
      throw error instanceof StateRefused ? new UsageError(error.message) : error;
    });
    const { store } = opened;
    const machine = machineName(config);
    let lines: string[];
    try {
      const tasks = store.list({}, Math.max(1, store.count())).reverse(); // oldest first
      const schedules = (await readSchedules(join(home, "schedules"))).map((item) => item.name);
      const cursors = schedules.flatMap((name) => {
        const at = store.lastRun(name);
        return at === undefined ? [] : [{ name, at }];
      });
      const setting = storeSetting(loaded);
      const cluster = await openCluster(url, machine).catch((error: unknown) => {
        throw new UsageError(`could not open the shared store (${setting}): ${(error as Error).message}. Check that PostgreSQL runs and the setting is right`);
      });
      let counts;
      const logs = { copied: 0, left: [] as string[], warnings: [] as string[] };
      const journal = { copied: 0 };
      try {
        counts = await cluster.adopt(tasks, cursors);
        // Each task's session log, copied into the store as a running daemon copies its own; what is not copied whole now
        // (the store went away) is kept in state/session-mirror.json, and the daemon copies it at its next start.
        const mirror = createSessionMirror({ sessions: pgSessions(cluster.sql), sessionsDir: join(home, "sessions"), machine, stateFile: join(home, "state", "session-mirror.json"), trace: { warn: (_fields, message) => void logs.warnings.push(message ?? "") } });
        const withLogs = tasks.filter((task) => existsSync(join(home, "sessions", `${task.id}.jsonl`))).map((task) => task.id);
        // Their specialists' own logs too (sessions/<task>/), counted with their task's.
        mirror.backfill([...withLogs, ...withLogs.flatMap((id) => specialistSessions(join(home, "sessions"), id))]);
        await mirror.sync();
        logs.left = mirror.pending().filter((session) => !session.includes("."));
        logs.copied = withLogs.length - logs.left.length;
        // The journal, as the daemon copies it, and the consolidation cursor: what was consolidated here is not read again.
        const shared = shareJournal({ cluster, home, clock, refused: (message) => void logs.warnings.push(message) });
        await shared.mirror.sync();
        journal.copied = await pgJournal(cluster.sql).count(machine);
      } finally {
        await cluster.close();
      }
      const active = tasks.filter((task) => ["queued", "running", "waiting_approval"].includes(task.state)).length;
      lines = [
        `${tasks.length} task${tasks.length === 1 ? "" : "s"} of ${home} on the shared store (${setting}) as machine ${machine}: ${counts.added} added, ${counts.updated} brought up to date, ${counts.same} there already.`,
        ...(active ? [`Pinned to ${machine}, to run and resume only here: ${active} active task${active === 1 ? "" : "s"} (queued, running or waiting).`] : []),
        `Session logs: ${logs.copied} copied to the shared store, where every machine's dashboard reads them${logs.left.length ? `; ${logs.left.length} left to copy when this machine's daemon starts` : ""}. The files stay in ${join(home, "sessions")}, where a resume on this machine reads them; the local state (state/nightshift.db) is kept as it was.`,
        ...logs.warnings.map((warning) => `! ${warning}`),
        `Memory journal: ${journal.copied} entr${journal.copied === 1 ? "y" : "ies"} on the shared store, where the nightly consolidation reads every machine's journal (the files stay in ${join(home, "journal")}).`,
        ...(cursors.length ? [`Schedule cursors: ${counts.cursors} of ${cursors.length} moved forward (each slot of a schedule runs once across the machines).`] : []),
        ...(counts.foreign.length ? [`! ${counts.foreign.length} task id${counts.foreign.length === 1 ? " is" : "s are"} another machine's on the store and left alone: ${counts.foreign.slice(0, 5).join(", ")}${counts.foreign.length > 5 ? ", …" : ""}`] : []),
        ...stateNotices(opened, home).map((notice) => `! ${notice.message}`),
        `Next: nightshift start (on this machine and each other one with the same ${setting.startsWith("store") ? "store: setting" : "NIGHTSHIFT_DATABASE_URL"}).`,
      ];
    } finally {
      store.close();
    }
    return lines.join("\n");
  } finally {
    unlock();
  }
}

/** The sessions of a task's specialists whose logs are in sessions/<task>/ (runtime.ts `runChild`). */
function specialistSessions(sessionsDir: string, task: string): string[] {
  try {
    return readdirSync(join(sessionsDir, task)).filter((name) => name.startsWith(`${task}.`) && name.endsWith(".jsonl")).map((name) => name.slice(0, -".jsonl".length));
  } catch {
    return []; // none
  }
}
