import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { readSessionLogFrom, SessionLogError, sessionLogPath } from "../runtime/session-log.ts";
import { storeUnreachable } from "../runtime/store/outage.ts";
import { SessionTakenOver, type Claim, type PgSessions } from "../runtime/store/pg-sessions.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import { storageFault } from "../runtime/write-gate.ts";

/**
 * Several machines on one store: the session log of every task that runs here, and of each of its
 * specialists (`<task>.<call>.<name>`, its log in sessions/<task>/), is copied into the shared store
 * (runtime/store/pg-sessions.ts), in order, so any machine's dashboard and bot can follow a task
 * that runs elsewhere and show its timeline and its specialists' calls once it ended.
 *
 * The JSONL file here stays the session's durable record: the loop appends to it and resumes from
 * it, as on one machine, so a session goes on while the database is away and an event costs no
 * round trip (0.56 against 1.86 ms, bench/README.md). The store's copy follows the file, moments
 * behind, and catches up after an outage or a restart: the sessions not yet copied whole are kept
 * in state/session-mirror.json.
 *
 * Each run of a session here claims it anew (a new epoch) before its first copy. A process of this
 * machine's name that woke late, after the machine was started again elsewhere under that name,
 * holds an older claim: its copies are refused (SessionTakenOver), and it stops copying and says so.
 */
export interface SessionMirror {
  /** The session `id` has new events here (it started, runs, resumed or ended): copy them soon. */
  grew(id: string): void;
  /** The session ended here: once copied whole, it is no longer followed. A task's end ends its specialists' sessions too. */
  ended(id: string): void;
  /** Ended sessions to copy whole (`nightshift store migrate`): followed until copied, as `ended`, kept in the state file at once. */
  backfill(ids: readonly string[]): void;
  /** Copies what every followed session grew by; what the store refuses now is tried again at the next call. */
  sync(): Promise<void>;
  /** The sessions not yet copied whole. */
  pending(): string[];
}

interface Followed {
  /** This run's claim, taken at its first copy. */
  claim?: Claim;
  /** Bytes of the file read so far, and the events they held. */
  offset: number;
  read: number;
  /** Events the store holds. */
  copied: number;
  ended: boolean;
}

/** At most this many events in one transaction: a long session that catches up does not hold one open for long. */
const BATCH = 200;

export function createSessionMirror(options: { sessions: PgSessions; sessionsDir: string; machine: string; stateFile: string; trace: Pick<TraceLogger, "warn"> }): SessionMirror {
  const { sessions, sessionsDir, machine, stateFile, trace } = options;
  const followed = new Map<string, Followed>();
  // What the last process left to copy: followed again, each with a new claim, and ended unless it runs again.
  for (const id of readPending(stateFile)) followed.set(id, { offset: 0, read: 0, copied: 0, ended: true });
  let syncing: Promise<void> | undefined;
  let again = false;

  const save = () => {
    try {
      writePending(stateFile, [...followed.keys()]);
    } catch (error) {
      // A full disk is said by the write gate; the sessions are copied all the same, and the next save catches up.
      if (!storageFault(error)) throw error;
    }
  };

  const copy = async (id: string, entry: Followed): Promise<void> => {
    if (!entry.claim) {
      const claim = await sessions.claim(id, machine, { staleMs: Infinity });
      if (!claim) {
        // Another machine runs this session: it is that machine's to copy.
        trace.warn({ session: id, event: "session_mirror_held" }, `session ${id} is held by another machine in the shared store; this machine does not copy its log`);
        return void followed.delete(id);
      }
      entry.claim = claim;
      entry.copied = await sessions.last(id);
      entry.offset = 0;
      entry.read = 0;
    }
    const path = sessionLogPath(sessionsDir, id);
    const grown = await readSessionLogFrom(path, entry.offset).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { events: [], offset: entry.offset };
      throw error;
    });
    // Events the store has already (a restart reads the file from its start) are skipped by their number.
    const fresh = grown.events.slice(Math.max(0, entry.copied - entry.read));
    for (let start = 0; start < fresh.length; start += BATCH) {
      entry.copied = await sessions.append(entry.claim, fresh.slice(start, start + BATCH));
    }
    entry.read += grown.events.length;
    entry.offset = grown.offset;
  };

  const syncOnce = async () => {
    const before = followed.size;
    for (const [id, entry] of [...followed]) {
      const wasEnded = entry.ended;
      try {
        await copy(id, entry);
      } catch (error) {
        if (error instanceof SessionTakenOver) {
          trace.warn({ session: id, event: "session_taken_over", error: error.message }, `${error.message}: another process started under this machine's name while this one was silent; this one stops copying the session`);
          followed.delete(id);
          continue;
        }
        if (error instanceof SessionLogError) {
          // Said once: the other machines see the log up to the damage; the daemon says the damage itself.
          trace.warn({ session: id, event: "session_mirror_damaged", error: error.message }, `session ${id}'s log is copied to the shared store only up to a damaged line: ${error.message}`);
          followed.delete(id);
          continue;
        }
        // The store away is said once by its watch, a full disk by the write gate; the copy is tried again at the next sync.
        if (!storeUnreachable(error) && !storageFault(error)) trace.warn({ session: id, event: "session_mirror_failed", error: (error as Error).message }, `could not copy session ${id}'s log to the shared store; tried again at the next heartbeat: ${(error as Error).message}`);
        continue;
      }
      // Ended before this copy began: the copy read everything it will ever hold.
      if (wasEnded && followed.get(id) === entry) followed.delete(id);
    }
    if (followed.size !== before) save();
  };

  const sync = (): Promise<void> => {
    if (syncing) {
      again = true;
      return syncing;
    }
    syncing = (async () => {
      try {
        do {
          again = false;
          await syncOnce();
        } while (again);
      } finally {
        syncing = undefined;
      }
    })();
    return syncing;
  };

  const follow = (id: string): Followed => {
    let entry = followed.get(id);
    if (!entry) {
      entry = { offset: 0, read: 0, copied: 0, ended: false };
      followed.set(id, entry);
      save();
    }
    return entry;
  };

  return {
    grew(id) {
      const entry = follow(id);
      // A session the last process left ended runs again (a resume): it is followed until it ends.
      entry.ended = false;
      void sync().catch(() => {});
    },
    ended(id) {
      follow(id).ended = true;
      // Its specialists ended with it (one cut short by a cancel may log no end of its own).
      for (const [session, entry] of followed) if (session.startsWith(`${id}.`)) entry.ended = true;
      void sync().catch(() => {});
    },
    backfill(ids) {
      for (const id of ids) if (!followed.has(id)) followed.set(id, { offset: 0, read: 0, copied: 0, ended: true });
      save();
    },
    sync,
    pending: () => [...followed.keys()],
  };
}

function readPending(path: string): string[] {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as unknown;
    return Array.isArray(parsed) ? parsed.filter((id): id is string => typeof id === "string") : [];
  } catch {
    // None yet, or damaged: the sessions running now are followed again as they grow; an ended one's copy may stay short.
    return [];
  }
}

function writePending(path: string, ids: string[]): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, JSON.stringify(ids));
  renameSync(`${path}.tmp`, path);
}
