import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ANSWER_POLL_MS, createApprovalStore, type DamagedFile } from "../runtime/approvals.ts";
import { systemClock } from "../runtime/clock.ts";
import { nightshift } from "./support/cli.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";

const fields = {
  session: "s1",
  tool_use_id: "toolu_1",
  tool: "bash",
  input: { command: "git push" },
  summary: "run `git push`",
  kind: "command" as const,
  target: "git push",
  reason: "rule asks first",
};

describe("the approval store", () => {
  it("keeps a record until answered, and the first answer wins", async () => {
    const dir = tempDir();
    try {
      const clock = new FakeClock();
      const store = createApprovalStore(dir.path, { clock, expireMs: 30 * 60_000 });
      const record = store.create(fields);
      assert.match(record.id, /^[a-z2-9]{6}$/);
      assert.equal(record.expires_at - record.asked_at, 30 * 60_000);
      assert.deepEqual(store.pending().map((r) => r.id), [record.id]);

      const waiting = store.wait(record);
      const first = store.answer(record.id, { decision: "deny", by: "cli", reason: "not on Fridays" });
      assert.equal(first.ok, true);
      const second = store.answer(record.id, { decision: "once", by: "terminal" });
      assert.deepEqual(second.ok ? "ok" : second.problem, "answered");
      assert.match(second.ok ? "" : second.message, /already answered \(deny\) by cli/);
      const answer = await waiting;
      assert.equal(answer.decision, "deny");
      assert.equal(answer.reason, "not on Fridays");
      assert.deepEqual(store.pending(), []);
    } finally {
      dir.cleanup();
    }
  });

  it("finds an answer from another process every few seconds where the folder's watch sees nothing (macOS FSEvents, network folders)", async () => {
    const dir = tempDir();
    try {
      const clock = new FakeClock();
      const store = createApprovalStore(dir.path, { clock, expireMs: 30 * 60_000, watch: false });
      const record = store.create(fields);
      let answered: string | undefined;
      const waiting = store.wait(record).then((answer) => (answered = answer.decision));
      // Another process (`nightshift approve`) answers through its own store on the same folder.
      createApprovalStore(dir.path, { clock, expireMs: 30 * 60_000 }).answer(record.id, { decision: "once", by: "cli" });
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(answered, undefined, "not seen yet: nothing watches");
      clock.advance(ANSWER_POLL_MS);
      await waiting;
      assert.equal(answered, "once");
    } finally {
      dir.cleanup();
    }
  });

  it("survives a restart: a new store on the same folder finds the pending record and its answer", async () => {
    const dir = tempDir();
    try {
      const clock = new FakeClock();
      const record = createApprovalStore(dir.path, { clock, expireMs: 60_000 }).create(fields);
      const after = createApprovalStore(dir.path, { clock, expireMs: 60_000 });
      assert.equal(after.find("s1", "toolu_1", "git push")?.id, record.id);
      after.answer(record.id, { decision: "task", by: "cli" });
      assert.equal((await after.wait(record)).decision, "task");
    } finally {
      dir.cleanup();
    }
  });

  it("denies at expiry, and says so to a late answer", async () => {
    const dir = tempDir();
    try {
      const clock = new FakeClock();
      const store = createApprovalStore(dir.path, { clock, expireMs: 60_000 });
      const record = store.create(fields);
      const waiting = store.wait(record);
      clock.advance(60_000);
      const answer = await waiting;
      assert.equal(answer.decision, "expired");
      const late = store.answer(record.id, { decision: "once", by: "cli" });
      assert.equal(late.ok, false);
      assert.match(late.ok ? "" : late.message, /expired at .* and was denied/);
    } finally {
      dir.cleanup();
    }
  });

  it("answers an unknown id with a clear message", () => {
    const dir = tempDir();
    try {
      const store = createApprovalStore(dir.path, { clock: new FakeClock(), expireMs: 60_000 });
      const result = store.answer("zzzzzz", { decision: "once", by: "cli" });
      assert.equal(result.ok, false);
      assert.match(result.ok ? "" : result.message, /there is no approval zzzzzz/);
    } finally {
      dir.cleanup();
    }
  });
});

describe("a damaged approval answer file", () => {
  it("is moved aside and reported, and the approval is still denied at its expiry", async () => {
    const dir = tempDir();
    try {
      const clock = new FakeClock();
      const damaged: DamagedFile[] = [];
      const store = createApprovalStore(dir.path, { clock, expireMs: 60_000, onDamaged: (file) => damaged.push(file) });
      const record = store.create(fields);
      writeFileSync(join(dir.path, `${record.id}.answer.json`), '{"decision":"on'); // cut short by a power loss
      let answer: string | undefined;
      void store.wait(record).then((settled) => (answer = settled.decision));
      clock.advance(60_000);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(answer, "expired", "the wait ends at the expiry");
      assert.equal(damaged.length, 1);
      assert.equal(damaged[0]!.file, join(dir.path, `${record.id}.answer.json`));
      assert.equal(readFileSync(damaged[0]!.movedTo, "utf8"), '{"decision":"on', "kept, not deleted");
      assert.equal(store.answerOf(record.id)?.decision, "expired");
    } finally {
      dir.cleanup();
    }
  });

  it("does not stop an answer before the expiry: the answer is recorded and the waiting task gets it", async () => {
    const dir = tempDir();
    try {
      const clock = new FakeClock();
      const damaged: DamagedFile[] = [];
      const store = createApprovalStore(dir.path, { clock, expireMs: 60_000, onDamaged: (file) => damaged.push(file) });
      const record = store.create(fields);
      writeFileSync(join(dir.path, `${record.id}.answer.json`), "");
      const result = store.answer(record.id, { decision: "once", by: "cli" });
      assert.equal(result.ok, true);
      assert.equal((await store.wait(record)).decision, "once");
      assert.equal(damaged.length, 1);
      assert.match(damaged[0]!.problem, /empty/);
    } finally {
      dir.cleanup();
    }
  });

  it("is answered by nightshift approve without a daemon, which says it moved the file aside", async () => {
    const dir = tempDir();
    try {
      const home = join(dir.path, "home");
      mkdirSync(home);
      writeFileSync(join(home, "config.yaml"), "");
      const approvals = join(home, "state", "approvals");
      const record = createApprovalStore(approvals, { clock: systemClock, expireMs: 3_600_000 }).create(fields);
      writeFileSync(join(approvals, `${record.id}.answer.json`), "garbage");
      const approved = await nightshift(["approve", record.id], { ...process.env, NIGHTSHIFT_HOME: home });
      assert.doesNotMatch(approved.stderr, /Maximum call stack/);
      assert.equal(approved.code, 0, approved.stderr + approved.stdout);
      assert.match(approved.stdout, /^! APPROVAL FILE DAMAGED \(.*\): .*\.answer\.json moved to .*\.answer\.json\.damaged-.*; the approval can be answered again/);
      assert.match(approved.stdout, /run `git push`: allowed once\.\n$/);
      assert.ok(readdirSync(approvals).some((name) => name.startsWith(`${record.id}.answer.json.damaged-`)));
      assert.ok(existsSync(join(approvals, `${record.id}.answer.json`)));
    } finally {
      dir.cleanup();
    }
  });
});
