import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, it } from "node:test";
import { createTerminalApprover } from "../cli/terminal-approver.ts";
import type { EventOf } from "../runtime/events.ts";
import { Shutdown } from "../runtime/loop.ts";
import { createRuntimeHarness, resultsIn, scriptedApprover, type RuntimeHarness } from "./support/runtime-harness.ts";

let h: RuntimeHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const write = (path: string, content = "x") => ({ type: "tool_use" as const, name: "write_file", input: { path, content } });
const done = { content: [{ type: "text" as const, text: "done" }] };

describe("approvals in a session", () => {
  it("allow once lets one call through and asks again next time; deny passes the reason to the model", async () => {
    const answers = [{ decision: "once" as const }, { decision: "deny" as const, reason: "not in my home folder" }];
    const approver = scriptedApprover(answers, () => h!.runtime.approvals);
    h = await createRuntimeHarness({ approvers: [approver] });
    const first = join(h.userHome, "notes", "a.txt");
    const second = join(h.userHome, "notes", "b.txt");
    h.api.script({ content: [write(first)] }, { content: [write(second)] }, done);
    const id = h.runtime.newSessionId();
    const result = await h.runtime.start(id, h.task());
    assert.equal(result.status, "done");
    assert.equal(readFileSync(first, "utf8"), "x");
    assert.equal(existsSync(second), false);
    assert.equal(approver.seen.length, 2);
    assert.equal(approver.seen[0]!.summary, `write ${first}`);
    assert.equal(approver.seen[0]!.reason, "a write outside the allowed folders");
    assert.deepEqual(approver.seen[0]!.input, { path: first, content: "x" });
    const denied = resultsIn(h.api, 2)[0]!;
    assert.equal(denied.is_error, true);
    assert.match(denied.content, /^Not approved: write .*b\.txt .*the user said: not in my home folder/);
    const events = await h.events(id);
    const answered = events.filter((event): event is EventOf<"approval_answered"> => event.type === "approval_answered");
    assert.deepEqual(answered.map((event) => [event.decision, event.by]), [["once", "test"], ["deny", "test"]]);
  });

  it("allow for this task stops asking for that exact path until the task ends, and nothing wider", async () => {
    const approver = scriptedApprover([{ decision: "task" }, { decision: "deny" }, { decision: "deny" }], () => h!.runtime.approvals);
    h = await createRuntimeHarness({ approvers: [approver] });
    const folder = join(h.userHome, "project");
    const notes = join(folder, "notes.txt");
    h.api.script({ content: [write(notes, "one")] }, { content: [write(notes, "two")] }, { content: [write(join(folder, ".bashrc"))] }, done);
    const id = h.runtime.newSessionId();
    await h.runtime.start(id, h.task());
    assert.equal(readFileSync(notes, "utf8"), "two", "the same path again did not ask");
    assert.equal(approver.seen.length, 2, "a sibling file asked");
    assert.equal(existsSync(join(folder, ".bashrc")), false);
    const grant = (await h.events(id)).find((event): event is EventOf<"grant"> => event.type === "grant");
    assert.deepEqual([grant?.kind, grant?.target], ["write", notes]);

    // A new task asks again.
    h.api.script({ content: [write(notes, "three")] }, done);
    await h.runtime.start(h.runtime.newSessionId(), h.task());
    assert.equal(approver.seen.length, 3);
    assert.equal(readFileSync(notes, "utf8"), "two");
  });

  it("denies an approval nobody answers once it expires", async () => {
    const approver = scriptedApprover(["ignore"], () => h!.runtime.approvals);
    h = await createRuntimeHarness({ approvers: [approver] });
    h.api.script({ content: [write(join(h.userHome, "late.txt"))] }, done);
    const running = h.runtime.start(h.runtime.newSessionId(), h.task());
    while (approver.seen.length === 0) await new Promise((resolve) => setImmediate(resolve));
    h.clock.advance(30 * 60_000);
    assert.equal((await running).status, "done");
    assert.match(resultsIn(h.api, 1)[0]!.content, /^Not approved: .*nobody answered in time/);
    assert.equal(existsSync(join(h.userHome, "late.txt")), false);
  });

  it("keeps a pending approval across a restart, and a later answer lets the call run once", async () => {
    const approver = scriptedApprover(["ignore"], () => h!.runtime.approvals);
    h = await createRuntimeHarness({ approvers: [approver] });
    const target = join(h.userHome, "after-restart.txt");
    h.api.script({ content: [write(target)] });
    const id = h.runtime.newSessionId();
    const stop = new AbortController();
    const running = h.runtime.start(id, h.task(), { signal: stop.signal });
    while (approver.seen.length === 0) await new Promise((resolve) => setImmediate(resolve));
    stop.abort(new Shutdown("daemon stopping"));
    assert.equal((await running).status, "interrupted");

    // While nothing runs, the user answers (as `nightshift approve ID` does), then the daemon comes back.
    const pending = (await h.restart()).approvals.pending();
    assert.equal(pending.length, 1);
    assert.equal(h.runtime.approvals.answer(pending[0]!.id, { decision: "once", by: "cli" }).ok, true);
    h.api.script(done);
    const resumed = await h.runtime.resume(id);
    assert.equal(resumed.status, "done");
    assert.equal(readFileSync(target, "utf8"), "x");
    assert.equal(approver.seen.length, 1, "not asked a second time");
    assert.equal(h.runtime.approvals.all().length, 1);
  });
});

describe("the terminal approver", () => {
  it("asks with the summary, rule and input, and records the typed answer", async () => {
    h = await createRuntimeHarness();
    const input = new PassThrough();
    const output = new PassThrough();
    let shown = "";
    output.on("data", (chunk) => (shown += chunk));
    h.approvers.push(createTerminalApprover(h.runtime.approvals, input, output));
    const target = join(h.userHome, "typed.txt");
    h.api.script({ content: [write(target)] }, done);
    const running = h.runtime.start(h.runtime.newSessionId(), h.task());
    try {
      while (!shown.includes("> ")) await new Promise((resolve) => setImmediate(resolve));
      assert.ok(shown.includes(`? Approve: write ${target}\n`), shown);
      assert.match(shown, /why: a write outside the allowed folders/);
      assert.match(shown, /\[o\] allow once {2}\[t\] allow for this task {2}\[d\] deny/);
      input.write("t\n");
      assert.equal((await running).status, "done");
    } finally {
      input.end(); // a failed assertion must not leave the prompt holding the test process open
    }
    assert.equal(readFileSync(target, "utf8"), "x");
    assert.equal(h.runtime.approvals.all()[0] && h.runtime.approvals.answerOf(h.runtime.approvals.all()[0]!.id)?.decision, "task");
  });
});

describe("the terminal approver with two questions at once", () => {
  it("shows one prompt at a time, so one keystroke answers one approval", async () => {
    h = await createRuntimeHarness();
    const store = h.runtime.approvals;
    const input = new PassThrough();
    const output = new PassThrough();
    let shown = "";
    output.on("data", (chunk) => (shown += chunk));
    const approver = createTerminalApprover(store, input, output);
    const base = { session: "s1", tool: "bash", input: {}, kind: "network" as const, reason: "a domain not on the allow list" };
    const first = store.create({ ...base, tool_use_id: "t1", summary: "connect to docs.python.org", target: "docs.python.org" });
    const second = store.create({ ...base, tool_use_id: "t1", summary: "connect to exfil.example", target: "exfil.example" });
    try {
      approver.notify(first);
      approver.notify(second);
      while (!shown.includes("> ")) await new Promise((resolve) => setImmediate(resolve));
      assert.ok(shown.includes("docs.python.org") && !shown.includes("exfil.example"), shown);
      input.write("t\n");
      while (!shown.includes("exfil.example")) await new Promise((resolve) => setImmediate(resolve));
      assert.equal(store.answerOf(first.id)?.decision, "task");
      assert.equal(store.answerOf(second.id), undefined, "the keystroke answered only the prompt on screen");
      input.write("d\n");
      while (!shown.includes("reason for the agent")) await new Promise((resolve) => setImmediate(resolve));
      input.write("not that one\n");
      while (!store.answerOf(second.id)) await new Promise((resolve) => setImmediate(resolve));
      assert.equal(store.answerOf(second.id)?.reason, "not that one");
    } finally {
      input.end();
    }
  });
});

describe("nightshift approve and deny", () => {
  const CLI = join(import.meta.dirname, "..", "cli", "nightshift.ts");
  const cli = (args: string[], home: string) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NIGHTSHIFT_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk) => (stdout += chunk));
      child.stderr.on("data", (chunk) => (stderr += chunk));
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });

  it("list what waits, answer once, and say so for an unknown or answered id", async () => {
    h = await createRuntimeHarness();
    const store = h.runtime.approvals;
    const now = Date.now();
    h.clock.time = now; // the CLI uses the real clock: keep the record unexpired
    const record = store.create({ session: "s1", tool_use_id: "toolu_1", tool: "bash", input: { command: "git push" }, summary: "run `git push`", kind: "command", target: "git push", reason: "rule asks first" });
    const listed = await cli(["approve"], h.home);
    assert.equal(listed.code, 0);
    assert.match(listed.stdout, new RegExp(`${record.id} {2}run \`git push\``));
    const denied = await cli(["deny", record.id, "--reason", "not today"], h.home);
    assert.equal(denied.code, 0, denied.stderr);
    assert.equal(denied.stdout, "run `git push`: denied.\n");
    assert.equal(store.answerOf(record.id)?.reason, "not today");
    const again = await cli(["approve", record.id], h.home);
    assert.equal(again.code, 1);
    assert.match(again.stdout, /already answered \(deny\) by cli/);
    const unknown = await cli(["approve", "nosuch"], h.home);
    assert.match(unknown.stdout, /there is no approval nosuch/);
  });
});
