import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { taskNotices } from "../bot/task-notices.ts";
import type { SessionResult, TaskSpec } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/state.ts";

const SPEC: TaskSpec = { title: "Tidy", prompt: "tidy", workdir: "/tmp/w", model: "main", budget: { max_turns: 40, max_usd: 2, timeout_ms: 3_600_000 } };
const task = (fields: Partial<TaskRecord> = {}): TaskRecord => ({ id: "20261202-120000-abc", title: "Tidy", origin: "inbox", priority: "normal", state: "done", spec: SPEC, created: 0, attempts: 1, crashes: 0, turns: 1, cost_usd: 0, ...fields });
const done: SessionResult = { status: "done", answer: "All **tidy**.", turns: 1, costUsd: 0.01 };
const options = { notify: ["finished", "failed", "budget"] as const, taskLink: () => "", machine: "m2" };

/** What a machine without the bot queues for Telegram about its own tasks (bot/task-notices.ts). */
describe("notices of a machine without the bot", () => {
  it("tells every user of an inbox task's end, as the bot's follower would", () => {
    const notices = taskNotices({ type: "finished", record: task(), result: done }, task(), options);
    assert.equal(notices.length, 1);
    assert.equal(notices[0]!.chat, undefined, "every user");
    assert.match((notices[0]!.message as { text: string }).text, /✅ <b>Tidy<\/b>[\s\S]*All <b>tidy<\/b>\./);
  });

  it("follows telegram.notify and the task file's notify", () => {
    assert.deepEqual(taskNotices({ type: "finished", record: task(), result: done }, task(), { ...options, notify: ["failed"] }), []);
    const wanted = task({ spec: { ...SPEC, notify: true } });
    assert.equal(taskNotices({ type: "finished", record: wanted, result: done }, wanted, { ...options, notify: [] }).length, 1);
  });

  it("leaves a Telegram task's answer to its delivery, and sends its budget warning to its chat", () => {
    const fromChat = task({ origin: "telegram", spec: { ...SPEC, source: "telegram:4242:7" } });
    assert.deepEqual(taskNotices({ type: "finished", record: fromChat, result: done }, fromChat, options), []);
    const warning = taskNotices({ type: "event", event: { type: "budget_warning", at: 0, kind: "usd", used: 1.6, limit: 2 } }, fromChat, options);
    assert.equal(warning[0]?.chat, 4242);
    assert.match((warning[0]!.message as { text: string }).text, /has used 80% of its budget/);
  });

  it("sends a staged task's diff from this machine's copy as a document, with Apply and Discard for the bot's machine to route here", () => {
    const staged = { ...done, staged: { original: "/home/me/project", changes: ["M a.js (+1 −1)"], diff: "diff --git a/a.js b/a.js\n" } };
    const [, changes] = taskNotices({ type: "finished", record: task(), result: staged }, task(), options);
    const message = changes!.message as { document: { filename: string; content: string }; caption: string; buttons: { inline_keyboard: { text: string; callback_data: string }[][] } };
    assert.deepEqual(message.document, { filename: "20261202-120000-abc.diff", content: "diff --git a/a.js b/a.js\n" });
    assert.match(message.caption, /Not applied yet<\/b>: 1 change to \/home\/me\/project, made on a copy on m2\. The diff is attached\./);
    assert.deepEqual(message.buttons.inline_keyboard.flat().map((button) => [button.text, button.callback_data]), [["Apply", "st:20261202-120000-abc:a"], ["Discard", "st:20261202-120000-abc:d"]]);
    const nothing = taskNotices({ type: "finished", record: task(), result: { ...done, staged: { original: "/p", changes: [] } } }, task(), options)[1]!.message as { text: string; buttons: { inline_keyboard: { text: string }[][] } };
    assert.match(nothing.text, /changed nothing in \/p on m2/);
    assert.deepEqual(nothing.buttons.inline_keyboard.flat().map((button) => button.text), ["Discard"]);
  });
});
