import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { createApprovalStore, type ApprovalRecord } from "../runtime/approvals.ts";
import { connectPg } from "../runtime/store/pg.ts";
import { shareApprovals } from "../runtime/store/pg-approvals.ts";
import { freshDatabase, noDatabase } from "./support/cluster.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";

/** runtime/store/pg-approvals.ts against a real PostgreSQL: two machines' approval stores, one database. */

const skip = noDatabase ? { skip: noDatabase } : {};
const database = noDatabase ? undefined : await freshDatabase();
after(async () => database?.drop());

const fields = { session: "s1", tool_use_id: "toolu_1", tool: "bash", input: { command: "git push" }, summary: "run `git push`", kind: "command" as const, target: "git push", reason: "rule asks first" };

describe("approvals shared by several machines", skip, () => {
  it("shares a question asked before the machine joined the store (a home moved with `store migrate`), and takes in the answer given on another machine", async () => {
    const sql = await connectPg(database!.url);
    const clock = new FakeClock();
    const [home1, home2] = [tempDir(), tempDir()];
    try {
      const laptop = createApprovalStore(home1.path, { clock, expireMs: 30 * 60_000, watch: false });
      const server = createApprovalStore(home2.path, { clock, expireMs: 30 * 60_000, watch: false });
      // Asked while the laptop ran alone: only its own files hold it.
      const record = laptop.create(fields);
      const answered: string[] = [];
      const asked: ApprovalRecord[] = [];
      const warn = (message: string) => assert.fail(message);
      const m1 = shareApprovals({ sql, machine: "laptop", store: laptop, clock, onAsked: () => {}, onAnswered: (one, answer) => void answered.push(`${one.id} ${answer.decision} by ${answer.by}`), warn });
      const m2 = shareApprovals({ sql, machine: "server", store: server, clock, onAsked: (one) => void asked.push(one), onAnswered: () => {}, warn });
      await m1.sync();
      await m2.sync();
      assert.deepEqual(asked.map((one) => one.id), [record.id], "the server's bot is shown the laptop's question");
      assert.equal(m2.store.answer(record.id, { decision: "once", by: "telegram:1" }).ok, true);
      await m2.sync();
      await m1.sync();
      assert.deepEqual(answered, [`${record.id} once by telegram:1`]);
      assert.equal(laptop.answerOf(record.id)?.decision, "once", "the laptop's own files hold the answer: its session goes on");
      // Started again, the laptop writes it no second time.
      shareApprovals({ sql, machine: "laptop", store: laptop, clock, onAsked: () => {}, onAnswered: () => {}, warn });
      const rows = await sql<{ id: string; answered: boolean }[]>`SELECT id, answer IS NOT NULL AS answered FROM approvals`;
      assert.deepEqual(rows.map((row) => `${row.id} ${row.answered}`), [`${record.id} true`]);
    } finally {
      await sql.end({ timeout: 1 });
      home1.cleanup();
      home2.cleanup();
    }
  });
});
