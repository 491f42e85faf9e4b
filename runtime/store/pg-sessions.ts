/**
 * Session logs in PostgreSQL (issue 16, first part): the events of each session as rows numbered
 * from 1, and who owns the session. A machine claims a session before it runs it; the claim has an
 * epoch, and every append checks, in the same transaction, that the session is still claimed by
 * that machine with that epoch. So a laptop that wakes after another machine took its session
 * over cannot write into it: its append fails, and it stops. Each append notifies SESSION_CHANNEL
 * with the session's id, so a page that follows a task on another machine wakes at once.
 *
 * The daemon's copy of its sessions into the store is tasks/session-mirror.ts.
 */

import { connectPg, storable, type Sql } from "./pg.ts";
import type { SessionEvent } from "../events.ts";

export class SessionTakenOver extends Error {
  override name = "SessionTakenOver";
}

export interface Claim {
  session: string;
  machine: string;
  epoch: number;
}

/** Notified with a session's id after each append (`listen`). */
export const SESSION_CHANNEL = "nightshift_sessions";

export interface PgSessions {
  /** Takes the session for `machine`: free, already its own, or held by a machine silent for `staleMs` (Infinity: never). */
  claim(session: string, machine: string, options?: { staleMs?: number }): Promise<Claim | undefined>;
  /** Keeps the claim fresh; false when it was taken over meanwhile. */
  heartbeat(claim: Claim): Promise<boolean>;
  /** Appends in order; throws SessionTakenOver when the claim is no longer this one. Returns the last event's number. */
  append(claim: Claim, events: readonly SessionEvent[]): Promise<number>;
  /** Events after number `after` (0: from the start), in order, with their numbers. */
  readFrom(session: string, after?: number): Promise<{ seq: number; event: SessionEvent }[]>;
  /** The number of the session's last event (0: none). */
  last(session: string): Promise<number>;
  /** The sessions of task `task`'s specialists (`<task>.<call>.<name>`) the store holds, by name. */
  specialistsOf(task: string): Promise<string[]>;
  /** Calls `wake` with a session's id after each append to it, from any machine; returns the unlisten. */
  listen(wake: (session: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

const DEFAULT_STALE_MS = 30_000;

export async function openPgSessions(url: string): Promise<PgSessions> {
  return pgSessions(await connectPg(url), { owned: true });
}

/** Over a pool someone else opened; `owned`: `close` ends it. */
export function pgSessions(sql: Sql, options: { owned?: boolean } = {}): PgSessions {
  return {
    async claim(session, machine, options = {}) {
      const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
      // Infinity: another machine's claim is never taken over (the session mirror: a started task stays on its machine).
      const rows = Number.isFinite(staleMs)
        ? await sql<{ epoch: string }[]>`
            INSERT INTO session_owners (session, machine, epoch) VALUES (${session}, ${machine}, 1)
            ON CONFLICT (session) DO UPDATE SET machine = EXCLUDED.machine, epoch = session_owners.epoch + 1, heartbeat = now()
              WHERE session_owners.machine = EXCLUDED.machine OR session_owners.heartbeat < now() - make_interval(secs => ${staleMs / 1000})
            RETURNING epoch`
        : await sql<{ epoch: string }[]>`
            INSERT INTO session_owners (session, machine, epoch) VALUES (${session}, ${machine}, 1)
            ON CONFLICT (session) DO UPDATE SET epoch = session_owners.epoch + 1, heartbeat = now() WHERE session_owners.machine = EXCLUDED.machine
            RETURNING epoch`;
      return rows[0] ? { session, machine, epoch: Number(rows[0].epoch) } : undefined;
    },
    async heartbeat(claim) {
      const rows = await sql`UPDATE session_owners SET heartbeat = now() WHERE session = ${claim.session} AND machine = ${claim.machine} AND epoch = ${claim.epoch} RETURNING 1`;
      return rows.length === 1;
    },
    async append(claim, events) {
      return sql.begin(async (tx) => {
        // The owner row is locked for the transaction: a takeover waits for this append, or this append sees it.
        const owner = await tx<{ machine: string; epoch: string }[]>`SELECT machine, epoch FROM session_owners WHERE session = ${claim.session} FOR UPDATE`;
        if (!owner[0] || owner[0].machine !== claim.machine || Number(owner[0].epoch) !== claim.epoch) {
          throw new SessionTakenOver(`session ${claim.session} is ${owner[0] ? `now run by ${owner[0].machine}` : "not claimed"}; ${claim.machine} stops writing to it`);
        }
        const [last] = await tx<{ seq: string | null }[]>`SELECT max(seq) AS seq FROM session_events WHERE session = ${claim.session}`;
        const first = Number(last?.seq ?? 0) + 1;
        const rows = events.map((event, index) => ({ session: claim.session, seq: first + index, machine: claim.machine, event: tx.json(storable(event) as never) }));
        // One statement for the batch: a catching-up copy of hundreds of events is one round trip, not hundreds.
        if (rows.length) await tx`INSERT INTO session_events ${tx(rows, "session", "seq", "machine", "event")}`;
        const seq = first + events.length - 1;
        // Sent when the transaction commits, not before.
        if (events.length) await tx`SELECT pg_notify(${SESSION_CHANNEL}, ${claim.session})`;
        return seq;
      });
    },
    async readFrom(session, after = 0) {
      const rows = await sql<{ seq: string; event: SessionEvent }[]>`SELECT seq, event FROM session_events WHERE session = ${session} AND seq > ${after} ORDER BY seq`;
      return rows.map((row) => ({ seq: Number(row.seq), event: row.event }));
    },
    async last(session) {
      const [row] = await sql<{ seq: string | null }[]>`SELECT max(seq) AS seq FROM session_events WHERE session = ${session}`;
      return Number(row?.seq ?? 0);
    },
    async specialistsOf(task) {
      // Byte-wise range operators, which the pattern index (schema step 10) serves whatever the database's collation: '/' follows '.'.
      const rows = await sql<{ session: string }[]>`SELECT session FROM session_owners WHERE session ~>=~ ${`${task}.`} AND session ~<~ ${`${task}/`} ORDER BY session COLLATE "C"`;
      return rows.map((row) => row.session);
    },
    async listen(wake) {
      const { unlisten } = await sql.listen(SESSION_CHANNEL, (session) => wake(session));
      return unlisten;
    },
    close: async () => {
      if (options.owned) await sql.end({ timeout: 5 });
    },
  };
}
