/**
 * The embedded store's session logs behind the same contract as PostgreSQL's
 * (runtime/store/pg-sessions.ts): one JSONL file per session under sessions/, claimed with its
 * lock file (a live owner keeps it; a dead one's is taken over). One machine only, so the claim's
 * epoch is always 1 and the lock is the whole guard. The runtime writes the same files directly
 * (runtime/session-log.ts); this is the contract the shared store is tested against.
 */

import { mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { SessionBusy } from "../errors.ts";
import type { SessionEvent } from "../events.ts";
import { lockSession } from "../session-lock.ts";
import { openSessionLog, readSessionLog, sessionLogPath, type SessionLog } from "../session-log.ts";
import type { Claim, PgSessions } from "./pg-sessions.ts";

/** What both backends promise; the contract tests run against each. */
export type SessionStore = PgSessions;

export function openFileSessions(dir: string, options: { sync?: boolean } = {}): SessionStore {
  const open = new Map<string, { log: SessionLog; unlock(): void; tail: Promise<number> }>();
  // As the runtime lays them out: a specialist's in its task's folder.
  const path = (session: string) => sessionLogPath(dir, session);
  return {
    async claim(session, machine) {
      if (open.has(session)) return { session, machine, epoch: 1 };
      let unlock: () => void;
      mkdirSync(dirname(path(session)), { recursive: true });
      try {
        unlock = lockSession(path(session));
      } catch (error) {
        if (error instanceof SessionBusy) return undefined;
        throw error;
      }
      const log = await openSessionLog(path(session), session, options.sync === undefined ? {} : { sync: options.sync });
      open.set(session, { log, unlock, tail: log.read().then((events) => events.length) });
      return { session, machine, epoch: 1 };
    },
    async heartbeat(claim: Claim) {
      return open.has(claim.session);
    },
    async append(claim, events) {
      const entry = open.get(claim.session);
      if (!entry) throw new SessionBusy(`session ${claim.session} is not claimed here`);
      // Numbered in the order appends are called, as the file gets them.
      const next = entry.tail.then(async (count) => {
        await entry.log.append(...(events as SessionEvent[]));
        return count + events.length;
      });
      entry.tail = next.catch(() => entry.tail);
      return next;
    },
    async readFrom(session, after = 0) {
      const events = await readSessionLog(path(session)).catch(() => []);
      return events.slice(after).map((event, index) => ({ seq: after + index + 1, event }));
    },
    async last(session) {
      return (await readSessionLog(path(session)).catch(() => [])).length;
    },
    async specialistsOf(task) {
      try {
        return readdirSync(join(dir, task)).filter((name) => name.startsWith(`${task}.`) && name.endsWith(".jsonl")).map((name) => name.slice(0, -".jsonl".length)).sort();
      } catch {
        return []; // no folder: no specialists
      }
    },
    // One machine: the daemon's own events wake its pages (`daemon.watch`); nothing comes from elsewhere.
    listen: async () => async () => {},
    async close() {
      for (const entry of open.values()) {
        await entry.log.close();
        entry.unlock();
      }
      open.clear();
    },
  };
}
