import { existsSync } from "node:fs";
import { join } from "node:path";
import { readSessionLog, readSessionLogFrom, type SessionEvent, type TaskSpec } from "../runtime/index.ts";
import { sessionLogPath } from "../runtime/session-log.ts";
import type { Cluster } from "../runtime/store/pg-cluster.ts";
import { pgSessions } from "../runtime/store/pg-sessions.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import type { Daemon } from "../tasks/daemon.ts";
import { createSessionMirror } from "../tasks/session-mirror.ts";
import type { TaskRecord } from "../tasks/state.ts";

/**
 * Several machines: the session logs of this machine's tasks copied into the shared store
 * (tasks/session-mirror.ts), and what the dashboard and the bot read of any task: its log here when
 * it ran here, else the store's copy; its record here, else the store's. A page that follows a task
 * on another machine wakes on the store's notification of each append.
 */
export interface SharedSessions {
  readEvents(id: string): Promise<SessionEvent[]>;
  /** As readSessionLogFrom for a log here (`offset` in bytes); for another machine's task, `offset` counts events. */
  readLogFrom(id: string, offset: number): Promise<{ events: SessionEvent[]; offset: number }>;
  /** Calls `listener` with a session's id when it grew, here or on another machine. */
  watch(listener: (session: string) => void): () => void;
  /**
   * As `daemon.watch`, and another machine's task's events as well, read from the store's copy as
   * it is notified: what the bot follows, so a Telegram task that runs elsewhere still edits its
   * status message as it goes. (Its end comes as here: the result, delivered by this machine.)
   * `wanted`: which other machines' sessions to read, by their task (the bot: those sent from
   * Telegram); the others are not read at all.
   */
  watchEverywhere(listener: Parameters<Daemon["watch"]>[0], wanted: (task: TaskSpec) => boolean): () => void;
  /** A task this machine has no record of, as the store holds it. */
  findElsewhere(id: string): Promise<TaskRecord | undefined>;
  /** A task's specialists' own logs: from sessions/<task>/ when it ran here, else the store's copies, each whole. */
  readSpecialists(task: string, local: (task: string) => Promise<Array<{ session: string; events: SessionEvent[] }>>): Promise<Array<{ session: string; events: SessionEvent[] }>>;
  /** Copies what this machine's sessions grew by (at each heartbeat; each event also asks for it). */
  sync(): Promise<void>;
  /** Stops following, after a last copy. */
  stop(): Promise<void>;
}

export async function shareSessions(options: { cluster: Cluster; daemon: Daemon; sessionsDir: string; home: string; trace: TraceLogger }): Promise<SharedSessions> {
  const { cluster, daemon, sessionsDir, trace } = options;
  const sessions = pgSessions(cluster.sql);
  const mirror = createSessionMirror({ sessions, sessionsDir, machine: cluster.machine, stateFile: join(options.home, "state", "session-mirror.json"), trace });
  const localPath = (id: string) => join(sessionsDir, `${id}.jsonl`);
  // A specialist's session (<task>.<call>.<name>) has its log under sessions/<task>/, copied as its task's is; it ends at its own session_end.
  // A task this machine only delivers (it ran elsewhere) has no log here: it is the other machine's to copy.
  const unwatch = daemon.watch((id, message) => {
    if (!existsSync(sessionLogPath(sessionsDir, id))) return;
    if (message.type === "finished" || (id.includes(".") && message.event.type === "session_end")) mirror.ended(id);
    else mirror.grew(id);
  });
  const listeners = new Set<(session: string) => void>();
  const unlisten = await sessions.listen((session) => {
    for (const listener of listeners) listener(session);
  });
  return {
    async readEvents(id) {
      if (existsSync(localPath(id))) return readSessionLog(localPath(id));
      return (await sessions.readFrom(id)).map((row) => row.event);
    },
    async readLogFrom(id, offset) {
      if (existsSync(localPath(id))) return readSessionLogFrom(localPath(id), offset);
      const rows = await sessions.readFrom(id, offset);
      return { events: rows.map((row) => row.event), offset: rows.at(-1)?.seq ?? offset };
    },
    watch(listener) {
      listeners.add(listener);
      const unwatchDaemon = daemon.watch((session) => listener(session));
      return () => {
        listeners.delete(listener);
        unwatchDaemon();
      };
    },
    watchEverywhere(listener, wanted) {
      const unwatchDaemon = daemon.watch(listener);
      /** Sessions found not wanted, not read again (forgotten past a bound: one more read each then). */
      const unwanted = new Set<string>();
      /** Another machine's sessions being read: the number of the last event passed on, and whether a read runs. */
      const read = new Map<string, { seq: number; reading?: Promise<void>; again?: boolean; ended?: boolean }>();
      const follow = (session: string): Promise<void> | undefined => {
        if (session.includes(".") || unwanted.has(session) || existsSync(localPath(session))) return undefined; // this machine's own come from its daemon
        let cursor = read.get(session);
        if (!cursor) read.set(session, (cursor = { seq: 0 }));
        if (cursor.reading) {
          cursor.again = true;
          return cursor.reading;
        }
        const entry = cursor;
        entry.reading = (async () => {
          do {
            entry.again = false;
            let rows = await sessions.readFrom(session, entry.seq);
            if (entry.seq === 0 && rows[0]?.event.type === "session_start" && !wanted(rows[0].event.task)) {
              if (unwanted.size >= 10_000) unwanted.clear();
              unwanted.add(session);
              read.delete(session);
              return;
            }
            if (entry.seq === 0) {
              // First seen here: only its current run (a follow-up continues a session that ended; a bot that took over mid-run starts late).
              const lastEnd = rows.findLastIndex((row) => row.event.type === "session_end");
              if (lastEnd >= 0) {
                entry.seq = rows[lastEnd]!.seq;
                entry.ended = lastEnd === rows.length - 1;
                rows = rows.slice(lastEnd + 1);
              }
            }
            for (const row of rows) {
              entry.seq = row.seq;
              entry.ended = row.event.type === "session_end";
              listener(session, { type: "event", event: row.event });
            }
          } while (entry.again);
          // Ended with nothing after it: no longer followed (a follow-up later starts at its own run).
          if (entry.ended) read.delete(session);
        })()
          .catch((error: unknown) => trace.warn({ session, event: "remote_events_failed", error: (error as Error).message }, `could not read another machine's session ${session} from the shared store: ${(error as Error).message}`))
          .finally(() => (entry.reading = undefined));
        return entry.reading;
      };
      const remote = (session: string) => void follow(session);
      listeners.add(remote);
      return () => {
        listeners.delete(remote);
        unwatchDaemon();
      };
    },
    async findElsewhere(id) {
      return (await cluster.get(id))?.record;
    },
    async readSpecialists(task, local) {
      if (existsSync(localPath(task))) return local(task);
      // Each bounded by its agent's max_turns, as a local one is read whole.
      return Promise.all((await sessions.specialistsOf(task)).map(async (session) => ({ session, events: (await sessions.readFrom(session)).map((row) => row.event) })));
    },
    sync: () => mirror.sync(),
    async stop() {
      unwatch();
      await unlisten().catch(() => {});
      await mirror.sync().catch(() => {});
    },
  };
}
