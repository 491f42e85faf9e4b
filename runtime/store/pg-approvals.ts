/**
 * Approvals across machines (issue 16). A session asks on the machine it runs on, in that
 * machine's approval store (runtime/approvals.ts), which stays the one that decides: its answer
 * file is created exclusively, so the first answer it gets is the one the session acts on. The
 * question also goes to the `approvals` table; every other machine keeps a copy in its own store,
 * so its bot, dashboard and `nightshift approve` can show and answer it. An answer given anywhere
 * goes to the table (the first one written there stays) and from there, on the next look, into
 * the asking machine's store, which wakes the session. A notification on the tasks channel is the
 * hint for that look; each machine also looks every heartbeat.
 *
 * Left as it is: an answer given on the asking machine itself and another given elsewhere in the
 * same second can both be taken where they were given; the session acts on the first one its
 * machine took, and the table ends with that one too, but the other surface showed its own.
 */

import type { ApprovalAnswer, ApprovalRecord, ApprovalStore, Approver } from "../approvals.ts";
import type { Clock } from "../clock.ts";
import type { Sql } from "./pg.ts";
import { CHANNEL } from "./pg-cluster.ts";

export interface SharedApprovals {
  /** The store as before; an answer given here (Telegram, the dashboard, `nightshift approve`) also goes to the other machines. */
  store: ApprovalStore;
  /** One of each session's approvers: tells the other machines about a question asked here and how it was settled. Must not throw. */
  approver: Approver;
  /** Writes what waits to be written, copies questions asked elsewhere, and takes answers given elsewhere. */
  sync(): Promise<void>;
}

export interface ShareApprovalsOptions {
  sql: Sql;
  machine: string;
  store: ApprovalStore;
  clock: Clock;
  /** A question asked on another machine, now copied here (the bot shows it if it runs here). Must not throw. */
  onAsked(record: ApprovalRecord): void;
  /** An answer given elsewhere, now taken here; `answer` is the one that stands here. Must not throw. */
  onAnswered(record: ApprovalRecord, answer: ApprovalAnswer): void;
  warn(message: string): void;
}

export function shareApprovals(options: ShareApprovalsOptions): SharedApprovals {
  const { sql, machine, store: inner, clock } = options;
  /** Writes in the order they were made (a question before its answer); kept while the database is away. */
  const waiting: Array<() => Promise<unknown>> = [];
  /** Approvals here without an answer yet: the ones whose answer may come from elsewhere. */
  const open = new Set(inner.pending().map((record) => record.id));
  let pushing: Promise<void> | undefined;
  const push = (): Promise<void> =>
    (pushing ??= (async () => {
      try {
        while (waiting.length) {
          await waiting[0]!();
          waiting.shift();
        }
      } catch (error) {
        options.warn(`could not write approvals to the shared store (${waiting.length} waiting, tried again at the next heartbeat): ${(error as Error).message}`);
      }
    })().finally(() => (pushing = undefined)));
  const later = (write: () => Promise<unknown>) => {
    waiting.push(write);
    void push();
  };
  const ask = (record: ApprovalRecord) =>
    later(() => sql.begin(async (tx) => {
      await tx`INSERT INTO approvals (id, machine, record) VALUES (${record.id}, ${machine}, ${tx.json(record as never)}) ON CONFLICT (id) DO NOTHING`;
      await tx`SELECT pg_notify(${CHANNEL}, 'approval')`;
    }));
  // Questions asked here before this process shared them (a home moved onto the store with
  // `nightshift store migrate`, or asked while it was away) are written now: any machine can answer them.
  for (const record of inner.pending()) ask(record);
  const answered = (id: string, answer: ApprovalAnswer) =>
    later(() => sql.begin(async (tx) => {
      await tx`UPDATE approvals SET answer = ${tx.json(answer as never)}, changed = nextval('approval_changes') WHERE id = ${id} AND answer IS NULL`;
      await tx`SELECT pg_notify(${CHANNEL}, 'approval')`;
    }));

  const store: ApprovalStore = {
    ...inner,
    answer(id, answer) {
      const result = inner.answer(id, answer);
      const standing = inner.answerOf(id); // ours, or the expiry it recorded
      if (standing) {
        open.delete(id);
        answered(id, standing);
      }
      return result;
    },
  };
  const approver: Approver = {
    name: "other machines",
    notify(record) {
      open.add(record.id);
      ask(record);
    },
    settled(record, answer) {
      open.delete(record.id);
      answered(record.id, answer);
    },
  };

  return {
    store,
    approver,
    async sync() {
      await push();
      const asked = await sql<Array<{ record: ApprovalRecord }>>`
        SELECT record FROM approvals WHERE answer IS NULL AND machine <> ${machine} AND (record->>'expires_at')::bigint > ${clock.now()} ORDER BY changed`;
      for (const { record } of asked) {
        if (!inner.adopt(record)) continue;
        open.add(record.id);
        options.onAsked(record);
      }
      if (open.size === 0) return;
      const answers = await sql<Array<{ id: string; answer: ApprovalAnswer }>>`SELECT id, answer FROM approvals WHERE id IN ${sql([...open])} AND answer IS NOT NULL`;
      for (const { id, answer } of answers) {
        open.delete(id);
        const record = inner.get(id);
        if (!record) continue;
        if (!inner.answerOf(id)) inner.answer(id, { decision: answer.decision, by: answer.by, ...(answer.reason ? { reason: answer.reason } : {}) });
        const standing = inner.answerOf(id);
        if (standing) options.onAnswered(record, standing);
      }
    },
  };
}
